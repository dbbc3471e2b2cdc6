"""The quality gate (write-audit-publish): validate one loaded batch against the checks
catalogue (hdp.quality.checks), quarantine failing rows, record every result in
audit.quality_result, mark the batch passed or rejected; publish_run() then promotes a run's
batches atomically.

Validation runs as SQL aggregates inside PostgreSQL (GX's SQL execution engine); no table is
pulled into Python. Results hold counts and observed aggregates, never row values: GX's
`partial_unexpected_list` (which would quote patient data) is not kept.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg2 import sql

from hdp.manifest import SourceManifest, load_manifest
from hdp.quality.checks import Check, for_table, load_catalogue
from hdp.quality.record_keys import clear_key_sql, in_quarantine_sql, insert_issues_sql

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
for _name in ("great_expectations", "great_expectations._docs_decorators"):
    logging.getLogger(_name).setLevel(logging.WARNING)

log = logging.getLogger(__name__)

METADATA = ("_batch_id", "_extracted_at", "_source")
ROW_ISSUE_MIN_ROWS = 10  # a row check blocks a batch only past its share AND this many rows
RECENT_BATCHES = 7  # volume.vs_recent compares with the median of this many incremental batches

GX_URL_ENV = "HDP_GX_WAREHOUSE_URL"  # GX stores "${HDP_GX_WAREHOUSE_URL}", never the password


class QualityGateFailed(RuntimeError):
    """A batch failed blocking checks; its rows are not published."""


class DeliveryHeld(QualityGateFailed):
    """The delivery guard held a batch for review (hdp.quality.guard): not published, not lost."""


class PublishBlocked(RuntimeError):
    """A run's batches were not all validated: none of them is published."""


@dataclass
class CheckResult:
    check: str  # the GX expectation type, or "row_check" / "volume_check"
    column: str | None
    success: bool  # the check found nothing wrong
    observed: str
    expected: str
    check_id: str = ""
    category: str = ""
    severity: str = ""
    threshold: str = ""
    status: str = "pass"  # pass | quarantined | warn | fail (blocks) | held (for review)
    fix: str = ""


@dataclass
class GateResult:
    batch_id: int
    source: str
    table: str
    success: bool
    checks: list[CheckResult] = field(default_factory=list)
    data_docs: Path | None = None
    rows_quarantined: int = 0

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that block the batch."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def held(self) -> CheckResult | None:
        """The delivery guard's hold, if it holds the batch for review."""
        return next((c for c in self.checks if c.status == "held"), None)

    def failure_message(self) -> str:
        lines = [
            f"Quality gate FAILED for {self.source}.{self.table} (batch {self.batch_id}); "
            "the batch is rejected and nothing of it is published."
        ]
        for c in self.failed:
            where = f" on column {c.column}" if c.column else ""
            lines.append(
                f"  - {c.check_id or c.check}{where}: observed {c.observed}, expected {c.expected}"
            )
            if c.fix:
                lines.append(f"    fix: {c.fix}")
        lines.append(f"  Report: {self.data_docs} (and the Data quality page of the Airflow UI)")
        lines.append(
            "  Next: fix the source, the extract or the check (expectations/), then rerun this "
            "table's extract and gate, then publish (the publish task's log lists the commands); "
            "or leave the run: the next run re-extracts from the last published watermark."
        )
        return "\n".join(lines)


def _key_sql(primary_key: list[str] | tuple[str, ...], alias: str | None = None) -> sql.Composable:
    """A row's key in clear (audit.record_key() of its primary key columns), to match rows with
    the keys behind row issues; never stored (hdp.quality.record_keys)."""
    return clear_key_sql(primary_key, alias)


def _in_quarantine(
    source: str, table: str, primary_key: list[str] | tuple[str, ...], alias: str
) -> sql.Composable:
    """True for a row (as `alias`) held in quarantine: audit.quarantined_keys(), the one
    definition dbt's staging leaves out too (hdp.quality.record_keys)."""
    return in_quarantine_sql(source, table, primary_key, alias)


