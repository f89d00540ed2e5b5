"""Configurations the tests run the agent with, and recordings of the simulated store."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.cli import run_cli
from tests.support.paths import CONFIG_DIR

MINIMAL = """
[gateway]
id = "gw-test"
site = "site-1"
state_dir = "{state}"

[[zones]]
id = "a"
radius_m = 5.0

[[zones]]
id = "b"
radius_m = 5.0

[[receivers]]
id = "rx-a"
zone = "a"

[[receivers]]
id = "rx-b"
zone = "b"
"""


def sim_config(
    tmp_path: Path,
    broker: LocalMosquitto | str,
    *,
    speed: float,
    duration: float | None,
    edits: Mapping[str, str] | None = None,
) -> Path:
    """The shipped example config, pointed at the simulated store, a temp dir and the broker
    (a URL, or a TOML list of them); ``edits`` are further replacements in the file's text."""
    if isinstance(broker, LocalMosquitto):
        broker = broker.url
    urls = broker if broker.startswith("[") else f'["{broker}"]'
    text = (CONFIG_DIR / "agent.toml").read_text(encoding="utf-8")
    replacements = {
        'state_dir = "/var/lib/edge-agent"': f'state_dir = "{tmp_path / "state"}"',
        'kind = "bleak"': 'kind = "sim"',
        'scenario = "store-demo.toml"': f'scenario = "{CONFIG_DIR / "store-demo.toml"}"',
        "speed = 1.0": f"speed = {speed}",
        "# duration_s = 600.0": f"duration_s = {duration}" if duration else "",
        'urls = ["mqtt://127.0.0.1:1883"]': f"urls = {urls}",
        "\ninterval_s = 30.0": "\ninterval_s = 1.0",  # [health], so that it is exercised
        "queue_size = 20000": f'queue_size = 20000\ntruth_log = "{tmp_path / "truth.jsonl"}"',
        **(edits or {}),
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def record_store(rec: Path, duration: float, truth: Path | None = None) -> None:
    """The demo store recorded by ``firmware-sim run`` for ``duration`` simulated seconds
    (and its ground truth, when asked)."""
    args = ["run", "--scenario", str(CONFIG_DIR / "store-demo.toml"), "--duration"]
    args += [f"{duration:g}", "--record", str(rec)]
    if truth is not None:
        args += ["--truth", str(truth)]
    run_cli(*args, program="firmware_sim.cli")
