"""Thin commands over the library: run, demo, check-config, get-config, consent, erase, scan,
record, replay, eval, calibrate, status, doctor, bench, schema.

Each command reads its flags and calls library functions with typed arguments; ``_command``
turns what they raise into one message and an exit code (0 ok, 1 failed, 2 bad config or flags).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from edge_agent import topics
from edge_agent.cli_args import build_parser
from edge_agent.config import AgentConfig, FusionConfig, ProximityConfig
from edge_agent.config.checks import check, load_checked, unchecked_secrets
from edge_agent.errors import ConfigError, ControlError, EdgeAgentError, report_lines
from edge_agent.models import DeviceClass

_LOGGER = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class UsageError(EdgeAgentError):
    """Flags that do not go together; exits 2 like a bad configuration."""


Command = Callable[[argparse.Namespace], int]


def _command(name: str) -> Callable[[Command], Command]:
    """The one error handling of every command: a bad configuration or bad flags exit 2 with
    every problem listed; any other ``EdgeAgentError`` exits 1 with one line naming the
    command."""

    def wrap(fn: Command) -> Command:
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except ConfigError as err:
                print(f"{len(err.issues)} error(s) in {err.source}:", file=sys.stderr)
                for line in report_lines(err.source, err.issues):
                    print(f"  {line}", file=sys.stderr)
                return EXIT_CONFIG
            except UsageError as err:
                print(f"edge-agent {name}: {err}", file=sys.stderr)
                return EXIT_CONFIG
            except EdgeAgentError as err:
                print(f"edge-agent {name}: {err}", file=sys.stderr)
                return EXIT_FAILED

        run.__doc__ = fn.__doc__
        return run

    return wrap


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _optional_config(path: str | None) -> AgentConfig | None:
    return load_checked(path) if path else None


def _tell_agent(cfg: AgentConfig, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A request to the running agent; ``None`` when none runs."""
    from edge_agent.runtime.control import request

    reply = request(cfg.control_socket, payload)
    if reply is not None and not reply.get("ok"):
        raise ControlError(str(cfg.control_socket), str(reply.get("error")))
    return reply


def _erase_offline(cfg: AgentConfig, device: str) -> int:
    """No agent runs: remove the device's buffered events from the outbox file directly."""
    from edge_agent.pipeline.identity import Identity
    from edge_agent.runtime.consent import load_consents
    from edge_agent.runtime.outbox import Outbox
    from edge_agent.runtime.outbox_schema import OutboxLimits

    ids = Identity(cfg, consents=load_consents(cfg.consent_path)).ids_for(device)
    limits = OutboxLimits.from_config(cfg.outbox)
    with Outbox(cfg.outbox_path, cfg.gateway.id, cfg.topic_root, limits=limits) as box:
        return box.erase([t for d in ids for t in topics.device_topics(d)])


# ------------------------------------------------------------------------------ commands


