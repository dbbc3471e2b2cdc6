"""HIS + pharmacy → raw → gate → dbt medication star and analysis marts (real PostgreSQL, dbt, GX).

Every pharmacy defect the simulator injects (sim.defect_manifest) must be caught: quarantined
by the gate (audit.row_issue, checks of expectations/pharmacy.yml) or fixed and flagged by the
dbt models. Assertions compare counts and key sets, never print row values.
"""

from __future__ import annotations

import pytest

from hdp.warehouse.database import connect
from hdp_sim import pharmacy
from tests.pipeline import CLEAR_KEY

PHARMACY_MARTS = (
    "dim_medication",
    "mart_unmapped_drug_codes",
    "fct_prescription_line",
    "fct_dispensing",
    "fct_purchase",
    "fct_stock_snapshot",
    "mart_drug_consumption_monthly",
    "mart_drug_abc_xyz",
    "mart_reorder_point",
    "mart_antibiotic_use_monthly",
    "mart_drug_share_monthly",
)


@pytest.fixture(scope="module")
def built(built_warehouse):
    """The session's built warehouse (tests/conftest.py: this simulation), restored."""
    lg, build = built_warehouse
    pharmacy_owner = connect(lg.pharmacy_owner)
    with pharmacy_owner.cursor() as cur:
        cur.execute("select kind, record_id, clean_value from sim.defect_manifest")
        manifest: dict[str, dict[int, str | None]] = {}
        for kind, record_id, clean in cur.fetchall():
            manifest.setdefault(kind, {})[record_id] = clean
    pharmacy_owner.close()
    return lg, build, manifest


def _rows(lg, query: str, params=None) -> list[tuple]:
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    wh.close()
    return rows


def _keys(lg, query: str, params=None) -> set[int]:
    return {int(k) for (k,) in _rows(lg, query, params)}


def test_dbt_build_passes_every_test_and_contract(built):
    _, build, _ = built
    assert "ERROR=0" in build.stdout.replace(" ", "")
    assert "Completed successfully" in build.stdout


@pytest.mark.parametrize("mart", PHARMACY_MARTS)
def test_pharmacy_marts_hold_rows(built, mart):
    lg, _, _ = built
    assert _rows(lg, f"select count(*) from marts.{mart}")[0][0] > 0


def test_every_defect_kind_is_injected(built):
    _, _, manifest = built
    assert set(manifest) == set(pharmacy.DEFECT_KINDS)
    assert all(manifest.values())


@pytest.mark.parametrize(
    ("kind", "table", "check_id"),
    [
        ("zero_quantity", "prescription_lines", "pharmacy.prescription_lines.quantity_positive"),
        ("negative_quantity", "dispensing", "pharmacy.dispensing.negative_only_for_returns"),
    ],
)
def test_gate_quarantines_row_defects(built, kind, table, check_id):
    lg, _, manifest = built
    held = _keys(
        lg,
        f"select {CLEAR_KEY} from audit.row_issue as i where source = 'pharmacy' "
        "and table_name = %s "
        "and check_id = %s and action = 'quarantine'",
        (table, check_id),
    )
    assert held == set(manifest[kind])


def test_unit_mixups_are_corrected_and_flagged(built):
    lg, _, manifest = built
    flagged = _keys(lg, "select line_id from marts.fct_prescription_line where is_unit_mixup")
    assert flagged == set(manifest["unit_mixup"])
    assert not _rows(
        lg, "select 1 from marts.fct_prescription_line where unit = '盒' and is_unit_mixup"
    )


def test_unknown_drug_codes_are_kept_and_point_at_the_unknown_member(built):
    lg, _, manifest = built
    flagged = _keys(
        lg,
        "select line_id from marts.fct_prescription_line "
        "where has_unknown_drug and medication_key = '-1'",
    )
    assert flagged == set(manifest["unknown_drug_code"])
    # and the worklist lists them, biggest first
    listed = _rows(
        lg, "select count(*) from marts.mart_unmapped_drug_codes where reason = 'unknown_code'"
    )[0][0]
    assert listed == len(
        _rows(
            lg,
            "select distinct drug_code_recorded from marts.fct_prescription_line "
            "where has_unknown_drug",
        )
    )


def test_strength_in_grams_is_fixed_to_mg(built):
    lg, _, manifest = built
    fixed = {
        int(code[1:]): strength
        for code, strength in _rows(
            lg,
            "select drug_code, strength_mg from marts.dim_medication "
            "where strength_check = 'fixed_from_grams'",
        )
    }
    assert set(fixed) == set(manifest["strength_in_grams"])
    assert all(
        float(fixed[drug_id]) == pytest.approx(float(clean))
        for drug_id, clean in manifest["strength_in_grams"].items()
    )


