"""The command line's words: every command, its flags and their types. A bad flag is reported
as that flag (exit 2) before anything runs; ``cli`` carries the commands out."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from edge_agent import __version__
from edge_agent.models import DeviceClass

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _number(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above ``minimum`` (or equal, ``inclusive``), so that a
    bad flag is reported as that flag, before anything runs."""
    words = f"{'at least' if inclusive else 'above'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {words}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a number {words}, got {text!r}")
        return value

    return parse


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


POSITIVE = _number(0.0, inclusive=False)
NON_NEGATIVE = _number(0.0, inclusive=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs test)."""
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge sensor agent for retail stores: BLE beacons and sensors in, "
        "situational context out over MQTT. Every command exits 0 when it did what was asked, "
        "1 when it could not, 2 on a bad configuration or flag.",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the agent (the systemd service)")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.add_argument("--log-level", choices=LOG_LEVELS)
    p.add_argument(
        "--drain-timeout",
        type=NON_NEGATIVE,
        default=30.0,
        help="seconds to wait for the outbox to drain when a finite source ends",
    )
    p.set_defaults(command="run")

    p = sub.add_parser("check-config", help="validate a configuration file (exit 0 or 2)")
    p.add_argument("file", nargs="?", help="the configuration (or --config, as elsewhere)")
    p.add_argument("--config", "-c", dest="config_flag", help="the configuration")
    p.set_defaults(command="check-config")

    p = sub.add_parser("demo", help="the simulated store through the agent, with a live view")
    p.add_argument("--config", "-c", default="config/agent.toml")
    p.add_argument("--scenario", help="store scenario (default: the config's source.scenario)")
    p.add_argument(
        "--duration",
        type=POSITIVE,
        default=None,
        help="stop this many real seconds after the store is up (default: until Ctrl-C)",
    )
    p.add_argument(
        "--store-time",
        type=POSITIVE,
        default=None,
        help="stop after this many simulated seconds of the store, however long they take",
    )
    p.add_argument(
        "--speed", type=NON_NEGATIVE, default=5.0, help="simulated seconds per real second"
    )
    p.add_argument("--broker", help="use this broker URL instead of starting a local mosquitto")
    p.add_argument("--seed", type=int)
    p.set_defaults(command="demo")

    p = sub.add_parser(
        "get-config", help="print the effective configuration as JSON (holds no secrets)"
    )
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.set_defaults(command="get-config")

    p = sub.add_parser("consent", help="record, revoke or list device consents")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("add", help="a device's owner consented: track it under a stable id")
    c.add_argument("device", help="Bluetooth address or beacon id the device is recognised by")
    c.add_argument("--id", required=True, help="stable id to publish it under")
    c.add_argument("--kind", default="shopper", choices=[k.value for k in DeviceClass])
    c = csub.add_parser("revoke", help="withdraw consent; the device's buffered events go")
    c.add_argument("device", help="the device's id, address or beacon id")
    c = csub.add_parser("list", help="list consents (addresses hidden)")
    c.add_argument("--show-addresses", action="store_true", help="show addresses (local use only)")
    p.set_defaults(command="consent")

    p = sub.add_parser("erase", help="erase everything buffered and tracked for a device")
    p.add_argument("device", help="wire id (e.g. p-1a2b…), address or beacon id")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.set_defaults(command="erase")

    p = sub.add_parser("scan", help="live table of nearby devices (field engineers)")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.add_argument("--json", action="store_true", help="one JSON array of devices per refresh")
    p.add_argument("--sort", choices=["distance", "rssi", "id", "last"], default="distance")
    p.add_argument("--interval", type=POSITIVE, default=1.0, help="refresh every N seconds")
    p.add_argument("--duration", type=POSITIVE, help="stop after N seconds (default: Ctrl-C)")
    p.add_argument("--limit", type=_count, default=40, help="rows shown (table only)")
    p.add_argument(
        "--show-addresses",
        action="store_true",
        help="also show raw addresses and local names (on site only; never in tickets)",
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING")
    p.set_defaults(command="scan")

    p = sub.add_parser("record", help="write advertisements to a JSONL recording")
    p.add_argument("file")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.add_argument("--duration", type=POSITIVE, help="stop after N seconds of source time")
    p.add_argument("--count", type=_count, help="stop after N adverts")
    p.add_argument(
        "--raw-addresses",
        action="store_true",
        help="keep every real address (default: unregistered ones are pseudonymised)",
    )
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING")
    p.set_defaults(command="record")

    p = sub.add_parser("replay", help="feed a recording or capture CSV through the pipeline")
    p.add_argument("file", help="recording (.jsonl) or capture (.csv)")
    p.add_argument("--config", "-c", help="agent config (default: built-in, no zones)")
    p.add_argument("--speed", type=NON_NEGATIVE, default=0.0, help="0 = as fast as possible")
    p.add_argument("--estimates", help="write per-sample and fused estimates (JSONL)")
    p.add_argument("--events", help="write the context events (JSONL)")
    p.add_argument("--receivers", help="receiver positions (JSON) for fused x, y")
    p.add_argument("--calibration", help="calibration TOML (edge-agent calibrate) to apply")
    p.add_argument("--publish", action="store_true", help="publish to the config's broker")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING")
    p.set_defaults(command="replay")

    p = sub.add_parser("eval", help="score our filter and the peers' on captures with truth")
    p.add_argument("captures", nargs="*", help="capture CSVs with truth columns")
    p.add_argument("--receivers", help="receiver positions (JSON), for captures")
    p.add_argument("--store", help="instead: score zones on this simulated store scenario")
    p.add_argument(
        "--moments", help="instead: score the config's moments and aggregates on this scenario"
    )
    p.add_argument(
        "--duration",
        type=POSITIVE,
        help="simulated seconds (default: 600 with --store, 3600 with --moments)",
    )
    p.add_argument("--seed", type=int, help="scenario seed (--store, --moments)")
    p.add_argument("--config", "-c", help="take [proximity.filter] from this config")
    p.set_defaults(command="eval")

    p = sub.add_parser(
        "calibrate", help="fit receivers from captures with truth, or interactively on site"
    )
    p.add_argument("--from", dest="captures", nargs="+", help="capture CSVs with truth")
    p.add_argument("--receivers", help="receiver positions (JSON), with --from")
    p.add_argument(
        "--interactive", action="store_true", help="hold a beacon at known distances on site"
    )
    p.add_argument("--device", help="the beacon held (its id as scan shows it), --interactive")
    p.add_argument("--distances", default="1,2,4,8", help="metres, in order (default 1,2,4,8)")
    p.add_argument("--seconds", type=POSITIVE, default=20.0, help="recorded per distance")
    p.add_argument("--receiver", help="receiver held against (default: loudest at the first)")
    p.add_argument("--out", required=True, help="calibration TOML to write")
    p.add_argument(
        "--radio-map",
        action="store_true",
        help="with --from: also fit the survey's radio map (fusion's shadowing, per place)",
    )
    p.add_argument("--config", "-c", help="take [proximity] (filter, tx power) from this config")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="WARNING")
    p.set_defaults(command="calibrate")

    p = sub.add_parser("status", help="the running agent's state, or why it is not running")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.add_argument("--json", action="store_true", help="as JSON, for programs")
    p.set_defaults(command="status")

    p = sub.add_parser("doctor", help="check BlueZ, adapters, broker, disk and clock; say the fix")
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.set_defaults(command="doctor")

    p = sub.add_parser(
        "bench", help="capacity check on this gateway: each stage's rate on a synthetic store"
    )
    p.add_argument("--config", "-c", default="/etc/edge-agent/agent.toml")
    p.add_argument(
        "--devices", type=_count, default=1_000, help="devices of the synthetic store (1000)"
    )
    p.add_argument(
        "--seconds", type=POSITIVE, default=30.0, help="store time measured, seconds (30)"
    )
    p.add_argument(
        "--broker",
        choices=["local", "config", "none"],
        default="local",
        help="publish stage: a private mosquitto on loopback (default), the configured broker "
        "(under the edge-agent-bench/ prefix), or none",
    )
    p.add_argument("--json", action="store_true", help="as JSON, for programs")
    p.set_defaults(command="bench")

    p = sub.add_parser("schema", help="write JSON Schemas and the AsyncAPI document")
    p.add_argument("--out", default="contract")
    p.set_defaults(command="schema")
    return parser
