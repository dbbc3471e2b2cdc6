"""Airflow DAG: daily ingest of the pharmacy source (dags/sources/pharmacy.yml), gated."""

from hdp.orchestration.dags import build_ingest_dag

dag = build_ingest_dag("pharmacy")
