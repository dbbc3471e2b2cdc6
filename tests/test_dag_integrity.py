"""DAG integrity without a database (unit tier), as Astronomer's project scaffold checks it:
every file in dags/ loads into a plain `DagBag` with no import error, and every DAG carries the
tags, owner and retries our builders give it. Runs in a child process whose Airflow metadata
database does not exist, so a DAG file that touches the database at parse time fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hdp.config import REPO_ROOT
from hdp.manifest import all_manifests

pytestmark = pytest.mark.unit

SOURCES = {m.source for m in all_manifests()}
PLATFORM_DAGS = {f"hdp_ingest_{s}" for s in SOURCES} | {"hdp_transform", "hdp_procurement_report"}
APPROVED_TAGS = {"hdp", "ingest", "transform", "dbt", "report"} | SOURCES
# owners our builders set (dags.py: data-platform; procurement.py: pharmacy-analytics)
OWNERS = {"data-platform", "pharmacy-analytics"}

_DAGBAG = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={folder!r})
print("RESULT" + json.dumps({{
    "errors": sorted(bag.import_errors),
    "dags": {{d.dag_id: {{"tags": sorted(d.tags), "owners": sorted({{t.owner for t in d.tasks}}),
        "retries": sorted({{t.retries for t in d.tasks}}), "catchup": d.catchup,
        "tasks": len(d.tasks)}} for d in bag.dags.values()}},
}}))
"""


def _parse_dags(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Load dags/ in a fresh interpreter whose only metadata 'database' is a SQLite path that
    must stay absent; the dbt profile's variables are placeholders (parsing connects nowhere)."""
    no_db = tmp_path / "airflow-metadata.sqlite"
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "HOME": str(tmp_path),
        "HDP_HOME": str(tmp_path / "home"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{no_db}",
        # Cosmos caches its dbt listing in Airflow Variables (the database) unless told not to
        "AIRFLOW__COSMOS__ENABLE_CACHE": "False",
        # without a dbt manifest Cosmos lists the project with `dbt ls` while the file is
        # imported: on a loaded machine that passes Airflow's default 30 s import timeout
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "HDP_WAREHOUSE_HOST": "127.0.0.1",
        "HDP_WAREHOUSE_PORT": "9",
        "HDP_WAREHOUSE_USER": "nobody",
        "HDP_WAREHOUSE_PASSWORD": "change-me",  # a placeholder: parsing opens no connection
        "HDP_WAREHOUSE_DB": "nowhere",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    code = _DAGBAG.format(folder=str(REPO_ROOT / "dags"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    return proc, no_db


def test_every_dag_loads_without_a_database_and_carries_our_defaults(tmp_path):
    proc, no_db = _parse_dags(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.split("RESULT", 1)[1].splitlines()[0])
    assert payload["errors"] == []
    assert not no_db.exists(), "parsing a DAG file touched Airflow's metadata database"
    dags = payload["dags"]
    assert set(dags) == PLATFORM_DAGS
    for dag_id, info in dags.items():
        assert info["tags"], dag_id
        assert set(info["tags"]) <= APPROVED_TAGS, dag_id
        assert "hdp" in info["tags"], dag_id
        assert info["owners"] and set(info["owners"]) <= OWNERS, dag_id
        assert info["catchup"] is False, dag_id
        assert max(info["retries"]) >= 1, dag_id  # transient failures are retried
    for source in SOURCES:
        assert source in dags[f"hdp_ingest_{source}"]["tags"]
    assert dags["hdp_ingest_his"]["retries"] == [0, 2]  # the gate never retries a verdict
    assert dags["hdp_transform"]["tasks"] >= 12  # Cosmos: one task per dbt model
