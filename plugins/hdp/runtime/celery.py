"""The distributed run without Docker: CeleryExecutor, Redis and workers on hosts of their own.

`make up-celery` (`python -m hdp up-celery`) runs docker-compose.yml's topology on this machine:
a private network (a Linux bridge, like compose's default network) on which every server has an
address of its own, the warehouse's PostgreSQL, Airflow's metadata PostgreSQL, Redis and the
api-server, and each Celery worker in its own network namespace (`ip netns`, a veth pair into
the bridge). A worker's namespace has its own loopback and no route but the link: it reaches
Redis, both databases and the Execution API over the link only, so nothing it needs can hide
in a shared local socket. The scheduler, dag-processor and triggerer run on this machine and
use the same addresses. `make down` stops it all and removes the network.

Shared files, as compose shares volumes: the workers and the services share HDP_HOME (compose's
`hdp-var`: drop folders, quality reports and GX Data Docs, the procurement report). Task logs are
not shared: each worker writes its own folder and serves it over HTTP (Airflow's worker log
server, requests signed with the shared [api] secret_key); the api-server fetches them from the
address the worker reports as its hostname.

Needs root (network namespaces) and Debian's `redis-server` (`make redis`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from hdp.config import Settings, load_settings
from hdp.secrets import secret

REDIS_PORT = int(os.environ.get("HDP_REDIS_PORT", "16379"))
WORKER_LOG_PORT = 8793  # Airflow's default: each worker serves it in its own namespace
WORKER_CONCURRENCY = 2
WORKER_COUNT = int(os.environ.get("HDP_CELERY_WORKERS", "2"))
QUEUE = "default"  # every worker takes the default queue, so mapped tasks spread over them
HOSTNAME_CALLABLE = "hdp.runtime.celery.worker_hostname"
WORKER_HOST_ENV = "HDP_WORKER_HOST"
SERVICES = ("scheduler", "dag-processor", "triggerer", "api-server")
READY_TIMEOUT_S = 300  # a loaded 2-core machine needs minutes for the api-server


class CeleryStackError(RuntimeError):
    """A part of the distributed run did not start: the message names it and its log."""


def worker_hostname() -> str:
    """Airflow's hostname_callable: a worker reports its link address (task_instance.hostname,
    where the api-server fetches its logs); every other process its FQDN, as by default."""
    import socket

    return os.environ.get(WORKER_HOST_ENV) or socket.getfqdn()


@dataclass(frozen=True)
class Worker:
    name: str  # the Celery hostname's prefix, worker-1 ...
    netns: str
    veth_host: str  # the end in the bridge
    veth_worker: str  # the end in the worker's namespace
    address: str


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one checkout's distributed run, derived from its HDP_HOME, so two
    checkouts on one machine never share a bridge, a namespace or a subnet."""

    bridge: str
    prefix: str  # the /24's first three octets
    workers: tuple[Worker, ...]

    @property
    def cidr(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def warehouse(self) -> str:
        return f"{self.prefix}.1"

    @property
    def metadata(self) -> str:
        return f"{self.prefix}.2"

    @property
    def redis(self) -> str:
        return f"{self.prefix}.3"

    @property
    def api(self) -> str:
        return f"{self.prefix}.4"

    @property
    def server_addresses(self) -> tuple[str, ...]:
        return (self.warehouse, self.metadata, self.redis, self.api)


def topology(settings: Settings, workers: int = WORKER_COUNT) -> Topology:
    digest = hashlib.sha1(str(settings.home).encode()).digest()
    tag = digest[:3].hex()  # interface names: at most 15 characters
    prefix = f"10.{200 + digest[3] % 50}.{digest[4]}"
    return Topology(
        bridge=f"hdpb{tag}",
        prefix=prefix,
        workers=tuple(
            Worker(
                name=f"worker-{i}",
                netns=f"hdp-{tag}-w{i}",
                veth_host=f"hdp{tag}h{i}",
                veth_worker=f"hdp{tag}w{i}",
                address=f"{prefix}.{10 + i}",
            )
            for i in range(1, workers + 1)
        ),
    )


# ------------------------------------------------------------------------------------ network


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
    except FileNotFoundError:  # no iproute2: nothing of ours can exist (`make down` goes on)
        done = subprocess.CompletedProcess(["ip", *args], 1, "", "ip (iproute2) not found")
    if check and done.returncode != 0:
        raise CeleryStackError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def network_exists(topo: Topology) -> bool:
    return _ip("link", "show", topo.bridge, check=False).returncode == 0


def netns_names() -> set[str]:
    out = _ip("netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def create_network(topo: Topology) -> None:
    """The bridge with one address per server, and each worker's namespace joined to it by a
    veth pair; the namespace gets its loopback and its address, no default route."""
    if os.geteuid() != 0:
        raise CeleryStackError(
            "the distributed run puts each worker in a network namespace: run it as root"
        )
    remove_network(topo)
    _ip("link", "add", topo.bridge, "type", "bridge")
    for address in topo.server_addresses:
        _ip("addr", "add", f"{address}/24", "dev", topo.bridge)
    _ip("link", "set", topo.bridge, "up")
    for worker in topo.workers:
        _ip("netns", "add", worker.netns)
        _ip("link", "add", worker.veth_host, "type", "veth", "peer", "name", worker.veth_worker)
        _ip("link", "set", worker.veth_worker, "netns", worker.netns)
        _ip("link", "set", worker.veth_host, "master", topo.bridge)
        _ip("link", "set", worker.veth_host, "up")
        _ip("-n", worker.netns, "addr", "add", f"{worker.address}/24", "dev", worker.veth_worker)
        _ip("-n", worker.netns, "link", "set", worker.veth_worker, "up")
        _ip("-n", worker.netns, "link", "set", "lo", "up")


def remove_network(topo: Topology) -> None:
    """Delete the namespaces (their veth ends go with them) and the bridge; idempotent."""
    present = netns_names()
    for worker in topo.workers:
        if worker.netns in present:
            _ip("netns", "delete", worker.netns, check=False)
        _ip("link", "delete", worker.veth_host, check=False)
    if network_exists(topo):
        _ip("link", "delete", topo.bridge, check=False)


# -------------------------------------------------------------------------------------- redis


def redis_dir(settings: Settings) -> Path:
    return settings.home / "redis"


def redis_password(settings: Settings) -> str:
    return secret(settings.secrets_dir, "redis_password")


def write_redis_config(settings: Settings, address: str, port: int = REDIS_PORT) -> Path:
    """redis.conf (mode 0600: it holds the password, kept off the command line) for a server
    on `address` only, with its append-only file in HDP_HOME/redis."""
    folder = redis_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    conf = folder / "redis.conf"
    lines = [
        f"bind {address}",
        f"port {port}",
        "protected-mode yes",
        f"requirepass {redis_password(settings)}",
        f"dir {folder}",
        "appendonly yes",
        "daemonize no",
        f"logfile {folder / 'redis.log'}",
        'save ""',
    ]
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return conf


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if not found:
        raise CeleryStackError(
            "redis-server not found: install Debian's package (`make redis`, or "
            "`apt-get install redis-server`)"
        )
    return found


def broker_url(settings: Settings, topo: Topology, port: int = REDIS_PORT) -> str:
    return f"redis://:{redis_password(settings)}@{topo.redis}:{port}/0"


# --------------------------------------------------------------------------------- processes


def run_dir(settings: Settings) -> Path:
    return settings.home / "celery"


def _pid_file(settings: Settings, name: str) -> Path:
    return run_dir(settings) / "pids" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.home / "logs" / f"celery-{name}.log"


def worker_log_dir(settings: Settings, worker: Worker) -> Path:
    """A worker's own task-log folder (a second machine's disk): served, never shared."""
    return run_dir(settings) / worker.name / "logs"


def spawn(settings: Settings, name: str, cmd: list[str], env: dict[str, str]) -> int:
    """Start `cmd` in a process group of its own (so stop() ends all of it); returns its pid."""
    out_path = log_file(settings, name)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "a") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pid_path = _pid_file(settings, name)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(str(proc.pid))
    return proc.pid


def _group_alive(pgid: int) -> bool:
    # the leader is our child when this process started it: a zombie would look alive
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(settings: Settings, name: str, timeout: float = 60) -> bool:
    """SIGTERM the process group (a Celery worker's warm shutdown lets its tasks finish),
    SIGKILL if it lingers; False when it was not running."""
    pid_path = _pid_file(settings, name)
    if not pid_path.exists():
        return False
    pgid = int(pid_path.read_text().strip())
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pgid):
            time.sleep(0.5)
    pid_path.unlink(missing_ok=True)
    return True


