"""Reading what people and other programs hand us (configs, the consent list, calibrations,
recordings): bounded in size, decoded as UTF-8, or refused with a reason a person can act on.
Nothing here raises anything but ``InputError``."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import IO

MAX_TEXT_BYTES = 1 << 20
"""A configuration, a calibration: at most 1 MiB (the shipped example is 15 KiB)."""
MAX_LINE_BYTES = 64 * 1024
"""One line of a recording or capture: at most 64 KiB (an advert's line is under 2 KiB)."""

_BOMS = {
    codecs.BOM_UTF8: "UTF-8 with a byte-order mark",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
}


class InputError(Exception):
    """A file that cannot be used as text; ``reason`` says why (never its content)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def decode(data: bytes, where: str = "") -> str:
    """``data`` as UTF-8 text, or ``InputError`` naming the encoding it seems to be in."""
    for bom, name in sorted(_BOMS.items(), key=lambda kv: -len(kv[0])):
        if data.startswith(bom):
            raise InputError(f"{where}is {name}, not plain UTF-8: save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{where}is not UTF-8 text (byte {err.start + 1}): save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InputError(f"{where}holds a NUL byte: it is not a text file")
    return text


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The whole file as text, at most ``limit`` bytes of it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise InputError(f"cannot read file: {err.strerror or err}") from None
    if len(data) > limit:
        raise InputError(f"the file is larger than {limit:,} bytes: not a configuration")
    return decode(data)


def lines(handle: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(line number, text) of a binary handle, each line at most ``limit`` bytes."""
    for number, raw in enumerate(iter(lambda: handle.readline(limit + 1), b""), 1):
        if len(raw) > limit and not raw.endswith(b"\n"):
            raise InputError(f"line {number} is longer than {limit:,} bytes")
        yield number, decode(raw, f"line {number} ").rstrip("\r\n")
