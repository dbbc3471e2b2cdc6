"""Hospital B (source hisb) end to end against a real MariaDB (its HIS, as such systems run on
MySQL), real PostgreSQL, GX and dbt: simulated on MariaDB, extracted with its read-only login,
gated, published, staged; rows reconcile from source to staging, every text time format parses
(and what does not is flagged, not silently null), a rerun changes nothing, and the source's
service login cannot reach the simulator's truth or write the source.
"""

from __future__ import annotations

from datetime import datetime

import pymysql
import pytest

from hdp.ingest.extract import connect_source
from hdp.quality.gate import GateResult
from hdp.runtime.dbt import run_dbt
from hdp.warehouse.database import connect
from hdp_sim import his, hospital_b
from hdp_sim.sources import logins
from tests.conftest import reset_platform_databases
from tests.pipeline import CLEAR_KEY, ingest_source

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
    # a weekday after the date is read (issue 15): 2024-01-05 was a Friday
    OUTSIDER_GHXH + 9: ("2024-01-05 星期五", datetime(2024, 1, 5)),
    OUTSIDER_GHXH + 10: ("2024-01-05 星期五 09:30", datetime(2024, 1, 5, 9, 30)),
}


def _rows(conn, query: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = [tuple(r) for r in cur.fetchall()]  # PyMySQL (the source) returns a tuple
    conn.rollback()
    return rows


def _insert_outsider_rows(conn) -> None:
    with conn.cursor() as cur:
        for ghxh, (text, _) in OUTSIDER_TIMES.items():
            cur.execute(
                "insert into hisb.mzgh (ghxh, brid, ksdm, ysdm, ghsj, ghlb, ghf, thbz, czsj) "
                "values (%s, 100001, 'NK01', 'YS0001', %s, '普通', 10.00, '0', "
                "'2024-01-05 10:00:00')",
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
    # Hospital A too (same seed, scale and days): its registry is where the referrals come from
    his_owner = connect(lg.his_owner)
    his.generate(his_owner, his.SimConfig(seed=CONFIG.seed, scale=CONFIG.scale, history_days=20))
    his_owner.close()
    assert all(isinstance(r, GateResult) for r in ingest_source(lg, "his", "run-1").values())
    owner = connect_source(lg.hisb_owner)  # PyMySQL: the source is on the embedded MariaDB
    hospital_b.generate(owner, CONFIG)
    _insert_outsider_rows(owner)
    outcome = ingest_source(lg, "hisb", "run-1")
    run_dbt("seed")
    # staging, mapping and standard of every source (the standard unions them all)
    run_dbt(
        "build",
        "--select",
        "+path:models/standard",
        "path:models/staging/hisb",
        "--indirect-selection",
        "cautious",
    )
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
    # the demo's summary counts the MySQL source through its read-only login too
    from hdp.runtime.summary import collect

    statuses, _ = collect("hisb")
    assert {s.table: s.source_rows for s in statuses} == source
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
        owner, "select count(*) from hisb_sim.defect_manifest where kind = 'negative_amount'"
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
            owner,
            "select record_id from hisb_sim.defect_manifest where kind = 'unparseable_timestamp'",
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
    # every time staging could not read was counted by the gate first, under its check and
    # column (hisb.mzgh.ghsj_parses, warn: the row is kept, flagged), and nothing else was
    wh = connect(lg.warehouse)
    counted = _rows(
        wh,
        f"select {CLEAR_KEY}, column_name, action from audit.row_issue as i "
        "where check_id = 'hisb.mzgh.ghsj_parses'",
    )
    wh.close()
    flagged = {v for v, _, status in staged if status == "unparseable"}
    assert flagged and {int(k) for k, _, _ in counted} == flagged
    assert {(c, a) for _, c, a in counted} == {("ghsj", "warn")}
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
        owner, "select count(*) from hisb_sim.defect_manifest where kind = 'mistyped_id_card'"
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
    assert lg.hisb_reader.dialect == "mysql" and lg.hisb_reader.user == "hisb_reader"
    reader = connect_source(lg.hisb_reader)
    try:
        for query in (
            "select * from hisb_sim.cross_hospital_truth",
            "select * from hisb_sim.person_truth",
            "select * from hisb_sim.defect_manifest",
            "update hisb.brxx set xm = 'x' where brid = 100001",
            "delete from hisb.mzgh",
            "create table hisb.planted (x int)",
        ):
            # 1142: command denied to the user for the table; 1044: access denied to a database
            with pytest.raises(pymysql.err.OperationalError) as denied, reader.cursor() as cur:
                cur.execute(query)
            assert denied.value.args[0] in (1142, 1044), (query, denied.value.args[0])
            reader.rollback()
        databases = {d for (d,) in _rows(reader, "show databases")}
        assert "hisb" in databases and "hisb_sim" not in databases
        rows = _rows(reader, "select count(*) from hisb.brxx")  # what it is for still works
        assert rows[0][0] == hospital_b.simulate(CONFIG).count("brxx")
    finally:
        reader.close()


def test_source_has_mysql_types_and_raw_hisb_their_postgresql_ones(hisb):
    """The HIS declares what a MySQL HIS declares (datetime change times, a tinyint(1) flag,
    an enum, utf8mb4 text) and raw_hisb holds them as the mysql dialect maps them."""
    lg, owner, _ = hisb
    declared = {
        (t, c): (ct, cs)
        for t, c, ct, cs in _rows(
            owner,
            "select table_name, column_name, column_type, character_set_name "
            "from information_schema.columns where table_schema = 'hisb'",
        )
    }
    assert declared[("ksdm", "zfbz")][0] == "tinyint(1)"
    assert declared[("brxx", "xb")] == ("enum('男','女')", "utf8mb4")
    assert declared[("brxx", "xm")] == ("varchar(64)", "utf8mb4")
    assert {declared[(t, w)][0] for t, w in hospital_b.WATERMARKS.items()} == {"datetime"}
    wh = connect(lg.warehouse)
    landed = dict(
        ((t, c), d)
        for t, c, d in _rows(
            wh,
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_hisb'",
        )
    )
    wh.close()
    assert landed[("ksdm", "zfbz")] == "boolean"
    assert landed[("brxx", "xb")] == "text"
    assert landed[("brxx", "xm")] == "character varying"
    for table, watermark in hospital_b.WATERMARKS.items():
        assert landed[(table, watermark)] == "timestamp without time zone", table
    # the flag reaches staging as a boolean: the simulator retires no department
    retired = _rows(owner, "select count(*), sum(zfbz) from hisb.ksdm")[0]
    wh = connect(lg.warehouse)
    active = _rows(wh, "select count(*) filter (where is_active), count(*) from "
                   "staging.stg_hisb__departments")[0]  # fmt: skip
    wh.close()
    assert retired[1] == 0 and active == (retired[0], retired[0])


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


def test_standard_rows_reconcile_with_staging_and_keep_their_origin(hisb):
    """Every staged row of Hospital B reaches its standard entity once, keyed
    H002:hisb:<record id>; the standard holds both hospitals' rows apart."""
    lg, _, _ = hisb
    wh = connect(lg.warehouse)
    pairs = {
        "std_person": "select count(*) from staging.stg_hisb__patients",
        "std_practitioner": "select count(*) from staging.stg_hisb__doctors",
        "std_organisation_unit": "select count(*) from staging.stg_hisb__departments",
        "std_encounter": "select (select count(*) from staging.stg_hisb__outpatient_visits)"
        " + (select count(*) from staging.stg_hisb__inpatient_stays)",
        "std_diagnosis": "select count(*) from staging.stg_hisb__diagnoses",
        "std_medication_product": "select count(*) from staging.stg_hisb__drugs",
    }
    for model, staged in pairs.items():
        key = model.removeprefix("std_") + "_key"
        ((count, keys, institutions, well_keyed),) = _rows(
            wh,
            f"select count(*), count(distinct {key}), count(distinct institution_id), "
            f"count(*) filter (where {key} like 'H002:hisb:%%') "
            f"from standard.{model} where source_system = 'hisb'",
        )
        assert count == keys == well_keyed == _rows(wh, staged)[0][0] > 0, model
        assert institutions == 1, model
    both = dict(_rows(wh, "select institution_id, count(*) from standard.std_person group by 1"))
    assert set(both) == {"H001", "H002"}
    # the clinical edition's codes map to the WHO code they extend; the local code stays beside
    mapped = dict(
        _rows(
            wh,
            "select local_diagnosis_code, icd10_code from standard.std_diagnosis "
            "where source_system = 'hisb' group by 1, 2",
        )
    )
    assert mapped["J18.900X001"] == mapped["J18.900"] == "J18.9"
    assert mapped["I10.X00"] == mapped["I10.X00X002"] == "I10"
    assert mapped["I25.103"] == "I25.1"
    unknown = _rows(
        wh,
        "select distinct d.icd10_code from standard.std_diagnosis d "
        "left join reference.icd10_codes c on c.icd10_code = d.icd10_code "
        "where d.source_system = 'hisb' and c.icd10_code is null",
    )
    # drugs: the pharmacist's table maps some, the rest stay visibly unmapped
    methods = dict(
        _rows(
            wh,
            "select atc_mapping_method, count(*) from standard.std_medication_product "
            "where source_system = 'hisb' group by 1",
        )
    )
    wh.close()
    assert {c for (c,) in unknown} <= {"O80.0", "H26.9"}  # not in the WHO list we seed
    assert methods["manual"] == 9 and methods["unmapped"] == len(hospital_b.DRUGS) - 9


def test_a_referral_carries_hospital_a_keys_unless_registered_differently(hisb):
    """For each true cross-hospital pair, Hospital B's standard person carries the same keyed
    card (and name) as Hospital A's registration, except where the simulator recorded that B's
    desk typed it differently: what the patient index links on, and where it needs the score."""
    lg, owner, _ = hisb
    truth = _rows(owner, "select brid, his_patient_id from hisb_sim.cross_hospital_truth")
    changed = {
        (kind, int(r))
        for kind, r in _rows(
            owner,
            "select kind, record_id from hisb_sim.defect_manifest where kind in "
            "('missing_id_card', 'mistyped_id_card', 'name_variant')",
        )
    }
    wh = connect(lg.warehouse)
    keys = {
        (inst, int(rid)): (card, name)
        for inst, rid, card, name in _rows(
            wh,
            "select institution_id, source_record_id, person_id_card_key, name_key "
            "from standard.std_person",
        )
    }
    wh.close()
    same_card = differing = 0
    for brid, a_id in truth:
        b_card, b_name = keys[("H002", brid)]
        a_card, a_name = keys[("H001", a_id)]
        if ("missing_id_card", brid) in changed:
            assert b_card is None
        elif ("mistyped_id_card", brid) in changed:
            assert b_card is None  # an invalid number gives no card key
            differing += 1
        elif a_card is not None:  # Hospital A's own registration may carry its defect
            assert b_card == a_card
            same_card += 1
        if ("name_variant", brid) not in changed:
            assert b_name == a_name
    assert same_card > 0 and differing + same_card < len(truth)
