"""One definition per rule (issue 13, item 4): the quarantine predicate with composite keys,
identity-card validation with full-width input, landing tables of file sources from their
manifests, and one asset catalogue and one gate exception (real PostgreSQL, GX and dbt)."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from hdp.config import REPO_ROOT, load_settings
from hdp.manifest import load_manifest
from hdp.warehouse.database import connect

SOURCE = "pathology"  # a file source the platform library has never heard of
# other column names than the LIS's, and a composite primary key (report, finding within it)
MANIFEST = """\
source: pathology
kind: files
description: Pathology findings (a test source)
drop_dir: {drop_dir}
pattern: findings_*.csv
schedule: "@daily"
owner: data-platform
contains_personal_data: false
freshness_hours: 26
tables:
  - name: findings
    primary_key: [report_no, finding_no]
    columns: [report_no, finding_no, organ, grade, signed_at]
"""
CATALOGUE = """\
source: pathology
checks:
  - id: pathology.findings.grade_known
    table: findings
    level: row
    category: conformance
    severity: quarantine
    column: grade
    fails_when: grade not in ('G1', 'G2', 'G3')
    threshold: 0.5
    means: A finding's grade is one of G1-G3.
    fix: Correct the grade in the pathology system.
  - id: pathology.findings.colon_reviewed
    table: findings
    level: row
    category: plausibility
    severity: warn
    column: organ
    fails_when: organ = 'colon'
    threshold: 0.5
    means: A colon finding is reviewed by a second pathologist (flagged, not held).
    fix: Nothing to do, the row proceeds.
  - id: schema.columns
    table: findings
    level: batch
    category: conformance
    severity: block
    expectation: ExpectTableColumnsToMatchSet
    kwargs:
      column_set: [report_no, finding_no, organ, grade, signed_at, _batch_id, _extracted_at,
        _source, _file_name, _line_no, _malformed, _raw_line]
      exact_match: true
    means: The landing table has the file's columns plus the file load metadata.
    fix: Migrate the landing table.
  - id: watermark.not_null
    table: findings
    level: batch
    category: completeness
    severity: block
    expectation: ExpectColumnValuesToNotBeNull
    kwargs: {column: signed_at}
    means: Every finding is signed.
    fix: Ask the sender to re-send the file.