def running(settings: Settings) -> list[str]:
    """The parts of the distributed run whose process group is alive."""
    folder = run_dir(settings) / "pids"
    if not folder.is_dir():
        return []
    alive = []
    for path in folder.glob("*.pid"):
        text = path.read_text().strip()
        if text.isdigit() and int(text) > 1 and _group_alive(int(text)):
            alive.append(path.stem)
    return sorted(alive)


# ------------------------------------------------------------------------------- environment


def _on_link(url: str, local_port: int, address: str) -> str:
    """A PostgreSQL URL of the embedded warehouse server with its host moved to the link."""
    from hdp.warehouse.database import Login

    login = Login.from_url(url)
    if login.dialect != "postgresql" or login.host not in ("127.0.0.1", "localhost"):
        return url
    if login.port != local_port:
        return url
    return replace(login, host=address).url


def linked_connections(settings: Settings, topo: Topology) -> dict[str, str]:
    """The platform's Airflow connections as the workers must use them: every one on the
    embedded warehouse server through the link address. A MySQL source (Hospital B's MariaDB,
    bound to 127.0.0.1) is left as it is: no worker reaches it (docs/deploy.md)."""
    from hdp.runtime.env import connection_uris

    return {
        conn_id: _on_link(uri, settings.pg_port, topo.warehouse)
        for conn_id, uri in connection_uris(settings).items()
    }