@_command("check-config")
def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a configuration file; exit 0 when valid, 2 otherwise."""
    if (args.file is None) == (args.config_flag is None):
        raise UsageError("give the configuration file, as FILE or --config FILE")
    args.file = args.file or args.config_flag
    checked = check(args.file, secrets=True, credentials=False)
    cfg = checked.config
    for warning in checked.warnings:
        print(f"warning: {warning.render(args.file)}", file=sys.stderr)
    print(
        f"{args.file}: OK — gateway {cfg.gateway.id}, source {cfg.source.kind}, "
        f"{len(cfg.zones)} zone(s), {len(cfg.receivers)} receiver(s), "
        f"{len(cfg.devices)} device(s), topics under {cfg.topic_root}/"
    )
    for note in unchecked_secrets(cfg):
        print(f"  note: {note}")
    from edge_agent.runtime import remote_config

    remote = remote_config.current_overrides(cfg.gateway.state_dir)
    if remote:
        where = remote_config.path_for(cfg.gateway.state_dir)
        print(f"  note: set remotely (set-config, in {where}): {', '.join(sorted(remote))}")
    return EXIT_OK


@_command("get-config")
def cmd_get_config(args: argparse.Namespace) -> int:
    """Print the effective configuration (defaults filled in) as JSON. It holds no secret: a
    password is only ever named by file, credential or environment variable, never inline."""
    print(json.dumps(load_checked(args.config).model_dump(mode="json"), indent=2))
    return EXIT_OK


@_command("consent")
def cmd_consent(args: argparse.Namespace) -> int:
    """Add, revoke or list consents; the running agent applies the change at once."""
    from edge_agent.runtime.consent import add_consent, load_consents, revoke_consent

    cfg = load_checked(args.config)
    path = cfg.consent_path
    if args.action == "list":
        for c in load_consents(path):
            shown = c.match if (args.show_addresses or not c.is_address) else "(address)"
            added = time.strftime("%Y-%m-%d %H:%M", time.gmtime(c.added))
            print(f"{c.id}\t{c.kind.value}\t{added}\t{shown}")
        return EXIT_OK
    if args.action == "add":
        entry = add_consent(path, args.device, args.id, DeviceClass(args.kind))
        reply = _tell_agent(cfg, {"op": "reload_consents"})
        where = "applied by the running agent" if reply else "applied at the next start"
        print(f"consent recorded: {entry.id} ({entry.kind.value}); {where}")
        return EXIT_OK
    gone = revoke_consent(path, args.device)
    if gone is None:
        print(f"no consent found for {args.device!r} in {path}", file=sys.stderr)
        return EXIT_FAILED
    reply = _tell_agent(cfg, {"op": "reload_consents"})
    removed = reply["events_removed"] if reply else _erase_offline(cfg, gone.id)
    print(f"consent revoked: {gone.id}; {removed} buffered event(s) removed")
    return EXIT_OK


@_command("erase")
def cmd_erase(args: argparse.Namespace) -> int:
    """Erase everything buffered and tracked for one device (right of erasure); exit 1 when
    nothing was known about an id that is not a registered device's (likely a typo)."""
    from edge_agent.runtime.consent import load_consents

    cfg = load_checked(args.config)
    reply = _tell_agent(cfg, {"op": "erase", "device": args.device})
    if reply is None:
        removed = forgotten = _erase_offline(cfg, args.device)
        print(f"erased (no agent running): {removed} buffered event(s) removed")
    else:
        removed, forgotten = reply["events_removed"], reply["devices_forgotten"]
        print(
            f"erased: {removed} buffered event(s) removed, {forgotten} tracked device(s) "
            "forgotten"
            + ("" if reply["retained_cleared"] else "; broker offline, retained not cleared")
        )
    known = {d.id for d in cfg.devices} | {c.id for c in load_consents(cfg.consent_path)}
    if not removed and not forgotten and args.device not in known:
        print(
            f"edge-agent erase: nothing was buffered or tracked for {args.device!r}: check the "
            "id (as published: a configured id, a beacon id or a p-… pseudonym), address or "
            "beacon id",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


@_command("run")
def cmd_run(args: argparse.Namespace) -> int:
    """The service."""
    from edge_agent.config import load_config
    from edge_agent.runtime import remote_config
    from edge_agent.runtime.agent import Agent
    from edge_agent.tools.sources import make_source

    # a set-config the last run never confirmed (it crashed, or was killed) is undone first
    state_dir = load_config(args.config).gateway.state_dir
    recovered = remote_config.recover(state_dir)
    checked = check(args.config, secrets=True)
    cfg = checked.config
    _setup_logging(args.log_level or cfg.log_level)
    warnings = [w.render(args.config) for w in checked.warnings]
    for warning in warnings:
        _LOGGER.warning("%s", warning)
    agent = Agent(
        cfg,
        make_source(cfg),
        config_file=Path(args.config),
        drain_timeout_s=args.drain_timeout,
        warnings=warnings,
        overrides=remote_config.current_overrides(cfg.gateway.state_dir),
        recovered=recovered,
    )
    return asyncio.run(agent.run())


@_command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    """The simulated store through the agent, with a live terminal view."""
    from edge_agent.tools.demo import run_demo

    return run_demo(
        args.config,
        duration_s=args.duration,
        store_time_s=args.store_time,
        speed=args.speed,
        broker_url=args.broker,
        scenario=args.scenario,
        seed=args.seed,
    )


@_command("scan")
def cmd_scan(args: argparse.Namespace) -> int:
    """A live table of the devices the radio hears."""
    from edge_agent.tools.scan import ScanOptions, scan
    from edge_agent.tools.sources import make_source

    cfg = load_checked(args.config)
    _setup_logging(args.log_level)
    opts = ScanOptions(
        json=args.json,
        sort=args.sort,
        interval_s=args.interval,
        duration_s=args.duration,
        limit=args.limit,
        show_addresses=args.show_addresses,
    )
    return asyncio.run(scan(cfg, make_source(cfg), opts))


@_command("record")
def cmd_record(args: argparse.Namespace) -> int:
    """Advertisements to a JSONL recording."""
    from edge_agent.tools.record import AddressMasker, private_file, record, registered_addresses
    from edge_agent.tools.sources import make_source

    cfg = load_checked(args.config)
    _setup_logging(args.log_level)
    mask = None if args.raw_addresses else AddressMasker(registered_addresses(cfg))
    try:
        with private_file(Path(args.file), replace=args.force) as out:
            summary = asyncio.run(
                record(
                    make_source(cfg),
                    out,
                    queue_size=cfg.source.queue_size,
                    duration_s=args.duration,
                    count=args.count,
                    mask=mask,
                )
            )
    except FileExistsError:
        print(f"edge-agent record: {args.file} exists (--force replaces it)", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:
        print(f"edge-agent record: {args.file}: {err.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"recorded {summary.adverts} adverts from {summary.devices} devices to {args.file}"
        + (f" ({summary.dropped} dropped: queue full)" if summary.dropped else "")
        + ("" if mask is None else "; unregistered addresses pseudonymised")
    )
    return EXIT_OK


@_command("replay")
def cmd_replay(args: argparse.Namespace) -> int:
    """A recording or capture through the pipeline (publishing optional)."""
    from edge_agent.config import read_calibration
    from edge_agent.tools.record import private_file
    from edge_agent.tools.replay import replay, replay_config

    path = Path(args.file)
    receivers = Path(args.receivers) if args.receivers else None
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-agent-")))
        cfg = replay_config(args.config, state, publish=args.publish)
        if args.calibration:
            cfg = cfg.model_copy(update={"calibration": read_calibration(Path(args.calibration))})
        _setup_logging(args.log_level)
        outputs: list[IO[str] | None] = []
        try:
            for name in (args.estimates, args.events):
                outputs.append(stack.enter_context(private_file(Path(name))) if name else None)
        except OSError as err:
            print(f"edge-agent replay: {err.filename}: {err.strerror}", file=sys.stderr)
            return EXIT_FAILED
        estimates, events = outputs
        if args.publish:
            return _replay_publish(cfg, path, state, args.speed, estimates, events, receivers)
        summary = replay(
            cfg, path, estimates=estimates, events=events, receivers=receivers, speed=args.speed
        )
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.events.items())) or "no events"
    print(f"replayed {summary.adverts} adverts: {kinds}")
    if args.estimates:
        print(f"estimates: {summary.samples} samples, {summary.fused} fused, in {args.estimates}")
    return EXIT_OK


