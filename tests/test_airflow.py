"""Real Airflow: DAG integrity, full DAG runs (`airflow dags test`), and `up`/`down`."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from hdp.config import REPO_ROOT, load_settings
from hdp.manifest import all_manifests
from hdp.warehouse.clusters import metadata_cluster
from hdp.warehouse.database import connect
from hdp_sim import his
from tests.conftest import restart_mariadb
from tests.pipeline import marts_fingerprint

SOURCES = {m.source for m in all_manifests()}  # every source gets its ingest DAG, tagged by name
PLATFORM_DAGS = {f"hdp_ingest_{s}" for s in SOURCES} | {"hdp_transform", "hdp_procurement_report"}
APPROVED_TAGS = {"hdp", "ingest", "transform", "dbt", "report"} | SOURCES


def test_dag_integrity(airflow_env):
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        "b = DagBag(dag_folder='dags'); "
        "print('RESULT' + json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()},"
        " 'dags': {d.dag_id: {'tags': sorted(d.tags), 'owners': sorted({t.owner for t in d.tasks}),"
        " 'retries': sorted({t.retries for t in d.tasks}), 'catchup': d.catchup,"
        " 'tasks': len(d.tasks)} for d in b.dags.values()},"
        " 'transform': {'params': b.dags['hdp_transform'].params.dump(),"
        " 'vars': sorted({json.dumps(getattr(t, 'vars', None))"
        " for t in b.dags['hdp_transform'].tasks if t.task_id.startswith('dbt.')})}}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=airflow_env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.split("RESULT", 1)[1].splitlines()[0])
    assert payload["errors"] == {}
    dags = payload["dags"]
    assert set(dags) == {f"hdp_ingest_{s}" for s in SOURCES} | {
        "hdp_transform",
        "hdp_procurement_report",
    }
    for dag_id, info in dags.items():
        assert set(info["tags"]) <= APPROVED_TAGS, dag_id
        assert "airflow" not in info["owners"], dag_id
        assert info["catchup"] is False
    assert dags["hdp_ingest_his"]["retries"] == [0, 2]  # gate never retries a verdict
    # Cosmos renders each dbt model as its own task (run + test)
    assert dags["hdp_transform"]["tasks"] >= 12
    # the shrink guard yields only to the run's allow_shrink param (off by default)
    transform = payload["transform"]
    assert transform["params"]["allow_shrink"] is False
    assert transform["vars"] == [json.dumps({"allow_mart_shrink": "{{ params.allow_shrink }}"})]


def _dags_test(dag_id: str, env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["airflow", "dags", "test", dag_id, *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
    )


@pytest.mark.timeout(1800)  # three real DAG runs of the transform, one model per task
def test_dag_runs_build_the_star_and_a_bad_batch_is_blocked(airflow_env):
    from hdp_sim.sources import logins

    lg = logins()
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=5, scale=0.03, history_days=21))
    owner.close()

    ingest = _dags_test("hdp_ingest_his", airflow_env)
    assert ingest.returncode == 0, (ingest.stdout + ingest.stderr)[-4000:]
    transform = _dags_test("hdp_transform", airflow_env)
    assert transform.returncode == 0, (transform.stdout + transform.stderr)[-4000:]
    assert "build: no complete build recorded yet" in transform.stdout + transform.stderr

    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute("select distinct status, run_id like 'manual__%' from audit.load_batch")
        assert cur.fetchall() == [("published", True)]
        cur.execute("select count(*) from marts.fct_encounter")
        assert cur.fetchone()[0] > 0
    wh.close()
    before = marts_fingerprint(lg)

    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        cur.execute(
            "update his.diagnoses set icd10_code = 'UNKNOWN-' || diagnosis_id, "
            "updated_at = (select max(updated_at) from his.diagnoses) + interval '1 min' "
            "where diagnosis_id % 4 <> 0"
        )
    owner.commit()
    owner.close()
    with _webhook_receiver() as (url, received):
        # failure alerts go to the log and, configured so, to a webhook (hdp.orchestration.notify)
        alert_env = {**airflow_env, "HDP_ALERT_CHANNELS": "log,webhook"}
        bad = _dags_test("hdp_ingest_his", alert_env | {"HDP_ALERT_WEBHOOK_URL": url})
    output = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert "Quality gate FAILED for his.diagnoses" in output
    assert "his.diagnoses.icd10_shape on column icd10_code" in output
    assert "nothing of his run" in output  # publish withheld the run's other tables
    kinds = {(a["kind"], a["task_id"]) for a in received}
    assert ("quality_gate_failed", "gate") in kinds, received
    gate_alert = next(a for a in received if a["kind"] == "quality_gate_failed")
    assert "his.diagnoses.icd10_shape" in gate_alert["detail"]
    # the transform is not triggered by a failed ingest; run it anyway, and with full_refresh
    # (one run, not two: each costs minutes): it rebuilds every encounter, to the same rows,
    # and nothing of the withheld run reaches the marts
    rebuilt_before = _transformed_at(lg)
    full = _dags_test("hdp_transform", airflow_env, "--conf", '{"full_refresh": true}')
    assert full.returncode == 0, (full.stdout + full.stderr)[-4000:]
    assert marts_fingerprint(lg) == before
    oldest, newest = _transformed_at(lg)
    assert oldest == newest > rebuilt_before[1]

    # nothing published since that complete build: the next run's dbt tasks all skip, the
    # marts stay as they are (not rebuilt) and no build is recorded (hdp.warehouse.builds)
    builds = _complete_builds(lg)
    assert len(builds) == 2
    idle = _dags_test("hdp_transform", airflow_env)
    output = idle.stdout + idle.stderr
    assert idle.returncode == 0, output[-4000:]
    assert "skip: nothing new since the last complete build" in output
    assert _transformed_at(lg) == (oldest, newest)
    assert marts_fingerprint(lg) == before
    assert _complete_builds(lg) == builds
    states = _task_states(lg, "hdp_transform", "manual__%")
    assert states[-1]["changes"] == "success"
    assert {state for task, state in states[-1].items() if task != "changes"} == {"skipped"}


def _complete_builds(lg) -> list:
    return _warehouse_rows(lg, "select build_id, fingerprint from audit.transform_build order by 1")


def _task_states(lg, dag_id: str, run_like: str) -> list[dict[str, str]]:
    """Each run's task states, oldest run first, from Airflow's metadata database."""
    meta = connect(lg.airflow)
    with meta.cursor() as cur:
        cur.execute(
            "select dr.id, ti.task_id, ti.state from task_instance as ti "
            "join dag_run as dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id "
            "where ti.dag_id = %s and ti.run_id like %s order by dr.id",
            (dag_id, run_like),
        )
        rows = cur.fetchall()
    meta.close()
    runs: dict[int, dict[str, str]] = {}
    for run, task_id, state in rows:
        runs.setdefault(run, {})[task_id] = state
    return list(runs.values())


def _transformed_at(lg) -> tuple:
    query = "select min(transformed_at), max(transformed_at) from marts.fct_encounter"
    return _warehouse_rows(lg, query)[0]


def _warehouse_rows(lg, query: str) -> list[tuple]:
    wh = connect(lg.warehouse)
    try:
        with wh.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        wh.close()


@contextlib.contextmanager
def _webhook_receiver():
    """A real HTTP server on loopback that keeps every JSON body POSTed to it."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()


