"""The procurement report DAG: demand forecast → static HTML report, after every transform.

Its tasks log in as the transformer (the dbt profile's HDP_WAREHOUSE_* variables): the loader
login of the `hdp_warehouse` connection may not read the marts, and the forecast writes
marts.mart_drug_forecast and marts.mart_reorder_forecast. Nothing here touches a database at
import or parse time.
"""

from __future__ import annotations

import os

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

from hdp.config import load_settings
from hdp.orchestration.assets import marts_asset
from hdp.orchestration.common import START_DATE, WAREHOUSE_CONN_ID, connection_login, default_args

FORECAST_HORIZON = 6  # months


def transformer_login():
    """The transformer's Login from dbt's profile variables (host and port default to the
    hdp_warehouse connection's)."""
    from hdp.runtime.env import TRANSFORMER_CONN_ID
    from hdp.warehouse.database import Login

    env = os.environ
    if not env.get("HDP_WAREHOUSE_PASSWORD") and load_settings().embedded:
        return connection_login(
            TRANSFORMER_CONN_ID
        )  # embedded: the connection, not the environment
    if not env.get("HDP_WAREHOUSE_USER") or not env.get("HDP_WAREHOUSE_PASSWORD"):
        raise AirflowFailException(
            "the procurement report logs in as the transformer: set HDP_WAREHOUSE_USER and "
            "HDP_WAREHOUSE_PASSWORD (dbt's profile variables; `python -m hdp run` sets them)"
        )
    base = connection_login(WAREHOUSE_CONN_ID)
    return Login(
        user=env["HDP_WAREHOUSE_USER"],
        password=env["HDP_WAREHOUSE_PASSWORD"],
        host=env.get("HDP_WAREHOUSE_HOST") or base.host,
        port=int(env.get("HDP_WAREHOUSE_PORT") or base.port),
        dbname=env.get("HDP_WAREHOUSE_DB") or base.dbname,
        sslmode=env.get("HDP_WAREHOUSE_SSLMODE") or base.sslmode,
        sslrootcert=env.get("HDP_WAREHOUSE_SSLROOTCERT") or None,
        sslcert=env.get("HDP_WAREHOUSE_SSLCERT") or None,
        sslkey=env.get("HDP_WAREHOUSE_SSLKEY") or None,
    )


def run_forecast(horizon: int = FORECAST_HORIZON) -> int:
    from hdp.analytics.forecast_mart import write_forecast
    from hdp.warehouse.database import connect

    conn = connect(transformer_login())
    try:
        run = write_forecast(conn, horizon)
    finally:
        conn.close()
    methods = ", ".join(f"{name} {count}" for name, count in run.methods.items()) or "none"
    last_month = ", ".join(f"{how} {count}" for how, count in run.last_month.items()) or "none"
    print(
        f"marts.mart_drug_forecast: {run.forecast_rows} rows ({horizon} months per drug); "
        f"marts.mart_reorder_forecast: {run.reorder_rows} rows"
    )
    print(f"drugs per method: {methods}; partial last month: {last_month}")
    return run.forecast_rows


def run_report() -> str:
    from hdp.analytics.report import render_report
    from hdp.config import load_settings
    from hdp.warehouse.database import connect

    conn = connect(transformer_login())
    try:
        path = render_report(conn, load_settings().home / "reports")
    finally:
        conn.close()
    print(f"procurement report: {path} (and procurement_latest.html beside it)")
    return str(path)


def build_procurement_report_dag():
    @dag(
        dag_id="hdp_procurement_report",
        description="Demand forecast per drug, then the procurement report (static HTML)",
        schedule=[marts_asset()],  # after every transform; manual runs work too
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["hdp", "report"],
        default_args=default_args("pharmacy-analytics"),
        doc_md="""
### Procurement report
Runs when the transform has rebuilt the marts (asset `hdp://warehouse/marts`), or by hand.

1. **forecast**: the demand forecast of every drug for the next 6 months from
   `marts.mart_drug_consumption_monthly` (`hdp.analytics.forecast`: statsforecast candidates
   chosen per drug by backtest, the Chinese holiday calendar, partial months scaled or
   excluded), written with the reorder points it implies to `marts.mart_drug_forecast` and
   `marts.mart_reorder_forecast` in one transaction (`hdp.analytics.forecast_mart`).
2. **report**: `$HDP_HOME/reports/procurement_<date>.html` (and `procurement_latest.html`):
   spend trends, top drugs, ABC/XYZ, forecast vs actual, the reorder list, antibiotic
   indicators against national targets, essential-drug and drug cost shares. It reads marts
   only and holds no patient identifier; it opens offline (plotly.js inlined).
""",
    )
    def procurement_report():
        @task
        def forecast() -> int:
            return run_forecast()

        @task
        def report() -> str:
            return run_report()

        forecast() >> report()

    return procurement_report()
