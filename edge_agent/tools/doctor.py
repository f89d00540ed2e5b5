"""``edge-agent doctor``: looks at what the agent needs on this machine — BlueZ and the
adapters, the bluetooth group, the broker (TLS included), the state directory, the clock, the
numba cache — and says what to fix. Every check has a timeout; none changes anything."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.config.loading import radio_receivers
from edge_agent.config.sections import broker_address
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.sources.bluez import BluezWatch
from edge_agent.runtime.tls import client_context, explain

TIMEOUT_S = 5.0
OLDEST_PLAUSIBLE = 1_735_689_600.0  # 2025-01-01: a clock before this has not been set


@dataclass(slots=True, frozen=True)
class Finding:
    """One check's outcome."""

    check: str
    """What was looked at."""
    ok: bool
    """Whether it is as the agent needs it."""
    detail: str
    """What was seen."""
    fix: str = ""
    """What to do when it is not (a command where there is one)."""


def examine(cfg: AgentConfig) -> list[Finding]:
    """Every check, in the order a field engineer fixes things."""
    out: list[Finding] = []
    if cfg.source.kind == "bleak":
        out += asyncio.run(_bluez(cfg))
        out.append(_bluetooth_group())
    out += [_broker(url, cfg) for url in cfg.mqtt.urls]
    out.append(_state_dir(cfg.gateway.state_dir))
    out.append(_clock())
    out.append(_numba_cache())
    return out


async def _bluez(cfg: AgentConfig) -> list[Finding]:
    watch = BluezWatch()
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await watch.first_look.wait()
    except TimeoutError:
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if not watch.bus_connected:
        return [
            Finding("D-Bus", False, "the system bus cannot be reached", "systemctl status dbus")
        ]
    if watch.owner is None:
        return [
            Finding(
                "BlueZ",
                False,
                "bluetoothd is not running",
                "apt-get install -y bluez && systemctl enable --now bluetooth",
            )
        ]
    found = [Finding("BlueZ", True, f"running ({len(watch.adapters)} adapter(s))")]
    for name in radio_receivers(cfg) or cfg.source.adapters:
        if name not in watch.adapters:
            found.append(
                Finding(
                    f"adapter {name}",
                    False,
                    "not present",
                    "check the dongle (lsusb, rfkill list, hciconfig -a)",
                )
            )
        elif not watch.adapters[name]:
            found.append(
                Finding(
                    f"adapter {name}",
                    False,
                    "powered off",
                    f"bluetoothctl power on (the agent also tries, for {name})",
                )
            )
        else:
            found.append(Finding(f"adapter {name}", True, "present and powered"))
    return found


def _bluetooth_group() -> Finding:
    try:
        grp.getgrnam("bluetooth")
    except KeyError:
        return Finding(
            "bluetooth group",
            False,
            "missing: the service joins it to use BlueZ",
            "apt-get install -y bluez (it creates the group)",
        )
    return Finding("bluetooth group", True, "present (the service joins it)")


def _broker(url: str, cfg: AgentConfig) -> Finding:
    host, port, tls = broker_address(url)
    name = f"broker {host}:{port}"
    try:
        with socket.create_connection((host, port), TIMEOUT_S) as sock:
            if tls:
                with client_context(cfg.mqtt.tls).wrap_socket(sock, server_hostname=host) as t:
                    return Finding(name, True, f"reachable, TLS {t.version()} verified")
    except ssl.SSLError as err:
        return Finding(
            name,
            False,
            explain(err, cfg.mqtt.tls.cert_file is not None),
            "check mqtt.tls (ca_file, server_name, cert_file, key_file)",
        )
    except EdgeAgentError as err:
        return Finding(name, False, str(err), "check mqtt.tls")
    except OSError as err:
        return Finding(
            name,
            False,
            f"cannot connect: {err.strerror or err}",
            "is the broker up, and the port open from here?",
        )
    return Finding(name, True, "reachable")


def _directory(check: str, path: Path, made_by: str) -> Finding | None:
    """A finding when ``path`` is not there (fine: ``made_by`` makes it) or not writable."""
    if not path.exists():
        return Finding(
            check, True, f"{path}: not there yet ({made_by} makes it at the first start)"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        return Finding(check, False, f"{path}: {err.strerror or err}", f"{made_by} makes it")
    return None


def _state_dir(path: Path) -> Finding:
    found = _directory("state directory", path, "the unit's StateDirectory=")
    if found is not None:
        return found
    free = shutil.disk_usage(path).free / 2**20
    if free < 64:
        return Finding(
            "state directory",
            False,
            f"{path}: only {free:.0f} MiB free",
            "free space: the outbox holds events while the broker is away",
        )
    return Finding("state directory", True, f"{path}: writable, {free:,.0f} MiB free")


def _clock(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> Finding:
    now = time.time()
    if now < OLDEST_PLAUSIBLE:
        return Finding(
            "clock",
            False,
            f"says {time.strftime('%Y-%m-%d', time.gmtime(now))}",
            "timedatectl set-ntp true (event times and daily keys need it)",
        )
    try:
        shown = run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return Finding("clock", True, "plausible (NTP state unknown: no timedatectl)")
    if shown.stdout.strip() == "no":
        return Finding("clock", False, "not synchronised by NTP", "timedatectl set-ntp true")
    return Finding(
        "clock", True, "plausible" + (", NTP synchronised" if shown.stdout.strip() == "yes" else "")
    )


def _numba_cache() -> Finding:
    where = os.environ.get("NUMBA_CACHE_DIR")
    if not where:
        return Finding("numba cache", True, "next to the package (NUMBA_CACHE_DIR not set)")
    path = Path(where)
    found = _directory("numba cache", path, "the unit's CacheDirectory=")
    if found is not None:
        return found
    warm = any(path.rglob("*.nbi"))
    return Finding(
        "numba cache",
        True,
        f"{path}: writable, "
        + ("warm" if warm else "cold (the first start compiles the kernels, a few seconds)"),
    )


def render(findings: list[Finding]) -> str:
    """The report: a line per check, and what to do under each problem."""
    lines = []
    for f in findings:
        lines.append(f"{'ok  ' if f.ok else 'FIX '} {f.check}: {f.detail}")
        if not f.ok and f.fix:
            lines.append(f"     → {f.fix}")
    bad = sum(not f.ok for f in findings)
    lines.append("all good" if not bad else f"{bad} thing(s) to fix")
    return "\n".join(lines)
