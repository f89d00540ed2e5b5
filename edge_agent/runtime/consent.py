"""The consent list: devices whose owners agreed to be tracked under a stable id.

A JSON file, written atomically by ``edge-agent consent`` and read by the running agent (which
is told to reload through its control socket). It holds what a device is matched by (an address
or a beacon id, like ``[[devices]]`` in the configuration, and like that file local to the
gateway), the stable id it is published under, and when consent was given. Nothing in it is
ever published or logged.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from edge_agent import inputs
from edge_agent.errors import ConsentError
from edge_agent.ids import SEGMENT_PATTERN, normalise_match
from edge_agent.inputs import InputError
from edge_agent.models import Consent, DeviceClass
from edge_agent.runtime.files import replace_atomically

FORMAT_VERSION = 1
MAX_CONSENT_BYTES = 16 << 20
"""The consent list holds at most 16 MiB (about 100 000 consents)."""
_ID = re.compile(SEGMENT_PATTERN)


def load_consents(path: Path) -> list[Consent]:
    """The consents in ``path``; an absent file is an empty list."""
    if not path.exists():
        return []
    try:
        text = inputs.read_text(path, MAX_CONSENT_BYTES)
    except InputError as err:
        raise ConsentError(str(path), err.reason) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConsentError(str(path), f"not valid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        raise ConsentError(str(path), f'expected an object with "v": {FORMAT_VERSION}')
    out: list[Consent] = []
    for i, item in enumerate(data.get("devices", [])):
        try:
            out.append(_parse(item))
        except (KeyError, TypeError, ValueError) as err:
            raise ConsentError(str(path), f"devices[{i}]: {err}") from err
    return out


def _parse(item: Any) -> Consent:
    if not isinstance(item, dict):
        raise TypeError("must be an object")
    ident = str(item["id"])
    if not _ID.match(ident):
        raise ValueError(f"id {ident!r} must be a topic segment (lowercase, digits, '-', '_')")
    return Consent(
        match=normalise_match(str(item["match"])),
        id=ident,
        kind=DeviceClass(item.get("kind", DeviceClass.SHOPPER.value)),
        added=float(item.get("added", 0.0)),
    )


def save_consents(path: Path, consents: list[Consent]) -> None:
    """Write the list atomically (temporary file, fsync, rename), readable by its owner only."""
    data = {
        "v": FORMAT_VERSION,
        "devices": [
            {"match": c.match, "id": c.id, "kind": c.kind.value, "added": c.added} for c in consents
        ],
    }
    text = json.dumps(data, indent=1) + "\n"
    try:
        replace_atomically(path, text.encode())
    except OSError as err:
        raise ConsentError(str(path), f"cannot write: {err.strerror}") from err


def add_consent(path: Path, match: str, ident: str, kind: DeviceClass) -> Consent:
    """Record consent for ``match`` under ``ident`` (replacing an earlier entry for either)."""
    try:
        entry = _parse({"match": match, "id": ident, "kind": kind.value, "added": time.time()})
    except ValueError as err:
        raise ConsentError(str(path), str(err)) from err
    keep = [c for c in load_consents(path) if c.match != entry.match and c.id != entry.id]
    save_consents(path, [*keep, entry])
    return entry


def revoke_consent(path: Path, device: str) -> Consent | None:
    """Remove the entry whose id or match is ``device``; the removed entry, or ``None``."""
    consents = load_consents(path)
    try:
        key = normalise_match(device)
    except ValueError:
        key = device
    gone = next((c for c in consents if device in (c.id,) or c.match == key), None)
    if gone is not None:
        save_consents(path, [c for c in consents if c is not gone])
    return gone
