"""Airflow DAG: daily ingest of the LIS file drops (dags/sources/lis.yml), gated by GX."""

from hdp.orchestration.dags import build_file_ingest_dag

dag = build_file_ingest_dag("lis")
