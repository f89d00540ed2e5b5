"""Hostile input gets a clear error and exit 2, never a traceback or unbounded memory: config
files that are binary, in another encoding, endless or huge, secrets typed into the file, and
arbitrary bytes (fuzzed)."""

from __future__ import annotations

import codecs
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent.config.checks import load_checked
from edge_agent.errors import ConfigError
from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.paths import CONFIG_DIR, TRACKS

MAX_OUTPUT = 20_000
"""An error report is for a person: it stays short, whatever the file."""


def _check(path: Path | str) -> str:
    proc = run_cli("check-config", str(path), expect=2, timeout=60)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr) < MAX_OUTPUT, len(proc.stderr)
    return proc.stderr


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("binary", bytes(range(256)) * 8),
        ("utf16", MINIMAL.encode("utf-16")),
        ("latin1", ("# Café in Köln\n" + MINIMAL).encode("latin-1")),
        ("nul", MINIMAL.encode() + b"\x00\x00"),
    ],
)
def test_a_file_that_is_not_utf8_toml_is_an_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / f"{name}.toml"
    path.write_bytes(data)
    err = _check(path)
    assert str(path) in err


def test_the_byte_order_mark_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(codecs.BOM_UTF16_LE + "x = 1\n".encode("utf-16-le"))
    assert "UTF-8" in _check(path)


def test_an_endless_file_is_refused_at_its_size_limit() -> None:
    assert "larger than" in _check("/dev/zero")


def test_a_file_of_many_unknown_keys_gives_a_short_report(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text(
        MINIMAL.replace("{state}", str(tmp_path))
        + "\n".join(f"unknown_{i} = {'x' * 200!r}" for i in range(3000)),
        encoding="utf-8",
    )
    err = _check(path)
    assert "more" in err.splitlines()[-1]  # "… and N more"
    assert err.startswith("3000 error(s) in")


@pytest.mark.parametrize(
    ("table", "key", "secret"),
    [
        ("mqtt", "password", "hunter2-pw"),
        ("mqtt", "pass_word", "hunter2-pw"),
        ("mqtt.tls", "key", "-----BEGIN PRIVATE KEY-----abc"),
        ("sensors", "bind_key", "231d39c1d7cc1ab1aee224cd096db932"),
        ("mqtt", "token", "eyJhbGciOi-token"),
        ("privacy", "secret", "s3cr3t-store-key"),
    ],
)
def test_a_secret_typed_into_the_file_is_never_echoed(
    tmp_path: Path, table: str, key: str, secret: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL.replace("{state}", str(tmp_path)) + f'\n[{table}]\n{key} = "{secret}"\n',
        encoding="utf-8",
    )
    for command in (("check-config", str(path)), ("run", "--config", str(path))):
        proc = run_cli(*command, expect=2, timeout=60)
        assert f"{table}.{key}" in proc.stderr  # the key is named …
        assert secret not in proc.stderr + proc.stdout  # … its value is not
        assert secret[:6] not in proc.stderr + proc.stdout


def test_secret_looking_names_that_are_references_still_show_their_value(
    tmp_path: Path,
) -> None:
    """``password_file`` names a file, not a secret: the engineer needs to see which."""
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL.replace("{state}", str(tmp_path))
        + '\n[mqtt]\nusername = "gw"\npassword_file = "/nonexistent/pw"\n',
        encoding="utf-8",
    )
    assert "mqtt.password_file = '/nonexistent/pw': file cannot be read" in _check(path)


# ---------------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    try:
        load_checked(path)
    except ConfigError as err:
        assert err.issues
        text = str(err)
        assert len(text) < MAX_OUTPUT


@FUZZ
@given(data=st.binary(max_size=2048))
@example(data=b"\xff\xfe")
@example(data=b"[gateway]\nid = 'x'\nsite = 'y'\n[[zones]]\nid = 'a'\nradius_m = 1e309\n")
def test_fuzz_arbitrary_bytes_give_a_config_error_or_a_config(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    _load(tmp_path_factory.mktemp("fuzz"), data)


_EXAMPLE = (CONFIG_DIR / "agent.toml").read_text(encoding="utf-8")
_TOKENS = ["=", "[", "]", "[[", "]]", '"', "'", "\n", "#", "-1", "1e9", "true", "{", "}", ",", "."]


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 8))
def test_fuzz_mutated_example_configs_give_a_config_error_or_a_config(
    tmp_path_factory: pytest.TempPathFactory, seed: int, edits: int
) -> None:
    rng = random.Random(seed)
    lines = _EXAMPLE.splitlines(keepends=True)
    for _ in range(edits):
        i = rng.randrange(len(lines))
        op = rng.randrange(4)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, rng.choice(lines))
        elif op == 2:
            line = lines[i]
            j = rng.randrange(len(line) + 1)
            lines[i] = line[:j] + rng.choice(_TOKENS) + line[j:]
        else:
            lines[i] = re.sub(r"= .*", "= " + rng.choice([*_TOKENS, "-0", '"x"']), lines[i])
    _load(tmp_path_factory.mktemp("fuzz"), "".join(lines).encode())


