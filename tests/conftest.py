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
os.environ.setdefault("HDP_HOME", str(REPO / "var" / "test"))
os.environ.setdefault("HDP_PG_PORT", "55433")
os.environ.setdefault("HDP_AIRFLOW_PORT", "18081")
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
    from hdp_sim.sources import init_databases, logins

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
