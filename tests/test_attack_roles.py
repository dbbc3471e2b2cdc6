"""Attacks by the pipeline's own service logins (issue 12, finding 4): code that the loader or the
transformer plants must never run with the warehouse owner's rights.

Each test plants, as the real `hdp_load` / `hdp_dbt` login, a function that copies the pseudonym
key and the identity key (the session's pg_temp.hdp_secret) into a table the attacker owns, hooks
it where privileged code reads (a policy on a raw table, a restrictive policy on a mart, a view in
place of a model, a trigger), then runs the privileged code as an operator would. The attacker's
table must stay empty: the privileged code either refuses loudly or runs without the plant.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest

from hdp.config import load_settings
from hdp.quality.gate import GateResult
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect
from hdp_sim import his
from hdp_sim.sources import DemoLogins as Logins
from tests.pipeline import ingest

# the plant: copy whatever the current user can reach of the keys; as a service login it reaches
# nothing (the exception handler keeps the attacker's own queries working and the plant quiet)
STEAL = """
create table {schema}.loot (what text, value text);
create function {schema}.steal() returns boolean language plpgsql volatile as $$
begin
    begin
        insert into {schema}.loot
        select 'pseudonym_key', encode(key_bytes, 'hex') from hdp_private.pseudonym_key;
    exception when others then null;
    end;
    begin
        insert into {schema}.loot select 'identity_key', value from pg_temp.hdp_secret;
    exception when others then null;
    end;
    return true;
