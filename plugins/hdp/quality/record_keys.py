"""Keys without identifiers: how a quarantined row's key is recorded and found again.

audit.row_issue.record_key holds a row's key only as a keyed hash (HMAC-SHA256 under
hdp_private.record_key_secret, a secret of its own that never rotates), with the key columns it
was taken from (row_issue.key_columns), whatever the columns hold: an internal id, a
social-security card number, a drug name. The SQL lives in the warehouse (schema.sql) and is the
one definition the gate (here) and dbt's staging (macros/published_rows.sql) both call:

- audit.record_key(variadic text[])       a row's key in clear (JSON array text), never stored
- audit.record_key_hashes(...)            the gate's hashes of keys its batch's rows have
- audit.issue_keys(...), audit.quarantined_keys(...)   the rows behind row issues

No service login reads the secret or can hash a value of its choosing (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from psycopg2 import sql

log = logging.getLogger(__name__)


def clear_key_sql(primary_key: Sequence[str], alias: str | None = None) -> sql.Composable:
    """A row's key in clear, audit.record_key() of its key columns as text (`alias`: columns as
    alias.column). Every name is a quoted identifier (a manifest's name may hold a quote, a
    space or Chinese characters). Used to match rows, never stored."""

    def column(name: str) -> sql.Composable:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    parts = [sql.SQL("{}::text").format(column(k)) for k in primary_key]
    return sql.SQL("audit.record_key({})").format(sql.SQL(", ").join(parts))


def key_columns_literal(primary_key: Sequence[str]) -> sql.Composable:
    """The key columns as a text[] literal."""
    return sql.SQL("array[{}]::text[]").format(
        sql.SQL(", ").join(sql.Literal(str(k)) for k in primary_key)
    )


def in_quarantine_sql(
    source: str, table: str, primary_key: Sequence[str], alias: str
) -> sql.Composable:
    """True for a row (as `alias`) held in quarantine: audit.quarantined_keys(), the one
    predicate dbt's published_rows() leaves out too. Literals only (GX runs it as text)."""
    return sql.SQL(
        "exists (select 1 from audit.quarantined_keys({source}, {table}, {columns}) as q "
        "where q.batch_id = {alias}._batch_id and q.record_key = {key})"
    ).format(
        source=sql.Literal(source),
        table=sql.Literal(table),
        columns=key_columns_literal(primary_key),
        alias=sql.Identifier(alias),
        key=clear_key_sql(primary_key, alias=alias),
    )


def insert_issues_sql(
    raw: tuple[sql.Composable, sql.Composable], primary_key: Sequence[str], condition: str
) -> sql.Composable:
    """The gate's insert of one row check's failing rows into audit.row_issue: each row's key as
    its keyed hash (audit.record_key_hashes), never in clear. Parameters, in order: batch id,
    source, table, check id, column, category, action; batch id (of the failing rows); source,
    table, batch id (of the hashes). The check's condition sees the raw table unaliased."""
    return sql.SQL(
        "with failing as (select {key} as hdp_key from {schema}.{table} "
        "where _batch_id = %s and ({condition})) "
        "insert into audit.row_issue (batch_id, source, table_name, record_key, key_columns, "
        "check_id, column_name, category, action) "
        "select %s, %s, %s, hashed.key_hash, {columns}, %s, %s, %s, %s from failing "
        "inner join audit.record_key_hashes(%s, %s, {columns}, %s, "
        "array(select distinct f.hdp_key from failing as f)) as hashed "
        "on hashed.record_key = failing.hdp_key"
    ).format(
        key=clear_key_sql(primary_key),
        schema=raw[0],
        table=raw[1],
        condition=sql.SQL(condition),
        columns=key_columns_literal(primary_key),
    )


def migrate_clear_keys(conn, keys: dict[tuple[str, str], tuple[str, ...]]) -> int:
    """Rehash row issues recorded before keys were hashed (key_columns null: record_key in clear,
    the key columns joined with '|'), under the key of each table's manifest (`keys`: (source,
    table) -> key columns); an issue of a table no manifest names keeps no key (it matches no
    row any more). Runs as the owner at set-up (hdp.runtime.setup); idempotent; returns rows."""
    with conn.cursor() as cur:
        cur.execute(
            "select distinct source, table_name from audit.row_issue where key_columns is null"
        )
        tables = cur.fetchall()
        done = 0
        for source, table in tables:
            columns = list(keys.get((source, table), ()))
            cur.execute(
                "update audit.row_issue set key_columns = %s::text[], record_key = "
                "hdp_private.record_key_hmac(source, table_name, "
                "audit.record_key(variadic string_to_array(record_key, '|'))) "
                "where key_columns is null and source = %s and table_name = %s",
                (columns, source, table),
            )
            done += cur.rowcount
    conn.commit()
    if done:
        log.info("row issues recorded with a clear key, rehashed: %d", done)
    return done
