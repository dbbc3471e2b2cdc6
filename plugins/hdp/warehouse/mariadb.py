"""The embedded MariaDB server: a project-local MySQL-family server for MySQL sources.

Most Chinese hospitals' HIS, LIS and pharmacy systems that are not on Oracle or SQL Server run
on MySQL or MariaDB, so the platform's MySQL path is tested on a real server, started here like
the embedded PostgreSQL (hdp.warehouse.clusters): Debian's `mariadb-server` binaries, data in
$HDP_HOME/mariadb, bound to 127.0.0.1 at HDP_MARIADB_PORT with its own socket and pid file,
`--no-defaults` so nothing in /etc/mysql applies. Two generated passwords (hdp.secrets): root's,
and that of an ordinary user `hdp` that owns the databases the platform creates. MariaDB runs as
root only with `--user`, so under uid 0 the server runs as the `mysql` user the package creates;
an ordinary user runs it as itself. HDP_MARIADB_URL (`mysql://root:...@host:port/`) points at an
existing server instead: then nothing is started or stopped here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hdp.config import Settings
from hdp.secrets import secret

log = logging.getLogger(__name__)

URL_ENV = "HDP_MARIADB_URL"
PORT_ENV = "HDP_MARIADB_PORT"
BINDIR_ENV = "HDP_MARIADB_BINDIR"
# below Linux's ephemeral range (32768-60999), so no client's outgoing connection can hold it,
# and clear of the embedded PostgreSQL's and the benchmarks' ports (5543x, 55492)
DEFAULT_PORT = 33306
SERVER_USER = "mysql"  # the server's OS user under root (Debian's package creates it)
ROOT = "root"
USER = "hdp"  # the ordinary login: owns the databases made by ensure_database
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
PACKAGE_HINT = (
    "Install them (Debian/Ubuntu: `apt-get install mariadb-server`; `make mariadb` does it when "
    "run as root), set HDP_MARIADB_BINDIR to the folder that holds them, or set HDP_MARIADB_URL "
    "to use an existing MySQL or MariaDB server instead."
)


class MariaDBNotFound(RuntimeError):
    """The server binaries are missing: the message names the package."""


class MariaDBError(RuntimeError):
    """The server did not initialise, start or stop: the message quotes its log."""


def find_binaries() -> tuple[Path, Path]:
    """(mariadb-install-db, mariadbd): $HDP_MARIADB_BINDIR, then PATH and Debian's folders."""
    explicit = os.environ.get(BINDIR_ENV)
    folders = [explicit] if explicit else [*os.environ.get("PATH", "").split(":"), "/usr/sbin"]
    folders += [] if explicit else ["/usr/bin", "/usr/local/sbin", "/usr/local/bin"]

    def find(name: str) -> Path | None:
        for folder in folders:
            # a folder on PATH this user may not enter (root's, under runuser) is skipped
            with contextlib.suppress(OSError):
                if folder and os.access(Path(folder) / name, os.X_OK):
                    return Path(folder) / name
        return None

    install_db, server = find("mariadb-install-db"), find("mariadbd")
    if install_db is None or server is None:
        where = f"in {explicit}" if explicit else "on PATH or in /usr/sbin"
        raise MariaDBNotFound(
            f"MariaDB server binaries (mariadb-install-db, mariadbd) not found {where}. "
            + PACKAGE_HINT
        )
    return install_db, server


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _server_user_can_use(path: Path) -> bool:
    probe = subprocess.run(
        ["runuser", "-u", SERVER_USER, "--", "test", "-x", str(path)], capture_output=True
    )
    return probe.returncode == 0


