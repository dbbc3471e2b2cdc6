"""The pharmacy standard with a source that does not look like our simulator (real dbt, PostgreSQL).

A retail pharmacy's sales export, shaped like the real one the issue describes: drug code and
name, quantity, amount and date only (no ATC, no DDD, no sale id), and one local code that
carries four different drug names for 17% of the spend. It joins as Hospital B's source
`retail` by mapping alone (a staging model, two mapping models and its source-system seed in a
copy of the project; the institution H002 is declared once, by Hospital B's HIS,
seeds/mapping/hisb): nothing in models/standard, intermediate or marts is edited. Then:

- the reused code reaches the worklist as four ambiguous products, one per name, never merged,
  and the worklist is per institution and biggest spend first;
- every sale row reaches std_dispensing and fct_dispensing (returns negative), per institution;
- rerunning the build (an operator's retry) changes nothing.

Assertions compare counts and sums, never print row values.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg2 import errors

from hdp.config import REPO_ROOT
from hdp.runtime.dbt import run_dbt
from hdp.security.roles import TRANSFORMER
from hdp.warehouse.database import connect
from tests.pipeline import CLEAR_KEY

REUSED_CODE = "X0001"
# (code, name, quantity, amount, day): a code reused for four products; three codes of one name
# each; a return (negative) of one of the reused code's products; two identical sales on one day
# (no sale id: both are real sales and both must arrive). Days count from the first day the
# simulated hospital dispensed (the calendar dimension covers it).
SALES: tuple[tuple[str, str, str, str, int], ...] = (
    (REUSED_CODE, "阿莫西林胶囊", "10", "52.00", 0),
    (REUSED_CODE, "头孢克肟片", "6", "48.00", 1),
    (REUSED_CODE, "布洛芬缓释胶囊", "4", "30.00", 1),
    (REUSED_CODE, "维生素C片", "2", "40.00", 2),
    (REUSED_CODE, "阿莫西林胶囊", "-2", "-10.00", 3),
    ("A1001", "复方甘草片", "20", "350.00", 0),
    ("A1001", "复方甘草片", "20", "350.00", 0),
    ("B2002", "板蓝根颗粒", "5", "50.00", 4),
    ("C3003", "藿香正气水", "3", "31.00", 5),
)
REUSED_SPEND = Decimal("160.00")  # 52 + 48 + 30 + 40 - 10
TOTAL_SPEND = Decimal("941.00")  # the reused code is 17 % of it (160 / 941 = 0.170)

STAGING = """
-- The retail sales export: no sale id, so a sale's record id is its fields and its ordinal
-- among identical rows of the file (two identical sales on one day are two sales).
select
    upper(btrim(drug_code)) as drug_code,
    btrim(drug_name) as drug_name,
    quantity::numeric as quantity,
    amount::numeric as amount,
    sale_date::date as sale_date,
    row_number() over (
        partition by drug_code, drug_name, quantity, amount, sale_date order by drug_code
    ) as ordinal
from raw_retail.sales
"""

PRODUCT = """
-- One product per code and name: the export reuses codes, so the code alone names no product.
with sales as (select * from {{ ref('stg_retail__sales') }}),
source_system as (select * from {{ ref('map_retail__source_system') }}),
products as (select distinct drug_code, drug_name from sales)
select
    source_system.institution_id,
    source_system.source_system,
    products.drug_code || '|' || products.drug_name as source_record_id,
    source_system.institution_id || ':' || source_system.source_system || ':'
        || products.drug_code || '|' || products.drug_name as medication_product_key,
    products.drug_code as local_drug_code,
    products.drug_name as local_drug_name,
    null::text as brand_name, null::text as specification, null::text as dosage_form,
    null::text as unit, null::int as pack_size, null::numeric as strength_mg,
    null::numeric as strength_mg_recorded, null::text as strength_check, null::text as route,
    null::text as manufacturer, null::text as atc_code,
    'WHO ATC/DDD Index 2024' as atc_code_system, 'unmapped' as atc_mapping_method,
    null::numeric as ddd_value, null::text as ddd_unit, null::boolean as is_essential,
    null::text as antibiotic_grade, null::text as supplier_code,
    null::numeric as current_unit_price, null::boolean as is_active,
    'retail' as data_source
