"""Benchmark harness (`make bench`): the platform's own paths against baselines, side by side.

Machines here are shared and noisy, so every figure is a ratio against a baseline measured in the
same invocation. It generates the simulated HIS at a chosen scale, runs extract → gate → dbt
build, the baselines (psql binary COPY pipe, Airflow insert_rows, pandas to_sql, dlt), an
incremental run after 1% of rows change, Airflow/Cosmos against plain dbt, the extract's peak
memory at two sizes and the end-to-end time at 1×, 2×, 4× of a base scale; prints a table and
writes it as JSON (var/bench/<timestamp>.json).

    python -m hdp_bench io --scale 1.0            # what `make bench` runs (BENCH_SCALE)
    python -m hdp_bench io --quick                # a ~3-minute smoke run at scale 0.02

It drops and recreates the warehouse and source databases of its HDP_HOME, so it refuses the
demo's state folder and any external server (HDP_PG_URL); by default it uses var/bench/home on
port 55434 (Airflow 18082). Prescription lines are a future source: it benches the HIS tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdp.config import REPO_ROOT

DEFAULT_HOME = REPO_ROOT / "var" / "bench" / "home"
DEFAULT_OUT_DIR = REPO_ROOT / "var" / "bench"
BENCH_VENV_PYTHON = REPO_ROOT / "var" / "bench" / "venv" / "bin" / "python"
LARGEST = "diagnoses"  # the largest HIS table (1.5M rows per 1.0 of scale over 90 days)
GEN_TARGET_ROWS, GEN_TARGET_S = 10_000_000, 300.0  # "~10 million rows in minutes"


def _isolate() -> None:
    """Own state folder and ports unless given; never the demo's cluster or a foreign server."""
    os.environ.setdefault("HDP_HOME", str(DEFAULT_HOME))
    os.environ.setdefault("HDP_PG_PORT", "55434")
    os.environ.setdefault("HDP_AIRFLOW_PORT", "18082")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if os.environ.get("HDP_PG_URL"):
        raise SystemExit("hdp_bench.bench drops and recreates databases: unset HDP_PG_URL")
    if Path(os.environ["HDP_HOME"]).resolve() == (REPO_ROOT / "var").resolve():
        raise SystemExit("hdp_bench.bench would reset the demo's databases: use another HDP_HOME")


# --------------------------------------------------------------------------------------------
# Figures


@dataclass
class Figure:
    """One line of the table: the platform's value, its baseline, their ratio and the target."""

    key: str
    name: str
    platform: float | None
    baseline: float | None
    ratio: float | None
    target: str
    met: bool | None
    unit: str = ""
    note: str = ""


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _figure(
    key: str,
    name: str,
    platform: float | None,
    baseline: float | None,
    ratio: float | None,
    *,
    target: str,
    check: Callable[[float], bool],
    unit: str = "",
    note: str = "",
) -> Figure:
    met = None if ratio is None else bool(check(ratio))
    return Figure(key, name, platform, baseline, ratio, target, met, unit, note)


# dbt models materialized incrementally (dbt_project/macros/incremental.sql)
INCREMENTAL_FACTS = ("fct_encounter", "fct_diagnosis")

FIGURE_KEYS = (
    "generation",
    "extract_vs_psql_binary",
    "extract_vs_psql_text",
    "speedup_insert_rows",
    "speedup_pandas_to_sql",
    "speedup_dlt_fastest",
    "speedup_dlt_default",
    "incremental_extract_load",
    "incremental_end_to_end",
    "incremental_facts",
    "gate_overhead",
    "orchestration_overhead",
    "memory_flat",
    "growth_exponent",
)


# --------------------------------------------------------------------------------------------
# Database helpers


