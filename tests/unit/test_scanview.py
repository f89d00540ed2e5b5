"""What ``edge-agent scan`` shows: one row per device however its frames arrive, a band that
says gone only of what is not heard, and a table that fits an 80-column terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from edge_agent.config import parse_config
from edge_agent.models import Advert, EddystoneTLMFrame, EddystoneUIDFrame, IBeaconFrame
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID
from edge_agent.tools.scan import render
from edge_agent.tools.scanview import ScanView
from firmware_sim.encoders import encode_eddystone_tlm, encode_eddystone_uid, encode_ibeacon
from tests.support.configs import MINIMAL

BADGE = "eddystone:edd1ebeac04e5defa017:000000000001"
STAFF = f'\n[[devices]]\nid = "staff-ana-with-a-long-id"\nkind = "staff"\nbeacon = "{BADGE}"\n'


def _view(tmp_path: Path) -> ScanView:
    return ScanView(parse_config(MINIMAL.replace("{state}", str(tmp_path)) + STAFF))


def _advert(t: float, rssi: int = -60, **kw: object) -> Advert:
    return Advert("D1:00:00:00:00:01", rssi, t, t, "rx-a", "random", **kw)  # type: ignore[arg-type]


def test_a_badge_whose_telemetry_comes_first_is_one_row(tmp_path: Path) -> None:
    view = _view(tmp_path)
    tlm = encode_eddystone_tlm(EddystoneTLMFrame(3000, 21.5, 100, 60.0))
    uid = encode_eddystone_uid(EddystoneUIDFrame("edd1ebeac04e5defa017", "000000000001", -20))
    view.observe([_advert(0.0, service_data={EDDYSTONE_UUID: tlm})])
    assert next(r.id for r in view.rows(0.5)).startswith("p-")  # not yet known as the badge
    view.observe([_advert(1.0, service_data={EDDYSTONE_UUID: uid})])
    view.observe([_advert(2.0, service_data={EDDYSTONE_UUID: tlm})])
    assert [r.id for r in view.rows(2.5)] == ["staff-ana-with-a-long-id"]


def test_a_device_heard_just_now_is_never_gone(tmp_path: Path) -> None:
    view = _view(tmp_path)
    cart = IBeaconFrame("2f234454-cf6d-4a0f-adf2-f4911ba9ffa6", 1, 2, -59)
    far = {APPLE_COMPANY_ID: encode_ibeacon(cart)}
    view.observe([_advert(0.0, rssi=-99, manufacturer_data=far)])
    (row,) = view.rows(0.0)
    assert row.last_seen_s == 0.0 and row.distance_m > 8.0 and row.band == "far"
    assert view.rows(60.0)[0].band == "gone"  # not heard for gone_after_s: gone


def test_the_table_fits_80_columns_without_cutting_an_id(tmp_path: Path) -> None:
    view = _view(tmp_path)
    uid = encode_eddystone_uid(EddystoneUIDFrame("edd1ebeac04e5defa017", "000000000001", -20))
    view.observe([_advert(0.0, service_data={EDDYSTONE_UUID: uid})])
    for width in (80, 120):
        out = io.StringIO()
        console = Console(file=out, width=width, color_system=None)
        console.print(render(view.rows(0.5), view, 40, "edge-agent scan (test)", width))
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width, out.getvalue()
        row = next(line for line in lines if "staff" in line)
        for whole in ("staff-ana-with-a-long-id", "staff", "rx-a", "-60", "near", "0 s"):
            assert whole in row, (whole, row)
