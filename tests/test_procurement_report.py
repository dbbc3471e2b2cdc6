"""The procurement report on hand-made marts in a fresh database: charts, no patient data, and
a real headless Chromium rendering of the file."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from hdp.analytics.forecast_mart import forecast_table
from hdp.analytics.report import render_report

MONTHS = [date(2023 + (m // 12), m % 12 + 1, 1) for m in range(27)]  # Jan 2023 .. Mar 2025
DRUGS = [  # key, name, atc, level1, price, base monthly quantity, winter swing
    ("Y01001", "阿莫西林胶囊", "J01CA04", "J", 0.8, 900, 0.4),
    ("Y02002", "氨溴索口服溶液", "R05CB06", "R", 2.5, 500, 0.6),
    ("Y03003", "苯磺酸氨氯地平片", "C08CA01", "C", 1.2, 1200, 0.0),
    ("Y04004", "阿托伐他汀钙片", "C10AA05", "C", 3.0, 800, 0.0),
    ("Y05005", "头孢曲松钠", "J01DD04", "J", 18.0, 150, 0.3),
    ("Y06006", "复方丹参滴丸", None, None, 0.5, 300, 0.0),
]

SCHEMA = """
create schema marts;
create table marts.dim_medication (medication_key text, generic_name text, atc_code text,
    is_essential boolean, antibiotic_grade text);
create table marts.mart_drug_consumption_monthly (month date, medication_key text,
    atc_code text, atc_level1 text, atc_level2 text, department_key text, quantity numeric,
    ddd numeric, spend numeric, lines int, institution_id text default 'H001');
create table marts.fct_dispensing (institution_id text, dispensed_at timestamp, quantity numeric);
create table marts.mart_drug_abc_xyz (medication_key text, annual_value numeric,
    value_share numeric, cumulative_share numeric, abc_class text, mean_monthly_quantity numeric,
    cv numeric, xyz_class text, institution_id text default 'H001');
create table marts.mart_reorder_point (medication_key text, avg_daily_demand numeric,
    sd_daily_demand numeric, lead_time_days int, safety_stock numeric, reorder_point numeric,
    on_hand numeric, on_order numeric, suggested_order_qty numeric, expiring_30d_qty numeric,
    needs_reorder boolean, institution_id text default 'H001', pack_size int default 10);
create table marts.mart_antibiotic_use_monthly (month date, department_key text,
    inpatient_ddd_j01 numeric, patient_days numeric, ddd_per_100_patient_days numeric,
    target_ddd_per_100_patient_days numeric, outpatient_prescriptions int,
    outpatient_with_antibiotic int, outpatient_antibiotic_share numeric,
    target_outpatient_share numeric, institution_id text default 'H001');
create table marts.mart_drug_share_monthly (month date, department_key text, drug_spend numeric,
    essential_drug_spend numeric, essential_drug_share numeric, total_revenue numeric,
    drug_cost_share numeric, institution_id text default 'H001');
