"""The environment every platform process runs with (Airflow, dbt, GX), derived from settings.

Variables already set in the environment win, so production configures everything explicitly
(docker-compose reads them from .env) while a developer machine needs nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from hdp.config import REPO_ROOT, Settings, load_settings
from hdp.runtime.standard import registry_env
from hdp.secrets import secret
from hdp.warehouse.database import Login, connection_env_var, logins, source_logins

# dbt vars read from the environment (dbt_project.yml): reprocessing window, shrink guard, k
PASSED_THROUGH = ("HDP_REPROCESS_WINDOW_HOURS", "HDP_MAX_MART_SHRINK_SHARE", "HDP_K_ANONYMITY")

AIRFLOW_PORT = int(os.environ.get("HDP_AIRFLOW_PORT", "18080"))


def _metadata_url(db: Login) -> str:
    """SQLAlchemy URL of Airflow's metadata database. The embedded metadata cluster has no TCP
    port, only a socket folder, which libpq takes as `host=<folder>` in the query."""
    credentials = f"{quote(db.user)}:{quote(db.password, safe='')}"
    if db.host.startswith("/"):
        return (
            f"postgresql+psycopg2://{credentials}@/{db.dbname}"
            f"?host={quote(db.host, safe='/')}&port={db.port}"
        )
    return f"postgresql+psycopg2://{credentials}@{db.host}:{db.port}/{db.dbname}"


def platform_env(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or load_settings()
    lg = logins(settings)
    sdir = settings.secrets_dir
    airflow_db = lg.airflow
    base_url = f"http://127.0.0.1:{AIRFLOW_PORT}"
    env = {
        "HDP_HOME": str(settings.home),
        "HDP_DBT_PROJECT_DIR": str(settings.dbt_project_dir),
        "HDP_DBT_PROFILES_DIR": str(settings.dbt_profiles_dir),
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": secret(sdir, "airflow_fernet_key"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(sdir / "airflow_passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret(sdir, "airflow_jwt_secret"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _metadata_url(airflow_db),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_HDP_WAREHOUSE": lg.loader.url,
        # each configured database source's read-only login (hdp.warehouse.database)
        **{connection_env_var(cid): login.url for cid, login in source_logins(settings).items()},
        "HDP_WAREHOUSE_HOST": lg.transformer.host,
        "HDP_WAREHOUSE_PORT": str(lg.transformer.port),
        "HDP_WAREHOUSE_USER": lg.transformer.user,
        "HDP_WAREHOUSE_PASSWORD": lg.transformer.password,
        "HDP_WAREHOUSE_DB": lg.transformer.dbname,
        "HDP_WAREHOUSE_SSLMODE": lg.transformer.sslmode,
        # issue 6: TLS client certificate and CA of the warehouse connection (dbt's profile)
        "HDP_WAREHOUSE_SSLROOTCERT": lg.transformer.sslrootcert or "",
        "HDP_WAREHOUSE_SSLCERT": lg.transformer.sslcert or "",
        "HDP_WAREHOUSE_SSLKEY": lg.transformer.sslkey or "",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    resolved = {key: os.environ.get(key, value) for key, value in env.items()}
    # optional settings without a default here: passed on when the operator sets them
    resolved |= {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
    # the venv's console scripts (airflow, dbt) first
    resolved["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    # found from the project's files, never configured: a stale value must not win
    resolved |= registry_env(settings.dbt_project_dir)
    return resolved


# Connection secrets that platform_env() carries for one-shot commands (dbt, the benchmarks,
# `python -m hdp run`), but no Airflow process: every task would inherit every one of them.
# Every AIRFLOW_CONN_* is one (the sources' included), and the dbt profile's password.
CONNECTION_SECRETS = ("HDP_WAREHOUSE_PASSWORD",)


def is_connection_secret(name: str) -> bool:
    return name.startswith("AIRFLOW_CONN_") or name in CONNECTION_SECRETS


# the connection the transform's dbt tasks and the procurement report log in with
TRANSFORMER_CONN_ID = "hdp_transformer"


def connection_uris(settings: Settings | None = None) -> dict[str, str]:
    """The Airflow connections of the platform, by id (URLs with passwords: never print)."""
    lg = logins(settings)
    return {
        "hdp_warehouse": lg.loader.url,
        **{conn_id: login.url for conn_id, login in source_logins(settings).items()},
        TRANSFORMER_CONN_ID: lg.transformer.url,
    }


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment of Airflow's processes (scheduler, api-server, `airflow dags test`).

    Embedded mode: the platform's, less every connection secret (the caller's own environment
    included); tasks get the one connection each uses from Airflow's metadata database
    (register_connections), by id, when they run. Against an existing server the operator's
    AIRFLOW_CONN_* are what Airflow has, so they stay.
    """
    settings = settings or load_settings()
    env = {**os.environ, **platform_env(settings)}
    if settings.embedded:
        for name in [n for n in env if is_connection_secret(n)]:
            env.pop(name)
    return env


REGISTER = """
import json, sys
from airflow.models import Connection
from airflow.utils.session import create_session

with create_session() as session:
    for conn_id, uri in json.load(sys.stdin).items():
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id=conn_id, uri=uri))
"""


def register_connections(
    env: dict[str, str], settings: Settings | None = None, uris: dict[str, str] | None = None
) -> None:
    """Store the platform's connections (or `uris`, by id) in Airflow's metadata database
    (passwords encrypted with the Fernet key), replacing older versions. The URLs go through
    stdin: never a command line (ps) nor an environment variable."""
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", REGISTER],
        input=json.dumps(uris if uris is not None else connection_uris(settings)),
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:  # Airflow's error, which names no password
        raise SystemExit(f"registering Airflow connections failed: {proc.stderr[-2000:]}")


def apply(settings: Settings | None = None) -> dict[str, str]:
    """Put the platform environment into this process (for in-process Airflow/dbt calls)."""
    env = platform_env(settings)
    os.environ.update(env)
    return env
