"""Airflow DAG: demand forecast and the procurement report, after every transform of the marts."""

from hdp.orchestration.procurement import build_procurement_report_dag

dag = build_procurement_report_dag()
