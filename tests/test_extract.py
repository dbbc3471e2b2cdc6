"""Incremental, idempotent COPY extraction from the simulated HIS into raw_his (real PostgreSQL)."""

from __future__ import annotations

import pytest

from hdp.ingest.extract import ExtractError, extract_table
from hdp.manifest import load_manifest
from hdp.warehouse.database import connect
from hdp_sim import his

MANIFEST = load_manifest("his")
TABLES = [t.name for t in MANIFEST.tables]


@pytest.fixture
def loaded(platform):
    """Platform with a small generated HIS source; yields (logins, src, wh) connections."""
    owner = connect(platform.his_owner)
    his.generate(owner, his.SimConfig(seed=7, scale=0.02, history_days=21))
    owner.close()
    src, wh = connect(platform.his_reader), connect(platform.loader)
    yield platform, src, wh
    src.close()
    wh.close()


def _extract_all(src, wh, run_id: str) -> dict[str, int]:
    return {t: extract_table(src, wh, MANIFEST, t, run_id).batch_id for t in TABLES}


def _pass(wh, batch_ids) -> None:
    with wh.cursor() as cur:
        cur.execute(
            "update audit.load_batch set status = 'published' where batch_id = any(%s)",
            (list(batch_ids),),
        )
    wh.commit()


