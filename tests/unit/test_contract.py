"""The payload contract: JSON Schemas and AsyncAPI come from the models and cover every topic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.contract import (
    PresencePayload,
    RssiSummaryPayload,
    decode_summary,
    rfc3339,
)


def test_payload_models_reject_what_the_contract_forbids() -> None:
    good = {
        "v": 1,
        "id": "gw:1",
        "seq": 1,
        "ts": rfc3339(0.0),
        "type": "enter",
        "device": "d",
        "device_class": "cart",
        "zone": "a",
        "band": "near",
        "receiver": "rx",
        "distance_m": 1.0,
        "rssi": -60.0,
        "dwell_s": 0.0,
        "confidence": 1.0,
    }
    assert PresencePayload.model_validate(good).ts == "1970-01-01T00:00:00.000Z"
    for change in (
        {"v": 2},
        {"band": "close"},
        {"confidence": 1.5},
        {"extra": 1},
        {"ts": "1970-01-01T00:00:00Z"},
    ):
        with pytest.raises(ValidationError):
            PresencePayload.model_validate({**good, **change})


def test_summaries_on_the_wire_are_bounded_and_validated() -> None:
    from edge_agent.models import DeviceClass
    from edge_agent.pipeline.identity import DeviceRef
    from edge_agent.pipeline.summaries import SummaryCollector, encode

    collector = SummaryCollector(max_devices=2)
    for n in range(3):
        ref = DeviceRef(f"p-{n:016x}", DeviceClass.SHOPPER, False, None, publish=n != 1)
        for v in (-60.0, -64.0):
            collector.add(ref, "hci0", v)
    first = collector.take()
    assert [d.device for d in first] == ["p-0000000000000000", "p-0000000000000001"]
    assert first[0].receivers[0].mean == -62.0 and first[0].receivers[0].variance == 4.0
    assert collector.deferred == 1 and [d.device for d in collector.take()] == [
        "p-0000000000000002"
    ]
    wire = encode("gw-a", 1_800_000_000.5, 7, first)
    summary = decode_summary(wire)
    assert isinstance(summary, RssiSummaryPayload)
    assert summary.step == 7 and summary.devices[1].publish is False
    assert summary.devices[0].rx == [("hci0", -62.0, 4.0, 2)]
    assert b"D0:" not in wire and b":00:" not in wire  # never an address
    for bad in (b"", b"{", b"[]", wire.replace(b'"gw-a"', b'"GW/A"'), b" " * (5 << 20)):
        assert decode_summary(bad) is None
