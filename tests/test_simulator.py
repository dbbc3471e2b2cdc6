"""The simulated HIS source against a real PostgreSQL: determinism, realism, defects, day by day."""

from __future__ import annotations

import csv
import re
from datetime import date

import psycopg2
import pytest

from hdp_sim import his, idcard
from hdp_sim import reference as ref

SMALL = his.SimConfig(seed=5, scale=0.02, history_days=28, defect_rate=0.03)
PK = {
    "departments": "dept_code",
    "doctors": "doctor_id",
    "patients": "patient_id",
    "outpatient_visits": "visit_id",
    "inpatient_admissions": "admission_id",
    "diagnoses": "diagnosis_id",
    "sim.defect_manifest": "defect_id",
    "sim.change_log": "change_id",
    "sim.person_truth": "patient_id",
    "sim.clock": "id",
}


@pytest.fixture
def conn(fresh_db):
    c = psycopg2.connect(fresh_db)
    yield c
    c.close()


def _rows(conn, query: str, params=()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


def _checksums(conn) -> dict[str, str]:
    out = {}
    for table, pk in PK.items():
        name = table if "." in table else f"his.{table}"
        (out[table],) = _rows(
            conn, f"select md5(string_agg(t::text, '|' order by {pk})) from {name} t"
        )[0]
    return out


def test_same_seed_gives_identical_tables(conn):
    his.generate(conn, SMALL)
    first = _checksums(conn)
    his.advance_day(conn)
    first_next = _checksums(conn)
    his.generate(conn, SMALL)
    assert _checksums(conn) == first
    his.advance_day(conn)
    assert _checksums(conn) == first_next
    his.generate(conn, his.SimConfig(seed=6, scale=0.02, history_days=28, defect_rate=0.03))
    assert _checksums(conn)["outpatient_visits"] != first["outpatient_visits"]


def test_row_counts_scale_and_match_table_counts(conn):
    small = his.generate(conn, his.SimConfig(seed=1, scale=0.01, history_days=14))
    assert small == his.table_counts(conn)
    large = his.generate(conn, his.SimConfig(seed=1, scale=0.03, history_days=14))
    assert large["departments"] == small["departments"] == 45
    for table in ("patients", "outpatient_visits", "diagnoses"):
        assert 2.5 < large[table] / small[table] < 3.5, table
    # ~10,000 visits a day per 1.0 of scale
    assert 0.7 < large["outpatient_visits"] / (14 * 300) < 1.3


def test_realistic_shape(conn):
    his.generate(conn, SMALL)
    titles = dict(_rows(conn, "select title, count(*) from his.doctors group by 1"))
    assert titles["住院医师"] + titles["主治医师"] > titles["主任医师"]
    assert set(titles) == set(his.TITLES)
    (cancelled,) = _rows(
        conn, "select avg((status = 'cancelled')::int) from his.outpatient_visits"
    )[0]
    assert 0.02 < cancelled < 0.07
    phones = [p for (p,) in _rows(conn, "select phone from his.patients where phone is not null")]
    assert all(re.fullmatch(r"1[3-9]\d{9}", p) for p in phones)
    los = _rows(
        conn,
        "select percentile_cont(0.5) within group (order by extract(epoch from discharged_at "
        "- admitted_at) / 86400) from his.inpatient_admissions where discharged_at > admitted_at",
    )[0][0]
    assert 4 < los < 11
    (still_in,) = _rows(
        conn, "select count(*) from his.inpatient_admissions where discharged_at is null"
    )[0]
    assert still_in > 0
    primaries = _rows(
        conn,
        "select count(*) filter (where n_primary <> 1), max(n) from (select count(*) n, "
        "count(*) filter (where is_primary) n_primary from his.diagnoses d "
        "where encounter_id < 900000000000 and encounter_id not in (select clean_value::bigint"
        "  from sim.defect_manifest where kind = 'orphan_encounter_ref') "
        "group by encounter_type, encounter_id) x",
    )[0]
    assert primaries[0] == 0
    assert primaries[1] <= 3
    # departments see the people they should: paediatrics children, obstetrics women
    (bad,) = _rows(
        conn,
        "select count(*) from his.outpatient_visits v join sim.person_truth t using (patient_id) "
        "where (v.dept_code = 'D0401' and t.birth_date < v.visit_at::date - interval '15 years')"
        " or (v.dept_code = 'D0302' and t.sex = 'M')",
    )[0]
    assert bad == 0


def test_id_cards_valid_except_manifested(conn):
    his.generate(conn, SMALL)
    rows = _rows(
        conn,
        "select p.patient_id, p.id_card_no, t.birth_date, t.sex from his.patients p "
        "join sim.person_truth t using (patient_id)",
    )
    invalid = {pid for pid, card, _, _ in rows if not idcard.is_valid(card)}
    manifested = {
        rid
        for (rid,) in _rows(
            conn,
            "select record_id from sim.defect_manifest where kind = 'invalid_id_card_checksum'",
        )
    }
    assert manifested and invalid == manifested
    for _, card, birth, sex in rows:
        assert card[6:14] == birth.strftime("%Y%m%d")
        assert int(card[16]) % 2 == (1 if sex == "M" else 0)


# kind -> SQL counting manifested rows that do NOT show the defect (must be 0)
_NOT_TRUE = {
    "duplicate_registration": """
        select count(*) from m join his.patients p on p.patient_id = m.record_id
        join his.patients o on o.patient_id = m.clean_value::bigint
        join sim.person_truth tp on tp.patient_id = p.patient_id
        join sim.person_truth t_o on t_o.patient_id = o.patient_id
        left join sim.defect_manifest c on c.table_name = 'patients'
          and c.record_id = o.patient_id and c.column_name = 'id_card_no'
        where p.id_card_no <> coalesce(c.clean_value, o.id_card_no)
           or tp.person_id <> t_o.person_id or p.mrn = o.mrn""",
    "fullwidth_name": """select count(*) from m join his.patients p on p.patient_id = m.record_id
        where p.name !~ '[\u3000\uff01-\uff5e]'""",
    "stray_whitespace": """select count(*) from m join his.patients p
        on p.patient_id = m.record_id where p.name !~ ' '""",
    "nonstandard_gender_code": """select count(*) from m join his.patients p
        on p.patient_id = m.record_id where p.gender in ('1', '2', 'M', 'F', '男', '女')""",
    "nonstandard_date_format": """select count(*) from m join his.patients p
        on p.patient_id = m.record_id where p.birth_date ~ '^\\d{4}-\\d{2}-\\d{2}$'""",
    "future_birth_date": """select count(*) from m join his.patients p
        on p.patient_id = m.record_id
        where p.birth_date::date <= (select current_day from sim.clock)""",
    "invalid_id_card_checksum": "select 0",  # checked in python above
    "nonstandard_icd_format": """select count(*) from m join his.diagnoses d
        on d.diagnosis_id = m.record_id where d.icd10_code = m.clean_value""",
    "discharge_before_admission": """select count(*) from m join his.inpatient_admissions a
        on a.admission_id = m.record_id where not a.discharged_at < a.admitted_at""",
    "negative_fee": """select count(*) from m
        left join his.outpatient_visits v
          on m.table_name = 'outpatient_visits' and v.visit_id = m.record_id
        left join his.inpatient_admissions a
          on m.table_name = 'inpatient_admissions' and a.admission_id = m.record_id
        where coalesce(v.fee, a.total_cost) >= 0""",
    "orphan_patient_ref": """select count(*) from m
        left join his.outpatient_visits v
          on m.table_name = 'outpatient_visits' and v.visit_id = m.record_id
        left join his.inpatient_admissions a
          on m.table_name = 'inpatient_admissions' and a.admission_id = m.record_id
        where exists (select 1 from his.patients p
                      where p.patient_id = coalesce(v.patient_id, a.patient_id))""",
    "orphan_encounter_ref": """select count(*) from m join his.diagnoses d
        on d.diagnosis_id = m.record_id
        where exists (select 1 from his.outpatient_visits v where v.visit_id = d.encounter_id)
           or exists (select 1 from his.inpatient_admissions a
                      where a.admission_id = d.encounter_id)""",
    "orphan_department_ref": """select count(*) from m join his.doctors d
        on d.doctor_id = m.record_id
        where exists (select 1 from his.departments x where x.dept_code = d.dept_code)""",
    "duplicate_visit": """select count(*) from m join his.outpatient_visits d
        on d.visit_id = m.record_id
        join his.outpatient_visits o on o.visit_id = m.clean_value::bigint
        where (d.patient_id, d.dept_code, d.doctor_id, d.visit_at)
          is distinct from (o.patient_id, o.dept_code, o.doctor_id, o.visit_at)""",
}


def test_every_defect_kind_is_manifested_and_true(conn):
    his.generate(conn, SMALL)
    his.advance_day(conn)
    kinds = dict(_rows(conn, "select kind, count(*) from sim.defect_manifest group by 1"))
    assert set(kinds) == set(his.DEFECT_KINDS) == set(_NOT_TRUE)
    for kind, query in _NOT_TRUE.items():
        sql = f"with m as (select * from sim.defect_manifest where kind = '{kind}') {query}"
        assert _rows(conn, sql)[0][0] == 0, kind
    # outside the manifest the data is clean where a defect would be detectable
    (clean_gender,) = _rows(
        conn,
        "select count(*) from his.patients p where gender not in ('1','2','M','F','男','女') "
        "and not exists (select 1 from sim.defect_manifest m where m.record_id = p.patient_id "
        "and m.table_name = 'patients' and m.kind = 'nonstandard_gender_code')",
    )[0]
    assert clean_gender == 0
    (negative,) = _rows(
        conn,
        "select count(*) from his.outpatient_visits v where fee < 0 and not exists ("
        "select 1 from sim.defect_manifest m where m.record_id = v.visit_id "
        "and m.table_name = 'outpatient_visits' and m.kind = 'negative_fee')",
    )[0]
    assert negative == 0


def test_weekly_pattern(conn):
    his.generate(conn, SMALL)
    by_dow = dict(
        (dow, float(n))
        for dow, n in _rows(
            conn,
            "select extract(isodow from day)::int, avg(n) from (select visit_at::date as day, "
            "count(*) as n from his.outpatient_visits group by 1) d group by 1",
        )
    )
    assert by_dow[1] == max(by_dow.values())
    assert by_dow[7] < 0.6 * by_dow[1]
    assert by_dow[6] < 0.7 * by_dow[3]


def _respiratory_share(conn, first_day: date) -> float:
    his.generate(conn, his.SimConfig(seed=9, scale=0.03, history_days=14, first_day=first_day))
    share = _rows(
        conn,
        "select avg((d.icd10_code like 'J%%')::int) from his.diagnoses d "
        "where d.is_primary and d.encounter_type = 'OP'",
    )[0][0]
    return float(share)


def test_winter_respiratory_peak(conn):
    winter = _respiratory_share(conn, date(2024, 1, 15))
    summer = _respiratory_share(conn, date(2024, 7, 15))
    assert winter > 1.4 * summer


def test_advance_day_adds_rows_and_corrections_after_the_watermark(conn):
    his.generate(conn, SMALL)
    tables = [t for t in his.HIS_TABLES]
    before = his.table_counts(conn)
    watermark = {t: _rows(conn, f"select max(updated_at) from his.{t}")[0][0] for t in tables}
    (old_day,) = _rows(conn, "select current_day from sim.clock")[0]
    counts = his.advance_day(conn)
    (day,) = _rows(conn, "select current_day from sim.clock")[0]
    assert (day - old_day).days == 1
    after = his.table_counts(conn)
    for t in ("patients", "outpatient_visits", "diagnoses"):
        assert counts[f"new_{t}"] > 0
        assert after[t] - before[t] == counts[f"new_{t}"]
    for t in ("outpatient_visits", "diagnoses", "patients"):
        assert counts[f"corrected_{t}"] > 0
    log = _rows(
        conn,
        "select table_name, kind, array_agg(distinct record_id) from sim.change_log "
        "where sim_day = %s group by 1, 2",
        (day,),
    )
    changed: dict[str, set[int]] = {}
    for table, kind, ids in log:
        changed.setdefault(table, set()).update(ids)
        if kind == "correction":
            pk = PK[table]
            rows = _rows(
                conn,
                f"select min(updated_at) from his.{table} where {pk}::text = any(%s)",
                (list(ids),),
            )
            assert rows[0][0] > watermark[table]
            assert rows[0][0].date() == day
    assert {t for t, k, _ in log if k == "correction"} >= {
        "outpatient_visits", "diagnoses", "patients",
    }  # fmt: skip
    # the extractor's `updated_at > watermark` sees exactly the logged rows
    for t in tables:
        pk = PK[t]
        since = {
            str(r[0])
            for r in _rows(conn, f"select {pk} from his.{t} where updated_at > %s", (watermark[t],))
        }
        assert since == changed.get(t, set()), t
        for (upd,) in _rows(conn, f"select updated_at from his.{t} where updated_at > %s",
                            (watermark[t],)):  # fmt: skip
            assert upd.date() == day


def test_ground_truth_links_duplicates(conn):
    his.generate(conn, SMALL)
    (untracked,) = _rows(
        conn,
        "select count(*) from his.patients p where not exists "
        "(select 1 from sim.person_truth t where t.patient_id = p.patient_id)",
    )[0]
    assert untracked == 0
    pairs = _rows(
        conn,
        "select t.person_id, count(*), count(distinct p.id_card_no) from his.patients p "
        "join sim.person_truth t using (patient_id) group by 1 having count(*) > 1",
    )
    (duplicates,) = _rows(
        conn, "select count(*) from sim.defect_manifest where kind = 'duplicate_registration'"
    )[0]
    assert duplicates > 0
    assert sum(n - 1 for _, n, _ in pairs) == duplicates
    # a shared ID card number can be mistyped on one registration, never more
    assert all(cards <= n for _, n, cards in pairs)


def test_icd10_seed_is_the_single_source_of_codes():
    with ref.ICD10_CSV.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == ["icd10_code", "description_en", "description_zh", "chapter"]
    codes = [r[0] for r in rows]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[A-Z]\d{2}(\.\d)?", c) for c in codes)
    assert all(re.fullmatch(r"[IVX]+", r[3]) for r in rows)
    assert ref.codes_used() == set(codes)
