"""The run summary a user reads after `make demo`: rows per table, checks, where the report is."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from hdp.config import load_settings
from hdp.quality.gate import data_docs_index
from hdp.quality.history import FAILING
from hdp.warehouse.database import connect, logins, source_login

MARTS = (
    "dim_patient",
    "dim_doctor",
    "dim_department",
    "dim_date",
    "fct_encounter",
    "fct_diagnosis",
)


@dataclass(frozen=True)
class TableStatus:
    table: str
    source_rows: int | None
    raw_rows: int
    last_batch_rows: int | None
    last_status: str | None
    checks_passed: int
    checks_failed: int
    failed_checks: str
    quarantined: int = 0  # rows held back by row-level checks, over every batch


def _count(cur, relation: str) -> int | None:
    cur.execute("select to_regclass(%s)", (relation,))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(f"select count(*) from {relation}")
    return int(cur.fetchone()[0])


def _mysql_count(cur, schema: str, table: str) -> int | None:
    """Rows of a MySQL source's table, or None when its login cannot see it."""
    cur.execute(
        "select count(*) from information_schema.tables where table_schema = %s "
        "and table_name = %s",
        (schema, table),
    )
    if not cur.fetchone()[0]:
        return None
    cur.execute(f"select count(*) from `{schema}`.`{table}`")
    return int(cur.fetchone()[0])


def collect(source: str = "his") -> tuple[list[TableStatus], dict[str, int | None]]:
    from hdp.manifest import load_manifest

    manifest = load_manifest(source)
    lg = logins()
    statuses: list[TableStatus] = []
    reader = source_login(manifest.conn_id) if manifest.conn_id else None
    # the source's own counts, through its read-only login (PostgreSQL or MySQL/MariaDB)
    src = None
    if reader is not None and reader.dialect in ("postgresql", "mysql"):
        from hdp.ingest.extract import connect_source

        src = connect_source(reader)
    wh = connect(lg.warehouse)
    try:
        with wh.cursor() as cur:
            for spec in manifest.tables:
                source_rows = None
                if src is not None:
                    with src.cursor() as scur:
                        source_rows = (
                            _mysql_count(scur, manifest.schema, spec.name)
                            if reader.dialect == "mysql"
                            else _count(scur, f"{manifest.schema}.{spec.name}")
                        )
                raw_rows = _count(cur, f"{manifest.raw_schema}.{spec.name}") or 0
                cur.execute(
                    f"""
                    select b.batch_id, b.rows_written, b.status,
                        count(*) filter (where not {FAILING}),
                        count(*) filter (where {FAILING}),
                        string_agg(case when {FAILING} then coalesce(q.check_id, q.check_name)
                            || coalesce('(' || q.column_name || ')', '')
                            || case when q.status = 'warn' then ' (warning)' else '' end
                            end, ', ')
                    from audit.load_batch b
                    left join audit.quality_result q using (batch_id)
                    where b.source = %s and b.table_name = %s
                    group by b.batch_id order by b.batch_id desc limit 1
                    """,
                    (manifest.source, spec.name),
                )
                row = cur.fetchone() or (None, None, None, 0, 0, None)
                cur.execute(
                    "select count(*) from audit.quarantined_row "
                    "where source = %s and table_name = %s",
                    (manifest.source, spec.name),
                )
                held = int(cur.fetchone()[0])
                statuses.append(
                    TableStatus(
                        spec.name,
                        source_rows,
                        raw_rows,
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        row[5] or "",
                        held,
                    )
                )
            cur.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' "
                "order by table_name"
            )
            built = [name for (name,) in cur.fetchall() if name not in MARTS]
            marts = {name: _count(cur, f"marts.{name}") for name in (*MARTS, *built)}
    finally:
        if src is not None:
            src.close()
        wh.close()
    return statuses, marts


