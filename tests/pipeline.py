"""Helpers shared by the pipeline tests: run extract + gate for every HIS table without Airflow."""

from __future__ import annotations

import contextlib

from hdp.config import load_settings
from hdp.ingest.extract import connect_source, extract_table
from hdp.manifest import load_manifest
from hdp.quality.gate import (
    GateResult,
    PublishBlocked,
    QualityGateFailed,
    build_reports,
    publish_run,
    validate_batch,
)
from hdp.warehouse.database import connect
from hdp_sim.sources import DemoLogins as Logins


def ingest(
    lg: Logins, run_id: str, *, publish: bool = True
) -> dict[str, GateResult | QualityGateFailed]:
    """ingest_source() of the HIS."""
    return ingest_source(lg, "his", run_id, publish=publish)


# The key in clear (its first column's value) of the row behind a row issue (audit.row_issue as
# i): the audit keeps keyed hashes only, audit.issue_keys() finds the landed row behind one.
CLEAR_KEY = (
    "(select k.record_key::json ->> 0 from audit.issue_keys(i.source, i.table_name, "
    "i.key_columns, array[i.issue_id]) as k limit 1)"
)

# columns that say when a row was built, not what it holds: two builds of the same data differ
BUILD_COLUMNS = frozenset({"transformed_at"})


def table_fingerprint(cur, schema: str, table: str) -> str:
    """Row count and md5 over a table's rows, ordered, build-time columns left out."""
    cur.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    columns = [c for (c,) in cur.fetchall() if c not in BUILD_COLUMNS]
    row = "row(" + ", ".join(f't."{c}"' for c in columns) + ")::text"
    cur.execute(
        f"select count(*)::text || ':' || coalesce(md5(string_agg({row}, '|' "
        f"order by {row})), '') from {schema}.{table} t"
    )
    return cur.fetchone()[0]


def marts_fingerprint(lg: Logins) -> dict[str, str]:
    """md5 over every mart's rows, ordered: equal fingerprints = unchanged marts."""
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        result = {
            mart: table_fingerprint(cur, "marts", mart)
            for mart in (
                "dim_patient",
                "dim_doctor",
                "dim_department",
                "dim_date",
                "fct_encounter",
                "fct_diagnosis",
            )
        }
    wh.close()
    return result


def _gate(lg: Logins, wh, source: str, spec, batch_id: int) -> GateResult:
    """The table's GX gate on one batch, as the DAG's gate task runs it; a failure raises."""
    settings = load_settings()
    return validate_batch(
        wh,
        warehouse_url=lg.loader.url,
        quality_dir=settings.quality_dir,
        expectations_dir=settings.expectations_dir,
        batch_id=batch_id,
        source=source,
        table=spec.name,
        primary_key=list(spec.primary_key),
        watermark=spec.watermark,
    )


def ingest_source(
    lg: Logins, source: str, run_id: str, *, publish: bool = True
) -> dict[str, GateResult | QualityGateFailed]:
    """Extract and gate every table of a simulated source's manifest with its read-only login,
    then publish the run as the DAG does; returns the gate result (or failure) per table. A
    blocked publish withholds the run's passed batches."""
    settings = load_settings()
    manifest = load_manifest(source)
    reader = next(read for name, _, read in lg.simulated_sources() if name == source)
    src, wh = connect_source(reader), connect(lg.loader)  # Hospital B's reader: MariaDB
    outcome: dict[str, GateResult | QualityGateFailed] = {}
    try:
        for spec in manifest.tables:
            loaded = extract_table(src, wh, manifest, spec.name, run_id)
            try:
                outcome[spec.name] = _gate(lg, wh, source, spec, loaded.batch_id)
            except QualityGateFailed as exc:
                outcome[spec.name] = exc
        if publish:
            with contextlib.suppress(PublishBlocked):  # the failing gate's outcome says why
                publish_run(wh, source=source, run_id=run_id, tables=list(outcome))
    finally:
        src.close()
        wh.close()
    build_reports(settings.quality_dir)
    return outcome


def ingest_files(lg: Logins, source: str, folder, run_id: str) -> dict[str, GateResult]:
    """Load, gate and publish the new files of a file source (as hdp_ingest_<source> does);
    returns the gate result per file. A failing gate raises."""
    from hdp.ingest.files import ingest_file, list_new_files, publish_files

    manifest = load_manifest(source)
    spec = manifest.tables[0]
    wh = connect(lg.loader)
    outcome: dict[str, GateResult] = {}
    try:
        for path in list_new_files(wh, manifest, folder):
            loaded = ingest_file(wh, manifest, path, run_id, folder=folder)
            if loaded.batch_id is None:
                continue
            outcome[path.name] = _gate(lg, wh, source, spec, loaded.batch_id)
        publish_files(wh, manifest=manifest, run_id=run_id)
    finally:
        wh.close()
    return outcome
