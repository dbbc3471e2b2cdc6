"""What every DAG of the platform shares: its start date, default arguments and connections."""

from __future__ import annotations

from datetime import datetime, timedelta

from hdp.orchestration.notify import on_task_failure
from hdp.warehouse.database import Login

WAREHOUSE_CONN_ID = "hdp_warehouse"
START_DATE = datetime(2024, 1, 1)


def default_args(owner: str) -> dict:
    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        # log by default; webhook / email by configuration (HDP_ALERT_CHANNELS,
        # hdp.orchestration.notify)
        "on_failure_callback": on_task_failure,
    }


def connection_login(conn_id: str) -> Login:
    """Airflow connection → Login: our code speaks psycopg2 (the provider may use psycopg 3), and
    PyMySQL to a MySQL source (hdp.ingest.extract.connect_source)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook.get_connection(conn_id)
    extra = conn.extra_dejson
    return Login(
        user=conn.login or "",
        password=conn.password or "",
        host=conn.host or "127.0.0.1",
        port=conn.port or 5432,
        dbname=conn.schema or "postgres",
        sslmode=extra.get("sslmode", "prefer"),
        sslrootcert=extra.get("sslrootcert"),
        sslcert=extra.get("sslcert"),
        sslkey=extra.get("sslkey"),
        # a MySQL/MariaDB source's connection (conn_type mysql) is read by the mysql dialect
        scheme="mysql" if conn.conn_type in ("mysql", "mariadb") else "postgresql",
    )