from products
cross join source_system
"""

DISPENSING = """
with sales as (select * from {{ ref('stg_retail__sales') }}),
source_system as (select * from {{ ref('map_retail__source_system') }}),
keyed as (
    select
        sales.*,
        sales.drug_code || '|' || sales.drug_name || '|' || sales.quantity::text || '|'
            || sales.amount::text || '|' || sales.sale_date::text || '|' || sales.ordinal::text
            as record_id
    from sales
)
select
    source_system.institution_id,
    source_system.source_system,
    keyed.record_id as source_record_id,
    source_system.institution_id || ':' || source_system.source_system || ':' || keyed.record_id
        as dispensing_key,
    null::text as medication_order_line_key,
    null::text as line_id,
    source_system.institution_id || ':' || source_system.source_system || ':'
        || keyed.drug_code || '|' || keyed.drug_name as medication_product_key,
    keyed.drug_code as local_drug_code,
    keyed.drug_name as local_drug_name,
    null::text as batch_no,
    keyed.quantity,
    round(keyed.amount / nullif(keyed.quantity, 0), 4) as unit_price_recorded,
    keyed.amount as amount_recorded,
    keyed.quantity < 0 as is_return,
    null::text as returned_source_record_id,
    null::text as pharmacy_code,
    null::text as local_department_code,
    keyed.sale_date::timestamp as dispensed_at,
    0 as duplicates_collapsed,
    'retail' as data_source
from keyed
cross join source_system
"""

SEEDS_YML = """version: 2
seeds:
  - name: map_retail__source_system
    config:
      column_types: {source_system: text, institution_id: text, source_kind: text, vendor: text,
        description: text, diagnosis_code_system: text}
