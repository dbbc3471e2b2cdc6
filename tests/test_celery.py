"""The distributed run for real (issue 19): CeleryExecutor, Redis, two workers in network
namespaces of their own, the platform's DAGs end to end (hdp.runtime.celery, `make up-celery`).

The end-to-end test starts what `make up-celery` starts, runs the HIS and pharmacy ingests, the
LIS file drops, the transform and the procurement report on the simulator's small scale, and
checks where each task ran (task_instance.hostname is the worker's link address), that the
workers' logs reach the api-server over HTTP, that the marts equal one dbt build of the same
published data, and that `make down` leaves no process, namespace or bridge behind. The unit
tests check the topology and the configuration without starting anything.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hdp.config import REPO_ROOT, load_settings
from hdp.runtime import celery
from hdp.warehouse.database import Login, connect
from tests.conftest import restart_mariadb

INGESTS = ("hdp_ingest_his", "hdp_ingest_pharmacy", "hdp_ingest_lis")
MARTS = ("fct_encounter", "fct_diagnosis", "fct_prescription_line", "fct_lab_result")


# ----------------------------------------------------------------------------------- unit


def _settings(home: Path):
    from dataclasses import replace

    return replace(load_settings(), home=home)


@pytest.mark.unit
def test_topology_gives_every_server_and_worker_its_own_address(tmp_path):
    topo = celery.topology(_settings(tmp_path / "a"), workers=3)
    addresses = [*topo.server_addresses, *(w.address for w in topo.workers)]
    assert len(set(addresses)) == len(addresses) == 7
    assert all(a.startswith(topo.prefix + ".") for a in addresses)
    names = [topo.bridge, *(w.veth_host for w in topo.workers)]
    names += [w.veth_worker for w in topo.workers]
    assert all(len(n) <= 15 for n in names), names  # Linux interface names
    assert len({w.netns for w in topo.workers}) == 3
    # another checkout: another bridge, namespaces and subnet
    other = celery.topology(_settings(tmp_path / "b"), workers=3)
    assert other.bridge != topo.bridge and other.prefix != topo.prefix
    assert not {w.netns for w in other.workers} & {w.netns for w in topo.workers}


@pytest.mark.unit
def test_redis_config_keeps_the_password_off_the_command_line(tmp_path):
    settings = _settings(tmp_path)
    topo = celery.topology(settings)
    conf = celery.write_redis_config(settings, topo.redis)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    lines = conf.read_text().splitlines()
    password = celery.redis_password(settings)
    assert f"requirepass {password}" in lines
    assert f"bind {topo.redis}" in lines and "protected-mode yes" in lines
    assert f"dir {settings.home / 'redis'}" in lines
    command = celery.worker_command(topo.workers[0])
    assert command[:4] == ["ip", "netns", "exec", topo.workers[0].netns]
    assert not any(password in word for word in command)


@pytest.mark.unit
def test_every_process_reaches_every_server_at_its_link_address(tmp_path, monkeypatch):
    monkeypatch.setenv("HDP_HOME", str(tmp_path))
    settings = load_settings()
    topo = celery.topology(settings)
    env = celery.celery_env(settings, topo)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert f"@{topo.metadata}:" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert f"@{topo.metadata}:" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith(
        f"redis://:{celery.redis_password(settings)}@{topo.redis}:"
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(f"http://{topo.api}:")
    assert env["HDP_WAREHOUSE_HOST"] == topo.warehouse
    assert env["AIRFLOW__API__SECRET_KEY"] and env["AIRFLOW__CORE__FERNET_KEY"]
    # no connection secret in any process's environment: tasks fetch theirs (issue 12)
    assert not [k for k in env if k.startswith("AIRFLOW_CONN_")]
    worker = celery.worker_env(settings, env, topo.workers[1])
    assert worker[celery.WORKER_HOST_ENV] == topo.workers[1].address
    assert worker["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] != env.get(
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER"
    )
    connections = celery.linked_connections(settings, topo)
    for conn_id in ("hdp_warehouse", "hdp_transformer"):
        login = Login.from_url(connections[conn_id])
        assert (login.host, login.port) == (topo.warehouse, settings.pg_port), conn_id


@pytest.mark.unit
def test_a_worker_reports_its_link_address_as_hostname(monkeypatch):
    import socket

    monkeypatch.setenv(celery.WORKER_HOST_ENV, "10.200.1.11")
    assert celery.worker_hostname() == "10.200.1.11"
    monkeypatch.delenv(celery.WORKER_HOST_ENV)
    assert celery.worker_hostname() == socket.getfqdn()


@pytest.mark.unit
def test_a_part_started_is_stopped_with_its_whole_process_group(tmp_path):
    settings = _settings(tmp_path)
    pid = celery.spawn(settings, "probe", ["sh", "-c", "sleep 60 & sleep 60"], dict(os.environ))
    (tmp_path / "celery" / "pids" / "empty.pid").write_text("")  # a half-written pid file
    assert celery.running(settings) == ["probe"]
    assert celery.stop_process(settings, "probe", timeout=10)
    assert celery.running(settings) == []
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the background `sleep` went with its group
    assert not celery.stop_process(settings, "probe")


# ------------------------------------------------------------------------------------ e2e


class Api:
    """The api-server's REST API as the admin (SimpleAuthManager's generated password)."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": password})[
            "access_token"
        ]

    def call(self, method: str, path: str, body: dict | None = None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.load(resp)

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=50")["dag_runs"]

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str) -> str:
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})[
            "dag_run_id"
        ]


