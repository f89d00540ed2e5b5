"""The step after validation: do the files and variables the configuration names exist?

``check-config`` and ``run`` take it (``load_checked``); library code that only needs the
settings (the pipeline, the tools) does not, so it neither reads files nor the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config.loading import Validated, issue_at, read_text, validate
from edge_agent.config.sections import AgentConfig
from edge_agent.errors import ConfigError, ConfigIssue, ConsentError
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.secrets import credential_path


def load_checked(path: str | Path, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """``load_config`` and then ``environment_issues``: every problem of either in one
    ``ConfigError``."""
    path = Path(path)
    checked = validate(read_text(path), source=str(path), base_dir=path.parent, overrides=overrides)
    issues = checked.issues + list(environment_issues(checked))
    if issues:
        raise ConfigError(str(path), issues)
    return checked.config


def environment_issues(checked: Validated) -> Iterable[ConfigIssue]:
    """Files that must exist or be readable, variables that must be set, the consent list."""
    cfg, lines = checked.config, checked.lines

    def issue(loc: tuple[str | int, ...], value: object, message: str) -> ConfigIssue:
        return issue_at(loc, value, message, lines)

    src = cfg.source
    for key, file in (("scenario", src.scenario), ("path", src.path)):
        if file is not None and not file.is_file():
            yield issue(("source", key), str(file), "file not found")
    m = cfg.mqtt
    if m.password_file is not None and not os.access(m.password_file, os.R_OK):
        yield issue(("mqtt", "password_file"), str(m.password_file), "file cannot be read")
    if m.password_env is not None and m.password_env not in os.environ:
        yield issue(("mqtt", "password_env"), m.password_env, "environment variable is not set")
    if m.password_credential is not None:
        cred = credential_path(m.password_credential)
        if cred is None:
            yield issue(
                ("mqtt", "password_credential"),
                m.password_credential,
                "$CREDENTIALS_DIRECTORY is not set: run under systemd with "
                f"LoadCredential={m.password_credential}:<file>, or use password_file",
            )
        elif not os.access(cred, os.R_OK):
            yield issue(("mqtt", "password_credential"), m.password_credential, "cannot be read")
    for key in ("ca_file", "cert_file", "key_file"):
        file = getattr(m.tls, key)
        if file is not None and not os.access(file, os.R_OK):
            yield issue(("mqtt", "tls", key), str(file), "file cannot be read")
    try:
        load_consents(cfg.consent_path)
    except ConsentError as err:
        yield issue(("privacy", "consent_file"), str(cfg.consent_path), err.reason)
