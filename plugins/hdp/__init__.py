"""hdp: the hospital data platform library (docs/architecture.md has the map).

    cli            `python -m hdp`: db, run, quality, security, up, down, summary
    orchestration  Airflow: DAG builders, alerts, the Data quality page
    runtime        set-up of servers and roles, process environment, dbt, embedded Airflow
    ingest         extract of database sources, file drops, freshness
    analytics      demand forecast, procurement report
    quality        checks catalogue, row checks and GX gate, publish, replay, history
    security       roles, identity store, pseudonym keys, TLS
    warehouse      logins and connections, embedded clusters, the platform schema
    config, secrets, manifest, errors   settings, generated secrets, source manifests, safe errors

Each layer imports only the layers below it (.importlinter, `make lint`); nothing here imports
the demo's simulated sources (hdp_sim) or the benchmarks (hdp_bench).
"""

__version__ = "0.1.0"
