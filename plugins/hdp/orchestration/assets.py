"""The platform's Airflow assets (data-aware scheduling): each URI is defined here once.

An ingest DAG updates raw_<source> when it has published a run; the transform DAG is scheduled
on every raw asset and updates the marts asset when every model is built and tested; the
procurement report runs on the marts asset. Producers and consumers call these functions, so a
URI can never differ between the task that emits it and the DAG that waits for it.
"""

from __future__ import annotations

from airflow.sdk import Asset

ASSET_PREFIX = "hdp://warehouse/"


def raw_asset(source: str) -> Asset:
    """Asset updated when a run of raw_<source> is published (every table validated)."""
    return Asset(f"{ASSET_PREFIX}raw_{source}", group="raw")


def marts_asset() -> Asset:
    """Asset updated when the transform has built and tested every model."""
    return Asset(f"{ASSET_PREFIX}marts", group="marts")
