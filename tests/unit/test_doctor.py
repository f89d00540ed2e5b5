"""doctor's checks of this machine that need no radio or broker: directories, clock, cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge_agent.tools import doctor


def test_directories_absent_unwritable_or_fine(tmp_path: Path) -> None:
    missing = doctor._state_dir(tmp_path / "nope")
    assert missing.ok and "not there yet" in missing.detail
    assert doctor._state_dir(tmp_path).ok and "writable" in doctor._state_dir(tmp_path).detail
    plain = tmp_path / "file"
    plain.write_text("x")
    broken = doctor._state_dir(plain)  # a file where the directory should be
    assert not broken.ok and "StateDirectory=" in broken.fix


def test_the_numba_cache_says_cold_or_warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert "cold" in doctor._numba_cache().detail
    (tmp_path / "k.nbi").write_bytes(b"")
    assert "warm" in doctor._numba_cache().detail
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert doctor._numba_cache().ok


def test_the_clock_needs_ntp(monkeypatch: pytest.MonkeyPatch) -> None:
    def answers(text: str) -> object:
        return lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=text + "\n")

    assert doctor._clock(answers("yes")).detail == "plausible, NTP synchronised"  # type: ignore[arg-type]
    unsynced = doctor._clock(answers("no"))  # type: ignore[arg-type]
    assert not unsynced.ok and "set-ntp" in unsynced.fix
    monkeypatch.setattr(doctor.time, "time", lambda: 86_400.0)  # 1970: never set
    assert not doctor._clock(answers("yes")).ok  # type: ignore[arg-type]


def test_the_report_says_what_to_fix() -> None:
    findings = [doctor.Finding("a", True, "fine"), doctor.Finding("b", False, "x", "do y")]
    text = doctor.render(findings)
    assert text.splitlines() == ["ok   a: fine", "FIX  b: x", "     → do y", "1 thing(s) to fix"]
    assert doctor.render(findings[:1]).endswith("all good")
