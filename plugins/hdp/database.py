"""Databases and roles of the platform, created idempotently on the embedded or an existing server.

- `hdp`     the warehouse (owner `hdp_owner`): raw_<source>, audit, staging, intermediate, marts;
            the pipeline logs in as `hdp_load` (extract, gate) and `hdp_dbt` (dbt), never as owner
- `his`     the simulated HIS source (owner `his_owner`, read-only login `his_reader`)
- `pharmacy` the simulated pharmacy source (owner `pharmacy_owner`, reader `pharmacy_reader`)
- `airflow` Airflow's metadata (owner `airflow`), on a server of its own: the embedded metadata
            cluster (hdp.pgcluster), or docker-compose's `airflow-db`; so a warehouse restart
            never takes the scheduler's state with it
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from importlib import resources
from urllib.parse import quote, urlsplit

import psycopg2
from psycopg2 import sql

from hdp.config import Settings, load_settings
from hdp.pgcluster import SUPERUSER, Cluster, metadata_cluster, warehouse_cluster
from hdp.secrets import secret

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
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in self._ssl().items())
        return (
            f"postgresql://{quote(self.user)}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{self.dbname}" + (f"?{query}" if query else "")
        )

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
        return cls(
            user=parts.username or "",
            password=parts.password or "",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=parts.path.lstrip("/") or "postgres",
            sslmode=query.get("sslmode", "prefer"),
            sslrootcert=query.get("sslrootcert"),
            sslcert=query.get("sslcert"),
            sslkey=query.get("sslkey"),
        )


@dataclass(frozen=True)
class Logins:
    admin: Login
    warehouse: Login  # the owner: set-up, migrations, identity refresh; never a pipeline task
    loader: Login  # extract + gate (Airflow connection hdp_warehouse), member of hdp_loader
    transformer: Login  # dbt (profile env HDP_WAREHOUSE_*), member of hdp_transformer
    quality_reader: Login  # the Data quality page (api-server), member of hdp_quality_reader
    his_owner: Login
    his_reader: Login
    pharmacy_owner: Login
    pharmacy_reader: Login
    airflow: Login

    def simulated_sources(self) -> list[tuple[str, Login, Login]]:
        """(source, owner login, read-only login) of each simulated source database."""
        return [
            ("his", self.his_owner, self.his_reader),
            ("pharmacy", self.pharmacy_owner, self.pharmacy_reader),
        ]


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


def _superuser(cluster: Cluster) -> Login:
    return Login(SUPERUSER, cluster.superuser_password(), cluster.host, cluster.port, "postgres")


def logins(settings: Settings | None = None) -> Logins:
    """Every login the platform uses; explicit environment URLs win over generated secrets."""
    settings = settings or load_settings()
    host, port, admin_url = _server(settings)
    sdir = settings.secrets_dir

    def login(
        env: str, user: str, secret_name: str, dbname: str, server: tuple[str, int] = (host, port)
    ) -> Login:
        if os.environ.get(env):
            return Login.from_url(os.environ[env])
        return Login(user, secret(sdir, secret_name), *server, dbname)

    return Logins(
        admin=Login.from_url(admin_url),
        warehouse=login("HDP_WAREHOUSE_OWNER_URL", "hdp_owner", "warehouse_password", "hdp"),
        loader=login("AIRFLOW_CONN_HDP_WAREHOUSE", "hdp_load", "loader_password", "hdp"),
        transformer=login("HDP_TRANSFORMER_URL", "hdp_dbt", "transformer_password", "hdp"),
        quality_reader=login(
            "HDP_QUALITY_READER_URL", "hdp_quality", "quality_reader_password", "hdp"
        ),
        his_owner=login("HDP_HIS_OWNER_URL", "his_owner", "his_owner_password", "his"),
        his_reader=login("AIRFLOW_CONN_HIS_SOURCE", "his_reader", "his_reader_password", "his"),
        pharmacy_owner=login(
            "HDP_PHARMACY_OWNER_URL", "pharmacy_owner", "pharmacy_owner_password", "pharmacy"
        ),
        pharmacy_reader=login(
            "AIRFLOW_CONN_PHARMACY_SOURCE",
            "pharmacy_reader",
            "pharmacy_reader_password",
            "pharmacy",
        ),
        airflow=login(
            "HDP_AIRFLOW_DB_URL",
            "airflow",
            "airflow_db_password",
            "airflow",
            _metadata_server(settings, (host, port)),
        ),
    )


def connect(login: Login, **kwargs: object):
    return psycopg2.connect(login.dsn, application_name="hdp", **kwargs)


def _ensure_role(cur, login: Login) -> None:
    cur.execute("select 1 from pg_roles where rolname = %s", (login.user,))
    verb = "alter" if cur.fetchone() else "create"
    cur.execute(
        sql.SQL(verb + " role {} login password %s").format(sql.Identifier(login.user)),
        (login.password,),
    )


def _log_statements(cur, role: str) -> None:
    try:
        cur.execute(sql.SQL("alter role {} set log_statement = 'all'").format(sql.Identifier(role)))
    except psycopg2.Error as exc:  # an existing server may not allow it (needs superuser)
        log.warning("statement logging for %s not enabled: %s", role, exc)


def _ensure_database(cur, name: str, owner: str) -> None:
    cur.execute("select 1 from pg_database where datname = %s", (name,))
    if not cur.fetchone():
        cur.execute(
            sql.SQL("create database {} owner {} encoding 'UTF8' template template0").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    cur.execute(sql.SQL("revoke all on database {} from public").format(sql.Identifier(name)))


def _sql_text(name: str) -> str:
    return resources.files("hdp").joinpath(name).read_text(encoding="utf-8")


def manages_simulated_source(settings: Settings) -> bool:
    """The simulated HIS lives beside the warehouse on the embedded cluster; against an existing
    server (HDP_PG_URL) the real HIS is someone else's and is never created or touched."""
    return settings.embedded or os.environ.get("HDP_MANAGE_HIS_SOURCE") == "1"


