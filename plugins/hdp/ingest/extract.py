"""Incremental, idempotent extract-load of one source table into raw_<source> by COPY streaming.

A batch is identified by (source, table, run_id). Its watermark interval is fixed the first time
the run extracts the table and reused on every retry, so rerunning an interval replaces the
batch's rows in one transaction: no duplicate, no lost row. A published batch is immutable: a
rerun of its run extracts nothing and says so. The next run starts from the highest watermark
of the published batches less a look-back window (`lookback_minutes` of the manifest), so a row
a source transaction committed after a later-stamped one was extracted still arrives; rows
re-read in the window whose version (primary key, watermark) a published batch already holds
are not stored again. A rejected or half-finished batch is extracted again rather than skipped.
One table is extracted by one run at a time: a per-table lock in the warehouse.

The watermark is any column the source raises on every change: a timestamp (naive, or with the
source's time zone declared in the manifest), a timestamptz or an integer; its type at the
source decides how it is compared and stored (hdp.ingest.watermark).

Rows travel source → warehouse as a binary COPY through an OS pipe (two threads), never through
Python objects: memory stays flat whatever the table size. A MySQL or MariaDB source (a PyMySQL
connection as `src`) takes the same path, batches, intervals and audit; only the stream differs:
its server renders each row as a line of COPY text and its command-line client streams the lines
into COPY FROM STDIN (hdp.ingest.mysql).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from hdp.errors import safe_error
from hdp.ingest import mysql
from hdp.ingest.watermark import (
    StoredWatermark,
    Watermark,
    WatermarkError,
    WatermarkValue,
    watermark_of,
)
from hdp.manifest import SourceManifest, TableSpec
from hdp.quality.dedup import drop_published_duplicates

log = logging.getLogger(__name__)

METADATA_COLUMNS = (
    ("_batch_id", "bigint"),
    ("_extracted_at", "timestamp with time zone"),
    ("_source", "text"),
)


LOCK_TIMEOUT_ENV = "HDP_EXTRACT_LOCK_TIMEOUT_S"  # how long an extract waits for its table
DEFAULT_LOCK_TIMEOUT_S = 600.0
LOOKBACK_ENV = "HDP_EXTRACT_LOOKBACK_MINUTES"  # overrides every manifest's lookback_minutes


class ExtractError(RuntimeError):
    """An extract failed; running it again may succeed (a lost connection, a busy table)."""


class ExtractRefused(ExtractError):
    """An extract that would fail the same way on every attempt (schema drift, a missing
    table): retrying only delays the alert, so the DAG fails the task at once."""


# psycopg2 errors about the statement or the data, not the connection: the same rows and the
# same schema raise them again (a type mismatch, an undefined column, a permission denied)
_DETERMINISTIC = (
    psycopg2.DataError,
    psycopg2.ProgrammingError,
    psycopg2.IntegrityError,
    psycopg2.NotSupportedError,
)


def is_deterministic(exc: BaseException) -> bool:
    """Whether an extract's failure would repeat unchanged on a retry."""
    if isinstance(exc, ExtractRefused):
        return True
    cause = exc.__cause__ if isinstance(exc, ExtractError) else exc
    if type(cause).__module__.startswith("pymysql"):  # a MySQL source's driver
        from pymysql import err

        return isinstance(
            cause, (err.DataError, err.ProgrammingError, err.IntegrityError, err.NotSupportedError)
        )
    return isinstance(cause, _DETERMINISTIC)


@dataclass(frozen=True)
class LoadResult:
    batch_id: int
    source: str
    table: str
    rows_read: int
    rows_written: int
    # in the source's terms: a datetime (aware for timestamptz) or an int (integer watermark)
    low_watermark: WatermarkValue | None
    high_watermark: WatermarkValue | None
    duration_s: float
    rows_skipped: int = 0  # re-read in the look-back window, already published: not stored
    already_published: bool = False  # a rerun of a published run: nothing was extracted
    # MySQL sources: column -> rows whose zero date (0000-00-00) landed as NULL (mysql.ZERO_DATE)
    zero_dates: dict[str, int] | None = None


def is_mysql(conn) -> bool:
    """Whether a source connection is a MySQL/MariaDB one (PyMySQL), not psycopg2's."""
    return type(conn).__module__.startswith("pymysql")


