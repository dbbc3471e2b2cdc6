"""The forecast marts (hdp.analytics.forecast_mart) on real PostgreSQL: a demo-length history
gives forecasts that follow the calendar, a rerun replaces them, the reorder points take their
safety stock from the forecast's interval, and a hospital's analyst reads only its own rows."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from psycopg2 import errors

from hdp.analytics import forecast_mart
from hdp.analytics.forecast import LEVELS, Forecast
from hdp.analytics.forecast_mart import (
    FORECAST_COLUMNS,
    REORDER_COLUMNS,
    Stock,
    forecast_rows,
    forecast_table,
    off_day_weight,
    reorder_plan,
    write_forecast,
)
from hdp.analytics.holiday_calendar import day_kind
from hdp.analytics.report import render_report
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect
from tests.test_procurement_report import SCHEMA

FIRST_DAY = date(2025, 10, 15)  # the demo's ~90 days: from mid-month
LAST_DAY = {  # H001's January covers 6 of its 20 working days (excluded), H002's 14 (scaled)
    "H001": date(2026, 1, 12),
    "H002": date(2026, 1, 22),
}
DRUGS = {"H001": (("A1", 120), ("A2", 40), ("A3", 300)), "H002": (("B1", 80), ("B2", 200))}
OFF_DAY_SHARE = 0.4  # an off day dispenses 40% of a working day


def _days(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _fill(cur) -> None:
    """The marts the forecast and the report read, for two hospitals' ~90 days of dispensing."""
    cur.execute(SCHEMA)
    rng = np.random.default_rng(18)
    monthly: dict[tuple[str, str, date], float] = {}
    for institution, drugs in DRUGS.items():
        for day in _days(FIRST_DAY, LAST_DAY[institution]):
            off = day_kind(day, "CN")[0]
            for key, rate in drugs:
                qty = float(rng.poisson(rate * (OFF_DAY_SHARE if off else 1.0)))
                cur.execute(
                    "insert into marts.fct_dispensing values (%s, %s, %s)",
                    (institution, datetime.combine(day, datetime.min.time()), qty),
                )
                month = (institution, key, day.replace(day=1))
                monthly[month] = monthly.get(month, 0.0) + qty
    for (institution, key, month), qty in monthly.items():
        cur.execute(
            "insert into marts.mart_drug_consumption_monthly (month, medication_key, "
            "atc_level1, department_key, quantity, spend, lines, institution_id) "
            "values (%s, %s, 'C', 'D01', %s, %s, 1, %s)",
            (month, key, qty, qty * 2.0, institution),
        )
    # the group rows the forecast skips
    cur.execute(
        "insert into marts.mart_drug_consumption_monthly (month, medication_key, department_key, "
        "quantity, spend, institution_id) values ('2025-11-01', 'ALL:C08CA01', 'ALL', 1e6, 1, "
        "'ALL')"
    )
    for institution, drugs in DRUGS.items():
        for key, rate in drugs:
            cur.execute(
                "insert into marts.dim_medication (medication_key, generic_name) values (%s, %s)",
                (key, f"drug {key}"),
            )
            cur.execute(
                "insert into marts.mart_reorder_point (medication_key, lead_time_days, on_hand, "
                "on_order, needs_reorder, institution_id, pack_size) "
                "values (%s, 7, %s, 0, false, %s, 10)",
                (key, rate * 3, institution),  # three days of stock: every drug needs an order
            )


def _query(conn, statement: str, params: tuple = ()) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement, params or None)
        rows = cur.fetchall()
    conn.commit()
    return rows