def print_summary(started_at: float | None = None) -> None:
    from hdp.manifest import all_manifests

    console = Console(width=max(110, Console().width))
    every: list[TableStatus] = []
    marts: dict[str, int | None] = {}
    for manifest in all_manifests():
        statuses, marts = collect(manifest.source)
        _print_source(console, manifest.source, statuses)
        every += statuses
    statuses = every
    star = Table(title="Star schema (schema marts)")
    star.add_column("model")
    star.add_column("rows", justify="right")
    for name, rows in marts.items():
        star.add_row(name, "not built" if rows is None else str(rows))
    console.print(star)
    _print_refused(console)
    _print_held_and_anomalies(console)
    _print_cleaning(console)
    _print_history(console)
    passed = sum(s.checks_passed for s in statuses)
    failed = sum(s.checks_failed for s in statuses)
    settings = load_settings()
    console.print(
        f"Quality checks: [green]{passed} passed[/], [red]{failed} failed or warned[/] "
        "(a warning does not block; blocked batches show status rejected)"
    )
    console.print(f"Quality report (GX Data Docs): {data_docs_index(settings.quality_dir)}")
    report = settings.home / "reports" / "procurement_latest.html"
    if report.exists():
        console.print(f"Procurement report: {report}")
    console.print(f"DAG run logs: {settings.home / 'logs'}")
    if started_at is not None:
        console.print(f"Pipeline time: {time.time() - started_at:.0f} s")


def _print_source(console: Console, source: str, statuses: list[TableStatus]) -> None:
    table = Table(title=f"{source} → raw_{source}: last batch per table and its quality gate")
    columns = ("table", "source rows", "raw rows", "last batch rows", "status", "checks ✓", "✗")
    for col in (*columns, "quarantined"):
        table.add_column(col, justify="left" if col in ("table", "status") else "right")
    for s in statuses:
        style = {
            "passed": "green",
            "published": "green",
            "withheld": "yellow",
            "held": "red",
            "rejected": "red",
            "failed": "red",
        }.get(s.last_status or "")
        table.add_row(
            s.table,
            str(s.source_rows),
            str(s.raw_rows),
            str(s.last_batch_rows),
            f"[{style}]{s.last_status}[/]" if style else str(s.last_status),
            str(s.checks_passed),
            str(s.checks_failed),
            str(s.quarantined),
        )
    console.print(table)
    for s in statuses:
        if s.checks_failed:
            console.print(f"[red]✗ {s.table}: checks failing or warning: {s.failed_checks}[/]")


def _print_refused(console: Console) -> None:
    """The latest refused deliveries with their reasons (nothing of them was loaded)."""
    from hdp.quality.history import refused_files

    wh = connect(logins().warehouse)
    try:
        refused = refused_files(wh, limit=10)
    finally:
        wh.close()
    if not refused:
        return
    table = Table(title="Refused files (latest 10): nothing of them is loaded; ask for a re-send")
    for col in ("source", "file", "reason", "when"):
        table.add_column(col)
    for f in refused:
        table.add_row(f.source, f.file_name, f.reason or "", str(f.refused_at)[:19])
    console.print(table)


def _print_held_and_anomalies(console: Console) -> None:
    """Deliveries held for review (with the command that releases each) and the latest column
    profile anomalies (hdp.quality.guard, profiles)."""
    from hdp.quality import guard, profiles

    wh = connect(logins().warehouse)
    try:
        held = guard.held(wh)
        anomalies = profiles.recent_anomalies(wh, limit=10)
    finally:
        wh.close()
    if held:
        table = Table(title="Held deliveries: neither published nor lost, waiting for a review")
        for col in ("table", "batch", "file", "why", "release / reject"):
            table.add_column(col)
        for d in held:
            table.add_row(
                f"{d.source}.{d.table}",
                str(d.batch_id),
                d.file_name or "",
                d.reason,
                f"{guard.release_command(d.batch_id)} / {guard.reject_command(d.batch_id)}",
            )
        console.print(table)
    if anomalies:
        table = Table(title="Column profile anomalies (latest 10): a jump beyond the history")
        for col in ("table", "column", "monitor", "status", "batch", "observed"):
            table.add_column(col)
        for a in anomalies:
            table.add_row(
                f"{a.source}.{a.table}",
                a.column,
                a.check_id,
                a.status,
                str(a.batch_id),
                a.observed,
            )
        console.print(table)


