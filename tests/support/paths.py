"""Where things are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The checkout."""
CONFIG_DIR = ROOT / "config"
"""The shipped example configs."""
SHARED = ROOT.parent / "shared"
"""The steering repo's shared folder, beside the checkout."""
TRACKS = SHARED / "data" / "ble-rssi-tracks"
"""Real BLE RSSI traces with ground truth (CC0)."""
DATA = ROOT / "tests" / "data"
"""Files the tests keep (the golden replay)."""