def test_a_90_day_history_gives_forecasts_that_follow_the_calendar(fresh_db: str, tmp_path: Path):
    conn = psycopg2.connect(fresh_db)
    try:
        with conn, conn.cursor() as cur:
            _fill(cur)
        run = write_forecast(conn, horizon=6)
        drugs = sum(len(d) for d in DRUGS.values())
        assert (run.forecast_rows, run.reorder_rows) == (6 * drugs, drugs)
        assert sum(run.methods.values()) == drugs
        rows = _query(
            conn,
            "select institution_id, medication_key, month, forecast_quantity, method, "
            "calendar_effect, last_month_treatment from marts.mart_drug_forecast "
            "order by medication_key, month",
        )
        path = render_report(conn, tmp_path, today=date(2026, 1, 23))
    finally:
        conn.close()
    by_drug: dict[str, list[tuple]] = {}
    for row in rows:
        by_drug.setdefault(row[1], []).append(row)
    assert set(by_drug) == {key for drugs in DRUGS.values() for key, _ in drugs}
    for key, months in by_drug.items():
        institution = months[0][0]
        values = {month: float(qty) for _, _, month, qty, *_ in months}
        # H001's January is forecast (too little of it seen), H002's is scaled by working days
        first = date(2026, 1, 1) if institution == "H001" else date(2026, 2, 1)
        assert min(values) == first, key
        treatment = months[0][6]
        assert (
            treatment == "excluded" if institution == "H001" else treatment.startswith("scaled x")
        )
        assert max(values.values()) > 1.1 * min(values.values()), f"{key}: a flat forecast"
        # the Spring Festival (17 February 2026) and a short month: February is the low one
        assert values[date(2026, 2, 1)] < 0.9 * values[date(2026, 3, 1)], key
        assert {m[4] for m in months} <= {"last_month", "historic_average", "ets"}, key
        assert {m[5] for m in months} == {"per_working_day"}
    page = path.read_text(encoding="utf-8")
    section = page.split("Forecast vs actual", 1)[1].split("</section>", 1)[0]
    for method in {m[4] for months in by_drug.values() for m in months}:
        assert method in section
    assert "excluded for 3 drugs" in section and "by working days for 2 drugs" in section
    assert "scaled ×" in section


def test_a_rerun_replaces_the_rows_and_an_old_mart_is_made_again(fresh_db: str):
    conn = psycopg2.connect(fresh_db)
    try:
        with conn, conn.cursor() as cur:
            _fill(cur)
            # the mart as the Holt-Winters forecast wrote it
            cur.execute(
                "create table marts.mart_drug_forecast (medication_key text, month date, "
                "forecast_quantity numeric, lower numeric, upper numeric, method text, "
                "generated_at timestamp, primary key (medication_key, month))"
            )
            cur.execute(
                "insert into marts.mart_drug_forecast values "
                "('OLD', '2025-01-01', 1, 0, 2, 'holt_winters', now())"
            )
        first = forecast_table(conn, horizon=3)
        assert forecast_table(conn, horizon=3) == first == 3 * 5
        columns = _query(
            conn,
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'mart_drug_forecast' order by ordinal_position",
        )
        assert [c for (c,) in columns] == [name for name, _ in FORECAST_COLUMNS]
        counts = _query(
            conn,
            "select count(*), count(distinct generated_at), count(*) filter "
            "(where medication_key = 'OLD') from marts.mart_drug_forecast",
        )
        assert counts == [(first, 1, 0)]
        assert _query(conn, "select count(*) from marts.mart_reorder_forecast") == [(5,)]
    finally:
        conn.close()


def test_a_failed_write_leaves_the_previous_marts(fresh_db: str, monkeypatch):
    conn = psycopg2.connect(fresh_db)
    try:
        with conn, conn.cursor() as cur:
            _fill(cur)
        rows = forecast_table(conn, horizon=2)
        before = _query(
            conn, "select generated_at, count(*) from marts.mart_drug_forecast group by 1"
        )

        def broken(*args, **kwargs):  # the second mart's insert fails
            return [(None,) * len(REORDER_COLUMNS)]

        monkeypatch.setattr(forecast_mart, "reorder_rows", broken)
        with pytest.raises(psycopg2.errors.NotNullViolation):
            forecast_table(conn, horizon=2)
        after = _query(
            conn, "select generated_at, count(*) from marts.mart_drug_forecast group by 1"
        )
        assert after == before and before[0][1] == rows
        assert _query(conn, "select count(*) from marts.mart_reorder_forecast") == [(5,)]
    finally:
        conn.close()


def _forecast(value: float, upper_90: float, month: date = date(2026, 4, 1)) -> Forecast:
    values = np.array([value])
    upper = {lv: np.array([upper_90 if lv == 90 else value * 1.5]) for lv in LEVELS}
    lower = {lv: np.array([0.0]) for lv in LEVELS}
    return Forecast([month], values, lower, upper, "auto_ets", 0.12, "none", "complete")


def test_the_reorder_point_takes_its_safety_stock_from_the_interval():
    stock = Stock("H001", "A1", 7.0, on_hand=50.0, on_order=20.0, pack_size=10, expiring_30d_qty=0)
    narrow = reorder_plan(_forecast(300.0, 360.0), stock, review_days=7)
    wide = reorder_plan(_forecast(300.0, 450.0), stock, review_days=7)
    # April has 30 days: 10 a day, 70 over the lead time; safety (360 - 300) x 7 / 30 = 14
    assert narrow["avg_daily_demand"] == 10.0 and narrow["lead_time_demand"] == 70.0
    assert narrow["safety_stock"] == pytest.approx(14.0, abs=0.01)
    assert narrow["reorder_point"] == pytest.approx(84.0, abs=0.01)
    # 84 + 70 (review period) - 50 - 20 = 84, in whole packs of 10
    assert narrow["suggested_order_qty"] == 90.0 and narrow["needs_reorder"]
    assert wide["safety_stock"] > narrow["safety_stock"]
    assert wide["reorder_point"] > narrow["reorder_point"]
    assert wide["suggested_order_qty"] >= narrow["suggested_order_qty"]
    # no lead time: no reorder point, and nothing planned beyond the review period
    none = reorder_plan(_forecast(300.0, 360.0), replace(stock, lead_time_days=None), 7)
    assert none["reorder_point"] == 0 and not none["needs_reorder"]