def connect_source(login, **kwargs: object):
    """A connection to a database source by its login's dialect: psycopg2, or PyMySQL."""
    if login.dialect == "mysql":
        from hdp.warehouse.mariadb import connect_mysql

        return connect_mysql(
            host=login.host,
            port=login.port,
            user=login.user,
            password=login.password,
            database=login.dbname,
            **kwargs,
        )
    from hdp.warehouse.database import connect

    return connect(login, **kwargs)


def _mysql_columns(conn, schema: str, table: str) -> list[mysql.MySQLColumn]:
    with conn.cursor() as cur:
        found = mysql.read_columns(cur, schema, table)
    if not found:
        raise ExtractRefused(f"source table {schema}.{table} not found or not readable")
    return found


def source_columns(conn, schema: str, table: str) -> list[tuple[str, str]]:
    """Column names and full SQL types of a source table, in table order (a MySQL source's
    columns in the PostgreSQL types they land as: hdp.ingest.mysql.pg_type)."""
    if is_mysql(conn):
        try:
            return [(c.name, c.pg_type) for c in _mysql_columns(conn, schema, table)]
        except mysql.UnsupportedType as exc:
            raise ExtractRefused(f"source table {schema}.{table}: {exc}") from None
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
        raise ExtractRefused(f"source table {schema}.{table} not found or not readable")
    return [(name, typ) for name, typ in cols]


def ensure_raw_table(
    wh, raw_schema: str, table: str, columns: list[tuple[str, str]], source_name: str = ""
) -> None:
    """Create raw_<source>.<table> like the source plus load metadata; refuse silent drift.
    `source_name` (schema.table at the source) names the source table in the refusal."""
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
        elif sorted(existing) == sorted(wanted) and existing != wanted:
            raise ExtractRefused(
                _order_changed(source_name or table, f"{raw_schema}.{table}", columns, existing)
            )
        elif existing != wanted:
            missing = [c for c in wanted if c not in existing]
            extra = [c for c in existing if c not in wanted]
            raise ExtractRefused(
                f"schema drift in {raw_schema}.{table}: source now has {missing or 'nothing new'}, "
                f"raw has {extra or 'nothing extra'}. Review the change, then migrate the raw "
                "table (alter table ... add column) before the next load."
            )


def _order_changed(
    source_name: str, raw_name: str, columns: list[tuple[str, str]], existing
) -> str:
    """The refusal when the source holds the same columns in another order: a binary COPY
    matches columns by position, so a load would put values into the wrong columns."""
    source_order = ", ".join(n for n, _ in columns)
    raw_order = ", ".join(n for n, _ in existing if n not in dict(METADATA_COLUMNS))
    return (
        f"column order changed in {source_name}: the source's columns are now "
        f"({source_order}), {raw_name} has ({raw_order}). Nothing is loaded: a binary COPY "
        "matches columns by position. Restore the source's order, or recreate the raw table "
        "in the new order (a migration), before the next load."
    )


def _exists(cur, schema: str, table: str) -> bool:
    cur.execute("select to_regclass(%s)", (f'"{schema}"."{table}"',))
    return cur.fetchone()[0] is not None


def _lock_key(manifest: SourceManifest, spec: TableSpec) -> str:
    return f"{manifest.source}.{spec.name}"


@contextlib.contextmanager
def table_lock(wh, manifest: SourceManifest, spec: TableSpec) -> Iterator[None]:
    """Hold the table's lock in the warehouse (a session advisory lock) for the whole extract:
    two extracts of one table (two runs, or `airflow tasks test` beside the scheduler) never
    overlap, whatever Airflow's max_active_runs. The second waits, at most
    HDP_EXTRACT_LOCK_TIMEOUT_S seconds, then fails naming the table (Airflow retries it). The
    lock dies with the session, so a killed worker never leaves the table locked."""
    key = _lock_key(manifest, spec)
    timeout = float(os.environ.get(LOCK_TIMEOUT_ENV) or DEFAULT_LOCK_TIMEOUT_S)
    deadline = time.monotonic() + timeout
    waiting = False
    while not _try_lock(
        wh, "select pg_try_advisory_lock(hashtext('hdp.extract'), hashtext(%s))", key
    ):
        if time.monotonic() >= deadline:
            raise ExtractError(
                f"{key}: another extract of this table is running (it holds the table's lock in "
                f"the warehouse); waited {timeout:g} s. Two extracts of one table never overlap: "
                "this one fails and is retried later."
            )
        if not waiting:
            log.info("waiting for another extract of %s to finish (at most %g s)", key, timeout)
            waiting = True
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(psycopg2.Error):  # a broken session has released it already
            wh.rollback()
            _try_lock(wh, "select pg_advisory_unlock(hashtext('hdp.extract'), hashtext(%s))", key)


