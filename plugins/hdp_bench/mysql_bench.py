"""The MySQL-source benchmark (issue 16): a MariaDB table of a million rows into the warehouse.

    python -m hdp_bench mysql [--scale 1.0] [--quick]      (part of `make bench`)

Side by side, on the same table, interleaved so that noise hits all alike:
- **platform**: `hdp.ingest.extract.extract_table` of a `mysql` source (the server renders COPY
  text, the `mariadb` client streams it into `COPY ... FROM STDIN`), batches and audit included;
- **pipe**: the practical limit on this machine, `mariadb --quick --batch -e "select * ..." |
  psql -c "copy ... from stdin"`, no bookkeeping at all;
- **pgloader** (Debian's package, when installed): its MySQL-to-PostgreSQL load of the table;
- **dlt** `sql_database` on MySQL (requirements/bench.lock's venv, connectorx backend);
- **memory**: the extract's peak RSS (its process and the client's) at a tenth of the table and
  at the whole table, each in a fresh interpreter.

Own state folder and ports (var/bench/mysql-home, PostgreSQL 55437, MariaDB 33337) unless
HDP_HOME / HDP_PG_PORT / HDP_MARIADB_PORT say otherwise; never the demo's. Prints the figures
with their targets (>= 0.8x the pipe's rows/s, >= 1.5x pgloader's, memory <= 1.1x) and writes
var/bench/mysql-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hdp.config import REPO_ROOT

DEFAULT_HOME = REPO_ROOT / "var" / "bench" / "mysql-home"
DATABASE = "bench_src"
SOURCE = "bench_mysql"
TABLE, TENTH = "rx_line", "rx_line_tenth"
FULL_ROWS = 1_000_000  # at scale 1.0
READER_ENV = "HDP_BENCH_MYSQL_READER_URL"  # the child's source login
TARGETS = {"pipe": 0.8, "pgloader": 1.5, "memory": 1.1}
TABLE_DDL = f"""
create table {DATABASE}.{{name}} (
    line_id int unsigned not null primary key,
    rx_no varchar(20) not null,
    drug_code varchar(12) not null,
    drug_name varchar(60),
    qty decimal(10,2),
    price decimal(12,4),
    is_insured tinyint(1) not null,
    route enum('po','iv','im','sc','top'),
    prescribed_at datetime(3) not null,
    updated_at datetime not null
) engine = InnoDB default charset = utf8mb4
"""
# MariaDB's sequence engine (seq_1_to_N) generates the rows on the server
FILL_SQL = f"""
insert into {DATABASE}.{{name}}
select seq, concat('RX', lpad(seq div 3, 10, '0')), concat('Y', lpad(seq mod 997, 6, '0')),
       elt(1 + seq mod 5, '阿莫西林胶囊', '布洛芬缓释胶囊', '头孢克肟片', '奥美拉唑肠溶胶囊',
           '盐酸二甲双胍片'),
       1 + seq mod 7, (seq mod 1000) / 10 + 0.25, seq mod 2,
       elt(1 + seq mod 5, 'po', 'iv', 'im', 'sc', 'top'),
       timestamp '2024-01-01 00:00:00' + interval (seq mod 31536000) second,
       timestamp '2024-01-01 00:00:00' + interval (seq div 10) second
