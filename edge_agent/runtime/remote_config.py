"""Configuration set remotely: an overlay of dotted keys on ``agent.toml``, kept in the state
directory (``/etc`` is read-only for the service), and its probation.

``set-config`` never edits the field engineer's file: it writes ``<state_dir>/remote-config.json``
(``overrides``: dotted key → value), which every load applies on top of the file. While a new
overlay is on probation the previous one is kept beside it; the agent confirms it once healthy
for ``commands.rollback_after_s``, or puts the previous one back. An agent that starts and finds
a probation that was never confirmed (it crashed, or was killed, in between) puts the previous
overlay back before anything else: a configuration that breaks the agent cannot keep it down.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import inputs
from edge_agent.config import AgentConfig
from edge_agent.errors import CommandError
from edge_agent.ids import looks_secret, redact_userinfo
from edge_agent.inputs import InputError
from edge_agent.pipeline.reconfigure import changed
from edge_agent.runtime.files import replace_atomically

_LOGGER = logging.getLogger(__name__)
FILE = "remote-config.json"
MAX_BYTES = 1024 * 1024

RESTART = (
    "gateway",
    "source",
    "outbox",
    "commands",
    "pipeline.tick_s",
    "fusion.share",
    "privacy.store_secret_file",
    "privacy.store_secret_credential",
    "sensors.bthome_keys_file",
    "sensors.bthome_keys_credential",
)
"""Settings a running agent cannot take up: a change to them waits for a restart."""
_REMOTE_DENIED_SECTIONS = ("gateway.", "commands.", "mqtt.tls.")
_REMOTE_DENIED_ENDINGS = ("_file", "_credential", "_env", "_dir", ".file", "textfile")


@dataclass(slots=True)
class Probation:
    """A new overlay not yet confirmed."""

    previous: dict[str, Any]
    """The overlay before it, put back unless the agent is healthy in time."""
    until: float
    """Wall clock (epoch seconds) by which it must have been confirmed."""
    request: str | None = None
    """The ``set-config`` request id (its outcome is reported on ``cmd/set-config/result``)."""
    reply_to: str | None = None
    """The topic that request's results go to."""
    correlation: str | None = None
    """Its MQTT 5 correlation data, hex."""


@dataclass(slots=True)
class Overlay:
    """What ``remote-config.json`` holds."""

    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted key → value, applied on top of ``agent.toml``."""
    probation: Probation | None = None
    """Set while the overrides are on probation."""


def path_for(state_dir: Path) -> Path:
    """The overlay file of a gateway."""
    return state_dir / FILE


def read_overlay(state_dir: Path) -> Overlay:
    """The overlay (empty when there is none); ``CommandError`` when it cannot be read."""
    path = path_for(state_dir)
    if not path.exists():
        return Overlay()
    try:
        text = inputs.read_text(path, limit=MAX_BYTES)
    except InputError as err:
        raise CommandError("failed", f"{path}: cannot read: {err}") from err
    try:
        data = json.loads(text)
        overrides = dict(data["overrides"])
        prob = data.get("probation")
        probation = Probation(**prob) if prob else None
    except (ValueError, TypeError, KeyError) as err:
        raise CommandError("failed", f"{path}: not an overlay: {err}") from err
    return Overlay(overrides, probation)


def current_overrides(state_dir: Path) -> dict[str, Any]:
    """The overlay's overrides; none when it cannot be read (``check`` warns of that)."""
    try:
        return read_overlay(state_dir).overrides
    except CommandError:
        return {}


def write_overlay(state_dir: Path, overlay: Overlay) -> None:
    """Replace the overlay file atomically (owner only); ``CommandError`` when it cannot."""
    data = {
        "v": 1,
        "overrides": overlay.overrides,
        "probation": asdict(overlay.probation) if overlay.probation else None,
    }
    try:
        replace_atomically(path_for(state_dir), json.dumps(data, indent=1).encode() + b"\n")
    except OSError as err:
        raise CommandError("failed", f"cannot write {path_for(state_dir)}: {err}") from err


def recover(state_dir: Path) -> Probation | None:
    """At start: a probation never confirmed is given up, the previous overlay put back.
    Returns that probation (its request is told it was rolled back), else ``None``."""
    try:
        overlay = read_overlay(state_dir)
    except CommandError as err:
        _LOGGER.warning("remote configuration: %s; starting without it", err)
        return None
    if overlay.probation is None:
        return None
    prob = overlay.probation
    write_overlay(state_dir, Overlay(prob.previous))
    _LOGGER.warning("remote configuration: the last one was never confirmed; it was rolled back")
    return prob


def check_remote_keys(keys: Mapping[str, Any] | list[str]) -> None:
    """Keys a remote command may not set: who the gateway is, the command channel itself, and
    anything naming a file or credential to read (``CommandError``)."""
    for key in keys:
        if not key or any(not part for part in key.split(".")):
            raise CommandError("bad_request", f"{key!r} is not a dotted key")
        if key.startswith(_REMOTE_DENIED_SECTIONS) or key.endswith(_REMOTE_DENIED_ENDINGS):
            raise CommandError("refused", f"{key} cannot be set remotely (edit agent.toml)")
        if looks_secret(key):
            raise CommandError("refused", f"{key} looks secret: never sent over MQTT")


def patched(
    overrides: Mapping[str, Any], set_: Mapping[str, Any], unset: list[str]
) -> dict[str, Any]:
    """The overlay after a ``set-config``: ``unset`` keys removed (with any below them), then
    ``set`` applied; a key set replaces every override below it."""
    out = dict(overrides)
    for key in [*unset, *set_]:
        for old in [k for k in out if k == key or k.startswith(key + ".")]:
            del out[old]
    out.update(set_)
    return out


def config_hash(config_file: Path | None, overrides: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration in effect: the file's bytes, and the overlay when there is
    one (``status.config_hash``, and ``set-config``'s acknowledgement)."""
    if config_file is None:
        return ""
    digest = hashlib.sha256(config_file.read_bytes())
    if overrides:
        digest.update(b"\0" + json.dumps(overrides, sort_keys=True).encode())
    return digest.hexdigest()


def needs_restart(old: AgentConfig, new: AgentConfig) -> list[str]:
    """The settings of ``RESTART`` that differ."""
    return changed(old, new, RESTART)


def redacted(cfg: AgentConfig) -> dict[str, Any]:
    """The configuration as JSON values, with any secret-looking value and URL credentials
    hidden (``get-config``)."""
    out: dict[str, Any] = _redact(cfg.model_dump(mode="json"), "")
    rmap = out.get("calibration", {}).get("radio_map")
    if rmap:  # a value per cell and receiver: said, not listed
        rmap["correction_db"] = {k: f"{len(v)} values" for k, v in rmap["correction_db"].items()}
    return out


def _redact(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if isinstance(value, str):
        if looks_secret(key):
            return "***"
        return redact_userinfo(value)
    return value
