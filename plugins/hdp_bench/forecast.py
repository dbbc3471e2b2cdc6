"""The demand forecast's benchmark: forecast vs "same month last year" on simulated history.

    python -m hdp_bench forecast [--years 3 --scale 0.02 --holdout 6]   (make forecast-bench)

Generates `years` of HIS + pharmacy on its own cluster (var/bench-forecast, port 55492), then
scores hdp.analytics.forecast.evaluate against the seasonal naive baseline.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import date

import pandas as pd

from hdp.analytics.forecast import Evaluation, evaluate, monthly_series

BENCH_HOME = "var/bench-forecast"
BENCH_PORT = "55492"
BENCH_CONSUMPTION_SQL = """
    select d.drug_code, date_trunc('month', d.dispensed_at)::date, sum(d.quantity),
           coalesce(max(g.atc_code), '')
    from pharmacy.dispensing d
    left join pharmacy.drugs g using (drug_code)
    group by 1, 2
"""


def _isolate_bench(home: str | None, port: str | None) -> None:
    """Own state folder and port; never the demo's cluster or an external server."""
    import os
    from pathlib import Path

    from hdp.config import REPO_ROOT

    os.environ["HDP_HOME"] = (
        home or os.environ.get("HDP_BENCH_FORECAST_HOME") or str(REPO_ROOT / BENCH_HOME)
    )
    os.environ["HDP_PG_PORT"] = port or BENCH_PORT
    if os.environ.get("HDP_PG_URL"):
        raise SystemExit("hdp_bench forecast drops and recreates databases: unset HDP_PG_URL")
    if Path(os.environ["HDP_HOME"]).resolve() == (REPO_ROOT / "var").resolve():
        raise SystemExit("hdp_bench forecast would reset the demo's databases: use another home")


def bench_consumption(years: int, scale: float, seed: int) -> tuple[dict[str, pd.Series], dict]:
    """Generate `years` of HIS + pharmacy from a Jan 1 on the bench cluster; monthly net
    dispensed quantity per drug code, and each code's ATC code."""
    from datetime import timedelta

    import psycopg2
    from psycopg2 import sql

    from hdp.config import load_settings
    from hdp.warehouse.clusters import Cluster
    from hdp.warehouse.database import connect
    from hdp_sim import his, pharmacy
    from hdp_sim.sources import init_databases, logins

    settings = load_settings()
    Cluster.for_home(settings.home, settings.pg_port).start()
    lg = logins(settings)
    admin = psycopg2.connect(lg.admin.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:  # every run starts from empty sources
        for _, owner, _ in lg.simulated_sources():
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(owner.dbname)
                )
            )
    admin.close()
    init_databases(lg)
    first = date(max(2020, 2026 - years), 1, 1)  # the simulator knows Spring Festivals 2020-27
    days = (date(first.year + years, 1, 1) - first).days
    his_conn, pharm = connect(lg.his_owner), connect(lg.pharmacy_owner)
    try:
        his.generate(
            his_conn, his.SimConfig(seed=seed, scale=scale, history_days=days, first_day=first)
        )
        pharmacy.generate(pharm, his_conn, pharmacy.PharmacyConfig(seed=seed))
        with pharm.cursor() as cur:
            cur.execute(BENCH_CONSUMPTION_SQL)
            rows = cur.fetchall()
    finally:
        his_conn.close()
        pharm.close()
    assert first + timedelta(days=days - 1) == date(first.year + years - 1, 12, 31)
    atc = {code: atc_code for code, _, _, atc_code in rows}
    return monthly_series((code, month, qty) for code, month, qty, _ in rows), atc


def _bench_table(evaluation: Evaluation, atc: Mapping[str, str], title: str):
    from rich.table import Table

    groups = [
        ("all drugs", None),
        ("respiratory (ATC R)", [k for k, a in atc.items() if a.startswith("R")]),
        ("antibacterials (J01)", [k for k, a in atc.items() if a.startswith("J01")]),
    ]
    table = Table(title=title)
    for name in (
        "group",
        "drugs",
        "WAPE forecast",
        "WAPE naive",
        "ratio",
        "MAPE forecast",
        "MAPE naive",
        "ratio",
    ):
        table.add_column(name, justify="left" if name == "group" else "right")
    results = {}
    for name, keys in groups:
        sc = evaluation.aggregate(keys)
        f, n = sc["forecast"], sc["naive"]
        pts = evaluation.points
        drugs = (
            pts["medication_key"].nunique()
            if keys is None
            else pts[pts["medication_key"].isin(set(keys))]["medication_key"].nunique()
        )
        table.add_row(
            name,
            str(drugs),
            f"{f.wape:.1%}",
            f"{n.wape:.1%}",
            f"{f.wape / n.wape:.2f}",
            f"{f.mape:.1%}",
            f"{n.mape:.1%}",
            f"{f.mape / n.mape:.2f}",
        )
        results[name] = (f, n)
    return table, results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--holdout", type=int, default=6)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--home", help=f"state folder (default {BENCH_HOME})")
    parser.add_argument("--port", help=f"PostgreSQL port (default {BENCH_PORT})")
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")


def command(args: argparse.Namespace) -> int:
    """`python -m hdp_bench forecast`: the forecast's error against the naive baseline's."""
    if args.years < 2:
        raise SystemExit("--years must be at least 2: the baseline needs a year before the holdout")
    _isolate_bench(args.home, args.port)

    import time

    from rich.console import Console

    from hdp.config import load_settings
    from hdp.warehouse.clusters import stop_embedded

    console = Console(width=120)
    settings = load_settings()
    started = time.perf_counter()
    try:
        series, atc = bench_consumption(args.years, args.scale, args.seed)
    finally:
        if not args.keep:
            stop_embedded(settings)  # both clusters (warehouse, Airflow metadata)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    evaluation = evaluate(series, args.holdout)
    fitted = time.perf_counter() - started
    table, _ = _bench_table(
        evaluation,
        atc,
        f"Demand forecast vs same month last year: last {args.holdout} months held back "
        f"({args.years} years, scale {args.scale}, seed {args.seed})",
    )
    console.print(table)
    methods = evaluation.points.groupby("method")["medication_key"].nunique().to_dict()
    console.print(
        f"methods used: {methods}; data {generated:.0f} s, forecasts {fitted:.1f} s. "
        "ratio < 1: the forecast's error is lower than the baseline's."
    )
    return 0
