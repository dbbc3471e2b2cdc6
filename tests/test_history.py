"""History and incremental facts over several simulated days (real PostgreSQL, dbt, GX).

The HIS and the pharmacy run four more days after the initial load, and the LIS delivers a
results file a day: new activity, late corrections (a visit's fee or doctor, a recoded
diagnosis, a shortened prescription line, a price corrected), returns after a sale, and
reference changes (doctors promoted or moved, a department renamed). Each day is extracted,
gated and published, then `dbt build` runs incrementally with no reprocessing window, so only
the changed-rows logic can bring the changes in. The tests then assert that facts point at
the dimension version valid at their time, that every correction is in the marts exactly once,
and that a full refresh gives the same marts. Assertions compare keys and counts; no row
value is printed.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from hdp.quality.gate import GateResult
from hdp.runtime.dbt import run_dbt
from hdp.runtime.summary import (
    HISTORY_DIMENSIONS,
    INCREMENTAL_FACTS,
    history_counts,
    last_incremental_build,
)
from hdp.warehouse.database import connect
from hdp_sim import his, lab, pharmacy
from tests.pipeline import CLEAR_KEY, ingest, ingest_files, ingest_source, table_fingerprint

DAYS = 4
FIRST_DAY = date(2024, 1, 1)
# the simulator renames a department on days whose ordinal is a multiple of 10: with 36 days of
# history the second simulated day (2024-02-07) is one
HISTORY_DAYS = 36
NO_WINDOW = ["--vars", "{reprocess_window_hours: 0}"]
# run logs and bookkeeping, not results: they differ between two builds by design
NOT_COMPARED = {"mart_cleaning_rule_counts"}


def _rows(dsn, query: str, params=None) -> list[tuple]:
    conn = connect(dsn)
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def _ingest_all(lg, run_id: str, lis_folder) -> None:
    for outcome in (
        ingest(lg, run_id),
        ingest_source(lg, "pharmacy", run_id),
        ingest_files(lg, "lis", lis_folder, run_id),
    ):
        assert outcome and all(isinstance(r, GateResult) for r in outcome.values()), outcome


def _marts(lg) -> dict[str, str]:
    """Per mart table: row count and md5 over its rows (build-time columns left out)."""
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts' and table_type = 'BASE TABLE' order by 1"
        )
        tables = [t for (t,) in cur.fetchall() if t not in NOT_COMPARED]
        result = {t: table_fingerprint(cur, "marts", t) for t in tables}
    wh.close()
    return result


@pytest.fixture(scope="module")
def history(cluster, pg_admin_dsn, tmp_path_factory):
    from tests.conftest import reset_platform_databases

    reset_platform_databases(pg_admin_dsn)
    from hdp_sim.sources import logins

    lg = logins()
    his_owner, ph_owner = connect(lg.his_owner), connect(lg.pharmacy_owner)
    his.generate(his_owner, his.SimConfig(seed=5, scale=0.02, history_days=HISTORY_DAYS))
    pharmacy.generate(ph_owner, his_owner, pharmacy.PharmacyConfig(seed=5))
    lis_folder = tmp_path_factory.mktemp("lis")
    lab.write_drops(his_owner, lis_folder, seed=5)  # one results file per day of the history
    _ingest_all(lg, "run-0", lis_folder)
    run_dbt("seed")
    run_dbt("build")
    (encounters_before,) = _rows(lg.warehouse, "select count(*) from marts.fct_encounter")[0]
    rebuilt: dict[str, list[tuple[int, int]]] = {fact: [] for fact in INCREMENTAL_FACTS}
    for day in range(1, DAYS + 1):
        his.advance_day(his_owner)
        pharmacy.advance_day(ph_owner, his_owner)
        today = pharmacy.his_clock(his_owner)[1]  # the day just simulated
        lab.write_drops(his_owner, lis_folder, seed=5, first_day=today, last_day=today)
        _ingest_all(lg, f"run-{day}", lis_folder)
        build = run_dbt("build", *NO_WINDOW)
        assert "ERROR=0" in build.stdout.replace(" ", ""), build.stdout[-3000:]
        wh = connect(lg.warehouse)
        with wh.cursor() as cur:
            for fact in INCREMENTAL_FACTS:
                rebuilt[fact].append(last_incremental_build(cur, fact))
        wh.close()
    his_owner.close()
    ph_owner.close()
    # the tests below look at the marts as the incremental runs left them; the last test
    # compares them with a full refresh
    return {"lg": lg, "rebuilt": rebuilt, "encounters_before": encounters_before}


def _changes(lg, kind: str, table: str, column: str | None = None) -> list[str]:
    query = "select record_id from sim.change_log where kind = %s and table_name = %s"
    params: tuple = (kind, table)
    if column:
        query += " and column_name = %s"
        params += (column,)
    return [r for (r,) in _rows(lg.his_owner, query + " order by 1", params)]


def _quarantined(lg, table: str) -> set[str]:
    return {
        k
        for (k,) in _rows(
            lg.warehouse,
            f"select {CLEAR_KEY} from audit.row_issue as i where table_name = %s "
            "and action = 'quarantine' and released_at is null",
            (table,),
        )
    }


def test_incremental_runs_rebuild_only_what_changed(history):
    # each day's run rewrote some rows of each incremental fact (the day's new ones at least)
    # but far from all
    for fact in INCREMENTAL_FACTS:
        for rebuilt, total in history["rebuilt"][fact]:
            assert 0 < rebuilt < total / 3, (fact, rebuilt, total)
    assert history["rebuilt"]["fct_encounter"][-1][1] > history["encounters_before"]


def test_simulated_days_changed_reference_data(history):
    lg = history["lg"]
    assert _changes(lg, "change", "doctors", "title")
    assert _changes(lg, "change", "departments", "dept_name")
    assert _changes(lg, "correction", "patients", "address")


def test_encounters_point_at_the_doctor_and_department_as_they_were(history):
    lg = history["lg"]
    promoted = [int(d) for d in _changes(lg, "change", "doctors", "title")]
    rows = _rows(
        lg.warehouse,
        """
        select f.doctor_key, h.version_number, h.title, count(*)
        from marts.fct_encounter f
        join marts.dim_doctor_history h on f.doctor_version_key = h.doctor_version_key
        where f.doctor_key = any(%s)
        group by 1, 2, 3
        """,
        (promoted,),
    )
    titles: dict[int, dict[int, str]] = {}
    for doctor, version, title, _ in rows:
        titles.setdefault(doctor, {})[version] = title
    # a doctor promoted after the first load has encounters under both titles
    both = [d for d, v in titles.items() if len(v) >= 2]
    assert both, "no promoted doctor has encounters before and after the promotion"
    for doctor in both:
        assert len(set(titles[doctor].values())) == len(titles[doctor]), doctor
    renamed = _changes(lg, "change", "departments", "dept_name")
    names = _rows(
        lg.warehouse,
        """
        select f.department_key, count(distinct h.dept_name),
               count(*) filter (where not h.is_current), count(*) filter (where h.is_current)
        from marts.fct_encounter f
        join marts.dim_department_history h
          on f.department_version_key = h.department_version_key
        where f.department_key = any(%s)
        group by 1
        """,
        (renamed,),
    )
    assert names, "the renamed department has no encounters"
    for _, distinct_names, before, after in names:
        assert distinct_names == 2 and before > 0 and after > 0


def test_every_fact_joins_the_version_valid_at_its_time(history):
    lg = history["lg"]
    for fact, key, at, dims in (
        ("fct_encounter", "doctor_version_key", "started_at", "dim_doctor_history"),
        ("fct_encounter", "department_version_key", "started_at", "dim_department_history"),
        ("fct_encounter", "patient_version_key", "started_at", "dim_patient_history"),
        ("fct_dispensing", "medication_version_key", "dispensed_at", "dim_medication_history"),
    ):
        (outside, total) = _rows(
            lg.warehouse,
            f"select count(*) filter (where h.{key} is null or not "
            f"(f.{at} >= h.valid_from and f.{at} < h.valid_to)), count(*) "
            f"from marts.{fact} f left join marts.{dims} h on f.{key} = h.{key}",
        )[0]
        assert total > 0 and outside == 0, (fact, key, outside)
    (versions,) = _rows(
        lg.warehouse,
        "select count(distinct f.medication_version_key) from marts.fct_dispensing f "
        "join marts.dim_medication_history h using (medication_version_key) "
        "where h.version_number > 1",
    )[0]
    assert versions > 0, "no dispensing after a price change points at the new price"


def test_each_correction_is_in_the_marts_exactly_once(history):
    lg = history["lg"]
    held = _quarantined(lg, "outpatient_visits")
    visits = [int(v) for v in set(_changes(lg, "correction", "outpatient_visits")) - held]
    assert visits
    source = dict(
        _rows(
            lg.his_owner,
            "select visit_id, (fee, doctor_id)::text from his.outpatient_visits "
            "where visit_id = any(%s)",
            (visits,),
        )
    )
    facts = _rows(
        lg.warehouse,
        "select substr(encounter_key, 4)::bigint, (amount, doctor_key)::text, count(*) "
        "over (partition by encounter_key) from marts.fct_encounter "
        "where encounter_key = any(%s)",
        ([f"OP-{v}" for v in visits],),
    )
    assert len(facts) == len(visits)
    assert all(n == 1 for _, _, n in facts)
    assert {v: value for v, value, _ in facts} == source

    held = _quarantined(lg, "diagnoses")
    recoded = [int(d) for d in set(_changes(lg, "correction", "diagnoses")) - held]
    assert recoded
    source = dict(
        _rows(
            lg.his_owner,
            "select diagnosis_id, upper(trim(icd10_code)) from his.diagnoses "
            "where diagnosis_id = any(%s)",
            (recoded,),
        )
    )
    facts = _rows(
        lg.warehouse,
        "select diagnosis_id, icd10_code from marts.fct_diagnosis where diagnosis_id = any(%s)",
        (recoded,),
    )
    assert len(facts) == len(recoded)
    assert dict(facts) == source

    shortened = [
        int(r)
        for (r,) in _rows(
            lg.pharmacy_owner,
            "select record_id from sim.change_log where kind = 'correction' "
            "and table_name = 'prescription_lines'",
        )
    ]
    assert shortened
    source = dict(
        _rows(
            lg.pharmacy_owner,
            "select line_id, quantity::numeric from pharmacy.prescription_lines "
            "where line_id = any(%s)",
            (shortened,),
        )
    )
    # line_id is the source's record id, text in the standard (std_medication_order_line)
    facts = [
        (int(line), quantity)
        for line, quantity in _rows(
            lg.warehouse,
            "select line_id, quantity::numeric from marts.fct_prescription_line "
            "where line_id = any(%s) and not is_unit_mixup",
            ([str(line) for line in shortened],),
        )
    ]
    assert facts and all(source[line] == quantity for line, quantity in facts)


def test_returns_after_a_sale_net_out_once(history):
    lg = history["lg"]
    since = FIRST_DAY + timedelta(days=HISTORY_DAYS)
    returns = dict(
        _rows(
            lg.pharmacy_owner,
            "select dispense_id, return_of from pharmacy.dispensing d where is_return "
            "and dispensed_at >= %s and not exists (select 1 from sim.defect_manifest m "
            "where m.table_name = 'dispensing' and m.record_id = d.dispense_id)",
            (since,),
        )
    )
    held = {int(k) for k in _quarantined(lg, "dispensing")}
    expected = {r: sale for r, sale in returns.items() if r not in held}
    assert expected, "no clean return in the simulated days"
    # dispense_id is the source's record id, text in the standard (std_dispensing)
    facts = [
        (int(d), int(returned) if returned is not None else None, negative, n)
        for d, returned, negative, n in _rows(
            lg.warehouse,
            "select dispense_id, returned_dispense_id, quantity < 0 and amount < 0, count(*) "
            "over (partition by dispense_id) from marts.fct_dispensing "
            "where dispense_id = any(%s)",
            ([str(d) for d in expected],),
        )
    ]
    # each return is in the fact once, negative, and names the sale it reverses
    assert {f[0]: f[1] for f in facts} == expected
    assert all(negative and n == 1 for _, _, negative, n in facts)


def test_summary_counts_history_and_the_last_incremental_build(history):
    lg = history["lg"]
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        counts = {c.dimension: c for c in history_counts(cur)}
        rebuilt = last_incremental_build(cur)
    wh.close()
    assert set(counts) == set(HISTORY_DIMENSIONS)
    # only the simulator's changes give a doctor or a department a second period
    assert counts["dim_doctor_history"].changed == len(set(_changes(lg, "change", "doctors")))
    renamed = set(_changes(lg, "change", "departments"))
    assert counts["dim_department_history"].changed == len(renamed) > 0
    assert counts["dim_medication_history"].changed > 0
    # moves are tracked by province and month; the mart publishes a person's moves only where
    # k persons share the whole profile (k-anonymity), so its count may be 0 at this scale
    moved = _rows(
        lg.warehouse,
        "select count(distinct patient_key) from intermediate.int_history__patients "
        "where version_number > 1",
    )[0][0]
    assert moved > 0
    assert 0 <= counts["dim_patient_history"].changed <= moved
    for c in counts.values():
        assert c.periods >= c.members + c.changed  # a member that changed has 2+ periods
    assert rebuilt == history["rebuilt"]["fct_encounter"][-1]


def test_a_fact_built_before_row_hash_upgrades_without_a_full_refresh(history):
    """A warehouse built when fct_dispensing was a plain table: the next incremental run adds
    row_hash and transformed_at and rewrites every row once, to the same values."""
    lg = history["lg"]
    owner = connect(lg.transformer)  # dbt's login owns the marts
    with owner.cursor() as cur:
        before = table_fingerprint(cur, "marts", "fct_dispensing")
        cur.execute(
            "alter table marts.fct_dispensing drop column row_hash, drop column transformed_at"
        )
    owner.commit()
    owner.close()
    build = run_dbt("build", "--select", "fct_dispensing", *NO_WINDOW)
    assert "ERROR=0" in build.stdout.replace(" ", ""), build.stdout[-3000:]
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        rebuilt, total = last_incremental_build(cur, "fct_dispensing")
        cur.execute("select count(*) from marts.fct_dispensing where row_hash is null")
        (without_hash,) = cur.fetchone()
        after = table_fingerprint(cur, "marts", "fct_dispensing")
    wh.close()
    assert rebuilt == total > 0 and without_hash == 0
    assert after == before
    # and a second run finds nothing to rewrite
    run_dbt("run", "--select", "fct_dispensing", *NO_WINDOW)
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select count(*) from marts.fct_dispensing "
            "where transformed_at > (select min(transformed_at) from marts.fct_dispensing)"
        )
        (rewritten_again,) = cur.fetchone()
    wh.close()
    assert rewritten_again == 0


def test_incremental_runs_equal_a_full_refresh(history):
    """Last in this module: it rebuilds the marts with --full-refresh."""
    lg = history["lg"]
    incremental = _marts(lg)
    build = run_dbt("build", "--full-refresh")
    assert "ERROR=0" in build.stdout.replace(" ", ""), build.stdout[-3000:]
    full = _marts(lg)
    assert {"fct_encounter", "fct_diagnosis", "dim_doctor_history"} <= set(full)
    differing = sorted(t for t in full if incremental.get(t) != full[t])
    assert not differing, f"incremental and full refresh differ in: {differing}"