from {DATABASE}.seq_1_to_{{rows}}
"""


def _isolate() -> None:
    os.environ.setdefault("HDP_HOME", str(DEFAULT_HOME))
    os.environ.setdefault("HDP_PG_PORT", "55437")
    os.environ.setdefault("HDP_AIRFLOW_PORT", "18083")
    os.environ.setdefault("HDP_MARIADB_PORT", "33337")
    if os.environ.get("HDP_PG_URL") or os.environ.get("HDP_MARIADB_URL"):
        raise SystemExit("hdp_bench mysql drops and recreates databases: unset HDP_*_URL")
    if Path(os.environ["HDP_HOME"]).resolve() == (REPO_ROOT / "var").resolve():
        raise SystemExit("hdp_bench mysql would reset the demo's databases: use another HDP_HOME")


def _say(msg: str) -> None:
    print(f"» {msg}", flush=True)


def _manifest(table: str):
    from hdp.manifest import SourceManifest, TableSpec

    return SourceManifest(
        source=SOURCE,
        description="benchmark: a MariaDB table",
        conn_id=SOURCE,
        schema=DATABASE,
        schedule="@daily",
        owner="data-platform",
        contains_personal_data=False,
        freshness_hours=26,
        tables=(TableSpec(table, ("line_id",), "updated_at"),),
    )


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child_extract(table: str, run_id: str) -> dict[str, Any]:
    """One platform extract in this (fresh) interpreter: seconds, rows and peak memory of this
    process and of its children (the mariadb client)."""
    from hdp.ingest.extract import connect_source, extract_table
    from hdp.warehouse.database import Login, connect
    from hdp_sim.sources import logins

    src = connect_source(Login.from_url(os.environ[READER_ENV]))
    wh = connect(logins().warehouse)
    started = time.perf_counter()
    loaded = extract_table(src, wh, _manifest(table), table, run_id)
    seconds = time.perf_counter() - started
    src.close()
    wh.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {
        "seconds": seconds,
        "rows": loaded.rows_written,
        "peak_rss_kib": _vm_hwm_kib(),
        "client_peak_rss_kib": children,
    }


class MySQLBench:
    def __init__(self, scale: float, reps: int) -> None:
        from hdp.config import load_settings
        from hdp.warehouse.mariadb import mariadb_admin
        from hdp_sim.sources import ensure_demo_databases, logins

        ensure_demo_databases()
        self.settings = load_settings()
        self.lg = logins()
        self.admin = mariadb_admin(self.settings)
        self.rows = max(10_000, int(FULL_ROWS * scale))
        self.reps = reps
        self.work = Path(tempfile.mkdtemp(prefix="hdp-bench-mysql-"))
        self.reader = None

    # -- set-up ------------------------------------------------------------------------------

    def _mysql(self, *statements: str) -> list[tuple]:
        from hdp.warehouse.mariadb import connect

        conn = connect(self.admin, autocommit=True)
        out: list[tuple] = []
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                    out = list(cur.fetchall())
        finally:
            conn.close()
        return out

    def _pg(self, *statements: str) -> list[tuple]:
        from hdp.warehouse.database import connect

        conn = connect(self.lg.warehouse)
        out: list[tuple] = []
        try:
            with conn, conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                    out = cur.fetchall() if cur.description else []
        finally:
            conn.close()
        return out

    def generate(self) -> float:
        import secrets

        from hdp.warehouse.database import Login

        started = time.perf_counter()
        self._mysql(
            f"drop database if exists {DATABASE}",
            f"create database {DATABASE} character set utf8mb4",
            TABLE_DDL.format(name=TABLE),
            TABLE_DDL.format(name=TENTH),
            FILL_SQL.format(name=TABLE, rows=self.rows),
            FILL_SQL.format(name=TENTH, rows=self.rows // 10),
        )
        password = secrets.token_urlsafe(16)
        self._mysql(
            f"create or replace user 'bench_reader'@'127.0.0.1' identified by '{password}'",
            f"grant select on {DATABASE}.* to 'bench_reader'@'127.0.0.1'",
        )
        self.reader = Login.from_url(
            f"mysql://bench_reader:{password}@{self.admin.host}:{self.admin.port}/{DATABASE}"
        )
        return time.perf_counter() - started

    def _reset_raw(self) -> None:
        self._pg(
            f'drop schema if exists "raw_{SOURCE}" cascade',
            f"delete from audit.load_batch where source = '{SOURCE}'",
            f'create schema "raw_{SOURCE}"',
        )

    def _target(self, name: str) -> str:
        from hdp.ingest.extract import connect_source, source_columns

        src = connect_source(self.reader)
        try:
            ddl = ", ".join(f'"{n}" {t}' for n, t in source_columns(src, DATABASE, TABLE))
        finally:
            src.close()
        self._pg(
            "create schema if not exists bench",
            f'drop table if exists bench."{name}"',
            f'create table bench."{name}" ({ddl})',
        )
        return f'bench."{name}"'

    # -- the paths ---------------------------------------------------------------------------

    def platform(self, table: str, tag: str) -> dict[str, Any]:
        self._reset_raw()
        proc = subprocess.run(
            [sys.executable, "-m", "hdp_bench", "mysql", "--child", table, tag],
            capture_output=True,
            text=True,
            env={**os.environ, READER_ENV: self.reader.url},  # never on the command line
        )
        if proc.returncode != 0:
            raise RuntimeError(f"platform extract failed:\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def _client_options(self) -> Path:
        options = self.work / "client.cnf"
        fd = os.open(options, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                f"[client]\nhost={self.reader.host}\nport={self.reader.port}\n"
                f"user={self.reader.user}\npassword={self.reader.password}\n"
            )
        return options

    def pipe(self) -> float:
        """`mariadb --quick --batch | psql copy`: the practical limit, nothing else done."""
        from hdp.ingest.mysql import client_binary

        target = self._target("rx_line_pipe")
        wh = self.lg.warehouse
        started = time.perf_counter()
        out = subprocess.Popen(
            [
                client_binary(),
                f"--defaults-file={self._client_options()}",
                "--batch",
                "--skip-column-names",
                "--quick",
                "--default-character-set=utf8mb4",
                f"--database={DATABASE}",
                "--execute",
                f"select * from {TABLE}",
            ],
            stdout=subprocess.PIPE,
        )
        into = subprocess.Popen(
            [
                "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", wh.host, "-p", str(wh.port),
                "-U", wh.user, "-d", wh.dbname,
                "-c", f"copy {target} from stdin with (null 'NULL')",
            ],
            stdin=out.stdout,
            env={**os.environ, "PGPASSWORD": wh.password},
        )  # fmt: skip
        assert out.stdout is not None
        out.stdout.close()
        rc_in, rc_out = into.wait(), out.wait()
        seconds = time.perf_counter() - started
        if rc_in or rc_out:
            raise RuntimeError(f"mariadb | psql pipe failed ({rc_out}, {rc_in})")
        rows = self._pg(f"select count(*) from {target}")[0][0]
        if rows != self.rows:
            raise RuntimeError(f"the pipe loaded {rows} rows, not {self.rows}")
        return seconds

    def pgloader(self) -> tuple[float | None, str]:
        binary = shutil.which("pgloader")
        if not binary:
            return None, "not measured: pgloader is not installed (apt-get install pgloader)"
        from urllib.parse import quote

        wh, r = self.lg.warehouse, self.reader
        self._pg("drop schema if exists bench_pgloader cascade")
        command = self.work / "load.pgl"
        fd = os.open(command, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                f"LOAD DATABASE\n"
                f"  FROM mysql://{quote(r.user)}:{quote(r.password, safe='')}@{r.host}:{r.port}"
                f"/{DATABASE}\n"
                f"  INTO postgresql://{quote(wh.user)}:{quote(wh.password, safe='')}@{wh.host}:"
                f"{wh.port}/{wh.dbname}?sslmode=prefer\n"
                "  WITH include drop, create tables, create no indexes, reset no sequences,\n"
                "       no foreign keys\n"
                f"  INCLUDING ONLY TABLE NAMES MATCHING '{TABLE}'\n"
                f"  ALTER SCHEMA '{DATABASE}' RENAME TO 'bench_pgloader';\n"
            )
        started = time.perf_counter()
        proc = subprocess.run(
            [binary, "--no-ssl-cert-verification", "--quiet", str(command)],
            capture_output=True,
            text=True,
            cwd=self.work,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
            return None, f"not measured: pgloader failed ({last})"
        rows = self._pg(f"select count(*) from bench_pgloader.{TABLE}")[0][0]
        self._pg("drop schema if exists bench_pgloader cascade")
        if rows != self.rows:
            return None, f"not measured: pgloader loaded {rows} rows, not {self.rows}"
        return seconds, ""

    def dlt(self) -> tuple[float | None, str]:
        from urllib.parse import quote

        from hdp_bench.bench import BENCH_VENV_PYTHON

        if not BENCH_VENV_PYTHON.exists():
            return None, f"not measured: {BENCH_VENV_PYTHON.parent.parent} missing (make bench)"
        r = self.reader
        src = f"mysql+pymysql://{quote(r.user)}:{quote(r.password, safe='')}@{r.host}:{r.port}"
        src += f"/{DATABASE}?charset=utf8mb4"
        self._pg("drop schema if exists bench_dlt_mysql cascade")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        proc = subprocess.run(
            [
                str(BENCH_VENV_PYTHON), "-I", str(Path(__file__).with_name("dlt.py")),
                "--src", src, "--dst", self.lg.warehouse.url, "--schema", DATABASE,
                "--table", TABLE, "--backend", "pyarrow", "--file-format", "parquet",
                "--dataset", "bench_dlt_mysql", "--workdir", str(self.work / "dlt"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )  # fmt: skip
        self._pg("drop schema if exists bench_dlt_mysql cascade")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
            return None, f"not measured: dlt failed ({last})"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if int(result["rows"]) != self.rows:
            return None, f"not measured: dlt loaded {result['rows']} rows, not {self.rows}"
        return float(result["seconds"]), ""

    def close(self) -> None:
        self._pg(
            f'drop schema if exists "raw_{SOURCE}" cascade', "drop schema if exists bench cascade"
        )
        self._mysql(
            f"drop database if exists {DATABASE}", "drop user if exists 'bench_reader'@'127.0.0.1'"
        )
        shutil.rmtree(self.work, ignore_errors=True)


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def run(scale: float, quick: bool) -> dict[str, Any]:
    reps = 1 if quick else 3
    b = MySQLBench(scale, reps)
    t: dict[str, Any] = {"scale": scale, "rows": b.rows, "reps": reps}
    try:
        _say(f"generating {b.rows:,} rows in MariaDB ({DATABASE}.{TABLE}) and a tenth")
        t["generate_s"] = b.generate()
        platform, pipe = [], []
        for r in range(reps):
            _say(f"round {r + 1}/{reps}: platform extract, then the mariadb | psql pipe")
            run_ = b.platform(TABLE, f"bench-mysql-{r}")
            if run_["rows"] != b.rows:
                raise RuntimeError(f"the extract wrote {run_['rows']} rows, not {b.rows}")
            platform.append(run_)
            pipe.append(b.pipe())
        t["platform_s"] = [p["seconds"] for p in platform]
        t["pipe_s"] = pipe
        _say("memory: the extract of a tenth of the table, in a fresh interpreter")
        tenth = b.platform(TENTH, "bench-mysql-tenth")
        t["memory"] = {"tenth": tenth, "full": platform[-1]}
        _say("pgloader (one run)")
        t["pgloader_s"], t["pgloader_note"] = b.pgloader()
        _say("dlt sql_database on MySQL (one run, pyarrow backend, parquet)")
        t["dlt_s"], t["dlt_note"] = b.dlt()
    finally:
        b.close()
    return t


def figures(t: dict[str, Any]) -> list[tuple[str, float | None, str, bool | None, str]]:
    """(figure, ratio, target, met, note) rows of the table."""
    plat = _median(t["platform_s"])
    rows = []
    pipe_ratio = _median(t["pipe_s"]) / plat  # rows/s ratio: same rows, inverse time
    rows.append(
        (
            "extract rows/s ÷ mariadb|psql pipe",
            pipe_ratio,
            f">= {TARGETS['pipe']}",
            pipe_ratio >= TARGETS["pipe"],
            f"{t['rows'] / plat:,.0f} rows/s vs {t['rows'] / _median(t['pipe_s']):,.0f}",
        )
    )
    for key, label, target in (("pgloader", "pgloader", TARGETS["pgloader"]), ("dlt", "dlt", None)):
        seconds = t.get(f"{key}_s")
        if seconds is None:
            rows.append((f"speed-up over {label}", None, "" if target is None else f">= {target}",
                         None, t.get(f"{key}_note", "")))  # fmt: skip
            continue
        ratio = seconds / plat
        rows.append(
            (
                f"speed-up over {label}",
                ratio,
                "" if target is None else f">= {target}",
                None if target is None else ratio >= target,
                f"{seconds:.1f} s vs {plat:.1f} s",
            )
        )
    full, tenth = t["memory"]["full"], t["memory"]["tenth"]
    peak = full["peak_rss_kib"] + full["client_peak_rss_kib"]
    small = tenth["peak_rss_kib"] + tenth["client_peak_rss_kib"]
    ratio = peak / small if small else None
    rows.append(
        (
            "extract peak memory, full ÷ a tenth",
            ratio,
            f"<= {TARGETS['memory']}",
            None if ratio is None else ratio <= TARGETS["memory"],
            f"{peak / 1024:.0f} MiB vs {small / 1024:.0f} MiB (python + mariadb client)",
        )
    )
    return rows


def print_table(t: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MariaDB source → warehouse, {t['rows']:,} rows (median of {t['reps']})")
    for name in ("figure", "ratio", "target", "met", "measured"):
        table.add_column(name)
    for name, ratio, target, met, note in figures(t):
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        verdict = "n/a" if met is None else ("met" if met else "NOT MET")
        table.add_row(name, shown, target, verdict, note)
    Console(width=130).print(table)
    if out:
        out.write_text(json.dumps(t, indent=2, default=str), encoding="utf-8")
        print(f"written to {out}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: a million rows")
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    parser.add_argument("--keep", action="store_true", help="leave the bench's servers running")
    parser.add_argument("--out", type=Path, help="the JSON result (default var/bench/mysql-*.json)")
    parser.add_argument("--child", nargs=2, metavar=("TABLE", "RUN_ID"), help=argparse.SUPPRESS)


def command(args: argparse.Namespace) -> int:
    _isolate()
    if args.child:
        table, run_id = args.child
        print(json.dumps(child_extract(table, run_id)))
        return 0
    try:
        t = run(args.scale, args.quick)
    finally:
        if not args.keep:  # the bench's own servers: nothing of it keeps running
            from hdp.config import load_settings
            from hdp.warehouse.clusters import stop_embedded
            from hdp.warehouse.mariadb import stop_mariadb

            stop_embedded(load_settings())
            stop_mariadb(load_settings())
    out = args.out
    if out is None:
        folder = REPO_ROOT / "var" / "bench"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"mysql-{time.strftime('%Y%m%dT%H%M%S')}.json"
    print_table(t, out)
    return 0
