"""TLS for the broker connection: the client context, and errors a field engineer can act on.

The broker's certificate is always verified (a CA file, or the system's CAs) and its name always
checked; TLS 1.2 is the oldest version offered. A client certificate makes it mutual TLS.
"""

from __future__ import annotations

import ssl
from typing import Any

from edge_agent.config import MqttTlsConfig
from edge_agent.errors import ConfigError, ConfigIssue
from edge_agent.runtime.secrets import tls_key_path


class _NamedContext(ssl.SSLContext):
    """A client context that checks the broker's certificate against a fixed name."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        if self.server_name is not None:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def client_context(tls: MqttTlsConfig) -> ssl.SSLContext:
    """The context for ``mqtts://`` URLs; ``ConfigError`` naming the key when a file is bad."""
    ctx = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks names by default
    ctx.server_name = tls.server_name
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    key = "mqtt.tls.ca_file"
    try:
        if tls.ca_file is not None:
            ctx.load_verify_locations(cafile=str(tls.ca_file))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        key = "mqtt.tls.cert_file"
        if tls.cert_file is not None:
            key_path = tls_key_path(tls)
            ctx.load_cert_chain(str(tls.cert_file), str(key_path) if key_path else None)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            "mqtt.tls", [ConfigIssue(key, f"cannot be loaded: {_reason(err)}", has_value=False)]
        ) from err
    return ctx


def _reason(err: BaseException) -> str:
    if isinstance(err, ssl.SSLError) and err.reason:
        return str(err.reason).replace("_", " ").lower()
    return str(err)


def explain(err: BaseException | str, mutual: bool) -> str:
    """A TLS failure in words that say what to check."""
    text = str(err)
    if isinstance(err, ssl.SSLCertVerificationError):
        return (
            f"TLS: the broker's certificate was not accepted ({err.verify_message}); "
            "check mqtt.tls.ca_file, and that the URL host (or mqtt.tls.server_name) is a "
            "name in the certificate"
        )
    low = text.lower()
    if "certificate required" in low or ("handshake failure" in low and not mutual):
        return (
            f"TLS: the broker requires a client certificate and we sent none ({text}); "
            "set mqtt.tls.cert_file and mqtt.tls.key_file"
        )
    if "unknown ca" in low or "bad certificate" in low or "certificate unknown" in low:
        return (
            f"TLS: the broker refused our client certificate ({text}); check that "
            "mqtt.tls.cert_file is signed by a CA the broker trusts"
        )
    if "wrong version number" in low or "unsupported protocol" in low:
        return f"TLS: no common protocol ({text}); is this a TLS port (mqtts://)?"
    return f"TLS: {text}"
