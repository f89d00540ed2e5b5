"""``edge-agent calibrate``: per-receiver RSSI offset and path-loss exponent, fitted from captures
with truth (batch) or from a beacon held at known distances (interactive), written as TOML that
``agent.toml`` includes (``[calibration] file = …``)."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.config import AgentConfig, ProximityConfig, RadioMapConfig, ReceiverCalibration
from edge_agent.errors import CalibrationError
from edge_agent.models import Advert
from edge_agent.pipeline import kernels
from edge_agent.pipeline.decoders import DecodeStats, decode_advert
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.proximity import stated_tx
from edge_agent.runtime.sources import AdvertSource, SourceFeed
from edge_agent.tools import evaluation as ev
from edge_agent.tools.positioning import fit_mean_model, survey_map

MIN_STEP_ADVERTS = 5
"""Adverts a receiver must hear at each distance for its median to mean something."""
EXPONENT_BOUNDS = (1.0, 6.0)
"""Path-loss exponents a fit may give (what the configuration accepts)."""


@dataclass(slots=True, frozen=True)
class Fitted:
    """One receiver's fit and how far to trust it."""

    calibration: ReceiverCalibration
    """What is written."""
    samples: int
    """Samples (adverts, or smoothed samples under 6 m) the fit used."""
    span_m: tuple[float, float]
    """Shortest and longest distance among them, metres."""
    residual: float
    """How far the fitted model is from the data: dB RMS (interactive) or mean metres of
    distance error (captures)."""
    residual_unit: str
    """``dB`` or ``m``."""
    notes: tuple[str, ...] = ()
    """What the field engineer must know: a clamped exponent, a borrowed fit."""

    def summary(self) -> str:
        """One line: the values, the quality, the notes."""
        c = self.calibration
        lo, hi = self.span_m
        text = (
            f"{c.id}: offset {c.rssi_offset_db:+.1f} dB, exponent {c.path_loss_exponent:.2f} "
            f"({self.samples} samples, {lo:.1f}–{hi:.1f} m, residual {self.residual:.2f} "
            f"{self.residual_unit})"
        )
        return text + "".join(f"\n  warning: {note}" for note in self.notes)


def fit_captures(
    prox: ProximityConfig,
    captures: Sequence[ev.Capture],
    positions: dict[str, tuple[float, float, float]],
) -> list[Fitted]:
    """Smooth each capture with the agent's filter, then fit every receiver heard under 6 m
    often enough (the others get the fit of all receivers together, and are told so)."""
    smooth = ev.ours(prox)
    parts = [
        (c, smooth(c.receiver, c.t, c.rssi, len(c.receivers)), ev.true_distances(c, positions))
        for c in captures
    ]
    fitted = ev.fit_calibration(parts)
    mean_model = fit_mean_model([(c, dist) for c, _, dist in parts])
    edges = (float(ev.EXPONENTS[0]), float(ev.EXPONENTS[-1]))
    names = sorted({n for c in captures for n in c.receivers})
    tx = prox.tx_power_1m_dbm
    out = []
    for name in names:
        smoothed = np.concatenate([s[c.receiver == c.receivers.index(name)]
                                   for c, s, _ in parts if name in c.receivers])  # fmt: skip
        dist = np.concatenate([d[c.receiver == c.receivers.index(name)]
                               for c, _, d in parts if name in c.receivers])  # fmt: skip
        near = np.isfinite(smoothed) & (dist < ev.NEAR_M) & (dist > 0.1)
        at_1m, n = fitted.get(name, fitted["*"])
        mean_at_1m, mean_n = mean_model.get(name, mean_model["*"])
        notes = []
        if name not in fitted:
            notes.append(
                f"{int(near.sum())} samples under {ev.NEAR_M:g} m are too few to fit it alone: "
                "the fit of all receivers together is written"
            )
        if n in edges:
            notes.append(
                f"exponent {n:.2f} is at the edge of the search ({edges[0]:g}–{edges[1]:g}): "
                "the samples did not bound it, the offset makes up for it; prefer captures "
                "nearer and further from this receiver"
            )
        est = kernels.distance(smoothed[near], at_1m, n)
        out.append(
            Fitted(
                ReceiverCalibration(
                    id=name,
                    rssi_offset_db=round(max(-40.0, min(40.0, tx - at_1m)), 2),
                    path_loss_exponent=round(n, 3),
                    mean_offset_db=round(max(-40.0, min(40.0, tx - mean_at_1m)), 2),
                    mean_exponent=round(mean_n, 3),
                ),
                int(near.sum()),
                (float(dist[near].min()), float(dist[near].max())) if near.any() else (0.0, 0.0),
                float(np.abs(est - dist[near]).mean()) if near.any() else math.nan,
                "m",
                tuple(notes),
            )
        )
    return out