def _try_lock(wh, query: str, key: str) -> bool:
    with wh.cursor() as cur:
        cur.execute(query, (key,))
        done = bool(cur.fetchone()[0])
    wh.commit()  # a session lock outlives the transaction
    return done


# a batch's watermarks as audit.load_batch holds them (StoredWatermark: kind, at, id, at_tz)
_STORED = """
    watermark_kind, low_watermark, low_watermark_id, low_watermark::timestamptz,
    high_watermark, high_watermark_id, high_watermark::timestamptz
"""


def _stored(row) -> tuple[StoredWatermark, StoredWatermark]:
    kind, low, low_id, low_tz, high, high_id, high_tz = row
    return StoredWatermark(kind, low, low_id, low_tz), StoredWatermark(kind, high, high_id, high_tz)


def _refused(exc: WatermarkError, manifest: SourceManifest, spec: TableSpec) -> ExtractRefused:
    return ExtractRefused(f"{_lock_key(manifest, spec)}: {exc}")


def _published_rerun(wh, manifest: SourceManifest, spec: TableSpec, run_id: str, wm: Watermark):
    """The batch of this run if it is already published (then immutable), else None."""
    with wh.cursor() as cur:
        cur.execute(
            "select batch_id, rows_read, rows_written, coalesce(rows_skipped, 0), "
            + _STORED
            + "from audit.load_batch "
            "where source = %s and table_name = %s and run_id = %s and status = 'published'",
            (manifest.source, spec.name, run_id),
        )
        row = cur.fetchone()
    wh.rollback()
    if row is None:
        return None
    batch_id, rows_read, rows_written, skipped = row[:4]
    try:
        low, high = (wm.from_audit(s) for s in _stored(row[4:]))
    except WatermarkError:  # stored under another kind: nothing is extracted, only reported
        low = high = None
    log.info(
        "%s batch %s of run %s is already published: a published batch is immutable, so "
        "nothing is extracted again. Rows changed since arrive with the next run.",
        _lock_key(manifest, spec),
        batch_id,
        run_id,
    )
    return LoadResult(
        batch_id,
        manifest.source,
        spec.name,
        int(rows_read or 0),
        int(rows_written or 0),
        low,
        high,
        0.0,
        rows_skipped=int(skipped),
        already_published=True,
    )


def lookback(manifest: SourceManifest) -> timedelta:
    """How far behind the last published watermark each run reads again (env overrides)."""
    # unset or empty (compose passes an empty value through): the manifest decides
    return timedelta(minutes=float(os.environ.get(LOOKBACK_ENV) or manifest.lookback_minutes))


def _open_batch(
    wh, manifest: SourceManifest, spec: TableSpec, run_id: str
) -> tuple[int, bool] | None:
    """Register (or find again) the batch of this run; returns (batch_id, is_retry), or None
    when the run's batch was published meanwhile (it is never reopened)."""
    with wh.cursor() as cur:
        cur.execute(
            """
            insert into audit.load_batch as b (source, table_name, run_id, status)
            values (%s, %s, %s, 'loading')
            on conflict (source, table_name, run_id)
            do update set status = 'loading', started_at = now(), error = null
            where b.status <> 'published'
            returning batch_id, (xmax <> 0) as is_retry
            """,
            (manifest.source, spec.name, run_id),
        )
        row = cur.fetchone()
    wh.commit()
    return None if row is None else (row[0], row[1])


