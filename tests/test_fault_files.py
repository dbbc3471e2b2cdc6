"""Faults and attacks around the file drops (issue 12, findings 6, 7 and 11b), as an operator
and an attacker would meet them: real files, the real hdp_ingest_lis DAG (`airflow dags test`),
real PostgreSQL roles, the real GX gate.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import uuid
from datetime import date
from pathlib import Path

import pytest
from psycopg2 import sql

from hdp.config import REPO_ROOT, load_settings
from hdp.ingest.files import FileRefused, drop_dir, ingest_file, list_new_files, parse_lines
from hdp.manifest import SourceManifest, TableSpec, load_manifest
from hdp.quality.gate import validate_batch
from hdp.warehouse.database import connect
from hdp_sim import his, lab
from hdp_sim.sources import logins
from tests.conftest import reset_platform_databases
from tests.test_airflow import _dags_test, _webhook_receiver

LIS = load_manifest("lis")


def _fresh_drops(days: int) -> Path:
    """Empty platform databases and `days` valid LIS files in the DAG's drop folder."""
    lg = logins()
    reset_platform_databases(lg_admin_dsn())
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=5, scale=0.01, history_days=5))
    folder = drop_dir(LIS)
    shutil.rmtree(folder, ignore_errors=True)
    lab.write_drops(owner, folder, seed=1, last_day=date(2024, 1, days), defect_rate=0.02)
    owner.close()
    return folder


def lg_admin_dsn() -> str:
    from hdp.warehouse.clusters import Cluster

    settings = load_settings()
    return Cluster.for_home(settings.home, settings.pg_port).admin_url()


def _rows(query: str, params=()) -> list[tuple]:
    wh = connect(logins().warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    wh.close()
    return rows


def _audit_rows_holding(marker: str) -> dict[str, int]:
    """Rows of every audit table whose text (all columns) holds the marker, per table. The
    rows are searched here, not by a query naming the marker: the server logs statements."""
    found = {}
    wh = connect(logins().warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'audit' and table_type = 'BASE TABLE'"
        )
        tables = [t for (t,) in cur.fetchall()]
        for table in tables:
            cur.execute(sql.SQL("select t::text from audit.{} as t").format(sql.Identifier(table)))
            found[table] = sum(marker in text for (text,) in cur.fetchall())
    wh.close()
    assert "file_load" in found and "load_batch" in found  # the search did look at the audit
    return {t: n for t, n in found.items() if n}


def _files_holding(folder: Path, marker: str) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and marker.encode() in p.read_bytes()
    ]


def _task_states(env: dict) -> dict[str, str]:
    """task id (`load[2]` for a mapped one) → state, in the latest hdp_ingest_lis run (CLI)."""

    def cli(*args: str) -> list[dict]:
        done = subprocess.run(
            ["airflow", *args], env=env, capture_output=True, text=True, cwd=REPO_ROOT
        )
        assert done.returncode == 0, done.stderr[-2000:]
        # the JSON line, after any warning Airflow prints first
        return json.loads(next(x for x in done.stdout.splitlines() if x.startswith("[")))

    runs = cli("dags", "list-runs", "hdp_ingest_lis", "-o", "json")
    latest = max(runs, key=lambda r: r.get("start_date") or "")
    states = cli("tasks", "states-for-dag-run", "hdp_ingest_lis", latest["run_id"], "-o", "json")
    return {_task_key(s): s["state"] for s in states}


def _task_key(state: dict) -> str:
    index = state.get("map_index")
    return state["task_id"] + (f"[{index}]" if index not in ("", None) else "")


# ------------------------------------------------------------------- finding 6: symlinks


