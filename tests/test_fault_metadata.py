"""Faults around the metadata database (issue 12, finding 10), on a real Airflow run.

The warehouse server is stopped as a crash would stop it (`pg_ctl stop -m immediate`) while a
real `airflow dags test` of hdp_ingest_his is extracting a table, then started again. Airflow's
metadata lives on a server of its own, so the scheduler's state stays up throughout, the
interrupted extract is retried (or fails with an alert in the log), and nothing partial is
published.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import psycopg2
import pytest

from hdp.config import REPO_ROOT
from hdp.warehouse.database import Login, connect
from hdp_sim import his
from hdp_sim.sources import DemoLogins as Logins
from hdp_sim.sources import logins
from tests.pipeline import ingest

TABLE = "diagnoses"  # the extract the crash interrupts (held by a lock on the source table)


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _batch_loading(lg: Logins, table: str, run_prefix: str) -> bool:
    wh = connect(lg.loader)
    try:
        with wh.cursor() as cur:
            cur.execute(
                "select count(*) from audit.load_batch "
                "where table_name = %s and status = 'loading' and run_id like %s",
                (table, run_prefix + "%"),
            )
            return cur.fetchone()[0] > 0
    finally:
        wh.close()


def _published_rows(lg: Logins) -> dict[int, tuple[str, int, int]]:
    """batch_id -> (table, rows_written, rows in raw_his) of every published batch."""
    wh = connect(lg.warehouse)
    result: dict[int, tuple[str, int, int]] = {}
    try:
        with wh.cursor() as cur:
            cur.execute(
                "select batch_id, table_name, rows_written from audit.load_batch "
                "where source = 'his' and status = 'published' order by batch_id"
            )
            for batch_id, table, written in cur.fetchall():
                cur.execute(
                    f'select count(*) from raw_his."{table}" where _batch_id = %s', (batch_id,)
                )
                result[batch_id] = (table, written, cur.fetchone()[0])
    finally:
        wh.close()
    return result


def _metadata_answers(lg: Logins) -> str | None:
    """State of the latest hdp_ingest_his run, read from Airflow's metadata database (None when
    the metadata database cannot be reached)."""
    try:
        conn = connect(lg.airflow, connect_timeout=3)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select state from dag_run where dag_id = 'hdp_ingest_his' order by id desc limit 1"
            )
            row = cur.fetchone()
            return row[0] if row else "no run"
    finally:
        conn.close()


def _extract_tries(lg: Logins, run_id: str) -> dict[str, tuple[str, int]]:
    """table -> (state, try_number) of each mapped extract task of the run."""
    conn = connect(lg.airflow)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select rendered_map_index, state, try_number from task_instance "
                "where dag_id = 'hdp_ingest_his' and run_id = %s and task_id = 'extract'",
                (run_id,),
            )
            return {table: (state, tries) for table, state, tries in cur.fetchall()}
    finally:
        conn.close()


@pytest.mark.timeout(900)
def test_warehouse_crash_mid_extract_keeps_airflow_state_and_publishes_nothing_partial(
    airflow_env, cluster
):
    lg = logins()
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=11, scale=0.02, history_days=14))
    owner.close()
    ingest(lg, "before_the_crash")  # a published run whose raw rows must survive untouched
    owner = connect(lg.his_owner)
    his.advance_day(owner)
    owner.commit()
    before = _published_rows(lg)
    assert before and all(written == raw for _, written, raw in before.values())

    # hold the source table: the extract registers its batch ('loading'), then waits on the lock
    with owner.cursor() as cur:
        cur.execute(f"lock table his.{TABLE} in access exclusive mode")
    proc = subprocess.Popen(
        ["airflow", "dags", "test", "hdp_ingest_his"],
        env=airflow_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        _wait_for(lambda: _batch_loading(lg, TABLE, "manual__"), 300, f"the {TABLE} extract")
        state = _metadata_answers(lg)
        assert state == "running", state
        cluster.stop(mode="immediate")  # a crash of the warehouse server, mid-extract
        try:
            assert not cluster.is_running()
            # the scheduler's state is elsewhere: Airflow's metadata still answers
            state = _metadata_answers(lg)
            assert state == "running", "Airflow's metadata went down with the warehouse"
            time.sleep(2)
        finally:
            cluster.start()  # crash recovery; the session's other tests need it too
        with pytest.raises(psycopg2.Error):
            owner.cursor().execute("select 1")  # the lock went with the crash
        owner.close()
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    state = _metadata_answers(lg)
    assert state in {"success", "failed"}, f"run ended {state!r}:\n{output[-4000:]}"
    conn = connect(lg.airflow)
    with conn.cursor() as cur:
        cur.execute(
            "select run_id from dag_run where dag_id = 'hdp_ingest_his' order by id desc limit 1"
        )
        run_id = cur.fetchone()[0]
    conn.close()
    tries = _extract_tries(lg, run_id)
    if proc.returncode == 0:
        assert state == "success"
        assert tries[TABLE] == ("success", 2), tries  # the interrupted extract was retried
    else:
        assert state == "failed"
        assert "HDP ALERT [task_failed]" in output, output[-4000:]

    after = _published_rows(lg)
    for batch_id, counts in before.items():  # the earlier published run is untouched
        assert after[batch_id] == counts, batch_id
    for batch_id, (table, written, raw) in after.items():  # nothing partial was published
        assert written == raw, (batch_id, table, written, raw)
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select status, count(*) from audit.load_batch where run_id = %s group by status",
            (run_id,),
        )
        statuses = dict(cur.fetchall())
        cur.execute(
            f"select count(*) from (select 1 from raw_his.{TABLE} r join audit.load_batch b "
            "on b.batch_id = r._batch_id and b.status = 'published' "
            "group by r.diagnosis_id, r.updated_at having count(*) > 1) d"
        )
        duplicates = cur.fetchone()[0]
    wh.close()
    assert duplicates == 0
    if proc.returncode == 0:
        assert set(statuses) == {"published"}, statuses
    else:
        assert "published" not in statuses, statuses


def test_airflow_metadata_is_on_its_own_socket_only_cluster(airflow_env, cluster):
    """The embedded default: Airflow's connection names the metadata cluster, not the
    warehouse's, and that cluster listens on no TCP port, only on its own socket folder."""
    from hdp.config import load_settings
    from hdp.warehouse.clusters import metadata_cluster

    meta = metadata_cluster(load_settings())
    lg = logins()
    assert meta.is_running() and meta.root != cluster.root
    assert (lg.airflow.host, lg.airflow.port) == (str(meta.socket_dir), meta.port)
    url = airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.endswith(f"@/airflow?host={meta.socket_dir}&port={meta.port}"), "not the socket"
    conn = connect(Login("postgres", meta.superuser_password(), meta.host, meta.port, "postgres"))
    with conn.cursor() as cur:
        cur.execute("show listen_addresses")
        assert cur.fetchone()[0] == ""
        cur.execute("show synchronous_commit")  # the scheduler's commits survive a crash
        assert cur.fetchone()[0] == "on"
        cur.execute("select datname from pg_database where not datistemplate")
        assert {name for (name,) in cur.fetchall()} == {"postgres", "airflow"}
    conn.close()
