"""Airflow: the DAG builders (ingest per source manifest, transform, procurement report), alerts,
and the Data quality page of the UI.
"""
