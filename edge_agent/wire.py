"""An event's payload bytes, made once from its typed body, without validating it again.

The pipeline's event bodies are typed records, correct by construction; running each through
its pydantic model on the hot path (the outbox commits every event) cost more than the rest of
the commit. ``event_payload`` builds the same JSON as ``checked_event_payload`` — the payload
model's field order and defaults, its RFC 3339 conversions, pydantic-core's own serialiser — and
a test holds the two to byte equality over the golden replay and the simulated store; the
integration tests validate every message the broker delivers against the shipped schemas.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, BeforeValidator
from pydantic_core import PydanticUndefined, to_json

from edge_agent.contract import EVENT_MODELS, _as_rfc3339, rfc3339
from edge_agent.models import ContextEvent, body_fields

_ENVELOPE = ("v", "id", "seq", "ts", "type")
_MISSING = object()


class _Shape:
    """What a payload model asks of the body's values: order, defaults, conversions."""

    __slots__ = ("defaults", "floats", "order", "times")

    def __init__(self, model: type[BaseModel]) -> None:
        fields = model.model_fields
        self.order = [n for n in fields if n not in _ENVELOPE]
        self.defaults = {
            n: f.default for n, f in fields.items() if f.default is not PydanticUndefined
        }
        self.times = frozenset(
            n
            for n, f in fields.items()
            if any(isinstance(m, BeforeValidator) and m.func is _as_rfc3339 for m in f.metadata)
        )
        self.floats = frozenset(
            n for n, f in fields.items() if f.annotation in (float, float | None)
        )
        """Fields the model holds as floats: an int there is written as the model would."""


_SHAPES = {kind: _Shape(model) for kind, model in EVENT_MODELS.items()}
_ts = lru_cache(maxsize=64)(rfc3339)
"""The events of a tick share their wall clock: formatted once."""


def event_payload(gateway: str, seq: int, ev: ContextEvent) -> bytes:
    """The payload of event ``seq``, as JSON bytes (the outbox stores and sends these)."""
    shape = _SHAPES[ev.type]
    body = ev.body
    data: dict[str, Any] = {
        "v": 1,
        "id": f"{gateway}:{seq}",
        "seq": seq,
        "ts": _ts(ev.wall),
        "type": ev.type,
    }
    for name in shape.order:
        value = getattr(body, name, _MISSING)
        if value is _MISSING:
            value = shape.defaults[name]
        elif name in shape.floats and type(value) is int:
            value = float(value)
        elif name in shape.times:
            value = _as_rfc3339(value)
        data[name] = value
    return to_json(data)  # nested records (dataclasses) as pydantic writes them


def checked_event_payload(gateway: str, seq: int, ev: ContextEvent) -> bytes:
    """The same payload through its pydantic model (validated: tests and tools)."""
    data = {
        "v": 1,
        "id": f"{gateway}:{seq}",
        "seq": seq,
        "ts": rfc3339(ev.wall),
        "type": ev.type,
        **body_fields(ev.body),
    }
    return EVENT_MODELS[ev.type].model_validate(data).model_dump_json().encode()