class Bench:
    """State of one benchmark invocation: logins, settings, timings collected so far."""

    def __init__(self, scale: float, quick: bool, reps: int, subset_rows: int) -> None:
        from hdp.config import load_settings
        from hdp_sim.sources import logins

        self.scale = scale
        self.quick = quick
        self.reps = reps
        self.subset_rows = subset_rows
        self.settings = load_settings()
        self.lg = logins(self.settings)
        self.timings: dict[str, Any] = {}
        self.work = self.settings.home / "bench-work"
        self.work.mkdir(parents=True, exist_ok=True)

    # -- connections and resets ----------------------------------------------------------

    def connect(self, login):
        from hdp.warehouse.database import connect

        return connect(login)

    def admin_exec(self, *statements: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.lg.admin.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt)
        finally:
            conn.close()

    def reset(self) -> None:
        """Empty warehouse and source databases, fresh GX project: every run starts the same."""
        from hdp_sim.sources import init_databases

        self.admin_exec(
            f'drop database if exists "{self.lg.warehouse.dbname}" with (force)',
            f'drop database if exists "{self.lg.his_owner.dbname}" with (force)',
        )
        shutil.rmtree(self.settings.quality_dir, ignore_errors=True)
        init_databases(self.lg)

    def reset_warehouse(self) -> None:
        from hdp_sim.sources import init_databases

        self.admin_exec(f'drop database if exists "{self.lg.warehouse.dbname}" with (force)')
        shutil.rmtree(self.settings.quality_dir, ignore_errors=True)
        init_databases(self.lg)

    def sql(self, login, *statements: str, params=None) -> list[tuple]:
        conn = self.connect(login)
        rows: list[tuple] = []
        try:
            with conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt, params)
                    if cur.description:
                        rows = cur.fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows

    # -- the platform's paths --------------------------------------------------------------

    def generate(self, scale: float) -> tuple[float, int]:
        """Regenerate the simulated HIS at `scale`; returns (seconds, rows in his.*)."""
        from hdp_sim import his

        self.reset()
        conn = self.connect(self.lg.his_owner)
        try:
            started = time.perf_counter()
            counts = his.generate(conn, his.SimConfig(seed=42, scale=scale, history_days=90))
            seconds = time.perf_counter() - started
        finally:
            conn.close()
        self.sql(self.lg.his_owner, "analyze")
        return seconds, sum(counts.values())

    def ingest(self, run_id: str) -> dict[str, dict[str, float]]:
        """Extract and gate every table as the DAG does (without Airflow); seconds per table."""
        from hdp.ingest.extract import extract_table
        from hdp.manifest import load_manifest
        from hdp.quality.gate import publish_run, validate_batch

        manifest = load_manifest("his")
        src, wh = self.connect(self.lg.his_reader), self.connect(self.lg.warehouse)
        out: dict[str, dict[str, float]] = {"extract_s": {}, "gate_s": {}, "rows": {}}
        try:
            for spec in manifest.tables:
                started = time.perf_counter()
                loaded = extract_table(src, wh, manifest, spec.name, run_id)
                out["extract_s"][spec.name] = time.perf_counter() - started
                out["rows"][spec.name] = loaded.rows_written
                started = time.perf_counter()
                validate_batch(
                    wh,
                    warehouse_url=self.lg.warehouse.url,
                    quality_dir=self.settings.quality_dir,
                    expectations_dir=self.settings.expectations_dir,
                    batch_id=loaded.batch_id,
                    source="his",
                    table=spec.name,
                    primary_key=list(spec.primary_key),
                    watermark=spec.watermark,
                )
                out["gate_s"][spec.name] = time.perf_counter() - started
            # write-audit-publish: the run's batches become visible (and the next watermark)
            started = time.perf_counter()
            publish_run(wh, source="his", run_id=run_id, tables=[t.name for t in manifest.tables])
            out["gate_s"]["_publish"] = time.perf_counter() - started
        finally:
            src.close()
            wh.close()
        return out

    @property
    def dbt_target(self) -> Path:
        """Where the bench's dbt writes manifest and run results (never the shared dbt_project/)."""
        return self.settings.home / "dbt-target"

    def env(self) -> dict[str, str]:
        from hdp.runtime.env import platform_env

        env = {**os.environ, **platform_env(self.settings)}
        # dbt writes its target and logs under HDP_HOME, not into the shared dbt_project/
        env["DBT_TARGET_PATH"] = str(self.dbt_target)
        env["DBT_LOG_PATH"] = str(self.settings.home / "dbt-logs")
        # the baselines write into the owner's schema `bench` through the hdp_warehouse
        # connection (the pipeline's own loader login may not)
        env["AIRFLOW_CONN_HDP_WAREHOUSE"] = self.lg.warehouse.url
        return env

    def dbt(self, *args: str) -> float:
        cmd = [
            str(Path(sys.executable).parent / "dbt"),
            *args,
            "--project-dir",
            str(self.settings.dbt_project_dir),
            "--profiles-dir",
            str(self.settings.dbt_profiles_dir),
        ]
        started = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=self.settings.dbt_project_dir,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-30:])
            raise RuntimeError(f"`dbt {' '.join(args)}` failed:\n{tail}\n{proc.stderr[-1500:]}")
        return seconds

    def model_seconds(self, *models: str) -> float:
        """Execution time of these models in the latest dbt invocation (run_results.json)."""
        results = json.loads((self.dbt_target / "run_results.json").read_text())
        times = {
            r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"]
            for r in results["results"]
            if r["unique_id"].startswith("model.")
        }
        return sum(times[m] for m in models)

    def end_to_end(self, run_id: str, *dbt_args: str) -> dict[str, Any]:
        ingest = self.ingest(run_id)
        dbt_s = self.dbt("build", *dbt_args)
        extract = sum(ingest["extract_s"].values())
        gate = sum(ingest["gate_s"].values())
        return {
            **ingest,
            "extract_total_s": extract,
            "gate_total_s": gate,
            "dbt_build_s": dbt_s,
            "total_s": extract + gate + dbt_s,
        }

    # -- extract of the largest table against the psql pipe ------------------------------

    @staticmethod
    def _bench_manifest(source: str, schema: str = "his"):
        """The HIS manifest's largest table under another source name (its own raw schema)."""
        from hdp.manifest import SourceManifest, load_manifest

        his = load_manifest("his")
        return SourceManifest(
            source=source,
            description="benchmark copy",
            conn_id=his.conn_id,
            schema=schema,
            schedule=his.schedule,
            owner=his.owner,
            contains_personal_data=True,
            freshness_hours=his.freshness_hours,
            tables=(his.table(LARGEST),),
        )

    def drop_bench_source(self, source: str) -> None:
        self.sql(
            self.lg.warehouse,
            f'drop schema if exists "raw_{source}" cascade',
            f"delete from audit.quality_result where source = '{source}'",
            f"delete from audit.load_batch where source = '{source}'",
        )

    def platform_extract_once(self, tag: str) -> tuple[float, int]:
        """A full extract of the largest table into its own raw schema; (seconds, rows)."""
        from hdp.ingest.extract import extract_table

        source = "bench_extract"
        self.drop_bench_source(source)
        manifest = self._bench_manifest(source)
        src, wh = self.connect(self.lg.his_reader), self.connect(self.lg.warehouse)
        try:
            started = time.perf_counter()
            loaded = extract_table(src, wh, manifest, LARGEST, f"bench-{tag}")
            seconds = time.perf_counter() - started
        finally:
            src.close()
            wh.close()
        return seconds, loaded.rows_written

    def _columns_ddl(self, schema: str, table: str) -> str:
        from hdp.ingest.extract import source_columns

        conn = self.connect(self.lg.his_reader)
        try:
            cols = source_columns(conn, schema, table)
        finally:
            conn.close()
        return ", ".join(f'"{n}" {t}' for n, t in cols)

    def bench_target(self, name: str, like: tuple[str, str] = ("his", LARGEST)) -> str:
        """Create an empty warehouse table bench.<name> shaped like a source table."""
        ddl = self._columns_ddl(*like)
        self.sql(
            self.lg.warehouse,
            "create schema if not exists bench",
            f'drop table if exists bench."{name}"',
            f'create table bench."{name}" ({ddl})',
        )
        return f'bench."{name}"'

    def _psql(self, login, command: str) -> list[str]:
        return [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            login.host,
            "-p",
            str(login.port),
            "-U",
            login.user,
            "-d",
            login.dbname,
            "-c",
            command,
        ]

    def psql_pipe_once(self, fmt: str) -> float:
        """`psql -c "copy (...) to stdout" | psql -c "copy ... from stdin"` of the largest table."""
        target = self.bench_target(f"{LARGEST}_psql_{fmt}")
        fmt_opt = " (format binary)" if fmt == "binary" else ""
        src_env = {**os.environ, "PGPASSWORD": self.lg.his_reader.password}
        dst_env = {**os.environ, "PGPASSWORD": self.lg.warehouse.password}
        started = time.perf_counter()
        out = subprocess.Popen(
            self._psql(
                self.lg.his_reader, f"copy (select * from his.{LARGEST}) to stdout{fmt_opt}"
            ),
            stdout=subprocess.PIPE,
            env=src_env,
        )
        into = subprocess.Popen(
            self._psql(self.lg.warehouse, f"copy {target} from stdin{fmt_opt}"),
            stdin=out.stdout,
            env=dst_env,
        )
        assert out.stdout is not None
        out.stdout.close()
        rc_in, rc_out = into.wait(), out.wait()
        seconds = time.perf_counter() - started
        if rc_in or rc_out:
            raise RuntimeError(f"psql {fmt} COPY pipe failed ({rc_out}, {rc_in})")
        return seconds

    # -- subsets for slow baselines ------------------------------------------------------

    def make_subset(self, rows: int) -> int:
        """his.bench_subset: the first `rows` rows of the largest table (readable by his_reader)."""
        self.sql(
            self.lg.his_owner,
            "create schema if not exists bench",
            f"drop table if exists bench.{LARGEST}_subset",
            f"create table bench.{LARGEST}_subset as "
            f"select * from his.{LARGEST} order by diagnosis_id limit {int(rows)}",
            f'grant usage on schema bench to "{self.lg.his_reader.user}"',
            f'grant select on all tables in schema bench to "{self.lg.his_reader.user}"',
        )
        return int(
            self.sql(self.lg.his_owner, f"select count(*) from bench.{LARGEST}_subset")[0][0]
        )

    def child(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """Run `_child_<name>(**kwargs)` of this module in a fresh interpreter; its JSON result."""
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hdp_bench",
                "io",
                "--child",
                name,
                "--child-args",
                json.dumps(kwargs),
            ],
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"bench child {name} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def dlt(
        self, *, table_schema: str, table: str, backend: str, file_format: str | None, dataset: str
    ):
        """dlt sql_database → postgres in .venv-bench; (seconds, rows) or (None, reason)."""
        if not BENCH_VENV_PYTHON.exists():
            return None, f"not measured: {BENCH_VENV_PYTHON.parent.parent} missing (make bench)"
        self.sql(self.lg.warehouse, f'drop schema if exists "{dataset}" cascade')
        workdir = self.work / "dlt"
        shutil.rmtree(workdir, ignore_errors=True)
        cmd = [
            str(BENCH_VENV_PYTHON),
            "-I",  # isolated: plugins/hdp (with its secrets.py) must not shadow the stdlib
            str(Path(__file__).with_name("dlt.py")),
            "--src",
            self.lg.his_reader.url,
            "--dst",
            self.lg.warehouse.url,
            "--schema",
            table_schema,
            "--table",
            table,
            "--backend",
            backend,
            "--dataset",
            dataset,
            "--workdir",
            str(workdir),
        ]
        if file_format:
            cmd += ["--file-format", file_format]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        self.sql(self.lg.warehouse, f'drop schema if exists "{dataset}" cascade')
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
            return None, f"not measured: dlt failed ({last})"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        return result["seconds"], int(result["rows"])

    # -- orchestration ---------------------------------------------------------------------

    def airflow_transform(self) -> float:
        from hdp.runtime.airflow import dags_test, prepare

        env = self.env()
        prepare(env)
        log_file = self.settings.home / "logs" / "bench-hdp_transform.log"
        log_file.unlink(missing_ok=True)
        started = time.perf_counter()
        code = dags_test("hdp_transform", env, log_file)
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"airflow dags test hdp_transform failed: see {log_file}")
        return seconds

    # -- incremental -----------------------------------------------------------------------

    def change_share(self, share: float) -> int:
        """Touch `share` of every HIS table's rows (by a hash of the key): a day of corrections."""
        from hdp.manifest import load_manifest

        modulo = round(1 / share)
        changed = 0
        conn = self.connect(self.lg.his_owner)
        try:
            with conn.cursor() as cur:
                for spec in load_manifest("his").tables:
                    key = " || '|' || ".join(f"{k}::text" for k in spec.primary_key)
                    cur.execute(
                        f"update his.{spec.name} t "
                        f"set {spec.watermark} = m.high + interval '1 minute' "
                        f"from (select max({spec.watermark}) as high from his.{spec.name}) m "
                        f"where abs(hashtext({key})) % {modulo} = 0"
                    )
                    changed += cur.rowcount
            conn.commit()
        finally:
            conn.close()
        return changed


