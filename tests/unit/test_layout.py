"""The layout holds: the pure stages import no I/O and read no file, ``edge_agent`` has no import
cycle, no module is over 600 lines, and ``firmware_sim`` is imported in one place only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "edge_agent"
PURE = [
    "edge_agent.pipeline.decoders",
    "edge_agent.pipeline.identity",
    "edge_agent.pipeline.kernels",
    "edge_agent.pipeline.proximity",
    "edge_agent.pipeline.zones",
    "edge_agent.pipeline.sensors",
    "edge_agent.pipeline.tick",
]
IO_MODULES = ["sqlite3", "sqlite_utils", "paho", "bleak", "dbus_fast"]
"""Third-party I/O libraries; our own socket and file users are all under runtime/ and tools/."""

PROBE = textwrap.dedent(
    """
    import builtins, io, json, os, sys, traceback, zoneinfo

    reads = []
    ours = os.path.join({package!r}, "")
    skip = ("pathlib.py", "/io.py", "codecs.py")
    system_data = tuple(os.path.join(p, "") for p in zoneinfo.TZPATH)  # the time zone database

    def caller():
        for frame, _ in traceback.walk_stack(sys._getframe(2)):
            name = frame.f_code.co_filename
            if not name.endswith(skip):
                return name
        return ""

    def watch(fn):
        def wrapped(file, *args, **kwargs):
            where = caller()
            if where.startswith(ours) and not str(file).startswith(system_data):
                reads.append(f"{{where}} opened {{file}}")
            return fn(file, *args, **kwargs)
        return wrapped

    builtins.open = io.open = watch(io.open)
    os.open = watch(os.open)

    for name in {pure!r}:
        __import__(name)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {io!r})
    ours_loaded = sorted(
        m for m in sys.modules if m.startswith(("edge_agent.runtime", "edge_agent.tools"))
    )

    # and a tick of adverts through the pipeline, with a configuration given as text
    from edge_agent.config import parse_config
    from edge_agent.models import Advert
    from edge_agent.pipeline.tick import Pipeline

    cfg = parse_config({config!r})
    p = Pipeline(cfg)
    adverts = [
        Advert("C4:11:22:33:44:55", -60, i * 0.1, 1.7e9 + i * 0.1, "rx-a") for i in range(50)
    ]
    p.process(adverts, 5.0, 1.7e9 + 5.0)
    loaded_after = sorted(m for m in sys.modules if m.split(".")[0] in {io!r})
    found = {{"loaded": loaded, "after": loaded_after, "ours": ours_loaded, "reads": reads}}
    print(json.dumps(found))
    """
)

CONFIG = """
[gateway]
id = "gw-layout"
site = "s"
[[zones]]
id = "a"
[[receivers]]
id = "rx-a"
zone = "a"
"""


def _probe() -> dict[str, list[str]]:
    code = PROBE.format(package=str(PACKAGE), pure=PURE, io=IO_MODULES, config=CONFIG)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_pure_stages_import_no_io_and_read_no_file() -> None:
    found = _probe()
    assert found["loaded"] == [], f"importing the pipeline loads {found['loaded']}"
    assert found["after"] == [], f"running a tick loads {found['after']}"
    assert found["ours"] == [], f"the pipeline imports {found['ours']}"
    assert found["reads"] == [], found["reads"]


def test_the_probe_sees_io_when_there_is_some() -> None:
    """The probe is not blind: the runtime does load sqlite3 and paho."""
    code = (
        "import sys, edge_agent.runtime.agent; "
        "print(sorted(m for m in sys.modules if m in ('sqlite3', 'paho')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "['paho', 'sqlite3']", proc.stderr


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            deps.add(base)
            deps.update(f"{base}.{a.name}" for a in node.names)
    return {d for d in deps if d in known and d != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return [*stack[stack.index(w) :], w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_edge_agent_has_no_import_cycle() -> None:
    known = _modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := p.read_text(encoding="utf-8").count("\n")) > 600
    }
    assert not long, long


def test_firmware_sim_is_imported_by_one_module_only() -> None:
    known = _modules()
    importers = {
        name
        for name, path in known.items()
        if any(
            isinstance(n, ast.Import | ast.ImportFrom)
            and any(
                (getattr(n, "module", None) or "").startswith("firmware_sim")
                or a.name.startswith("firmware_sim")
                for a in n.names
            )
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert importers == {"edge_agent.tools.simstore"}, importers