def build_expectations(
    checks: list[Check],
    columns: list[str],
    primary_key: list[str],
    watermark: str,
    metadata: Sequence[str] = METADATA,
) -> list:
    """GX expectations of the batch-level catalogue entries, each tagged with its check id.
    `watermark`: the table's watermark column in its manifest (the default checks' {watermark};
    a file table has none, and a check of {watermark} does not apply to it); `metadata`: the
    load metadata columns the raw table has besides the source's (the default checks'
    {columns}: a database's METADATA, a file's hdp.ingest.files.file_metadata)."""
    import great_expectations as gx

    out = []
    for check in checks:
        if check.level != "batch" or check.expectation is None:
            continue
        cls = getattr(gx.expectations, check.expectation)
        kwargs = dict(check.kwargs)
        if kwargs.get("column_set") == "{columns}":
            kwargs["column_set"] = [*columns, *metadata]
        if kwargs.get("column") == "{watermark}":
            if not watermark:
                continue  # a file source: no change time to check
            kwargs["column"] = watermark
        targets = [kwargs]
        if kwargs.get("column") == "{primary_key}":
            if check.expectation == "ExpectColumnValuesToBeUnique" and len(primary_key) > 1:
                cls = gx.expectations.ExpectCompoundColumnsToBeUnique
                targets = [{"column_list": list(primary_key)}]
            else:
                targets = [{**kwargs, "column": key} for key in primary_key]
        for target in targets:
            if check.threshold is not None and "column" in target:
                target["mostly"] = float(check.threshold)
            out.append(
                cls(
                    **target,
                    meta={"check_id": check.id, "severity": check.severity},
                    notes=f"{check.means} Fix: {check.fix}",
                )
            )
    return out


