"""Watermarks of every kind on a source that does not look like our simulator (issue 16): a
`timestamptz` change time and a monotonic integer change number, each extracted incrementally
over three runs, and a naive local time with the source's time zone declared. Real PostgreSQL,
real roles: the source is another vendor's schema `emr` read by the source's read-only login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from psycopg2 import sql

from hdp.ingest.extract import extract_table
from hdp.manifest import SourceManifest, TableSpec
from hdp.quality.gate import publish_run
from hdp.warehouse.database import connect
from tests.conftest import reset_platform_databases

# Another vendor's EMR: its own schema, keys and change columns, offsets other than ours
SOURCE_SQL = """
create schema emr;
grant usage on schema emr to {reader};
alter default privileges in schema emr grant select on tables to {reader};
-- change time with its offset: rows come from two sites, one at +08:00 and one at -05:00
create table emr.obs_entry (
    rec_no bigint primary key,
    obs_code varchar(12) not null,
    obs_val numeric(8, 2),
    modified_on timestamptz not null
);
-- no change time at all: every insert or update takes the next number of a sequence
create sequence emr.chg_seq;
create table emr.disp_log (
    rec_no bigint primary key,
    item_cd text not null,
    qty integer not null,
    chg_no bigint not null default nextval('emr.chg_seq')
);
create function emr.bump_chg_no() returns trigger language plpgsql as $$
begin
    new.chg_no := nextval('emr.chg_seq');
    return new;
