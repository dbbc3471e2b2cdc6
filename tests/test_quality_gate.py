"""The GX gate against real PostgreSQL: clean data passes, defects that matter block."""

from __future__ import annotations

import pytest

from hdp.quality.gate import GateResult, QualityGateFailed
from hdp.warehouse.database import connect
from hdp_sim import his
from tests.pipeline import ingest


@pytest.fixture
def generated(platform):
    owner = connect(platform.his_owner)
    his.generate(owner, his.SimConfig(seed=11, scale=0.02, history_days=14))
    owner.close()
    return platform


def _rows(lg, query: str, params=()):
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    wh.close()
    return rows


def test_simulated_source_with_realistic_defects_passes(generated):
    outcome = ingest(generated, "run-1")
    failures = {t: str(r) for t, r in outcome.items() if not isinstance(r, GateResult)}
    assert failures == {}
    statuses = _rows(generated, "select distinct status from audit.load_batch")
    assert statuses == [("published",)]
    # every check of every table is stored, with its observed value
    stored = _rows(
        generated,
        "select table_name, count(*), bool_and(status <> 'fail' and check_id is not null) "
        "from audit.quality_result group by 1",
    )
    assert {t for t, _, _ in stored} == set(outcome)
    assert all(n >= 5 and ok for _, n, ok in stored)


def test_broken_codes_block_the_batch_and_name_the_check(generated):
    ingest(generated, "run-1")
    owner = connect(generated.his_owner)
    with owner.cursor() as cur:
        # a source upgrade starts writing English visit types into a third of the visits
        cur.execute(
            "update his.outpatient_visits set visit_type = 'general', "
            "updated_at = (select max(updated_at) from his.outpatient_visits) + interval '1 min' "
            "where visit_id % 3 = 0"
        )
    owner.commit()
    owner.close()
    outcome = ingest(generated, "run-2")
    failure = outcome["outpatient_visits"]
    assert isinstance(failure, QualityGateFailed)
    message = str(failure)
    assert "his.outpatient_visits" in message
    assert "his.outpatient_visits.visit_type_code on column visit_type" in message
    assert "fix: " in message  # the catalogue's advice
    assert "index.html" in message  # where to look
    assert all(isinstance(r, GateResult) for t, r in outcome.items() if t != "outpatient_visits")
    status = _rows(
        generated,
        "select status, error from audit.load_batch "
        "where run_id = 'run-2' and table_name = 'outpatient_visits'",
    )
    assert status[0][0] == "rejected"
    assert "visit_type" in status[0][1]
    # write-audit-publish: the run's other tables passed but are held back with it
    others = _rows(
        generated,
        "select distinct status from audit.load_batch "
        "where run_id = 'run-2' and table_name <> 'outpatient_visits'",
    )
    assert others == [("withheld",)]


def test_lost_rows_fail_reconciliation_with_the_source(generated):
    from hdp.config import load_settings
    from hdp.ingest.extract import extract_table
    from hdp.manifest import load_manifest
    from hdp.quality.gate import validate_batch

    manifest = load_manifest("his")
    src, wh = connect(generated.his_reader), connect(generated.loader)
    loaded = extract_table(src, wh, manifest, "patients", "run-1")
    with wh.cursor() as cur:  # rows vanish between load and gate
        cur.execute("delete from raw_his.patients where patient_id % 10 = 0")
    wh.commit()
    settings = load_settings()
    with pytest.raises(QualityGateFailed, match=r"volume\.reconciled"):
        validate_batch(
            wh,
            warehouse_url=generated.loader.url,
            quality_dir=settings.quality_dir,
            expectations_dir=settings.expectations_dir,
            batch_id=loaded.batch_id,
            source="his",
            table="patients",
            primary_key=["patient_id"],
            watermark=manifest.table("patients").watermark,
        )
    src.close()
    wh.close()


def test_the_card_and_date_checks_survive_a_parallel_plan(platform):
    """Staging calls audit.is_valid_cn_id_card on every patient; at hospital scale PostgreSQL
    plans such a scan in parallel workers, where a function with an EXCEPTION block (the date
    parser) fails with 'cannot start subtransactions during a parallel operation'. Forced into
    a parallel plan, the checks still answer (they are labelled parallel unsafe)."""
    wh = connect(platform.warehouse)
    try:
        with wh.cursor() as cur:
            for setting in (
                "force_parallel_mode = on",
                "parallel_setup_cost = 0",
                "parallel_tuple_cost = 0",
                "min_parallel_table_scan_size = 0",
            ):
                cur.execute(f"set local {setting}")
            base = "11010519491231002"
            weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
            check = "10X98765432"[sum(int(d) * w for d, w in zip(base, weights, strict=True)) % 11]
            wrong = "0" if check != "0" else "1"
            cur.execute(
                "create temp table cards as select %s || case when g %% 2 = 0 then %s else %s "
                "end as no from generate_series(1, 20000) g",
                (base, check, wrong),
            )
            cur.execute("analyze cards")
            cur.execute(
                "select count(*) filter (where audit.is_valid_cn_id_card(no)), "
                "count(*) filter (where audit.parse_cn_date(substr(no, 7, 8)) is not null) "
                "from cards"
            )
            valid, dated = cur.fetchone()
    finally:
        wh.close()
    assert dated == 20000
    assert valid == 10000  # every other number carries the right check digit