@contextmanager
def _gx_lock(quality_dir: Path) -> Iterator[None]:
    """Hold the quality folder's GX lock: one process at a time reads and rewrites the file
    context (great_expectations.yml, suites, checkpoints). Gates of different sources run at
    once on the same folder (mapped tasks, several workers on a shared volume), and a reader
    catching great_expectations.yml half rewritten failed the gate with GX's `TypeError:
    argument of type 'NoneType' is not iterable` or `InvalidDataContextConfigError` (issue 19's
    distributed run; tests/test_gx_lock.py). An flock: released if the process dies."""
    quality_dir.mkdir(parents=True, exist_ok=True)
    with open(quality_dir / ".gx.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(quality_dir: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quality_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(quality_dir))
    bars = context.variables.progress_bars
    enabled = bars is None or (bars.get("globally") if isinstance(bars, dict) else bars.globally)
    if enabled:
        # task logs are read by people: no tqdm bars
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.variables.save()
    return context


def data_docs_index(quality_dir: Path) -> Path:
    return quality_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _describe(result, catalogue: dict[str, Check]) -> CheckResult:
    cfg = result.expectation_config
    kwargs = dict(cfg.kwargs)
    column = kwargs.pop("column", None)
    kwargs.pop("batch_id", None)
    res = result.result or {}
    if "observed_value" in res:
        observed = res["observed_value"]
    elif "unexpected_count" in res:
        observed = f"{res.get('unexpected_count')} unexpected of {res.get('element_count')}"
        if res.get("unexpected_percent") is not None:
            observed += f" ({res['unexpected_percent']:.2f}%)"
    else:
        observed = "n/a"
    if isinstance(observed, list | dict):
        observed = json.dumps(observed, ensure_ascii=False, default=str)[:200]
    expected = json.dumps(kwargs, ensure_ascii=False, default=str)[:300]
    check = catalogue.get((cfg.meta or {}).get("check_id", ""))
    success = bool(result.success)
    severity = check.severity if check else "block"
    return CheckResult(
        cfg.type,
        column,
        success,
        str(observed),
        expected,
        check_id=check.id if check else cfg.type,
        category=check.category if check else "",
        severity=severity,
        threshold="" if check is None or check.threshold is None else str(check.threshold),
        status="pass" if success else ("warn" if severity == "warn" else "fail"),
        fix=check.fix if check else "",
    )


def _batch_facts(wh, batch_id: int, source: str, table: str) -> tuple[int, list[str]]:
    """Rows read by the extract, and the raw table's source columns."""
    with wh.cursor() as cur:
        cur.execute(
            # rows re-read in the look-back window and already published are not stored again
            "select rows_read - coalesce(rows_skipped, 0), status from audit.load_batch "
            "where batch_id = %s",
            (batch_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise ValueError(f"batch {batch_id} is not in audit.load_batch")
        expected_rows, status = row
        if status not in ("loaded", "passed", "rejected", "withheld"):
            raise QualityGateFailed(
                f"batch {batch_id} of {source}.{table} is {status!r}, not loaded: rerun its extract"
            )
        cur.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (f"raw_{source}", table),
        )
        raw_columns = [c for (c,) in cur.fetchall() if not c.startswith("_")]
    wh.rollback()
    return int(expected_rows or 0), raw_columns


def run_row_checks(
    wh, *, batch_id: int, source: str, table: str, primary_key: list[str], checks: list[Check]
) -> list[CheckResult]:
    """Record rows failing each row-level check in audit.row_issue (the key's keyed hash, check,
    fault: never a value, nor the key in clear); a rerun replaces the batch's issues. Commits
    with the caller's record()."""
    raw = sql.Identifier(f"raw_{source}"), sql.Identifier(table)
    results = []
    with wh.cursor() as cur:
        cur.execute("delete from audit.row_issue where batch_id = %s", (batch_id,))
        cur.execute(
            sql.SQL("select count(*) from {}.{} where _batch_id = %s").format(*raw), (batch_id,)
        )
        rows = cur.fetchone()[0]
        for check in checks:
            action = "quarantine" if check.severity == "quarantine" else "warn"
            insert = insert_issues_sql(raw, primary_key, check.fails_when or "false")
            params = (batch_id, source, table, check.id, check.column, check.category, action)
            cur.execute("savepoint row_check")
            try:
                cur.execute(insert, (batch_id, *params, source, table, batch_id))
            except Exception as exc:
                cur.execute("rollback to savepoint row_check")
                raise QualityGateFailed(
                    f"row check {check.id} of {source}.{table} could not run: "
                    f"{str(exc).splitlines()[0]} (fix fails_when in expectations/{source}.yml)"
                ) from exc
            failing = cur.rowcount
            share = failing / rows if rows else 0.0
            limit = float(check.threshold if check.threshold is not None else 0.0)
            too_many = share > limit and failing >= ROW_ISSUE_MIN_ROWS
            if failing == 0:
                status = "pass"
            elif too_many and check.severity == "quarantine":
                status = "fail"
            elif check.severity == "quarantine":
                status = "quarantined"
            else:
                status = "warn"
            results.append(
                CheckResult(
                    "row_check",
                    check.column,
                    failing == 0,
                    f"{failing} of {rows} rows ({share:.2%}) {action}",
                    f"at most {limit:.0%} of the batch (or fewer than {ROW_ISSUE_MIN_ROWS} rows)",
                    check_id=check.id,
                    category=check.category,
                    severity=check.severity,
                    threshold=str(check.threshold),
                    status=status,
                    fix=check.fix,
                )
            )
    return results


def volume_check(wh, *, batch_id: int, source: str, table: str, check: Check) -> CheckResult:
    """volume.vs_recent: this incremental batch's rows against the median of recent ones."""
    low, high = (check.threshold or [0.2, 5.0])[:2]
    with wh.cursor() as cur:
        cur.execute(
            "select rows_read, low_watermark is null and low_watermark_id is null "
            "from audit.load_batch where batch_id = %s",
            (batch_id,),
        )
        rows, full_load = cur.fetchone()
        cur.execute(
            """
            select percentile_cont(0.5) within group (order by rows_read), count(*)
            from (
                select rows_read from audit.load_batch
                where source = %s and table_name = %s and batch_id < %s
                  and (low_watermark is not null or low_watermark_id is not null)
                  and status = 'published'
                order by batch_id desc limit %s
            ) recent
            """,
            (source, table, batch_id, RECENT_BATCHES),
        )
        median, n = cur.fetchone()
    wh.rollback()
    if full_load or not n:
        observed, ok = ("full load" if full_load else "no recent incremental batch"), True
    else:
        ratio = (rows or 0) / median if median else (1.0 if not rows else float("inf"))
        observed, ok = (
            f"{rows} rows, {ratio:.2f}× the median {median:g} of {n}",
            low <= ratio <= high,
        )
    return CheckResult(
        "volume_check",
        None,
        ok,
        observed,
        f"between {low}× and {high}× the median of the last {RECENT_BATCHES}",
        check_id=check.id,
        category=check.category,
        severity=check.severity,
        threshold=json.dumps(check.threshold),
        status="pass" if ok else ("warn" if check.severity == "warn" else "fail"),
        fix=check.fix,
    )


def gate_query(wh, *, batch_id: int, source: str, table: str, primary_key: list[str]) -> str:
    """The SQL of the gate's GX query asset: the batch as it will be published (quarantined rows
    set aside). Built with quoted identifiers and a literal batch id, never by formatting a
    name into text: a table named `x" as r --` once turned the rest of the query into a
    comment, and the gate validated the whole table instead of the batch."""
    query = sql.SQL(
        "select * from {schema}.{table} as r where r._batch_id = {batch} and not {quarantined}"
    ).format(
        schema=sql.Identifier(f"raw_{source}"),
        table=sql.Identifier(table),
        batch=sql.Literal(int(batch_id)),
        quarantined=_in_quarantine(source, table, primary_key, "r"),
    )
    return query.as_string(wh)


def _run_gx(
    *,
    query: str,
    warehouse_url: str,
    quality_dir: Path,
    batch_id: int,
    source: str,
    table: str,
    expectations: list,
    expected_rows: int,
):
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    with _gx_lock(quality_dir):
        os.environ[GX_URL_ENV] = warehouse_url
        context = _context(quality_dir)
        datasource = context.data_sources.add_or_update_postgres(
            name="warehouse", connection_string="${" + GX_URL_ENV + "}"
        )
        asset_name = f"raw_{source}.{table}"
        if asset_name in datasource.get_asset_names():
            datasource.delete_asset(asset_name)
        # the batch as it will be published (gate_query): quarantined rows are set aside
        asset = datasource.add_query_asset(name=asset_name, query=query)
        batch_definition = asset.add_batch_definition_whole_table("batch")
        suite = context.suites.add_or_update(
            gx.ExpectationSuite(
                name=asset_name, expectations=expectations, meta={"source": source, "table": table}
            )
        )
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=asset_name, data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"gate_{source}_{table}",
                validation_definitions=[validation],
                # Data Docs are rebuilt once per run (build_reports), not once per table: a rebuild
                # renders the whole history, so per-table rebuilds grew with every day of history.
                actions=[],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
            )
        )
        run = checkpoint.run(
            expectation_parameters={"expected_row_count": expected_rows},
            # Data Docs list runs by name: make each one traceable to its load batch
            run_id=RunIdentifier(run_name=f"batch-{int(batch_id)}"),
        )
        return next(iter(run.run_results.values())).results