"""
# report R1 has two findings; the second's grade is unknown: only (R1, 2) is quarantined
FINDINGS = [
    ("R1", "1", "lung", "G1"),
    ("R1", "2", "lung", "G9"),
    ("R2", "1", "liver", "G2"),
    ("R2", "2", "liver", "G3"),
    ("R3", "1", "colon", "G1"),
    ("R3", "2", "colon", "G2"),
]


def _file_source(tmp_path: Path):
    """A manifest folder, checks catalogue and drop folder of a new file source, outside the
    repository: nothing of the platform library names it."""
    drops = tmp_path / "drops"
    drops.mkdir()
    manifests = tmp_path / "sources"
    manifests.mkdir()
    (manifests / f"{SOURCE}.yml").write_text(MANIFEST.format(drop_dir=drops), encoding="utf-8")
    expectations = tmp_path / "expectations"
    expectations.mkdir()
    shutil.copy(load_settings().expectations_dir / "defaults.yml", expectations)
    (expectations / f"{SOURCE}.yml").write_text(CATALOGUE, encoding="utf-8")
    lines = ["report_no,finding_no,organ,grade,signed_at"]
    lines += [",".join([*row, "2024-03-01 10:00"]) for row in FINDINGS]
    (drops / "findings_20240301.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_manifest(SOURCE, manifests), expectations, drops


def _landing_schema(platform, schema: str) -> None:
    """What set-up's roles give every raw_<source> of dags/sources (hdp.security.apply_roles):
    the loader writes it, the transformer reads it."""
    owner = connect(platform.warehouse)
    with owner, owner.cursor() as cur:
        cur.execute(f"create schema if not exists {schema}")
        cur.execute(f"grant usage, create on schema {schema} to hdp_loader")
        cur.execute(f"grant usage on schema {schema} to hdp_transformer")
        cur.execute(
            f"alter default privileges for role hdp_loader in schema {schema} "
            "grant select on tables to hdp_transformer"
        )
    owner.close()


def _load_gate_publish(platform, manifest, expectations: Path, drops: Path):
    """The file DAG's load → gate → publish, as the loader, with the source's own catalogue."""
    from hdp.ingest.files import ingest_file, list_new_files, publish_files
    from hdp.quality.gate import validate_batch

    spec = manifest.tables[0]
    wh = connect(platform.loader)
    try:
        gates = []
        for path in list_new_files(wh, manifest, drops):
            loaded = ingest_file(wh, manifest, path, "run-1", folder=drops)
            gates.append(
                validate_batch(
                    wh,
                    warehouse_url=platform.loader.url,
                    quality_dir=load_settings().quality_dir,
                    expectations_dir=expectations,
                    batch_id=loaded.batch_id,
                    source=manifest.source,
                    table=spec.name,
                    primary_key=list(spec.primary_key),
                    watermark=spec.watermark,
                )
            )
        published = publish_files(wh, manifest=manifest, run_id="run-1")
    finally:
        wh.close()
    return gates, published


def _dbt_project(tmp_path: Path, model_sql: str) -> Path:
    """A dbt project with the platform's own macros (copied from dbt_project/macros) and one
    staging model over the new source."""
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt_project" / "macros", project / "macros")
    (project / "models").mkdir()
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """\
            name: one_definition
            version: "1.0.0"
            config-version: 2
            profile: hdp
            model-paths: ["models"]
            macro-paths: ["macros"]
            flags:
              send_anonymous_usage_stats: false
            models:
              one_definition:
                +schema: staging
                +materialized: view
            """
        ),
        encoding="utf-8",
    )
    (project / "models" / "_sources.yml").write_text(
        textwrap.dedent(
            f"""\
            version: 2
            sources:
              - name: raw_{SOURCE}
                schema: raw_{SOURCE}
                tables: [{{name: findings}}]
              - name: audit
                schema: audit
                tables: [{{name: load_batch}}, {{name: row_issue}}, {{name: quarantined_row}}]
            """
        ),
        encoding="utf-8",
    )
    (project / "models" / f"stg_{SOURCE}__findings.sql").write_text(model_sql, encoding="utf-8")
    return project


def _run_dbt(project: Path, *args: str, manifests: Path) -> subprocess.CompletedProcess[str]:
    from hdp.runtime.env import platform_env
    from hdp.runtime.standard import registry_env

    settings = load_settings()
    proc = subprocess.run(
        [
            "dbt",
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
        ],
        env={**platform_env(settings), **registry_env(project, manifests)},
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc


def _rows(login, query: str, params=()):
    conn = connect(login)
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.close()
    return rows


# ----------------------------------------------------------------- quarantine, composite keys


@pytest.mark.integration
def test_a_quarantined_row_of_a_composite_key_never_reaches_staging(platform, tmp_path):
    manifest, expectations, drops = _file_source(tmp_path)
    _landing_schema(platform, manifest.raw_schema)
    gates, published = _load_gate_publish(platform, manifest, expectations, drops)
    assert [g.rows_quarantined for g in gates] == [1]
    assert published == {"findings_20240301.csv": len(FINDINGS) - 1}
    # the gate keeps the key of the row as a keyed hash of both columns, and the columns
    issues = _rows(
        platform.warehouse,
        "select record_key, key_columns, action, check_id from audit.row_issue order by 4, 1",
    )
    assert [(len(k), c, a) for k, c, a, _ in issues] == [
        (64, ["report_no", "finding_no"], "warn"),
        (64, ["report_no", "finding_no"], "warn"),
        (64, ["report_no", "finding_no"], "quarantine"),
    ]
    assert not any("R1" in k or "R3" in k for k, *_ in issues)
    # the rows behind the issues, found again through the one definition both sides call
    assert _rows(
        platform.loader,
        "select k.record_key, i.action from audit.issue_keys(%s, 'findings', "
        "array['report_no', 'finding_no'], array(select issue_id from audit.row_issue)) as k "
        "join audit.row_issue as i using (issue_id) order by 1",
        (SOURCE,),
    ) == [('["R1","2"]', "quarantine"), ('["R3","1"]', "warn"), ('["R3","2"]', "warn")]
    # published_rows() takes the table's key from its manifest
    project = _dbt_project(
        tmp_path,
        f"select report_no, finding_no, grade from (\n"
        f"    {{{{ published_rows('raw_{SOURCE}', 'findings') }}}}\n"
        ") as published\n",
    )
    _run_dbt(project, "run", manifests=tmp_path / "sources")
    staged = _rows(
        platform.transformer,
        f"select report_no, finding_no, grade from staging.stg_{SOURCE}__findings order by 1, 2",
    )
    assert staged == sorted((r, f, g) for r, f, _, g in FINDINGS if (r, f) != ("R1", "2"))
    # released by a replay after the fix, the row is published like the others
    fixed = expectations / f"{SOURCE}.yml"
    fixed.write_text(CATALOGUE.replace("'G3')", "'G3', 'G9')"), encoding="utf-8")
    from hdp.quality.gate import replay_quarantine

    wh = connect(platform.loader)
    outcome = replay_quarantine(wh, source=SOURCE, expectations_dir=expectations, manifest=manifest)
    wh.close()
    assert outcome == {"pathology.findings.grade_known": (1, 0)}
    # released and warned rows stay recorded in audit.row_issue, none is held any more
    assert _rows(platform.warehouse, "select count(*) from audit.row_issue") == [(3,)]
    assert _rows(platform.warehouse, "select count(*) from audit.quarantined_row") == [(0,)]
    staged = _rows(platform.transformer, f"select count(*) from staging.stg_{SOURCE}__findings")
    assert staged == [(len(FINDINGS),)]


# ----------------------------------------------------------------- identity cards, full width


def _fullwidth(text: str) -> str:
    """Digits and letters as a Chinese input method types them in full-width mode."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in text)