def test_prices_typed_100x_are_fixed(built):
    lg, _, manifest = built
    # dispense_id is the source's record id, text in the standard (std_dispensing)
    fixed = {
        int(i): price
        for i, price in _rows(
            lg, "select dispense_id, unit_price from marts.fct_dispensing where is_price_100x"
        )
    }
    assert set(fixed) == set(manifest["price_100x"])
    assert all(
        float(fixed[i]) == pytest.approx(float(clean))
        for i, clean in manifest["price_100x"].items()
    )


def test_resent_dispensing_rows_collapse(built):
    lg, _, manifest = built
    copies = set(manifest["duplicate_dispensing"])
    originals = {int(v) for v in manifest["duplicate_dispensing"].values()}
    present = _keys(lg, "select dispense_id from marts.fct_dispensing")
    assert not copies & present
    assert originals <= present
    collapsed = _rows(lg, "select sum(duplicates_collapsed) from marts.fct_dispensing")[0][0]
    assert collapsed == len(copies)


def test_returns_stay_negative_and_net_out(built):
    lg, _, _ = built
    returns, wrong_sign = _rows(
        lg,
        "select count(*) filter (where is_return), "
        "count(*) filter (where (quantity < 0) <> is_return) from marts.fct_dispensing",
    )[0]
    assert returns > 0 and wrong_sign == 0


def test_abc_shares_sum_to_one_and_classes_follow_thresholds(built):
    lg, _, _ = built
    # classified within each institution and for the group ('ALL', by ATC code): the shares
    # sum to one in each (with one institution, two classifications)
    per_institution = _rows(
        lg,
        "select institution_id, sum(value_share), max(cumulative_share), "
        "count(*) filter (where abc_class = 'A' and cumulative_share > 0.8) "
        "from marts.mart_drug_abc_xyz group by institution_id",
    )
    assert {row[0] for row in per_institution} == {"H001", "ALL"}
    for _, total, max_cum, a_over in per_institution:
        assert float(total) == pytest.approx(1.0, abs=1e-4)
        assert float(max_cum) == pytest.approx(1.0, abs=1e-6)
        assert a_over == 0
    classes = dict(
        _rows(
            lg,
            "select abc_class, count(*) from marts.mart_drug_abc_xyz "
            "where institution_id = 'H001' group by 1",
        )
    )
    assert set(classes) == {"A", "B", "C"}
    # Pareto: the A drugs are a minority of the drugs
    assert classes["A"] < classes["C"]


def test_antibiotic_indicators_are_plausible(built):
    lg, _, _ = built
    rows = _rows(
        lg,
        "select ddd_per_100_patient_days, outpatient_antibiotic_share, patient_days "
        "from marts.mart_antibiotic_use_monthly where department_key = 'ALL' "
        "and patient_days >= 100",
    )
    assert rows
    for density, share, _ in rows:
        assert 5 <= float(density) <= 250
        assert 0.03 <= float(share) <= 0.6


def test_drug_share_and_reorder_point_are_consistent(built):
    lg, _, _ = built
    bad_share = _rows(
        lg,
        "select count(*) from marts.mart_drug_share_monthly "
        "where drug_cost_share not between 0 and 1 or essential_drug_share not between 0 and 1",
    )[0][0]
    assert bad_share == 0
    bad_rop = _rows(
        lg,
        "select count(*) from marts.mart_reorder_point r join marts.dim_medication m "
        "using (medication_key) where r.suggested_order_qty < 0 "
        "or mod(r.suggested_order_qty, m.pack_size) <> 0 "
        "or r.reorder_point < r.avg_daily_demand * r.lead_time_days",
    )[0][0]
    assert bad_rop == 0
    assert _rows(lg, "select count(*) from marts.mart_reorder_point where needs_reorder")[0][0] > 0


def test_no_his_identifier_in_pharmacy_marts(built):
    lg, _, _ = built
    columns = {
        c
        for (c,) in _rows(
            lg,
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = any(%s)",
            (list(PHARMACY_MARTS),),
        )
    }
    assert not columns & {
        "patient_id",
        "id_card_no",
        "name",
        "patient_name",
        "mrn",
        "phone",
        "address",
    }
    src = connect(lg.his_reader)
    with src.cursor() as cur:
        cur.execute("select id_card_no, patient_id::text, name from his.patients")
        identifiers = {v for row in cur.fetchall() for v in row if v}
    src.close()
    keys = {
        k
        for mart in ("fct_prescription_line", "fct_dispensing")
        for (k,) in _rows(lg, f"select distinct patient_key from marts.{mart}")
    }
    leaked = len(keys & identifiers)  # a count: never put identifiers in an assertion message
    assert leaked == 0
