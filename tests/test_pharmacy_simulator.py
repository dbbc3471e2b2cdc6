"""The simulated pharmacy source against a real PostgreSQL: determinism, integrity, defects."""

from __future__ import annotations

from datetime import date

import numpy as np
import psycopg2
import pytest

from hdp_sim import drugs, his, pharmacy

HIS_CONFIG = his.SimConfig(seed=5, scale=0.01, history_days=20)
CONFIG = pharmacy.PharmacyConfig(seed=11, defect_rate=0.02)
PK = {
    "suppliers": "supplier_code",
    "drugs": "drug_code",
    "drug_prices": "price_id",
    "prescriptions": "prescription_id",
    "prescription_lines": "line_id",
    "dispensing": "dispense_id",
    "purchase_orders": "po_id",
    "receipts": "receipt_id",
    "stock_batches": "snapshot_id",
}


def _db(admin_dsn: str, name: str):
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {name} with (force)")
        cur.execute(f"create database {name}")
    admin.close()
    return psycopg2.connect(admin_dsn.rsplit("/", 1)[0] + "/" + name)


def _drop(admin_dsn: str, *names: str) -> None:
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f"drop database if exists {name} with (force)")
    admin.close()


def _one(conn, sql: str, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    conn.rollback()
    return row[0]


def _all(conn, sql: str, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.rollback()
    return rows


@pytest.fixture(scope="module")
def dbs(pg_admin_dsn):
    """(his_conn, pharmacy_conn): a small HIS and its pharmacy."""
    his_conn = _db(pg_admin_dsn, "t_ph_his")
    his.generate(his_conn, HIS_CONFIG)
    ph_conn = _db(pg_admin_dsn, "t_ph_a")
    pharmacy.generate(ph_conn, his_conn, CONFIG)
    yield his_conn, ph_conn
    his_conn.close()
    ph_conn.close()
    _drop(pg_admin_dsn, "t_ph_his", "t_ph_a")


def _digests(conn) -> dict[str, str]:
    out = {}
    for t, pk in {**PK, "sim.defect_manifest": "defect_id"}.items():
        name = t if "." in t else f"pharmacy.{t}"
        out[t] = _one(conn, f"select md5(string_agg(x::text, '|' order by {pk})) from {name} x")
    return out


def test_same_seed_same_tables(dbs, fresh_db):
    his_conn, ph_conn = dbs
    other = psycopg2.connect(fresh_db)
    try:
        counts = pharmacy.generate(other, his_conn, CONFIG)
        assert _digests(other) == _digests(ph_conn)
        assert counts == pharmacy.table_counts(ph_conn)
        assert all(n > 0 for n in counts.values()), counts
    finally:
        other.close()


def test_prescriptions_follow_the_his(dbs):
    his_conn, ph_conn = dbs
    visits = {r[0] for r in _all(his_conn, "select visit_id from his.outpatient_visits")}
    admissions = {r[0] for r in _all(his_conn, "select admission_id from his.inpatient_admissions")}
    patients = {r[0] for r in _all(his_conn, "select patient_id from his.patients")}
    rows = _all(
        ph_conn,
        "select encounter_type, visit_id, admission_id, patient_id from pharmacy.prescriptions",
    )
    for etype, vid, aid, pid in rows:
        assert (vid in visits) if etype == "OP" else (aid in admissions and vid is None)
        assert pid in patients
    op_visits = _one(
        his_conn, "select count(*) from his.outpatient_visits where status = 'completed'"
    )
    n_op = sum(1 for r in rows if r[0] == "OP")
    assert 0.7 * op_visits < n_op <= op_visits


def test_referential_integrity_apart_from_manifested_defects(dbs):
    _, conn = dbs
    unknown = _all(
        conn,
        "select l.line_id from pharmacy.prescription_lines l left join pharmacy.drugs d "
        "using (drug_code) where d.drug_code is null order by 1",
    )
    listed = _all(
        conn,
        "select record_id from sim.defect_manifest where kind = 'unknown_drug_code' order by 1",
    )
    assert unknown == listed and unknown
    for sql in (
        "select count(*) from pharmacy.prescription_lines l left join pharmacy.prescriptions p "
        "using (prescription_id) where p.prescription_id is null",
        "select count(*) from pharmacy.dispensing d left join pharmacy.prescription_lines l "
        "using (line_id) where l.line_id is null",
        "select count(*) from pharmacy.dispensing d left join pharmacy.drugs g "
        "using (drug_code) where g.drug_code is null",
        "select count(*) from pharmacy.dispensing r join pharmacy.dispensing s "
        "on s.dispense_id = r.return_of where not r.is_return or s.is_return "
        "or r.line_id <> s.line_id or -r.quantity > s.quantity",
        "select count(*) from pharmacy.dispensing where is_return and (quantity >= 0 "
        "or return_of is null)",
        "select count(*) from pharmacy.receipts r left join pharmacy.purchase_orders p "
        "using (po_id) where p.po_id is null or r.quantity > p.quantity",
        "select count(*) from pharmacy.drug_prices p left join pharmacy.drugs d "
        "using (drug_code) where d.drug_code is null",
    ):
        assert _one(conn, sql) == 0, sql


DEFECT_QUERIES = {
    "unit_mixup": "select line_id from pharmacy.prescription_lines where unit = '盒'",
    "zero_quantity": "select line_id from pharmacy.prescription_lines where quantity = 0",
    "negative_quantity": "select dispense_id from pharmacy.dispensing "
    "where quantity < 0 and not is_return",
    "unknown_drug_code": "select line_id from pharmacy.prescription_lines l "
    "where not exists (select 1 from pharmacy.drugs d where d.drug_code = l.drug_code)",
    "price_100x": "select x.dispense_id from pharmacy.dispensing x join pharmacy.drug_prices p "
    "on p.drug_code = x.drug_code and x.dispensed_at::date >= p.valid_from "
    "and (p.valid_to is null or x.dispensed_at::date < p.valid_to) "
    "where x.unit_price <> p.unit_price",
    "duplicate_dispensing": "select b.dispense_id from pharmacy.dispensing a "
    "join pharmacy.dispensing b on a.line_id = b.line_id and a.dispense_id < b.dispense_id "
    "and a.quantity = b.quantity and a.unit_price = b.unit_price "
    "and a.dispensed_at = b.dispensed_at and a.is_return = b.is_return",
}


@pytest.mark.parametrize("kind", sorted(pharmacy.DEFECT_KINDS))
def test_each_defect_kind_is_present_and_manifested(dbs, kind):
    _, conn = dbs
    manifest = "select record_id from sim.defect_manifest where kind = %s"
    listed = sorted(r[0] for r in _all(conn, manifest, (kind,)))
    assert listed, kind
    if kind == "strength_in_grams":
        cat = drugs.catalogue()
        clean = dict(zip(cat.drug_code.tolist(), cat.strength_mg.tolist(), strict=True))
        rows = _all(conn, "select drug_id, drug_code, strength_mg from pharmacy.drugs "
                          "where strength_mg is not null")  # fmt: skip
        found = sorted(i for i, c, s in rows if not np.isclose(float(s), clean[c]))
    else:
        found = sorted(r[0] for r in _all(conn, DEFECT_QUERIES[kind]))
    assert found == listed


def test_manifest_clean_values_restore_the_rows(dbs):
    _, conn = dbs
    assert (
        _one(
            conn,
            "select count(*) from sim.defect_manifest m join pharmacy.dispensing d "
            "on d.dispense_id = m.record_id where m.kind = 'price_100x' "
            "and d.unit_price <> 100 * m.clean_value::numeric",
        )
        == 0
    )
    assert (
        _one(
            conn,
            "select count(*) from sim.defect_manifest m join pharmacy.dispensing d "
            "on d.dispense_id = m.record_id where m.kind = 'negative_quantity' "
            "and d.quantity <> -m.clean_value::numeric",
        )
        == 0
    )


def test_catalogue_codes_and_ddds(dbs):
    _, conn = dbs
    n = _one(conn, "select count(*) from pharmacy.drugs")
    unmapped = _one(conn, "select count(*) from pharmacy.drugs where atc_code is null")
    j01 = _one(conn, "select count(*) from pharmacy.drugs where atc_code like 'J01%%'")
    assert 150 <= int(n) <= 300
    assert 0.03 <= int(unmapped) / int(n) <= 0.08
    assert int(j01) >= 30
    amox = _all(
        conn,
        "select ddd_value, ddd_unit, route from pharmacy.drugs where atc_code = 'J01CA04' limit 1",
    )
    assert [(float(a), b, c) for a, b, c in amox] == [(1.5, "g", "O")]
    assert _one(conn, "select count(*) from pharmacy.drug_prices where reason <> 'initial'") > 0
    assert _one(conn, "select count(*) from pharmacy.purchase_orders") > 0
    assert _one(conn, "select count(*) from pharmacy.dispensing where is_return") > 0


@pytest.fixture(scope="module")
def season(pg_admin_dsn):
    """An autumn-to-winter HIS and its pharmacy."""
    his_conn = _db(pg_admin_dsn, "t_ph_season_his")
    his.generate(his_conn, his.SimConfig(seed=2, scale=0.01, first_day=date(2024, 10, 1),
                                         history_days=120))  # fmt: skip
    ph_conn = _db(pg_admin_dsn, "t_ph_season")
    pharmacy.generate(ph_conn, his_conn, pharmacy.PharmacyConfig(seed=4))
    yield ph_conn
    his_conn.close()
    ph_conn.close()
    _drop(pg_admin_dsn, "t_ph_season_his", "t_ph_season")


def test_respiratory_drugs_peak_in_winter(season):
    rows = dict(
        _all(
            season,
            "select date_trunc('month', x.dispensed_at)::date, "
            "sum(x.quantity) filter (where d.atc_code like 'R%%') / sum(x.quantity) "
            "from pharmacy.dispensing x join pharmacy.drugs d using (drug_code) "
            "where not x.is_return and x.quantity > 0 group by 1",
        )
    )
    october, january = float(rows[date(2024, 10, 1)]), float(rows[date(2025, 1, 1)])
    assert january > 1.15 * october, rows


def test_outpatient_antibiotic_share_in_range(season):
    share = _one(
        season,
        "select avg(has::int) from (select p.prescription_id, bool_or(d.atc_code like 'J01%%') "
        "has from pharmacy.prescriptions p join pharmacy.prescription_lines l "
        "using (prescription_id) left join pharmacy.drugs d using (drug_code) "
        "where p.encounter_type = 'OP' group by 1) x",
    )
    assert 0.10 <= float(share) <= 0.25


def test_advance_day_follows_the_his(pg_admin_dsn):
    his_conn = _db(pg_admin_dsn, "t_ph_adv_his")
    ph_conn = _db(pg_admin_dsn, "t_ph_adv")
    try:
        his.generate(his_conn, his.SimConfig(seed=8, scale=0.01, history_days=10))
        pharmacy.generate(ph_conn, his_conn, pharmacy.PharmacyConfig(seed=1))
        before = pharmacy.table_counts(ph_conn)
        assert pharmacy.advance_day(ph_conn, his_conn) == {"days": 0}
        his.advance_day(his_conn)
        his.advance_day(his_conn)
        counts = pharmacy.advance_day(ph_conn, his_conn)
        assert counts["days"] == 2
        after = pharmacy.table_counts(ph_conn)
        for t in ("prescriptions", "prescription_lines", "dispensing", "stock_batches"):
            assert after[t] > before[t], t
        assert _one(ph_conn, "select current_day from sim.clock") == date(2024, 1, 12)
        kinds = {r[0] for r in _all(ph_conn, "select distinct kind from sim.change_log")}
        assert {"new", "correction"} <= kinds
        # corrections moved updated_at past the old watermark
        assert (
            _one(
                ph_conn,
                "select count(*) from pharmacy.drugs where updated_at >= date '2024-01-11'",
            )
            >= 1
        )
        assert (
            _one(
                ph_conn,
                "select count(*) from pharmacy.dispensing d "
                "left join pharmacy.prescription_lines l using (line_id) where l.line_id is null",
            )
            == 0
        )
        new = _one(ph_conn, "select count(*) from sim.change_log where kind = 'new'")
        added = sum(after[t] - before[t] for t in after)
        assert new == added
    finally:
        his_conn.close()
        ph_conn.close()
        _drop(pg_admin_dsn, "t_ph_adv_his", "t_ph_adv")
