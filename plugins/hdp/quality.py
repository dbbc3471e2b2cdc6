"""The quality gate: validate one loaded batch with its Great Expectations suite, record every
result in audit.quality_result, mark the batch passed or rejected, and refresh Data Docs.

Validation runs as SQL aggregates inside PostgreSQL (GX's SQL execution engine); no table is
pulled into Python. Results hold counts and observed aggregates, never row values: GX's
`partial_unexpected_list` (which would quote patient data) is not kept.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
for _name in ("great_expectations", "great_expectations._docs_decorators"):
    logging.getLogger(_name).setLevel(logging.WARNING)

log = logging.getLogger(__name__)

GX_URL_ENV = "HDP_GX_WAREHOUSE_URL"  # GX stores "${HDP_GX_WAREHOUSE_URL}", never the password


class QualityGateFailed(RuntimeError):
    """A batch failed blocking checks; its rows are not published."""


@dataclass
class CheckResult:
    check: str
    column: str | None
    success: bool
    observed: str
    expected: str


@dataclass
class GateResult:
    batch_id: int
    source: str
    table: str
    success: bool
    checks: list[CheckResult] = field(default_factory=list)
    data_docs: Path | None = None

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    def failure_message(self) -> str:
        lines = [
            f"Quality gate FAILED for {self.source}.{self.table} (batch {self.batch_id}); "
            "the batch is rejected and nothing of it is published."
        ]
        for c in self.failed:
            where = f" on column {c.column}" if c.column else ""
            lines.append(f"  - {c.check}{where}: observed {c.observed}, expected {c.expected}")
        lines.append(f"  Report: {self.data_docs}")
        lines.append(
            "  Next: fix the source or the extract, then rerun the DAG; the next run "
            "re-extracts from the last passed watermark."
        )
        return "\n".join(lines)


@cache
def _suite_module(expectations_dir: Path, source: str) -> ModuleType:
    path = expectations_dir / f"{source}.py"
    spec = importlib.util.spec_from_file_location(f"hdp_expectations_{source}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no expectation suite module {path}")
    defaults = expectations_dir / "defaults.py"
    dspec = importlib.util.spec_from_file_location("hdp_expectations_defaults", defaults)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if dspec and dspec.loader:
        dmod = importlib.util.module_from_spec(dspec)
        dspec.loader.exec_module(dmod)
        module.table_defaults = dmod.table_defaults  # type: ignore[attr-defined]
    return module


def build_expectations(
    expectations_dir: Path, source: str, table: str, columns: list[str], primary_key: list[str]
) -> list:
    module = _suite_module(expectations_dir, source)
    return [*module.table_defaults(columns, primary_key), *module.expectations_for(table)]


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


def _describe(result) -> CheckResult:
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
    return CheckResult(cfg.type, column, bool(result.success), str(observed), expected)


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
) -> GateResult:
    """Validate raw_<source>.<table> rows of one batch; raise QualityGateFailed when it fails."""
    import great_expectations as gx

    with wh.cursor() as cur:
        cur.execute(
            "select rows_read, status from audit.load_batch where batch_id = %s", (batch_id,)
        )
        row = cur.fetchone()
        if row is None:
            raise ValueError(f"batch {batch_id} is not in audit.load_batch")
        expected_rows, status = row
        if status not in ("loaded", "passed", "rejected"):
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

    os.environ[GX_URL_ENV] = warehouse_url
    context = _context(quality_dir)
    datasource = context.data_sources.add_or_update_postgres(
        name="warehouse", connection_string="${" + GX_URL_ENV + "}"
    )
    asset_name = f"raw_{source}.{table}"
    if asset_name in datasource.get_asset_names():
        datasource.delete_asset(asset_name)
    asset = datasource.add_query_asset(
        name=asset_name,
        query=f'select * from "raw_{source}"."{table}" where _batch_id = {int(batch_id)}',
    )
    batch_definition = asset.add_batch_definition_whole_table("batch")
    suite = gx.ExpectationSuite(
        name=asset_name,
        expectations=build_expectations(expectations_dir, source, table, raw_columns, primary_key),
        meta={"source": source, "table": table},
    )
    suite = context.suites.add_or_update(suite)
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
    from great_expectations.core.run_identifier import RunIdentifier

    run = checkpoint.run(
        expectation_parameters={"expected_row_count": int(expected_rows or 0)},
        # Data Docs list runs by name: make each one traceable to its load batch
        run_id=RunIdentifier(run_name=f"batch-{int(batch_id)}"),
    )
    validation_result = next(iter(run.run_results.values()))
    gate = GateResult(
        batch_id=batch_id,
        source=source,
        table=table,
        success=bool(run.success),
        checks=[_describe(r) for r in validation_result.results],
        data_docs=data_docs_index(quality_dir),
    )
    record(wh, gate)
    if not gate.success:
        build_reports(quality_dir)  # the report must show the failure it is cited for
        log.error(gate.failure_message())
        raise QualityGateFailed(gate.failure_message())
    log.info(
        "quality gate passed for %s.%s batch %s (%d checks)",
        source,
        table,
        batch_id,
        len(gate.checks),
    )
    return gate


def build_reports(quality_dir: Path) -> Path:
    """Rebuild GX Data Docs from every stored validation result; returns the index page."""
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
                 observed_value, expected)
            values (%s, %s, %s, %s, %s, %s, %s, %s)
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
                )
                for c in gate.checks
            ],
        )
        failed = "; ".join(f"{c.check}({c.column or ''})" for c in gate.failed)
        cur.execute(
            "update audit.load_batch set status = %s, error = %s where batch_id = %s",
            ("passed" if gate.success else "rejected", failed or None, gate.batch_id),
        )
    wh.commit()
    # dbt's staging joins on the verdicts: keep the planner's picture of the table current
    with wh.cursor() as cur:
        cur.execute("select audit.analyze_load_batch()")
    wh.commit()