def _replay_publish(
    cfg: AgentConfig,
    path: Path,
    state: Path,
    speed: float,
    estimates: IO[str] | None,
    events: IO[str] | None,
    receivers: Path | None,
) -> int:
    from edge_agent.runtime.agent import Agent
    from edge_agent.runtime.sources.replay import ReplaySource
    from edge_agent.tools.replay import file_day_keys, replay_hook, with_positions

    # Never the live gateway's outbox or event ids: a replay publishes as "<gateway>-replay",
    # from a state directory of its own.
    gateway = cfg.gateway.model_copy(
        update={"id": cfg.gateway.id[:57] + "-replay", "state_dir": state}
    )
    source = cfg.source.model_copy(update={"kind": "replay", "path": path, "speed": speed})
    cfg = with_positions(cfg.model_copy(update={"gateway": gateway, "source": source}), receivers)
    agent = Agent(
        cfg, ReplaySource(path, speed=speed), day_keys=file_day_keys(path), ephemeral=True
    )
    agent.on_tick = replay_hook(agent, estimates, events)
    return asyncio.run(agent.run())


@_command("eval")
def cmd_eval(args: argparse.Namespace) -> int:
    """Our filter and the peers' on captures with truth (DESIGN §5 distance metric), or on the
    simulated store; exit 1 when a target is missed (a FAIL line)."""
    from edge_agent.tools import evaluation as ev

    cfg = _optional_config(args.config)
    if args.store or args.moments:
        from edge_agent.tools.simstore import moments_report, store_report

        flag = "--store" if args.store else "--moments"
        if cfg is None:
            raise UsageError(f"{flag} needs --config (zones and receivers)")
        if args.moments and not cfg.moments:
            raise UsageError("--moments needs a config with [[moments]] rules")
        note = lambda s: print(s, file=sys.stderr)  # noqa: E731
        if args.store:
            duration = args.duration or 600.0
            text, passed = store_report(args.store, cfg, duration, args.seed, note)
        else:
            duration = args.duration or 3600.0
            text, passed = moments_report(args.moments, cfg, duration, args.seed, note)
        print(text)
        return EXIT_OK if passed else EXIT_FAILED
    if not args.captures or not args.receivers:
        raise UsageError("give capture CSVs and --receivers, or --store")
    from edge_agent.tools import positioning

    prox = cfg.proximity if cfg is not None else ProximityConfig()
    fusion = cfg.fusion if cfg is not None else FusionConfig()
    positions = ev.load_positions(Path(args.receivers))
    captures = [ev.load_capture(Path(f)) for f in args.captures]
    scores = ev.leave_one_out(captures, positions, ev.baselines(ev.ours(prox)))
    verdict = ev.verdict(scores)
    print(ev.report(scores))
    print("\n".join(verdict))
    placed = positioning.score_methods(captures, positions, prox, fusion)
    verdict += positioning.verdict(placed)
    print()
    print(positioning.report(placed))
    print("\n".join(positioning.verdict(placed)))
    return EXIT_FAILED if any(line.startswith("FAIL") for line in verdict) else EXIT_OK


