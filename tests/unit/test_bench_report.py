"""``make bench``'s README section: figures against their targets, rewritten in place."""

from __future__ import annotations

from pathlib import Path

from tests.support import bench_report


def test_the_section_states_each_figure_against_its_target_and_only_it_is_rewritten(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        '{"machine": "a test box", "radio_1000": {"line": "L1", "edge-agent": {"cpu_us": 40.0,'
        ' "line": "L2"}, "Theengs Gateway": {"cpu_us": 400.0}}, "start_up": {"warm_s": 4.2}}'
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nbefore\n\n{bench_report.BEGIN}\nold\n{bench_report.END}\n\nafter\n"
    )
    assert bench_report.regenerate(readme, results)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old" not in text and "a test box" in text
    assert "| whole agent, 1 000 adverts/s | ≤ 50 µs/advert | 40.0 µs | pass |" in text
    assert "| Theengs Gateway ÷ agent, 1 000/s | ≥ 20× | 10.0× | **FAIL** |" in text
    assert "| warm start | ≤ 3 s | 4.20 s | **FAIL** |" in text
    assert "| decode | ≥ 1 M adverts/s | not measured |" in text
    assert "- L1\n- L2" in text
    assert not bench_report.regenerate(readme, tmp_path / "missing.json")