def celery_env(settings: Settings, topo: Topology) -> dict[str, str]:
    """The environment of every process of the distributed run: the embedded one's, with the
    CeleryExecutor, Redis, and every server reached at its link address."""
    from urllib.parse import quote

    from hdp.runtime.env import AIRFLOW_PORT, airflow_env
    from hdp.warehouse.database import logins

    env = airflow_env(settings)
    meta = logins(settings).airflow
    credentials = f"{quote(meta.user)}:{quote(meta.password, safe='')}"
    metadata = f"{credentials}@{topo.metadata}:{meta.port}/{meta.dbname}"
    base_url = f"http://{topo.api}:{AIRFLOW_PORT}"
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(WORKER_CONCURRENCY * len(topo.workers)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{metadata}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{metadata}",
            "AIRFLOW__CELERY__BROKER_URL": broker_url(settings, topo),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": QUEUE,
            "AIRFLOW__API__HOST": topo.api,
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__SECRET_KEY": secret(settings.secrets_dir, "airflow_api_secret_key"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(WORKER_LOG_PORT),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # dbt's profile: the transformer reaches the warehouse over the link too
            "HDP_WAREHOUSE_HOST": topo.warehouse,
        }
    )
    return env


def worker_env(settings: Settings, env: dict[str, str], worker: Worker) -> dict[str, str]:
    return {
        **env,
        WORKER_HOST_ENV: worker.address,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(worker_log_dir(settings, worker)),
    }


def worker_command(worker: Worker) -> list[str]:
    return [
        "ip",
        "netns",
        "exec",
        worker.netns,
        "airflow",
        "celery",
        "worker",
        "--celery-hostname",
        f"{worker.name}@{worker.address}",
        "--queues",
        QUEUE,
        "--concurrency",
        str(WORKER_CONCURRENCY),
    ]


SERVICE_COMMANDS: dict[str, list[str]] = {
    "scheduler": ["airflow", "scheduler"],
    "dag-processor": ["airflow", "dag-processor"],
    # its log server would take a port on every interface of this machine: triggers log here
    "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
    "api-server": ["airflow", "api-server"],
}


# -------------------------------------------------------------------------------- up / down


def _restart_on_link(settings: Settings, topo: Topology) -> None:
    """Both embedded clusters listening on their link address too (the warehouse keeps
    127.0.0.1, the metadata its socket), scram-sha-256 from the link's network."""
    from hdp.warehouse.clusters import metadata_cluster, warehouse_cluster

    for cluster, address in (
        (warehouse_cluster(settings), topo.warehouse),
        (metadata_cluster(settings), topo.metadata),
    ):
        cluster.init()
        cluster.allow_network(topo.cidr)
        cluster.stop()
        cluster.start(listen=(address,))


def _wait_for_redis(settings: Settings, topo: Topology, deadline: float) -> None:
    import redis

    client = redis.Redis(host=topo.redis, port=REDIS_PORT, password=redis_password(settings))
    while time.time() < deadline:
        try:
            if client.ping():
                return
        except redis.exceptions.ConnectionError:
            time.sleep(0.3)
    raise CeleryStackError(f"Redis did not answer on {topo.redis}:{REDIS_PORT}")


def api_healthy(topo: Topology, port: int) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://{topo.api}:{port}/api/v2/monitor/health", timeout=3
        ) as resp:
            return resp.status == 200
    except OSError:
        return False