@_command("calibrate")
def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit receivers from captures with truth (``--from``) or from a beacon held at known
    distances (``--interactive``), and write the calibration TOML."""
    from edge_agent.tools import evaluation as ev
    from edge_agent.tools.calibrate import (
        ask_stdin,
        fit_captures,
        fit_radio_map,
        interactive,
        parse_distances,
        to_toml,
    )
    from edge_agent.tools.sources import make_source

    if bool(args.captures) == bool(args.interactive):
        raise UsageError("give either --from CAPTURE… or --interactive")
    if args.interactive and (not args.config or not args.device):
        raise UsageError("--interactive needs --config and --device")
    if args.captures and not args.receivers:
        raise UsageError("--from needs --receivers (positions JSON)")
    if args.radio_map and not args.captures:
        raise UsageError("--radio-map needs --from (a survey's captures with truth)")
    cfg = _optional_config(args.config)
    prox = cfg.proximity if cfg is not None else ProximityConfig()
    rmap = None
    if cfg is not None and args.interactive:
        _setup_logging(args.log_level)
        distances = parse_distances(str(args.distances))
        receivers = asyncio.run(
            interactive(
                cfg,
                make_source(cfg),
                args.device,
                distances,
                args.seconds,
                ask_stdin,
                lambda text: print(text, flush=True),
                args.receiver,
            )
        )
        origin = f"{args.device} held at {args.distances} m (interactive)"
    else:
        sources = [Path(f) for f in args.captures]
        positions = ev.load_positions(Path(args.receivers))
        captures = [ev.load_capture(p) for p in sources]
        receivers = fit_captures(prox, captures, positions)
        if args.radio_map:
            rmap = fit_radio_map(captures, positions, receivers, prox.tx_power_1m_dbm)
        origin = ", ".join(str(p.resolve()) for p in sources)
    out = Path(args.out)
    out.write_text(
        to_toml(receivers, origin, prox.tx_power_1m_dbm, out.name, rmap), encoding="utf-8"
    )
    for r in receivers:
        print(r.summary())
    if rmap is not None:
        print(
            f"radio map: {len(rmap.correction_db)} receivers on {rmap.nx} × {rmap.ny} cells of "
            f"{rmap.cell_m:g} m from ({rmap.x0:g}, {rmap.y0:g})"
        )
    warned = sum(bool(r.notes) for r in receivers)
    print(
        f"wrote {args.out} ({len(receivers)} receivers"
        + (f"; {warned} with warnings, written into the file too)" if warned else ")")
    )
    return EXIT_OK


@_command("status")
def cmd_status(args: argparse.Namespace) -> int:
    """The running agent's state; when it is not running, why (exit 3)."""
    from edge_agent.tools.status import NOT_RUNNING, as_json, gather, render

    cfg = load_checked(args.config)
    running, facts = gather(cfg)
    print(as_json(running, facts) if args.json else render(running, facts))
    return EXIT_OK if running else NOT_RUNNING


