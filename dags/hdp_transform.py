"""Airflow DAG: dbt transform to the star schema, triggered by gated raw assets (Cosmos)."""

from hdp.orchestration.dags import build_transform_dag

dag = build_transform_dag()
