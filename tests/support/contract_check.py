"""Holding messages to the shipped contract, and telling an additive change from a breaking one
(test helpers)."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from edge_agent.contract import model_for
from edge_agent.contract_docs import shipped


@functools.cache
def _validator(model: str, role: str = "producer") -> Draft202012Validator:
    return Draft202012Validator(json.loads(shipped(f"{role}/{model}.schema.json")))


def model_name(payload: dict[str, Any]) -> str | None:
    """The contract model of a decoded payload (by its ``type``), or ``None`` (a request)."""
    kind = payload.get("type")
    if kind == "rssi_summary":
        return "RssiSummaryPayload"
    if not isinstance(kind, str):
        return None
    try:
        return model_for(kind).__name__
    except KeyError:
        return "unknown type " + kind


def problem(topic: str, payload: bytes) -> str | None:
    """Why a message received from the agent breaks the shipped producer schema (``None``: it
    does not). Empty payloads (a retained message cleared) and requests to the gateway's
    command topics are not the agent's messages."""
    if not payload or ("/cmd/" in topic and not topic.endswith("/result")):
        return None
    if topic.startswith("homeassistant/"):
        return None  # Home Assistant's own contract: checked by test_homeassistant
    try:
        data = json.loads(payload)
    except ValueError:
        return f"{topic}: not JSON"
    if not isinstance(data, dict):
        return f"{topic}: not an object"
    name = model_name(data)
    if name is None or name.startswith("unknown"):
        return f"{topic}: {name or 'no type'}"
    errors = sorted(_validator(name).iter_errors(data), key=str)
    return f"{topic}: {errors[0].message}" if errors else None


# ----------------------------------------------------------------- compatibility


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node.get("$ref"), str):
        name = node["$ref"].rsplit("/", 1)[1]
        node = {**root["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _branches(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, root)
    if "anyOf" in node:
        return [b for sub in node["anyOf"] for b in _branches(sub, root)]
    return [node]


def _types(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for b in _branches(node, root):
        t = b.get("type")
        if isinstance(t, list):
            out |= set(t)
        elif isinstance(t, str):
            out.add(t)
        elif "const" in b or "enum" in b:
            out.add("enum")
        else:
            out.add("any")
    return out


def _values(node: dict[str, Any], root: dict[str, Any]) -> set[str] | None:
    """The values an enum or const allows (``None``: any of its type)."""
    out: set[str] = set()
    for b in _branches(node, root):
        if "const" in b:
            out.add(json.dumps(b["const"]))
        elif "enum" in b:
            out |= {json.dumps(v) for v in b["enum"]}
        elif b.get("type") != "null":
            return None
    return out


def incompatibilities(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """How a consumer written against ``old`` (a producer schema) could reject a message valid
    under ``new``: a field it relies on gone or no longer always there, a type widened, a value
    it does not know. Added fields and added optional ones are additive: not listed."""
    return _compare(old, new, old, new, path or "$")


def _compare(
    a: dict[str, Any], b: dict[str, Any], ra: dict[str, Any], rb: dict[str, Any], path: str
) -> list[str]:
    out: list[str] = []
    a, b = _resolve(a, ra), _resolve(b, rb)
    ta, tb = _types(a, ra), _types(b, rb)
    if "any" not in ta and not tb <= ta:
        return [f"{path}: type {sorted(ta)} became {sorted(tb)}"]
    va, vb = _values(a, ra), _values(b, rb)
    if va is not None and (vb is None or not vb <= va):
        added = sorted((vb or {"<any>"}) - va)
        out.append(f"{path}: values {', '.join(added)} are new")
    obj_a = [x for x in _branches(a, ra) if x.get("type") == "object"]
    obj_b = [x for x in _branches(b, rb) if x.get("type") == "object"]
    if obj_a and obj_b:
        pa, pb = obj_a[0].get("properties", {}), obj_b[0].get("properties", {})
        req_a, req_b = set(obj_a[0].get("required", [])), set(obj_b[0].get("required", []))
        for name in sorted(req_a - req_b):
            out.append(f"{path}.{name}: no longer required (consumers rely on it)")
        for name, sub in pa.items():
            if name not in pb:
                out.append(f"{path}.{name}: removed")
            else:
                out += _compare(sub, pb[name], ra, rb, f"{path}.{name}")
        addl_a = obj_a[0].get("additionalProperties")
        addl_b = obj_b[0].get("additionalProperties")
        if isinstance(addl_a, dict) and isinstance(addl_b, dict):
            out += _compare(addl_a, addl_b, ra, rb, f"{path}.*")
    arr_a = [x for x in _branches(a, ra) if x.get("type") == "array"]
    arr_b = [x for x in _branches(b, rb) if x.get("type") == "array"]
    if arr_a and arr_b:
        ia, ib = arr_a[0].get("items"), arr_b[0].get("items")
        if isinstance(ia, dict) and isinstance(ib, dict):
            out += _compare(ia, ib, ra, rb, f"{path}[]")
        pa_items, pb_items = arr_a[0].get("prefixItems"), arr_b[0].get("prefixItems")
        if isinstance(pa_items, list) and isinstance(pb_items, list):
            if len(pa_items) != len(pb_items):
                out.append(f"{path}: tuple of {len(pa_items)} became {len(pb_items)}")
            for i, (x, y) in enumerate(zip(pa_items, pb_items, strict=False)):
                out += _compare(x, y, ra, rb, f"{path}[{i}]")
    return out
