"""One root exception, with subclasses that carry the data a caller needs to act on."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.ids import looks_secret


class EdgeAgentError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(slots=True, frozen=True)
class ConfigIssue:
    """One problem found in a configuration file."""

    path: str
    """Dotted TOML key path, e.g. ``mqtt.keepalive_s`` or ``zones[2].radius_m``."""
    message: str
    """Why the value is rejected, in words a field engineer can act on."""
    value: object = None
    """The offending value as read from the file (``None`` when the key is missing)."""
    line: int | None = None
    """1-based line in the file where the key (or its table) stands, when it can be found."""
    has_value: bool = True
    """False when the key is missing altogether, so there is no value to show."""

    def render(self, source: str) -> str:
        """Format as ``FILE:LINE: key = value: reason`` (parts left out when unknown). The
        value of a key whose name looks secret is never shown, and a long one is cut."""
        where = f"{source}:{self.line}" if self.line else source
        if not self.path:
            return f"{where}: {self.message}"
        shown = ""
        if self.has_value:
            shown = " = (hidden: the key looks secret)" if looks_secret(self.path) else ""
            shown = shown or f" = {_cut(repr(_hide_secrets(self.value)))}"
        return f"{where}: {self.path}{shown}: {self.message}"


MAX_SHOWN = 120
"""Characters of a value shown in an error."""
MAX_ISSUES = 50
"""Issues listed in one report; the rest are counted."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:100]}… ({len(text)} characters)"


def _hide_secrets(value: object) -> object:
    """A table's entries whose keys look secret, hidden."""
    if isinstance(value, dict):
        return {
            k: "(hidden)" if looks_secret(str(k)) else _hide_secrets(v) for k, v in value.items()
        }
    return value


def report_lines(source: str, issues: list[ConfigIssue]) -> list[str]:
    """Every issue rendered, at most ``MAX_ISSUES`` of them, then how many more there are."""
    out = [issue.render(source) for issue in issues[:MAX_ISSUES]]
    if len(issues) > MAX_ISSUES:
        out.append(f"… and {len(issues) - MAX_ISSUES} more")
    return out


class ConfigError(EdgeAgentError):
    """The configuration cannot be used; carries every issue found, not only the first."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__("\n".join(report_lines(source, issues)))


class OutboxError(EdgeAgentError):
    """The SQLite outbox cannot be opened or written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"outbox {path}: {reason}")


class PublishError(EdgeAgentError):
    """The broker refused or dropped a connection or a publish."""

    def __init__(self, broker: str, reason: str) -> None:
        self.broker = broker
        self.reason = reason
        super().__init__(f"broker {broker}: {reason}")


class SourceError(EdgeAgentError):
    """An advertisement source cannot start or has failed."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"source {source}: {reason}")


class ScenarioError(EdgeAgentError):
    """A simulated-store scenario file is invalid."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"scenario {path}: {reason}")


class ConsentError(EdgeAgentError):
    """The consent list cannot be read, parsed or changed as asked."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"consent list {path}: {reason}")


class ControlError(EdgeAgentError):
    """A command to the running agent over its control socket failed."""

    def __init__(self, socket_path: str, reason: str) -> None:
        self.socket_path = socket_path
        self.reason = reason
        super().__init__(f"control socket {socket_path}: {reason}")


class CalibrationError(EdgeAgentError):
    """A calibration cannot be fitted from what was recorded."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"calibration of {subject}: {reason}")


class CommandError(EdgeAgentError):
    """A remote command was refused or failed; its result carries ``code`` and the reason."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        """``bad_request``, ``unknown_command``, ``replayed``, ``too_large``, ``invalid_config``,
        ``needs_restart``, ``busy``, ``failed`` or ``timeout``."""
        self.reason = reason
        super().__init__(f"{code}: {reason}")
