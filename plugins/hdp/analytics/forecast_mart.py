"""The forecast marts: `marts.mart_drug_forecast` and `marts.mart_reorder_forecast`.

`forecast_table(conn, horizon)` reads the monthly quantity of every product from
`marts.mart_drug_consumption_monthly` (the group rows left out) and each institution's daily
totals from `marts.fct_dispensing`: their first and last day tell the forecast which months are
partial, and their off days against their working days give the institution's off-day weight
(`CalendarSpec`). It forecasts every product (`hdp.analytics.forecast.forecast_many`) and, in
one transaction, replaces

- `mart_drug_forecast`: per institution, product and month ahead, the forecast, its 80/90/95%
  intervals, the chosen method and its backtest WAPE, the calendar effect and what was done to
  a partial last month;
- `mart_reorder_forecast`: the reorder point of `mart_reorder_point` again, with the demand and
  the safety stock taken from the forecast's first month and its interval instead of a fixed z
  on history (see `reorder_plan`).

Readers see the previous marts or the new ones, never a mix; a failure rolls both back. Both
tables carry the row-level security of `mart_reorder_point` (copied from the catalogue, so the
policy has one definition: dbt's `enable_institution_rls` macro), and the grants every table
of schema marts gets (default privileges, hdp.security.roles). Neither holds a patient key.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg2 import sql

from hdp.analytics.forecast import LEVELS, CalendarSpec, Forecast, forecast_many, monthly_series
from hdp.analytics.holiday_calendar import day_kind

FORECAST_TABLE = "mart_drug_forecast"
REORDER_TABLE = "mart_reorder_forecast"
SCHEMA = "marts"
# the mart whose row-level security both tables copy (dbt's enable_institution_rls)
POLICY_SOURCE = "mart_reorder_point"
COUNTRY = "CN"
OFF_DAY_WEIGHT_RANGE = (0.05, 1.5)
MIN_WORKING_DAYS, MIN_OFF_DAYS = 10, 4  # fewer measured days: off days weigh as working days
SAFETY_LEVEL = 90  # upper_90 is the 95th percentile: the service level of reorder_service_z 1.65

CONSUMPTION_SQL = """
    select institution_id, medication_key, month, sum(quantity)
    from marts.mart_drug_consumption_monthly
    where medication_key is not null and institution_id is not null
      and institution_id <> 'ALL' and department_key <> 'ALL' and medication_key not like 'ALL:%'
    group by institution_id, medication_key, month
"""
DAILY_SQL = """
    select institution_id, dispensed_at::date, sum(quantity)
    from marts.fct_dispensing
    where institution_id is not null and institution_id <> 'ALL' and dispensed_at is not null
    group by institution_id, dispensed_at::date
"""
STOCK_SQL = """
    select institution_id, medication_key, lead_time_days, on_hand, on_order, pack_size,
           expiring_30d_qty
    from marts.mart_reorder_point