def validate_batch(
    wh,
    *,
    warehouse_url: str,
    quality_dir: Path,
    expectations_dir: Path,
    batch_id: int,
    source: str,
    table: str,
    primary_key: list[str],
    watermark: str,
    metadata: Sequence[str] = METADATA,
) -> GateResult:
    """Validate raw_<source>.<table> rows of one batch against the checks catalogue: row-level
    checks quarantine or flag rows, batch-level checks (GX, volume) block or warn. Marks the
    batch passed or rejected; raises QualityGateFailed when a blocking check fails.
    `watermark`: the table's watermark in its manifest (checked not null by default; none for a
    file source); `metadata`: the raw table's load metadata columns (build_expectations)."""
    checks = for_table(load_catalogue(expectations_dir, source), table)
    catalogue = {c.id: c for c in checks}
    _refuse_reviewed(wh, batch_id, source, table)
    rows_read, raw_columns = _batch_facts(wh, batch_id, source, table)
    results = run_row_checks(
        wh,
        batch_id=batch_id,
        source=source,
        table=table,
        primary_key=primary_key,
        checks=[c for c in checks if c.level == "row"],
    )
    wh.commit()  # the GX session must see this batch's quarantine
    quarantined = _quarantined(wh, batch_id, source, table, primary_key)
    gx_results = _run_gx(
        query=gate_query(
            wh, batch_id=batch_id, source=source, table=table, primary_key=primary_key
        ),
        warehouse_url=warehouse_url,
        quality_dir=quality_dir,
        batch_id=batch_id,
        source=source,
        table=table,
        expectations=build_expectations(checks, raw_columns, primary_key, watermark, metadata),
        expected_rows=rows_read - quarantined,
    )
    results += [_describe(r, catalogue) for r in gx_results]
    results += profile_and_guard(
        wh, batch_id=batch_id, source=source, table=table, primary_key=primary_key, checks=checks
    )
    if "volume.vs_recent" in catalogue:
        results.append(
            volume_check(
                wh,
                batch_id=batch_id,
                source=source,
                table=table,
                check=catalogue["volume.vs_recent"],
            )
        )
    gate = GateResult(
        batch_id=batch_id,
        source=source,
        table=table,
        success=not any(c.status == "fail" for c in results),
        checks=results,
        data_docs=data_docs_index(quality_dir),
        rows_quarantined=quarantined,
    )
    record(wh, gate)
    if gate.success and gate.held:
        _hold(wh, gate, rows_read, primary_key, quality_dir)
    if not gate.success:
        build_reports(quality_dir)  # the report must show the failure it is cited for
        log.error(gate.failure_message())
        raise QualityGateFailed(gate.failure_message())
    log.info(
        "quality gate passed for %s.%s batch %s (%d checks, %d rows quarantined, %d warnings)",
        source,
        table,
        batch_id,
        len(gate.checks),
        quarantined,
        sum(c.status == "warn" for c in gate.checks),
    )
    return gate