def _interval(
    wh, manifest: SourceManifest, spec: TableSpec, batch_id: int, is_retry: bool, src, wm
) -> tuple[WatermarkValue | None, WatermarkValue | None]:
    """(low, high] watermark interval of the batch, in the source's terms: stored on first
    extraction, then reused."""
    with wh.cursor() as cur:
        cur.execute("select " + _STORED + "from audit.load_batch where batch_id = %s", (batch_id,))
        low, high = (wm.from_audit(s) for s in _stored(cur.fetchone()))
        if is_retry and high is not None:
            return low, high
        # one maximum per kind stored: each is read in this watermark's terms (batches of
        # before this column's kind was recorded, or before its time zone was declared)
        cur.execute(
            """
            select watermark_kind, max(high_watermark), max(high_watermark_id),
                max(high_watermark)::timestamptz
            from audit.load_batch
            where source = %s and table_name = %s and status = 'published'
            group by watermark_kind
            """,
            (manifest.source, spec.name),
        )
        published = [wm.from_audit(StoredWatermark(*row)) for row in cur.fetchall()]
    published = [v for v in published if v is not None]
    low = max(published) if published else None
    if low is not None:
        # re-read a window behind the watermark: a row whose source transaction committed
        # after a later-stamped row was extracted is stamped below the published watermark
        low = wm.back(low, lookback(manifest), manifest.lookback_ids)
    high = _source_max(src, manifest, spec, wm)
    if high is not None:
        high = wm.check(high)
    if high is None or (low is not None and wm.later(low, high)):
        high = low
    # Fix the interval now: a retry after a crash mid-copy extracts exactly the same rows.
    with wh.cursor() as cur:
        cur.execute(
            "update audit.load_batch set " + _SET_INTERVAL + " where batch_id = %s",
            (*_interval_params(wm, low, high), batch_id),
        )
    wh.commit()
    return low, high


def _source_max(src, manifest: SourceManifest, spec: TableSpec, wm: Watermark):
    """The watermark's highest value at the source, in the source's terms."""
    if is_mysql(src):
        with src.cursor() as cur:
            cur.execute(
                f"select max({mysql.quote_name(spec.watermark)}) from "
                f"{mysql.quote_name(manifest.schema)}.{mysql.quote_name(spec.name)}"
            )
            high = cur.fetchone()[0]
        # a MySQL timestamp comes back naive, in the session's zone: UTC (mysql.SESSION_SQL)
        if isinstance(high, datetime) and wm.kind.value == "timestamptz":
            high = high.replace(tzinfo=UTC)
        return high
    with src.cursor() as cur:
        cur.execute(
            sql.SQL("select max({}) from {}.{}").format(
                sql.Identifier(spec.watermark),
                sql.Identifier(manifest.schema),
                sql.Identifier(spec.name),
            )
        )
        return cur.fetchone()[0]


def _mysql_literal(value: WatermarkValue) -> str:
    """A watermark bound as a MySQL literal: an integer, or a time in the session's UTC."""
    if isinstance(value, int):
        return str(int(value))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return mysql.quote_literal(value.strftime("%Y-%m-%d %H:%M:%S.%f"))


def _mysql_where(spec: TableSpec, low, high) -> str:
    column = mysql.quote_name(spec.watermark)
    if high is None:
        return "false"
    if low is None:
        return f"{column} <= {_mysql_literal(high)}"
    return f"{column} > {_mysql_literal(low)} and {column} <= {_mysql_literal(high)}"


def _mysql_scan(src, select_list: str, source: str, where: str) -> list:
    """One aggregate scan of the interval on the source (the probe of zero dates, charsets)."""
    with src.cursor() as cur:
        cur.execute(f"select {select_list} from {source} where {where}")
        found = list(cur.fetchone())
    src.rollback()
    return found