"""


def _fill(cur) -> None:
    import math

    cur.execute(SCHEMA)
    for i, (key, name, atc, _, _, _, _) in enumerate(DRUGS):
        cur.execute(
            "insert into marts.dim_medication values (%s, %s, %s, %s, %s)",
            (key, name, atc, i % 2 == 0, "非限制" if atc and atc.startswith("J01") else None),
        )
    for m, month in enumerate(MONTHS):
        winter = math.cos(2 * math.pi * (month.month - 1) / 12)
        for key, _, atc, level1, price, base, swing in DRUGS:
            for dept, part in (("D01", 0.6), ("D02", 0.4)):
                qty = round(base * part * (1 + swing * winter) * (1 + 0.03 * ((m * 7) % 5 - 2)))
                cur.execute(
                    "insert into marts.mart_drug_consumption_monthly values "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (month, key, atc, level1, atc[:3] if atc else None, dept, qty, qty / 3,
                     qty * price, qty // 10),
                )  # fmt: skip
        for dept, days in (("D01", 900), ("D02", 600), ("ALL", 1500)):
            ddd = days * (0.38 + 0.08 * winter)
            rx, abx = days * 2, int(days * 2 * (0.17 + 0.05 * winter))
            cur.execute(
                "insert into marts.mart_antibiotic_use_monthly values "
                "(%s, %s, %s, %s, %s, 40, %s, %s, %s, 0.2)",
                (month, dept, ddd, days, 100 * ddd / days, rx, abx, abx / rx),
            )
        for dept, spend in (("D01", 60000), ("D02", 40000)):
            cur.execute(
                "insert into marts.mart_drug_share_monthly values (%s, %s, %s, %s, %s, %s, %s)",
                (month, dept, spend, spend * 0.55, 0.55, spend * 3.2, 1 / 3.2),
            )
    abc = [("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Z"), ("C", "Y"), ("C", "Z")]
    for (key, *_), (a, x) in zip(DRUGS, abc, strict=True):
        cur.execute(
            "insert into marts.mart_drug_abc_xyz values (%s, %s, 0.1, 0.5, %s, 100, 0.3, %s)",
            (key, {"A": 90000, "B": 20000, "C": 3000}[a], a, x),
        )
    # every day of the 27 months dispenses something (their daily totals: the data's span)
    cur.execute(
        "insert into marts.fct_dispensing select 'H001', day, "
        "case when extract(isodow from day) >= 6 then 40 else 100 end "
        "from generate_series('2023-01-01'::timestamp, '2025-03-31', interval '1 day') as day"
    )
    for key, on_hand, rop, needs in (("Y01001", 120, 400, True), ("Y03003", 2000, 900, False)):
        cur.execute(
            "insert into marts.mart_reorder_point values (%s, 30, 8, 7, 40, %s, %s, 0, %s, %s, %s)",
            (key, rop, on_hand, 600 if needs else 0, 25 if needs else 0, needs),
        )


def test_report_renders_charts_without_patient_data(fresh_db: str, tmp_path: Path):
    conn = psycopg2.connect(fresh_db)
    try:
        with conn, conn.cursor() as cur:
            _fill(cur)
        # before the first forecast: no forecast marts yet, a report without forecast or list
        early = render_report(conn, tmp_path / "early", today=date(2025, 4, 1)).read_text("utf-8")
        assert "No drug is below its reorder point" in early and "Last month of data" not in early
        assert forecast_table(conn, horizon=6) == 6 * len(DRUGS)
        assert forecast_table(conn, horizon=6) == 6 * len(DRUGS)  # replaced, not appended
        with conn.cursor() as cur:
            cur.execute(
                "select min(month), count(distinct last_month_treatment), "
                "min(last_month_treatment) from marts.mart_drug_forecast"
            )
            first, treatments, treatment = cur.fetchone()
            cur.execute("select method from marts.mart_reorder_forecast where needs_reorder")
            reordered = [method for (method,) in cur.fetchall()]
        assert first == date(2025, 4, 1)
        assert (treatments, treatment) == (1, "complete")  # March 2025 is a whole month
        assert len(reordered) == 1 and reordered[0]
        path = render_report(conn, tmp_path / "reports", today=date(2025, 4, 2))
    finally:
        conn.close()

    assert path.name == "procurement_2025-04-02.html"
    latest = path.with_name("procurement_latest.html")
    page = path.read_text(encoding="utf-8")
    assert latest.read_text(encoding="utf-8") == page
    assert "<meta charset='utf-8'>" in page
    assert page.count('class="plotly-graph-div"') == 6
    assert page.count('<script type="text/javascript">/**') <= 1  # plotly.js inlined once
    assert "cdn.plot.ly" not in page.split("</head>")[0]
    for title in (
        "Monthly drug spend by ATC group",
        "Top 15 drugs by spend",
        "ABC/XYZ matrix",
        "Forecast vs actual",
        "Reorder list",
        "Antibiotic indicators vs national targets",
        "Essential-drug share and drug cost share",
    ):
        assert title in page, title
    assert "阿莫西林胶囊" in page  # the reorder table, as UTF-8 text
    # chart labels sit in plotly's JSON, where non-ASCII text is \\u-escaped
    assert json.dumps("氨溴索口服溶液")[1:-1] in page or "氨溴索口服溶液" in page
    assert "Data through March 2025" in page
    # the reorder list holds the drug that needs ordering, not the one that does not
    reorder = page.split("Reorder list", 1)[1].split("</section>", 1)[0]
    assert "Y01001" in reorder and "Y03003" not in reorder
    assert "safety stock" in reorder and "backtest WAPE" in reorder
    assert f"<td>{html.escape(reordered[0])}</td>" in reorder  # its forecast's method
    forecast = page.split("Forecast vs actual", 1)[1].split("</section>", 1)[0]
    assert "80% interval" in forecast and "Last month of data: complete for 6 drugs" in forecast
    lowered = page.lower()
    assert "patient_key" not in lowered and "patient_id" not in lowered

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is installed by `make test` (Makefile target browser)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1400,3000",
            "--virtual-time-budget=5000",
            f"--screenshot={shot}",
            latest.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 20_000
    keep = Path(__file__).resolve().parents[1] / "var" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "procurement-report.png")
