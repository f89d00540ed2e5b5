"""Secrets the configuration names but never holds: the broker password and the TLS key, read
from a file, a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``) or a variable. Never logged."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.config import MqttConfig, MqttTlsConfig


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
