"""Secrets the configuration names but never holds: the broker password and the TLS key, read
from a file, a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``) or a variable. Never logged."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edge_agent.config import MqttConfig, MqttTlsConfig, PrivacyConfig, SensorsConfig
from edge_agent.errors import ConfigError, ConfigIssue


def credential_path(name: str | None) -> Path | None:
    """Where the systemd credential ``name`` is (``None`` when none is named, or outside
    systemd: ``$CREDENTIALS_DIRECTORY`` not set)."""
    base = os.environ.get("CREDENTIALS_DIRECTORY")
    if name is None or not base:
        return None
    return Path(base) / name


def mqtt_password(m: MqttConfig) -> str | None:
    """The broker password from its file, credential or environment variable."""
    path = m.password_file or credential_path(m.password_credential)
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    if m.password_env is not None:
        return os.environ.get(m.password_env)
    return None


def tls_key_path(tls: MqttTlsConfig) -> Path | None:
    """The client certificate's private key: ``key_file``, or the credential ``key_credential``."""
    return tls.key_file if tls.key_file is not None else credential_path(tls.key_credential)


MIN_STORE_SECRET = 16
"""Bytes a store secret must have at least."""


def store_secret_path(p: PrivacyConfig) -> Path | None:
    """Where the store's pseudonym secret is: its file or its systemd credential."""
    return p.store_secret_file or credential_path(p.store_secret_credential)


def private_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a secret: unreadable, or readable by others (a systemd
    credential is private by construction), or ``None``."""
    try:
        st = path.stat()
        path.read_bytes()
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    in_credentials = creds is not None and path.parent == Path(creds)
    if st.st_mode & 0o077 and not in_credentials:
        return f"is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it"
    return None


def store_secret_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the store secret (unreadable, readable by others, too
    short), or ``None``."""
    if (problem := private_file_problem(path)) is not None:
        return problem
    size = len(path.read_bytes().strip())
    if size < MIN_STORE_SECRET:
        return f"has {size} bytes; a store secret needs at least {MIN_STORE_SECRET}"
    return None


def store_secret(p: PrivacyConfig) -> bytes | None:
    """The store's pseudonym secret, or ``None`` when none is configured. Raises
    ``ConfigError`` naming the key when it is configured but unusable."""
    path = store_secret_path(p)
    if path is None:
        return None
    problem = store_secret_problem(path)
    if problem is not None:
        key = "store_secret_file" if p.store_secret_file else "store_secret_credential"
        raise ConfigError(str(path), [ConfigIssue(f"privacy.{key}", problem, None, None, False)])
    return path.read_bytes().strip()


_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")


def bthome_keys_path(s: SensorsConfig) -> Path | None:
    """Where the BTHome bind keys are: their file or their systemd credential."""
    return s.bthome_keys_file or credential_path(s.bthome_keys_credential)


def parse_bthome_keys(text: str) -> tuple[dict[str, bytes], list[str]]:
    """Bind keys by MAC from the keys file's text, and the problems found, each naming its
    line (never its key): ``AA:BB:CC:DD:EE:FF <32 hex digits>`` per line, ``#`` comments."""
    keys: dict[str, bytes] = {}
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            problems.append(f"line {n}: expected a MAC and a key, found {len(words)} words")
        elif not _MAC.match(words[0]):
            problems.append(f"line {n}: {words[0][:17]!r} is not a MAC (AA:BB:CC:DD:EE:FF)")
        elif not _KEY.match(words[1]):
            problems.append(f"line {n}: the key is not 32 hexadecimal digits")
        elif words[0].upper() in keys:
            problems.append(f"line {n}: {words[0].upper()} has a key already")
        else:
            keys[words[0].upper()] = bytes.fromhex(words[1])
    return keys, problems


def bthome_keys_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the bind-keys file, or ``None``."""
    if (problem := private_file_problem(path)) is not None:
        return problem
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "is not a text file"
    _, problems = parse_bthome_keys(text)
    return "; ".join(problems[:5]) or None


def bthome_keys(s: SensorsConfig) -> dict[str, bytes]:
    """The BTHome bind keys by MAC (none when no file or credential is named). Raises
    ``ConfigError`` naming the key when they are named but unusable."""
    path = bthome_keys_path(s)
    if path is None:
        return {}
    problem = bthome_keys_problem(path)
    if problem is not None:
        key = "bthome_keys_file" if s.bthome_keys_file else "bthome_keys_credential"
        raise ConfigError(str(path), [ConfigIssue(f"sensors.{key}", problem, None, None, False)])
    return parse_bthome_keys(path.read_text(encoding="utf-8"))[0]
