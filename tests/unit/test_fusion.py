"""Fusion of every receiver: the floor plan, the grid kernel against its twin, the engine, zones
from the posterior, and the summaries that let the gateways of a store fuse the same evidence."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent import geometry
from edge_agent.config import AgentConfig, load_config
from edge_agent.contract import decode_summary
from edge_agent.models import Advert, DeviceClass, PresenceBody
from edge_agent.pipeline import floorplan
from edge_agent.pipeline import fusion_kernels as fk
from edge_agent.pipeline.fusion import FusionEngine
from edge_agent.pipeline.identity import DeviceRef, Identity, store_day_keys
from edge_agent.pipeline.summaries import encode
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.pipeline.zones import PresenceEngine

PLAN = """
[gateway]
id = "gw-a"
site = "s"
state_dir = "{state}"

[fusion]
grid_m = 0.5
tag_height_m = 1.0

[[zones]]
id = "west"
rect = [0.0, 0.0, 10.0, 10.0]

[[zones]]
id = "east"
polygon = [[10.0, 0.0], [20.0, 0.0], [20.0, 10.0], [10.0, 10.0]]

[[receivers]]
id = "rx-0"
x = 2.0
y = 2.0
z = 2.5

[[receivers]]
id = "rx-1"
x = 18.0
y = 2.0
z = 2.5

[[receivers]]
id = "rx-2"
x = 10.0
y = 9.0
z = 2.5

[[receivers]]
id = "rx-3"
x = 5.0
y = 8.0
z = 2.5
"""
TX = -60
"""Power at 1 m of the test beacons."""


@pytest.fixture
def plan_cfg(write_config: Callable[[str], Path]) -> AgentConfig:
    return load_config(write_config(PLAN))


def mean_rssi(cfg: AgentConfig, x: float, y: float) -> dict[str, float]:
    """What each receiver hears on average from a tag at (x, y) under the plan's own model."""
    n = cfg.proximity.path_loss_exponent
    out = {}
    for r in cfg.receivers:
        assert r.x is not None and r.y is not None
        d = math.sqrt((x - r.x) ** 2 + (y - r.y) ** 2 + (r.z - cfg.fusion.tag_height_m) ** 2)
        out[r.id] = TX - 10 * n * math.log10(max(d, 0.1))
    return out


# --------------------------------------------------------------------------------- geometry


def test_polygons_contain_simple_and_overlap() -> None:
    square = geometry.rectangle(0, 0, 10, 10)
    assert geometry.contains(square, 5, 5) and not geometry.contains(square, 10, 5)
    assert geometry.contains(square, 0, 0)  # lower-left edges inside, upper-right outside
    assert geometry.simple_problem(square) is None
    assert "crosses" in (geometry.simple_problem([(0, 0), (10, 10), (10, 0), (0, 6)]) or "")
    assert "no area" in (geometry.simple_problem([(0, 0), (1, 1), (2, 2)]) or "")
    assert "at least 3" in (geometry.simple_problem([(0, 0), (1, 1)]) or "")
    neighbour = geometry.rectangle(10, 0, 20, 10)
    assert geometry.overlap_area(square, neighbour) == 0.0  # a shared edge is no overlap
    assert geometry.overlap_area(square, geometry.rectangle(5, 5, 15, 15)) == pytest.approx(
        25, 0.05
    )


def test_the_plan_has_cells_zones_owners_and_the_model(plan_cfg: AgentConfig) -> None:
    plan = floorplan.build(plan_cfg)
    assert plan is not None
    assert plan.receivers == ("rx-0", "rx-1", "rx-2", "rx-3")
    # default floor: the zones' and receivers' extent and a metre around
    assert (plan.x0, plan.y0) == (-1.0, -1.0) and plan.nx == 44 and plan.ny == 24
    west = plan.zone_cells[plan.zone_starts[0] : plan.zone_starts[1]]
    east = plan.zone_cells[plan.zone_starts[1] : plan.zone_starts[2]]
    assert len(west) == len(east) == 400 and not set(west) & set(east)  # 10 m × 10 m at 0.5 m
    assert plan.cx[west].max() < 10 < plan.cx[east].min()
    # each cell belongs to its nearest receiver; the model falls with distance
    c = int(np.argmin((plan.cx - 18) ** 2 + (plan.cy - 2) ** 2))
    assert plan.receivers[plan.owner[c]] == "rx-1"
    assert plan.gain[1, c] > plan.gain[0, c] and plan.gain[1, c] <= 0
    assert floorplan.build(load_config_flat(plan_cfg)) is None


