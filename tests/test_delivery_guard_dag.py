"""The delivery guard through the real hdp_ingest_lis DAG (`airflow dags test`), as the operator
meets it: a re-delivery of yesterday's results whose dates now carry a weekday suffix is held
(the run is red, naming the reason and the command), the day's other file publishes; clearing
and rerunning the run's tasks keeps it held and duplicates nothing; after `quality release`
the rerun publishes it once. The files are generated here (not by our LIS simulator)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hdp.config import REPO_ROOT
from hdp.ingest.files import drop_dir
from hdp.manifest import load_manifest
from hdp.warehouse.database import connect
from hdp_sim.sources import logins

LIS = load_manifest("lis")
ROWS = 40


def _rows(start: int, day: int, weekday: str = "") -> list[str]:
    """Glucose results of outpatients; `weekday`: a suffix written after each date."""
    stamp = f"2025-08-{day:02d}{' ' + weekday if weekday else ''}"
    return [
        ",".join(
            [
                f"X{i:06d}",
                f"O{i:06d}",
                str(700000 + i),
                "OP",
                str(900000 + i),
                "",
                "GLU",
                "葡萄糖",
                "血清",
                f"{4 + i % 30 / 10:.1f}",
                "mmol/L",
                "3.9-6.1",
                "",
                f"{stamp} 08:{i % 60:02d}",
                f"{stamp} 10:{i % 60:02d}",
            ]
        )
        for i in range(start, start + ROWS)
    ]


def _write(name: str, lines: list[str]) -> None:
    folder = drop_dir(LIS)
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(LIS.tables[0].columns)
    (folder / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def _airflow(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["airflow", *args], env=env, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900
    )


def _scalar(query: str, params=()):
    wh = connect(logins().warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        value = cur.fetchall()
    wh.close()
    return value


@pytest.mark.timeout(1800)
def test_a_held_delivery_turns_the_run_red_stays_held_on_rerun_and_publishes_once(airflow_env):
    shutil.rmtree(drop_dir(LIS), ignore_errors=True)
    _write("lis_results_20250801.csv", _rows(0, 1))
    first = _airflow(airflow_env, "dags", "test", "hdp_ingest_lis", "2025-08-01")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]

    # day 2: a new file, and yesterday's results again with a weekday after every date
    _write("lis_results_20250802.csv", _rows(ROWS, 2))
    _write("lis_results_20250801_resent.csv", _rows(0, 1, weekday="星期五"))
    second = _airflow(airflow_env, "dags", "test", "hdp_ingest_lis", "2025-08-02")
    output = second.stdout + second.stderr
    assert second.returncode != 0, output[-4000:]  # red
    ((held_batch, run_key, status),) = _scalar(
        "select b.batch_id, b.run_id, b.status from audit.load_batch as b "
        "inner join audit.held_delivery as h on h.batch_id = b.batch_id"
    )
    assert status == "held"
    run_2 = run_key.rsplit(":", 2)[0]  # <dag run id>:<file name>:<sha256 prefix>
    assert "delivery held for review" in output
    assert f"python -m hdp quality release {held_batch}" in output
    assert "collected_at: pattern_share" in output
    files = dict(
        _scalar(
            "select f.file_name, b.status from audit.file_load as f "
            "inner join audit.load_batch as b on b.batch_id = f.batch_id"
        )
    )
    assert files == {
        "lis_results_20250801.csv": "published",
        "lis_results_20250802.csv": "published",  # the other file still publishes
        "lis_results_20250801_resent.csv": "held",
    }
    batches = _scalar("select count(*) from audit.load_batch")[0][0]

    # the operator clears the run and runs its tasks again: still held, nothing loaded twice
    cleared = _airflow(
        airflow_env,
        "tasks",
        "clear",
        "hdp_ingest_lis",
        "-s",
        "2025-08-02",
        "-e",
        "2025-08-02",
        "-y",
    )
    assert cleared.returncode == 0, (cleared.stdout + cleared.stderr)[-4000:]
    listed = _airflow(airflow_env, "tasks", "test", "hdp_ingest_lis", "list_files", run_2)
    assert "0 new file(s)" in listed.stdout + listed.stderr, listed.stdout[-3000:]
    publish = _airflow(airflow_env, "tasks", "test", "hdp_ingest_lis", "publish", run_2)
    said = publish.stdout + publish.stderr
    # `tasks test` exits 0 whatever the task does: its log says it failed, naming the hold
    assert "Task failed" in said and "lis_results_20250801_resent.csv (held)" in said, said[-6000:]
    assert f"python -m hdp quality release {held_batch}" in said
    assert _scalar("select count(*) from audit.load_batch")[0][0] == batches
    assert _scalar("select status from audit.load_batch where batch_id = %s", (held_batch,)) == [
        ("held",)
    ]

    # release, then rerun publish: published once
    released = subprocess.run(
        [sys.executable, "-m", "hdp", "quality", "release", "lis_results_20250801_resent.csv"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        check=False,
    )
    assert released.returncode == 0, released.stdout + released.stderr[-2000:]
    outputs = []
    for _ in range(2):
        publish = _airflow(airflow_env, "tasks", "test", "hdp_ingest_lis", "publish", run_2)
        outputs.append(publish.stdout + publish.stderr)
        assert "Task failed" not in outputs[-1], outputs[-1][-4000:]
    assert "'lis_results_20250801_resent.csv': 40" in outputs[0], outputs[0][-4000:]
    assert "no new file of lis to publish" in outputs[1], outputs[1][-4000:]
    assert _scalar("select status from audit.load_batch where batch_id = %s", (held_batch,)) == [
        ("published",)
    ]
    assert _scalar(
        "select count(*), count(distinct result_id) from raw_lis.results where _batch_id = %s",
        (held_batch,),
    ) == [(ROWS, ROWS)]
    assert json.loads(
        json.dumps(_scalar("select count(*) from audit.load_batch where status = 'published'"))
    ) == [[3]]
