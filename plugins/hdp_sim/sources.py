"""The demo's simulated source databases and their logins: configuration of the demo only.

- `his`      the simulated HIS (owner `his_owner`, read-only login `his_reader`)
- `pharmacy` the simulated pharmacy (owner `pharmacy_owner`, read-only login `pharmacy_reader`)
- `hisb`     the simulated HIS of Hospital B, another vendor's, on MySQL/MariaDB (owner
             `hisb_owner`, read-only login `hisb_reader`; hdp_sim.hospital_b)

The first two live beside the warehouse on the embedded cluster; Hospital B's on the
project-local MariaDB server (hdp.warehouse.mariadb, started here when it is not running; or
the server HDP_MARIADB_URL names), its databases `hisb` (what is extracted) and `hisb_sim` (the
simulator's bookkeeping, not granted to the reader). Set-up creates them, records each
reader's URL as the platform's source connection (hdp.warehouse.database.save_source_connection:
the platform reads a hospital's source the same way, from AIRFLOW_CONN_<CONN_ID> or that file),
then runs the platform's own set-up. Against an existing server (HDP_PG_URL) a real source is
someone else's and is never created or touched, unless HDP_MANAGE_HIS_SOURCE=1 (compose's demo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from importlib import resources

import psycopg2
from psycopg2 import sql

from hdp.config import Settings, load_settings
from hdp.runtime import setup
from hdp.secrets import password
from hdp.warehouse.database import (
    Login,
    Logins,
    connect,
    ensure_database,
    ensure_role,
    save_source_connection,
    server_login,
)
from hdp.warehouse.database import (
    logins as platform_logins,
)

# the simulated sources on MySQL/MariaDB (the rest are on PostgreSQL)
MYSQL_SOURCES = ("hisb",)
# source name -> the platform connection id its manifest (dags/sources/<name>.yml) reads through
CONN_IDS = {"his": "his_source", "pharmacy": "pharmacy_source", "hisb": "hisb_source"}


@dataclass(frozen=True)
class DemoLogins(Logins):
    """The platform's logins and the simulated sources' owners and readers."""

    his_owner: Login
    his_reader: Login
    pharmacy_owner: Login
    pharmacy_reader: Login
    hisb_owner: Login
    hisb_reader: Login

    def simulated_sources(self) -> list[tuple[str, Login, Login]]:
        """(source, owner login, read-only login) of each simulated source database."""
        return [
            ("his", self.his_owner, self.his_reader),
            ("pharmacy", self.pharmacy_owner, self.pharmacy_reader),
            ("hisb", self.hisb_owner, self.hisb_reader),
        ]


def _login(settings: Settings, env: str, user: str, dbname: str) -> Login:
    # generated on first use, like the platform's own (hdp.secrets), under the demo's names
    return server_login(settings, env, user, f"{user}_password", dbname, password)


def logins(settings: Settings | None = None) -> DemoLogins:
    settings = settings or load_settings()
    base = platform_logins(settings)
    return DemoLogins(
        **{f.name: getattr(base, f.name) for f in fields(Logins)},
        his_owner=_login(settings, "HDP_HIS_OWNER_URL", "his_owner", "his"),
        his_reader=_login(settings, "AIRFLOW_CONN_HIS_SOURCE", "his_reader", "his"),
        pharmacy_owner=_login(settings, "HDP_PHARMACY_OWNER_URL", "pharmacy_owner", "pharmacy"),
        pharmacy_reader=_login(
            settings, "AIRFLOW_CONN_PHARMACY_SOURCE", "pharmacy_reader", "pharmacy"
        ),
        hisb_owner=_mysql_login(settings, "HDP_HISB_OWNER_URL", "hisb_owner", "hisb"),
        hisb_reader=_mysql_login(settings, "AIRFLOW_CONN_HISB_SOURCE", "hisb_reader", "hisb"),
    )


def _mysql_login(settings: Settings, env: str, user: str, dbname: str) -> Login:
    """A login on the MySQL sources' server: the URL in `env` when set, else `user` with its
    generated secret on the embedded MariaDB (or the server HDP_MARIADB_URL names)."""
    from urllib.parse import urlsplit

    from hdp.secrets import secret
    from hdp.warehouse.mariadb import URL_ENV, mariadb_port

    if os.environ.get(env):
        return Login.from_url(os.environ[env])
    server = urlsplit(os.environ.get(URL_ENV) or "")
    return Login(
        user,
        secret(settings.secrets_dir, f"{user}_password", password),
        server.hostname or "127.0.0.1",
        server.port or (3306 if server.hostname else mariadb_port()),
        dbname,
        scheme="mysql",
    )


def manages_simulated_sources(settings: Settings) -> bool:
    """The simulated sources live beside the warehouse on the embedded cluster; against an
    existing server the sources are someone else's, unless HDP_MANAGE_HIS_SOURCE=1."""
    return settings.embedded or os.environ.get("HDP_MANAGE_HIS_SOURCE") == "1"