def test_off_day_weight_and_rows():
    days = list(_days(date(2025, 3, 3), date(2025, 3, 30)))  # four weeks, no holiday
    daily = [(d, 40.0 if d.weekday() >= 5 else 100.0) for d in days]
    assert off_day_weight(daily) == pytest.approx(0.4)
    assert off_day_weight(daily[:5]) == 1.0  # too few days to measure
    assert off_day_weight([(d, 0.0 if d.weekday() >= 5 else 1.0) for d in days]) == 0.05
    fc = _forecast(300.0, 360.0)
    rows = forecast_rows({"Y1": fc}, {"Y1": "H001"}, datetime(2026, 1, 1))
    assert len(rows) == 1 and len(rows[0]) == len(FORECAST_COLUMNS)
    row = dict(zip([name for name, _ in FORECAST_COLUMNS], rows[0], strict=True))
    assert (row["institution_id"], row["medication_key"], row["month"]) == (
        "H001",
        "Y1",
        date(2026, 4, 1),
    )
    assert (row["lower_90"], row["upper_90"], row["upper_80"]) == (0.0, 360.0, 450.0)
    assert (row["method"], row["backtest_wape"], row["last_month_treatment"]) == (
        "auto_ets",
        0.12,
        "complete",
    )


# ------------------------------------------------------------- on the built warehouse


def test_a_hospital_analyst_reads_only_their_hospitals_forecast(built_warehouse):
    lg, _ = built_warehouse
    transformer = connect(lg.transformer)  # as the procurement DAG logs in
    try:
        run = write_forecast(transformer, horizon=3)
    finally:
        transformer.close()
    assert run.forecast_rows > 0 and run.reorder_rows > 0
    owner = connect(lg.warehouse)
    tables = ("mart_drug_forecast", "mart_reorder_forecast")
    try:
        per_institution = {
            t: dict(_query(owner, f"select institution_id, count(*) from marts.{t} group by 1"))
            for t in tables
        }
        flat = _query(
            owner,
            "select count(*) filter (where hi > 1.02 * lo), count(*) from (select medication_key, "
            "max(forecast_quantity) as hi, min(forecast_quantity) as lo "
            "from marts.mart_drug_forecast group by 1 having max(forecast_quantity) > 0) as d",
        )
    finally:
        owner.close()
    # the simulated 60 days (two whole months): each month ahead follows its working days and
    # holidays (Qingming, Labour Day), a few percent apart: not a flat line
    moving, forecast = flat[0]
    assert forecast > 0 and moving > 0.9 * forecast
    institution = sorted(per_institution["mart_drug_forecast"])[0]
    passwords = {n: secrets.token_urlsafe(16) for n in ("t_fc_own", "t_fc_other", "t_fc_group")}
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        security.create_login(
            cur,
            "t_fc_own",
            passwords["t_fc_own"],
            security.INSTITUTION_ANALYST,
            institutions=[institution],
        )
        security.create_login(
            cur,
            "t_fc_other",
            passwords["t_fc_other"],
            security.INSTITUTION_ANALYST,
            institutions=["H999"],
        )
        security.create_login(cur, "t_fc_group", passwords["t_fc_group"], security.ANALYST)
    admin.close()
    host, port, db = lg.warehouse.host, lg.warehouse.port, lg.warehouse.dbname
    as_login = {n: Login(n, p, host, port, db) for n, p in passwords.items()}

    def count(login: Login, table: str) -> dict[str, int]:
        conn = connect(login)
        try:
            return dict(
                _query(conn, f"select institution_id, count(*) from marts.{table} group by 1")
            )
        finally:
            conn.close()

    for table in tables:
        assert count(as_login["t_fc_own"], table) == {
            institution: per_institution[table][institution]
        }
        assert count(as_login["t_fc_other"], table) == {}
        assert count(as_login["t_fc_group"], table) == per_institution[table]
        loader = connect(lg.loader)
        try:
            with pytest.raises(errors.InsufficientPrivilege):
                _query(loader, f"select count(*) from marts.{table}")
        finally:
            loader.close()