def _refuse_reviewed(wh, batch_id: int, source: str, table: str) -> None:
    """A batch held for review is not validated again (a rerun or a cleared task keeps it
    held), nor one a reviewer rejected; a released one is validated without the guard."""
    from hdp.quality import guard

    held, decided, reason = guard.decision(wh, batch_id)
    if held and decided is None:
        message = guard.held_message(source, table, batch_id, reason)
        log.error(message)
        raise DeliveryHeld(message)
    if decided == "rejected":
        raise QualityGateFailed(
            f"{source}.{table} batch {batch_id} was rejected on review ({reason}); it is never "
            "published. Re-send or readmit a good file (`python -m hdp files readmit`)."
        )


def profile_and_guard(
    wh, *, batch_id: int, source: str, table: str, primary_key: list[str], checks: list[Check]
) -> list[CheckResult]:
    """Profile the batch's columns (audit.column_profile, one SQL statement), run the profile
    monitors against their history and the delivery guard (hdp.quality.profiles, guard)."""
    from hdp.quality import guard, profiles

    found, past = profiles.profile_batch(
        wh, batch_id=batch_id, source=source, table=table, checks=checks
    )
    profiles.store(wh, batch_id=batch_id, source=source, table=table, profiles=found)
    wh.commit()
    anomalies = profiles.detect(found, past, checks)
    results = []
    for a in anomalies:
        check = a.check
        results.append(
            CheckResult(
                "profile_monitor",
                a.column,
                False,
                a.observed,
                a.expected,
                check_id=a.check_id,
                category=check.category if check else "plausibility",
                severity=a.severity,
                threshold="" if check is None else json.dumps(check.threshold),
                status="fail" if a.severity == "block" else "warn",
                fix=check.fix if check else "",
            )
        )
    check = next((c for c in checks if c.id == guard.CHECK_ID), None)
    verdict = guard.review(
        wh,
        batch_id=batch_id,
        source=source,
        table=table,
        primary_key=primary_key,
        check=check,
        anomalies=anomalies,
    )
    if verdict is not None and check is not None:
        results.append(
            CheckResult(
                "delivery_guard",
                None,
                verdict.status == "pass",
                verdict.reason or verdict.observed,
                verdict.expected,
                check_id=check.id,
                category=check.category,
                severity=check.severity,
                threshold=json.dumps(check.threshold),
                status=verdict.status,
                fix=check.fix,
            )
        )
    return results