def _alive(pid: int) -> bool:
    """Whether `pid` is a running mariadbd (not a zombie, not a reused pid)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if this process happens to be its parent
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return comm.startswith("mariadbd") and state != "Z"


@dataclass(frozen=True)
class MariaDBLogin:
    """A login on a MySQL-family server (TCP, or the socket when `unix_socket` is set)."""

    user: str
    password: str
    host: str = "127.0.0.1"
    port: int = 3306
    database: str = ""
    unix_socket: str | None = None

    @property
    def url(self) -> str:
        from urllib.parse import quote

        return (
            f"mysql://{quote(self.user)}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{self.database}"
        )

    def with_database(self, database: str) -> MariaDBLogin:
        return MariaDBLogin(
            self.user, self.password, self.host, self.port, database, self.unix_socket
        )


def connect_mysql(
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    database: str = "",
    unix_socket: str | None = None,
    **kwargs: object,
):
    """A PyMySQL connection (utf8mb4): the one place the platform opens one (this server, and
    the MySQL sources: hdp.ingest.extract.connect_source). Rows are never fetched through it in
    bulk."""
    import pymysql

    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database or None,
        unix_socket=unix_socket,
        charset="utf8mb4",
        connect_timeout=10,
        **kwargs,
    )


def connect(login: MariaDBLogin, **kwargs: object):
    """A PyMySQL connection of a login on this server."""
    return connect_mysql(
        host=login.host,
        port=login.port,
        user=login.user,
        password=login.password,
        database=login.database,
        unix_socket=login.unix_socket,
        **kwargs,
    )


@dataclass(frozen=True)
class MariaDBServer:
    root: Path
    port: int
    secrets_dir: Path

    @classmethod
    def for_home(cls, home: Path, port: int) -> MariaDBServer:
        root = home / "mariadb"
        if _runs_as_root():
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError as exc:
                raise MariaDBNotFound(
                    "Running as root, but there is no `mysql` user to run MariaDB as. "
                    + PACKAGE_HINT
                ) from exc
            home.mkdir(parents=True, exist_ok=True)
            if not _server_user_can_use(home):
                # e.g. a clone under /root: keep the server in a folder mysql can reach
                digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
                root = Path("/var/tmp") / f"hdp-mariadb-{digest}"
                log.warning("mysql user cannot reach %s; MariaDB kept in %s", home, root)
        return cls(root=root, port=port, secrets_dir=home / "secrets")

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "mariadb.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "mariadb.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "mariadb.log"

    @property
    def _provisioned(self) -> Path:
        return self.data_dir / "hdp_provisioned"

    def root_password(self) -> str:
        return secret(self.secrets_dir, "mariadb_root_password")

    def user_password(self) -> str:
        return secret(self.secrets_dir, "mariadb_user_password")

    def admin_login(self) -> MariaDBLogin:
        return MariaDBLogin(ROOT, self.root_password(), "127.0.0.1", self.port)

    def user_login(self, database: str = "") -> MariaDBLogin:
        return MariaDBLogin(USER, self.user_password(), "127.0.0.1", self.port, database)

    def _user_flag(self) -> list[str]:
        return [f"--user={SERVER_USER}"] if _runs_as_root() else []

    def is_initialised(self) -> bool:
        return (self.data_dir / "mysql").is_dir()

    def init(self) -> None:
        if self.is_initialised():
            return
        install_db, _ = find_binaries()
        for folder in (self.root, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if _runs_as_root():
            for folder in (self.root, self.run_dir):
                shutil.chown(folder, SERVER_USER, SERVER_USER)
        result = subprocess.run(
            [
                str(install_db),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                *self._user_flag(),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise MariaDBError(
                f"mariadb-install-db failed in {self.data_dir}:\n{result.stderr.strip()[-2000:]}"
            )
        log.info("initialised MariaDB in %s", self.data_dir)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive(pid)

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        with open(self.log_file, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def start(self) -> None:
        """Initialise on first use, start and wait until it accepts logins; a running server
        is left as it is."""
        self.init()
        if not self.is_running():
            self._launch()
        self._provision()

    def _launch(self) -> None:
        _, server = find_binaries()
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        if _runs_as_root() and not self.log_file.exists():
            self.log_file.touch()
            shutil.chown(self.log_file, SERVER_USER, SERVER_USER)
        self.pid_file.unlink(missing_ok=True)
        args = [
            str(server),
            "--no-defaults",  # must come first: nothing of /etc/mysql applies
            f"--datadir={self.data_dir}",
            *self._user_flag(),
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--innodb-buffer-pool-size=128M",
        ]
        # detached through a shell that exits at once: the server is no child of this process
        # (it outlives it, like pg_ctl's postmaster) and never lingers as its zombie
        subprocess.run(
            ["sh", "-c", 'exec "$@" </dev/null >/dev/null 2>&1 &', "mariadbd", *args], check=True
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.is_running() and self.socket_path.exists() and self._accepts():
                log.info("MariaDB running on 127.0.0.1:%s", self.port)
                return
            logged = self._log_since(offset)
            if "[ERROR]" in logged and "Aborting" in logged:
                break
            time.sleep(0.1)
        tail = "\n".join(self._log_since(offset).splitlines()[-15:])
        raise MariaDBError(
            f"MariaDB did not start on 127.0.0.1:{self.port} (is the port taken? set "
            f"{PORT_ENV}); its log {self.log_file}:\n{tail}"
        )

    def _provision(self) -> None:
        """Once: root's password, and the ordinary user (over the socket, where root has no
        password until now)."""
        if self._provisioned.exists():
            return
        local_root = MariaDBLogin(ROOT, "", unix_socket=str(self.socket_path))
        conn = connect(local_root, autocommit=True)
        try:
            with conn.cursor() as cur:
                # mariadb-install-db also makes root@<hostname> and root@::1 without a password
                # (and anonymous users on some versions): the server listens on 127.0.0.1 only,
                # so they can go, as mysql_secure_installation does
                cur.execute(
                    "select user, host from mysql.user where user = '' or (user = 'root' "
                    "and host not in ('localhost', '127.0.0.1'))"
                )
                for user, host in cur.fetchall():
                    cur.execute("drop user %s@%s", (user, host))
                # root over TCP too (the platform's clients use 127.0.0.1), the same password
                for host in ("127.0.0.1", "localhost"):
                    cur.execute("create user if not exists 'root'@%s", (host,))
                    cur.execute(
                        "alter user 'root'@%s identified by %s", (host, self.root_password())
                    )
                    cur.execute(f"grant all privileges on *.* to 'root'@'{host}' with grant option")
                    cur.execute(
                        "create or replace user %s@%s identified by %s",
                        (USER, host, self.user_password()),
                    )
        finally:
            conn.close()
        self._provisioned.write_text("root and hdp users created\n")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown) and wait until no server process is left."""
        pid = self.pid()
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid):
            if time.monotonic() > deadline:
                raise MariaDBError(f"MariaDB (pid {pid}) did not stop in {STOP_TIMEOUT_S:g} s")
            time.sleep(0.1)
        log.info("MariaDB stopped")

    def ensure_database(self, name: str) -> MariaDBLogin:
        """A utf8mb4 database owned by the ordinary user; returns that user's login on it."""
        conn = connect(self.admin_login(), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"create database if not exists `{name}` character set utf8mb4 "
                    "collate utf8mb4_unicode_ci"
                )
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"grant all privileges on `{name}`.* to %s@%s", (USER, host))
        finally:
            conn.close()
        return self.user_login(name)


def mariadb_port() -> int:
    return int(os.environ.get(PORT_ENV) or DEFAULT_PORT)


def mariadb_server(settings: Settings) -> MariaDBServer | None:
    """The embedded server, or None when HDP_MARIADB_URL names an existing one."""
    if os.environ.get(URL_ENV):
        return None
    return MariaDBServer.for_home(settings.home, mariadb_port())


def mariadb_admin(settings: Settings) -> MariaDBLogin:
    """The administrator's login: HDP_MARIADB_URL's, else the embedded server's root (started
    if it is not running)."""
    url = os.environ.get(URL_ENV)
    if url:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        return MariaDBLogin(
            unquote(parts.username or ROOT),
            unquote(parts.password or ""),
            parts.hostname or "127.0.0.1",
            parts.port or 3306,
            parts.path.lstrip("/"),
        )
    server = mariadb_server(settings)
    assert server is not None
    server.start()
    return server.admin_login()


def stop_mariadb(settings: Settings) -> None:
    """Stop the embedded server if it runs (`hdp down`); an existing server is left alone."""
    try:
        server = mariadb_server(settings)
    except MariaDBNotFound:  # no package, so no server of ours can be running
        return
    if server is not None:
        server.stop()
