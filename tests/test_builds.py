"""The transform's change check (hdp.warehouse.builds), without a database: what counts as a
change of the dbt project, and when a run builds or skips. tests/test_airflow.py runs it in a
real transform DAG run."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

from hdp.warehouse.builds import BuildInputs, decide, project_checksum


def _manifest(tmp_path, *, code: str = "select 1", created_at: float = 1.0, other_pkg: str = ""):
    manifest = {
        "metadata": {"project_name": "hdp", "generated_at": f"2026-12-0{int(created_at)}"},
        "nodes": {
            "model.hdp.fct_x": {
                "raw_code": code,
                "checksum": {"name": "sha256", "checksum": str(hash(code))},
                "config": {"materialized": "table"},
                "created_at": created_at,
            }
        },
        "macros": {
            "macro.hdp.m": {"package_name": "hdp", "macro_sql": "{% macro m() %}1{% endmacro %}"},
            "macro.dbt.x": {"package_name": "dbt", "macro_sql": other_pkg},
        },
    }
    path = tmp_path / f"manifest-{abs(hash((code, created_at, other_pkg)))}.json"
    path.write_text(json.dumps(manifest))
    return path


def test_the_project_checksum_follows_code_not_parse_time(tmp_path):
    base = project_checksum(_manifest(tmp_path))
    # a re-parse (new generation time, new created_at) or another package's macro: same project
    assert project_checksum(_manifest(tmp_path, created_at=2.0)) == base
    assert project_checksum(_manifest(tmp_path, other_pkg="changed")) == base
    # a model's code changed: another project
    assert project_checksum(_manifest(tmp_path, code="select 2")) != base


INPUTS = BuildInputs(
    published_batches=12,
    last_batch_id=40,
    released_rows=0,
    last_release="",
    project="p" * 64,
    day=date(2026, 12, 2).isoformat(),
)


def test_nothing_new_skips_and_says_how_to_force():
    decision = decide(INPUTS, INPUTS.fingerprint())
    assert not decision.build
    assert "nothing new" in decision.reason and "force" in decision.reason


def test_each_kind_of_change_builds():
    last = INPUTS.fingerprint()
    changes = {
        "a batch published": replace(INPUTS, published_batches=13, last_batch_id=41),
        "quarantine released": replace(INPUTS, released_rows=5, last_release="2026-12-02 10:00"),
        "the dbt project": replace(INPUTS, project="q" * 64),
        "a new day": replace(INPUTS, day="2026-12-03"),
    }
    for what, inputs in changes.items():
        decision = decide(inputs, last)
        assert decision.build, what
        assert "changed" in decision.reason


def test_first_run_forced_run_and_unknown_project_build():
    assert decide(INPUTS, None).build
    forced = decide(INPUTS, INPUTS.fingerprint(), forced="full_refresh")
    assert forced.build and "full_refresh" in forced.reason
    # no dbt manifest to compare: build, whatever was recorded
    unknown = replace(INPUTS, project="")
    assert decide(unknown, unknown.fingerprint()).build
