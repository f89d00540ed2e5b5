"""Faults tests (see tests/support for what they share)."""
