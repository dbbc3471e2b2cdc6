"""Incremental, idempotent extract-load of one source table into raw_<source> by COPY streaming.

A batch is identified by (source, table, run_id). Its watermark interval is fixed the first time
the run extracts the table and reused on every retry, so rerunning an interval replaces the
batch's rows in one transaction: no duplicate, no lost row. The next run starts from the highest
watermark of the last batch that passed its quality gate, so a rejected or half-finished batch
is extracted again rather than skipped.

Rows travel source → warehouse as a binary COPY through an OS pipe (two threads), never through
Python objects: memory stays flat whatever the table size.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from hdp.manifest import SourceManifest, TableSpec

log = logging.getLogger(__name__)

METADATA_COLUMNS = (
    ("_batch_id", "bigint"),
    ("_extracted_at", "timestamp with time zone"),
    ("_source", "text"),
)


class ExtractError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    batch_id: int
    source: str
    table: str
    rows_read: int
    rows_written: int
    low_watermark: datetime | None
    high_watermark: datetime | None
    duration_s: float


def source_columns(conn, schema: str, table: str) -> list[tuple[str, str]]:
    """Column names and full SQL types of a source table, in table order."""
    with conn.cursor() as cur:
        cur.execute(
            """
            select a.attname, format_type(a.atttypid, a.atttypmod)
            from pg_attribute a
            join pg_class c on c.oid = a.attrelid
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
            order by a.attnum
            """,
            (schema, table),
        )
        cols = cur.fetchall()
    if not cols:
        raise ExtractError(f"source table {schema}.{table} not found or not readable")
    return [(name, typ) for name, typ in cols]


def ensure_raw_table(wh, raw_schema: str, table: str, columns: list[tuple[str, str]]) -> None:
    """Create raw_<source>.<table> like the source plus load metadata; refuse silent drift."""
    with wh.cursor() as cur:
        # set-up creates raw_<source> (security.apply_roles); the loader may lack CREATE on the
        # database, which even `create schema if not exists` demands, so look first
        cur.execute("select 1 from pg_namespace where nspname = %s", (raw_schema,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(raw_schema)))
        existing = source_columns(wh, raw_schema, table) if _exists(cur, raw_schema, table) else []
        wanted = columns + list(METADATA_COLUMNS)
        if not existing:
            cur.execute(
                sql.SQL("create table {}.{} ({})").format(
                    sql.Identifier(raw_schema),
                    sql.Identifier(table),
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in wanted
                    ),
                )
            )
            # batches are appended in order: a BRIN index is tiny and cheap to maintain
            cur.execute(
                sql.SQL("create index on {}.{} using brin (_batch_id)").format(
                    sql.Identifier(raw_schema), sql.Identifier(table)
                )
            )
        elif existing != wanted:
            missing = [c for c in wanted if c not in existing]
            extra = [c for c in existing if c not in wanted]
            raise ExtractError(
                f"schema drift in {raw_schema}.{table}: source now has {missing or 'nothing new'}, "
                f"raw has {extra or 'nothing extra'}. Review the change, then migrate the raw "
                "table (alter table ... add column) before the next load."
            )


def _exists(cur, schema: str, table: str) -> bool:
    cur.execute("select to_regclass(%s)", (f'"{schema}"."{table}"',))
    return cur.fetchone()[0] is not None


def _open_batch(wh, manifest: SourceManifest, spec: TableSpec, run_id: str) -> tuple[int, bool]:
    """Register (or find again) the batch of this run; returns (batch_id, is_retry)."""
    with wh.cursor() as cur:
        cur.execute(
            """
            insert into audit.load_batch (source, table_name, run_id, status)
            values (%s, %s, %s, 'loading')
            on conflict (source, table_name, run_id)
            do update set status = 'loading', started_at = now(), error = null
            returning batch_id, (xmax <> 0) as is_retry
            """,
            (manifest.source, spec.name, run_id),
        )
        batch_id, is_retry = cur.fetchone()
    wh.commit()
    return batch_id, is_retry


def _interval(wh, manifest: SourceManifest, spec: TableSpec, batch_id: int, is_retry: bool, src):
    """(low, high] watermark interval of the batch: stored on first extraction, then reused."""
    with wh.cursor() as cur:
        cur.execute(
            "select low_watermark, high_watermark from audit.load_batch where batch_id = %s",
            (batch_id,),
        )
        low, high = cur.fetchone()
        if is_retry and high is not None:
            return low, high
        cur.execute(
            """
            select max(high_watermark) from audit.load_batch
            where source = %s and table_name = %s and status = 'published'
            """,
            (manifest.source, spec.name),
        )
        low = cur.fetchone()[0]
    with src.cursor() as cur:
        cur.execute(
            sql.SQL("select max({}) from {}.{}").format(
                sql.Identifier(spec.watermark),
                sql.Identifier(manifest.schema),
                sql.Identifier(spec.name),
            )
        )
        high = cur.fetchone()[0]
    if high is None or (low is not None and high < low):
        high = low
    # Fix the interval now: a retry after a crash mid-copy extracts exactly the same rows.
    with wh.cursor() as cur:
        cur.execute(
            "update audit.load_batch set low_watermark = %s, high_watermark = %s "
            "where batch_id = %s",
            (low, high, batch_id),
        )
    wh.commit()
    return low, high


def _where(
    spec: TableSpec, low: datetime | None, high: datetime | None
) -> tuple[sql.Composed, list]:
    wm = sql.Identifier(spec.watermark)
    if high is None:  # empty source table
        return sql.SQL("false").format(), []
    if low is None:
        return sql.SQL("{} <= %s").format(wm), [high]
    return sql.SQL("{} > %s and {} <= %s").format(wm, wm), [low, high]


def _copy_stream(src, wh, copy_out: str, copy_in: str) -> tuple[int, int]:
    """Pipe a binary COPY TO STDOUT on `src` into COPY FROM STDIN on `wh`.

    Returns (rows read, rows written): both ends report their own count, so the source is
    read once (no separate count(*)) and the two numbers still reconcile independently.
    """
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    read: list[int] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb", buffering=1 << 20) as sink,
                src.cursor() as cur,
            ):
                cur.copy_expert(copy_out, sink, size=1 << 20)
                read.append(cur.rowcount)
        except BaseException as exc:  # handed to the consumer thread below
            failure.append(exc)

    producer = threading.Thread(target=produce, name="copy-out", daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as source, wh.cursor() as cur:
            cur.copy_expert(copy_in, source, size=1 << 20)
            written = cur.rowcount
    finally:
        producer.join()
    if failure:
        raise ExtractError(f"reading from the source failed: {failure[0]}") from failure[0]
    return (read[0] if read else -1), written


def extract_table(src, wh, manifest: SourceManifest, table: str, run_id: str) -> LoadResult:
    """Load the rows of `table` changed since the last published batch into raw_<source>.<table>.

    `src` and `wh` are psycopg2 connections to the source and the warehouse. Idempotent per
    run_id: a retry replaces the batch's rows inside one warehouse transaction.
    """
    spec = manifest.table(table)
    started = time.monotonic()
    columns = source_columns(src, manifest.schema, spec.name)
    src.rollback()
    ensure_raw_table(wh, manifest.raw_schema, spec.name, columns)
    wh.commit()
    batch_id, is_retry = _open_batch(wh, manifest, spec, run_id)
    extracted_at = datetime.now(UTC)
    try:
        # One snapshot for the interval's max(watermark) and the copy, so no row committed in
        # between can fall into this batch's interval unseen.
        src.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)
        src.set_session(readonly=True)
        low, high = _interval(wh, manifest, spec, batch_id, is_retry, src)
        where, params = _where(spec, low, high)
        target = sql.Identifier(manifest.schema), sql.Identifier(spec.name)
        with src.cursor() as cur:
            select = (
                sql.SQL(
                    "select {}, %s::bigint, %s::timestamptz, %s::text from {}.{} where "
                ).format(sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns), *target)
                + where
            )
            copy_out = cur.mogrify(
                sql.SQL("copy ({}) to stdout (format binary)").format(select),
                [batch_id, extracted_at, manifest.source, *params],
            ).decode()
        raw = sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
        with wh.cursor() as cur:
            cur.execute(
                sql.SQL("delete from {}.{} where _batch_id = %s").format(*raw),
                (batch_id,),
            )
        copy_in = sql.SQL("copy {}.{} from stdin (format binary)").format(*raw)
        rows_read, rows_written = _copy_stream(src, wh, copy_out, copy_in.as_string(wh))
        src.rollback()
        if rows_written != rows_read:
            raise ExtractError(
                f"{manifest.source}.{spec.name}: read {rows_read} rows but wrote {rows_written}"
            )
        duration = time.monotonic() - started
        with wh.cursor() as cur:
            cur.execute(
                """
                update audit.load_batch
                set status = 'loaded', low_watermark = %s, high_watermark = %s, rows_read = %s,
                    rows_written = %s, finished_at = now(), duration_s = %s
                where batch_id = %s
                """,
                (low, high, rows_read, rows_written, duration, batch_id),
            )
        wh.commit()
        # fresh statistics: without them the planner guesses 1 row and dbt's joins go quadratic
        with wh.cursor() as cur:
            cur.execute(sql.SQL("analyze {}.{}").format(*raw))
        wh.commit()
    except BaseException as exc:
        wh.rollback()
        src.rollback()
        with wh.cursor() as cur:
            cur.execute(
                "update audit.load_batch set status = 'failed', error = %s where batch_id = %s",
                # first line only: PostgreSQL's CONTEXT lines can quote row values (patient data)
                (
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                    batch_id,
                ),
            )
        wh.commit()
        raise
    log.info(
        "extracted %s.%s batch %s: %s rows in %.2fs",
        manifest.source,
        spec.name,
        batch_id,
        rows_written,
        duration,
    )
    return LoadResult(
        batch_id,
        manifest.source,
        spec.name,
        rows_read,
        rows_written,
        low,
        high,
        duration,
    )