# ------------------------------------------------------------------ other files we read


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("binary", bytes(range(256)) * 64, "line 1"),
        ("long", b"{" * 200_000, "longer than"),
        ("nested", b"[" * 20_000 + b"\n", "line 1"),
        ("nul", b'{"t": 1}\x00\n', "NUL"),
    ],
)
def test_replay_of_a_file_that_is_not_a_recording_names_the_problem(
    tmp_path: Path, suffix: str, name: str, data: bytes, said: str
) -> None:
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    proc = run_cli("replay", str(path), expect=1, timeout=60)
    assert "Traceback" not in proc.stderr and said in proc.stderr, proc.stderr[-500:]


def test_a_consent_list_that_is_not_text_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "consent.json").write_bytes(b"\xff\xfe{\x00")
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL.replace("{state}", str(state)), encoding="utf-8")
    err = _check(path)
    assert "privacy.consent_file" in err and "UTF-16" in err


def test_a_calibration_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    (tmp_path / "cal.toml").write_bytes(bytes(range(256)))
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL.replace("{state}", str(tmp_path)) + '\n[calibration]\nfile = "cal.toml"\n',
        encoding="utf-8",
    )
    err = _check(path)
    assert "cal.toml" in err and "UTF-8" in err


# ------------------------------------------------------------------------------ flags


@pytest.mark.parametrize(
    "args",
    [
        ("demo", "--speed", "-3"),
        ("demo", "--duration", "nan"),
        ("scan", "--interval", "0"),
        ("record", "x.jsonl", "--count", "0"),
        ("replay", "x.jsonl", "--speed", "inf"),
        ("calibrate", "--from", "x.csv", "--out", "c.toml", "--seconds", "-1"),
    ],
)
def test_a_bad_flag_is_reported_as_the_flag(args: tuple[str, ...]) -> None:
    proc = run_cli(*args, expect=2, timeout=60)
    flag = next(a for a in args if a.startswith("--") and a not in ("--from", "--out"))
    assert f"argument {flag}: must be" in proc.stderr
    assert ".toml:" not in proc.stderr  # not blamed on a line of the config


def test_a_missing_calibration_file_is_named_with_its_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL.replace("{state}", str(tmp_path)) + '\n[calibration]\nfile = "nope.toml"\n',
        encoding="utf-8",
    )
    err = _check(path)
    assert (
        f"{path}:24: calibration.file = 'nope.toml': {tmp_path / 'nope.toml'}: file not found"
        in err
    )


def test_demo_with_a_broker_that_refuses_says_so() -> None:
    proc = run_cli("demo", "--broker", "mqtt://127.0.0.1:1", "--duration", "2", expect=1)
    assert "cannot connect" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_captures_and_receiver_files_that_are_not_text_are_named(
    tmp_path: Path, command: str
) -> None:
    binary = tmp_path / "capture.csv"
    binary.write_bytes(bytes(range(256)) * 20)
    receivers = str(TRACKS / "receivers.json")
    out = ["--out", str(tmp_path / "c.toml")] if command == "calibrate" else []
    capture = ["--from", str(binary)] if command == "calibrate" else [str(binary)]
    proc = run_cli(command, *capture, "--receivers", receivers, *out, expect=1, timeout=60)
    assert "Traceback" not in proc.stderr and "capture.csv" in proc.stderr, proc.stderr[-500:]
    track = ["--from" if command == "calibrate" else "", str(TRACKS / "straight_01.csv")]
    proc = run_cli(command, *[a for a in track if a], "--receivers", "/dev/zero", *out,
                   expect=1, timeout=60)  # fmt: skip
    assert "Traceback" not in proc.stderr and "larger than" in proc.stderr, proc.stderr[-500:]


def test_a_scenario_that_is_not_text_is_named(tmp_path: Path) -> None:
    scenario = tmp_path / "store.toml"
    scenario.write_bytes(bytes(range(256)) * 4)
    proc = run_cli("demo", "--scenario", str(scenario), "--duration", "2", expect=1)
    assert "not UTF-8 text" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
