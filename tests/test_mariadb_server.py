"""The embedded MariaDB server (hdp.warehouse.mariadb): a real mariadbd, started and stopped."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hdp.config import load_settings
from hdp.warehouse.mariadb import (
    MariaDBNotFound,
    MariaDBServer,
    connect,
    find_binaries,
    mariadb_admin,
    mariadb_server,
)

REPO = Path(__file__).resolve().parents[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


def test_server_binds_loopback_with_generated_passwords(mariadb):
    server, admin = mariadb
    if server is None:
        pytest.skip("HDP_MARIADB_URL names an existing server")
    assert server.is_running()
    assert server.port == int(os.environ["HDP_MARIADB_PORT"])
    assert server.data_dir.is_relative_to(Path(os.environ["HDP_HOME"])) or str(
        server.data_dir
    ).startswith("/var/tmp/hdp-mariadb-")
    conn = connect(admin)
    try:
        with conn.cursor() as cur:
            cur.execute("select @@bind_address, @@port, @@socket, @@character_set_server")
            bind, port, sock, charset = cur.fetchone()
            # root has a password on every host: no login without one
            cur.execute(
                "select count(*) from mysql.user where user = 'root' and "
                "(authentication_string = '' or authentication_string is null) "
                "and plugin <> 'unix_socket'"
            )
            passwordless_root = cur.fetchone()[0]
    finally:
        conn.close()
    assert (bind, port, sock, charset) == (
        "127.0.0.1",
        server.port,
        str(server.socket_path),
        "utf8mb4",
    )
    assert passwordless_root == 0
    for name in ("mariadb_root_password", "mariadb_user_password"):
        mode = stat.S_IMODE((server.secrets_dir / name).stat().st_mode)
        assert mode == 0o600, name
    # the server runs as mysql under root, as the caller otherwise
    owner = Path(f"/proc/{server.pid()}").stat().st_uid
    expected = __import__("pwd").getpwnam("mysql").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert owner == expected


def test_ordinary_user_owns_the_databases_it_is_given(mariadb):
    server, _ = mariadb
    if server is None:
        pytest.skip("HDP_MARIADB_URL names an existing server")
    login = server.ensure_database("t_server_probe")
    conn = connect(login, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("create table if not exists t (id int primary key, name varchar(8))")
            cur.execute("replace into t values (1, '张三')")
            cur.execute("select name from t")
            assert cur.fetchone()[0] == "张三"
            cur.execute("select current_user()")
            assert cur.fetchone()[0].startswith("hdp@")
            with pytest.raises(Exception, match="denied"):
                cur.execute("create database t_not_granted")
    finally:
        conn.close()


def test_start_is_idempotent_and_stop_leaves_no_process(mariadb):
    server, _ = mariadb
    if server is None:
        pytest.skip("HDP_MARIADB_URL names an existing server")
    pid = server.pid()
    server.start()  # running: left as it is
    assert server.pid() == pid
    server.stop()
    assert not server.is_running()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not _listening(server.port)
    server.stop()  # stopped: nothing to do
    server.start()  # the same data folder, the same passwords
    assert server.is_running() and server.pid() != pid
    conn = connect(server.user_login("t_server_probe"))
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from t")
            assert cur.fetchone()[0] == 1
    finally:
        conn.close()


def test_hdp_cli_status_and_down_stop_it(mariadb):
    server, _ = mariadb
    if server is None:
        pytest.skip("HDP_MARIADB_URL names an existing server")
    cli = [sys.executable, "-m", "hdp"]
    status = subprocess.run([*cli, "mariadb", "status"], capture_output=True, text=True)
    assert (status.returncode, status.stdout.strip()) == (0, "running")
    # `down` stops the embedded PostgreSQL too, which the session's other modules use: here it
    # is told PostgreSQL is an existing server (HDP_PG_URL), so it stops only MariaDB
    env = {**os.environ, "HDP_PG_URL": "postgresql://nobody@127.0.0.1:1/none"}
    down = subprocess.run([*cli, "down"], capture_output=True, text=True, timeout=120, env=env)
    assert down.returncode == 0, down.stderr
    assert "MariaDB stopped" in down.stdout
    assert not server.is_running() and not _listening(server.port)
    up = subprocess.run([*cli, "mariadb", "start"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert server.is_running()


def test_missing_binaries_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HDP_MARIADB_BINDIR", str(tmp_path))
    with pytest.raises(MariaDBNotFound, match=r"apt-get install mariadb-server"):
        find_binaries()
    server = MariaDBServer(tmp_path / "mariadb", 1, tmp_path / "secrets")
    with pytest.raises(MariaDBNotFound, match="HDP_MARIADB_URL"):
        server.start()
    assert not (tmp_path / "mariadb" / "data").exists()


def test_an_existing_server_by_url_is_not_started_or_stopped(monkeypatch, mariadb):
    _, admin = mariadb
    monkeypatch.setenv("HDP_MARIADB_URL", admin.url)
    assert mariadb_server(load_settings()) is None
    login = mariadb_admin(load_settings())
    assert (login.user, login.host, login.port) == (admin.user, admin.host, admin.port)
    conn = connect(login)  # the password survived the URL's quoting
    conn.close()


# an interpreter the user nobody can execute (the venv's may live under /root): the system's,
# of the venv's version, with the venv's packages on its path
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an ordinary user")
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason=f"no {SYSTEM_PYTHON}")
def test_runs_as_an_ordinary_user():
    """The same code as an unprivileged user: no --user flag, the server runs as that user."""
    import pymysql

    top = Path(tempfile.mkdtemp(prefix="hdp-mariadb-user-"))  # pytest's tmp_path is root's 0700
    os.chmod(top, 0o755)  # noqa: S103 (the user nobody must enter it; nothing secret inside)
    home = top / "home"
    home.mkdir()
    subprocess.run(["chown", "nobody", str(home)], check=True)
    request_cleanup = top
    port = int(os.environ["HDP_MARIADB_PORT"]) + 7
    code = (
        "from hdp.warehouse.mariadb import MariaDBServer, connect; from pathlib import Path; "
        f"s = MariaDBServer.for_home(Path({str(home)!r}), {port}); "
        "s.start(); c = connect(s.admin_login()); cur = c.cursor(); "
        "cur.execute('select 1'); print(cur.fetchone()[0], s.root == Path("
        f"{str(home)!r}) / 'mariadb'); c.close(); s.stop(); print(s.is_running())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDP_MARIADB_URL")}
    env["PYTHONPATH"] = f"{REPO / 'plugins'}:{Path(pymysql.__file__).parents[1]}"
    try:
        run = subprocess.run(
            ["runuser", "-u", "nobody", "--", str(SYSTEM_PYTHON), "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        shutil.rmtree(request_cleanup, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["1", "True", "False"]
