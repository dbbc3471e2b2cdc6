"""The embedded cluster: local-only, restartable, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg2
import pytest

from hdp.warehouse.clusters import Cluster, PostgresNotFound, find_bindir


def test_cluster_listens_on_loopback_with_password_auth(cluster: Cluster, pg_admin_dsn: str):
    with psycopg2.connect(pg_admin_dsn) as conn, conn.cursor() as cur:
        cur.execute("show listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("show port")
        assert int(cur.fetchone()[0]) == cluster.port
        cur.execute("show unix_socket_directories")
        assert cur.fetchone()[0] == str(cluster.socket_dir)
    wrong = pg_admin_dsn.replace(cluster.superuser_password(), "not-the-password")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong)


def test_start_is_idempotent(cluster: Cluster):
    cluster.start()  # already running: no error, still running
    assert cluster.is_running()


def test_missing_binaries_give_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("HDP_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(PostgresNotFound, match="apt-get install postgresql"):
        find_bindir()


def test_cli_reports_missing_binaries_without_traceback(tmp_path):
    env = {
        **os.environ,
        "HDP_PG_BINDIR": str(tmp_path / "nowhere"),
        "HDP_HOME": str(tmp_path / "home"),
        "HDP_PG_PORT": "55499",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hdp", "db", "start"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "initdb, pg_ctl" in proc.stderr
    assert "Traceback" not in proc.stderr