def init_sources(lg: DemoLogins, settings: Settings | None = None) -> None:
    """Roles, databases and schemas of the simulated sources, each reader granted read-only
    access and recorded as the platform's connection of that source."""
    settings = settings or load_settings()
    admin = psycopg2.connect(lg.admin.dsn)
    admin.autocommit = True
    postgres = [s for s in lg.simulated_sources() if s[0] not in MYSQL_SOURCES]
    with admin.cursor() as cur:
        for _, owner, reader in postgres:
            ensure_role(cur, owner)
            ensure_role(cur, reader)
            ensure_database(cur, owner.dbname, owner.user)
            cur.execute(
                sql.SQL("grant connect on database {} to {}").format(
                    sql.Identifier(owner.dbname), sql.Identifier(reader.user)
                )
            )
    admin.close()
    for source, owner, reader in postgres:
        _init_source_schema(source, owner, reader)
        save_source_connection(settings, CONN_IDS[source], reader)
    init_mysql_sources(lg, settings)


def init_mysql_sources(lg: DemoLogins, settings: Settings | None = None) -> None:
    """The simulated MySQL-family sources alone (Hospital B's HIS): their databases, owner and
    reader on the MySQL server (the embedded MariaDB, or HDP_MARIADB_URL's: compose's
    hisb-source), each reader recorded as the platform's connection of that source."""
    settings = settings or load_settings()
    for source, owner, reader in lg.simulated_sources():
        if source in MYSQL_SOURCES:
            _init_mysql_source(settings, source, owner, reader)
            save_source_connection(settings, CONN_IDS[source], reader)


def _mysql_hosts() -> tuple[str, ...]:
    """The host parts of the MySQL sources' users: the embedded server listens on 127.0.0.1
    only; an existing server (HDP_MARIADB_URL) is reached from elsewhere."""
    from hdp.warehouse.mariadb import URL_ENV

    return ("%",) if os.environ.get(URL_ENV) else ("127.0.0.1", "localhost")


def _mysql_admin(settings: Settings):
    """A PyMySQL connection of the MySQL server's administrator (autocommit); starts the
    embedded MariaDB when it is not running."""
    from hdp.warehouse.mariadb import connect as mariadb_connect
    from hdp.warehouse.mariadb import mariadb_admin

    return mariadb_connect(mariadb_admin(settings), autocommit=True)


def _init_mysql_source(settings: Settings, source: str, owner: Login, reader: Login) -> None:
    """A simulated source on MySQL/MariaDB: the databases `<source>` and `<source>_sim`
    (utf8mb4), the owner with every right on both, the reader with `select` on `<source>`
    only, then the tables (hdp_sim/<source>_schema.sql, through the owner)."""
    from hdp.ingest.extract import connect_source

    sim_db = f"{source}_sim"
    conn = _mysql_admin(settings)
    try:
        with conn.cursor() as cur:
            for db in (source, sim_db):
                cur.execute(
                    f"create database if not exists `{db}` character set utf8mb4 "
                    "collate utf8mb4_unicode_ci"
                )
            for host in _mysql_hosts():
                for login in (owner, reader):
                    cur.execute("create user if not exists %s@%s", (login.user, host))
                    cur.execute(
                        "alter user %s@%s identified by %s", (login.user, host, login.password)
                    )
                for db in (source, sim_db):
                    cur.execute(f"grant all privileges on `{db}`.* to %s@%s", (owner.user, host))
                cur.execute(f"grant select on `{source}`.* to %s@%s", (reader.user, host))
    finally:
        conn.close()
    if source == "hisb":
        from hdp_sim import hospital_b

        owned = connect_source(owner)
        try:
            hospital_b.create_schema(owned)
        finally:
            owned.close()


def drop_mysql_sources(settings: Settings | None = None) -> None:
    """Drop the simulated MySQL sources' databases (the tests' fresh start); init_sources makes
    them again."""
    settings = settings or load_settings()
    conn = _mysql_admin(settings)
    try:
        with conn.cursor() as cur:
            for source in MYSQL_SOURCES:
                for db in (source, f"{source}_sim"):
                    cur.execute(f"drop database if exists `{db}`")
    finally:
        conn.close()


def _init_source_schema(source: str, owner: Login, reader: Login) -> None:
    """The simulated source's schema (hdp_sim/<source>_schema.sql), readable by its reader;
    the simulator's bookkeeping schema `sim` stays the owner's."""
    text = resources.files("hdp_sim").joinpath(f"{source}_schema.sql").read_text("utf-8")
    with connect(owner) as conn, conn.cursor() as cur:
        cur.execute(text)
        schema, login = sql.Identifier(source), sql.Identifier(reader.user)
        cur.execute(sql.SQL("grant usage on schema {} to {}").format(schema, login))
        cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(schema, login))
        cur.execute(
            sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                schema, login
            )
        )
    conn.close()


def init_databases(lg: DemoLogins | None = None) -> DemoLogins:
    """The demo's set-up: the simulated sources (when managed here), then the platform's own
    (hdp.runtime.setup.init_databases), which shapes raw_<source> after the sources."""
    settings = load_settings()
    lg = lg or logins(settings)
    if manages_simulated_sources(settings):
        init_sources(lg, settings)
    setup.init_databases(lg)
    return lg


def ensure_demo_databases() -> DemoLogins:
    """Servers up, simulated sources and platform databases made (idempotent)."""
    setup.start_servers()
    return init_databases()