def _wait_finished(api: Api, dag_id: str, timeout: float, at_least: int = 1) -> list[dict]:
    """The DAG's runs once at least `at_least` exist and none is queued or running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = api.runs(dag_id)
        if len(runs) >= at_least and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(5)
    raise AssertionError(f"{dag_id}: runs not finished in {timeout:.0f} s: {api.runs(dag_id)}")


def _metadata_rows(query: str, args: tuple = ()) -> list[tuple]:
    from hdp.warehouse.database import logins

    conn = connect(logins().airflow)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    finally:
        conn.close()


def _hdp(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdp", *args],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def _leftovers(topo: celery.Topology) -> dict[str, object]:
    """What of the distributed run is still there: process groups, namespaces, the bridge."""
    settings = load_settings()
    return {
        "processes": celery.running(settings),
        "netns": sorted({w.netns for w in topo.workers} & celery.netns_names()),
        "bridge": celery.network_exists(topo),
    }


def _generate_sources(lg) -> None:
    """The simulator's small scale: ten days of the HIS, its pharmacy, the LIS's daily files."""
    from hdp.ingest.files import drop_dir
    from hdp.manifest import load_manifest
    from hdp_sim import his, pharmacy
    from hdp_sim.demo import write_lab_drops

    shutil.rmtree(drop_dir(load_manifest("lis")), ignore_errors=True)
    his_conn, pharmacy_conn = connect(lg.his_owner), connect(lg.pharmacy_owner)
    try:
        his.generate(his_conn, his.SimConfig(seed=11, scale=0.02, history_days=10))
        pharmacy.generate(pharmacy_conn, his_conn, pharmacy.PharmacyConfig(seed=11))
        assert write_lab_drops(his_conn, 11) >= 5
    finally:
        his_conn.close()
        pharmacy_conn.close()


def _fresh_metadata(settings) -> None:
    """Airflow's metadata database anew (up-celery creates and migrates it): earlier modules'
    runs and unpaused DAGs would make which runs this test waits for a guess."""
    from psycopg2 import sql

    from hdp.warehouse.clusters import metadata_cluster
    from hdp.warehouse.database import logins, superuser

    admin = connect(superuser(metadata_cluster(settings)))
    admin.autocommit = True
    with admin.cursor() as cur:
        name = sql.Identifier(logins(settings).airflow.dbname)
        cur.execute(sql.SQL("drop database if exists {} with (force)").format(name))
    admin.close()
    # and the api-server's own task logs of those runs: an earlier module's scheduler (test_up's
    # `hdp up`, DAGs unpaused) logged today's scheduled run under the run id this one gets, and
    # the test asserts that the api-server's folder holds none of this run's logs
    shutil.rmtree(settings.airflow_home / "logs", ignore_errors=True)


@pytest.fixture(scope="module")
def distributed(airflow_env, cluster):
    """Fresh sources, then the distributed run (`python -m hdp up-celery`, what `make up-celery`
    runs after the demo's sources); stopped by `python -m hdp down` even when a test fails."""
    from hdp_sim.sources import logins

    settings = load_settings()
    topo = celery.topology(settings)
    _generate_sources(logins())
    _fresh_metadata(settings)
    started = time.time()
    up = _hdp("up-celery")
    try:
        assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
        yield topo, time.time() - started
    finally:
        down = _hdp("down", timeout=300)
        left = _leftovers(topo)
        cluster.start()  # for the tests that follow
        restart_mariadb()  # `down` stopped the session's MariaDB too
        assert down.returncode == 0, down.stderr[-3000:]
        assert left == {"processes": [], "netns": [], "bridge": False}, left


@pytest.mark.timeout(3000)  # about 20 min on a loaded 2-core machine
def test_platform_dags_run_on_workers_in_their_own_network_namespaces(distributed):
    from hdp.runtime.dbt import run_dbt
    from hdp_sim.sources import logins
    from tests.pipeline import table_fingerprint

    topo, start_s = distributed
    settings = load_settings()
    port = os.environ["HDP_AIRFLOW_PORT"]
    passwords = json.loads((settings.secrets_dir / "airflow_passwords.json").read_text())
    api = Api(f"http://{topo.api}:{port}", passwords["admin"])
    workers = {w.address: w for w in topo.workers}

    # the workers' namespaces hold their link and loopback only: no route to this machine's
    # 127.0.0.1 (where the warehouse also listens) nor anywhere else
    routes = subprocess.run(
        ["ip", "-n", topo.workers[0].netns, "route"], capture_output=True, text=True
    ).stdout.splitlines()
    assert routes and all(r.startswith(topo.cidr) for r in routes), routes
    probe = (
        "import socket, sys; s = socket.socket(); s.settimeout(3); "
        "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))"
    )
    for host, expect_open in (("127.0.0.1", False), (topo.warehouse, True)):
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                topo.workers[0].netns,
                sys.executable,
                "-c",
                probe,
                host,
                str(settings.pg_port),
            ],
            capture_output=True,
        )
        assert (done.returncode == 0) is expect_open, (host, done.returncode)

    deadline = time.time() + 300
    while not set(INGESTS) <= {
        d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]
    }:
        assert time.time() < deadline, "the dag-processor did not register the DAGs"
        time.sleep(3)
    began = time.time()
    for dag_id in INGESTS:  # unpaused: each creates its run of the latest @daily interval
        api.unpause(dag_id)
    for dag_id in INGESTS:
        runs = _wait_finished(api, dag_id, timeout=900)
        assert {r["state"] for r in runs} == {"success"}, (dag_id, runs)
    api.unpause("hdp_procurement_report")  # triggered by the transform's marts asset
    api.unpause("hdp_transform")
    api.trigger("hdp_transform")
    transform = _wait_finished(api, "hdp_transform", timeout=1800)
    assert {r["state"] for r in transform} == {"success"}, transform
    report = _wait_finished(api, "hdp_procurement_report", timeout=600)
    assert {r["state"] for r in report} == {"success"}, report
    wall_s = time.time() - began

    rows = _metadata_rows(
        "select dag_id, task_id, map_index, hostname, state, duration, try_number "
        "from task_instance where state is not null order by dag_id, task_id, map_index"
    )
    ran = [r for r in rows if r[4] in ("success", "failed")]
    hosts = {r[3] for r in ran}
    # every task ran on a worker, and more than one worker ran tasks, mapped ones included
    assert hosts == set(workers), hosts
    mapped = {r[3] for r in ran if r[0] == "hdp_ingest_lis" and r[1] == "load"}
    assert len(mapped) > 1, mapped
    dbt_hosts = {r[3] for r in ran if r[0] == "hdp_transform" and r[1].startswith("dbt")}
    assert dbt_hosts, "no dbt task ran"
    summary = {
        "up_s": round(start_s),
        "dags_wall_s": round(wall_s),
        "tasks_per_worker": {
            workers[h].name: sum(1 for r in ran if r[3] == h) for h in sorted(hosts)
        },
        "task_seconds": round(sum(r[5] or 0 for r in ran)),
    }
    out = settings.home / "celery" / "last-run.json"
    out.write_text(json.dumps({**summary, "tasks": [list(map(str, r)) for r in ran]}, indent=1))
    print(f"distributed run: {json.dumps(summary)}")

    # a worker's task log reaches the api-server over HTTP from that worker's log server: it
    # is in that worker's folder only, not in the api-server's
    dag_id, task_id, map_index, host = next(
        r[:4] for r in ran if r[0] == "hdp_ingest_his" and r[1] == "publish"
    )
    run_id = next(r["dag_run_id"] for r in api.runs(dag_id))
    path = (
        f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        f"/taskInstances/{task_id}/logs/1?map_index={map_index}"
    )
    content = json.dumps(api.call("GET", path))
    assert f"http://{host}:{celery.WORKER_LOG_PORT}/log/" in content
    assert "published rows per table" in content
    own = celery.worker_log_dir(settings, workers[host])
    api_logs = settings.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    assert any(own.rglob(f"run_id={run_id}/task_id={task_id}/attempt=*.log")), own
    assert not api_logs.exists()

    # shared files (compose's hdp-var volume): quality reports and Data Docs, the report
    assert list((settings.home / "reports").glob("procurement_*.html"))
    assert list(settings.quality_dir.rglob("index.html"))

    # the marts the two workers built equal one dbt build of the same published data
    lg = logins()
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        distributed_marts = {m: table_fingerprint(cur, "marts", m) for m in MARTS}
    wh.close()
    assert all(not v.startswith("0:") for v in distributed_marts.values()), distributed_marts
    out.write_text(json.dumps({**json.loads(out.read_text()), "marts": distributed_marts}))
    run_dbt("run", "--full-refresh", "--select", *MARTS)
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        assert {m: table_fingerprint(cur, "marts", m) for m in MARTS} == distributed_marts
    wh.close()
