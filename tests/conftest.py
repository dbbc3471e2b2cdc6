"""Shared fixtures: one real, embedded PostgreSQL cluster for the whole test session.

Tests use their own HDP_HOME (var/test) and port, so they never touch the demo's cluster.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest-xdist worker offsets: each worker (gw0, gw1, ...) gets its own state folder and ports,
# set here before hdp.config is imported, so two workers never share a cluster or an Airflow
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_INDEX = int(_WORKER[2:]) if _WORKER.startswith("gw") and _WORKER[2:].isdigit() else None
# ports of one worker are this far from the next one's (other checkouts use the ports between)
WORKER_PORT_STRIDE = 100


def _worker_port(name: str, default: str) -> str:
    """The port of this process: the configured one, moved by the worker's stride under xdist."""
    base = int(os.environ.get(name, default))
    return str(base if _WORKER_INDEX is None else base + WORKER_PORT_STRIDE * _WORKER_INDEX)


# a worker inherits the controller's HDP_HOME: its own is that folder with the worker's name
_HOME = os.environ.get("HDP_HOME", str(REPO / "var" / "test"))
os.environ["HDP_HOME"] = _HOME if _WORKER_INDEX is None else f"{_HOME}-{_WORKER}"
os.environ["HDP_PG_PORT"] = _worker_port("HDP_PG_PORT", "55433")
os.environ["HDP_AIRFLOW_PORT"] = _worker_port("HDP_AIRFLOW_PORT", "18081")
os.environ["HDP_BENCH_TEST_PG_PORT"] = _worker_port("HDP_BENCH_TEST_PG_PORT", "55435")
# the embedded MariaDB of the MySQL-source tests (hdp.warehouse.mariadb), off its default 33306
os.environ["HDP_MARIADB_PORT"] = _worker_port("HDP_MARIADB_PORT", "33316")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import psycopg2  # noqa: E402
from psycopg2 import sql  # noqa: E402

from hdp.config import load_settings  # noqa: E402
from hdp.warehouse.clusters import Cluster, stop_embedded  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    settings = load_settings()
    if not settings.embedded:
        pytest.fail("tests start their own embedded cluster: unset HDP_PG_URL")
    c = Cluster.for_home(settings.home, settings.pg_port)
    c.start()
    yield c
    stop_embedded(settings)  # and Airflow's metadata cluster, if a test started it
    from hdp.warehouse.mariadb import stop_mariadb

    stop_mariadb(settings)  # the platform's set-up starts it for Hospital B's source


@pytest.fixture(scope="session")
def mariadb():
    """The embedded MariaDB server (started once per session, stopped at its end), or None
    when HDP_MARIADB_URL names an existing server; yields (server or None, admin login)."""
    from hdp.warehouse.mariadb import mariadb_admin, mariadb_server

    settings = load_settings()
    server = mariadb_server(settings)
    admin = mariadb_admin(settings)  # starts the embedded server
    yield server, admin
    if server is not None:
        server.stop()


def restart_mariadb() -> None:
    """Start the embedded MariaDB again after a test ran `hdp down` (which stops it), so the
    session's `mariadb` fixture and the platform fixtures find it running."""
    from hdp.warehouse.mariadb import mariadb_server

    server = mariadb_server(load_settings())
    if server is not None:
        server.start()


@pytest.fixture(scope="session")
def pg_admin_dsn(cluster: Cluster) -> str:
    return cluster.admin_url()


