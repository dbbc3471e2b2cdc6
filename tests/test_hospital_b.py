"""Hospital B (source hisb) end to end against real PostgreSQL, GX and dbt: simulated, extracted
with its read-only login, gated, published, staged; rows reconcile from source to staging, every
text time format parses (and what does not is flagged, not silently null), a rerun changes
nothing, and the source's service login cannot reach the simulator's truth or write the source.
"""

from __future__ import annotations

from datetime import datetime

import psycopg2
import pytest

from hdp.quality.gate import GateResult
from hdp.runtime.dbt import run_dbt
from hdp.warehouse.database import connect
from hdp_sim import hospital_b
from hdp_sim.sources import logins
from tests.conftest import reset_platform_databases
from tests.pipeline import ingest_source

CONFIG = hospital_b.HospitalBConfig(seed=7, scale=0.02, history_days=20)
STAGING = {
    "ksdm": "stg_hisb__departments",
    "ysxx": "stg_hisb__doctors",
    "brxx": "stg_hisb__patients",
    "mzgh": "stg_hisb__outpatient_visits",
    "zyjl": "stg_hisb__inpatient_stays",
    "zdxx": "stg_hisb__diagnoses",
    "ypzd": "stg_hisb__drugs",
    "cfmx": "stg_hisb__prescription_lines",
}
# Registrations written by hand, not by the simulator: shapes another desk or an export tool
# produces. ghxh -> (ghsj as typed, what staging must read; None = must be flagged unparseable)
OUTSIDER_GHXH = 9_000_000
OUTSIDER_TIMES: dict[int, tuple[str, datetime | None]] = {
    OUTSIDER_GHXH + 1: (" 2024-01-05T09:30 ", datetime(2024, 1, 5, 9, 30)),
    OUTSIDER_GHXH + 2: ("２０２４-０１-０５ ０９:３０:１５", datetime(2024, 1, 5, 9, 30, 15)),
    OUTSIDER_GHXH + 3: ("202401050930", datetime(2024, 1, 5, 9, 30)),
    OUTSIDER_GHXH + 4: ("2024-1-5  9:30:00", datetime(2024, 1, 5, 9, 30)),
    OUTSIDER_GHXH + 5: ("2024/01/05", datetime(2024, 1, 5)),
    OUTSIDER_GHXH + 6: ("2024-13-05 09:30", None),
    OUTSIDER_GHXH + 7: ("2024-01-05 24:10", None),
    OUTSIDER_GHXH + 8: ("05/01/2024 09:30", None),
    OUTSIDER_GHXH + 9: ("2024-01-05 星期五", None),
}


