"""Style gates run by `make test`: ruff (Python) and sqlfluff (dbt models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_ruff_check_is_clean():
    proc = _run(str(BIN / "ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_ruff_format_is_clean():
    proc = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]


# Static, but about two CPU-minutes (sqlfluff parses every rendered model; the cleaning-rule
# counts alone render to 23,000 characters): out of the one-minute unit tier. `make lint` runs
# it too. Every core lints: half the wall time on two.
@pytest.mark.integration
def test_sqlfluff_is_clean():
    proc = _run(
        str(BIN / "sqlfluff"),
        "lint",
        "dbt_project/models",
        "dbt_project/macros",
        "--disable-progress-bar",
        "--nocolor",
        "--processes",
        "0",
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
