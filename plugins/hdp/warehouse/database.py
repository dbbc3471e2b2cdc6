"""The platform's logins and connections (set-up of databases and roles: hdp.runtime.setup).

- `hdp`     the warehouse (owner `hdp_owner`): raw_<source>, audit, staging, intermediate, marts;
            the pipeline logs in as `hdp_load` (extract, gate) and `hdp_dbt` (dbt), never as owner
- `airflow` Airflow's metadata (owner `airflow`), on a server of its own: the embedded metadata
            cluster (hdp.warehouse.clusters), or docker-compose's `airflow-db`; so a warehouse
            restart never takes the scheduler's state with it
- sources   each database source's read-only login is configuration (`source_logins`): an
            `AIRFLOW_CONN_<CONN_ID>` URL, or a file `$HDP_HOME/secrets/connections/<conn_id>`
            written by whoever set the source up (the demo's simulated sources: hdp_sim.sources)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg2
from psycopg2 import sql

from hdp.config import Settings, load_settings
from hdp.secrets import secret
from hdp.warehouse.clusters import SUPERUSER, Cluster, metadata_cluster, warehouse_cluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    host: str
    port: int
    dbname: str
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    # the URL's scheme: 'postgresql', or 'mysql' for a MySQL/MariaDB source (hdp.ingest.mysql)
    scheme: str = "postgresql"

    def _ssl(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("sslmode", self.sslmode),
                ("sslrootcert", self.sslrootcert),
                ("sslcert", self.sslcert),
                ("sslkey", self.sslkey),
            )
            if v
        }

    @property
    def url(self) -> str:
        if self.dialect == "mysql":
            return (
                f"mysql://{quote(self.user)}:{quote(self.password, safe='')}"
                f"@{self.host}:{self.port}/{self.dbname}"
            )
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in self._ssl().items())
        return (
            f"postgresql://{quote(self.user)}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{self.dbname}" + (f"?{query}" if query else "")
        )

    @property
    def dialect(self) -> str:
        """'postgresql' or 'mysql' (MySQL and MariaDB): which extract and catalogue path."""
        scheme = self.scheme.split("+", 1)[0]
        return {"postgres": "postgresql", "mariadb": "mysql"}.get(scheme, scheme)

    @property
    def dsn(self) -> str:
        def q(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            **self._ssl(),
        }
        return " ".join(f"{k}={q(v)}" for k, v in parts.items())

    @classmethod
    def from_url(cls, url: str) -> Login:
        parts = urlsplit(url)
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        scheme = parts.scheme or "postgresql"
        mysql = scheme.split("+", 1)[0] in ("mysql", "mariadb")
        # a MySQL URL's user and password are percent-decoded (`url` quotes them); the
        # PostgreSQL side is left as it always was
        decode = unquote if mysql else str
        return cls(
            user=decode(parts.username or ""),
            password=decode(parts.password or ""),
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (3306 if mysql else 5432),
            dbname=parts.path.lstrip("/") or ("" if mysql else "postgres"),
            sslmode=query.get("sslmode", "prefer"),
            sslrootcert=query.get("sslrootcert"),
            sslcert=query.get("sslcert"),
            sslkey=query.get("sslkey"),
            scheme=scheme,
        )


@dataclass(frozen=True)
class Logins:
    admin: Login
    warehouse: Login  # the owner: set-up, migrations, identity refresh; never a pipeline task
    loader: Login  # extract + gate (Airflow connection hdp_warehouse), member of hdp_loader
    transformer: Login  # dbt (profile env HDP_WAREHOUSE_*), member of hdp_transformer
    quality_reader: Login  # the Data quality page (api-server), member of hdp_quality_reader
    airflow: Login


def _server(settings: Settings) -> tuple[str, int, str]:
    if settings.pg_url:
        admin = Login.from_url(settings.pg_url)
        return admin.host, admin.port, settings.pg_url
    return "127.0.0.1", settings.pg_port, warehouse_cluster(settings).admin_url()


def _metadata_server(settings: Settings, warehouse_server: tuple[str, int]) -> tuple[str, int]:
    """Host and port of Airflow's metadata database when HDP_AIRFLOW_DB_URL does not say: the
    embedded metadata cluster's socket folder, or (existing server) the warehouse's server."""
    if settings.embedded:
        cluster = metadata_cluster(settings)
        return cluster.host, cluster.port
    return warehouse_server


def superuser(cluster: Cluster) -> Login:
    return Login(SUPERUSER, cluster.superuser_password(), cluster.host, cluster.port, "postgres")


def server_login(
    settings: Settings,
    env: str,
    user: str,
    secret_name: str,
    dbname: str,
    generate: Callable[[], str] | None = None,
) -> Login:
    """A login on the warehouse's server: the URL in `env` when set, else `user` with the
    generated secret `secret_name` (created on first use, by `generate` if given)."""
    if os.environ.get(env):
        return Login.from_url(os.environ[env])
    host, port, _ = _server(settings)
    return Login(user, secret(settings.secrets_dir, secret_name, generate), host, port, dbname)


def logins(settings: Settings | None = None) -> Logins:
    """Every login the platform uses; explicit environment URLs win over generated secrets."""
    settings = settings or load_settings()
    host, port, admin_url = _server(settings)

    def login(env: str, user: str, secret_name: str, dbname: str) -> Login:
        return server_login(settings, env, user, secret_name, dbname)

    airflow = (
        Login.from_url(os.environ["HDP_AIRFLOW_DB_URL"])
        if os.environ.get("HDP_AIRFLOW_DB_URL")
        else Login(
            "airflow",
            secret(settings.secrets_dir, "airflow_db_password"),
            *_metadata_server(settings, (host, port)),
            "airflow",
        )
    )
    return Logins(
        admin=Login.from_url(admin_url),
        warehouse=login("HDP_WAREHOUSE_OWNER_URL", "hdp_owner", "warehouse_password", "hdp"),
        loader=login("AIRFLOW_CONN_HDP_WAREHOUSE", "hdp_load", "loader_password", "hdp"),
        transformer=login("HDP_TRANSFORMER_URL", "hdp_dbt", "transformer_password", "hdp"),
        quality_reader=login(
            "HDP_QUALITY_READER_URL", "hdp_quality", "quality_reader_password", "hdp"
        ),
        airflow=airflow,
    )


def connection_env_var(conn_id: str) -> str:
    """Airflow's environment variable of a connection: AIRFLOW_CONN_<CONN_ID>."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def connections_dir(settings: Settings) -> Path:
    """Where set-up keeps source connection URLs that no environment variable gives (mode 0600
    files named by conn_id, in the secrets folder: never in the code or the repository)."""
    return settings.secrets_dir / "connections"


