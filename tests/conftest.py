"""Shared fixtures: one real, embedded PostgreSQL cluster for the whole test session.

Tests use their own HDP_HOME (var/test) and port, so they never touch the demo's cluster.
"""

from __future__ import annotations

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


_HOME_NAME = "test" if _WORKER_INDEX is None else f"test-{_WORKER}"
os.environ.setdefault("HDP_HOME", str(REPO / "var" / _HOME_NAME))
os.environ["HDP_PG_PORT"] = _worker_port("HDP_PG_PORT", "55433")
os.environ["HDP_AIRFLOW_PORT"] = _worker_port("HDP_AIRFLOW_PORT", "18081")
os.environ["HDP_BENCH_TEST_PG_PORT"] = _worker_port("HDP_BENCH_TEST_PG_PORT", "55435")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import psycopg2  # noqa: E402
from psycopg2 import sql  # noqa: E402

from hdp.config import load_settings  # noqa: E402
from hdp.pgcluster import Cluster, stop_embedded  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    settings = load_settings()
    if not settings.embedded:
        pytest.fail("tests start their own embedded cluster: unset HDP_PG_URL")
    c = Cluster.for_home(settings.home, settings.pg_port)
    c.start()
    yield c
    stop_embedded(settings)  # and Airflow's metadata cluster, if a test started it


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
    """Drop the platform's source and warehouse databases and create them anew."""
    from hdp.database import init_databases, logins

    lg = logins()
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for db in (lg.warehouse.dbname, lg.his_owner.dbname, lg.pharmacy_owner.dbname):
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
            )
    admin.close()
    init_databases(lg)


@pytest.fixture(scope="module")
def airflow_env(cluster, pg_admin_dsn):
    """Fresh platform databases and the environment of a prepared Airflow (connections
    registered, metadata migrated), shared by a module's real DAG runs."""
    from hdp.orchestrate import _env, prepare

    reset_platform_databases(pg_admin_dsn)
    env = _env()
    prepare(env)
    return env


@pytest.fixture
def platform(pg_admin_dsn: str):
    """Empty platform databases (his source with schema, warehouse with audit tables)."""
    from hdp.database import logins

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
    "test_compose": "unit",
    "test_forecast": "unit",
    "test_idcard": "unit",
    "test_lint": "unit",
    "test_notify": "unit",
    "test_extract": "integration",
    "test_identifier_scan": "integration",
    "test_identifiers_k": "integration",
    "test_lab_drops": "integration",
    "test_mpi": "integration",
    "test_pgcluster": "integration",
    "test_pharmacy_marts": "integration",
    "test_pharmacy_simulator": "integration",
    "test_procurement_report": "integration",
    "test_quality_gate": "integration",
    "test_quality_history": "integration",
    "test_quarantine": "integration",
    "test_security_roles": "integration",
    "test_security_secrets": "integration",
    "test_shrink_guard": "integration",
    "test_simulator": "integration",
    "test_star_schema": "integration",
    "test_tls": "integration",
    "test_filedrop": "integration",
    "test_fault_files": "integration",
    "test_fault_rerun": "integration",
    "test_airflow": "e2e",
    "test_attack_roles": "e2e",
    "test_bench": "e2e",
    "test_fault_metadata": "e2e",
    "test_history": "e2e",
}
# fixtures that reach a database server: a unit test must not ask for one
SERVER_FIXTURES = frozenset({"cluster", "pg_admin_dsn", "fresh_db", "platform", "airflow_env"})
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
