"""Quality history: new / persisting / resolved failures across runs, and the quality page."""

from __future__ import annotations

from hdp.orchestration.quality_app import render
from hdp.quality import history as quality_history
from hdp.warehouse.database import connect
from hdp_sim import his
from tests.pipeline import ingest

BUMP = "updated_at = (select max(updated_at) from his.outpatient_visits) + interval '1 min'"


def _source(lg, statement: str) -> None:
    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        cur.execute(statement)
    owner.commit()
    owner.close()


def _changes(lg) -> set[tuple[str, str | None, str]]:
    wh = connect(lg.warehouse)
    try:
        return {
            (c.table, c.column, c.change)
            for c in quality_history.changes(wh)
            if c.table == "outpatient_visits"
        }
    finally:
        wh.close()


def test_failures_are_new_then_persisting_then_resolved(platform):
    lg = platform
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=21, scale=0.02, history_days=10))
    owner.close()
    ingest(lg, "run-1")
    assert _changes(lg) == set()

    _source(
        lg,
        f"update his.outpatient_visits set visit_type = 'general', {BUMP} where visit_id % 3 = 0",
    )
    ingest(lg, "run-2")
    assert _changes(lg) == {("outpatient_visits", "visit_type", "new")}

    _source(lg, f"update his.outpatient_visits set dept_code = null, {BUMP} where visit_id % 2 = 0")
    ingest(lg, "run-3")
    assert _changes(lg) == {
        ("outpatient_visits", "visit_type", "persisting"),
        ("outpatient_visits", "dept_code", "new"),
    }

    _source(
        lg,
        f"update his.outpatient_visits set visit_type = '普通', {BUMP} "
        "where visit_type = 'general'",
    )
    ingest(lg, "run-4")
    assert _changes(lg) == {
        ("outpatient_visits", "visit_type", "resolved"),
        ("outpatient_visits", "dept_code", "persisting"),
    }

    wh = connect(lg.warehouse)
    latest = {t.table: t for t in quality_history.latest(wh)}
    assert latest["outpatient_visits"].status == "rejected"
    assert latest["patients"].status == "withheld"  # held back with the failing table
    page = render(wh)
    wh.close()
    assert "outpatient_visits" in page and "resolved" in page and "persisting" in page
    assert "failing" in page  # the HIS source as a whole is failing
    wh = connect(lg.warehouse)
    run_page = render(wh, "run-4")  # the DAG run's "Data quality of this run" tab
    wh.close()
    assert "This run: run-4" in run_page and "withheld" in run_page and "rejected" in run_page
    # aggregates only: no identifier-like value of the source reaches the page
    owner = connect(lg.his_owner)
    with owner.cursor() as cur:
        cur.execute("select id_card_no, phone from his.patients limit 200")
        values = [v for row in cur.fetchall() for v in row if v]
    owner.close()
    assert not [v for v in values if v in page]
