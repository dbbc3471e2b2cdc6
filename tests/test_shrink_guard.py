"""The transform's shrink guard: a mart that would lose a large share of its rows is not
published (issue 12, finding 1: a re-extracted batch once emptied staging, and dim_patient went
from 11,965 rows to 211 while the transform reported success).

The fault is planted as the incident had it: the HIS patients batch leaves `published`, so
staging sees a sliver of the patients. Real dbt, real warehouse, no Airflow needed.
"""

from __future__ import annotations

import pytest

from hdp.runtime.dbt import run_dbt
from hdp.warehouse.database import connect
from tests.pipeline import marts_fingerprint

# dim_patient and what it is built from: enough to see the guard, a fraction of a full build
SHRINKING = "+dim_patient"


@pytest.fixture(scope="module")
def built(built_warehouse):
    """The session's built warehouse (tests/conftest.py), restored: this module rebuilds it."""
    lg, _ = built_warehouse
    return lg


def _execute(lg, query: str, params=()) -> list[tuple]:
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall() if cur.description else []
    wh.commit()
    wh.close()
    return rows


def _unpublish_patients(lg, status: str) -> None:
    """As the warehouse owner, past the trigger that now keeps published batches published
    (finding 1's fix): the guard must hold whatever empties staging."""
    _execute(
        lg,
        "alter table audit.load_batch disable trigger user; "
        "update audit.load_batch set status = %s where source = 'his' "
        "and table_name = 'patients' and status in ('published', 'loading'); "
        "alter table audit.load_batch enable trigger user",
        (status,),
    )


@pytest.fixture
def patients_hidden(built):
    """The incident's state: the patients batch is back to `loading`; restored afterwards."""
    _unpublish_patients(built, "loading")
    yield built
    _unpublish_patients(built, "published")
    run_dbt("run", "--select", SHRINKING, "--vars", "{allow_mart_shrink: true}")


def test_a_sharply_shrinking_mart_is_not_published_and_named(patients_hidden):
    lg = patients_hidden
    before = marts_fingerprint(lg)
    patients_before = _execute(lg, "select count(*) from marts.dim_patient")[0][0]
    assert patients_before >= 50  # above the guard's minimum: the guard applies

    build = run_dbt("run", "--select", SHRINKING, check=False)

    assert build.returncode != 0
    assert "shrink guard: marts.dim_patient would shrink from" in build.stdout
    assert "published table is unchanged" in build.stdout
    # nothing of the shrunken build reached the marts: not the dimension, not the facts on it
    assert marts_fingerprint(lg) == before
    # the failed build left no record, so the next build compares with the good one again
    recorded = _execute(
        lg,
        "select row_count from audit.transform_run where model = 'marts.dim_patient' "
        "order by transform_id desc limit 1",
    )[0][0]
    assert recorded == patients_before


def test_an_intended_shrink_is_accepted_when_allowed(patients_hidden):
    lg = patients_hidden
    patients_before = _execute(lg, "select count(*) from marts.dim_patient")[0][0]

    run_dbt("run", "--select", SHRINKING, "--vars", "{allow_mart_shrink: true}")

    assert _execute(lg, "select count(*) from marts.dim_patient")[0][0] < patients_before * 0.8


def test_the_share_is_configurable(patients_hidden, monkeypatch):
    lg = patients_hidden
    monkeypatch.setenv("HDP_MAX_MART_SHRINK_SHARE", "1")  # 100%: the guard is off

    patients_before = _execute(lg, "select count(*) from marts.dim_patient")[0][0]

    run_dbt("run", "--select", SHRINKING)

    assert _execute(lg, "select count(*) from marts.dim_patient")[0][0] < patients_before * 0.8


def test_ordinary_growth_passes_the_guard(built):
    """A second build over the same published data changes nothing and passes."""
    before = marts_fingerprint(built)
    run_dbt("run", "--select", SHRINKING)
    assert marts_fingerprint(built) == before
