"""The standard layer in a real dbt project: members come from the registry, and a registry that
does not name every mapping fails the build naming it (docs/standard-model.md)."""

from __future__ import annotations

import json
import subprocess

from hdp.config import load_settings
from hdp.runtime.env import platform_env
from hdp.runtime.standard import ENV_VAR


def _compile(env_overrides: dict[str, str | None], *select: str) -> subprocess.CompletedProcess:
    settings = load_settings()
    env = platform_env(settings)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [
            "dbt",
            "compile",
            "--select",
            *select,
            "--project-dir",
            str(settings.dbt_project_dir),
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
            "--no-partial-parse",
        ],
        env=env,
        cwd=settings.dbt_project_dir,
        capture_output=True,
        text=True,
    )


def test_a_stale_registry_fails_naming_the_mapping_it_lacks(platform) -> None:
    registry = json.loads(platform_env()[ENV_VAR])
    assert "map_lis__source_system" in registry["source_system"]
    registry["source_system"].remove("map_lis__source_system")

    proc = _compile({ENV_VAR: json.dumps(registry)}, "std_source_system")

    assert proc.returncode != 0
    assert "map_lis__source_system is not in HDP_STANDARD_MAPPINGS" in proc.stdout


def test_dbt_without_the_registry_says_how_to_run_it(platform) -> None:
    proc = _compile({ENV_VAR: None}, "std_source_system")

    assert proc.returncode != 0
    assert "python -m hdp dbt" in proc.stdout


def test_every_member_reaches_the_standard_model(platform) -> None:
    proc = _compile({}, "std_source_system")
    assert proc.returncode == 0, proc.stdout[-3000:]
    target = load_settings().dbt_project_dir / "target" / "compiled"
    sql = next(target.glob("**/std_source_system.sql")).read_text(encoding="utf-8")
    for source in ("his", "pharmacy", "lis"):
        assert f'"mapping"."map_{source}__source_system"' in sql
