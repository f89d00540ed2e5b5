"""Simulated beacon and sensor firmware, radio channel and store, with ground truth."""
