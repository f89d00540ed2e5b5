"""What every decoder returns besides a frame: nothing (not this format) or ``Malformed``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Malformed:
    """The bytes claim a format but break its rules; counted by ``reason`` and skipped."""

    format: str
    """Format the bytes claimed to be (``ibeacon``, ``bthome`` …)."""
    reason: str
    """Short, stable reason, used as a counter key."""