def _get(url: str, token: str | None = None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _check_quality_page(port: str, token: str, folder) -> None:
    """The plugin's page is linked in the UI and shows each source's status; screenshot it."""
    plugins = _get(f"http://127.0.0.1:{port}/api/v2/plugins", token)
    views = [v for p in plugins["plugins"] for v in p["external_views"]]
    assert any(v["href"] == "/hdp-quality/" and v["destination"] == "nav" for v in views)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/hdp-quality/")
    request.add_header("Authorization", f"Bearer {token}")  # the page needs a login (issue 12)
    with urllib.request.urlopen(request, timeout=20) as resp:
        page = resp.read().decode()
    assert "Data quality" in page and "outpatient_visits" in page
    assert "his" in page and ("failing" in page or "ok" in page)
    # freshness per source, and quarantined rows counted per check (never a value)
    assert "Source freshness" in page and "fresh" in page
    for source in SOURCES:  # every source's status, loaded or not
        assert f'{source} <span class="badge"' in page, source
    assert "his.outpatient_visits.fee_not_negative" in page
    # held deliveries and column profile anomalies (issue 15), empty or not
    assert "<h2>Held deliveries</h2>" in page and "<h2>Column profile anomalies</h2>" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by `make test` (Makefile target browser)"
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "quality-page.png"
    shot.unlink(missing_ok=True)
    # the page is self-contained (inline styles): the browser renders what the login fetched
    saved = folder / "quality-page.html"
    saved.write_text(page, encoding="utf-8")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={folder / 'chromium-profile'}",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            saved.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def _group_processes(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,args="], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.split()[0] == str(pgid)]


