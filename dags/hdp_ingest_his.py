"""Airflow DAG: daily ingest of the HIS source (dags/sources/his.yml), gated by GX."""

from hdp.orchestration.dags import build_ingest_dag

dag = build_ingest_dag("his")