def save_source_connection(settings: Settings, conn_id: str, login: Login) -> None:
    """Record a source's read-only login for the platform (the demo does it for its simulated
    sources; a hospital sets AIRFLOW_CONN_<CONN_ID> or registers the Airflow connection)."""
    folder = connections_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.secrets_dir, 0o700)
    os.chmod(folder, 0o700)
    path = folder / conn_id
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(login.url + "\n")


def source_login(conn_id: str, settings: Settings | None = None) -> Login | None:
    """The read-only login of a database source's connection, or None if none is configured."""
    settings = settings or load_settings()
    if os.environ.get(connection_env_var(conn_id)):
        return Login.from_url(os.environ[connection_env_var(conn_id)])
    path = connections_dir(settings) / conn_id
    if path.exists():
        return Login.from_url(path.read_text().strip())
    return None


def source_dialect(conn_id: str, settings: Settings | None = None) -> str:
    """The SQL dialect of a source connection: its URL's scheme ('postgresql', 'mysql'...)."""
    settings = settings or load_settings()
    url = os.environ.get(connection_env_var(conn_id))
    path = connections_dir(settings) / conn_id
    if not url and path.exists():
        url = path.read_text().strip()
    return urlsplit(url or "").scheme.split("+", 1)[0] or "postgresql"


def source_logins(settings: Settings | None = None) -> dict[str, Login]:
    """conn_id -> read-only login of every configured database source connection."""
    settings = settings or load_settings()
    found = {
        conn_id: login
        for conn_id in _source_conn_ids(settings)
        if (login := source_login(conn_id, settings)) is not None
    }
    return found


def _source_conn_ids(settings: Settings) -> list[str]:
    from hdp.manifest import all_manifests

    ids = [m.conn_id for m in all_manifests() if m.kind == "database" and m.conn_id]
    folder = connections_dir(settings)
    if folder.is_dir():
        ids += [p.name for p in sorted(folder.iterdir()) if p.is_file()]
    return list(dict.fromkeys(ids))


def connect(login: Login, **kwargs: object):
    return psycopg2.connect(login.dsn, application_name="hdp", **kwargs)


def ensure_role(cur, login: Login) -> None:
    cur.execute("select 1 from pg_roles where rolname = %s", (login.user,))
    verb = "alter" if cur.fetchone() else "create"
    cur.execute(
        sql.SQL(verb + " role {} login password %s").format(sql.Identifier(login.user)),
        (login.password,),
    )


def log_statements(cur, role: str) -> None:
    try:
        cur.execute(sql.SQL("alter role {} set log_statement = 'all'").format(sql.Identifier(role)))
    except psycopg2.Error as exc:  # an existing server may not allow it (needs superuser)
        log.warning("statement logging for %s not enabled: %s", role, exc)


def ensure_database(cur, name: str, owner: str) -> None:
    cur.execute("select 1 from pg_database where datname = %s", (name,))
    if not cur.fetchone():
        cur.execute(
            sql.SQL("create database {} owner {} encoding 'UTF8' template template0").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    cur.execute(sql.SQL("revoke all on database {} from public").format(sql.Identifier(name)))


def sql_text(name: str, package: str = "hdp.warehouse") -> str:
    """A SQL file shipped with a package (the warehouse's schema.sql by default)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")