def _rows(conn, query: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _insert_outsider_rows(conn) -> None:
    with conn.cursor() as cur:
        for ghxh, (text, _) in OUTSIDER_TIMES.items():
            cur.execute(
                "insert into hisb.mzgh (ghxh, brid, ksdm, ysdm, ghsj, ghlb, ghf, thbz, czsj) "
                "values (%s, 100001, 'NK01', 'YS0001', %s, '普通', 10.00, '0', "
                "timestamp '2024-01-05 10:00')",
                (ghxh, text),
            )
    conn.commit()


def _staging_counts(lg) -> dict[str, int]:
    wh = connect(lg.warehouse)
    counts = {t: _rows(wh, f"select count(*) from staging.{m}")[0][0] for t, m in STAGING.items()}
    wh.close()
    return counts


@pytest.fixture(scope="module")
def hisb(pg_admin_dsn):
    """Fresh platform databases; Hospital B simulated (plus the outsider rows), ingested
    through the gate as run-1 and its staging built by dbt."""
    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    owner = connect(lg.hisb_owner)
    hospital_b.generate(owner, CONFIG)
    _insert_outsider_rows(owner)
    outcome = ingest_source(lg, "hisb", "run-1")
    run_dbt("seed")
    run_dbt("build", "--select", "path:models/staging/hisb", "std_institution", "std_source_system")
    yield lg, owner, outcome
    owner.close()


def test_every_table_passes_the_gate_and_is_published(hisb):
    lg, _, outcome = hisb
    assert set(outcome) == set(hospital_b.TABLES)
    failed = {t: r for t, r in outcome.items() if not isinstance(r, GateResult)}
    assert not failed, failed
    wh = connect(lg.warehouse)
    status = dict(
        _rows(wh, "select table_name, status from audit.load_batch where source = 'hisb'")
    )
    wh.close()
    assert status == dict.fromkeys(hospital_b.TABLES, "published")


def test_source_rows_reconcile_with_raw_and_staging(hisb):
    """source = raw (rows read = rows written) = staging + quarantined rows, table by table;
    the only quarantine is the negative amounts the simulator injected."""
    lg, owner, _ = hisb
    wh = connect(lg.warehouse)
    source = {t: _rows(owner, f"select count(*) from hisb.{t}")[0][0] for t in hospital_b.TABLES}
    loaded = {
        t: (read, written)
        for t, read, written in _rows(
            wh,
            "select table_name, rows_read, rows_written from audit.load_batch "
            "where source = 'hisb'",
        )
    }
    quarantined = dict(
        _rows(
            wh,
            "select table_name, count(distinct record_key) from audit.quarantined_row "
            "where source = 'hisb' group by table_name",
        )
    )
    wh.close()
    staged = _staging_counts(lg)
    negative = _rows(
        owner, "select count(*) from sim.defect_manifest where kind = 'negative_amount'"
    )
    assert negative[0][0] > 0
    assert quarantined == {"cfmx": negative[0][0]}
    for table in hospital_b.TABLES:
        assert loaded[table] == (source[table], source[table]), table
        assert staged[table] == source[table] - quarantined.get(table, 0), table


def test_every_text_time_format_parses_and_the_rest_is_flagged(hisb):
    """Each registration's parsed time equals the source's change time (to the minute for the
    slash format, which has no seconds); the injected unparseable times and the outsider's bad
    shapes are flagged 'unparseable' with no time, and nothing else is."""
    lg, owner, _ = hisb
    source = {
        ghxh: (text, czsj, thbz)
        for ghxh, text, czsj, thbz in _rows(owner, "select ghxh, ghsj, czsj, thbz from hisb.mzgh")
    }
    injected = {
        int(r)
        for (r,) in _rows(
            owner, "select record_id from sim.defect_manifest where kind = 'unparseable_timestamp'"
        )
    }
    assert injected
    wh = connect(lg.warehouse)
    staged = _rows(
        wh, "select visit_id, visit_at, visit_at_status from staging.stg_hisb__outpatient_visits"
    )
    wh.close()
    formats = set()
    for visit_id, visit_at, status in staged:
        text, czsj, thbz = source[visit_id]
        if visit_id in OUTSIDER_TIMES:
            expected = OUTSIDER_TIMES[visit_id][1]
            assert visit_at == expected, (visit_id, visit_at)
            assert status == ("valid" if expected else "unparseable")
            continue
        if visit_id in injected:
            assert (visit_at, status) == (None, "unparseable")
            continue
        assert status == "valid" and visit_at is not None
        fmt = "slash" if "/" in text else ("compact" if text.isdigit() else "iso")
        formats.add(fmt)
        if thbz == "0":  # a cancelled registration's change time is its cancellation
            assert visit_at == (czsj.replace(second=0) if fmt == "slash" else czsj), visit_id
    assert formats == {"iso", "slash", "compact"}
    # the other text times: each row's parse agrees with its change time
    checks = {
        "stg_hisb__prescription_lines": ("prescribed_at", "prescribed_at_status"),
        "stg_hisb__patients": ("registered_at", "registered_at_status"),
    }
    wh = connect(lg.warehouse)
    for model, (column, status_column) in checks.items():
        bad = _rows(wh, f"select count(*) from staging.{model} where {status_column} <> 'valid'")
        assert bad == [(0,)], model
        drift = _rows(
            wh,
            f"select count(*) from staging.{model} "
            f"where date_trunc('minute', {column}) <> date_trunc('minute', updated_at)",
        )
        assert drift == [(0,)], model
    stays = _rows(
        wh,
        "select discharged_at_status, count(*) from staging.stg_hisb__inpatient_stays group by 1",
    )
    wh.close()
    assert set(dict(stays)) <= {"valid", "in_hospital", "before_admission"}


def test_staging_keeps_codes_standard_and_identifiers_in(hisb):
    lg, owner, _ = hisb
    wh = connect(lg.warehouse)
    sexes = dict(_rows(wh, "select sex, count(*) from staging.stg_hisb__patients group by 1"))
    assert set(sexes) == {"M", "F"}
    columns = {
        c
        for (c,) in _rows(
            wh,
            "select column_name from information_schema.columns "
            "where table_schema = 'staging' and table_name = 'stg_hisb__patients'",
        )
    }
    assert not columns & {"lxdh", "dz", "phone", "address", "sfzh"}
    passports = [p for (p,) in _rows(owner, "select sfzh from hisb.brxx where zjlx = '护照'")]
    assert passports
    leaked = _rows(
        wh,
        "select count(*) from staging.stg_hisb__patients where id_card_no = any(%s)",
        (passports,),
    )
    codes = [
        c for (c,) in _rows(wh, "select distinct icd10_cn_code from staging.stg_hisb__diagnoses")
    ]
    wh.close()
    assert leaked == [(0,)]
    assert "J18.900X001" in codes and all(c == c.upper() for c in codes)
    # the mistyped cards are exactly the invalid resident cards
    mistyped = _rows(
        owner, "select count(*) from sim.defect_manifest where kind = 'mistyped_id_card'"
    )
    wh = connect(lg.warehouse)
    invalid = _rows(
        wh,
        "select count(*) from staging.stg_hisb__patients "
        "where id_document_type = 'resident_card' and not is_id_card_valid",
    )
    wh.close()
    assert invalid == mistyped and mistyped[0][0] > 0


def test_rerun_and_next_run_change_nothing(hisb):
    """An operator reruns the published run, then the next day's run finds no new row: the
    batches extract nothing new and staging keeps its counts."""
    lg, _, _ = hisb
    before = _staging_counts(lg)
    again = ingest_source(lg, "hisb", "run-1")
    nxt = ingest_source(lg, "hisb", "run-2")
    assert all(isinstance(r, GateResult) for r in (again | nxt).values()), again | nxt
    wh = connect(lg.warehouse)
    written = _rows(
        wh,
        "select coalesce(sum(rows_written), 0) from audit.load_batch "
        "where source = 'hisb' and run_id = 'run-2'",
    )
    runs = _rows(wh, "select count(*) from audit.load_batch where source = 'hisb'")
    wh.close()
    assert written == [(0,)]
    assert runs == [(2 * len(hospital_b.TABLES),)]  # run-1 was not reopened
    assert _staging_counts(lg) == before


def test_source_login_cannot_read_the_truth_or_write_the_source(hisb):
    """An attacker holding the extract's service login for Hospital B (hisb_reader)."""
    lg, _, _ = hisb
    reader = connect(lg.hisb_reader)
    try:
        for query in (
            "select * from sim.cross_hospital_truth",
            "select * from sim.person_truth",
            "select * from sim.defect_manifest",
            "update hisb.brxx set xm = 'x' where brid = 100001",
            "delete from hisb.mzgh",
            "create table hisb.planted (x int)",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), reader.cursor() as cur:
                cur.execute(query)
            reader.rollback()
        rows = _rows(reader, "select count(*) from hisb.brxx")  # what it is for still works
        assert rows[0][0] == hospital_b.simulate(CONFIG).count("brxx")
    finally:
        reader.close()


def test_hospital_b_takes_its_place_in_the_group(hisb):
    """Its mapping seeds alone put the source in its institution in the standard layer."""
    lg, _, _ = hisb
    wh = connect(lg.warehouse)
    systems = dict(
        _rows(wh, "select source_system, institution_id from standard.std_source_system")
    )
    institutions = dict(
        _rows(wh, "select institution_id, institution_name from standard.std_institution")
    )
    wh.close()
    assert systems["hisb"] == hospital_b.INSTITUTION_ID == "H002"
    assert systems["his"] == hospital_b.HOSPITAL_A_INSTITUTION_ID
    assert set(institutions) >= {"H001", "H002"}
