"""The health counters as a node-exporter textfile: names, labels, escaping, nothing but
numbers, an atomic replace, and a config that names a .prom file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.contract import AdapterHealth, HealthPayload
from edge_agent.errors import ConfigError
from edge_agent.runtime.metrics import prometheus_text, write_textfile
from tests.support.configs import MINIMAL

LINE = re.compile(r'^edge_agent_[a-z0-9_]+\{(?:[a-z]+="(?:[^"\\]|\\.)*",?)+\} -?[0-9.e+]+$')


def _health() -> HealthPayload:
    return HealthPayload.model_construct(
        v=1,
        id="gw:health:1-1",
        seq=7,
        ts="2026-11-24T10:00:00.000Z",
        type="health",
        uptime_s=12.5,
        adverts_total=1000,
        decode={"frames": 900, "malformed": {"bthome:truncated": 2, 'odd"key': 1}, "partial": {}},
        adapters=[AdapterHealth.model_construct(receiver="hci0", adverts=990, adapter="hci0")],
        warnings=["receiver rx-9 is heard but not listed"],
    )


def test_every_number_becomes_a_labelled_gauge() -> None:
    text = prometheus_text(_health(), "gw-1")
    lines = text.splitlines()
    assert all(line.startswith("# TYPE edge_agent_") or LINE.match(line) for line in lines), text
    assert 'edge_agent_adverts_total{gateway="gw-1"} 1000' in lines
    assert 'edge_agent_uptime_s{gateway="gw-1"} 12.5' in lines
    assert 'edge_agent_decode_malformed{gateway="gw-1",key="bthome:truncated"} 2' in lines
    assert 'edge_agent_decode_malformed{gateway="gw-1",key="odd\\"key"} 1' in lines
    assert 'edge_agent_adapters_adverts{gateway="gw-1",receiver="hci0"} 990' in lines
    assert "seq" not in text and "rx-9" not in text  # no envelope, no text
    assert text.count("# TYPE edge_agent_decode_malformed gauge") == 1


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "edge_agent.prom"
    write_textfile(path, "a 1\n")
    write_textfile(path, "b 2\n")
    assert path.read_text() == "b 2\n" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_textfile_must_be_a_prom_file(write_config: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(MINIMAL + '\n[health]\nprometheus_textfile = "/tmp/x.txt"\n'))
    assert "health.prometheus_textfile" in str(info.value) and ".prom" in str(info.value)