def _mysql_copy(
    src, wh, manifest: SourceManifest, spec: TableSpec, low, high, constants: list[str], raw
) -> tuple[int, int, dict[str, int]]:
    """Stream the interval's rows from a MySQL source into raw (COPY text), counting its zero
    dates; returns (rows read, rows written, zero dates per column). A latin1 column's probe
    decides how the stream reads it, so it runs first; a probe of zero dates alone runs beside
    the stream (another thread, the server's other scan), so it costs no wall time."""
    from concurrent.futures import ThreadPoolExecutor

    columns = _mysql_columns(src, manifest.schema, spec.name)
    source = f"{mysql.quote_name(manifest.schema)}.{mysql.quote_name(spec.name)}"
    where = _mysql_where(spec, low, high)
    dates = [c.name for c in columns if c.is_date]
    counts, probe = mysql.zero_date_counts(columns), mysql.charset_probe(columns)
    found: list | None = None
    if probe:  # one scan of the interval for both
        found = _mysql_scan(src, ", ".join(p for p in (counts, probe) if p), source, where)
        try:
            columns, decoded = mysql.decide_charsets(
                columns, found[len(dates) :], dict(spec.charsets), f"{manifest.source}.{spec.name}"
            )
        except mysql.CharsetRefused as exc:
            raise ExtractError(str(exc)) from None
        for column, values in decoded.items():  # a count, never a value
            log.info(
                "%s.%s: latin1 column %s holds GBK bytes: %s values decoded as GBK",
                manifest.source,
                spec.name,
                column,
                values,
            )
    src.rollback()
    query = f"select {mysql.copy_line(columns, constants)} from {source} where {where}"
    copy_in = sql.SQL("copy {}.{} from stdin").format(*raw).as_string(wh)
    with ThreadPoolExecutor(max_workers=1) as beside:
        counting = (
            beside.submit(_mysql_scan, src, counts, source, where)
            if (counts and found is None)
            else None
        )
        try:
            with mysql.ClientStream(src, query) as rows, wh.cursor() as cur:
                cur.copy_expert(copy_in, rows, size=1 << 20)
                written = cur.rowcount
        except mysql.ClientError as exc:
            raise ExtractError(f"reading from the MySQL source failed: {exc}") from None
        if counting is not None:
            found = counting.result()
    zero_dates = {n: int(k) for n, k in zip(dates, found or [], strict=False) if int(k)}
    return rows.lines, written, zero_dates


_SET_INTERVAL = (
    "watermark_kind = %s, low_watermark = %s, high_watermark = %s, "
    "low_watermark_id = %s, high_watermark_id = %s"
)


def _interval_params(wm: Watermark, low, high) -> tuple:
    """The values of _SET_INTERVAL: the interval as audit.load_batch stores it."""
    lo, hi = wm.to_audit(low), wm.to_audit(high)
    return wm.kind.value, lo.at, hi.at, lo.id, hi.id


