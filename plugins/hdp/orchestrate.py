"""demo / up / down / summary: running the platform through Airflow on this machine."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hdp.config import load_settings


def _env() -> dict[str, str]:
    from hdp.env import airflow_env

    return airflow_env()  # no connection password: each task fetches its own (issue 12)


def _run(cmd: list[str], *, env: dict[str, str], log_file: Path | None = None) -> int:
    if log_file is None:
        return subprocess.call(cmd, env=env)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        return subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def prepare(env: dict[str, str]) -> None:
    """Database up, Airflow metadata migrated, dbt manifest parsed (so DAG parsing is cheap)."""
    from hdp.cli import ensure_database

    ensure_database()
    settings = load_settings()
    logs = settings.home / "logs"
    steps = [
        (["airflow", "db", "migrate"], "airflow-migrate.log"),
        (
            [
                "dbt",
                "parse",
                "--project-dir",
                str(settings.dbt_project_dir),
                "--profiles-dir",
                str(settings.dbt_profiles_dir),
                "--quiet",
            ],
            "dbt-parse.log",
        ),
    ]
    for cmd, log_name in steps:
        if _run(cmd, env=env, log_file=logs / log_name) != 0:
            raise SystemExit(f"`{' '.join(cmd[:3])}` failed: see {logs / log_name}")
    if settings.embedded:  # compose passes its connections as AIRFLOW_CONN_* (docs/deploy.md)
        from hdp.env import register_connections

        register_connections(env, settings)


def ensure_source_generated() -> list[str]:
    """Generate each simulated source's history once (the pharmacy follows the HIS's days);
    returns the sources generated now."""
    from hdp.database import connect, logins
    from hdp.simulator import his, pharmacy

    settings = load_settings()
    lg = logins()
    made: list[str] = []
    his_conn, pharmacy_conn = connect(lg.his_owner), connect(lg.pharmacy_owner)
    try:
        if not _has_clock(his_conn):
            his.generate(
                his_conn,
                his.SimConfig(
                    seed=settings.seed, scale=settings.scale, history_days=settings.history_days
                ),
            )
            made.append("his")
        if not _has_clock(pharmacy_conn):
            pharmacy.generate(pharmacy_conn, his_conn, pharmacy.PharmacyConfig(seed=settings.seed))
            made.append("pharmacy")
        if write_lab_drops(his_conn, settings.seed):
            made.append("lis")
    finally:
        his_conn.close()
        pharmacy_conn.close()
    return made


def write_lab_drops(his_conn, seed: int, day=None) -> int:
    """The simulated LIS's daily CSV files in the LIS drop folder: the whole HIS history when
    the folder has none yet, or one `day`; returns the files written."""
    from hdp.filedrop import drop_dir
    from hdp.manifest import load_manifest
    from hdp.simulator import lab

    manifest = load_manifest("lis")
    folder = drop_dir(manifest)
    if day is None and any(folder.glob(manifest.pattern or "*.csv")):
        return 0
    return len(lab.write_drops(his_conn, folder, seed=seed, first_day=day, last_day=day))


def _has_clock(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("select to_regclass('sim.clock') is not null")
        exists = cur.fetchone()[0]
        if exists:
            cur.execute("select count(*) from sim.clock")
            exists = cur.fetchone()[0] > 0
    conn.rollback()
    return bool(exists)


def dags_test(dag_id: str, env: dict[str, str], log_file: Path) -> int:
    """One real DAG run, in-process tasks (`airflow dags test`), output kept in log_file."""
    return _run(["airflow", "dags", "test", dag_id], env=env, log_file=log_file)


def cmd_demo(args: argparse.Namespace) -> int:
    from hdp.summary import print_summary

    settings = load_settings()
    env = _env()
    # the demo runs its DAGs one after another, so no publish overlaps a dbt run: no window is
    # needed, and the incremental facts rebuild only what changed since the previous demo
    env.setdefault("HDP_REPROCESS_WINDOW_HOURS", "0")
    print("» preparing: embedded PostgreSQL, databases and roles, Airflow metadata, dbt manifest")
    prepare(env)
    made = ensure_source_generated()
    if made:
        print(
            f"» simulated sources generated: {', '.join(made)} "
            f"(scale {settings.scale}, seed {settings.seed})"
        )
    else:
        print("» simulated sources already present (python -m hdp sim advance adds a day)")
    logs = settings.home / "logs"
    started = time.time()
    dag_ids = (
        "hdp_ingest_his",
        "hdp_ingest_pharmacy",
        "hdp_ingest_lis",
        "hdp_transform",
        "hdp_procurement_report",
    )
    for dag_id in dag_ids:
        print(f"» airflow dags test {dag_id} ...", flush=True)
        log_file = logs / f"{dag_id}.log"
        log_file.unlink(missing_ok=True)
        code = dags_test(dag_id, env, log_file)
        if code != 0:
            print_summary(started_at=started)
            print(f"\n✗ DAG {dag_id} failed: see the table above and {log_file}", file=sys.stderr)
            return code
    print_summary(started_at=started)
    _print_secrets_location()  # issue 6: say where the generated secrets are kept
    return 0


def _print_secrets_location() -> None:
    """Issue 6: where generated secrets (passwords, Fernet key, pseudonym key) are kept."""
    from hdp.security import secrets_report

    print(secrets_report())


def _pid_file() -> Path:
    return load_settings().airflow_home / "standalone.pid"


def _health(port: str) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3
        ) as resp:
            return resp.status == 200
    except OSError:
        return False


PLATFORM_DAGS = "^hdp_"  # every DAG of dags/ (the platform's): `up` schedules them all


def unpause_platform_dags(env: dict[str, str], log_file: Path) -> bool:
    """Unpause the platform's DAGs that Airflow already knows. Airflow creates a DAG paused and
    never unpauses it by itself: `make demo`'s `airflow dags test` runs leave every DAG paused, so
    the creation setting (AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False, for DAGs the
    dag-processor registers later) alone would not make `make up` schedule them as README says.
    Called once the API server is healthy, so the first scheduled tasks find the Execution API."""
    cmd = ["airflow", "dags", "unpause", "--treat-dag-id-as-regex", "-y", PLATFORM_DAGS]
    return _run(cmd, env=env, log_file=log_file) == 0


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    env = _env()
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
    prepare(env)
    ensure_source_generated()
    pid_file = _pid_file()
    port = env["AIRFLOW__API__PORT"]
    if pid_file.exists() and _health(port):
        print(f"Airflow already running: http://127.0.0.1:{port}")
        return 0
    log_file = settings.home / "logs" / "airflow-standalone.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        proc = subprocess.Popen(
            ["airflow", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `down` stops all of it
        )
    pid_file.write_text(str(proc.pid))
    deadline = time.time() + 300  # a loaded 2-core machine needs about 3 min
    while time.time() < deadline:
        if proc.poll() is not None:
            print(f"Airflow exited early (code {proc.returncode}); see {log_file}")
            return 1
        if _health(port):
            break
        time.sleep(2)
    else:
        print(f"Airflow did not become healthy in 300 s; see {log_file}")
        return 1
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    for _ in range(30):
        if passwords.exists():
            os.chmod(passwords, 0o600)  # Airflow writes it world-readable
            break
        time.sleep(1)
    print(f"Airflow UI: http://127.0.0.1:{port}  (user admin)")
    unpause_log = settings.home / "logs" / "airflow-unpause.log"
    if unpause_platform_dags(env, unpause_log):
        print("DAGs:       hdp_* unpaused: they run on their schedules (pause one in the UI)")
    else:
        print(f"DAGs:       could not unpause hdp_* (see {unpause_log}); unpause them in the UI")
    print(f"Password:   in {passwords} (generated; never committed)")
    _print_secrets_location()  # issue 6
    print(f"Logs:       {log_file}")
    print("Stop with:  make down")
    return 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_airflow(timeout: float = 40) -> bool:
    """SIGINT the standalone process group (clean), escalating only if it lingers."""
    pid_file = _pid_file()
    if not pid_file.exists():
        return False
    pgid = int(pid_file.read_text().strip())
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pgid):
            time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    return True


def cmd_down(args: argparse.Namespace) -> int:
    from hdp.pgcluster import stop_embedded

    settings = load_settings()
    if stop_airflow():
        print("Airflow stopped")
    if settings.embedded:
        stop_embedded(settings)  # the warehouse's cluster and Airflow's metadata cluster
        print("PostgreSQL stopped (warehouse and Airflow metadata)")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from hdp.summary import print_summary

    print_summary()
    return 0


def register(sub) -> None:
    for name, func, text in (
        ("demo", cmd_demo, "generate the source and run ingest → gate → dbt through Airflow"),
        ("up", cmd_up, "start Airflow (standalone, 127.0.0.1) with the DAGs scheduled daily"),
        ("down", cmd_down, "stop Airflow and the embedded PostgreSQL"),
        ("summary", cmd_summary, "print rows per table, quality checks and report location"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=func)


__all__ = ["register"]
