"""``firmware-sim``: run a store scenario offline, writing a recording and the ground truth."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.sources.replay import advert_to_json
from firmware_sim.source import open_or_none
from firmware_sim.store import StoreSim, load_scenario, simulate


def cmd_run(args: argparse.Namespace) -> int:
    """Simulate ``--duration`` seconds as fast as possible."""
    sim = StoreSim(load_scenario(args.scenario), args.seed)
    n = 0
    with contextlib.ExitStack() as stack:
        rec = stack.enter_context(open_or_none(args.record))
        out = stack.enter_context(open_or_none(args.truth))
        for _, adverts, truth in simulate(sim, args.duration, args.start_wall):
            n += len(adverts)
            if rec is not None:
                rec.writelines(advert_to_json(a) + "\n" for a in adverts)
            if out is not None:
                out.writelines(tr.to_json() + "\n" for tr in truth)
    print(
        f"{n} adverts in {args.duration:g} simulated seconds "
        f"({len(sim.devices)} devices, {len(sim.receivers)} receivers)"
    )
    return 0


def cmd_survey(args: argparse.Namespace) -> int:
    """Walk a survey beacon across the store; write the capture and the receivers' positions."""
    from firmware_sim.survey import SurveyWalk, survey, write

    if not (0.2 <= args.spacing <= 10.0) or not (0.2 <= args.pace <= 3.0):
        print("error: --spacing: 0.2–10 m, --pace: 0.2–3 m/s", file=sys.stderr)
        return 2
    spec = load_scenario(args.scenario)
    walk = SurveyWalk(spacing_m=args.spacing, speed_mps=args.pace)
    cap = survey(spec, walk, args.seed)
    write(cap, spec, Path(args.out), Path(args.receivers_out))
    minutes = (float(cap.t[-1]) if len(cap.t) else 0.0) / 60.0
    print(
        f"{len(cap.t)} samples of {len(cap.receivers)} receivers over a {minutes:.1f}-minute walk "
        f"(lines {args.spacing:g} m apart at {args.pace:g} m/s): {args.out}, {args.receivers_out}"
    )
    return 0


def cmd_bluez(args: argparse.Namespace) -> int:
    """Serve a scenario as a virtual BlueZ until SIGTERM/SIGINT."""
    from firmware_sim.bluez import VirtualBlueZ
    from firmware_sim.dbus import PrivateBus
    from firmware_sim.serve import Flood, serve

    adapters = [a.strip() for a in args.adapters.split(",") if a.strip()]
    bad = [a for a in adapters if not a.startswith("hci") or not a[3:].isdigit()]
    if bad or not adapters:
        print(f"error: --adapters: expected hci0,hci1,… got {args.adapters!r}", file=sys.stderr)
        return 2
    if not args.scenario and not args.flood:
        print("error: --scenario is required (or --flood N)", file=sys.stderr)
        return 2
    if not 0 <= args.flood_sensors <= args.flood or args.flood_rate < 0:
        print("error: --flood-sensors: 0..N sensors, --flood-rate: ≥ 0", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with contextlib.ExitStack() as stack:
        address = args.bus
        if address is None:
            address = stack.enter_context(PrivateBus()).address
            print(f"DBUS_SYSTEM_BUS_ADDRESS={address}", flush=True)

        def ready(bluez: VirtualBlueZ) -> None:
            print(f"ready: org.bluez with {','.join(adapters)} on {address}", flush=True)

        asyncio.run(
            serve(
                args.scenario,
                adapters,
                bus_address=address,
                speed=args.speed,
                seed=args.seed,
                duration_s=args.duration,
                monitor=not args.no_monitor,
                on_ready=ready,
                flood_spec=Flood(
                    args.flood,
                    args.flood_rate,
                    args.flood_sensors,
                    Path(args.flood_probes) if args.flood_probes else None,
                    args.seed or 0,
                )
                if args.flood
                else None,
                receivers=[r.strip() for r in (args.receivers or "").split(",") if r.strip()],
                start_at=args.start_at,
            )
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``firmware-sim``."""
    parser = argparse.ArgumentParser(prog="firmware-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="simulate a scenario, write a recording and ground truth")
    p.add_argument("--scenario", required=True)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--start-wall",
        type=float,
        default=1_700_000_000.0,
        help="wall-clock epoch of simulated time 0",
    )
    p.add_argument("--record", help="write adverts as JSONL (edge-agent replay reads it)")
    p.add_argument("--truth", help="write ground truth as JSONL (one line per device per second)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "survey",
        help="walk a survey beacon across a scenario's floor: a capture with truth for "
        "edge-agent calibrate --from … --radio-map",
    )
    p.add_argument("--scenario", required=True)
    p.add_argument("--out", required=True, help="capture CSV to write (with truth columns)")
    p.add_argument("--receivers-out", required=True, help="receiver positions JSON to write")
    p.add_argument("--spacing", type=float, default=1.0, help="metres between the lines walked")
    p.add_argument("--pace", type=float, default=1.0, help="walking speed, m/s")
    p.add_argument("--seed", type=int, help="the scenario's seed (its shadowing)")
    p.set_defaults(func=cmd_survey)
    p = sub.add_parser(
        "bluez",
        help="serve a scenario as a virtual BlueZ on D-Bus (bleak scans it like the real one)",
    )
    p.add_argument("--scenario", help="store scenario (required unless --flood)")
    p.add_argument(
        "--flood",
        type=int,
        default=0,
        metavar="N",
        help="instead of a scenario: N advertisers in turn on every adapter (benchmarks)",
    )
    p.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="adverts per second of the flood (default: as fast as possible)",
    )
    p.add_argument(
        "--flood-sensors",
        type=int,
        default=0,
        metavar="S",
        help="of the flood's N advertisers, S are BTHome sensors whose temperature changes",
    )
    p.add_argument(
        "--flood-probes",
        metavar="FILE",
        help="append 'sensor counter wall' per sensor advert delivered (latency probes)",
    )
    p.add_argument(
        "--bus",
        help="D-Bus address to serve on (default: start a private dbus-daemon, print its address)",
    )
    p.add_argument(
        "--adapters",
        default="hci0",
        help="adapters to serve, comma-separated; the i-th hears the scenario's i-th receiver",
    )
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--seed", type=int)
    p.add_argument("--duration", type=float, help="stop after this many simulated seconds")
    p.add_argument(
        "--receivers",
        help="the scenario's receivers the adapters hear, comma-separated, in adapter order "
        "(default: all, in the scenario's order): one gateway's share of a store",
    )
    p.add_argument(
        "--start-at",
        type=float,
        help="wall-clock epoch of simulated time 0 (several processes serve one store in step)",
    )
    p.add_argument(
        "--no-monitor",
        action="store_true",
        help="leave out AdvertisementMonitorManager1 (a BlueZ without passive scanning)",
    )
    p.set_defaults(func=cmd_bluez)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeAgentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
