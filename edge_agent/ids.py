"""Ids and topic segments: the patterns they must match, in one place, and how a device is
recognised (a Bluetooth address or a beacon id). Pure: no I/O."""

from __future__ import annotations

import re

SEGMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RECEIVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
BEACON_PATTERN = (
    r"^(ibeacon:[0-9a-f-]{36}:\d{1,5}:\d{1,5}|altbeacon:[0-9a-f]{40}"
    r"|eddystone:[0-9a-f]{20}:[0-9a-f]{12})$"
)
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"

PATTERN_MESSAGES = {
    SEGMENT_PATTERN: "must be 1–64 lowercase letters, digits, '-' or '_', starting with a "
    "letter or digit (it becomes an MQTT topic segment)",
    RECEIVER_PATTERN: "must be 1–64 letters, digits, '.', ':', '-' or '_'",
    MAC_PATTERN: "must be a Bluetooth address like 'AA:BB:CC:DD:EE:FF'",
    UUID_PATTERN: "must be a lowercase UUID like '2f234454-cf6d-4a0f-adf2-f4911ba9ffa6'",
    BEACON_PATTERN: "must be a beacon id: 'ibeacon:<uuid>:<major>:<minor>', "
    "'altbeacon:<40 hex digits>' or 'eddystone:<namespace>:<instance>'",
    ENV_PATTERN: "must be an environment variable name",
    TIME_PATTERN: "must be a time of day 'HH:MM' or 'HH:MM:SS' (00:00 to 23:59:59)",
    r"^hci\d{1,2}$": "must be a BlueZ adapter name like 'hci0'",
}
"""What a value that does not match a pattern must be, in words a field engineer can act on."""

BEACON_PREFIXES = ("ibeacon:", "altbeacon:", "eddystone:")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}$")  # also without separators
_BEACON = re.compile(BEACON_PATTERN)


def is_address(match: str) -> bool:
    """True when a normalised match is a Bluetooth address, False for a beacon id."""
    return not match.startswith(BEACON_PREFIXES)


def normalise_match(value: str) -> str:
    """An address in canonical form (``AA:BB:CC:DD:EE:FF``) or a beacon id, or ``ValueError``."""
    value = value.strip()
    if _MAC.match(value):
        digits = re.sub(r"[:-]", "", value).upper()
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if _BEACON.match(value.lower()):
        return value.lower()
    raise ValueError(
        f"{value!r} is neither a Bluetooth address (AA:BB:CC:DD:EE:FF) nor a beacon id "
        "(ibeacon:<uuid>:<major>:<minor>, altbeacon:<40 hex>, eddystone:<ns>:<instance>)"
    )


_REFERENCE = frozenset({"file", "env", "credential", "path", "dir", "name"})
"""A key ending in one of these names where a secret is kept, not the secret itself."""
_SECRET = frozenset({"key", "keys", "psk", "bindkey", "bindkeys", "apikey", "pin", "pwd"})
_SECRET_PREFIXES = ("pass", "pasw", "secret", "token", "private", "credentials")


def looks_secret(key: str) -> bool:
    """True when a configuration key's name says its value may be a secret (``password``,
    ``bind_key``, ``token`` …): its value is then never shown, in an error or a log. A key
    that only names where a secret is (``password_file``, ``key_credential``) is not one."""
    for part in key.replace("-", "_").lower().split("."):
        words = [w for w in re.split(r"[^a-z0-9]+|_", part) if w]
        if not words or words[-1] in _REFERENCE:
            continue
        if any(w in _SECRET or w.startswith(_SECRET_PREFIXES) for w in words):
            return True
    return False


_USERINFO = re.compile(r"(?<=://)[^/@\s']*@")


def redact_userinfo(text: str) -> str:
    """URLs in ``text`` with ``user:password@`` shown as ``***@``."""
    return _USERINFO.sub("***@", text)
