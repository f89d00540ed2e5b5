"""Secrets the configuration names but never holds: the broker password and the TLS key, read
from a file, a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``) or a variable. Never logged."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.config import MqttConfig, MqttTlsConfig, PrivacyConfig
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


def store_secret_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the store secret (unreadable, readable by others, too
    short), or ``None``."""
    try:
        st = path.stat()
        size = len(path.read_bytes().strip())
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    in_credentials = creds is not None and path.parent == Path(creds)
    if st.st_mode & 0o077 and not in_credentials:
        return f"is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it"
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
