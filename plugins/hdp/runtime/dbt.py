"""Run dbt (outside Airflow: tests, benchmarks, CLI) against the platform's warehouse."""

from __future__ import annotations

import subprocess

from hdp.config import load_settings
from hdp.runtime.env import platform_env


def run_dbt(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    settings = load_settings()
    cmd = [
        "dbt",
        *args,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_profiles_dir),
    ]
    proc = subprocess.run(
        cmd,
        env=platform_env(settings),
        capture_output=True,
        text=True,
        cwd=settings.dbt_project_dir,
    )
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise RuntimeError(f"`dbt {' '.join(args)}` failed:\n{tail}\n{proc.stderr[-2000:]}")
    return proc
