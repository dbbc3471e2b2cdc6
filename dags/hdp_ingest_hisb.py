"""Airflow DAG: daily ingest of Hospital B's HIS (dags/sources/hisb.yml), gated by GX."""

from hdp.orchestration.dags import build_ingest_dag

dag = build_ingest_dag("hisb")