def _metadata_admin(settings: Settings, lg: Logins) -> Login | None:
    """Admin login of the server where set-up creates Airflow's role and database: the embedded
    metadata cluster (started here if needed), or the warehouse's own server when Airflow's login
    points at it. A separate metadata server of its own (compose's `airflow-db`) creates them
    itself, so set-up leaves it alone."""
    if settings.embedded:
        cluster = metadata_cluster(settings)
        cluster.start()
        return _superuser(cluster)
    if (lg.airflow.host, lg.airflow.port) == (lg.admin.host, lg.admin.port):
        return lg.admin
    return None


def _init_metadata_database(admin_login: Login, airflow: Login) -> None:
    admin = psycopg2.connect(replace(admin_login, dbname="postgres").dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            _ensure_role(cur, airflow)
            _ensure_database(cur, airflow.dbname, airflow.user)
    finally:
        admin.close()


def init_databases(all_logins: Logins | None = None) -> None:
    """Create roles, databases and platform schemas; safe to run any number of times."""
    settings = load_settings()
    lg = all_logins or logins(settings)
    with_his = manages_simulated_source(settings)
    metadata_admin = _metadata_admin(settings, lg)
    if metadata_admin is not None:
        _init_metadata_database(metadata_admin, lg.airflow)
    admin = psycopg2.connect(lg.admin.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        sources = lg.simulated_sources() if with_his else []
        managed = [lg.warehouse] + [x for _, o, r in sources for x in (o, r)]
        for login in managed:
            _ensure_role(cur, login)
        # PostgreSQL logs every statement of the platform's warehouse service login (it reads
        # raw_* and hdp_private); human logins get the same in hdp.security.create_login.
        _log_statements(cur, lg.warehouse.user)
        _ensure_database(cur, lg.warehouse.dbname, lg.warehouse.user)
        for _, owner, reader in sources:
            _ensure_database(cur, owner.dbname, owner.user)
            cur.execute(
                sql.SQL("grant connect on database {} to {}").format(
                    sql.Identifier(owner.dbname), sql.Identifier(reader.user)
                )
            )
    admin.close()
    for source, owner, reader in sources:
        _init_source(source, owner, reader)
    _init_warehouse(lg, settings)
    _init_landing_tables(lg.warehouse)
    for source, _, reader in sources:
        _init_raw_tables(source, reader, lg.warehouse)
    _init_security(lg)
    log.info("databases and roles ready")


def _init_raw_tables(source: str, reader: Login, warehouse: Login) -> None:
    """Empty raw_<source> tables shaped like the simulated source, so dbt can build every
    model (empty) before a source's first load; the first extract fills them."""
    from hdp.extract import ensure_raw_table, source_columns
    from hdp.manifest import all_manifests

    manifest = next((m for m in all_manifests() if m.source == source), None)
    if manifest is None:
        return
    src, wh = connect(reader), connect(warehouse)
    try:
        for spec in manifest.tables:
            columns = source_columns(src, manifest.schema, spec.name)
            ensure_raw_table(wh, manifest.raw_schema, spec.name, columns)
        wh.commit()
    finally:
        src.close()
        wh.close()


def _init_landing_tables(warehouse: Login) -> None:
    """The landing table of every file source, from its manifest (hdp.filedrop), so dbt can
    build every model (empty) before the source's first file; the loader then owns it."""
    from hdp.filedrop import ensure_landing_tables
    from hdp.manifest import all_manifests

    conn = connect(warehouse)
    try:
        for manifest in all_manifests():
            if manifest.kind == "files":
                ensure_landing_tables(conn, manifest)
    finally:
        conn.close()


def _init_source(source: str, owner: Login, reader: Login) -> None:
    """The simulated source's schema (simulator/<source>_schema.sql), readable by its reader;
    the simulator's bookkeeping schema `sim` stays the owner's."""
    with connect(owner) as conn, conn.cursor() as cur:
        cur.execute(_sql_text(f"simulator/{source}_schema.sql"))
        schema, login = sql.Identifier(source), sql.Identifier(reader.user)
        cur.execute(sql.SQL("grant usage on schema {} to {}").format(schema, login))
        cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(schema, login))
        cur.execute(
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                schema, login
            )
        )
    conn.close()