def fit_radio_map(
    captures: Sequence[ev.Capture],
    positions: dict[str, tuple[float, float, float]],
    fits: Sequence[Fitted],
    tx: float,
) -> RadioMapConfig:
    """The survey's radio map (``--radio-map``) against the mean-signal model just fitted."""
    model = {
        f.calibration.id: (tx - (f.calibration.mean_offset_db or 0.0), f.calibration.mean_exponent)
        for f in fits
        if f.calibration.mean_exponent is not None
    }
    rmap = survey_map([(c, ev.true_distances(c, positions)) for c in captures], model)
    if rmap is None:
        raise CalibrationError("radio map", "no sample of a fitted receiver in the captures")
    return rmap


def to_toml(
    fits: Sequence[Fitted],
    origin: str,
    tx: int,
    file_name: str,
    rmap: RadioMapConfig | None = None,
) -> str:
    """The file ``calibrate --out`` writes; ``origin`` says what it was fitted from, and every
    receiver's quality and warnings stand above it as comments; then the radio map, if any."""
    lines = [
        f"# Written by edge-agent calibrate from: {origin}",
        f"# Offsets assume beacons that state {tx} dBm at 1 m (proximity.tx_power_1m_dbm).",
        f'# Include it from agent.toml:  [calibration]  file = "{file_name}"',
        "",
    ]
    for f in fits:
        r = f.calibration
        lines += [f"# {line}" for line in f.summary().splitlines()]
        lines += [
            "[[calibration.receivers]]",
            f'id = "{r.id}"',
            f"rssi_offset_db = {r.rssi_offset_db}",
            f"path_loss_exponent = {r.path_loss_exponent}",
        ]
        if r.mean_offset_db is not None and r.mean_exponent is not None:
            lines += [
                "# the mean signal over every distance heard (fusion on a floor plan uses it)",
                f"mean_offset_db = {r.mean_offset_db}",
                f"mean_exponent = {r.mean_exponent}",
            ]
        lines += [""]
    if rmap is not None:
        lines += [
            "# The site survey's radio map: per receiver, how much louder (dB) each place of a",
            f"# {rmap.cell_m:g} m grid heard the survey than the mean-signal model above says",
            "# (cell (i, j) is value i * ny + j); fusion adds it to what it expects there.",
            "[calibration.radio_map]",
            f"x0 = {rmap.x0}",
            f"y0 = {rmap.y0}",
            f"cell_m = {rmap.cell_m}",
            f"nx = {rmap.nx}",
            f"ny = {rmap.ny}",
            f"length_m = {rmap.length_m}",
            "",
            "[calibration.radio_map.correction_db]",
        ]
        for name, values in rmap.correction_db.items():
            lines.append(f'"{name}" = [{", ".join(f"{v:g}" for v in values)}]')
        lines += [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- interactive


@dataclass(slots=True, frozen=True)
class Step:
    """What one receiver heard from the beacon held at one distance."""

    distance_m: float
    """Distance the field engineer held the beacon at."""
    rssi: tuple[int, ...]
    """RSSI of every advert heard during the step, dBm (as received, no offset)."""
    tx_1m: float
    """Power at 1 m the beacon states (or the config's default), dBm."""

    @property
    def median(self) -> float:
        """Median RSSI: fast fading averages out, a stray reflection does not pull it."""
        return float(np.median(self.rssi))


def fit_steps(receiver: str, steps: Sequence[Step], default_exponent: float) -> Fitted:
    """Offset and path-loss exponent of one receiver from steps at known distances: a least-
    squares line through (10·log10 d, median RSSI). With one distance only, the exponent stays
    ``default_exponent`` and only the offset is fitted. A step the receiver heard fewer than
    ``MIN_STEP_ADVERTS`` adverts of is refused (``CalibrationError``)."""
    used = [s for s in steps if s.rssi and s.distance_m > 0]
    if not used:
        raise CalibrationError(receiver, "no adverts heard from the beacon")
    for s in used:
        if len(s.rssi) < MIN_STEP_ADVERTS:
            raise CalibrationError(
                receiver,
                f"at {s.distance_m:g} m it heard {len(s.rssi)} advert(s), "
                f"{MIN_STEP_ADVERTS} are needed: hold the beacon longer (--seconds)",
            )
    x = np.array([10.0 * math.log10(s.distance_m) for s in used])
    y = np.array([s.median for s in used])
    tx = float(np.median([s.tx_1m for s in used]))
    notes: list[str] = []
    if np.ptp(x) < 1.0:  # one distance (or nearly): the slope is not measurable
        n = default_exponent
        at_1m = float(np.mean(y + n * x))
        notes.append(f"one distance only: the exponent is the configured {n:g}")
    else:
        slope, at_1m = (float(v) for v in np.polyfit(x, y, 1))
        lo, hi = EXPONENT_BOUNDS
        n = min(hi, max(lo, -slope))
        if n != -slope:
            notes.append(
                f"the fitted exponent {-slope:.2f} is outside {lo:g}–{hi:g}: {n:g} is written; "
                "the signal did not fall with distance as it should (a reflection, a wall, or "
                "the wrong receiver held against)"
            )
            at_1m = float(np.mean(y + n * x))
    residual = float(np.sqrt(np.mean((y - (at_1m - n * x)) ** 2)))
    distances = [s.distance_m for s in used]
    return Fitted(
        ReceiverCalibration(
            id=receiver,
            rssi_offset_db=round(max(-40.0, min(40.0, tx - at_1m)), 2),
            path_loss_exponent=round(n, 3),
        ),
        sum(len(s.rssi) for s in used),
        (min(distances), max(distances)),
        residual,
        "dB",
        tuple(notes),
    )


class StepRecorder:
    """Collects one device's adverts per receiver while a step runs (pure: fed batches)."""

    def __init__(self, cfg: AgentConfig, device: str, identity: Identity | None = None) -> None:
        self.cfg = cfg
        self.device = device
        self.identity = identity or Identity(cfg)
        self.stats = DecodeStats()
        self.recording = False
        self._rssi: dict[str, list[int]] = {}
        self._tx: list[float] = []

    def observe(self, adverts: Sequence[Advert]) -> None:
        """Keep the RSSI of the device's adverts while recording."""
        if not self.recording:
            return
        for adv in adverts:
            frames = decode_advert(adv, self.stats)
            ref = self.identity.resolve(adv, frames)
            if ref is None or ref.id != self.device:
                continue
            self._rssi.setdefault(adv.receiver, []).append(adv.rssi)
            tx = stated_tx(ref, frames)
            self._tx.append(float(self.cfg.proximity.tx_power_1m_dbm if tx is None else tx))

    def start(self) -> None:
        """Begin a step."""
        self._rssi, self._tx = {}, []
        self.recording = True

    def finish(self, distance_m: float) -> dict[str, Step]:
        """End the step: per receiver, what it heard."""
        self.recording = False
        tx = float(np.median(self._tx)) if self._tx else float(self.cfg.proximity.tx_power_1m_dbm)
        return {rx: Step(distance_m, tuple(r), tx) for rx, r in self._rssi.items()}


Ask = Callable[[str], Awaitable[str]]
"""Shows a prompt, returns the line the field engineer typed."""


async def interactive(
    cfg: AgentConfig,
    source: AdvertSource,
    device: str,
    distances: Sequence[float],
    seconds: float,
    ask: Ask,
    say: Callable[[str], None],
    receiver: str | None = None,
) -> list[Fitted]:
    """The field session: for each distance, wait for Enter, record ``seconds`` of the device,
    show what each receiver heard; then fit the receiver it was held against (``receiver``, or
    the one that heard it loudest at the first step)."""
    recorder = StepRecorder(cfg, device)
    steps: dict[str, list[Step]] = {}
    feed = SourceFeed(source, cfg.source.queue_size, signals=False)

    async def pump() -> None:
        async for batch in feed.batches():
            recorder.observe(batch)

    async with feed, asyncio.TaskGroup() as tg:
        pumper = tg.create_task(pump(), name="calibrate-pump")
        try:
            for d in distances:
                line = await ask(f"Hold {device} at {d:g} m, then press Enter (q: stop here) ")
                if line.strip().lower().startswith("q"):
                    break
                recorder.start()
                await asyncio.sleep(seconds)
                heard = recorder.finish(d)
                for rx, step in heard.items():
                    steps.setdefault(rx, []).append(step)
                say(
                    f"  {d:g} m: "
                    + (
                        ", ".join(
                            f"{rx} {len(s.rssi)} adverts, median {s.median:.0f} dBm"
                            for rx, s in sorted(heard.items())
                        )
                        or "nothing heard"
                    )
                )
        finally:
            pumper.cancel()
    if receiver is None:
        first = {rx: s[0] for rx, s in steps.items() if s}
        if not first:
            raise CalibrationError(device, "the device was not heard at any step")
        receiver = max(
            first, key=lambda rx: (first[rx].distance_m == distances[0], first[rx].median)
        )
    return [fit_steps(receiver, steps.get(receiver, []), cfg.proximity.path_loss_exponent)]


def parse_distances(text: str) -> list[float]:
    """``--distances``: metres above 0, comma separated (``CalibrationError`` naming the flag)."""
    try:
        distances = [float(d) for d in text.split(",") if d.strip()]
    except ValueError as err:
        raise CalibrationError("--distances", f"not a number: {err}") from err
    if not distances or min(distances) <= 0:
        raise CalibrationError("--distances", "give distances in metres above 0, e.g. 1,2,4,8")
    return distances


async def ask_stdin(prompt: str) -> str:
    """Show ``prompt`` and read a line from stdin (``q`` at the end of input).

    A daemon thread, not the default executor: if the radio fails while the prompt waits, the
    command ends with the error instead of waiting for a keypress."""
    print(prompt, end="", flush=True)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def give(line: str) -> None:
        if not answer.done():
            answer.set_result(line)

    def read() -> None:
        loop.call_soon_threadsafe(give, sys.stdin.readline())

    threading.Thread(target=read, name="calibrate-prompt", daemon=True).start()
    line = await answer
    return line if line else "q"  # end of input: stop here
