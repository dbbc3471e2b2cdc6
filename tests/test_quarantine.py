"""Row-level quarantine, replay, write-audit-publish under a crash, freshness, volume checks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hdp.config import load_settings
from hdp.ingest.freshness import check_freshness
from hdp.quality.gate import GateResult, replay_quarantine
from hdp.warehouse.database import connect
from hdp_sim import his
from tests.pipeline import CLEAR_KEY, ingest

REPO = Path(__file__).resolve().parents[1]
# simulator defect kind → the catalogue checks that must find exactly its rows
ROW_DEFECTS = {
    "negative_fee": {
        "his.outpatient_visits.fee_not_negative",
        "his.inpatient_admissions.cost_not_negative",
    },
    "discharge_before_admission": {"his.inpatient_admissions.discharge_after_admission"},
    "future_birth_date": {"his.patients.birth_date_not_future"},
    "invalid_id_card_checksum": {"his.patients.id_card_checksum"},
    "nonstandard_gender_code": {"his.patients.gender_code"},
    "nonstandard_date_format": {"his.patients.birth_date_format"},
}


@pytest.fixture
def generated(platform):
    owner = connect(platform.his_owner)
    his.generate(owner, his.SimConfig(seed=23, scale=0.03, history_days=21, defect_rate=0.01))
    owner.close()
    return platform


def _rows(login, query: str, params=()):
    conn = connect(login)
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall() if cur.description else []
    conn.commit()
    conn.close()
    return rows


def test_quarantine_counts_equal_the_simulators_manifest(generated):
    outcome = ingest(generated, "run-1")
    assert all(isinstance(r, GateResult) for r in outcome.values()), outcome
    for kind, check_ids in ROW_DEFECTS.items():
        injected = set(
            _rows(
                generated.his_owner,
                "select table_name, record_id::text from sim.defect_manifest where kind = %s",
                (kind,),
            )
        )
        found = set(
            _rows(
                generated.warehouse,
                f"select table_name, {CLEAR_KEY} from audit.row_issue as i "
                "where check_id = any(%s)",
                (list(check_ids),),
            )
        )
        assert injected, f"the simulator injected no {kind}"
        assert found == injected, f"{kind}: {len(found)} found, {len(injected)} injected"
    # quarantined rows are counted per batch and never reach staging
    counted = _rows(generated.warehouse, "select sum(rows_quarantined) from audit.load_batch")
    held = _rows(
        generated.warehouse,
        "select count(distinct (batch_id, record_key)) from audit.row_issue "
        "where action = 'quarantine'",
    )
    assert counted[0][0] == held[0][0] > 0
    # reports name the check and the key, never the value
    columns = {
        c
        for (c,) in _rows(
            generated.warehouse,
            "select column_name from information_schema.columns "
            "where table_schema = 'audit' and table_name = 'row_issue'",
        )
    }
    assert not {"fee", "value", "name", "id_card_no"} & columns


def test_replay_releases_rows_after_the_check_is_fixed(generated, tmp_path):
    ingest(generated, "run-1")
    settings = load_settings()
    wh = connect(generated.loader)
    # nothing changed: replay releases nothing
    unchanged = replay_quarantine(wh, source="his", expectations_dir=settings.expectations_dir)
    assert unchanged and all(released == 0 and held > 0 for released, held in unchanged.values())
    # the fee check was too strict (say, negative fees are refunds after all): fix it, replay
    fixed = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, fixed)
    catalogue = fixed / "his.yml"
    catalogue.write_text(
        catalogue.read_text(encoding="utf-8").replace(
            "fails_when: fee < 0", "fails_when: fee < -1e9"
        ),
        encoding="utf-8",
    )
    outcome = replay_quarantine(wh, source="his", expectations_dir=fixed)
    wh.close()
    released, held = outcome["his.outpatient_visits.fee_not_negative"]
    assert released > 0 and held == 0
    assert outcome["his.inpatient_admissions.cost_not_negative"][0] == 0
    still = _rows(
        generated.warehouse,
        "select count(*) from audit.row_issue where check_id = %s and released_at is null",
        ("his.outpatient_visits.fee_not_negative",),
    )
    assert still == [(0,)]


CRASHER = """
import sys, time
from hdp_sim.sources import logins
from tests.pipeline import ingest
ingest(logins(), sys.argv[1], publish=False)   # extract + validate every table
print("validated", flush=True)
time.sleep(600)                                  # killed here, before publish
"""


def test_kill_between_validation_and_publish_leaves_nothing_half_done(generated):
    lg = generated
    ingest(lg, "run-1")
    owner = connect(lg.his_owner)
    his.advance_day(owner)
    owner.close()

    def published_view() -> list[tuple]:
        return _rows(
            lg.warehouse,
            "select table_name, count(*), sum(rows_written) from audit.load_batch "
            "where status = 'published' group by 1 order by 1",
        )

    before = published_view()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CRASHER), "run-2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "validated"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # validated, not published: the warehouse's published state is as it was
    assert _rows(
        lg.warehouse, "select distinct status from audit.load_batch where run_id = 'run-2'"
    ) == [("passed",)]
    assert published_view() == before
    # the rerun of the same run finishes the job: each table's batch published once
    outcome = ingest(lg, "run-2")
    assert all(isinstance(r, GateResult) for r in outcome.values()), outcome
    after = _rows(
        lg.warehouse,
        "select table_name, count(*) from audit.load_batch where run_id = 'run-2' "
        "and status = 'published' group by 1",
    )
    assert len(after) == len(outcome) and all(n == 1 for _, n in after)
    new_visits = _rows(
        lg.warehouse,
        "select count(*), count(distinct r.visit_id) from raw_his.outpatient_visits r "
        "join audit.load_batch b on b.batch_id = r._batch_id where b.run_id = 'run-2'",
    )
    assert new_visits[0][0] == new_visits[0][1] > 0  # no duplicate rows from the crashed try


def test_a_source_that_stops_delivering_raises_a_freshness_alert(generated):
    ingest(generated, "run-1")
    wh = connect(generated.loader)
    fresh = check_freshness(wh, source="his", run_id="run-1", max_age_hours=26)
    assert not fresh.is_stale and fresh.age_hours < 1
    # nothing delivered for 30 hours
    _rows(generated.warehouse, "update audit.load_batch set finished_at = now() - interval '30 h'")
    stale = check_freshness(wh, source="his", run_id="run-2", max_age_hours=26)
    wh.close()
    assert stale.is_stale and "STALE" in stale.message() and "26 h" in stale.message()
    recorded = _rows(
        generated.warehouse, "select run_id, is_stale from audit.freshness_check order by 1"
    )
    assert recorded == [("run-1", False), ("run-2", True)]


def test_volume_drop_against_recent_runs_is_reported(generated):
    from hdp.quality.checks import load_catalogue
    from hdp.quality.gate import volume_check

    ingest(generated, "run-1")
    check = {c.id: c for c in load_catalogue(load_settings().expectations_dir, "his")}[
        "volume.vs_recent"
    ]
    # seven published daily batches of ~100 rows, then one of 3
    _rows(
        generated.warehouse,
        "insert into audit.load_batch (source, table_name, run_id, low_watermark, rows_read, "
        "status) select 'his', 'outpatient_visits', 'day-' || d, now(), 100 + d, 'published' "
        "from generate_series(1, 7) d",
    )
    low = _rows(
        generated.warehouse,
        "insert into audit.load_batch (source, table_name, run_id, low_watermark, rows_read, "
        "status) values ('his', 'outpatient_visits', 'day-8', now(), 3, 'loaded') "
        "returning batch_id",
    )[0][0]
    wh = connect(generated.loader)
    result = volume_check(wh, batch_id=low, source="his", table="outpatient_visits", check=check)
    wh.close()
    assert not result.success and result.status == "warn"
    assert "0.03×" in result.observed and "104" in result.observed
