"""up / down / summary: running the platform's Airflow on this machine (embedded mode).

The demo (`make demo`: simulated sources, then every DAG once) is hdp_sim.demo, built on this.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from hdp.config import load_settings


def process_env() -> dict[str, str]:
    from hdp.runtime.env import airflow_env

    return airflow_env()  # no connection password: each task fetches its own (issue 12)


def _run(cmd: list[str], *, env: dict[str, str], log_file: Path | None = None) -> int:
    if log_file is None:
        return subprocess.call(cmd, env=env)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as out:
        return subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def prepare(env: dict[str, str], *, set_up: bool = True) -> None:
    """Database up, Airflow metadata migrated, dbt manifest parsed (so DAG parsing is cheap);
    `set_up=False` when the caller has just run hdp.runtime.setup itself."""
    from hdp.runtime.setup import ensure_platform

    if set_up:
        ensure_platform()
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
        from hdp.runtime.env import register_connections

        register_connections(env, settings)


def dags_test(dag_id: str, env: dict[str, str], log_file: Path) -> int:
    """One real DAG run, in-process tasks (`airflow dags test`), output kept in log_file."""
    return _run(["airflow", "dags", "test", dag_id], env=env, log_file=log_file)


def print_secrets_location() -> None:
    """Issue 6: where generated secrets (passwords, Fernet key, pseudonym key) are kept."""
    from hdp.security.roles import secrets_report

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
    return up()


def up(*, set_up: bool = True) -> int:
    """Airflow standalone on 127.0.0.1 with the hdp_* DAGs unpaused (scheduled daily)."""
    settings = load_settings()
    env = process_env()
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
    prepare(env, set_up=set_up)
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
    print_secrets_location()  # issue 6
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
    from hdp.runtime.celery import down_celery
    from hdp.warehouse.clusters import stop_embedded
    from hdp.warehouse.mariadb import mariadb_server, stop_mariadb

    settings = load_settings()
    if stop_airflow():
        print("Airflow stopped")
    stopped = down_celery(settings)  # `make up-celery`'s distributed run
    if stopped:
        print(f"distributed run stopped: {', '.join(stopped)}; its network removed")
    if settings.embedded:
        stop_embedded(settings)  # the warehouse's cluster and Airflow's metadata cluster
        print("PostgreSQL stopped (warehouse and Airflow metadata)")
    server = mariadb_server(settings) if os.environ.get("HDP_MARIADB_URL") is None else None
    if server is not None and server.is_running():
        stop_mariadb(settings)
        print("MariaDB stopped (the MySQL sources' server)")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from hdp.runtime.summary import print_summary

    print_summary()
    return 0


def register(sub) -> None:
    for name, func, text in (
        ("up", cmd_up, "start Airflow (standalone, 127.0.0.1) with the DAGs scheduled daily"),
        ("down", cmd_down, "stop Airflow (embedded or distributed), PostgreSQL and MariaDB"),
        ("summary", cmd_summary, "print rows per table, quality checks and report location"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=func)


__all__ = ["dags_test", "prepare", "print_secrets_location", "process_env", "register", "up"]
