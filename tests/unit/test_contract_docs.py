"""The contract documents: producer and consumer schemas with ``$schema`` and ``$id``, AsyncAPI 3
with MQTT bindings and examples, shipped with the package and never drifting from the models;
a change that is not additive fails here."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from edge_agent import topics
from edge_agent.contract_docs import (
    CHANNELS,
    DIALECT,
    MODELS,
    asyncapi,
    consumer_schemas,
    documents,
    examples,
    producer_schemas,
    shipped,
)
from tests.support.cli import run_cli
from tests.support.contract_check import incompatibilities, problem
from tests.support.paths import ROOT

BASELINE = ROOT / "tests" / "data" / "contract" / "v1"
"""The producer schemas of v1 as first released: frozen (never regenerated)."""
ASYNCAPI_CLI = ROOT / ".cache" / "asyncapi" / "node_modules" / ".bin" / "asyncapi"


def test_every_shipped_document_is_what_the_models_make() -> None:
    """Drift: a model changed but `make schema` was not run (or a file was edited by hand)."""
    for name, text in documents().items():
        assert shipped(name) == text, f"edge_agent/schemas/{name} drifted: run make schema"
    on_disk = {
        str(p.relative_to(ROOT / "edge_agent" / "schemas"))
        for p in (ROOT / "edge_agent" / "schemas").rglob("*.json")
    }
    assert on_disk == set(documents()), "a shipped document no model makes any more"


def test_schema_command_writes_every_document(tmp_path: Path) -> None:
    run_cli("schema", "--out", str(tmp_path))
    for name, text in documents().items():
        assert (tmp_path / name).read_text() == text


def test_schemas_are_valid_json_schema_with_their_ids() -> None:
    ids = set()
    for role, schemas in (("producer", producer_schemas()), ("consumer", consumer_schemas())):
        assert set(schemas) == set(MODELS)
        for name, schema in schemas.items():
            assert schema["$schema"] == DIALECT
            assert schema["$id"].endswith(f":{role}:{name}")
            Draft202012Validator.check_schema(schema)
            ids.add(schema["$id"])
    assert len(ids) == 2 * len(MODELS)


def test_every_example_holds_to_both_schemas_and_the_model() -> None:
    samples = examples()
    assert set(samples) == set(MODELS)
    for name, sample in samples.items():
        MODELS[name].model_validate(sample)
        for schemas in (producer_schemas(), consumer_schemas()):
            Draft202012Validator(schemas[name]).validate(sample)


def test_consumer_schemas_accept_an_additive_field_and_producer_schemas_do_not() -> None:
    for name, sample in examples().items():
        grown = {**sample, "added_in_v1_9": {"anything": [1, 2]}}
        assert Draft202012Validator(consumer_schemas()[name]).is_valid(grown), name
        if MODELS[name].model_config.get("extra") == "forbid":  # what the agent reads: tolerant
            assert not Draft202012Validator(producer_schemas()[name]).is_valid(grown), name
    health = copy.deepcopy(examples()["HealthPayload"])
    health["publisher"]["new_counter"] = 3  # nested objects too
    assert Draft202012Validator(consumer_schemas()["HealthPayload"]).is_valid(health)


def test_asyncapi_covers_every_topic_with_bindings_and_an_example() -> None:
    doc = asyncapi()
    assert doc["asyncapi"].startswith("3.")
    assert doc["servers"]["broker"]["protocol"] == "mqtt"
    addresses = {c["address"] for c in doc["channels"].values()}
    for template in topics.TEMPLATES.values():
        assert template in addresses or f"{{prefix}}/{{site}}/{{gateway}}/{template}" in addresses
    for key, op in doc["operations"].items():
        mqtt = op["bindings"]["mqtt"]
        assert mqtt["qos"] in (0, 1) and isinstance(mqtt["retain"], bool), key
    for name, message in doc["components"]["messages"].items():
        assert message["name"] == name and message["examples"], name
        ref = message["payload"]["$ref"].rsplit("/", 1)[1]
        assert ref in doc["components"]["schemas"]
    retained = {c.key for c in CHANNELS if c.retain}
    assert retained == {"status", "occupancy", "beacon_health"}


def test_v1_has_only_grown_since_its_release() -> None:
    """Every payload's producer schema against the frozen v1 baseline: additive only."""
    current = producer_schemas()
    for path in sorted(BASELINE.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        assert name in current, f"{name}: a payload of v1 is gone"
        found = incompatibilities(json.loads(path.read_text()), current[name], name)
        assert not found, found


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["properties"].pop("zone"), "zone: removed"),
        (lambda s: s["required"].remove("zone"), "zone: no longer required"),
        (lambda s: s["properties"]["zone"].update(type="integer"), "zone: type"),
        (
            lambda s: s["properties"]["dwell_s"].update(
                anyOf=[{"type": "number"}, {"type": "null"}]
            ),
            "dwell_s: type",
        ),
        (
            lambda s: s["properties"]["type"]["enum"].append("teleport"),
            'type: values "teleport" are new',
        ),
    ],
)
def test_the_compatibility_check_catches_what_is_not_additive(change, expected) -> None:  # type: ignore[no-untyped-def]
    old = producer_schemas()["PresencePayload"]
    assert not incompatibilities(old, old)
    new = copy.deepcopy(old)
    new["properties"]["added"] = {"type": "string"}  # additive: never reported
    assert not incompatibilities(old, new)
    change(new)
    found = incompatibilities(old, new, "PresencePayload")
    assert any(expected in f for f in found), found


def test_the_message_check_names_what_breaks_the_contract() -> None:
    good = json.dumps(examples()["PresencePayload"]).encode()
    assert problem("store/s/gw/presence/cart-1", good) is None
    bad = json.loads(good)
    bad["band"] = "very-near"
    assert "very-near" in (problem("store/s/gw/presence/cart-1", json.dumps(bad).encode()) or "")
    assert problem("store/s/gw/zone/a/occupancy", b"") is None  # a cleared retained message


def test_asyncapi_cli_validates_the_shipped_document(tmp_path: Path) -> None:
    """The AsyncAPI CLI from npm (`make test` installs it into .cache/asyncapi when npm is
    there); its anonymous metrics are switched off (nothing leaves this machine)."""
    if not ASYNCAPI_CLI.exists():
        why = "npm is missing" if shutil.which("npm") is None else "its install failed"
        pytest.skip(f"AsyncAPI CLI not installed ({why}): `make asyncapi-cli` installs it")
    metrics = tmp_path / "analytics.json"
    metrics.write_text('{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "t"}')
    env = {
        **os.environ,
        "CI": "true",
        "ASYNCAPI_METRICS_CONFIG_PATH": str(metrics),
        "SUPPRESS_NO_CONFIG_WARNING": "1",
        "HOME": str(tmp_path),
    }
    doc = ROOT / "edge_agent" / "schemas" / "asyncapi.json"
    proc = subprocess.run(
        [str(ASYNCAPI_CLI), "validate", str(doc)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stdout, proc.stdout
