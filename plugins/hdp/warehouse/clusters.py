"""The embedded PostgreSQL clusters: project-local servers the platform starts and stops itself.

Two of them, so a warehouse restart (a crash, `pg_ctl stop -m immediate`, an upgrade) never takes
the scheduler's state with it: the warehouse and the simulated sources in $HDP_HOME/pg, listening
on 127.0.0.1 at HDP_PG_PORT, and Airflow's metadata database alone in $HDP_HOME/pg-airflow,
listening on no TCP port at all, only on its own socket folder (so it can collide with no other
server's port, and only local processes reach it). Each authenticates with scram-sha-256 and its
own generated superuser password. PostgreSQL refuses to run as root, so under uid 0 the servers
run as the `postgres` user.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hdp.config import Settings
from hdp.secrets import secret

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "synchronous_commit": "off",
    "log_connections": "on",
    "log_line_prefix": "'%m [%p] %u@%d '",
    # JIT compilation cost about ten times the query on the MPI and k-anonymity models
    # (int_patients__generalised 10.0 s -> 0.84 s, int_mpi__scored_pairs 6.7 s -> 0.80 s)
    "jit": "off",
}
# Airflow's metadata: small, and its commits must survive a crash (the scheduler's state), so
# synchronous_commit stays on; no connection log (the scheduler reconnects every few seconds).
# No TCP listener: Airflow's processes run on this machine and connect through the socket folder.
METADATA_SERVER_SETTINGS = {
    **SERVER_SETTINGS,
    "listen_addresses": "''",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "32MB",
    "synchronous_commit": "on",
    "log_connections": "off",
}
WAREHOUSE = "pg"
METADATA = "pg-airflow"
START_ATTEMPTS = 4


class PostgresNotFound(RuntimeError):
    pass


def find_bindir() -> Path:
    """Locate initdb/pg_ctl: $HDP_PG_BINDIR, `pg_config --bindir`, then Debian's usual folders."""
    candidates: list[str] = []
    explicit = os.environ.get("HDP_PG_BINDIR")
    if explicit:
        candidates.append(explicit)
    elif shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    if not explicit:
        candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if not explicit and shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))  # type: ignore[arg-type]
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them "
        "(Debian/Ubuntu: `apt-get install postgresql`), set HDP_PG_BINDIR to the folder that "
        "holds them, or set HDP_PG_URL to use an existing PostgreSQL server instead."
    )


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if _runs_as_root() else cmd