def _hold(wh, gate: GateResult, rows: int, primary_key: list[str], quality_dir: Path) -> None:
    """Record the guard's hold and stop the gate task with the reason and the commands."""
    from hdp.quality import guard

    held = gate.held
    assert held is not None
    guard.hold(
        wh,
        batch_id=gate.batch_id,
        source=gate.source,
        table=gate.table,
        rows=rows,
        primary_key=primary_key,
        reason=held.observed,
    )
    build_reports(quality_dir)  # the report must show the hold it is cited for
    message = guard.held_message(gate.source, gate.table, gate.batch_id, held.observed)
    log.error(message)
    raise DeliveryHeld(message)


def _quarantined(wh, batch_id: int, source: str, table: str, primary_key: list[str]) -> int:
    """Raw rows of the batch held in quarantine: every row whose key is quarantined (a key a
    re-sent line repeats counts each time), as the gate's query asset leaves them all out."""
    with wh.cursor() as cur:
        cur.execute(
            sql.SQL("select count(*) from {}.{} as r where r._batch_id = %s and {}").format(
                sql.Identifier(f"raw_{source}"),
                sql.Identifier(table),
                _in_quarantine(source, table, primary_key, "r"),
            ),
            (batch_id,),
        )
        n = cur.fetchone()[0]
    wh.rollback()
    return int(n)


def build_reports(quality_dir: Path) -> Path:
    """Rebuild GX Data Docs from every stored validation result; returns the index page."""
    with _gx_lock(quality_dir):
        _context(quality_dir).build_data_docs()
    return data_docs_index(quality_dir)