def load_config_flat(cfg: AgentConfig) -> AgentConfig:
    """``cfg`` without receiver positions."""
    flat = [r.model_copy(update={"x": None, "y": None, "zone": "west"}) for r in cfg.receivers]
    return cfg.model_copy(update={"receivers": flat})


# ----------------------------------------------------------------------------------- kernel


def _kernel_inputs(seed: int) -> tuple[tuple[object, ...], np.ndarray]:
    rng = np.random.default_rng(seed)
    nx, ny, n_rx, rows = 17, 11, 4, 6
    cells = nx * ny
    post = rng.random((rows + 2, cells)).astype(np.float32)
    post /= post.sum(axis=1, keepdims=True)
    gain = -rng.uniform(0, 30, (n_rx, cells)).astype(np.float32)
    counts = rng.integers(0, 4, rows)  # some rows with no receiver at all
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    rx = rng.integers(0, n_rx, int(starts[-1])).astype(np.int64)
    z = rng.uniform(-40, 5, int(starts[-1]))  # far outside the model too: the tails
    dt = np.array([0.25, 0.0, math.inf, 3.0, 400.0, 1.0])  # fresh, long silences
    cx = np.repeat(np.arange(nx) * 0.5, ny).astype(np.float64)
    cy = np.tile(np.arange(ny) * 0.5, nx).astype(np.float64)
    owner = rng.integers(0, n_rx, cells).astype(np.int64)
    zone_cells = rng.permutation(cells)[:60].astype(np.int64)
    zone_starts = np.array([0, 25, 60], dtype=np.int64)
    args = (
        nx, ny, np.array([0, 2, 3, 4, 6, 7], dtype=np.int64), dt, starts, rx, z, gain,
        2.0, 6.0, 1.5, 4.0, 0.5, 12, owner, zone_starts, zone_cells, cx, cy,
    )  # fmt: skip
    return args, post