"""

FORECAST_COLUMNS = (
    ("institution_id", "text not null"),
    ("medication_key", "text not null"),
    ("month", "date not null"),
    ("forecast_quantity", "numeric not null"),
    *((f"{side}_{lv}", "numeric not null") for lv in LEVELS for side in ("lower", "upper")),
    ("method", "text not null"),
    ("backtest_wape", "numeric"),  # null without a backtest (too short a history)
    ("calendar_effect", "text not null"),
    ("last_month_treatment", "text not null"),
    ("generated_at", "timestamp not null"),
)
FORECAST_KEY = ("institution_id", "medication_key", "month")
REORDER_COLUMNS = (
    ("institution_id", "text not null"),
    ("medication_key", "text not null"),
    ("forecast_month", "date not null"),
    ("forecast_quantity", "numeric not null"),
    (f"upper_{SAFETY_LEVEL}", "numeric not null"),
    ("avg_daily_demand", "numeric not null"),
    ("lead_time_days", "numeric"),
    ("lead_time_demand", "numeric not null"),
    ("safety_stock", "numeric not null"),
    ("reorder_point", "numeric not null"),
    ("on_hand", "numeric not null"),
    ("on_order", "numeric not null"),
    ("suggested_order_qty", "numeric not null"),
    ("expiring_30d_qty", "numeric"),
    ("needs_reorder", "boolean not null"),
    ("method", "text not null"),
    ("backtest_wape", "numeric"),
    ("generated_at", "timestamp not null"),
)
REORDER_KEY = ("institution_id", "medication_key")


# --------------------------------------------------------------------------------------------
# Calendar of each institution


def off_day_weight(daily: Iterable[tuple[date, float]], country: str | None = COUNTRY) -> float:
    """Mean quantity per off day over mean per working day, from first to last day of data
    (days without a row count as zero); 1.0 with too few days, clipped to OFF_DAY_WEIGHT_RANGE."""
    by_day = dict(daily)
    if not by_day:
        return 1.0
    first, last = min(by_day), max(by_day)
    work, off = [], []
    day = first
    while day <= last:
        (off if day_kind(day, country)[0] else work).append(float(by_day.get(day, 0.0)))
        day += timedelta(days=1)
    if len(work) < MIN_WORKING_DAYS or len(off) < MIN_OFF_DAYS or sum(work) <= 0:
        return 1.0
    weight = (sum(off) / len(off)) / (sum(work) / len(work))
    return min(max(weight, OFF_DAY_WEIGHT_RANGE[0]), OFF_DAY_WEIGHT_RANGE[1])


@dataclass(frozen=True)
class InstitutionCalendar:
    first_day: date
    last_day: date
    spec: CalendarSpec


def institution_calendars(
    rows: Iterable[tuple[str, date, float]],
) -> dict[str, InstitutionCalendar]:
    """(institution_id, day, quantity) daily totals → each institution's data span and spec."""
    days: dict[str, list[tuple[date, float]]] = {}
    for institution, day, quantity in rows:
        days.setdefault(institution, []).append((day, float(quantity or 0)))
    return {
        inst: InstitutionCalendar(
            min(d for d, _ in daily),
            max(d for d, _ in daily),
            CalendarSpec(COUNTRY, off_day_weight(daily)),
        )
        for inst, daily in days.items()
    }


# --------------------------------------------------------------------------------------------
# Rows


