"""HIS → raw → gate → dbt star schema, end to end without Airflow (real dbt, real GX)."""

from __future__ import annotations

import pytest

from hdp.quality.gate import QualityGateFailed
from hdp.runtime.dbt import run_dbt
from hdp.warehouse.database import connect
from tests.pipeline import CLEAR_KEY, ingest, marts_fingerprint


@pytest.fixture(scope="module")
def built(built_warehouse):
    """The session's built warehouse (tests/conftest.py), restored: this module changes it."""
    return built_warehouse


def _scalar(lg, query: str):
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query)
        value = cur.fetchone()[0]
    wh.close()
    return value


def test_dbt_build_passes_every_test_and_contract(built):
    _, build = built
    assert "ERROR=0" in build.stdout.replace(" ", "")
    assert "Completed successfully" in build.stdout


@pytest.mark.parametrize(
    "mart",
    ["dim_patient", "dim_doctor", "dim_department", "dim_date", "fct_encounter", "fct_diagnosis"],
)
def test_marts_hold_rows(built, mart):
    lg, _ = built
    assert _scalar(lg, f"select count(*) from marts.{mart}") > 0


def test_every_source_encounter_reaches_the_fact_once(built):
    lg, _ = built
    src = connect(lg.his_owner)  # sim.* (ground truth) is the simulator's, not the reader's
    with src.cursor() as cur:
        cur.execute(
            "select (select count(*) from his.outpatient_visits) "
            "+ (select count(*) from his.inpatient_admissions)"
        )
        source_encounters = cur.fetchone()[0]
        cur.execute(
            "select record_id::text, clean_value from sim.defect_manifest "
            "where kind = 'duplicate_visit'"
        )
        duplicate_pairs = cur.fetchall()
    src.close()
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            f"select table_name, {CLEAR_KEY} from audit.row_issue as i "
            "where action = 'quarantine' "
            "and table_name in ('outpatient_visits', 'inpatient_admissions')"
        )
        quarantined = set(cur.fetchall())
    wh.close()
    held_visits = {key for table, key in quarantined if table == "outpatient_visits"}
    # a duplicate collapses into its original when both are published
    collapsed = sum(1 for dup, orig in duplicate_pairs if not {dup, orig} & held_visits)
    facts = _scalar(lg, "select count(*) from marts.fct_encounter")
    # quarantined rows are held back, duplicate visits collapse; nothing else is dropped
    assert quarantined and duplicate_pairs
    assert facts == source_encounters - len(quarantined) - collapsed
    assert (
        _scalar(lg, "select count(*) - count(distinct encounter_key) from marts.fct_encounter") == 0
    )


def test_duplicate_registrations_become_one_patient(built):
    lg, _ = built
    src = connect(lg.his_owner)
    with src.cursor() as cur:
        cur.execute(
            "select count(*) from sim.defect_manifest where kind = 'duplicate_registration'"
        )
        duplicates = cur.fetchone()[0]
    src.close()
    assert duplicates > 0
    merged = _scalar(lg, "select count(*) from marts.dim_patient where his_record_count > 1")
    assert merged >= 1


def test_no_direct_identifier_in_marts(built):
    lg, _ = built
    columns = {
        c
        for (c,) in _rows(
            lg,
            "select column_name from information_schema.columns where table_schema = 'marts'",
        )
    }
    assert not columns & {"name", "id_card_no", "phone", "address", "mrn", "patient_name"}
    src = connect(lg.his_reader)
    with src.cursor() as cur:
        cur.execute("select id_card_no from his.patients where id_card_no is not null limit 50")
        cards = [c for (c,) in cur.fetchall()]
    src.close()
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute("select string_agg(t::text, '|') from marts.dim_patient t")
        dump = cur.fetchone()[0]
    wh.close()
    assert not [c for c in cards if c in dump]


def _rows(lg, query: str):
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    wh.close()
    return rows


def test_failed_gate_leaves_marts_unchanged(built):
    lg, _ = built
    before = marts_fingerprint(lg)
    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        # a faulty source release blanks the department of most new visits and recodes fees
        cur.execute(
            "update his.outpatient_visits set dept_code = null, fee = -fee, "
            "updated_at = (select max(updated_at) from his.outpatient_visits) + interval '1 min' "
            "where visit_id % 2 = 0"
        )
    owner.commit()
    owner.close()
    outcome = ingest(lg, "run-bad")
    failure = outcome["outpatient_visits"]
    assert isinstance(failure, QualityGateFailed)
    assert "outpatient_visits" in str(failure)
    assert "dept_code" in str(failure)
    # even if someone runs dbt now, the rejected batch is not published
    run_dbt("build")
    assert marts_fingerprint(lg) == before


def test_cleaning_rule_counts_match_the_injected_defects(built):
    """Each cleaning rule's count of changed values equals what the simulator injected."""
    lg, _ = built
    src = connect(lg.his_owner)
    with src.cursor() as cur:
        cur.execute("select kind, count(*) from sim.defect_manifest group by 1")
        injected = dict(cur.fetchall())
    src.close()
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select rule_id, values_changed from marts.mart_cleaning_rule_counts "
            "where built_at = (select max(built_at) from marts.mart_cleaning_rule_counts)"
        )
        changed = dict(cur.fetchall())
    wh.close()
    assert changed["his.patients.name.halfwidth"] == injected["fullwidth_name"] > 0
    # an ideographic space becomes a space that the whitespace rule then removes
    assert (
        changed["his.patients.name.whitespace"]
        == injected["stray_whitespace"] + injected["fullwidth_name"]
    )
    assert changed["his.patients.birth_date.format"] == injected["nonstandard_date_format"]
    assert changed["his.patients.birth_date.implausible"] == injected["future_birth_date"]
    assert changed["his.diagnoses.icd10_code.canonical"] == injected["nonstandard_icd_format"]