@_command("doctor")
def cmd_doctor(args: argparse.Namespace) -> int:
    """What this machine lacks for the agent, and how to fix it (exit 1 when anything)."""
    from edge_agent.tools.doctor import examine, render

    try:
        cfg = load_checked(args.config, secrets=True, credentials=False)
    except ConfigError as err:
        print(f"FIX  configuration: {err.source}", file=sys.stderr)
        raise
    _setup_logging("CRITICAL")  # what the checks meet is in the report, not in log lines
    findings = examine(cfg)
    print(render(findings))
    return EXIT_OK if all(f.ok for f in findings) else EXIT_FAILED


@_command("bench")
def cmd_bench(args: argparse.Namespace) -> int:
    """Each stage's rate on this machine, on a synthetic store made for this configuration."""
    from edge_agent.tools.capacity import run

    cfg = load_checked(args.config, secrets=args.broker == "config")
    _setup_logging("ERROR")
    report = run(cfg, args.devices, args.seconds, args.broker)
    print(report.as_json() if args.json else report.table())
    return EXIT_OK


@_command("schema")
def cmd_schema(args: argparse.Namespace) -> int:
    """Write the payload contract: producer and consumer JSON Schemas per payload and an
    AsyncAPI 3 document (the package ships the same under edge_agent/schemas/)."""
    from edge_agent.contract_docs import documents

    out = Path(args.out)
    for name, text in documents().items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    print(f"wrote the contract to {out}/ (consumer/*.schema.json: validate with these)")
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "demo": cmd_demo,
    "get-config": cmd_get_config,
    "consent": cmd_consent,
    "erase": cmd_erase,
    "scan": cmd_scan,
    "record": cmd_record,
    "replay": cmd_replay,
    "eval": cmd_eval,
    "calibrate": cmd_calibrate,
    "status": cmd_status,
    "doctor": cmd_doctor,
    "bench": cmd_bench,
    "schema": cmd_schema,
}
"""Each command of ``cli_args.build_parser`` and what carries it out."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-agent``."""
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