def _where(
    spec: TableSpec, low: WatermarkValue | None, high: WatermarkValue | None
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
        # the driver's text can quote a row value: class, SQLSTATE and first line, unquoted
        raise ExtractError(f"reading from the source failed: {safe_error(failure[0])}") from None
    return (read[0] if read else -1), written


def extract_table(src, wh, manifest: SourceManifest, table: str, run_id: str) -> LoadResult:
    """Load the rows of `table` changed since the last published batch into raw_<source>.<table>.

    `src` and `wh` are psycopg2 connections to the source and the warehouse. Idempotent per
    run_id: a retry replaces the batch's rows inside one warehouse transaction; the run of a
    published batch extracts nothing again. Holds the table's lock throughout (table_lock).
    """
    spec = manifest.table(table)
    columns = source_columns(src, manifest.schema, spec.name)
    src.rollback()
    wm = table_watermark(manifest, spec, columns)
    with table_lock(wh, manifest, spec):
        done = _published_rerun(wh, manifest, spec, run_id, wm)
        if done is not None:
            return done
        ensure_raw_table(
            wh, manifest.raw_schema, spec.name, columns, f"{manifest.schema}.{spec.name}"
        )
        wh.commit()
        return _load(src, wh, manifest, spec, columns, run_id, wm)


def table_watermark(
    manifest: SourceManifest, spec: TableSpec, columns: list[tuple[str, str]]
) -> Watermark:
    """The table's watermark, of the kind its source column's type makes it; refused (no
    retry) when the manifest names a column the table lacks or one of another type."""
    where = f"{manifest.schema}.{spec.name}"
    types = dict(columns)
    if spec.watermark not in types:
        raise ExtractRefused(
            f"{manifest.source}.{spec.name}: the manifest's watermark {spec.watermark} is not a "
            f"column of {where}: name the column the source raises on every change "
            f"(dags/sources/{manifest.source}.yml)"
        )
    try:
        return watermark_of(spec.watermark, types[spec.watermark], spec.time_zone, where)
    except WatermarkError as exc:
        raise _refused(exc, manifest, spec) from None


def _load(
    src, wh, manifest: SourceManifest, spec: TableSpec, columns, run_id: str, wm: Watermark
) -> LoadResult:
    """The batch's COPY and its audit record, under the table's lock."""
    started = time.monotonic()
    opened = _open_batch(wh, manifest, spec, run_id)
    if opened is None:  # published between the check and now (publish takes no table lock)
        return _published_rerun(wh, manifest, spec, run_id, wm)
    batch_id, is_retry = opened
    extracted_at = datetime.now(UTC)
    try:
        # One snapshot for the interval's max(watermark) and the copy, so no row committed in
        # between can fall into this batch's interval unseen.
        if is_mysql(src):
            # the interval's max is read here and the rows by the client in a later snapshot:
            # rows committed in between with a watermark up to `high` arrive too, none is lost
            mysql.start_session(src)
        else:
            src.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)
            src.set_session(readonly=True)
        try:
            low, high = _interval(wh, manifest, spec, batch_id, is_retry, src, wm)
        except WatermarkError as exc:
            raise _refused(exc, manifest, spec) from None
        raw = sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
        with wh.cursor() as cur:
            cur.execute(
                sql.SQL("delete from {}.{} where _batch_id = %s").format(*raw),
                (batch_id,),
            )
        zero_dates: dict[str, int] | None = None
        if is_mysql(src):
            constants = [str(batch_id), extracted_at.isoformat(), manifest.source]
            rows_read, copied, zero_dates = _mysql_copy(
                src, wh, manifest, spec, low, high, constants, raw
            )
            for column, count in zero_dates.items():  # a count, never a value
                log.warning(
                    "%s.%s batch %s: %s rows hold a zero date in %s: loaded as NULL (%s)",
                    manifest.source,
                    spec.name,
                    batch_id,
                    count,
                    column,
                    mysql.ZERO_DATE,
                )
        else:
            rows_read, copied = _postgres_copy(
                src, wh, manifest, spec, columns, low, high, raw, batch_id, extracted_at
            )
        src.rollback()
        if copied != rows_read:
            raise ExtractError(
                f"{manifest.source}.{spec.name}: read {rows_read} rows but wrote {copied}"
            )
        with wh.cursor() as cur:
            skipped = drop_published_duplicates(cur, manifest, spec, batch_id)
        rows_written = copied - skipped
        duration = time.monotonic() - started
        with wh.cursor() as cur:
            cur.execute(
                "update audit.load_batch set status = 'loaded', "
                + _SET_INTERVAL
                + ", rows_read = %s, rows_written = %s, rows_skipped = %s, finished_at = now(), "
                "duration_s = %s where batch_id = %s",
                (
                    *_interval_params(wm, low, high),
                    rows_read,
                    rows_written,
                    skipped,
                    duration,
                    batch_id,
                ),
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
                # never a value: PostgreSQL quotes values in messages and CONTEXT lines
                (
                    safe_error(exc),
                    batch_id,
                ),
            )
        wh.commit()
        raise
    log.info(
        "extracted %s.%s batch %s: %s rows in %.2fs (%s re-read in the look-back window and "
        "already published: not stored again)",
        manifest.source,
        spec.name,
        batch_id,
        rows_written,
        duration,
        skipped,
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
        rows_skipped=skipped,
        zero_dates=zero_dates,
    )


def _postgres_copy(
    src, wh, manifest: SourceManifest, spec: TableSpec, columns, low, high, raw, batch_id, at
) -> tuple[int, int]:
    """The interval's rows from a PostgreSQL source into raw, as binary COPY."""
    where, params = _where(spec, low, high)
    target = sql.Identifier(manifest.schema), sql.Identifier(spec.name)
    with src.cursor() as cur:
        select = (
            sql.SQL("select {}, %s::bigint, %s::timestamptz, %s::text from {}.{} where ").format(
                sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns), *target
            )
            + where
        )
        copy_out = cur.mogrify(
            sql.SQL("copy ({}) to stdout (format binary)").format(select),
            [batch_id, at, manifest.source, *params],
        ).decode()
    copy_in = sql.SQL("copy {}.{} from stdin (format binary)").format(*raw)
    return _copy_stream(src, wh, copy_out, copy_in.as_string(wh))