@pytest.fixture
def fresh_db(pg_admin_dsn: str) -> Iterator[str]:
    """A new empty database (dropped afterwards); yields its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        yield dsn
    finally:
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
        admin.close()


def reset_platform_databases(pg_admin_dsn: str) -> None:
    """Drop the platform's source and warehouse databases (Hospital B's on the embedded
    MariaDB, which this starts) and create them anew."""
    from hdp_sim.sources import drop_mysql_sources, init_databases, logins

    lg = logins()
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for db in (
            lg.warehouse.dbname,
            lg.his_owner.dbname,
            lg.pharmacy_owner.dbname,
        ):
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
            )
    admin.close()
    drop_mysql_sources()
    init_databases(lg)


# ------------------------------------------------------------- one built warehouse per session
# The simulation every read-mostly module asserts on (HIS and pharmacy, seed 7, 60 days at scale
# 0.02): simulated, ingested, seeded and built once, then kept as template databases. A module
# restores its own copy from them in seconds (`create database ... template`, a file copy)
# instead of rebuilding for minutes, so what one module changes never reaches the next.
SNAPSHOT_PREFIX = "snap_"
# files on disk that a module may change and the copied databases must agree with
SNAPSHOT_SECRETS = ("pseudonym_key",)


def _platform_databases(lg) -> tuple[tuple[str, str], ...]:
    """(database, owner) of the warehouse and the simulated sources on PostgreSQL (Hospital
    B's is on MariaDB: no template copies it, init_databases makes it empty)."""
    return tuple(
        (login.dbname, login.user) for login in (lg.warehouse, lg.his_owner, lg.pharmacy_owner)
    )


def _database_grants(cur, name: str) -> list[tuple[str, str]]:
    """(grantee or PUBLIC, privilege) on a database: CREATE DATABASE copies none of them."""
    cur.execute(
        "select coalesce(r.rolname, 'PUBLIC'), a.privilege_type from pg_database d "
        "cross join lateral aclexplode(d.datacl) a left join pg_roles r on r.oid = a.grantee "
        "where d.datname = %s and a.grantee <> d.datdba",
        (name,),
    )
    return cur.fetchall()


def _copy_database(cur, source: str, target: str, owner: str, grants) -> None:
    """`target` becomes a copy of `source` (owner and database grants as given)."""
    cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target)))
    cur.execute(  # a template must have no other session
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (source,)
    )
    cur.execute(
        sql.SQL("create database {} owner {} template {}").format(
            sql.Identifier(target), sql.Identifier(owner), sql.Identifier(source)
        )
    )
    cur.execute(sql.SQL("revoke all on database {} from public").format(sql.Identifier(target)))
    for grantee, privilege in grants:
        who = sql.SQL("public") if grantee == "PUBLIC" else sql.Identifier(grantee)
        cur.execute(
            sql.SQL("grant {} on database {} to {}").format(
                sql.SQL(privilege), sql.Identifier(target), who
            )
        )


class WarehouseSnapshot:
    """The built platform databases kept as templates, and the secret files that go with them."""

    def __init__(self, pg_admin_dsn: str, lg, build) -> None:
        self.admin_dsn, self.logins, self.build = pg_admin_dsn, lg, build
        self.secrets_dir = load_settings().secrets_dir
        self.secrets = {n: (self.secrets_dir / n).read_bytes() for n in SNAPSHOT_SECRETS}
        self.grants: dict[str, list[tuple[str, str]]] = {}
        with _admin_cursor(self.admin_dsn) as cur:
            for name, owner in _platform_databases(lg):
                self.grants[name] = _database_grants(cur, name)
                _copy_database(cur, name, SNAPSHOT_PREFIX + name, owner, [])

    def restore(self):
        """The platform databases as they were built, and their secret files; returns the
        logins and the build's dbt output."""
        with _admin_cursor(self.admin_dsn) as cur:
            for name, owner in _platform_databases(self.logins):
                _copy_database(cur, SNAPSHOT_PREFIX + name, name, owner, self.grants[name])
        for name, content in self.secrets.items():
            path = self.secrets_dir / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            path.chmod(0o600)
        return self.logins, self.build


@contextlib.contextmanager
def _admin_cursor(dsn: str) -> Iterator:
    """An autocommit cursor of the cluster's administrator (CREATE/DROP DATABASE)."""
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            yield cur
    finally:
        admin.close()


@pytest.fixture(scope="session")
def warehouse_snapshot(cluster, pg_admin_dsn) -> WarehouseSnapshot:
    """Simulate the HIS and the pharmacy, ingest both through the gate, `dbt seed` and
    `dbt build` once per session; kept as template databases."""
    from hdp.quality.gate import GateResult
    from hdp.runtime.dbt import run_dbt
    from hdp.warehouse.database import connect
    from hdp_sim import his, pharmacy
    from hdp_sim.sources import logins
    from tests.pipeline import ingest, ingest_source

    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    his_owner, pharmacy_owner = connect(lg.his_owner), connect(lg.pharmacy_owner)
    his.generate(his_owner, his.SimConfig(seed=7, scale=0.02, history_days=60))
    pharmacy.generate(pharmacy_owner, his_owner, pharmacy.PharmacyConfig(seed=7))
    his_owner.close()
    pharmacy_owner.close()
    for outcome in (ingest(lg, "run-1"), ingest_source(lg, "pharmacy", "run-1")):
        assert all(isinstance(r, GateResult) for r in outcome.values()), outcome
    run_dbt("seed")
    build = run_dbt("build")
    return WarehouseSnapshot(pg_admin_dsn, lg, build)


@pytest.fixture(scope="module")
def built_warehouse(warehouse_snapshot: WarehouseSnapshot):
    """A module's own copy of the session's built warehouse: (logins, dbt build output)."""
    return warehouse_snapshot.restore()


