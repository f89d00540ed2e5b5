"""The demo shows the store and delivers to a broker; the README says what is true."""

from __future__ import annotations

import json
import re

from edge_agent.cli import build_parser
from edge_agent.contract import model_for
from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.cli import run_cli
from tests.support.mqtt_watch import Watcher
from tests.support.paths import ROOT


def test_demo_runs_and_messages_arrive_at_the_broker() -> None:
    demo = ["demo", "--config", str(ROOT / "config/agent.toml"), "--store-time", "240"]
    out = run_cli(*demo, "--speed", "40", timeout=300).stdout  # 4 minutes, whatever the load
    assert "local mosquitto on mqtt://127.0.0.1:" in out
    # moments as they fire: carts lingering at the bakery (a minute) are named
    assert re.search(r"^moment: \S+  bakery-linger  instant  cart-\d+  bakery  dwell_s=", out, re.M)
    assert "Zones" in out and "Latest events" in out
    m = re.search(
        r"^demo done: adverts \d+, events committed (\d+), published (\d+), "
        r"received at broker (\d+)",
        out,
        re.M,
    )
    assert m, out[-2000:]
    committed, published, received = map(int, m.groups())
    assert committed > 0 and published == committed and received >= committed
    assert re.search(r"zone match vs truth \d+\.\d%", out)


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert code and code[0].split() == ["make", "demo"]
    assert code[1].split() == ["make", "test"]


def test_every_command_in_the_readme_exists() -> None:
    text = (ROOT / "README.md").read_text()
    commands = set(re.findall(r"edge-agent ([a-z][a-z-]+)", text))
    known = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands and commands <= known, commands - known


def test_the_architecture_section_matches_the_folders() -> None:
    """Every module of every folder is named in its row of README's architecture table, and
    every module a row names exists there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([a-z_/]+)/` \| (.*?) \|[^|]*\|$", section, re.M)
    }
    package = ROOT / "edge_agent"
    folders = {"edge_agent": package} | {
        f"edge_agent/{p.name}": p for p in package.iterdir() if (p / "__init__.py").exists()
    }
    folders["firmware_sim"] = ROOT / "firmware_sim"
    assert set(folders) <= set(rows), set(folders) - set(rows)
    for name, folder in folders.items():
        named = set(re.findall(r"`([a-z_]+\.py|[a-z_]+/)`", rows[name]))
        present = {
            p.name for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
        }
        present |= {f"{p.name}/" for p in folder.iterdir() if (p / "__init__.py").exists()}
        present -= (
            {f"{n}/" for n in ("config", "pipeline", "runtime", "tools")}
            if name == "edge_agent"
            else set()
        )
        assert present <= named, f"{name}: not in README: {present - named}"
        nested = {p.name for sub in folder.iterdir() if sub.is_dir() for p in sub.glob("*.py")}
        assert named <= present | nested, (
            f"{name}: README names what is not there: {named - present}"
        )


def test_demo_on_a_shared_broker_keeps_out_of_the_real_gateways_way(
    mosquitto: LocalMosquitto,
) -> None:
    """On a broker the real gateway uses too: the demo publishes as "<gateway>-demo" (its
    event ids never collide), and leaves no retained status behind."""
    watcher = Watcher(mosquitto.host, mosquitto.port, "retail/#")
    try:
        demo = ["demo", "--config", str(ROOT / "config/agent.toml"), "--duration", "4"]
        run_cli(*demo, "--speed", "20", "--broker", mosquitto.url, timeout=120)
        got = watcher.settle()
    finally:
        watcher.close()
    roots = {m.topic.split("/")[2] for m in got}
    assert roots == {"gw-demo-01-demo"}, roots
    late = Watcher(mosquitto.host, mosquitto.port, "retail/+/+/status")
    try:
        assert [m for m in late.settle() if m.retain and m.payload] == []
    finally:
        late.close()


def test_every_payload_example_in_the_readme_is_valid() -> None:
    text = (ROOT / "README.md").read_text()
    examples = re.findall(r"```json\n(.*?)```", text, re.S)
    assert len(examples) >= 4
    for example in examples:
        data = json.loads(example)
        model_for(data["type"]).model_validate(data)