@pytest.mark.integration
def test_a_full_width_card_number_passes_the_gate_as_staging_accepts_it(platform):
    from hdp.ingest.extract import extract_table
    from hdp.quality.gate import publish_run, validate_batch
    from hdp.runtime.dbt import run_dbt
    from hdp_sim import his

    owner = connect(platform.his_owner)
    his.generate(owner, his.SimConfig(seed=5, scale=0.01, history_days=7, defect_rate=0.0))
    with owner.cursor() as cur:
        # a valid number (the simulator's cards are valid at defect rate 0), typed full-width
        cur.execute(
            "select patient_id, id_card_no from his.patients "
            "where id_card_no ~ '^[0-9]{17}[0-9X]$' order by patient_id limit 1"
        )
        patient_id, card = cur.fetchone()
        cur.execute(
            "update his.patients set id_card_no = %s where patient_id = %s",
            (_fullwidth(card[:6]) + card[6:14] + _fullwidth(card[14:]), patient_id),
        )
    owner.commit()
    owner.close()
    manifest = load_manifest("his")
    settings = load_settings()
    src, wh = connect(platform.his_reader), connect(platform.loader)
    loaded = extract_table(src, wh, manifest, "patients", "run-1")
    gate = validate_batch(
        wh,
        warehouse_url=platform.loader.url,
        quality_dir=settings.quality_dir,
        expectations_dir=settings.expectations_dir,
        batch_id=loaded.batch_id,
        source="his",
        table="patients",
        primary_key=["patient_id"],
        watermark=manifest.table("patients").watermark,
    )
    publish_run(wh, source="his", run_id="run-1", tables=["patients"])
    src.close()
    wh.close()
    checksum = next(c for c in gate.checks if c.check_id == "his.patients.id_card_checksum")
    assert checksum.status == "pass", checksum.observed
    assert _rows(
        platform.warehouse,
        "select count(*) from audit.row_issue where record_key = %s",
        (str(patient_id),),
    ) == [(0,)]
    run_dbt("run", "--select", "stg_his__patients")
    assert _rows(
        platform.transformer,
        "select is_id_card_valid, id_card_no = %s from staging.stg_his__patients "
        "where patient_id = %s",
        (card, patient_id),
    ) == [(True, True)]
    # the gate's function and staging's macro give the same verdict, on both forms
    assert _rows(
        platform.loader,
        "select audit.is_valid_cn_id_card(%s), audit.is_valid_cn_id_card(%s), "
        "audit.normalize_cn_id_card(%s) = %s",
        (card, _fullwidth(card), "\u3000" + _fullwidth(card.lower()), card),
    ) == [(True, True, True)]


# ----------------------------------------------------------------- landing tables, manifests


@pytest.mark.unit
def test_no_landing_table_is_written_by_hand_in_the_warehouse_schema():
    schema_sql = (REPO_ROOT / "plugins" / "hdp").rglob("*.sql")
    hand_written = [
        f"{path.name}: {m.group(0)}"
        for path in schema_sql
        for m in re.finditer(
            r"create table[^(]*\braw_\w+\.\w+", path.read_text(encoding="utf-8"), re.I
        )
    ]
    assert hand_written == []


@pytest.mark.integration
def test_a_new_file_source_gets_its_landing_table_from_its_manifest(platform, tmp_path):
    from hdp.ingest.files import FILE_METADATA, ensure_landing_tables

    manifest, _, _ = _file_source(tmp_path)
    owner = connect(platform.warehouse)
    ensure_landing_tables(owner, manifest)
    ensure_landing_tables(owner, manifest)  # idempotent: set-up runs any number of times
    owner.close()
    columns = _rows(
        platform.warehouse,
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = 'findings' order by ordinal_position",
        (manifest.raw_schema,),
    )
    wanted = [(c, "text") for c in manifest.tables[0].columns] + [
        (name, kind) for name, kind in FILE_METADATA
    ]
    assert columns == wanted
    # the LIS's landing table comes from dags/sources/lis.yml at set-up, before any file
    lis = load_manifest("lis")
    lis_columns = _rows(
        platform.warehouse,
        "select column_name from information_schema.columns "
        "where table_schema = 'raw_lis' and table_name = 'results' order by ordinal_position",
    )
    assert [c for (c,) in lis_columns] == [*lis.tables[0].columns, *(n for n, _ in FILE_METADATA)]


# ----------------------------------------------------------------- assets and the gate's error


@pytest.mark.unit
def test_each_asset_uri_and_the_gate_exception_are_defined_once():
    platform_code = {
        path: path.read_text(encoding="utf-8")
        for path in (REPO_ROOT / "plugins" / "hdp").rglob("*.py")
    }
    uris = {p.name for p, text in platform_code.items() if '"hdp://' in text or 'f"hdp://' in text}
    assert uris == {"assets.py"}, uris
    gate_classes = {
        p.name for p, text in platform_code.items() if "class QualityGateFailed" in text
    }
    assert len(gate_classes) == 1, gate_classes