def record(wh, gate: GateResult) -> None:
    """Store every check's outcome and the batch verdict in one transaction."""
    with wh.cursor() as cur:
        cur.execute("delete from audit.quality_result where batch_id = %s", (gate.batch_id,))
        cur.executemany(
            """
            insert into audit.quality_result
                (batch_id, source, table_name, check_name, column_name, success,
                 observed_value, expected, check_id, category, severity, threshold, status)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    gate.batch_id,
                    gate.source,
                    gate.table,
                    c.check,
                    c.column,
                    c.success,
                    c.observed,
                    c.expected,
                    c.check_id,
                    c.category,
                    c.severity,
                    c.threshold,
                    c.status,
                )
                for c in gate.checks
            ],
        )
        failed = "; ".join(f"{c.check_id}({c.column or ''})" for c in gate.failed)
        cur.execute(
            "update audit.load_batch set status = %s, error = %s, rows_quarantined = %s "
            "where batch_id = %s",
            (
                ("held" if gate.held else "passed") if gate.success else "rejected",
                failed or None,
                gate.rows_quarantined,
                gate.batch_id,
            ),
        )
    wh.commit()
    # dbt's staging joins on the verdicts: keep the planner's picture of the table current
    with wh.cursor() as cur:
        cur.execute("select audit.analyze_load_batch()")
    wh.commit()


VALIDATED = ("passed", "withheld", "published")  # withheld: passed, held back by a sibling


def publish_run(
    wh, *, source: str, run_id: str, tables: list[str], manifest: SourceManifest | None = None
) -> dict[str, int]:
    """Promote every validated batch of one run in a single transaction, or none of them.

    Staging reads published batches only, so the warehouse moves from one consistent state to
    the next: a failed gate on one table holds back (withheld) its siblings of the same run, and
    a crash before this commit leaves everything as it was. Rerunning the failed table's
    extract and gate, then publish, promotes the whole run: withheld batches passed their gate
    and need no rerun. Publishes of one source are serialised (a transaction lock), and a
    batch's rows whose version a published batch already holds (a run that overlapped this one)
    are dropped first, so no version is published twice. A run already published is left as it
    is. Returns rows published per table (rows written less rows quarantined); {} when the run
    was published before. `manifest`: the source's, when the caller has it (a file source's
    DAG); else read from dags/sources.
    """
    manifest = manifest or load_manifest(source)
    with wh.cursor() as cur:
        cur.execute(
            "select pg_advisory_xact_lock(hashtext('hdp.publish'), hashtext(%s))", (source,)
        )
        cur.execute(
            "select table_name, status, batch_id from audit.load_batch "
            "where source = %s and run_id = %s for update",
            (source, run_id),
        )
        found = {t: (st, b) for t, st, b in cur.fetchall()}
        status = {t: st for t, (st, _) in found.items()}
        blocked = {t: status.get(t, "missing") for t in tables if status.get(t) not in VALIDATED}
        if blocked:
            cur.execute(
                "update audit.load_batch set status = 'withheld' "
                "where source = %s and run_id = %s and status = 'passed'",
                (source, run_id),
            )
            wh.commit()
            raise PublishBlocked(_blocked_message(source, run_id, tables, blocked))
        if all(status.get(t) == "published" for t in tables):
            wh.commit()
            log.info(
                "%s run %s is already published: nothing to publish again (a published batch "
                "is immutable)",
                source,
                run_id,
            )
            return {}
        for table, (st, batch_id) in found.items():
            if st in ("passed", "withheld") and (
                manifest.kind == "database" or manifest.table(table).content_hash
            ):
                _drop_duplicates_before_publish(cur, manifest, table, batch_id)
        cur.execute(
            """
            update audit.load_batch set status = 'published', published_at = now()
            where source = %s and run_id = %s and status in ('passed', 'withheld')
            returning table_name, rows_written - coalesce(rows_quarantined, 0)
            """,
            (source, run_id),
        )
        published = {t: int(n or 0) for t, n in cur.fetchall()}
    wh.commit()
    with wh.cursor() as cur:
        cur.execute("select audit.analyze_load_batch()")
    wh.commit()
    log.info("published %s run %s: %s", source, run_id, published)
    return published


def _blocked_message(source: str, run_id: str, tables: list[str], blocked: dict) -> str:
    """What the operator reads when a run is held back, and the commands that recover it."""
    listed = ", ".join(f"{t} ({st})" for t, st in sorted(blocked.items()))
    dag = f"hdp_ingest_{source}"
    steps = "; ".join(
        f"`airflow tasks test {dag} extract {run_id} --map-index {tables.index(t)}`, then "
        f"`airflow tasks test {dag} gate {run_id} --map-index {tables.index(t)}`"
        for t in sorted(blocked, key=tables.index)
    )
    return (
        f"nothing of {source} run {run_id} is published: not validated: {listed}. "
        "Every other table of the run is withheld, so the warehouse stays consistent. "
        "Fix the cause (see the gate task's log and the Data quality page), then rerun each "
        f"failed table's extract and gate: {steps}; then `airflow tasks test {dag} publish "
        f"{run_id}`. The extract re-reads the table's interval from the fixed source, and "
        "publish promotes the whole run (the withheld tables need no rerun)."
    )


def _drop_duplicates_before_publish(cur, manifest, table: str, batch_id: int) -> None:
    """Drop the batch's rows that a published batch already holds (an overlapping run got
    there first), with their quarantine records, and keep the batch's counts true."""
    from hdp.quality.dedup import drop_published_duplicates, drop_repeated_content

    spec = manifest.table(table)
    if spec.content_hash:  # a file source keyed by its rows' content
        dropped = drop_repeated_content(cur, manifest, spec, batch_id, ("published",))
    else:
        dropped = drop_published_duplicates(cur, manifest, spec, batch_id)
    if not dropped:
        return
    # the issues whose row is gone (audit.issue_keys finds the rows behind the others)
    cur.execute(
        "delete from audit.row_issue as i where i.batch_id = %s and i.issue_id not in ("
        "select k.issue_id from audit.issue_keys(%s, %s, %s::text[], array("
        "select j.issue_id from audit.row_issue as j where j.batch_id = %s)) as k)",
        (batch_id, manifest.source, table, list(spec.primary_key), batch_id),
    )
    cur.execute(
        """
        update audit.load_batch set
            rows_written = rows_written - %s,
            rows_skipped = coalesce(rows_skipped, 0) + %s,
            rows_quarantined = (
                select count(distinct record_key) from audit.quarantined_row
                where batch_id = %s
            )
        where batch_id = %s
        """,
        (dropped, dropped, batch_id, batch_id),
    )
    log.info(
        "%s batch %s: %s rows a published batch already held, dropped", table, batch_id, dropped
    )


