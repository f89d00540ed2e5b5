"""The contract's documents, made from the payload models: JSON Schemas and AsyncAPI 3.

Two schemas per payload: the **producer** schema (``additionalProperties: false``: exactly what
this version sends; our tests hold every message to it) and the **consumer** schema (additional
properties allowed: what an integrator should validate with, so that the next additive field of
v1 does not break them). Both carry ``$schema`` (JSON Schema 2020-12) and ``$id``. The AsyncAPI
document uses the consumer schemas, with MQTT bindings (QoS, retain) and an example per message
(``contract_examples.json``). ``edge-agent schema`` writes them; the package ships them
(``edge_agent/schemas/``), and a test fails when the shipped files drift from the models.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from pydantic import BaseModel

from edge_agent import __version__, topics
from edge_agent.contract import (
    CONTRACT_VERSION,
    BeaconHealthPayload,
    CommandRequest,
    CommandResultPayload,
    HealthPayload,
    MomentCountPayload,
    MomentPayload,
    OccupancyPayload,
    PresencePayload,
    ReadingPayload,
    RssiSummaryPayload,
    StatusPayload,
)
from edge_agent.contract import AggregatePayload as _Aggregate

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = f"urn:edge-agent:contract:v{CONTRACT_VERSION}"
"""``$id`` of a schema: ``{ID_BASE}:{producer|consumer}:{Model}``."""
MQTT_BINDING = "0.2.0"


class Channel:
    """One topic of the contract, for the documents."""

    def __init__(
        self,
        key: str,
        template: str,
        model: type[BaseModel],
        text: str,
        *,
        qos: int = 1,
        retain: bool = False,
        action: str = "send",
        absolute: bool = False,
    ) -> None:
        self.key = key
        self.address = template if absolute else "{prefix}/{site}/{gateway}/" + template
        self.model = model
        self.text = text
        self.qos = qos
        self.retain = retain
        self.action = action


_T = topics.TEMPLATES
CHANNELS = [
    Channel(
        "status", _T["status"], StatusPayload, "Gateway online/offline (last will).", retain=True
    ),
    Channel("health", _T["health"], HealthPayload, "Periodic counters.", qos=0),
    Channel("presence", _T["presence"], PresencePayload, "Zone enter, update and exit."),
    Channel("occupancy", _T["occupancy"], OccupancyPayload, "Zone occupancy.", retain=True),
    Channel("sensor", _T["sensor"], ReadingPayload, "Sensor readings."),
    Channel(
        "beacon_health",
        _T["beacon_health"],
        BeaconHealthPayload,
        "Beacon battery and liveness.",
        retain=True,
    ),
    Channel("moment", _T["moment"], MomentPayload, "Moments that matter (rules of [[moments]])."),
    Channel(
        "moment_count",
        _T["moment_count"],
        MomentCountPayload,
        "Anonymous counts of a dwell or sequence rule per interval.",
    ),
    Channel("aggregate", _T["aggregate"], _Aggregate, "Anonymous journey aggregates."),
    Channel(
        "command",
        _T["command"],
        CommandRequest,
        "Remote commands to the gateway ([commands] enabled); confine who may publish here "
        "with the broker's ACL.",
        action="receive",
    ),
    Channel(
        "command_result",
        _T["command_result"],
        CommandResultPayload,
        "Results of commands (or the request's MQTT 5 response topic, with its correlation data).",
    ),
    Channel(
        "store_rssi_summary",
        _T["rssi_summary"],
        RssiSummaryPayload,
        "Store-internal: per-receiver signal summaries the store's gateways share, so that each "
        "fuses every receiver of the store. Not for integrators.",
        qos=0,
        absolute=True,
    ),
]
"""Every topic, in the order of the documents."""
MODELS: dict[str, type[BaseModel]] = {c.model.__name__: c.model for c in CHANNELS}


def _with_ids(schema: dict[str, Any], role: str, name: str) -> dict[str, Any]:
    return {"$schema": DIALECT, "$id": f"{ID_BASE}:{role}:{name}", **schema}


def producer_schemas() -> dict[str, dict[str, Any]]:
    """Model name → the exact schema of what this version sends."""
    return {
        name: _with_ids(m.model_json_schema(), "producer", name)
        for name, m in sorted(MODELS.items())
    }


def consumer_schemas() -> dict[str, dict[str, Any]]:
    """Model name → the tolerant schema integrators validate with (additive fields pass)."""
    return {
        name: _with_ids(tolerant(m.model_json_schema()), "consumer", name)
        for name, m in sorted(MODELS.items())
    }


def tolerant(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``additionalProperties: false`` lifted."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("additionalProperties") is False:
                del node["additionalProperties"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def examples() -> dict[str, dict[str, Any]]:
    """Model name → an example payload (shipped with the package)."""
    text = resources.files("edge_agent").joinpath("contract_examples.json").read_text("utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def _draft07(schema: dict[str, Any]) -> dict[str, Any]:
    """A 2020-12 schema as AsyncAPI's schema format (draft 07) reads it: tuples as ``items``
    arrays, ``$defs`` references to the document's components."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "prefixItems" in node:
                node["items"] = node.pop("prefixItems")
                node.pop("maxItems", None)
                node.pop("minItems", None)
            if isinstance(node.get("$ref"), str):
                node["$ref"] = node["$ref"].replace("#/$defs/", "#/components/schemas/")
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(out)
    return result


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the topic contract (consumer schemas)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    samples = examples()
    for ch in CHANNELS:
        name = ch.model.__name__
        schema = _draft07(tolerant(ch.model.model_json_schema()))
        for sub_name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(sub_name, sub)
        schemas[name] = schema
        messages[name] = {
            "name": name,
            "title": name,
            "summary": ch.text,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "examples": [{"name": f"{name}-example", "payload": samples[name]}],
        }
        params = [p.strip("{}") for p in ch.address.split("/") if p.startswith("{")]
        channels[ch.key] = {
            "address": ch.address,
            "description": f"{ch.text} QoS {ch.qos}, retained: {'yes' if ch.retain else 'no'}.",
            "parameters": {p: {"description": _PARAMS.get(p, p)} for p in params},
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{ch.action}_{ch.key}"] = {
            "action": ch.action,
            "channel": {"$ref": f"#/channels/{ch.key}"},
            "messages": [{"$ref": f"#/channels/{ch.key}/messages/{name}"}],
            "bindings": {
                "mqtt": {"qos": ch.qos, "retain": ch.retain, "bindingVersion": MQTT_BINDING}
            },
        }
    return {
        "asyncapi": "3.0.0",
        "id": f"{ID_BASE}:asyncapi",
        "info": {
            "title": "Store edge agent",
            "version": f"{CONTRACT_VERSION}.0.0",
            "description": f"The MQTT contract of the store edge agent {__version__}: every "
            "payload carries v, id, seq, ts and type; fields are only ever added within v1 "
            "(validate with the consumer schemas, which accept them).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "The store's broker (mqtt.urls); TLS on 8883 with mqtts://.",
                "variables": {
                    "host": {"default": "localhost"},
                    "port": {"default": "1883", "enum": ["1883", "8883"]},
                },
                "bindings": {
                    "mqtt": {"cleanSession": True, "keepAlive": 30, "bindingVersion": MQTT_BINDING}
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


_PARAMS = {
    "prefix": "mqtt.prefix (default 'store').",
    "site": "gateway.site.",
    "gateway": "gateway.id.",
    "device": "Device id: configured id, beacon id or pseudonym.",
    "zone": "Zone id.",
    "name": "Moment rule name, or command name.",
    "kind": "Aggregate kind: flow, dwell, visits, visit_length.",
}


def documents() -> dict[str, str]:
    """File name → text of every contract document (what ``edge-agent schema`` writes and
    the package ships)."""
    out = {
        f"producer/{n}.schema.json": json.dumps(s, indent=2) + "\n"
        for n, s in producer_schemas().items()
    }
    out |= {
        f"consumer/{n}.schema.json": json.dumps(s, indent=2) + "\n"
        for n, s in consumer_schemas().items()
    }
    out["asyncapi.json"] = json.dumps(asyncapi(), indent=2) + "\n"
    return out


def shipped(name: str) -> str:
    """A contract document as the package ships it."""
    return resources.files("edge_agent").joinpath("schemas", name).read_text("utf-8")