def _scalar(conn, query: str, params=()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def test_full_load_copies_every_row_with_load_metadata(loaded):
    _, src, wh = loaded
    batches = _extract_all(src, wh, "run-1")
    for table in TABLES:
        source_rows = _scalar(src, f"select count(*) from his.{table}")
        assert source_rows > 0, table
        assert _scalar(wh, f"select count(*) from raw_his.{table}") == source_rows
        assert (
            _scalar(
                wh,
                f"select count(*) from raw_his.{table} where _batch_id = %s "
                "and _source = 'his' and _extracted_at is not null",
                (batches[table],),
            )
            == source_rows
        )
        rows_read, rows_written, status = (
            _scalar(wh, f"select {c} from audit.load_batch where batch_id = %s", (batches[table],))
            for c in ("rows_read", "rows_written", "status")
        )
        assert rows_read == rows_written == source_rows
        assert status == "loaded"


def test_rerunning_an_interval_neither_duplicates_nor_loses_rows(loaded):
    _, src, wh = loaded
    first = _extract_all(src, wh, "run-1")
    before = {t: _scalar(wh, f"select count(*) from raw_his.{t}") for t in TABLES}
    again = _extract_all(src, wh, "run-1")
    assert again == first
    for table, pk in ((t.name, t.primary_key[0]) for t in MANIFEST.tables):
        assert _scalar(wh, f"select count(*) from raw_his.{table}") == before[table]
        assert _scalar(wh, f"select count(*) - count(distinct {pk}) from raw_his.{table}") == 0, (
            table
        )


def test_retry_after_the_source_moved_on_loses_nothing(loaded):
    """Rows corrected between an attempt and its retry leave the retried interval (their
    updated_at moved on) and arrive with the next run: every current source row is loaded once."""
    platform, src, wh = loaded
    _extract_all(src, wh, "run-1")
    owner = connect(platform.his_owner)
    his.advance_day(owner)
    owner.close()
    _pass(wh, _extract_all(src, wh, "run-1").values())
    _extract_all(src, wh, "run-2")
    for table, pk in ((t.name, t.primary_key[0]) for t in MANIFEST.tables):
        with src.cursor() as cur:
            cur.execute(f"select {pk}::text, updated_at from his.{table}")
            current = set(cur.fetchall())
        src.rollback()
        with wh.cursor() as cur:
            cur.execute(f"select {pk}::text, updated_at from raw_his.{table}")
            raw = cur.fetchall()
        wh.rollback()
        assert current <= set(raw), f"{table}: {len(current - set(raw))} rows lost"
        assert len(raw) == len(set(raw)), f"{table}: a version was loaded twice"


def test_next_day_brings_new_and_corrected_rows(loaded):
    platform, src, wh = loaded
    _pass(wh, _extract_all(src, wh, "run-1").values())
    owner = connect(platform.his_owner)
    his.advance_day(owner)
    day = _scalar(owner, "select current_day from sim.clock")
    changes = {}
    with owner.cursor() as cur:
        cur.execute(
            "select table_name, kind, array_agg(record_id) from sim.change_log "
            "where sim_day = %s group by 1, 2",
            (day,),
        )
        for table, kind, ids in cur.fetchall():
            changes[(table, kind)] = ids
    owner.close()
    assert any(kind == "correction" for _, kind in changes), "simulator made no correction"

    second = _extract_all(src, wh, "run-2")
    for spec in MANIFEST.tables:
        table, pk = spec.name, spec.primary_key[0]
        changed_in_source = _scalar(
            src,
            f"select count(*) from his.{table} where updated_at >= %s::date",
            (day,),
        )
        in_batch = _scalar(
            wh, f"select count(*) from raw_his.{table} where _batch_id = %s", (second[table],)
        )
        assert in_batch == changed_in_source, table
        corrected = changes.get((table, "correction"), [])
        if corrected:
            # the corrected record arrives again, and raw now holds its latest version
            assert _scalar(
                wh,
                f"select count(distinct {pk}) from raw_his.{table} "
                f"where _batch_id = %s and {pk}::text = any(%s)",
                (second[table], corrected),
            ) == len(set(corrected))
            latest_matches = _scalar(
                wh,
                f"select bool_and(r.updated_at >= %s::date) from raw_his.{table} r "
                f"where r._batch_id = %s and r.{pk}::text = any(%s)",
                (day, second[table], corrected),
            )
            assert latest_matches


def test_crash_mid_load_leaves_raw_as_it_was_and_rerun_finishes(loaded):
    platform, src, wh = loaded
    _extract_all(src, wh, "run-1")  # creates the raw tables
    owner = connect(platform.warehouse)  # the test's scaffolding needs more than the loader has
    with owner.cursor() as cur:
        cur.execute("truncate raw_his.outpatient_visits")
        cur.execute("delete from audit.load_batch where table_name = 'outpatient_visits'")
        # the warehouse dies after 50 rows of the COPY
        cur.execute(
            """
            create sequence crash_after;
            grant usage on sequence crash_after to hdp_loader;
            create function crash() returns trigger language plpgsql as $$
            begin
                if nextval('crash_after') > 50 then raise exception 'simulated crash'; end if;
                return new;
            end $$;
            create trigger crash before insert on raw_his.outpatient_visits
                for each row execute function crash();
            """
        )
    owner.commit()
    with pytest.raises(Exception, match="simulated crash"):
        extract_table(src, wh, MANIFEST, "outpatient_visits", "run-2")
    assert _scalar(wh, "select count(*) from raw_his.outpatient_visits") == 0
    assert _scalar(wh, "select status from audit.load_batch where run_id = 'run-2'") == "failed"
    with owner.cursor() as cur:
        cur.execute("drop trigger crash on raw_his.outpatient_visits")
    owner.commit()
    owner.close()
    result = extract_table(src, wh, MANIFEST, "outpatient_visits", "run-2")
    source_rows = _scalar(src, "select count(*) from his.outpatient_visits")
    assert result.rows_written == source_rows
    assert _scalar(wh, "select count(*) from raw_his.outpatient_visits") == source_rows


def test_rejected_batch_is_extracted_again(loaded):
    _, src, wh = loaded
    first = extract_table(src, wh, MANIFEST, "departments", "run-1")
    with wh.cursor() as cur:
        cur.execute(
            "update audit.load_batch set status = 'rejected' where batch_id = %s",
            (first.batch_id,),
        )
    wh.commit()
    second = extract_table(src, wh, MANIFEST, "departments", "run-2")
    assert second.low_watermark is None
    assert second.rows_written == first.rows_written > 0


def test_schema_drift_is_refused_with_a_clear_error(loaded):
    platform, src, wh = loaded
    extract_table(src, wh, MANIFEST, "departments", "run-1")
    owner = connect(platform.his_owner)
    with owner.cursor() as cur:
        cur.execute("alter table his.departments add column floor_no integer")
    owner.commit()
    owner.close()
    with pytest.raises(ExtractError, match=r"schema drift in raw_his\.departments.*floor_no"):
        extract_table(src, wh, MANIFEST, "departments", "run-2")


def test_a_column_order_change_is_named_as_such(loaded):
    """The same columns in another order would COPY values into the wrong columns: the load
    stops, and the message says the order changed (not "nothing new, nothing extra")."""
    platform, src, wh = loaded
    extract_table(src, wh, MANIFEST, "departments", "run-1")
    owner = connect(platform.his_owner)
    with owner.cursor() as cur:
        cur.execute(
            "create table his.departments_reordered as "
            "select updated_at, dept_name, dept_code, parent_code, dept_type, is_active, "
            "created_at from his.departments"
        )
        cur.execute(
            "select count(*) from information_schema.columns where table_schema = 'his' "
            "and table_name = 'departments'"
        )
        assert cur.fetchone()[0] == 7  # the reordering above names every column
        cur.execute("drop table his.departments cascade")
        cur.execute("alter table his.departments_reordered rename to departments")
    owner.commit()
    owner.close()
    with pytest.raises(ExtractError, match=r"column order changed in his\.departments") as info:
        extract_table(src, wh, MANIFEST, "departments", "run-2")
    assert "nothing new" not in str(info.value)
    assert "updated_at, dept_name, dept_code" in str(info.value)
