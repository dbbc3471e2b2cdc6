"""Faults an operator or the source can cause around a load (issue 12): a rerun of a published
run, a row committed late at the source, two extracts of one table at once, the recovery after a
blocked gate, and errors that must not be retried. Real PostgreSQL, real roles, real Airflow."""

from __future__ import annotations

import subprocess
import threading
from datetime import timedelta

import pytest

from hdp.config import REPO_ROOT
from hdp.ingest.extract import ExtractError, extract_table
from hdp.manifest import load_manifest
from hdp.quality.gate import publish_run
from hdp.warehouse.database import connect
from hdp_sim import his

MANIFEST = load_manifest("his")
TABLES = [t.name for t in MANIFEST.tables]


def _scalar(conn, query: str, params=()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def _mark_passed(lg, run_id: str) -> None:
    """Scaffolding: stand in for the gate (tested elsewhere) so publish_run can promote."""
    owner = connect(lg.warehouse)
    with owner.cursor() as cur:
        cur.execute("update audit.load_batch set status = 'passed' where run_id = %s", (run_id,))
    owner.commit()
    owner.close()


@pytest.fixture
def source(platform):
    """Platform with a small generated HIS; yields the logins."""
    owner = connect(platform.his_owner)
    his.generate(owner, his.SimConfig(seed=11, scale=0.02, history_days=14))
    owner.close()
    return platform


def _extract_and_publish(lg, run_id: str, tables=("doctors",)) -> None:
    src, wh = connect(lg.his_reader), connect(lg.loader)
    try:
        for table in tables:
            extract_table(src, wh, MANIFEST, table, run_id)
        _mark_passed(lg, run_id)
        publish_run(wh, source="his", run_id=run_id, tables=list(tables))
    finally:
        src.close()
        wh.close()


# --- finding 1: a published batch is immutable ---------------------------------------------------


def test_a_published_batch_cannot_be_reopened_by_any_code(source):
    """Whatever code reruns a published run, the warehouse refuses to move its batch back."""
    import psycopg2

    lg = source
    _extract_and_publish(lg, "run-1", tables=("departments",))
    wh = connect(lg.loader)
    batch = _scalar(wh, "select batch_id from audit.load_batch where run_id = 'run-1'")
    for change in ("status = 'loading'", "high_watermark = null", "rows_written = 0"):
        with (
            pytest.raises(psycopg2.Error, match="a published batch is immutable"),
            wh.cursor() as cur,
        ):
            cur.execute(f"update audit.load_batch set {change} where batch_id = %s", (batch,))
        wh.rollback()
    # and the extract of that run says so instead of reloading
    src = connect(lg.his_reader)
    again = extract_table(src, wh, MANIFEST, "departments", "run-1")
    src.close()
    assert again.already_published and again.batch_id == batch
    assert _scalar(wh, "select status from audit.load_batch where batch_id = %s", (batch,)) == (
        "published"
    )
    wh.close()


# --- finding 2: a row committed late at the source ---------------------------------------------


def test_a_row_committed_late_behind_the_watermark_arrives_on_the_next_run(source):
    lg = source
    _extract_and_publish(lg, "run-1")
    owner = connect(lg.his_owner)
    top = _scalar(owner, "select max(updated_at) from his.doctors")
    held_id, committed_id = (
        r[0] for r in _rows(owner, "select doctor_id from his.doctors order by doctor_id limit 2")
    )
    # a source transaction stamps its row, then stays open ...
    held = connect(lg.his_owner)
    with held.cursor() as cur:
        cur.execute(
            "update his.doctors set title = title, updated_at = %s where doctor_id = %s",
            (top + timedelta(minutes=1), held_id),
        )
    # ... while a later-stamped row commits and is extracted and published
    with owner.cursor() as cur:
        cur.execute(
            "update his.doctors set updated_at = %s where doctor_id = %s",
            (top + timedelta(minutes=2), committed_id),
        )
    owner.commit()
    _extract_and_publish(lg, "run-2")
    held.commit()  # the late row is now visible, stamped before the published watermark
    held.close()
    owner.close()
    _extract_and_publish(lg, "run-3")

    wh = connect(lg.warehouse)
    arrived = _scalar(
        wh,
        "select count(*) from raw_his.doctors r "
        "join audit.load_batch b on b.batch_id = r._batch_id "
        "where b.status = 'published' and r.doctor_id = %s and r.updated_at = %s",
        (held_id, top + timedelta(minutes=1)),
    )
    assert arrived == 1, "the row committed late was never published"
    # the look-back window re-read the later row too: it is not stored a second time
    assert (
        _scalar(
            wh, "select count(*) - count(distinct (doctor_id, updated_at)) from raw_his.doctors"
        )
        == 0
    )
    wh.close()


def _rows(conn, query: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


# --- finding 3: two extracts of one table at once ------------------------------------------------


def _slow_copy(lg, table: str, seconds: float) -> None:
    """Scaffolding (as the owner): every COPY into raw_his.<table> takes `seconds` longer, so two
    extracts started together certainly overlap unless something serialises them."""
    owner = connect(lg.warehouse)
    with owner.cursor() as cur:
        cur.execute(
            f"""
            create or replace function public.slow_copy() returns trigger language plpgsql as $$
            begin perform pg_sleep({seconds}); return null; end $$;
            create trigger slow_copy before insert on raw_his.{table}
                for each statement execute function public.slow_copy();
            """
        )
    owner.commit()
    owner.close()


def _create_raw(lg, table: str) -> int:
    """An unpublished first load of `table` (run-0): the raw table exists, nothing is published.
    Returns the source's row count."""
    src, wh = connect(lg.his_reader), connect(lg.loader)
    try:
        return extract_table(src, wh, MANIFEST, table, "run-0").rows_read
    finally:
        src.close()
        wh.close()


def _concurrently(lg, table: str, run_ids: list[str]) -> list[BaseException | None]:
    outcome: list[BaseException | None] = [None] * len(run_ids)

    def one(i: int, run_id: str) -> None:
        src, wh = connect(lg.his_reader), connect(lg.loader)
        try:
            extract_table(src, wh, MANIFEST, table, run_id)
        except BaseException as exc:  # reported to the test below
            outcome[i] = exc
        finally:
            src.close()
            wh.close()

    threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(run_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcome


def test_two_runs_extracting_one_table_at_once_never_publish_a_row_twice(source):
    lg = source
    rows = _create_raw(lg, "outpatient_visits")
    _slow_copy(lg, "outpatient_visits", 2)
    assert _concurrently(lg, "outpatient_visits", ["run-a", "run-b"]) == [None, None]
    wh = connect(lg.loader)
    for run_id in ("run-a", "run-b"):
        _mark_passed(lg, run_id)
        publish_run(wh, source="his", run_id=run_id, tables=["outpatient_visits"])
    twice = _scalar(
        wh,
        "select count(*) - count(distinct (visit_id, updated_at)) from raw_his.outpatient_visits r "
        "join audit.load_batch b on b.batch_id = r._batch_id where b.status = 'published'",
    )
    published = _scalar(
        wh,
        "select count(*) from raw_his.outpatient_visits r "
        "join audit.load_batch b on b.batch_id = r._batch_id where b.status = 'published'",
    )
    wh.close()
    assert published == rows
    assert twice == 0, f"{twice} rows published twice"


def test_two_attempts_of_one_run_at_once_do_not_overlap(source):
    """`airflow tasks test` while the scheduler runs the same task: one batch, loaded once."""
    lg = source
    rows = _create_raw(lg, "departments")
    _slow_copy(lg, "departments", 2)
    assert _concurrently(lg, "departments", ["run-1", "run-1"]) == [None, None]
    wh = connect(lg.loader)
    batch = _scalar(wh, "select batch_id from audit.load_batch where run_id = 'run-1'")
    in_batch = _scalar(
        wh, "select count(*) from raw_his.departments where _batch_id = %s", (batch,)
    )
    wh.close()
    assert in_batch == rows, f"batch {batch} holds {in_batch} rows, the source {rows}"


def test_a_second_extract_waits_a_bounded_time_then_fails_naming_the_table(source, monkeypatch):
    lg = source
    _create_raw(lg, "departments")
    _slow_copy(lg, "departments", 4)
    monkeypatch.setenv("HDP_EXTRACT_LOCK_TIMEOUT_S", "1")
    outcome = _concurrently(lg, "departments", ["run-1", "run-2"])
    errors = [e for e in outcome if e is not None]
    assert len(errors) == 1, outcome
    assert isinstance(errors[0], ExtractError)
    assert "his.departments" in str(errors[0]) and "another extract" in str(errors[0])


# --- finding 11 (a): what cannot succeed is not retried ----------------------------------------


def test_deterministic_extract_errors_are_not_retried_transient_ones_are(source, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from hdp.orchestration.dags import run_extract
    from hdp.runtime.env import platform_env

    lg = source
    for key, value in platform_env().items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    run_extract(MANIFEST, "departments", "run-1")
    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        cur.execute("alter table his.departments add column floor_no integer")
        cur.execute("alter table his.doctors rename to doctors_old")
    owner.commit()
    owner.close()
    with pytest.raises(AirflowFailException, match=r"schema drift in raw_his\.departments"):
        run_extract(MANIFEST, "departments", "run-2")
    with pytest.raises(AirflowFailException, match=r"his\.doctors not found"):
        run_extract(MANIFEST, "doctors", "run-2")
    # a connection that cannot be made now may work in 30 s: Airflow's retries stay
    monkeypatch.setenv(
        "AIRFLOW_CONN_HDP_WAREHOUSE", lg.loader.url.replace(str(lg.loader.port), "9")
    )
    with pytest.raises(Exception) as transient:
        run_extract(MANIFEST, "patients", "run-2")
    assert not isinstance(transient.value, AirflowFailException)


# --- findings 1 and 8, as an operator does them: real Airflow runs -----------------------------


def _airflow(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["airflow", *args], env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900
    )


def _fresh_his(pg_admin_dsn, seed: int):
    from hdp_sim.sources import logins
    from tests.conftest import reset_platform_databases

    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=seed, scale=0.02, history_days=14))
    owner.close()
    return lg


def _run_ids(lg) -> list[str]:
    """The DAG runs that loaded, in order (`dags test` names a run after the moment it ran)."""
    wh = connect(lg.warehouse)
    runs = [
        r
        for (r,) in _rows(
            wh, "select run_id from audit.load_batch group by 1 order by min(batch_id)"
        )
    ]
    wh.close()
    return runs


def _raw_state(lg) -> dict:
    """Every raw version (table, key, updated_at, batch) and every batch's audit record."""
    wh = connect(lg.warehouse)
    state = {
        spec.name: _rows(
            wh,
            f"select {spec.primary_key[0]}::text, updated_at, _batch_id from raw_his.{spec.name} "
            "order by 1, 2, 3",
        )
        for spec in MANIFEST.tables
    }
    state["load_batch"] = _rows(
        wh,
        "select batch_id, table_name, run_id, status, low_watermark, high_watermark, "
        "rows_written, published_at from audit.load_batch order by batch_id",
    )
    wh.close()
    return state


@pytest.mark.timeout(1200)
def test_rerunning_a_published_run_changes_nothing_and_says_so(airflow_env, pg_admin_dsn):
    lg = _fresh_his(pg_admin_dsn, seed=21)
    first = _airflow(airflow_env, "dags", "test", "hdp_ingest_his", "2025-06-01")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    owner = connect(lg.his_owner)
    his.advance_day(owner)  # corrections move updated_at past run 1's watermarks
    owner.close()
    second = _airflow(airflow_env, "dags", "test", "hdp_ingest_his", "2025-06-02")
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    run_1 = _run_ids(lg)[0]
    before = _raw_state(lg)
    assert {s for *_, s, _l, _h, _r, _p in before["load_batch"]} == {"published"}
    # run 2 brought new versions of patients run 1 had loaded: what a rerun of run 1 could lose
    assert len({key for key, _, _ in before["patients"]}) < len(before["patients"])

    # the operator clears run 1 and its patients extract, gate and publish run again
    cleared = _airflow(
        airflow_env,
        "tasks",
        "clear",
        "hdp_ingest_his",
        "-s",
        "2025-06-01",
        "-e",
        "2025-06-01",
        "-y",
    )
    assert cleared.returncode == 0, (cleared.stdout + cleared.stderr)[-4000:]
    output = ""
    for task, map_index in (("extract", "2"), ("gate", "2"), ("publish", None)):
        extra = ["--map-index", map_index] if map_index else []
        step = _airflow(airflow_env, "tasks", "test", "hdp_ingest_his", task, run_1, *extra)
        output += step.stdout + step.stderr
        assert step.returncode == 0, (task, (step.stdout + step.stderr)[-4000:])
    after = _raw_state(lg)
    for table in TABLES:
        assert after[table] == before[table], f"raw_his.{table} changed by the rerun"
    assert after["load_batch"] == before["load_batch"]
    assert "is already published" in output and "nothing to publish again" in output


@pytest.mark.timeout(1200)
def test_the_documented_recovery_after_a_blocked_gate_publishes_the_whole_run(
    airflow_env, pg_admin_dsn
):
    lg = _fresh_his(pg_admin_dsn, seed=22)
    first = _airflow(airflow_env, "dags", "test", "hdp_ingest_his", "2025-07-01")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    owner = connect(lg.his_owner)
    codes = _rows(owner, "select diagnosis_id, icd10_code from his.diagnoses")
    with owner.cursor() as cur:  # another coding system arrives: a blocking check fails
        cur.execute(
            "update his.diagnoses set icd10_code = 'UNKNOWN-' || diagnosis_id, "
            "updated_at = (select max(updated_at) from his.diagnoses) + interval '1 min' "
            "where diagnosis_id % 4 <> 0"
        )
    owner.commit()
    bad = _airflow(airflow_env, "dags", "test", "hdp_ingest_his", "2025-07-02")
    output = bad.stdout + bad.stderr
    assert bad.returncode != 0
    run_2 = _run_ids(lg)[1]
    wh = connect(lg.warehouse)
    statuses = dict(
        _rows(wh, "select table_name, status from audit.load_batch where run_id = %s", (run_2,))
    )
    assert statuses["diagnoses"] == "rejected" and set(statuses.values()) == {
        "rejected",
        "withheld",
    }

    # the operator fixes the source (the codes, in place), then does what the message says
    with owner.cursor() as cur:
        cur.executemany(
            "update his.diagnoses set icd10_code = %s where diagnosis_id = %s",
            [(code, key) for key, code in codes],
        )
    owner.commit()
    owner.close()
    for task, map_index in (("extract", "5"), ("gate", "5"), ("publish", None)):
        extra = ["--map-index", map_index] if map_index else []
        step = _airflow(airflow_env, "tasks", "test", "hdp_ingest_his", task, run_2, *extra)
        assert step.returncode == 0, (task, (step.stdout + step.stderr)[-4000:])
    statuses = dict(
        _rows(wh, "select table_name, status from audit.load_batch where run_id = %s", (run_2,))
    )
    assert statuses == {t: "published" for t in TABLES}
    fixed = _scalar(
        wh,
        "select count(*) from raw_his.diagnoses r "
        "join audit.load_batch b on b.batch_id = r._batch_id "
        "where b.run_id = %s and r.icd10_code like 'UNKNOWN-%%'",
        (run_2,),
    )
    wh.close()
    assert fixed == 0
    # what the operator just did is what the blocked publish told them to do
    assert f"airflow tasks test hdp_ingest_his extract {run_2} --map-index 5" in output
    assert f"airflow tasks test hdp_ingest_his gate {run_2} --map-index 5" in output
    assert f"airflow tasks test hdp_ingest_his publish {run_2}" in output