def _num(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def _wape(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def forecast_rows(
    forecasts: Mapping[str, Forecast], institutions: Mapping[str, str], generated_at: datetime
) -> list[tuple]:
    """Rows of mart_drug_forecast (FORECAST_COLUMNS order), one per product and month ahead."""
    rows = []
    for key in sorted(forecasts):
        fc = forecasts[key]
        for i, month in enumerate(fc.months):
            bounds = [
                _num(side[lv][i]) for lv in LEVELS for side in (fc.lower, fc.upper)
            ]  # lower_80, upper_80, lower_90, ...
            rows.append(
                (
                    institutions[key],
                    key,
                    month,
                    _num(fc.values[i]),
                    *bounds,
                    fc.method,
                    _wape(fc.backtest_wape),
                    fc.calendar,
                    fc.partial,
                    generated_at,
                )
            )
    return rows


@dataclass(frozen=True)
class Stock:
    """One product's row of mart_reorder_point: what the plan starts from."""

    institution_id: str
    medication_key: str
    lead_time_days: float | None
    on_hand: float
    on_order: float
    pack_size: float | None
    expiring_30d_qty: float | None


def reorder_plan(fc: Forecast, stock: Stock, review_days: float) -> dict[str, object]:
    """The reorder point from the forecast's first month and its interval:

    daily demand = forecast / days of the month; lead-time demand = daily x lead time;
    safety stock = (upper_90 - forecast) x lead time / days of the month: the interval's 95th
    percentile, scaled from a month down to the lead time in proportion (a monthly forecast's
    error is mostly an error in the level, which every day of the lead time shares; the daily
    noise has averaged out in the month, so a square-root scaling would count it as
    independent days and give about twice the stock for a week's lead time); reorder point =
    lead-time demand + safety stock; suggested order = max(0, reorder point + daily x review
    period - on hand - on order), rounded up to whole packs. A product without a lead time has no
    reorder point (0), like one without demand.
    """
    month = fc.months[0]
    days = calendar.monthrange(month.year, month.month)[1]
    forecast = max(float(fc.values[0]), 0.0)
    upper = float(fc.upper[SAFETY_LEVEL][0])
    daily = forecast / days
    lead = stock.lead_time_days
    if lead is None or not math.isfinite(lead) or lead < 0:
        lead_demand = safety = 0.0
    else:
        lead_demand = daily * lead
        safety = max(upper - forecast, 0.0) * lead / days
    point = lead_demand + safety
    pack = max(float(stock.pack_size or 1), 1.0)
    short = max(0.0, point + daily * review_days - stock.on_hand - stock.on_order)
    return {
        "forecast_month": month,
        "forecast_quantity": _num(forecast),
        f"upper_{SAFETY_LEVEL}": _num(upper),
        "avg_daily_demand": _num(daily, 4),
        "lead_time_days": lead,
        "lead_time_demand": _num(lead_demand),
        "safety_stock": _num(safety),
        "reorder_point": _num(point),
        "suggested_order_qty": _num(math.ceil(round(short / pack, 9)) * pack),
        "needs_reorder": point > 0 and stock.on_hand + stock.on_order <= point,
    }


def reorder_rows(
    forecasts: Mapping[str, Forecast],
    stocks: Iterable[Stock],
    review_days: float,
    generated_at: datetime,
) -> list[tuple]:
    """Rows of mart_reorder_forecast (REORDER_COLUMNS order): every product of
    mart_reorder_point that has a forecast."""
    rows = []
    for stock in sorted(stocks, key=lambda s: (s.institution_id, s.medication_key)):
        fc = forecasts.get(stock.medication_key)
        if fc is None or not fc.months:
            continue
        plan = reorder_plan(fc, stock, review_days)
        values = {
            "institution_id": stock.institution_id,
            "medication_key": stock.medication_key,
            "on_hand": stock.on_hand,
            "on_order": stock.on_order,
            "expiring_30d_qty": stock.expiring_30d_qty,
            "method": fc.method,
            "backtest_wape": _wape(fc.backtest_wape),
            "generated_at": generated_at,
            **plan,
        }
        rows.append(tuple(values[name] for name, _ in REORDER_COLUMNS))
    return rows


def method_counts(forecasts: Mapping[str, Forecast]) -> dict[str, int]:
    """How many products each method forecasts, most used first."""
    return dict(Counter(fc.method for fc in forecasts.values()).most_common())


# --------------------------------------------------------------------------------------------
# The database


def review_period_days() -> float:
    """dbt's var reorder_review_period_days (dbt_project.yml): one review period for both
    reorder marts."""
    import yaml

    from hdp.config import load_settings

    project = load_settings().dbt_project_dir / "dbt_project.yml"
    return float(yaml.safe_load(project.read_text(encoding="utf-8"))["vars"][
        "reorder_review_period_days"
    ])  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    series: dict
    institutions: dict[str, str]
    calendars: dict[str, InstitutionCalendar]
    stocks: list[Stock]


def _float(value) -> float | None:
    return None if value is None else float(value)


def read_inputs(cur) -> Inputs:
    """The monthly series, each product's institution, each institution's calendar, stock."""
    cur.execute(CONSUMPTION_SQL)
    consumption = cur.fetchall()
    institutions = {key: inst for inst, key, _, _ in consumption}
    series = monthly_series((key, month, qty) for _, key, month, qty in consumption)
    cur.execute(DAILY_SQL)
    calendars = institution_calendars(cur.fetchall())
    cur.execute(STOCK_SQL)
    stocks = [
        Stock(inst, key, _float(lead), float(hand or 0), float(order or 0), _float(pack),
              _float(expiring))
        for inst, key, lead, hand, order, pack, expiring in cur.fetchall()
    ]  # fmt: skip
    return Inputs(series, institutions, calendars, stocks)


def _ident(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def _ensure_table(cur, name: str, columns: Sequence[tuple[str, str]], key: Sequence[str]) -> None:
    """Create the table, or create it again when its columns are not these (an older mart)."""
    cur.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (SCHEMA, name),
    )
    found = [r[0] for r in cur.fetchall()]
    if found == [c for c, _ in columns]:
        return
    if found:
        cur.execute(sql.SQL("drop table {}").format(_ident(name)))
    cur.execute(
        sql.SQL("create table {} ({}, primary key ({}))").format(
            _ident(name),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
            ),
            sql.SQL(", ").join(sql.Identifier(c) for c in key),
        )
    )


def copy_row_security(cur, source: str, target: str) -> int:
    """Give `target` the row-level security policies of `source` (both in schema marts), as
    dbt's post-hook made them; returns how many. RLS is enabled even when `source` has none:
    then no one but the owner and the administrators reads `target` (fails closed)."""
    cur.execute(
        """
        select p.polname, p.polpermissive, p.polcmd,
               array(select case when r = 0 then 'public' else pg_get_userbyid(r) end
                     from unnest(p.polroles) as r),
               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
        from pg_policy as p
        where p.polrelid = to_regclass(%s)
        order by p.polname
        """,
        (f"{SCHEMA}.{source}",),
    )
    policies = cur.fetchall()
    table = _ident(target)
    cur.execute(sql.SQL("alter table {} enable row level security").format(table))
    cur.execute(
        "select polname from pg_policy where polrelid = to_regclass(%s)", (f"{SCHEMA}.{target}",)
    )
    for (name,) in cur.fetchall():
        cur.execute(sql.SQL("drop policy {} on {}").format(sql.Identifier(name), table))
    commands = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}
    for name, permissive, cmd, roles, using, check in policies:
        statement = sql.SQL("create policy {} on {} as {} for {} to {}").format(
            sql.Identifier(name),
            table,
            sql.SQL("permissive" if permissive else "restrictive"),
            sql.SQL(commands[cmd]),
            sql.SQL(", ").join(
                sql.SQL("public") if r == "public" else sql.Identifier(r) for r in roles
            ),
        )
        if using is not None:
            statement += sql.SQL(" using ({})").format(sql.SQL(using))
        if check is not None:
            statement += sql.SQL(" with check ({})").format(sql.SQL(check))
        cur.execute(statement)
    return len(policies)


