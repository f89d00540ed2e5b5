"""The payload contract: JSON Schemas and AsyncAPI come from the models and cover every topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.contract import EVENT_MODELS, TOPICS, PresencePayload, asyncapi, rfc3339
from tests.support.cli import run_cli


def test_schema_command_writes_the_contract(tmp_path: Path) -> None:
    run_cli("schema", "--out", str(tmp_path))
    names = {p.name for p in tmp_path.iterdir()}
    assert "asyncapi.json" in names
    for model in {*EVENT_MODELS.values()}:
        schema = json.loads((tmp_path / f"{model.__name__}.schema.json").read_text())
        assert {"v", "id", "seq", "ts", "type"} <= set(schema["required"])


def test_asyncapi_lists_every_topic() -> None:
    doc = asyncapi()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {"{prefix}/{site}/{gateway}/" + t for t in TOPICS}
    for channel in doc["channels"].values():
        for message in channel["messages"].values():
            ref = message["payload"]["$ref"].rsplit("/", 1)[1]
            assert ref in doc["components"]["schemas"]


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