def _server_user_can_use(path: Path) -> bool:
    """Under root, the postgres user must be able to traverse every parent of the cluster folder."""
    probe = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class Cluster:
    root: Path
    port: int
    secrets_dir: Path
    name: str = WAREHOUSE

    @classmethod
    def for_home(cls, home: Path, port: int, name: str = WAREHOUSE) -> Cluster:
        root = home / name
        if _runs_as_root():
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresNotFound(
                    "Running as root, but there is no `postgres` user to run the server as. "
                    "Install Debian's postgresql package (it creates the user) or run as an "
                    "ordinary user."
                ) from exc
            home.mkdir(parents=True, exist_ok=True)
            if not _server_user_can_use(home):
                # e.g. a clone under /root: keep the cluster in a folder postgres can reach.
                digest = hashlib.sha1(str(home).encode()).hexdigest()[:10]
                root = Path("/var/tmp") / f"hdp-{name}-{digest}"
                log.warning("postgres user cannot reach %s; cluster kept in %s", home, root)
        return cls(root=root, port=port, secrets_dir=home / "secrets", name=name)

    @property
    def server_settings(self) -> dict[str, str]:
        return METADATA_SERVER_SETTINGS if self.name == METADATA else SERVER_SETTINGS

    @property
    def host(self) -> str:
        """Where clients connect: 127.0.0.1, or the socket folder of a cluster without TCP."""
        return str(self.socket_dir) if self.name == METADATA else "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def superuser_password(self) -> str:
        if self.name == WAREHOUSE:
            return secret(self.secrets_dir, "pg_superuser_password")
        return secret(self.secrets_dir, f"{self.name.replace('-', '_')}_superuser_password")

    def admin_url(self, dbname: str = "postgres") -> str:
        password = self.superuser_password()
        if self.host.startswith("/"):  # no TCP listener: libpq reads the socket folder as host
            return (
                f"postgresql://{SUPERUSER}:{password}@/{dbname}"
                f"?host={self.socket_dir}&port={self.port}"
            )
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        bindir = find_bindir()
        cmd = _as_server_user([str(bindir / args[0]), *args[1:]])
        return subprocess.run(cmd, capture_output=True, text=True)

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.is_initialised():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.superuser_password() + "\n")
        os.chmod(pwfile, 0o600)
        os.chmod(self.root, 0o700)
        if _runs_as_root():
            shutil.chown(self.root, "postgres", "postgres")
            for path in (self.socket_dir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        try:
            result = self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data_dir}:\n{result.stderr.strip()}")
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            for key, value in self.server_settings.items():
                conf.write(f"{key} = {value}\n")
        log.info("initialised PostgreSQL cluster in %s", self.data_dir)

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        return self._run(["pg_ctl", "status", "-D", str(self.data_dir)]).returncode == 0

    def _log_size(self) -> int:
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        with open(self.log_file, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def start(self, listen: tuple[str, ...] = ()) -> None:
        """Start and wait until ready. Ports here lie in Linux's ephemeral range (32768-60999),
        so a client's outgoing connection can hold ours for a moment: a bind failure is retried
        a few times before it is reported. `listen`: addresses the server listens on besides its
        settings' (the distributed run's link address, hdp.runtime.celery); their network must
        also be allowed by allow_network."""
        self.init()
        if self.is_running():
            return
        options = f"-p {self.port} -k {self.socket_dir}"
        if listen:
            own = self.server_settings["listen_addresses"].strip("'")
            options += " -c listen_addresses=" + ",".join(a for a in (own, *listen) if a)
        for attempt in range(START_ATTEMPTS):
            offset = self._log_size()
            result = self._run(
                [
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                ]
            )
            if result.returncode == 0:
                log.info("PostgreSQL running on %s:%s", self.host, self.port)
                return
            logged = self._log_since(offset)
            if "Address already in use" not in logged or attempt == START_ATTEMPTS - 1:
                break
            time.sleep(2)
        tail = "\n".join(logged.splitlines()[-15:])
        raise RuntimeError(
            f"PostgreSQL did not start on {self.host}:{self.port} "
            f"(is the port taken? set HDP_PG_PORT):\n"
            f"{result.stderr.strip()}\n{tail}"
        )

    def allow_network(self, cidr: str) -> None:
        """Let clients of `cidr` log in over TCP (scram-sha-256, as from 127.0.0.1); the server
        reads pg_hba.conf again at its next start or reload."""
        hba = self.data_dir / "pg_hba.conf"
        line = f"host    all    all    {cidr}    scram-sha-256"
        if line not in hba.read_text().splitlines():
            with open(hba, "a") as out:
                out.write(f"# the distributed run's link (hdp.runtime.celery)\n{line}\n")

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and shuts down cleanly; `immediate` is a crash
        (no checkpoint, recovery on the next start), which the fault tests use."""
        if not self.is_running():
            return
        result = self._run(["pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir)])
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {result.stderr.strip()}")


def warehouse_cluster(settings: Settings) -> Cluster:
    """The embedded cluster of the warehouse and the simulated sources."""
    return Cluster.for_home(settings.home, settings.pg_port)


def metadata_cluster(settings: Settings) -> Cluster:
    """The embedded cluster that holds only Airflow's metadata database. Its port only names the
    socket file (.s.PGSQL.<port>) in its own folder: no TCP port is taken."""
    return Cluster.for_home(settings.home, settings.pg_port, METADATA)


def embedded_clusters(settings: Settings) -> tuple[Cluster, Cluster]:
    """Both embedded clusters, warehouse first (start in this order, stop in any)."""
    return warehouse_cluster(settings), metadata_cluster(settings)


def stop_embedded(settings: Settings) -> None:
    """Stop both embedded clusters (`make down`, the benchmarks' clean-up)."""
    for cluster in embedded_clusters(settings):
        cluster.stop()
