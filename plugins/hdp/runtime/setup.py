"""Set-up of the platform's servers: roles, databases, schemas and grants, idempotently.

`ensure_platform()` starts the embedded clusters (unless HDP_PG_URL names a server) and runs
`init_databases()`: the warehouse and its platform tables (hdp/warehouse/schema.sql), the
least-privilege roles (hdp.security.roles), Airflow's metadata role and database, and an empty
`raw_<source>` table per table of every database source whose connection is configured (so dbt
can build every model, empty, before a source's first load). Sources themselves are never
created here: a hospital's are its own, and the demo's simulated ones are set up by hdp_sim.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import psycopg2

from hdp.config import Settings, load_settings
from hdp.secrets import secret
from hdp.warehouse.clusters import embedded_clusters, metadata_cluster
from hdp.warehouse.database import (
    Login,
    Logins,
    connect,
    ensure_database,
    ensure_role,
    log_statements,
    logins,
    source_login,
    sql_text,
    superuser,
)

log = logging.getLogger(__name__)


def start_servers(settings: Settings | None = None) -> None:
    """Start the embedded clusters (the warehouse's and Airflow's metadata), if embedded."""
    settings = settings or load_settings()
    if settings.embedded:
        for cluster in embedded_clusters(settings):
            cluster.start()


def ensure_platform() -> None:
    """The embedded clusters up (unless HDP_PG_URL names a server), databases and roles made."""
    start_servers()
    init_databases()


def _metadata_admin(settings: Settings, lg: Logins) -> Login | None:
    """Admin login of the server where set-up creates Airflow's role and database: the embedded
    metadata cluster (started here if needed), or the warehouse's own server when Airflow's login
    points at it. A separate metadata server of its own (compose's `airflow-db`) creates them
    itself, so set-up leaves it alone."""
    if settings.embedded:
        cluster = metadata_cluster(settings)
        cluster.start()
        return superuser(cluster)
    if (lg.airflow.host, lg.airflow.port) == (lg.admin.host, lg.admin.port):
        return lg.admin
    return None


def _init_metadata_database(admin_login: Login, airflow: Login) -> None:
    admin = psycopg2.connect(replace(admin_login, dbname="postgres").dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            ensure_role(cur, airflow)
            ensure_database(cur, airflow.dbname, airflow.user)
    finally:
        admin.close()


def init_databases(all_logins: Logins | None = None) -> None:
    """Create roles, databases and platform schemas; safe to run any number of times."""
    settings = load_settings()
    lg = all_logins or logins(settings)
    metadata_admin = _metadata_admin(settings, lg)
    if metadata_admin is not None:
        _init_metadata_database(metadata_admin, lg.airflow)
    admin = psycopg2.connect(lg.admin.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        ensure_role(cur, lg.warehouse)
        # PostgreSQL logs every statement of the platform's warehouse service login (it reads
        # raw_* and hdp_private); human logins get the same in hdp.security.roles.create_login.
        log_statements(cur, lg.warehouse.user)
        ensure_database(cur, lg.warehouse.dbname, lg.warehouse.user)
    admin.close()
    _init_warehouse(lg, settings)
    _init_landing_tables(lg.warehouse)
    init_raw_tables(lg.warehouse, settings)
    _init_security(lg)
    log.info("databases and roles ready")


def init_raw_tables(warehouse: Login, settings: Settings | None = None) -> list[str]:
    """Empty raw_<source> tables shaped like each configured database source, so dbt can build
    every model (empty) before a source's first load; the first extract fills them. A source
    whose connection is not configured yet is left for later; returns the sources done."""
    from hdp.ingest.extract import connect_source, ensure_raw_table, source_columns
    from hdp.manifest import all_manifests

    settings = settings or load_settings()
    done: list[str] = []
    for manifest in all_manifests():
        if manifest.kind != "database" or not manifest.conn_id:
            continue
        reader = source_login(manifest.conn_id, settings)
        if reader is None:
            continue
        src, wh = connect_source(reader), connect(warehouse)
        try:
            for spec in manifest.tables:
                columns = source_columns(src, manifest.schema, spec.name)
                ensure_raw_table(wh, manifest.raw_schema, spec.name, columns)
            wh.commit()
        finally:
            src.close()
            wh.close()
        done.append(manifest.source)
    return done


def _init_landing_tables(warehouse: Login) -> None:
    """The landing table of every file source, from its manifest (hdp.ingest.files), so dbt can
    build every model (empty) before the source's first file; the loader then owns it."""
    from hdp.ingest.files import ensure_landing_tables
    from hdp.manifest import all_manifests

    conn = connect(warehouse)
    try:
        for manifest in all_manifests():
            if manifest.kind == "files":
                ensure_landing_tables(conn, manifest)
    finally:
        conn.close()


def _init_warehouse(lg: Logins, settings: Settings) -> None:
    from hdp.security.roles import store_pseudonym_key

    conn = connect(lg.warehouse)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql_text("schema.sql"))
            cur.execute("select 1 from hdp_private.pseudonym_key")
            seeded = cur.fetchone() is not None
        if not seeded:
            key = os.environ.get("HDP_PSEUDONYM_KEY") or secret(
                settings.secrets_dir, "pseudonym_key"
            )
            store_pseudonym_key(conn, key, rotate=False)  # by COPY: never in SQL text or logs
        _rehash_clear_record_keys(conn)
    finally:
        conn.close()


def _rehash_clear_record_keys(conn) -> None:
    """Row issues recorded before keys were hashed hold them in clear: rehash them under each
    table's manifest key (hdp.quality.record_keys), so no clear key stays in the audit."""
    from hdp.manifest import all_manifests
    from hdp.quality.record_keys import migrate_clear_keys

    keys = {(m.source, t.name): t.primary_key for m in all_manifests() for t in m.tables}
    migrate_clear_keys(conn, keys)


def _init_security(lg: Logins) -> None:
    """Least-privilege group roles, grants and statement logging (hdp.security.roles)."""
    from hdp.security.roles import LOADER, QUALITY_READER, TRANSFORMER, apply_roles, create_login

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
