"""``firmware-sim``: run a store scenario offline, writing a recording and the ground truth."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from edge_agent.errors import EdgeAgentError
from edge_agent.sources.replay import advert_to_json
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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeAgentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
