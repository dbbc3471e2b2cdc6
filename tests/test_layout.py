"""The package layout: the platform's layers hold, and the platform stands without the demo.

`plugins/hdp` is the platform; `plugins/hdp_sim` (the demo's simulated sources) and
`plugins/hdp_bench` (the benchmarks) sit beside it and are never imported by it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "plugins" / "hdp"
OUTSIDE = ("hdp_sim", "hdp_bench")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_platform_module_imports_the_simulator_or_the_bench():
    files = sorted(PLATFORM.rglob("*.py"))
    assert len(files) > 20, "the platform package was not found"
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in imported_modules(path) if m.startswith(OUTSIDE)
        )
        for path in files
    }
    offenders = {path: mods for path, mods in offenders.items() if mods}
    assert not offenders, f"the platform imports the demo or the benchmarks: {offenders}"
    # and the DAG files, which the production image ships with the platform
    for dag_file in sorted((REPO / "dags").glob("*.py")):
        assert not any(m.startswith(OUTSIDE) for m in imported_modules(dag_file)), dag_file


def test_the_scan_sees_a_forbidden_import(tmp_path):
    """The check above is not vacuous: a planted import of the simulator is found."""
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from hdp_sim.his import generate\n    return generate\n")
    assert "hdp_sim.his" in imported_modules(planted)


def test_import_linter_contracts_are_kept():
    """`make lint`'s layer contract (.importlinter): cli > orchestration > runtime > ingest |
    analytics > quality > security > warehouse > root modules; hdp never imports hdp_sim or
    hdp_bench."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), ".importlinter"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "0 broken" in proc.stdout


def test_the_platform_imports_without_the_demo_on_the_path():
    """In a fresh interpreter that cannot see plugins/hdp_sim or plugins/hdp_bench (as in the
    production image), every platform module imports."""
    code = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {OUTSIDE!r}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import hdp
for m in pkgutil.walk_packages(hdp.__path__, 'hdp.'):
    if not m.name.endswith('__main__'):
        importlib.import_module(m.name)
print('imported', len(sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.startswith("imported")