def _init_warehouse(lg: Logins, settings: Settings) -> None:
    from hdp.security import store_pseudonym_key

    conn = connect(lg.warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_sql_text("warehouse_schema.sql"))
            cur.execute("select 1 from hdp_private.pseudonym_key")
            seeded = cur.fetchone() is not None
        if not seeded:
            key = os.environ.get("HDP_PSEUDONYM_KEY") or secret(
                settings.secrets_dir, "pseudonym_key"
            )
            store_pseudonym_key(conn, key, rotate=False)  # by COPY: never in SQL text or logs
    finally:
        conn.close()


def _init_security(lg: Logins) -> None:
    """Least-privilege group roles, grants and statement logging (hdp.security)."""
    from hdp.security import LOADER, QUALITY_READER, TRANSFORMER, apply_roles, create_login

    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    try:
        with admin, admin.cursor() as cur:
            apply_roles(cur, lg.warehouse.user, lg.warehouse.dbname)
            # the pipeline's own service logins: extract + gate, and dbt (never the owner)
            create_login(cur, lg.loader.user, lg.loader.password, LOADER)
            create_login(cur, lg.transformer.user, lg.transformer.password, TRANSFORMER)
            # the Data quality page reads the audit it shows, as its own login (not the loader)
            create_login(cur, lg.quality_reader.user, lg.quality_reader.password, QUALITY_READER)
    finally:
        admin.close()