def test_symlink_to_a_secret_is_refused_and_its_content_quoted_nowhere(
    airflow_env,
    cluster,
    tmp_path,
):
    """A link named like a lab file and pointing at a secret is refused without being read;
    the secret (here a marker that looks like a header line) appears in no audit table, no
    Airflow log, no PostgreSQL server log. A `..` path and a hard link are refused too."""
    folder = _fresh_drops(days=1)
    marker = f"HDPSECRET{uuid.uuid4().hex}"
    secrets = load_settings().home / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    secret = secrets / f"fault_files_{marker[-8:]}"
    secret.write_text(f"{marker},{marker}\n{marker}\n", encoding="utf-8")
    link = folder / "lis_results_20240102.csv"
    link.symlink_to(secret)
    pg_log_before = cluster.log_file.stat().st_size
    logs = Path(airflow_env["AIRFLOW_HOME"]) / "logs"
    try:
        run = _dags_test("hdp_ingest_lis", airflow_env)
        output = run.stdout + run.stderr
        assert run.returncode != 0, output[-3000:]  # the refusal shows: the run is red
        refused = _rows(
            "select file_name, status, batch_id, error from audit.file_load "
            "where status = 'refused'"
        )
        assert [(n, s, b) for n, s, b, _ in refused] == [(link.name, "refused", None)]
        assert "symbolic link" in refused[0][3]
        # the valid file of the run is published all the same
        assert _rows("select status, count(*) from audit.load_batch group by 1") == [
            ("published", 1)
        ]
        assert _audit_rows_holding(marker) == {}
        assert marker not in output
        assert _files_holding(logs, marker) == []
        with cluster.log_file.open("rb") as server_log:
            server_log.seek(pg_log_before)
            assert marker.encode() not in server_log.read()

        # the same refusals without Airflow: a path through `..`, and a hard link
        wh = connect(logins().loader)
        try:
            outside = folder / ".." / "lis_results_20240103.csv"
            shutil.copy(folder / "lis_results_20240101.csv", outside.resolve())
            with pytest.raises(FileRefused, match="not a file of the drop folder") as dots:
                ingest_file(wh, LIS, outside, "run-dots")
            hard = folder / "lis_results_20240104.csv"
            os.link(secret, hard)
            with pytest.raises(FileRefused, match="hard link") as linked:
                ingest_file(wh, LIS, hard, "run-hard")
            assert marker not in str(dots.value) + str(linked.value)
            # listed (so that the refusal is recorded and alerted), never read
            assert link in list_new_files(wh, LIS, folder) and hard in list_new_files(wh, LIS)
        finally:
            wh.close()
        assert _audit_rows_holding(marker) == {}
    finally:
        secret.unlink(missing_ok=True)
        (folder.parent / "lis_results_20240103.csv").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_header_refusal_says_line_and_expectation_never_the_content():
    header = ",".join(lab.FILE_COLUMNS)
    with pytest.raises(FileRefused) as drift:
        parse_lines(header.replace(",unit,", ",SECRET-unit,") + "\n", lab.FILE_COLUMNS)
    message = str(drift.value)
    assert "SECRET" not in message
    assert "header line 1" in message and "field 11" in message and "'unit'" in message
    with pytest.raises(FileRefused) as short:
        parse_lines("SECRET-KEY\n", lab.FILE_COLUMNS)
    assert "SECRET" not in str(short.value) and "1 field" in str(short.value)


# ------------------------------------------------------------------- finding 7: one refusal


def test_one_refused_file_does_not_hold_back_the_others(airflow_env):
    """Three valid files, one with another header and one its gate rejects, in one run: the
    three are published (and publish succeeds, so the raw asset is updated for the transform),
    the refused and the rejected one are recorded, and the run fails visibly on a leaf task
    that names both, with an alert."""
    folder = _fresh_drops(days=3)
    valid = sorted(p.name for p in folder.glob("lis_results_*.csv"))
    assert len(valid) == 3
    drifted = folder / "lis_results_20240104.csv"
    text = (folder / valid[0]).read_bytes().decode("utf-8", errors="replace")
    drifted.write_text(text.replace(",unit,", ",unit_code,", 1), encoding="utf-8")
    # every result of an unknown encounter type: the blocking check encounter_type_code fails
    rejected = folder / "lis_results_20240105.csv"
    body = text.replace(",OP,", ",XX,").replace(",IP,", ",XX,")
    rejected.write_text(body, encoding="utf-8")
    try:
        with _webhook_receiver() as (url, received):
            env = {**airflow_env, "HDP_ALERT_CHANNELS": "log,webhook", "HDP_ALERT_WEBHOOK_URL": url}
            run = _dags_test("hdp_ingest_lis", env)
        output = run.stdout + run.stderr
        assert run.returncode != 0, output[-3000:]
        assert _rows(
            "select b.status, count(*) from audit.load_batch as b "
            "join audit.file_load as f using (batch_id) group by 1 order by 1"
        ) == [("published", 3), ("rejected", 1)], output[-3000:]
        assert _rows("select file_name, status from audit.file_load where batch_id is null") == [
            (drifted.name, "refused")
        ]
        published = _rows("select distinct _file_name from raw_lis.results order by 1")
        assert [n for (n,) in published if n != rejected.name] == valid
        states = _task_states(airflow_env)
        assert states["publish"] == "success", states  # raw_lis's asset event: transform
        failed = sorted(t for t, s in states.items() if s == "failed")
        assert len(failed) == 2 and "refused_files" in failed, states
        assert failed[0].startswith("gate["), states  # the rejected file's own gate
        assert sum(states[f"gate[{i}]"] == "success" for i in range(5)) == 4, states
        leaf = [a for a in received if a["task_id"] == "refused_files"]
        assert leaf and drifted.name in leaf[0]["detail"], received
        assert rejected.name in leaf[0]["detail"], received
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------- finding 11b: quoting