# --------------------------------------------------------------------------------------------
# Children (run in a fresh interpreter so their memory and imports are their own)


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _child_extract(source: str, schema: str, run_id: str) -> dict[str, Any]:
    """Extract the largest table from `schema` under manifest source `source`; peak RSS."""
    from hdp.ingest.extract import extract_table
    from hdp.warehouse.database import connect
    from hdp_sim.sources import logins

    manifest = Bench._bench_manifest(source, schema)
    lg = logins()
    src, wh = connect(lg.his_reader), connect(lg.warehouse)
    before = _vm_hwm_kib()
    started = time.perf_counter()
    loaded = extract_table(src, wh, manifest, LARGEST, run_id)
    seconds = time.perf_counter() - started
    src.close()
    wh.close()
    return {
        "rows": loaded.rows_written,
        "seconds": seconds,
        "peak_rss_kib": _vm_hwm_kib(),
        "rss_before_kib": before,
    }


def _child_insert_rows(source_table: str, target_table: str) -> dict[str, Any]:
    """Airflow's GenericTransfer path: get_records from the source, insert_rows row by row."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    src = PostgresHook(postgres_conn_id="his_source")
    dst = PostgresHook(postgres_conn_id="hdp_warehouse")
    started = time.perf_counter()
    rows = src.get_records(f"select * from {source_table}")
    dst.insert_rows(table=target_table, rows=rows)
    return {"seconds": time.perf_counter() - started, "rows": len(rows)}


def _child_pandas(source_table: str, target_schema: str, target_table: str) -> dict[str, Any]:
    """pandas read_sql + to_sql(method='multi', chunksize=1000) through SQLAlchemy."""
    import pandas as pd
    import sqlalchemy as sa

    from hdp_sim.sources import logins

    lg = logins()

    def engine(login):
        return sa.create_engine(login.url.replace("postgresql://", "postgresql+psycopg2://", 1))

    src, dst = engine(lg.his_reader), engine(lg.warehouse)
    started = time.perf_counter()
    frame = pd.read_sql(sa.text(f"select * from {source_table}"), src)
    frame.to_sql(
        target_table,
        dst,
        schema=target_schema,
        if_exists="append",
        index=False,
        method="multi",
        chunksize=1000,
    )
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "extract": _child_extract,
    "insert_rows": _child_insert_rows,
    "pandas": _child_pandas,
}


# --------------------------------------------------------------------------------------------
# The run


def _say(msg: str) -> None:
    print(f"» {msg}", flush=True)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _section(t: dict[str, Any], name: str, fn: Callable[[], None]) -> None:
    """Run one measurement; a failure is recorded (its figures say "not measured"), not fatal."""
    try:
        fn()
    except Exception as exc:
        import traceback

        traceback.print_exc()
        t.setdefault("errors", {})[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        _say(f"{name} failed: {t['errors'][name]}")


def run(scale: float, quick: bool) -> dict[str, Any]:  # noqa: PLR0915
    from hdp_sim.sources import ensure_demo_databases as ensure_database

    reps = 1 if quick else 3
    subset_rows = 2_000 if quick else 50_000
    ensure_database()
    b = Bench(scale, quick, reps, subset_rows)
    t: dict[str, Any] = b.timings
    started_all = time.perf_counter()

    # 1. How cost grows: end to end (extract + gate + dbt build, no Airflow) at 1x, 2x, 4x;
    #    the last (4x = the requested scale) is the full run every other figure compares with.
    growth: list[dict[str, Any]] = []
    b.dbt("parse")  # warm-up: dbt's first parse of a fresh target folder is not part of a run
    for i, s in enumerate([scale / 4, scale / 2, scale]):
        _say(f"generating the HIS at scale {s:g}, then extract + gate + dbt build")
        gen_s, gen_rows = b.generate(s)
        t["full"] = b.end_to_end(f"bench-growth-{i}")
        growth.append(
            {
                "scale": s,
                "generate_s": gen_s,
                "generated_rows": gen_rows,
                "end_to_end_s": t["full"]["total_s"],
            }
        )
        t["growth"] = growth
    largest_rows = t["full"]["rows"][LARGEST]

    # 2. Extract of the largest table vs psql COPY pipes, interleaved so noise hits all alike.
    def headline() -> None:
        _say(f"extract of his.{LARGEST} ({largest_rows:,} rows) vs psql COPY pipes, x{reps}")
        plat, binary, text = [], [], []
        for r in range(reps):
            plat.append(b.platform_extract_once(f"headline-{r}")[0])
            binary.append(b.psql_pipe_once("binary"))
            text.append(b.psql_pipe_once("text"))
        b.drop_bench_source("bench_extract")
        t["extract_headline"] = {"platform_s": plat, "psql_binary_s": binary, "psql_text_s": text}

    # 3. What users would otherwise pick, on a subset where the baseline is slow.
    def baselines() -> None:
        n_sub = b.make_subset(subset_rows)
        t["baselines"] = base = {"subset_rows": n_sub}
        _say(f"{n_sub:,}-row subset: Airflow insert_rows, pandas to_sql, dlt default backend")
        target = b.bench_target(f"{LARGEST}_insert_rows")
        base["insert_rows"] = b.child(
            "insert_rows", source_table=f"bench.{LARGEST}_subset", target_table=target
        )
        b.bench_target(f"{LARGEST}_pandas")
        base["pandas"] = b.child(
            "pandas",
            source_table=f"bench.{LARGEST}_subset",
            target_schema="bench",
            target_table=f"{LARGEST}_pandas",
        )
        base["dlt_default"] = b.dlt(
            table_schema="bench",
            table=f"{LARGEST}_subset",
            backend="sqlalchemy",
            file_format=None,
            dataset="bench_dlt_default",
        )
        _say(f"dlt fastest backend (connectorx + parquet + ADBC) on all {largest_rows:,} rows")
        base["dlt_fastest"] = b.dlt(
            table_schema="his",
            table=LARGEST,
            backend="connectorx",
            file_format="parquet",
            dataset="bench_dlt_fast",
        )

    # 4. Memory of the extract task at two sizes (a tenth of the table, then all of it).
    def memory() -> None:
        _say("peak RSS of the extract in a child process at 1/10 and full size")
        b.sql(
            b.lg.his_owner,
            "create schema if not exists bench_tenth",
            f"drop table if exists bench_tenth.{LARGEST}",
            f"create table bench_tenth.{LARGEST} as select * from his.{LARGEST} "
            "where diagnosis_id % 10 = 0",
            f'grant usage on schema bench_tenth to "{b.lg.his_reader.user}"',
            f'grant select on all tables in schema bench_tenth to "{b.lg.his_reader.user}"',
        )
        mem = {}
        for label, schema in (("tenth", "bench_tenth"), ("full", "his")):
            b.drop_bench_source("bench_mem")
            mem[label] = b.child(
                "extract", source="bench_mem", schema=schema, run_id=f"mem-{label}"
            )
        b.drop_bench_source("bench_mem")
        t["memory"] = mem

    # 5. Orchestration: Cosmos/Airflow against plain dbt build, on the same data, back to back.
    def orchestration() -> None:
        _say("plain dbt build, then airflow dags test hdp_transform (Cosmos), same data")
        dbt_plain = b.dbt("build")
        t["orchestration"] = {
            "dbt_build_s": dbt_plain,
            "airflow_dags_test_s": b.airflow_transform(),
        }

    # 6. Incremental: 1% of rows change, then extract + gate + dbt build again.
    def incremental() -> None:
        changed = b.change_share(0.01)
        _say(f"{changed:,} rows changed (1% per table): incremental extract + gate + dbt build")
        # runs minutes apart, not a day: no reprocessing window, or it would take in the full
        # load published minutes ago (a daily run's window takes in the previous day's loads)
        inc = b.end_to_end("bench-incremental", "--vars", "{reprocess_window_hours: 0}")
        inc["incremental_facts_s"] = b.model_seconds(*INCREMENTAL_FACTS)
        _say("the same incremental facts rebuilt with --full-refresh")
        b.dbt("run", "--full-refresh", "--select", *INCREMENTAL_FACTS)
        inc["full_refresh_facts_s"] = b.model_seconds(*INCREMENTAL_FACTS)
        t["incremental"] = {**inc, "changed_rows": changed}

    for name, fn in (
        ("extract_headline", headline),
        ("baselines", baselines),
        ("memory", memory),
        ("orchestration", orchestration),
        ("incremental", incremental),
    ):
        _section(t, name, fn)
    t["total_bench_s"] = time.perf_counter() - started_all
    figures = _figures(t)
    return {
        "scale": scale,
        "quick": quick,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "source_rows": t["full"]["rows"],
        "figures": {f.key: asdict(f) for f in figures},
        "timings": t,
    }


def _figures(t: dict[str, Any]) -> list[Figure]:  # noqa: PLR0915
    """Every figure of FIGURE_KEYS from the timings; one whose data is missing says why."""
    full = t["full"]
    n = full["rows"][LARGEST]
    errors = t.get("errors", {})
    figs: list[Figure] = []

    def add(key: str, section: str, build: Callable[[], Figure]) -> None:
        try:
            figs.append(build())
        except (KeyError, TypeError, ZeroDivisionError, statistics.StatisticsError) as exc:
            why = errors.get(section, f"{type(exc).__name__}: {exc}")
            figs.append(Figure(key, key, None, None, None, "", None, "", f"not measured: {why}"))

    def generation() -> Figure:
        last = t["growth"][-1]
        rate, goal = last["generated_rows"] / last["generate_s"], GEN_TARGET_ROWS / GEN_TARGET_S
        return _figure(
            "generation",
            "Source generation rows/s (vs 10M rows in 5 min)",
            rate,
            goal,
            _ratio(rate, goal),
            target=">= 1",
            check=lambda r: r >= 1,
            unit="rows/s",
            note=f"{last['generated_rows']:,} rows in {last['generate_s']:.1f} s",
        )

    add("generation", "growth", generation)

    def plat_s() -> float:
        return _median(t["extract_headline"]["platform_s"])

    def vs_psql(key: str, runs_key: str, label: str, target: str, check) -> Callable[[], Figure]:
        def build() -> Figure:
            runs = t["extract_headline"][runs_key]
            rate, base_rate = n / plat_s(), n / _median(runs)
            return _figure(
                key,
                f"Full extract+load {LARGEST} rows/s vs psql {label} COPY pipe",
                rate,
                base_rate,
                _ratio(rate, base_rate),
                target=target,
                check=check,
                unit="rows/s",
                note=f"{n:,} rows, median of {len(runs)}",
            )

        return build

    add(
        "extract_vs_psql_binary",
        "extract_headline",
        vs_psql("extract_vs_psql_binary", "psql_binary_s", "binary", ">= 0.8", lambda r: r >= 0.8),
    )
    add(
        "extract_vs_psql_text",
        "extract_headline",
        vs_psql("extract_vs_psql_text", "psql_text_s", "text", ">= 1 (info)", lambda r: r >= 1),
    )

    def per_row(key: str, label: str, target: str, check) -> Callable[[], Figure]:
        def build() -> Figure:
            res = t["baselines"][key.removeprefix("speedup_").removesuffix("_to_sql")]
            rate = res["rows"] / res["seconds"]
            extrapolated = n / rate
            return _figure(
                key,
                f"Speed-up over {label} (s for the table)",
                plat_s(),
                extrapolated,
                _ratio(extrapolated, plat_s()),
                target=target,
                check=check,
                unit="s",
                note=f"{res['rows']:,}-row subset at {rate:,.0f} rows/s, extrapolated per row",
            )

        return build

    add(
        "speedup_insert_rows",
        "baselines",
        per_row("speedup_insert_rows", "Airflow insert_rows", ">= 30", lambda r: r >= 30),
    )
    add(
        "speedup_pandas_to_sql",
        "baselines",
        per_row("speedup_pandas_to_sql", "pandas to_sql(multi)", "> 1", lambda r: r > 1),
    )

    def dlt(key: str, res_key: str, label: str) -> Callable[[], Figure]:
        def build() -> Figure:
            seconds, rows = t["baselines"][res_key]
            if seconds is None:  # rows holds the reason
                return Figure(
                    key, f"Speed-up over {label}", plat_s(), None, None, "> 1", None, "s", rows
                )
            whole = rows == n
            extrapolated = seconds * n / rows
            return _figure(
                key,
                f"Speed-up over {label} (s for the table)",
                plat_s(),
                extrapolated,
                _ratio(extrapolated, plat_s()),
                target="> 1",
                check=lambda r: r > 1,
                unit="s",
                note=f"{rows:,} rows, whole table"
                if whole
                else f"{rows:,}-row subset, extrapolated per row",
            )

        return build

    add(
        "speedup_dlt_fastest",
        "baselines",
        dlt("speedup_dlt_fastest", "dlt_fastest", "dlt connectorx+parquet+ADBC"),
    )
    add(
        "speedup_dlt_default",
        "baselines",
        dlt("speedup_dlt_default", "dlt_default", "dlt default (sqlalchemy)"),
    )

    def inc_extract() -> Figure:
        inc = t["incremental"]
        return _figure(
            "incremental_extract_load",
            "Incremental (1% changed) extract+load / full",
            inc["extract_total_s"],
            full["extract_total_s"],
            _ratio(inc["extract_total_s"], full["extract_total_s"]),
            target="<= 0.05",
            check=lambda r: r <= 0.05,
            unit="s",
            note=f"{inc['changed_rows']:,} rows changed",
        )

    def inc_e2e() -> Figure:
        inc = t["incremental"]
        return _figure(
            "incremental_end_to_end",
            "Incremental extract+gate+dbt build / full",
            inc["total_s"],
            full["total_s"],
            _ratio(inc["total_s"], full["total_s"]),
            target="<= 0.15",
            check=lambda r: r <= 0.15,
            unit="s",
            note=f"gate {inc['gate_total_s']:.1f} s, dbt build {inc['dbt_build_s']:.1f} s "
            "(intermediate tables and most marts rebuild in full)",
        )

    def inc_facts() -> Figure:
        inc = t["incremental"]
        return _figure(
            "incremental_facts",
            "Incremental fct_encounter+fct_diagnosis / their full refresh",
            inc["incremental_facts_s"],
            inc["full_refresh_facts_s"],
            _ratio(inc["incremental_facts_s"], inc["full_refresh_facts_s"]),
            target="<= 0.5",
            check=lambda r: r <= 0.5,
            unit="s",
            note="dbt's execution time of the two models, same data (run_results.json)",
        )

    add("incremental_extract_load", "incremental", inc_extract)
    add("incremental_end_to_end", "incremental", inc_e2e)
    add("incremental_facts", "incremental", inc_facts)

    def gate() -> Figure:
        return _figure(
            "gate_overhead",
            "Gate (GX) time / load time, full load",
            full["gate_total_s"],
            full["extract_total_s"],
            _ratio(full["gate_total_s"], full["extract_total_s"]),
            target="<= 0.2",
            check=lambda r: r <= 0.2,
            unit="s",
            note=(
                f"{len([t for t in full['gate_s'] if not t.startswith('_')])} tables, "
                "sum of validate_batch + publish_run / sum of extract_table"
            ),
        )

    add("gate_overhead", "growth", gate)

    def orchestration() -> Figure:
        orch = t["orchestration"]
        return _figure(
            "orchestration_overhead",
            "airflow dags test hdp_transform / dbt build",
            orch["airflow_dags_test_s"],
            orch["dbt_build_s"],
            _ratio(orch["airflow_dags_test_s"], orch["dbt_build_s"]),
            target="<= 1.5",
            check=lambda r: r <= 1.5,
            unit="s",
        )

    add("orchestration_overhead", "orchestration", orchestration)

    def memory() -> Figure:
        mem = t["memory"]
        big, small = mem["full"]["peak_rss_kib"] / 1024, mem["tenth"]["peak_rss_kib"] / 1024
        return _figure(
            "memory_flat",
            "Extract peak RSS at full size / at 1/10 size",
            big,
            small,
            _ratio(big, small),
            target="<= 1.1",
            check=lambda r: r <= 1.1,
            unit="MiB",
            note=f"{mem['tenth']['rows']:,} vs {mem['full']['rows']:,} rows",
        )

    add("memory_flat", "memory", memory)

    def growth() -> Figure:
        runs = t["growth"]
        xs = [math.log(g["scale"]) for g in runs]
        ys = [math.log(g["end_to_end_s"]) for g in runs]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        return _figure(
            "growth_exponent",
            "End-to-end time exponent over 1x/2x/4x scale",
            slope,
            1.0,
            slope,
            target="<= 1.15",
            check=lambda r: r <= 1.15,
            note=", ".join(f"{g['scale']:g}: {g['end_to_end_s']:.1f} s" for g in runs)
            + " (extract+gate+dbt, no Airflow)",
        )

    add("growth_exponent", "growth", growth)
    return figs


# --------------------------------------------------------------------------------------------
# Output


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "rows/s" or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def print_table(result: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"hdp bench at scale {result['scale']:g}"
        + (" (quick)" if result["quick"] else "")
        + f" — {result['source_rows'].get(LARGEST, 0):,} rows in his.{LARGEST}"
    )
    for col, justify in (
        ("figure", "left"),
        ("platform", "right"),
        ("baseline", "right"),
        ("unit", "left"),
        ("ratio", "right"),
        ("target", "left"),
        ("met?", "center"),
        ("note", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    for f in result["figures"].values():
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "—"}[f["met"]]
        table.add_row(
            f["name"],
            _fmt(f["platform"], f["unit"]),
            _fmt(f["baseline"], f["unit"]),
            f["unit"],
            _fmt(f["ratio"]),
            f["target"],
            met,
            f["note"],
        )
    console = Console(width=max(160, shutil.get_terminal_size().columns))
    console.print(table)
    met = sum(1 for f in result["figures"].values() if f["met"])
    console.print(
        f"{met} of {len(result['figures'])} targets met; "
        f"total {result['timings']['total_bench_s']:.0f} s"
    )
    if out:
        console.print(f"JSON: {out}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0, help="scale factor of the HIS source")
    parser.add_argument("--out", type=Path, help="JSON file (default var/bench/<timestamp>.json)")
    parser.add_argument("--quick", action="store_true", help="smoke run: scale 0.02, tiny subsets")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)


def command(args: argparse.Namespace) -> int:
    """`python -m hdp_bench io`: every figure against its baseline, printed and kept as JSON."""
    _isolate()
    if args.child:
        print(json.dumps(CHILDREN[args.child](**json.loads(args.child_args))))
        return 0
    import logging

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    scale = 0.02 if args.quick else args.scale
    out = args.out or DEFAULT_OUT_DIR / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    try:
        result = run(scale, args.quick)
    finally:
        # the bench's own cluster: leave no server running behind `make bench`
        from hdp.config import load_settings
        from hdp.warehouse.clusters import stop_embedded

        stop_embedded(load_settings())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print_table(result, out)
    # a failed measurement fails the command (its figure says "not measured" and why)
    return 1 if result["timings"].get("errors") else 0