def workers_online(settings: Settings, env: dict[str, str]) -> set[str]:
    """Celery hostnames of the workers that answer a ping through the broker."""
    code = (
        "import json; from airflow.providers.celery.executors.celery_executor import app; "
        "print('RESULT' + json.dumps(sorted((app.control.ping(timeout=3) and "
        "[k for d in app.control.ping(timeout=3) for k in d]) or [])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 or "RESULT" not in done.stdout:
        return set()
    return set(json.loads(done.stdout.split("RESULT", 1)[1].splitlines()[0]))


def up_celery(settings: Settings | None = None) -> Topology:
    """Start the distributed run; returns its topology. Raises CeleryStackError naming the
    part that did not start (whatever started is stopped again)."""
    from hdp.runtime.airflow import prepare
    from hdp.runtime.env import AIRFLOW_PORT, register_connections
    from hdp.runtime.setup import ensure_platform

    settings = settings or load_settings()
    if running(settings):
        down_celery(settings)
    topo = topology(settings)
    redis_server = redis_binary()
    ensure_platform()
    try:
        create_network(topo)
        _restart_on_link(settings, topo)
        env = celery_env(settings, topo)
        prepare(env, set_up=False)  # metadata migrated over the link, dbt manifest parsed
        register_connections(env, settings, linked_connections(settings, topo))
        deadline = time.time() + READY_TIMEOUT_S
        conf = str(write_redis_config(settings, topo.redis))
        spawn(settings, "redis", [redis_server, conf], {"PATH": env["PATH"]})  # no Airflow secret
        _wait_for_redis(settings, topo, deadline)
        for name in SERVICES:
            spawn(settings, name, SERVICE_COMMANDS[name], env)
        for worker in topo.workers:
            worker_log_dir(settings, worker).mkdir(parents=True, exist_ok=True)
            spawn(settings, worker.name, worker_command(worker), worker_env(settings, env, worker))
        while not api_healthy(topo, AIRFLOW_PORT):
            dead = [n for n in (*SERVICES, "redis") if n not in running(settings)]
            if dead or time.time() > deadline:
                what = ", ".join(dead) or "api-server (not healthy in time)"
                raise CeleryStackError(
                    f"distributed run: {what} did not start; see its log "
                    f"{settings.home / 'logs'}/celery-<part>.log"
                )
            time.sleep(2)
        expected = {f"{w.name}@{w.address}" for w in topo.workers}
        while not expected <= {h.removeprefix("celery@") for h in workers_online(settings, env)}:
            names = [*SERVICES, *(w.name for w in topo.workers)]
            dead = [n for n in names if n not in running(settings)]
            if dead or time.time() > deadline:
                what = ", ".join(dead) or "Celery workers (not online in time)"
                raise CeleryStackError(
                    f"distributed run: {what} did not start; see its log "
                    f"{settings.home / 'logs'}/celery-<part>.log"
                )
            time.sleep(2)
    except BaseException:
        down_celery(settings)
        raise
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if passwords.exists():
        os.chmod(passwords, 0o600)  # Airflow writes it world-readable
    return topo


def down_celery(settings: Settings | None = None) -> list[str]:
    """Stop every part (workers first, so they finish their tasks while the services are still
    there), give the clusters back their own addresses only, remove the network; returns what
    was stopped."""
    from hdp.warehouse.clusters import metadata_cluster, warehouse_cluster

    settings = settings or load_settings()
    topo = topology(settings)
    stopped = []
    names = [w.name for w in topo.workers] + [*reversed(SERVICES), "redis"]
    extra = [n for n in running(settings) if n not in names]  # e.g. more workers than now
    for name in extra + names:
        if stop_process(settings, name):
            stopped.append(name)
    had_network = network_exists(topo) or bool({w.netns for w in topo.workers} & netns_names())
    if had_network:
        for cluster in (warehouse_cluster(settings), metadata_cluster(settings)):
            if cluster.is_running():  # listening on the link: restart on its own addresses
                cluster.stop()
                cluster.start()
        remove_network(topo)
    return stopped


def cmd_up_celery(args: argparse.Namespace) -> int:
    from hdp.runtime.env import AIRFLOW_PORT

    settings = load_settings()
    try:
        topo = up_celery(settings)
    except CeleryStackError as exc:
        print(f"error: {exc}")
        return 1
    print(f"Airflow UI:  http://{topo.api}:{AIRFLOW_PORT}  (user admin; CeleryExecutor)")
    print(f"Redis:       {topo.redis}:{REDIS_PORT} (password in {settings.secrets_dir})")
    print(f"Warehouse:   {topo.warehouse}:{settings.pg_port}   metadata: {topo.metadata}")
    for worker in topo.workers:
        print(f"Worker:      {worker.name}@{worker.address} in network namespace {worker.netns}")
    print(f"Logs:        {settings.home / 'logs'}/celery-*.log")
    print("DAGs:        as they were (unpause them in the UI)")
    print("Stop with:   make down")
    return 0


def register(sub) -> None:
    sub.add_parser(
        "up-celery",
        help="the distributed run: CeleryExecutor, Redis, workers in network namespaces",
    ).set_defaults(func=cmd_up_celery)
