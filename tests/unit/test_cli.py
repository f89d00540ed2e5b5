"""The commands' manners: help that lists them all, the same flags everywhere, no silent
overwrite, and an exit code that says whether it worked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.paths import CONFIG_DIR

COMMANDS = [
    "run", "check-config", "demo", "get-config", "consent", "erase", "scan", "record", "replay",
    "status", "doctor",
    "eval", "calibrate", "schema",
]  # fmt: skip


def test_help_lists_every_command_with_what_it_does() -> None:
    out = run_cli("--help").stdout
    for command in COMMANDS:
        assert f"\n    {command} " in out, command
    assert "_command" not in out  # written for the field engineer, not from the code


def test_check_config_takes_the_file_as_everywhere_else(tmp_path: Path) -> None:
    cfg = str(CONFIG_DIR / "agent.toml")
    for args in ((cfg,), ("-c", cfg), ("--config", cfg)):
        assert "OK" in run_cli("check-config", *args).stdout
    assert "as FILE or --config" in run_cli("check-config", expect=2).stderr


def test_record_does_not_overwrite_a_file_unless_told(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    scenario = CONFIG_DIR / "store-demo.toml"
    cfg.write_text(
        MINIMAL.replace("{state}", str(tmp_path / "state"))
        + f'\n[source]\nkind = "sim"\nscenario = "{scenario}"\nspeed = 0.0\n',
        encoding="utf-8",
    )
    rec = tmp_path / "rec.jsonl"
    rec.write_text("precious\n")
    err = run_cli("record", str(rec), "-c", str(cfg), "--count", "5", expect=1).stderr
    assert "exists (--force replaces it)" in err and rec.read_text() == "precious\n"
    run_cli("record", str(rec), "-c", str(cfg), "--count", "5", "--force")
    assert len(rec.read_text().splitlines()) == 5


def test_erasing_an_unknown_device_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        MINIMAL.replace("{state}", str(tmp_path / "state"))
        + '\n[[devices]]\nid = "tag-1"\nkind = "asset"\naddress = "C4:11:22:33:44:55"\n',
        encoding="utf-8",
    )
    err = run_cli("erase", "no-such-device", "-c", str(cfg), expect=1).stderr
    assert "nothing was buffered or tracked for 'no-such-device'" in err
    run_cli("erase", "tag-1", "-c", str(cfg))  # a registered device: nothing left is fine


def test_eval_fails_when_a_target_fails_and_shows_progress() -> None:
    proc = run_cli(
        "eval", "--store", str(CONFIG_DIR / "store-demo.toml"), "-c",
        str(CONFIG_DIR / "agent.toml"), "--duration", "60", expect=None, timeout=300,
    )  # fmt: skip
    failed = any(line.startswith("FAIL") for line in proc.stdout.splitlines())
    assert proc.returncode == (1 if failed else 0), proc.stderr[-2000:]
    assert "simulating 60 s of the store" in proc.stderr and "scoring ours" in proc.stderr


def test_eval_moments_needs_rules_and_scores_them(write_config: Callable[[str], Path]) -> None:
    scenario = str(CONFIG_DIR / "store-demo.toml")
    err = run_cli("eval", "--moments", scenario, expect=2).stderr
    assert "--moments needs --config" in err
    bare = write_config(MINIMAL)
    err = run_cli("eval", "--moments", scenario, "-c", str(bare), expect=2).stderr
    assert "[[moments]]" in err
    proc = run_cli(
        "eval", "--moments", scenario, "-c", str(CONFIG_DIR / "agent.toml"),
        "--duration", "20", expect=None, timeout=300,
    )  # fmt: skip
    assert "moments against the simulated store's truth" in proc.stdout
    failed = any(line.startswith("FAIL") for line in proc.stdout.splitlines())
    assert proc.returncode == (1 if failed else 0)