end
$$;
"""


@pytest.fixture(scope="module")
def warehouse(cluster, pg_admin_dsn) -> Logins:
    """A warehouse with published HIS batches, a key map and a fact built by the transformer."""
    from hdp_sim.sources import logins
    from tests.conftest import reset_platform_databases

    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=12, scale=0.005, history_days=3))
    owner.close()
    outcome = ingest(lg, "run-attack-1")
    assert all(isinstance(r, GateResult) for r in outcome.values()), outcome
    return lg


@pytest.fixture
def models(warehouse: Logins):
    """The two models privileged code reads, built as dbt builds them (by the transformer
    login, so owned by hdp_transformer), with the marts' row-level security of
    macros/enable_department_rls.sql; a department analyst mapped to D1. Dropped afterwards."""
    lg = warehouse
    _run(
        lg.transformer,
        """
        create table intermediate.int_his__patient_key_map as
            select patient_id, md5(patient_id::text) as patient_key, 'test' as person_match_basis
            from raw_his.patients;
        create table marts.fct_encounter as
            select md5(patient_id::text) as patient_key, 'D1'::text as department_key
            from raw_his.patients;
        alter table marts.fct_encounter enable row level security;
        create policy all_departments on marts.fct_encounter for select
            to hdp_analyst, hdp_transformer, hdp_admin using (true);
        create policy own_departments on marts.fct_encounter for select
            to hdp_dept_analyst using (department_key in (
                select dept_code from audit.analyst_department where role_name = current_user));
        """,
    )
    password = secrets.token_urlsafe(16)
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        security.create_login(cur, "t_att_dept", password, security.DEPT_ANALYST, ["D1"])
    admin.close()
    analyst = Login("t_att_dept", password, lg.warehouse.host, lg.warehouse.port, "hdp")
    yield lg, analyst
    _run(
        lg.transformer,
        "drop table if exists intermediate.int_his__patient_key_map cascade; "
        "drop view if exists intermediate.int_his__patient_key_map cascade; "
        "drop table if exists marts.fct_encounter cascade; "
        "drop table if exists marts.loot; drop table if exists intermediate.loot; "
        "drop function if exists marts.steal(); drop function if exists intermediate.steal()",
    )
    _run(
        lg.loader,
        "drop policy if exists steal on raw_his.patients; "
        "alter table raw_his.patients no force row level security; "
        "alter table raw_his.patients disable row level security; "
        "drop trigger if exists steal on raw_his.patients; "
        "drop table if exists raw_his.loot; drop function if exists raw_his.steal() cascade",
    )


def _run(login: Login, statements: str) -> None:
    conn = connect(login)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statements)
    finally:
        conn.close()


def _loot(lg: Logins, schema: str) -> list[str]:
    """What the plant copied (the names of the stolen keys, never their values)."""
    conn = connect(lg.warehouse)
    try:
        with conn.cursor() as cur:
            cur.execute(f"select what from {schema}.loot order by what")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def _error_of(action) -> psycopg2.Error | None:
    """The database error the privileged action raised (None if it ran through)."""
    try:
        action()
    except psycopg2.Error as exc:
        return exc
    return None


def _refresh(lg: Logins) -> int:
    conn = connect(lg.warehouse)
    try:
        return security.refresh_patient_identity(conn, secrets.token_urlsafe(24))
    finally:
        conn.close()


def test_loader_policy_on_raw_never_runs_as_the_owner(models):
    """Finding 4: a policy the loader forces onto its raw table ran inside refresh-identity."""
    lg, _ = models
    _run(
        lg.loader,
        STEAL.format(schema="raw_his")
        + """
        alter table raw_his.patients enable row level security;
        alter table raw_his.patients force row level security;
        create policy steal on raw_his.patients using (raw_his.steal());
        """,
    )
    error = _error_of(lambda: _refresh(lg))
    # any other session of the owner (reports, set-up) refuses too: row_security is off for it
    plain = _error_of(lambda: _run(lg.warehouse, "select count(*) from raw_his.patients"))
    assert _loot(lg, "raw_his") == []
    assert "row-level security" in str(error)
    assert "row-level security" in str(plain)


def test_transformer_policy_on_a_mart_never_runs_as_the_owner(models):
    """Finding 4: a restrictive policy on a mart ran inside audit.analyst_patient_keys()
    (SECURITY DEFINER, the owner's) when a department analyst read dim_patient."""
    lg, analyst = models
    _run(
        lg.transformer,
        STEAL.format(schema="marts")
        + """
        alter table marts.fct_encounter force row level security;
        create policy steal on marts.fct_encounter as restrictive for select
            using (marts.steal());
        """,
    )
    error = _error_of(lambda: _run(analyst, "select count(*) from audit.analyst_patient_keys()"))
    assert _loot(lg, "marts") == []
    assert "row-level security" in str(error)


def test_transformer_view_in_place_of_a_model_never_runs_as_the_owner(models):
    """Finding 4: a model rebuilt as a view that calls the transformer's function ran the
    function as the owner inside refresh-identity and analyst_patient_keys()."""
    lg, analyst = models
    _run(
        lg.transformer,
        STEAL.format(schema="intermediate")
        + """
        alter table intermediate.int_his__patient_key_map rename to key_map_kept;
        create view intermediate.int_his__patient_key_map as
            select * from intermediate.key_map_kept where intermediate.steal();
        alter table marts.fct_encounter rename to fct_encounter_kept;
        create view marts.fct_encounter as
            select * from marts.fct_encounter_kept where intermediate.steal();
        """,
    )
    try:
        refresh = _error_of(lambda: _refresh(lg))
        keys = _error_of(lambda: _run(analyst, "select count(*) from audit.analyst_patient_keys()"))
        assert _loot(lg, "intermediate") == []
        assert "not a table" in str(refresh)
        assert "not a table" in str(keys)
    finally:
        _run(
            lg.transformer,
            "drop view intermediate.int_his__patient_key_map; drop view marts.fct_encounter; "
            "alter table intermediate.key_map_kept rename to int_his__patient_key_map; "
            "alter table marts.fct_encounter_kept rename to fct_encounter",
        )


def test_loader_trigger_never_runs_as_the_owner(models):
    """Finding 4: triggers. The loader cannot attach one to what owner code writes (the
    identity store and the audit), and one on its raw table does not fire in owner jobs."""
    lg, _ = models
    _run(
        lg.loader,
        STEAL.format(schema="raw_his")
        + """
        create function raw_his.steal_trigger() returns trigger language plpgsql as $$
        begin perform raw_his.steal(); return null; end $$;
        create trigger steal after insert or update or delete or truncate
            on raw_his.patients for each statement execute function raw_his.steal_trigger();
        """,
    )
    for table in (
        "hdp_private.patient_identity",
        "hdp_private.pseudonym_key",
        "audit.identity_access",
        "audit.key_rotation",
        "audit.load_batch",
    ):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            _run(
                lg.loader,
                f"create trigger steal after insert or update or delete on {table} "
                "for each statement execute function raw_his.steal_trigger()",
            )
    assert _refresh(lg) > 0
    conn = connect(lg.warehouse)
    try:
        security.rotate_pseudonym_key(conn)
    finally:
        conn.close()
    assert _loot(lg, "raw_his") == []


# --------------------------------------------------------------------------------------------
# The Data quality page (finding 5): an Airflow login, and a warehouse role that reads the audit


def _http(url: str, *, token: str | None = None, cookie: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture(scope="module")
def airflow_env(warehouse: Logins) -> dict[str, str]:
    """The environment `hdp up` / `make demo` give Airflow, its metadata database migrated."""
    from hdp.runtime.airflow import prepare
    from hdp.runtime.airflow import process_env as _env

    env = _env()
    prepare(env)
    return env


@pytest.fixture(scope="module")
def api_server(airflow_env: dict[str, str]):
    """A real Airflow api-server (SimpleAuthManager) with the platform's plugins; its port and
    an admin token. Stopped with SIGINT to its own process group."""
    from hdp.runtime.airflow import _health

    settings = load_settings()
    env = airflow_env
    port = env["AIRFLOW__API__PORT"]
    log_file = settings.home / "logs" / "attack-api-server.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        proc = subprocess.Popen(
            ["airflow", "api-server", "--port", port, "--host", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(90):
            if proc.poll() is not None or _health(port):
                break
            time.sleep(1)
        assert _health(port), f"api-server did not start: see {log_file}"
        passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        os.chmod(passwords, 0o600)  # Airflow writes it world-readable (hdp up does the same)
        body = json.dumps(
            {"username": "admin", "password": json.loads(passwords.read_text())["admin"]}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/auth/token",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            token = json.load(resp)["access_token"]
        yield port, token
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_quality_page_needs_an_airflow_login(api_server):
    """Finding 5: /hdp-quality/, its API and its OpenAPI schema answered 200 without a session
    (while /api/v2/dags answered 401); now each asks for Airflow's login like the API does."""
    port, token = api_server
    base = f"http://127.0.0.1:{port}"
    assert _http(f"{base}/api/v2/dags")[0] == 401  # Airflow's own API, for comparison
    for path in ("/hdp-quality/", "/hdp-quality/api/status"):
        assert _http(f"{base}{path}")[0] in (401, 403), path
        forged = secrets.token_urlsafe(24)  # not a JWT the auth manager signed
        assert _http(f"{base}{path}", token=forged)[0] in (401, 403), path
    # the schema of the page's API is not published at all (Airflow's own API documents it)
    assert _http(f"{base}/hdp-quality/openapi.json")[0] in (401, 403, 404)
    status, page = _http(f"{base}/hdp-quality/", token=token)
    assert status == 200 and "Data quality" in page and "outpatient_visits" in page
    status, api = _http(f"{base}/hdp-quality/api/status", token=token)
    assert status == 200 and {"tables", "changes"} <= set(json.loads(api))
    # the browser's session: the UI keeps Airflow's token in the _token cookie
    status, page = _http(f"{base}/hdp-quality/", cookie=token)
    assert status == 200 and "Data quality" in page


def test_quality_page_reads_through_a_role_that_sees_only_the_audit(api_server, models):
    """Finding 5: the page opened a warehouse connection as the loader (who writes raw and may
    read patient identifiers); now its login reads the audit tables it shows and nothing else."""
    lg, _ = models
    port, token = api_server
    server_log = load_settings().home / "pg" / "postgres.log"
    before = server_log.stat().st_size
    assert _http(f"http://127.0.0.1:{port}/hdp-quality/", token=token)[0] == 200
    with open(server_log, errors="replace") as handle:
        handle.seek(before)
        users = {
            line.split("]", 1)[1].split()[0]
            for line in handle
            if "connection authorized" in line and "]" in line
        }
    assert users and f"{lg.loader.user}@hdp" not in users
    assert users == {f"{lg.quality_reader.user}@hdp"}
    reader = lg.quality_reader
    assert _scalar(reader, "select count(*) from audit.load_batch") > 0
    for table in ("quality_result", "row_issue", "freshness_check", "refused_file"):
        _scalar(reader, f"select count(*) from audit.{table}")
    for query in (
        "select * from raw_his.patients limit 1",
        "select * from hdp_private.pseudonym_key",
        "select * from hdp_private.patient_identity limit 1",
        "select * from audit.identity_access limit 1",
        "select * from audit.file_load limit 1",
        "select * from marts.fct_encounter limit 1",
        "select * from intermediate.int_his__patient_key_map limit 1",
        "insert into audit.load_batch (source, table_name, run_id) values ('x', 'x', 'x')",
    ):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            _scalar(reader, query)


def _scalar(login: Login, query: str):
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.rollback()
        conn.close()


# --------------------------------------------------------------------------------------------
# Each task holds only the connections it uses (finding 11c)

PROBE_DAG = """
import json, os, re
from datetime import datetime
from airflow.sdk import dag, task

SECRET = re.compile(r"PASSWORD$|^AIRFLOW_CONN_")


@dag(dag_id="hdp_env_probe", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def probe():
    @task
    def extract_like() -> None:
        from hdp.orchestration.common import WAREHOUSE_CONN_ID, connection_login as _login
        from hdp.warehouse.database import connect

        conn = connect(_login(WAREHOUSE_CONN_ID))  # as the extract task gets its login
        with conn.cursor() as cur:
            cur.execute("select session_user")
            user = cur.fetchone()[0]
        conn.close()
        names = sorted(k for k in os.environ if SECRET.search(k))  # names, never values
        with open(os.environ["HDP_PROBE_OUT"], "w") as out:
            json.dump({"secret_names": names, "warehouse_user": user}, out)

    extract_like()


probe()
"""


def test_a_task_environment_holds_no_connection_password(airflow_env, tmp_path):
    """Finding 11c: every task's environment carried every connection's password (loader,
    transformer, source readers). Now a real task of `airflow dags test` (the embedded path of
    `make demo`) has none in its environment and still gets its own login from Airflow."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hdp_env_probe.py").write_text(PROBE_DAG)
    out = tmp_path / "probe.json"
    env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "HDP_PROBE_OUT": str(out)}
    proc = subprocess.run(
        ["airflow", "dags", "test", "hdp_env_probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and out.exists(), (proc.stdout + proc.stderr)[-3000:]
    seen = json.loads(out.read_text())
    assert seen["secret_names"] == []
    assert seen["warehouse_user"] == "hdp_load"


def test_dbt_task_gets_the_transformer_password_from_its_connection(airflow_env, warehouse):
    """Finding 11c, the transform side: with no password in Airflow's environment, a real dbt
    task of hdp_transform (Cosmos) still builds its model, the transformer's password rendered
    from the connection hdp_transformer into that task only, and never printed."""
    assert "HDP_WAREHOUSE_PASSWORD" not in airflow_env
    listed = subprocess.run(
        ["airflow", "tasks", "list", "hdp_transform"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    # staging is built by the task of the view layers (hdp.orchestration.dags.VIEW_LAYERS)
    task_id = next(t for t in listed.stdout.split() if t == "dbt_views")
    proc = subprocess.run(
        ["airflow", "tasks", "test", "hdp_transform", task_id, "2024-01-02"],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert warehouse.transformer.password not in output
    # `airflow tasks test` exits 0 even when the task fails: dbt's own summary is the verdict
    assert proc.returncode == 0 and "Task failed" not in output, output[-3000:]
    assert re.search(r"Done\. PASS=[1-9][0-9]* WARN=0 ERROR=0", output), output[-3000:]
    conn = connect(warehouse.warehouse)
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('staging.stg_his__patients') is not null")
            assert cur.fetchone()[0]
    finally:
        conn.close()
    # the rendered template fields Airflow keeps (and shows in the UI) hold the mask, not it
    meta = connect(warehouse.airflow)
    try:
        with meta.cursor() as cur:
            cur.execute(
                "select rendered_fields::text from rendered_task_instance_fields "
                "where dag_id = 'hdp_transform' and task_id = %s",
                (task_id,),
            )
            rendered = [r[0] for r in cur.fetchall()]
    finally:
        meta.close()
    assert rendered and all(warehouse.transformer.password not in r for r in rendered)
    assert all('"HDP_WAREHOUSE_PASSWORD": "***"' in r for r in rendered)