def replay_quarantine(
    wh,
    *,
    source: str,
    expectations_dir: Path,
    table: str | None = None,
    manifest: SourceManifest | None = None,
) -> dict[str, tuple[int, int]]:
    """Re-check quarantined rows with the current catalogue, after a fix (of the check, or of
    the landed row by a data steward): rows that pass now, or whose check is gone or no longer
    quarantines, are released and reach staging on the next dbt run. `manifest`: the
    source's, else read from dags/sources.
    Returns check id → (released, still quarantined)."""
    manifest = manifest or load_manifest(source)
    catalogue = load_catalogue(expectations_dir, source)
    outcome: dict[str, tuple[int, int]] = {}
    with wh.cursor() as cur:
        cur.execute(
            "select distinct table_name, check_id from audit.quarantined_row "
            "where source = %s and (%s::text is null or table_name = %s) order by 1, 2",
            (source, table, table),
        )
        for table_name, check_id in cur.fetchall():
            check = {c.id: c for c in for_table(catalogue, table_name)}.get(check_id)
            still_fails = (
                sql.SQL("({})").format(sql.SQL(check.fails_when or "false"))
                if check is not None and check.severity == "quarantine"
                else sql.SQL("false")
            )
            primary_key = list(manifest.table(table_name).primary_key)
            # a row still failing: a landed row behind the issue (audit.issue_keys) fails again
            cur.execute(
                sql.SQL(
                    "update audit.row_issue as i set released_at = now(), "
                    "released_by = session_user "
                    "where i.issue_id in (select q.issue_id from audit.quarantined_row as q "
                    "where q.source = %s and q.table_name = %s and q.check_id = %s) "
                    "and i.issue_id not in (select held.issue_id from {}.{} "
                    "inner join audit.quarantined_keys(%s, %s, %s::text[]) as held "
                    "on held.batch_id = _batch_id and held.record_key = {} where {})"
                ).format(
                    sql.Identifier(manifest.raw_schema),
                    sql.Identifier(table_name),
                    _key_sql(primary_key),
                    still_fails,
                ),
                (source, table_name, check_id, source, table_name, primary_key),
            )
            released = cur.rowcount
            cur.execute(
                "select count(*) from audit.quarantined_row where source = %s "
                "and table_name = %s and check_id = %s",
                (source, table_name, check_id),
            )
            outcome[check_id] = (released, cur.fetchone()[0])
    wh.commit()
    log.info("quarantine replay of %s: %s", source, outcome)
    return outcome