def _run(kernel: Callable[..., None], seed: int) -> tuple[np.ndarray, ...]:
    args, post = _kernel_inputs(seed)
    m = len(args[2])  # type: ignore[arg-type]
    pos, near, zones = np.empty((m, 3)), np.empty(m, np.int64), np.empty((m, 2))
    cells = int(args[0]) * int(args[1])  # type: ignore[call-overload]
    kernel(post, *args, pos, near, zones, np.empty(cells), np.empty(cells), np.empty(4))
    return post, pos, near, zones


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kernel_is_its_twin(seed: int) -> None:
    jit, twin = _run(fk.fuse_batch, seed), _run(fk.fuse_batch_py, seed)
    np.testing.assert_allclose(jit[0], twin[0], rtol=2e-4, atol=1e-7)  # float32 posteriors
    np.testing.assert_allclose(jit[1], twin[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(jit[2], twin[2])
    np.testing.assert_allclose(jit[3], twin[3], rtol=1e-4, atol=1e-6)
    post = jit[0]
    np.testing.assert_allclose(post[[0, 2, 3, 4, 6, 7]].sum(axis=1), 1.0, rtol=1e-4)
    untouched = _kernel_inputs(seed)[1]
    np.testing.assert_array_equal(post[[1, 5]], untouched[[1, 5]])  # rows not stepped


# ----------------------------------------------------------------------------------- engine


def feed_at(engine: FusionEngine, cfg: AgentConfig, device: str, x: float, y: float) -> None:
    for r, rssi in mean_rssi(cfg, x, y).items():
        engine.observe(device, engine.plan.receiver_index(r), rssi - TX)


@pytest.mark.parametrize("use_jit", [True, False])
def test_a_device_is_placed_where_the_model_says_and_follows_a_walk(
    plan_cfg: AgentConfig, use_jit: bool
) -> None:
    plan = floorplan.build(plan_cfg)
    assert plan is not None
    engine = FusionEngine(plan, plan_cfg.fusion, capacity=1, use_jit=use_jit)
    t = 0.0
    for _ in range(20):
        t += 0.25
        feed_at(engine, plan_cfg, "cart-1", 4.0, 5.0)
        feed_at(engine, plan_cfg, "cart-2", 15.0, 6.0)  # the rows grow past the capacity
        assert set(engine.step(t)) == {"cart-1", "cart-2"}
    one = engine.position("cart-1")
    assert one is not None and math.hypot(one.x - 4.0, one.y - 5.0) < 0.5
    assert one.zones[0] > 0.95 and one.nearest == "rx-3" and one.receivers == 4
    two = engine.position("cart-2")
    assert two is not None and two.zones[1] > 0.95 and two.error_m < 4.0
    assert math.hypot(two.x - 15.0, two.y - 6.0) < 1.0
    # cart-1 walks east at 1 m/s: fusion follows it into the other zone
    for k in range(1, 41):
        t += 0.25
        feed_at(engine, plan_cfg, "cart-1", 4.0 + 0.25 * k, 5.0)
        engine.step(t)
    one = engine.position("cart-1")
    # a random walk lags a steady walk (it waits for the evidence to outweigh σ = 6 dB)...
    assert one is not None and one.zones[1] > 0.8 and 10.5 < one.x < 14.0
    for _ in range(20):  # ...and catches up once the device stops
        t += 0.25
        feed_at(engine, plan_cfg, "cart-1", 14.0, 5.0)
        engine.step(t)
    one = engine.position("cart-1")
    assert one is not None and one.zones[1] > 0.95 and abs(one.x - 14.0) < 1.0
    # news only: a device with nothing new is not stepped; one that is not due waits
    assert engine.step(t + 1.0) == []
    feed_at(engine, plan_cfg, "cart-2", 15.0, 6.0)
    assert engine.step(t + 0.1) == ["cart-2"]  # its last step was 0.1 + 0.25·40 s ago
    feed_at(engine, plan_cfg, "cart-2", 15.0, 6.0)
    assert engine.step(t + 0.2) == []  # 0.1 s after it: not due
    assert engine.step(t + 0.2, every=True) == ["cart-2"]
    engine.forget("cart-1")
    assert engine.position("cart-1") is None and engine.devices == 1
    feed_at(engine, plan_cfg, "cart-3", 15.0, 6.0)  # takes cart-1's row, starts afresh
    assert engine.step(t + 5.0) == ["cart-3"] and engine.devices == 2


def test_a_receiver_blocked_by_a_body_does_not_drag_a_device_away(
    plan_cfg: AgentConfig,
) -> None:
    plan = floorplan.build(plan_cfg)
    assert plan is not None
    engine = FusionEngine(plan, plan_cfg.fusion)
    for k in range(1, 41):
        heard = mean_rssi(plan_cfg, 3.0, 3.0)
        heard["rx-0"] -= 25  # the nearest receiver, behind a body, hears it 25 dB weaker
        for r, rssi in heard.items():
            engine.observe("d", plan.receiver_index(r), rssi - TX)
        engine.step(0.25 * k)
    pos = engine.position("d")
    assert pos is not None and math.hypot(pos.x - 3.0, pos.y - 3.0) < 2.0, pos
    assert pos.zones[0] > 0.75  # still in its zone


# ----------------------------------------------------------------------------------- zones


def test_zones_come_from_the_posterior_with_hysteresis(plan_cfg: AgentConfig) -> None:
    plan = floorplan.build(plan_cfg)
    assert plan is not None
    engine = FusionEngine(plan, plan_cfg.fusion)
    presence = PresenceEngine(plan_cfg, engine)
    ref = DeviceRef("cart-1", DeviceClass.CART, True, None)
    events = []
    t = 0.0

    def at(x: float, seconds: float) -> None:
        nonlocal t
        for _ in range(int(seconds / 0.25)):
            t += 0.25
            feed_at(engine, plan_cfg, "cart-1", x, 5.0)
            engine.step(t)
            out: list = []
            presence.evaluate(ref, None, t, 1000.0 + t, out, engine.position("cart-1"))
            events.extend((t, e) for e in out)

    at(4.0, 5.0)
    assert [(e.type, e.body.zone) for _, e in events] == [("enter", "west")]
    body = events[0][1].body
    assert isinstance(body, PresenceBody)
    assert body.x is not None and abs(body.x - 4.0) < 1.0 and body.position_error_m is not None
    assert body.confidence > 0.9 and body.receiver == "rx-3"
    # on the border the zone holds (exit threshold), then the device crosses
    at(10.0, 5.0)
    at(12.5, 6.0)
    kinds = [(e.type, e.body.zone) for _, e in events if e.type != "update"]
    assert kinds == [("enter", "west"), ("exit", "west"), ("enter", "east")], kinds
    exit_body = next(e.body for _, e in events if e.type == "exit")
    # the exit says where the device last was while the zone held it (hysteresis: past the
    # border, until the zone's probability fell under exit_probability)
    assert isinstance(exit_body, PresenceBody) and exit_body.x is not None
    assert 9.0 < exit_body.x < 12.5 and exit_body.confidence >= plan_cfg.fusion.exit_probability
    # no longer heard: it leaves once its position is stale
    out: list = []
    presence.evaluate(ref, None, t + 20, 1020 + t, out, None)
    assert [(e.type, e.body.zone) for e in out] == [("exit", "east")]


# ------------------------------------------------------------------- several gateways


def half(cfg: AgentConfig, me: str, mine: set[str], other: str) -> AgentConfig:
    """``cfg`` as gateway ``me`` whose radios are ``mine``; the rest are ``other``'s."""
    receivers = [
        r if r.id in mine else r.model_copy(update={"gateway": other}) for r in cfg.receivers
    ]
    fusion = cfg.fusion.model_copy(update={"share": True})
    gateway = cfg.gateway.model_copy(update={"id": me})
    return cfg.model_copy(update={"receivers": receivers, "fusion": fusion, "gateway": gateway})


def test_two_gateways_fuse_the_same_evidence_and_see_the_same_store(
    plan_cfg: AgentConfig,
) -> None:
    """Each pipeline hears half of the receivers; their summaries cross (as MQTT would carry
    them, encoded and decoded); both place the device identically, and see both halves."""
    secret = b"a store secret of enough bytes"
    a = Pipeline(
        half(plan_cfg, "gw-a", {"rx-0", "rx-3"}, "gw-b"),
        Identity(plan_cfg, day_keys=store_day_keys(secret)),
    )
    b = Pipeline(
        half(plan_cfg, "gw-b", {"rx-1", "rx-2"}, "gw-a"),
        Identity(plan_cfg, day_keys=store_day_keys(secret)),
    )
    alone = Pipeline(plan_cfg)  # every receiver, one gateway, for comparison
    address = "D0:00:00:00:00:01"  # random static: pseudonymous
    rng = np.random.default_rng(5)
    wall0 = 1_800_000_000.0
    crossed = 0

    def run(batch: list[Advert], end: float) -> None:
        nonlocal crossed
        for p, rxs in ((a, ("rx-0", "rx-3")), (b, ("rx-1", "rx-2"))):
            p.process([ad for ad in batch if ad.receiver in rxs], end, wall0 + end)
        alone.process(batch, end, wall0 + end)
        for src, dst in ((a, b), (b, a)):
            assert src.feed is not None and dst.feed is not None
            step, devices = src.feed.outgoing()
            if devices:
                wire = decode_summary(encode(src.cfg.gateway.id, wall0 + end, step, devices))
                assert wire is not None
                crossed += dst.feed.remote(wire, end, wall0 + end)

    ticker: Ticker[Advert] = Ticker(0.1, run, align=True)
    t = 100.0
    while t < 130.0:
        x = 3.0 + 0.4 * (t - 100.0)  # walks east across both zones
        for r, rssi in mean_rssi(plan_cfg, x, 5.0).items():
            noisy = round(rssi + rng.normal(0, 3))
            ticker.add(Advert(address, noisy, t, wall0 + t, r, "random"), t)
        t += 0.3
    ticker.flush(t)
    assert crossed > 100
    assert a.fusion is not None and b.fusion is not None and alone.fusion is not None
    device = a.fusion.placed[0]
    assert device.startswith("p-") and device in b.fusion.placed
    pa, pb = a.fusion.position(device), b.fusion.position(device)
    assert pa is not None and pb is not None
    assert (pa.x, pa.y, pa.zones) == (pb.x, pb.y, pb.zones)  # the same evidence, the same step
    assert pa.receivers == 4  # both halves went in
    ref = alone.fusion.position(alone.fusion.placed[0])
    assert ref is not None and math.hypot(pa.x - ref.x, pa.y - ref.y) < 1.0
    assert a.presence.states[device].zone == b.presence.states[device].zone == "east"


def test_the_floor_map_outlines_zones_and_places_receivers_and_devices(
    plan_cfg: AgentConfig,
) -> None:
    from edge_agent.tools import floorview

    plan = floorplan.build(plan_cfg)
    assert plan is not None
    lines = floorview.draw(
        plan,
        floorview.zone_of_cells(plan),
        [(4.0, 5.0, "cart"), (15.0, 5.2, "staff"), (15.0, 5.2, "staff"), (99.0, 0.0, "cart")],
        width=44,
    )
    text = "\n".join(lines)
    assert all(len(line) == 44 for line in lines) and 5 <= len(lines) <= 20
    assert text.count("R") == 4 and text.count("c") == 1 and "2" in text  # two staff, one spot
    assert "0" in text and "1" in text  # the zones' digits
    border = [line.index("·", 3) for line in lines[2:-2] if "·" in line[3:]]
    assert border and all(abs(b - 22) <= 1 for b in border)  # x = 10 m is half way
    assert "0 west" in floorview.legend(plan) and "c cart" in floorview.legend(plan)
