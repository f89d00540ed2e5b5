"""What every section of ``agent.toml`` shares: strict, frozen models and the id types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.ids import SEGMENT_PATTERN

Segment = Annotated[str, Field(pattern=SEGMENT_PATTERN)]
"""An id that is one MQTT topic segment."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