def _register_dags_paused(env) -> None:
    """The DAGs known to Airflow and paused, as `make demo`'s `airflow dags test` runs leave them
    (Airflow creates a DAG paused unless told otherwise, and never unpauses it afterwards); the
    metadata outlives a test session, so an earlier `up` may have unpaused them: pause them."""
    from hdp_sim.sources import logins

    for cmd in (
        ["airflow", "dags", "reserialize"],
        ["airflow", "dags", "pause", "--treat-dag-id-as-regex", "-y", "^hdp_"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
    conn = connect(logins().airflow)
    with conn, conn.cursor() as cur:
        cur.execute("select dag_id from dag where is_paused")
        paused = {dag_id for (dag_id,) in cur.fetchall()}
    conn.close()
    assert paused >= PLATFORM_DAGS, paused


@pytest.mark.timeout(1200)  # up waits up to 5 min for a loaded machine, then down
def test_up_serves_ui_on_loopback_and_down_leaves_nothing(airflow_env, cluster):
    settings = load_settings()
    env = {**os.environ}
    _register_dags_paused(airflow_env)
    up = subprocess.run(
        [sys.executable, "-m", "hdp_sim", "up"],  # what `make up` runs
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    pid_file = settings.airflow_home / "standalone.pid"
    pgid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        port = os.environ["HDP_AIRFLOW_PORT"]
        assert f"http://127.0.0.1:{port}" in up.stdout
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        bound = [line for line in listening.splitlines() if f":{port} " in line]
        assert bound and all("127.0.0.1" in line for line in bound), bound
        passwords = json.loads((settings.secrets_dir / "airflow_passwords.json").read_text())
        body = json.dumps({"username": "admin", "password": passwords["admin"]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            token = json.load(resp)["access_token"]
        dag_ids: set[str] = set()
        errors = None
        for _ in range(60):  # the dag-processor parses the folder shortly after start
            dag_ids = {
                d["dag_id"] for d in _get(f"http://127.0.0.1:{port}/api/v2/dags", token)["dags"]
            }
            errors = _get(f"http://127.0.0.1:{port}/api/v2/importErrors", token)
            if {"hdp_ingest_his", "hdp_transform"} <= dag_ids:
                break
            time.sleep(3)
        assert {"hdp_ingest_his", "hdp_transform"} <= dag_ids
        assert errors["total_entries"] == 0, errors
        # issue 12, finding 11(e): README says they run daily, so `up` unpauses them
        dags = _get(f"http://127.0.0.1:{port}/api/v2/dags?limit=100", token)["dags"]
        paused = {d["dag_id"]: d["is_paused"] for d in dags}
        assert {dag_id: paused.get(dag_id) for dag_id in PLATFORM_DAGS} == dict.fromkeys(
            PLATFORM_DAGS, False
        )
        assert "unpaused" in up.stdout
        _check_quality_page(port, token, settings.home / "screenshots")
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "hdp", "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
    assert down.returncode == 0, down.stderr
    assert not cluster.is_running()  # `down` stops everything, PostgreSQL included
    assert not metadata_cluster(settings).is_running()  # Airflow's metadata cluster too
    cluster.start()  # for the tests that follow
    restart_mariadb()  # `down` stopped the session's MariaDB too
    assert pgid is not None
    assert _group_processes(pgid) == []
    assert not pid_file.exists()