def _replace(cur, name: str, columns, key, rows: list[tuple]) -> None:
    from psycopg2.extras import execute_values

    _ensure_table(cur, name, columns, key)
    copy_row_security(cur, POLICY_SOURCE, name)
    cur.execute(sql.SQL("delete from {}").format(_ident(name)))
    if rows:
        execute_values(
            cur,
            sql.SQL("insert into {} ({}) values %s")
            .format(_ident(name), sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns))
            .as_string(cur),
            rows,
            page_size=1000,
        )


@dataclass(frozen=True)
class ForecastRun:
    forecast_rows: int
    reorder_rows: int
    methods: dict[str, int]  # products per chosen method
    last_month: dict[str, int]  # products per treatment of the partial last month


def write_forecast(conn, horizon: int = 6) -> ForecastRun:
    """Forecast every product and replace both marts in one transaction (module docstring)."""
    with conn.cursor() as cur:
        inputs = read_inputs(cur)
    conn.rollback()  # end the reading transaction before the long forecast
    known = {k: v for k, v in inputs.series.items() if inputs.institutions.get(k)}
    calendars = inputs.calendars
    specs = {
        k: calendars[inst].spec
        for k, inst in inputs.institutions.items()
        if k in known and inst in calendars
    }
    bounds = {
        k: (calendars[inst].first_day, calendars[inst].last_day)
        for k, inst in inputs.institutions.items()
        if k in known and inst in calendars
    }
    forecasts = forecast_many(
        known, horizon, spec=CalendarSpec(COUNTRY), specs=specs, bounds=bounds
    )
    generated_at = datetime.now(UTC).replace(tzinfo=None)
    rows = forecast_rows(forecasts, inputs.institutions, generated_at)
    plans = reorder_rows(forecasts, inputs.stocks, review_period_days(), generated_at)
    try:
        with conn.cursor() as cur:
            _replace(cur, FORECAST_TABLE, FORECAST_COLUMNS, FORECAST_KEY, rows)
            _replace(cur, REORDER_TABLE, REORDER_COLUMNS, REORDER_KEY, plans)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return ForecastRun(
        len(rows),
        len(plans),
        method_counts(forecasts),
        dict(Counter(fc.partial for fc in forecasts.values()).most_common()),
    )


def forecast_table(conn, horizon: int = 6) -> int:
    """Replace marts.mart_drug_forecast and marts.mart_reorder_forecast (one transaction);
    returns the forecast's rows."""
    return write_forecast(conn, horizon).forecast_rows