def _print_cleaning(console: Console) -> None:
    from hdp.quality.history import cleaning_counts

    wh = connect(logins().warehouse)
    try:
        counts = cleaning_counts(wh)
    finally:
        wh.close()
    if not counts:
        return
    table = Table(title="Cleaning rules: values changed (latest dbt build)")
    for col in ("rule", "values changed", "rows checked"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for rule, _table, _column, _fixes, checked, changed in counts:
        table.add_row(rule, str(changed), str(checked))
    console.print(table)


HISTORY_DIMENSIONS = {
    "dim_doctor_history": "doctor_key",
    "dim_department_history": "department_key",
    "dim_medication_history": "medication_key",
    "dim_patient_history": "patient_key",
}

# incremental facts that stamp each row they (re)write with transformed_at, and what a row is
INCREMENTAL_FACTS = {
    "fct_encounter": "encounters",
    "fct_prescription_line": "prescription lines",
    "fct_dispensing": "dispensings",
    "fct_lab_result": "lab results",
}


@dataclass(frozen=True)
class HistoryCount:
    dimension: str
    members: int  # durable keys, the unknown member left out
    periods: int
    changed: int  # members with more than one period


def history_counts(cur) -> list[HistoryCount]:
    """Periods per type-2 dimension (the ones built so far)."""
    result = []
    for dimension, key in HISTORY_DIMENSIONS.items():
        cur.execute("select to_regclass(%s)", (f"marts.{dimension}",))
        if cur.fetchone()[0] is None:
            continue
        cur.execute(
            f"select count(distinct {key}), count(*), "
            f"count(distinct {key}) filter (where version_number > 1) "
            f"from marts.{dimension} where not is_unknown_member"
        )
        result.append(HistoryCount(dimension, *(int(v) for v in cur.fetchone())))
    return result


def last_incremental_build(cur, fact: str = "fct_encounter") -> tuple[int, int] | None:
    """(rows the fact's latest build wrote, rows in it), or None before the first build.

    A build stamps the rows it writes with transformed_at and records itself in
    audit.transform_run in the same transaction, so both hold the same now()."""
    cur.execute("select to_regclass(%s)", (f"marts.{fact}",))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(
        "select count(*) filter (where transformed_at = (select max(built_at) "
        f"from audit.transform_run where model = %s)), count(*) from marts.{fact}",
        (f"marts.{fact}",),
    )
    rebuilt, total = cur.fetchone()
    return int(rebuilt), int(total)


def _print_history(console: Console) -> None:
    wh = connect(logins().warehouse)
    try:
        with wh.cursor() as cur:
            counts = history_counts(cur)
            rebuilt = {fact: last_incremental_build(cur, fact) for fact in INCREMENTAL_FACTS}
    finally:
        wh.close()
    if not counts:
        return
    table = Table(title="History: type-2 dimensions (periods valid_from → valid_to)")
    for col in ("dimension", "members", "periods", "members that changed"):
        table.add_column(col, justify="left" if col == "dimension" else "right")
    for c in counts:
        table.add_row(c.dimension, str(c.members), str(c.periods), str(c.changed))
    console.print(table)
    for fact, counts_of_fact in rebuilt.items():
        if counts_of_fact is not None:
            console.print(
                f"{fact} (incremental): the latest build rebuilt {counts_of_fact[0]:,} of "
                f"{counts_of_fact[1]:,} {INCREMENTAL_FACTS[fact]}"
            )