@pytest.mark.parametrize(
    ("table", "key"),
    # (a quote in a key column is left out: GX 1.24's uniqueness metric cannot parse one)
    [('t" as r --', "Result Id"), ("Lab Results", "Result Id")],
    ids=["quote", "mixed-case-space"],
)
def test_gate_validates_exactly_the_batch_of_an_oddly_named_table(platform, tmp_path, table, key):
    """A manifest table named with a quote, a space or capitals: the loader's file load and the
    gate quote it as an identifier; the gate validates the batch's one row, not another
    table's hundred (an unquoted name ending in `--` made the rest of the query a comment)."""
    settings = load_settings()
    manifest = SourceManifest(
        source="lis",
        description="odd names",
        conn_id=None,
        schema=None,
        schedule="@daily",
        owner="data-platform",
        contains_personal_data=False,
        freshness_hours=26,
        tables=(TableSpec(table, (key,), "", (key, "updated_at", "Value")),),
        kind="files",
        drop_dir=str(settings.home / "odd"),
        pattern="*.csv",
    )
    # the defaults, with the file load metadata in the table's expected columns (as lis.yml)
    shutil.copy(settings.expectations_dir / "defaults.yml", tmp_path / "defaults.yml")
    metadata = ["_batch_id", "_extracted_at", "_source", "_file_name", "_line_no", "_malformed"]
    schema_check = {
        "id": "schema.columns",
        "table": table,
        "level": "batch",
        "category": "conformance",
        "severity": "block",
        "expectation": "ExpectTableColumnsToMatchSet",
        "kwargs": {
            "column_set": [key, "updated_at", "Value", *metadata, "_raw_line"],
            "exact_match": True,
        },
        "means": "The table has the file's columns and the load metadata.",
        "fix": "None: a test catalogue.",
    }
    (tmp_path / "lis.yml").write_text(json.dumps({"checks": [schema_check]}), encoding="utf-8")
    wh = connect(platform.loader)
    try:
        with wh.cursor() as cur:
            # a decoy the unquoted query would read instead: 100 rows, batch ids 1..100
            cur.execute(
                'create table raw_lis.t ("Result Id" text, updated_at text, _batch_id bigint)'
            )
            cur.execute(
                "insert into raw_lis.t select i, now(), i from generate_series(1, 100) as i"
            )
        wh.commit()
        folder = Path(manifest.drop_dir)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        older, newer = folder / "a.csv", folder / "b.csv"
        with older.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(
                [(key, "updated_at", "Value"), *((i, "2024-01-01", i) for i in range(100))]
            )
        with newer.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([(key, "updated_at", "Value"), (1000, "2024-01-02", 5)])
        first = ingest_file(wh, manifest, older, "run-1")
        second = ingest_file(wh, manifest, newer, "run-2")
        assert (first.rows, second.rows) == (100, 1)
        gate = validate_batch(
            wh,
            warehouse_url=platform.loader.url,
            quality_dir=settings.quality_dir,
            expectations_dir=tmp_path,
            batch_id=second.batch_id,
            source="lis",
            table=table,
            primary_key=[key],
            watermark="updated_at",  # the files above carry one (this catalogue checks none)
        )
        reconciled = next(c for c in gate.checks if c.check_id == "volume.reconciled")
        assert gate.success, gate.failure_message()
        assert reconciled.observed == "1"  # the batch, not the decoy's 100 rows
    finally:
        wh.close()
        shutil.rmtree(settings.home / "odd", ignore_errors=True)


def test_database_errors_of_a_load_keep_no_quoted_value(pg_admin_dsn):
    """PostgreSQL quotes the offending value in its message (and COPY's CONTEXT quotes the
    line): the recorded load error keeps class, SQLSTATE and wording, not the value."""
    import psycopg2

    from hdp.errors import safe_error

    conn = psycopg2.connect(pg_admin_dsn)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.Error) as caught:
            cur.execute("select 'SECRET-VALUE'::integer")
    finally:
        conn.close()
    assert "SECRET-VALUE" in str(caught.value)  # what PostgreSQL says
    message = safe_error(caught.value)
    assert "SECRET-VALUE" not in message
    assert message.startswith("InvalidTextRepresentation (SQLSTATE 22P02): invalid input syntax")
