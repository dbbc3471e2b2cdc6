"""Airflow plugin: the data-quality page (hdp.orchestration.quality_app) inside the Airflow UI."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from hdp.orchestration.quality_app import app


class HdpQualityPlugin(AirflowPlugin):
    name = "hdp_quality"
    fastapi_apps: ClassVar[list[dict]] = [
        {"app": app, "url_prefix": "/hdp-quality", "name": "HDP data quality"}
    ]
    external_views: ClassVar[list[dict]] = [
        {
            "name": "Data quality",
            "href": "/hdp-quality/",
            "destination": "nav",
            "url_route": "data-quality",
        },
        {
            "name": "Data quality of this run",
            # Airflow fills in the run's ids: the page then lists that run's batches first
            "href": "/hdp-quality/?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": "data-quality-run",
        },
    ]
