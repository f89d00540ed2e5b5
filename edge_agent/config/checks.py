"""The step after validation: do the files and variables the configuration names exist?

Commands take it (``load_checked``); library code that only needs the settings (the pipeline)
does not, so it neither reads files nor the environment. Only the commands that connect to the
broker (``run``, ``replay --publish``) need the broker's secrets: the others (``consent``,
``erase``, ``scan`` …) work from a shell on the production config, where a systemd credential
is not there; ``check-config`` says what it could not check and how to.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_agent.config.loading import Validated, issue_at, read_text, validate
from edge_agent.config.sections import AgentConfig
from edge_agent.errors import CommandError, ConfigError, ConfigIssue, ConsentError
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.remote_config import path_for, read_overlay
from edge_agent.runtime.secrets import (
    bthome_keys_path,
    bthome_keys_problem,
    credential_path,
    store_secret_path,
    store_secret_problem,
)


def load_checked(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    secrets: bool = False,
    credentials: bool = True,
) -> AgentConfig:
    """``load_config`` and then ``environment_issues``: every problem of either in one
    ``ConfigError``. With ``secrets`` (commands that connect to the broker), the broker's
    password and TLS files must be there too; without ``credentials``, a systemd credential
    outside systemd is left for ``unchecked_secrets`` to mention."""
    return check(path, overrides, secrets=secrets, credentials=credentials).config


def check(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    secrets: bool = False,
    credentials: bool = True,
    remote: bool = True,
) -> Validated:
    """``load_checked``, keeping the warnings (``Validated.warnings``) for the caller to show.
    With ``remote``, the overlay in the state directory (``set-config``) applies on top of the
    file, and ``overrides`` on top of both."""
    path = Path(path)
    text = read_text(path)
    checked = validate(text, source=str(path), base_dir=path.parent, overrides=overrides)
    overlay: dict[str, Any] = {}
    try:
        if remote:
            overlay = read_overlay(checked.config.gateway.state_dir).overrides
    except CommandError as err:
        checked.warnings.append(ConfigIssue("", f"{err.reason}: ignored (remove it)"))
    if overlay:
        source = f"{path} with {path_for(checked.config.gateway.state_dir)}"
        merged = {**overlay, **(overrides or {})}
        checked = validate(text, source=source, base_dir=path.parent, overrides=merged)
    issues = checked.issues + list(
        environment_issues(checked, secrets=secrets, credentials=credentials)
    )
    if issues:
        raise ConfigError(str(path), issues)
    return checked


def unchecked_secrets(cfg: AgentConfig) -> list[str]:
    """What ``check-config`` cannot check from here: systemd credentials outside systemd, with
    the command that checks them as the service will see them."""
    names = [
        (key, name)
        for key, name in (
            ("mqtt.password_credential", cfg.mqtt.password_credential),
            ("mqtt.tls.key_credential", cfg.mqtt.tls.key_credential),
            ("sensors.bthome_keys_credential", cfg.sensors.bthome_keys_credential),
        )
        if name is not None and credential_path(name) is None
    ]
    return [
        f"{key} = {name!r}: not checked here ($CREDENTIALS_DIRECTORY is not set: systemd sets "
        f"it for the service). To check it as the service will: systemd-run --pipe --wait "
        f"-p LoadCredential={name}:/etc/edge-agent/{name} edge-agent check-config FILE"
        for key, name in names
    ]


def environment_issues(
    checked: Validated, *, secrets: bool = True, credentials: bool = True
) -> Iterable[ConfigIssue]:
    """Files that must exist or be readable, variables that must be set, the consent list; the
    broker's secrets only with ``secrets`` (systemd credentials only with ``credentials``)."""
    cfg, lines = checked.config, checked.lines

    def issue(loc: tuple[str | int, ...], value: object, message: str) -> ConfigIssue:
        return issue_at(loc, value, message, lines)

    src = cfg.source
    for key, file, kind in (("scenario", src.scenario, "sim"), ("path", src.path, "replay")):
        # a replay may read a pipe (a recording streamed in); a directory is never a file
        if src.kind == kind and file is not None and (not file.exists() or file.is_dir()):
            yield issue(("source", key), str(file), "file not found")
    try:
        load_consents(cfg.consent_path)
    except ConsentError as err:
        yield issue(("privacy", "consent_file"), str(cfg.consent_path), err.reason)
    if not secrets:
        return
    m = cfg.mqtt
    if m.password_file is not None and not os.access(m.password_file, os.R_OK):
        yield issue(("mqtt", "password_file"), str(m.password_file), "file cannot be read")
    if m.password_env is not None and m.password_env not in os.environ:
        yield issue(("mqtt", "password_env"), m.password_env, "environment variable is not set")
    if m.password_credential is not None:
        cred = credential_path(m.password_credential)
        if cred is None and credentials:
            yield issue(
                ("mqtt", "password_credential"),
                m.password_credential,
                "$CREDENTIALS_DIRECTORY is not set: run under systemd with "
                f"LoadCredential={m.password_credential}:<file> (from a shell: systemd-run "
                f"--pipe --wait -p LoadCredential={m.password_credential}:<file> edge-agent …), "
                "or use password_file",
            )
        elif cred is not None and not os.access(cred, os.R_OK):
            yield issue(("mqtt", "password_credential"), m.password_credential, "cannot be read")
    priv, sens = cfg.privacy, cfg.sensors
    # secrets kept in a file or a systemd credential: (section, what, file, credential, path,
    # why the file cannot serve)
    kept: list[
        tuple[str, str, Path | None, str | None, Path | None, Callable[[Path], str | None]]
    ] = [
        ("privacy", "store_secret", priv.store_secret_file, priv.store_secret_credential,
         store_secret_path(priv), store_secret_problem),
        ("sensors", "bthome_keys", sens.bthome_keys_file, sens.bthome_keys_credential,
         bthome_keys_path(sens), bthome_keys_problem),
    ]  # fmt: skip
    for section, what, named_file, cred_name, where, problem_of in kept:
        if cred_name is not None and credentials and credential_path(cred_name) is None:
            yield issue(
                (section, f"{what}_credential"),
                cred_name,
                "$CREDENTIALS_DIRECTORY is not set: run under systemd with "
                f"LoadCredential={cred_name}:<file>, or use {what}_file",
            )
        if where is not None and (problem := problem_of(where)) is not None:
            key = f"{what}_file" if named_file else f"{what}_credential"
            yield issue((section, key), str(where), problem)
    for key in ("ca_file", "cert_file", "key_file"):
        file = getattr(m.tls, key)
        if file is not None and not os.access(file, os.R_OK):
            yield issue(("mqtt", "tls", key), str(file), "file cannot be read")