"""


def _project_with_retail(tmp_path: Path) -> Path:
    """A copy of the project with the retail source added by mapping alone."""
    project = tmp_path / "dbt_project"
    shutil.copytree(
        REPO_ROOT / "dbt_project",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    (project / "models/staging/retail").mkdir()
    (project / "models/staging/retail/stg_retail__sales.sql").write_text(STAGING)
    mapping = project / "models/mapping/retail"
    mapping.mkdir()
    (mapping / "map_retail__medication_product.sql").write_text(PRODUCT)
    (mapping / "map_retail__dispensing.sql").write_text(DISPENSING)
    seeds = project / "seeds/mapping/retail"
    seeds.mkdir()
    (seeds / "_retail__mapping_seeds.yml").write_text(SEEDS_YML)
    (seeds / "map_retail__source_system.csv").write_text(
        "source_system,institution_id,source_kind,vendor,description,diagnosis_code_system\n"
        "retail,H002,files,a retail chain,Hospital B outpatient pharmacy sales export,\n"
    )
    return project


def _load_sales(lg) -> None:
    """The export, landed as text the way a file drop lands (the transformer may read it)."""
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        cur.execute("create schema raw_retail")
        cur.execute(
            "create table raw_retail.sales (drug_code text, drug_name text, quantity text, "
            "amount text, sale_date text)"
        )
        cur.execute("select min(dispensed_at)::date from marts.fct_dispensing")
        first_day = cur.fetchone()[0]
        cur.executemany(
            "insert into raw_retail.sales values (%s, %s, %s, %s, (%s::date + %s)::text)",
            [(*row[:4], first_day, row[4]) for row in SALES],
        )
        # as roles.py grants raw_<source>: to the transformer group, which owns the views
        cur.execute(f"grant usage on schema raw_retail to {TRANSFORMER}")
        cur.execute(f"grant select on raw_retail.sales to {TRANSFORMER}")
    admin.close()


def _rows(lg, query: str, params=None) -> list[tuple]:
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    wh.close()
    return rows


def _build(*args: str):
    return run_dbt(
        "build",
        "--select",
        "stg_retail__sales+",
        "map_retail__source_system+",
        *args,
    )


@pytest.fixture(scope="module")
def retail(built_warehouse, tmp_path_factory):
    lg, _ = built_warehouse
    project = _project_with_retail(tmp_path_factory.mktemp("retail"))
    _load_sales(lg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HDP_DBT_PROJECT_DIR", str(project))
        run_dbt("seed", "--select", "map_retail__source_system")
        first = _build()
        yield lg, first, _build


def test_a_new_source_builds_by_mapping_alone(retail):
    _, first, _ = retail
    assert "ERROR=0" in first.stdout.replace(" ", "")


def test_a_reused_code_is_listed_as_one_ambiguous_row_per_product(retail):
    lg, _, _ = retail
    rows = _rows(
        lg,
        "select reason, products_for_code, generic_name, spend, share_of_spend, priority "
        "from marts.mart_unmapped_drug_codes "
        "where institution_id = 'H002' and source_system = 'retail' and drug_code = %s "
        "order by priority",
        (REUSED_CODE,),
    )
    assert len(rows) == 4
    assert {r[0] for r in rows} == {"ambiguous"} and {r[1] for r in rows} == {4}
    assert len({r[2] for r in rows}) == 4  # four names, not merged into one
    assert sum(r[3] for r in rows) == REUSED_SPEND
    assert float(sum(r[4] for r in rows)) == pytest.approx(
        float(REUSED_SPEND / TOTAL_SPEND), abs=1e-5
    )
    assert 0.165 <= float(REUSED_SPEND / TOTAL_SPEND) <= 0.175


def test_the_worklist_is_per_institution_biggest_spend_first(retail):
    lg, _, _ = retail
    rows = _rows(
        lg,
        "select drug_code, reason, spend, priority from marts.mart_unmapped_drug_codes "
        "where institution_id = 'H002' order by priority, drug_code",
    )
    # single-name codes without ATC are unmapped; priority 1 is the biggest spend (A1001, 700)
    assert {r[0] for r in rows if r[1] == "unmapped"} == {"A1001", "B2002", "C3003"}
    assert rows[0][0] == "A1001" and rows[0][3] == 1
    spends = [r[2] for r in rows]
    assert spends == sorted(spends, reverse=True)
    # Hospital A's rows rank among themselves: its priority 1 exists as well
    ranks = _rows(
        lg,
        "select institution_id, min(priority) from marts.mart_unmapped_drug_codes group by 1",
    )
    assert dict(ranks) == {"H001": 1, "H002": 1}


def test_every_sale_reaches_the_standard_and_the_fact(retail):
    lg, _, _ = retail
    landed = _rows(lg, "select count(*), sum(amount::numeric) from raw_retail.sales")[0]
    standard = _rows(
        lg,
        "select count(*), sum(amount_recorded), count(*) filter (where is_return and quantity < 0) "
        "from standard.std_dispensing where institution_id = 'H002'",
    )[0]
    fact = _rows(
        lg,
        "select count(*), sum(amount), count(distinct medication_key), "
        "count(*) filter (where has_unknown_drug) "
        "from marts.fct_dispensing where institution_id = 'H002' and source_system = 'retail'",
    )[0]
    assert landed == (len(SALES), TOTAL_SPEND)
    assert standard == (len(SALES), TOTAL_SPEND, 1)
    assert fact == (len(SALES), TOTAL_SPEND, 7, 0)  # 4 + 3 products, every sale known
    # Hospital A's facts still hold only Hospital A's sources
    other = _rows(
        lg,
        "select count(*) from marts.fct_dispensing where institution_id = 'H001' "
        "and source_system <> 'pharmacy'",
    )[0][0]
    assert other == 0


def test_rerunning_the_build_changes_nothing(retail):
    lg, _, build = retail
    before = _rows(
        lg,
        "select worklist_key, reason, spend, priority from marts.mart_unmapped_drug_codes "
        "order by worklist_key",
    )
    facts_before = _rows(lg, "select count(*), sum(amount) from marts.fct_dispensing")[0]
    again = build()
    assert "ERROR=0" in again.stdout.replace(" ", "")
    after = _rows(
        lg,
        "select worklist_key, reason, spend, priority from marts.mart_unmapped_drug_codes "
        "order by worklist_key",
    )
    assert after == before
    assert _rows(lg, "select count(*), sum(amount) from marts.fct_dispensing")[0] == facts_before


def test_group_totals_are_the_sum_of_the_institutions(retail):
    lg, _, _ = retail
    # consumption: per month and ATC code, the group row = the institutions' rows
    diff = _rows(
        lg,
        "with inst as (select month, 'ALL:' || coalesce(atc_code, 'unmapped') as k, "
        "sum(quantity) q, sum(spend) s, sum(lines) n from marts.mart_drug_consumption_monthly "
        "where institution_id <> 'ALL' group by 1, 2), "
        "grp as (select month, medication_key as k, quantity q, spend s, lines n "
        "from marts.mart_drug_consumption_monthly where institution_id = 'ALL') "
        "select count(*) from inst full join grp using (month, k) "
        "where inst.q is distinct from grp.q or inst.s is distinct from grp.s "
        "or inst.n is distinct from grp.n",
    )[0][0]
    assert diff == 0
    institutions = _rows(
        lg,
        "select array_agg(distinct institution_id order by institution_id) "
        "from marts.mart_drug_consumption_monthly",
    )[0][0]
    assert institutions == ["ALL", "H001", "H002"]
    # the retail products are unmapped: their spend is in the group's 'ALL:unmapped' rows
    unmapped = _rows(
        lg,
        "select sum(spend) from marts.mart_drug_consumption_monthly "
        "where institution_id = 'ALL' and medication_key = 'ALL:unmapped'",
    )[0][0]
    assert unmapped >= TOTAL_SPEND
    # ABC: classified within each institution (shares sum to 1 per institution and the group)
    shares = dict(
        _rows(
            lg,
            "select institution_id, round(sum(value_share), 3) from marts.mart_drug_abc_xyz "
            "group by 1",
        )
    )
    assert set(shares) == {"ALL", "H001", "H002"}
    assert all(abs(float(v) - 1) < 0.002 for v in shares.values())


@pytest.mark.parametrize(
    ("table", "source_id", "entity", "fact"),
    [
        ("prescription_lines", "line_id", "std_medication_order_line", "fct_prescription_line"),
        ("dispensing", "dispense_id", "std_dispensing", "fct_dispensing"),
        ("purchase_orders", "po_id", "std_purchase", "fct_purchase"),
        ("stock_batches", "snapshot_id", "std_stock", "fct_stock_snapshot"),
    ],
)
def test_hospital_a_reconciles_source_standard_and_fact(retail, table, source_id, entity, fact):
    """Per institution: the source's records less the quarantined ones (less re-sent copies,
    collapsed into their original) are the standard's rows and the fact's, key for key."""
    lg, _, _ = retail
    owner = connect(lg.pharmacy_owner)
    with owner.cursor() as cur:
        cur.execute(f"select {source_id}::text from pharmacy.{table}")
        source = {k for (k,) in cur.fetchall()}
    owner.close()
    held = {
        k
        for (k,) in _rows(
            lg,
            f"select {CLEAR_KEY} from audit.row_issue as i where table_name = %s "
            "and action = 'quarantine' and released_at is null",
            (table,),
        )
    }
    standard = {
        k
        for (k,) in _rows(
            lg,
            f"select source_record_id from standard.{entity} "
            "where institution_id = 'H001' and source_system = 'pharmacy'",
        )
    }
    facts = _rows(
        lg,
        f"select {source_id}, institution_id || ':' || source_system || ':' || {source_id} "
        f"from marts.{fact} where institution_id = 'H001'",
    )
    copies = set()
    if table == "dispensing":
        copies = {str(k) for k in _dispensing_copies(lg)}
    assert standard == source - held - copies
    assert {f[0] for f in facts} == standard
    # the fact's key is the standard's: institution, source and the source's id
    assert all(key == f"H001:pharmacy:{sid}" for sid, key in facts)


def _dispensing_copies(lg) -> set[int]:
    owner = connect(lg.pharmacy_owner)
    with owner.cursor() as cur:
        cur.execute("select record_id from sim.defect_manifest where kind = 'duplicate_dispensing'")
        copies = {int(k) for (k,) in cur.fetchall()}
    owner.close()
    return copies


@pytest.mark.parametrize("service", ["loader", "quality_reader"])
@pytest.mark.parametrize(
    "relation",
    [
        "standard.std_medication_order_line",
        "standard.std_lab_observation",
        "standard.std_dispensing",
        "mapping.map_pharmacy__medication_order_line",
        "mapping.lis_test_codes",
    ],
)
def test_a_service_login_cannot_read_the_standard(retail, service, relation):
    """The standard's person keys name HIS patients: the extract/gate login and the quality
    page's login (stolen or misused) read none of it; only the transformer does."""
    lg, _, _ = retail
    conn = connect(getattr(lg, service))
    try:
        with pytest.raises(errors.InsufficientPrivilege), conn.cursor() as cur:
            cur.execute(f"select count(*) from {relation}")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("mart", "measures", "institutions"),
    [
        (
            "mart_drug_share_monthly",
            ("drug_spend", "essential_drug_spend", "total_revenue"),
            {"ALL", "H001", "H002"},
        ),
        # the retail export has no inpatients and no prescriptions: Hospital B has no row here
        (
            "mart_antibiotic_use_monthly",
            ("inpatient_ddd_j01", "patient_days", "outpatient_prescriptions"),
            {"ALL", "H001"},
        ),
    ],
)
def test_indicator_group_rows_are_the_sum_of_the_hospitals(retail, mart, measures, institutions):
    lg, _, _ = retail
    sums = ", ".join(f"sum({m}) as {m}" for m in measures)
    differs = " or ".join(f"h.{m} is distinct from g.{m}" for m in measures)
    rows = _rows(
        lg,
        f"with h as (select month, {sums} from marts.{mart} where institution_id <> 'ALL' "
        f"and department_key = 'ALL' group by month), "
        f"g as (select * from marts.{mart} where institution_id = 'ALL') "
        f"select count(*), count(*) filter (where {differs}) "
        f"from h full join g using (month)",
    )[0]
    assert rows[0] > 0 and rows[1] == 0
    # each hospital's 'ALL' row is the sum of its departments
    per_department = _rows(
        lg,
        f"with d as (select month, institution_id, {sums} from marts.{mart} "
        f"where institution_id <> 'ALL' and department_key <> 'ALL' group by 1, 2), "
        f"h as (select * from marts.{mart} where institution_id <> 'ALL' "
        f"and department_key = 'ALL') "
        f"select count(*) filter (where {differs.replace('g.', 'd.')}) "
        f"from h full join d using (month, institution_id)",
    )[0][0]
    assert per_department == 0
    present = {r[0] for r in _rows(lg, f"select distinct institution_id from marts.{mart}")}
    assert present == institutions