@pytest.fixture(scope="module")
def airflow_env(cluster, pg_admin_dsn):
    """Fresh platform databases and the environment of a prepared Airflow (connections
    registered, metadata migrated), shared by a module's real DAG runs."""
    from hdp.runtime.airflow import prepare
    from hdp.runtime.airflow import process_env as _env

    reset_platform_databases(pg_admin_dsn)
    env = _env()
    prepare(env)
    return env


@pytest.fixture
def platform(pg_admin_dsn: str):
    """Empty platform databases (his source with schema, warehouse with audit tables)."""
    from hdp_sim.sources import logins

    reset_platform_databases(pg_admin_dsn)
    return logins()


# ---------------------------------------------------------------------------- test tiers
# Every test belongs to exactly one tier (markers registered in pyproject.toml):
#   unit         no database, no server: catalogue, manifests, DAG integrity, compose contract,
#                forecast maths, notifications, lint (`make test-fast`, under a minute)
#   integration  real PostgreSQL, dbt and Great Expectations
#   e2e          real Airflow runs (`airflow dags test`, `up`/`down`), history, bench smoke
# A module's tier is below (or its own pytestmark); a test that runs Airflow (the
# `airflow_env` fixture) is e2e wherever it lives. A module with no tier fails the collection.
TIERS = ("unit", "integration", "e2e")
MODULE_TIERS: dict[str, str] = {
    "test_builds": "unit",
    "test_compose": "unit",
    "test_docs": "unit",
    "test_forecast": "unit",
    "test_hospital_b_sim": "unit",
    "test_idcard": "unit",
    "test_layout": "unit",
    "test_standard_registry": "unit",
    "test_standard_manifest": "integration",
    "test_institution_rls": "integration",
    "test_standard_layer": "integration",
    "test_lint": "unit",
    "test_notify": "unit",
    "test_scaffold_inference": "unit",
    "test_extract": "integration",
    "test_mariadb_server": "integration",
    "test_mysql_catalogue": "unit",
    "test_mysql_source": "integration",
    "test_mysql_charsets": "integration",
    "test_extract_watermarks": "integration",
    "test_watermark": "unit",
    "test_hospital_b": "integration",
    "test_identifier_scan": "integration",
    "test_identifiers_k": "integration",
    "test_lab_drops": "integration",
    "test_mpi": "integration",
    "test_pgcluster": "integration",
    "test_pharmacy_marts": "integration",
    "test_standard_pharmacy": "integration",
    "test_pharmacy_simulator": "integration",
    "test_procurement_report": "integration",
    "test_forecast_mart": "integration",
    "test_quality_gate": "integration",
    "test_date_parsing": "integration",
    "test_file_refusals": "unit",
    "test_profiles": "unit",
    "test_quality_history": "integration",
    "test_quarantine": "integration",
    "test_security_roles": "integration",
    "test_security_secrets": "integration",
    "test_shrink_guard": "integration",
    "test_simulator": "integration",
    "test_star_schema": "integration",
    "test_tls": "integration",
    "test_filedrop": "integration",
    "test_excel_drops": "integration",
    "test_scaffold": "integration",
    "test_fault_files": "integration",
    "test_fault_rerun": "integration",
    "test_delivery_guard": "integration",
    "test_airflow": "e2e",
    "test_attack_roles": "e2e",
    "test_bench": "e2e",
    "test_celery": "e2e",
    "test_fault_metadata": "e2e",
    "test_history": "e2e",
    "test_delivery_guard_dag": "e2e",
}
# fixtures that reach a database server: a unit test must not ask for one
SERVER_FIXTURES = frozenset(
    {"cluster", "pg_admin_dsn", "fresh_db", "platform", "airflow_env", "mariadb"}
)
# tests on fixed ports of their own (not the worker's): one xdist worker runs them all
FIXED_PORT_MODULES = frozenset({"test_bench", "test_pgcluster"})


def _tier_of(item: pytest.Item) -> str:
    own = [m.name for m in item.iter_markers() if m.name in TIERS]
    if len(set(own)) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one tier marker {sorted(set(own))}")
    if "airflow_env" in item.fixturenames:
        return "e2e"
    if own:
        return own[0]
    module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
    if module not in MODULE_TIERS:
        raise pytest.UsageError(
            f"{item.nodeid}: no test tier; add the module to MODULE_TIERS in tests/conftest.py "
            f"or give it a pytestmark (one of {', '.join(TIERS)})"
        )
    return MODULE_TIERS[module]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test its tier marker (so `-m unit` selects it) and refuse a unit test that
    asks for a database; tests on fixed ports share one xdist group."""
    for item in items:
        tier = _tier_of(item)
        if tier == "unit" and SERVER_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid}: a unit test uses a database fixture")
        item.add_marker(getattr(pytest.mark, tier))
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in FIXED_PORT_MODULES:
            item.add_marker(pytest.mark.xdist_group("fixed_ports"))