end $$;
create trigger bump before update on emr.disp_log for each row execute function emr.bump_chg_no();
-- loaded once by the code of before this fix (the user's report), then upgraded
create table emr.vital_sign (
    rec_no bigint primary key,
    modified_on timestamptz not null
);
-- local wall-clock time without a zone (the site runs on Beijing time)
create table emr.bed_move (
    move_no integer primary key,
    ward_cd text not null,
    moved_on timestamp(0) not null
);
"""

MANIFEST = SourceManifest(
    source="emr",
    description="another vendor's EMR (test fixture)",
    conn_id="emr_source",
    schema="emr",
    schedule="@daily",
    owner="data-platform",
    contains_personal_data=False,
    freshness_hours=26,
    tables=(
        TableSpec("obs_entry", ("rec_no",), "modified_on"),
        TableSpec("disp_log", ("rec_no",), "chg_no"),
        TableSpec("bed_move", ("move_no",), "moved_on"),
        TableSpec("vital_sign", ("rec_no",), "modified_on"),
    ),
    lookback_minutes=60,
)

CST = timezone(timedelta(hours=8))
EST = timezone(timedelta(hours=-5))
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def emr(pg_admin_dsn):
    """Fresh platform databases with the `emr` schema in the source database and raw_emr in the
    warehouse (set-up makes raw_<source> for manifests under dags/sources; this one is a
    fixture's). Yields (logins, owner, src, wh) connections."""
    from hdp_sim.sources import logins

    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        cur.execute(SOURCE_SQL.format(reader=lg.his_reader.user))
    owner.commit()
    wh_owner = connect(lg.warehouse)
    with wh_owner.cursor() as cur:
        cur.execute("create schema raw_emr")
        cur.execute("grant usage, create on schema raw_emr to hdp_loader")
    wh_owner.commit()
    src, wh = connect(lg.his_reader), connect(lg.loader)
    yield lg, owner, src, wh, wh_owner
    for conn in (src, wh, owner, wh_owner):
        conn.close()


def _run(emr, table: str, run_id: str, publish: bool = True, manifest=MANIFEST):
    _, _, src, wh, wh_owner = emr
    result = extract_table(src, wh, manifest, table, run_id)
    if publish:
        with wh_owner.cursor() as cur:  # stands in for the gate (tested elsewhere)
            cur.execute(
                "update audit.load_batch set status = 'passed' where source = 'emr' "
                "and run_id = %s and status = 'loaded'",
                (run_id,),
            )
        wh_owner.commit()
        publish_run(wh, source="emr", run_id=run_id, tables=[table], manifest=manifest)
    return result


def _source(emr, statement: str, rows=()) -> None:
    owner = emr[1]
    with owner.cursor() as cur:
        for row in rows or [()]:
            cur.execute(statement, row)
    owner.commit()


def _rows(conn, query, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _batch(emr, table: str, batch_id: int, columns: str) -> set[tuple]:
    wh = emr[3]
    rows = _rows(
        wh,
        sql.SQL("select {} from raw_emr.{} where _batch_id = %s").format(
            sql.SQL(columns), sql.Identifier(table)
        ),
        (batch_id,),
    )
    assert len(rows) == len(set(rows)), f"{table}: a row stored twice in batch {batch_id}"
    return set(rows)


def _versions(emr, table: str, columns: str) -> tuple[list[tuple], list[tuple]]:
    """(every current source row, every row raw holds) as (key, watermark) pairs."""
    return tuple(
        _rows(
            conn,
            sql.SQL("select {} from {}.{}").format(
                sql.SQL(columns), sql.Identifier(schema), sql.Identifier(table)
            ),
        )
        for conn, schema in ((emr[2], "emr"), (emr[3], "raw_emr"))
    )


def _assert_nothing_lost_or_doubled(emr, table: str, columns: str) -> None:
    current, raw = _versions(emr, table, columns)
    assert set(current) <= set(raw), f"{table}: {len(set(current) - set(raw))} versions lost"
    assert len(raw) == len(set(raw)), f"{table}: a version was stored twice"


def test_timestamptz_watermark_extracts_incrementally_over_three_runs(emr):
    """The user's bug: the second run raised `can't compare offset-naive and offset-aware
    datetimes`. Each run now loads exactly the rows new or changed since the last one."""
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
    insert = "insert into emr.obs_entry values (%s, %s, %s, %s)"
    update = "update emr.obs_entry set obs_val = obs_val + 1, modified_on = %s where rec_no = %s"
    first = [(n, f"OBS{n}", n * 1.5, t0 + timedelta(minutes=n)) for n in range(1, 6)]
    # one site writes in -05:00: 01:00 at -05:00 is 14:00 at +08:00, after every row above
    first.append((6, "OBS6", 9.0, datetime(2026, 3, 2, 1, 0, tzinfo=EST)))
    _source(emr, insert, first)
    run1 = _run(emr, "obs_entry", "run-1")
    assert run1.rows_written == 6
    assert run1.high_watermark == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

    # day 2: three new rows, two corrections
    t1 = datetime(2026, 3, 3, 10, 0, tzinfo=CST)
    _source(emr, insert, [(n, f"OBS{n}", n * 1.0, t1 + timedelta(minutes=n)) for n in (7, 8, 9)])
    _source(emr, update, [(t1 + timedelta(minutes=30), 2), (t1 + timedelta(minutes=31), 6)])
    run2 = _run(emr, "obs_entry", "run-2")
    assert {k for k, _ in _batch(emr, "obs_entry", run2.batch_id, "rec_no, modified_on")} == {
        2,
        6,
        7,
        8,
        9,
    }
    assert run2.rows_written == 5
    assert run2.low_watermark == run1.high_watermark - timedelta(minutes=60)

    # day 3: a row of the -05:00 site late in its evening (the next morning at +08:00), a
    # correction, and a row stamped inside the look-back window that committed late
    late = run2.high_watermark - timedelta(minutes=20)
    _source(
        emr,
        insert,
        [(10, "OBS10", 1.0, datetime(2026, 3, 3, 22, 0, tzinfo=EST)), (11, "OBS11", 2.0, late)],
    )
    _source(emr, update, [(datetime(2026, 3, 4, 3, 0, tzinfo=UTC), 7)])
    run3 = _run(emr, "obs_entry", "run-3")
    assert {k for k, _ in _batch(emr, "obs_entry", run3.batch_id, "rec_no, modified_on")} == {
        7,
        10,
        11,
    }
    assert run3.rows_written == 3
    assert run3.rows_skipped > 0  # rows 7-9's old versions re-read in the window, not stored
    _assert_nothing_lost_or_doubled(emr, "obs_entry", "rec_no, modified_on")
    stored = _rows(
        emr[3],
        "select watermark_kind, high_watermark from audit.load_batch where batch_id = %s",
        (run3.batch_id,),
    )
    # the audit keeps the instant in UTC, whatever the sessions' time zones
    assert stored == [("timestamptz", datetime(2026, 3, 4, 3, 0))]


def test_integer_watermark_extracts_incrementally_over_three_runs(emr):
    """A change number (bigint from a sequence, bumped by a trigger on every update)."""
    insert = "insert into emr.disp_log (rec_no, item_cd, qty) values (%s, %s, %s)"
    update = "update emr.disp_log set qty = qty + 1 where rec_no = %s"
    _source(emr, insert, [(n, f"D{n:04d}", n) for n in range(100, 104)])
    run1 = _run(emr, "disp_log", "run-1")
    assert run1.rows_written == 4
    assert run1.low_watermark is None and run1.high_watermark == 4

    _source(emr, insert, [(n, f"D{n:04d}", n) for n in (104, 105, 106)])
    _source(emr, update, [(101,)])
    run2 = _run(emr, "disp_log", "run-2")
    assert (run2.low_watermark, run2.high_watermark) == (4, 8)
    assert _batch(emr, "disp_log", run2.batch_id, "rec_no, chg_no") == {
        (104, 5),
        (105, 6),
        (106, 7),
        (101, 8),
    }

    _source(emr, insert, [(107, "D0107", 1), (108, "D0108", 2)])
    _source(emr, update, [(100,), (104,)])
    run3 = _run(emr, "disp_log", "run-3")
    assert _batch(emr, "disp_log", run3.batch_id, "rec_no, chg_no") == {
        (107, 9),
        (108, 10),
        (100, 11),
        (104, 12),
    }
    assert run3.rows_written == 4 and run3.rows_skipped == 0
    _assert_nothing_lost_or_doubled(emr, "disp_log", "rec_no, chg_no")
    stored = _rows(
        emr[3],
        "select watermark_kind, low_watermark, high_watermark, low_watermark_id, "
        "high_watermark_id from audit.load_batch where batch_id = %s",
        (run3.batch_id,),
    )
    assert stored == [("integer", None, None, 8, 12)]


def test_naive_local_time_with_the_source_time_zone_declared(emr):
    """moved_on is Beijing wall-clock time: the audit records its instant in UTC, and the next
    interval starts from it in the source's own terms again."""
    import dataclasses

    zoned = dataclasses.replace(MANIFEST.table("bed_move"), time_zone="Asia/Shanghai")
    manifest = dataclasses.replace(MANIFEST, tables=(zoned,))
    insert = "insert into emr.bed_move values (%s, %s, %s)"
    _source(emr, insert, [(1, "W1", datetime(2026, 3, 2, 8)), (2, "W2", datetime(2026, 3, 2, 9))])
    run1 = _run(emr, "bed_move", "run-1", manifest=manifest)
    assert run1.rows_written == 2
    assert run1.high_watermark == datetime(2026, 3, 2, 9, 0)  # the source's terms
    stored = _rows(
        emr[3],
        "select watermark_kind, high_watermark from audit.load_batch where batch_id = %s",
        (run1.batch_id,),
    )
    assert stored == [("zoned_timestamp", datetime(2026, 3, 2, 1, 0))]  # 09:00 at +08:00 in UTC
    _source(emr, insert, [(3, "W3", datetime(2026, 3, 2, 12, 0))])
    run2 = _run(emr, "bed_move", "run-2", manifest=manifest)
    assert run2.low_watermark == datetime(2026, 3, 2, 8, 0)  # 09:00 less the look-back
    assert _batch(emr, "bed_move", run2.batch_id, "move_no") == {(3,)}
    assert run2.rows_skipped == 1  # move 2, re-read in the window, is not stored again


def test_rerunning_an_interval_as_a_cleared_task_loads_nothing_twice(emr):
    """An operator clears the extract task of a run: the same run_id runs again. Before publish
    it replaces its batch with the same interval (rows that arrived since wait for the next
    run); after publish it loads nothing. Timestamptz watermark."""
    _source(emr, "truncate emr.obs_entry")
    wh = emr[3]
    t = datetime(2026, 3, 10, 8, 0, tzinfo=CST)
    insert = "insert into emr.obs_entry values (%s, %s, %s, %s)"
    _source(emr, insert, [(n, f"OBS{n}", 1.0, t + timedelta(hours=n - 20)) for n in range(20, 24)])
    first = _run(emr, "obs_entry", "run-cleared", publish=False)
    _source(emr, insert, [(24, "OBS24", 1.0, t + timedelta(hours=5))])  # arrives meanwhile
    again = _run(emr, "obs_entry", "run-cleared", publish=False)
    assert again.batch_id == first.batch_id
    assert (again.low_watermark, again.high_watermark) == (
        first.low_watermark,
        first.high_watermark,
    )
    assert {k for (k,) in _batch(emr, "obs_entry", again.batch_id, "rec_no")} == {20, 21, 22, 23}
    _run(emr, "obs_entry", "run-cleared")  # the cleared task succeeds: its run publishes
    before = _rows(wh, "select count(*) from raw_emr.obs_entry")
    rerun = _run(emr, "obs_entry", "run-cleared", publish=False)
    assert rerun.already_published and rerun.batch_id == first.batch_id
    assert _rows(wh, "select count(*) from raw_emr.obs_entry") == before
    nxt = _run(emr, "obs_entry", "run-next")
    assert {k for (k,) in _batch(emr, "obs_entry", nxt.batch_id, "rec_no")} == {24}


def test_a_timestamptz_batch_loaded_before_the_fix_is_continued_from(emr):
    """The code of before wrote the aware maximum into the naive audit column, which the
    warehouse converted to the loader session's time zone. The next run reads it back through
    that zone: it starts an hour (the look-back) before that instant, not 8 hours off."""
    _, _, _, wh, wh_owner = emr
    high = datetime(2026, 3, 2, 14, 0, tzinfo=CST)  # 06:00 UTC
    for conn in (wh, wh_owner):
        with conn.cursor() as cur:
            cur.execute("set timezone = 'Asia/Shanghai'")
        conn.commit()
    try:
        with wh_owner.cursor() as cur:  # the audit row as the code of before left it
            cur.execute(
                "insert into audit.load_batch (source, table_name, run_id, status, "
                "high_watermark, rows_read, rows_written) "
                "values ('emr', 'vital_sign', 'run-before', 'published', %s, 2, 2)",
                (high,),
            )
            cur.execute("select high_watermark from audit.load_batch where run_id = 'run-before'")
            assert cur.fetchone()[0] == datetime(2026, 3, 2, 14, 0)  # wall time at +08:00
        wh_owner.commit()
        _source(
            emr,
            "insert into emr.vital_sign values (%s, %s)",
            [(1, high - 3 * HOUR), (2, high - 2 * HOUR), (3, high + HOUR)],
        )
        result = _run(emr, "vital_sign", "run-after")
    finally:
        for conn in (wh, wh_owner):
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("reset timezone")
            conn.commit()
    assert result.low_watermark == high - HOUR
    assert _batch(emr, "vital_sign", result.batch_id, "rec_no") == {(3,)}
