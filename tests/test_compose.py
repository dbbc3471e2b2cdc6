"""Keeps docker-compose.yml, docker/Dockerfile, .env.example and docs/deploy.md honest.

No Docker engine runs on the development and CI machines, so the stack cannot be started here:
these tests check what can be checked without one (the files agree with each other and with the
code's environment variables, secrets have no defaults, paths exist, the image is hashed and
non-root).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
MAIN_LOCK = ROOT / "requirements" / "main.lock"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

REQUIRED_SERVICES = {
    "warehouse",
    "airflow-db",
    "redis",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
# Long-running Airflow services, and their command's words after `airflow`.
AIRFLOW_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
AIRFLOW_SERVICES = set(AIRFLOW_COMMANDS) | {"airflow-init"}

# Environment variables the platform code reads (the contract with plugins/, dags/, dbt_project/).
CODE_ENV_VARS = {
    "AIRFLOW_CONN_HDP_WAREHOUSE",
    "AIRFLOW_CONN_HIS_SOURCE",
    "HDP_WAREHOUSE_HOST",
    "HDP_WAREHOUSE_PORT",
    "HDP_WAREHOUSE_USER",
    "HDP_WAREHOUSE_PASSWORD",
    "HDP_WAREHOUSE_DB",
    "HDP_WAREHOUSE_SSLMODE",
    "HDP_PG_URL",
    "HDP_HOME",
    "HDP_DBT_PROJECT_DIR",
    "HDP_DBT_PROFILES_DIR",
    "HDP_EXPECTATIONS_DIR",
    "HDP_AIRFLOW_DB_URL",
}
# Read by the code but deliberately not given to every Airflow service; value: the services that
# must have it. Server-admin credentials and the pseudonym key go to the one-shot services only,
# never to services that run DAG code (a task must not hold the superuser password).
ADMIN_ONLY_VARS = {
    "HDP_PG_URL": {"airflow-init", "his-simulator"},
    "HDP_PSEUDONYM_KEY": {"airflow-init"},
    "HDP_IDENTITY_KEY": {"airflow-init"},
    # the warehouse owner's login, and the transformer's as set-up creates it (dbt reads
    # HDP_WAREHOUSE_*): tasks never hold the owner's password
    "HDP_WAREHOUSE_OWNER_URL": {"airflow-init"},
    "HDP_TRANSFORMER_URL": {"airflow-init"},
    # the Data quality page's login: created by set-up, used by the page in the api-server
    "HDP_QUALITY_READER_URL": {"airflow-init", "airflow-apiserver"},
}
# The simulator's write login to the demo HIS (tasks read through AIRFLOW_CONN_HIS_SOURCE).
DEMO_ONLY_VARS = {
    "HDP_HIS_OWNER_URL": {"his-simulator"},
    "HDP_PHARMACY_OWNER_URL": {"his-simulator"},
}
# Meaningful only for the embedded cluster and `airflow standalone` of a developer machine, or
# simulator knobs with defaults in hdp.config.
NOT_FOR_COMPOSE = {
    # the standard layer's registry: found from the project's files by every process that runs
    # dbt (hdp.runtime.standard), never configured
    "HDP_STANDARD_MAPPINGS",
    "HDP_PERSONAL_DATA_SOURCES",
    "HDP_SOURCE_KEYS",
    "HDP_PG_BINDIR",
    "HDP_PG_PORT",
    "HDP_AIRFLOW_PORT",
    "HDP_SCALE",
    "HDP_SEED",
    "HDP_HISTORY_DAYS",
    # compose's HIS is a separate server with its own init script: db init must not create it
    "HDP_MANAGE_HIS_SOURCE",
    # the forecast benchmark's own state folder (make forecast-bench, a developer machine)
    "HDP_BENCH_FORECAST_HOME",
    # the project-local MariaDB of the MySQL-source tests (hdp.warehouse.mariadb); compose runs
    # no MariaDB, and a MySQL source reaches the tasks as its AIRFLOW_CONN_<CONN_ID>
    "HDP_MARIADB_URL",
    "HDP_MARIADB_PORT",
    "HDP_MARIADB_BINDIR",
    # the distributed run on one machine (hdp.runtime.celery): its Redis port and worker count;
    # compose has its `redis` service and `--scale airflow-worker=N`
    "HDP_REDIS_PORT",
    "HDP_CELERY_WORKERS",
}
AIRFLOW_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
}
# Folders the image copies from the build context (the repository root).
CODE_DIRS = ("dags", "plugins/hdp", "dbt_project", "expectations")

SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|^AIRFLOW_CONN_")
# ${NAME}, ${NAME:-default}, ${NAME:?error} ...; `$${...}` is an escaped literal for the container.
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
URI_PASSWORD = re.compile(r"://[^/:@\s]*:([^@\s]*)@")
PLACEHOLDER = "change-me"


# ---------------------------------------------------------------- helpers


def strings_in(node):
    """Every string value in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines of a dotenv file; comments and blank lines skipped."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: line without '=': {line!r}"
        values[key.strip()] = value.strip()
    return values


ENV_READ = re.compile(
    r"""(?:os\.environ\.get|os\.environ\.setdefault|os\.getenv|os\.environ|env_var|login)\s*[\[(]\s*
        ['"]((?:HDP_|AIRFLOW_CONN_)[A-Z0-9_]+)['"]""",
    re.VERBOSE,
)


def env_names_read_by(text: str) -> set[str]:
    """HDP_* and AIRFLOW_CONN_* names a Python/Jinja/YAML text reads from the environment."""
    return set(ENV_READ.findall(text))


def env_names_read_by_code() -> set[str]:
    names: set[str] = set()
    for folder in ("plugins", "dags", "dbt_project", "expectations"):
        base = ROOT / folder
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.suffix in {".py", ".yml", ".yaml", ".sql", ".jinja", ".j2"} and path.is_file():
                names |= env_names_read_by(path.read_text(encoding="utf-8", errors="replace"))
    return names


def dockerfile_instructions(stage: str | None = "platform") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped: of
    one build stage (`FROM ... AS <stage>` up to the next FROM), or of the whole file."""
    joined, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result, current = [], None
    for line in joined:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else None
        if stage is None or current == stage:
            result.append((word.upper(), rest.strip()))
    return result


def dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", rest):
                env[key] = value
    return env


def dockerfile_copies(stage: str | None = "platform") -> dict[str, str]:
    """Source -> destination of the COPY instructions of a stage (flags such as --chown
    dropped); a source copied into a folder maps to the path it lands at."""
    copies = {}
    for word, rest in dockerfile_instructions(stage):
        if word == "COPY" and "--from" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            *sources, dest = parts
            for source in sources:
                target = dest.rstrip("/")
                if len(sources) > 1 or (dest.endswith("/") and not source.endswith("/")):
                    target = f"{target}/{Path(source).name}"
                copies[source.rstrip("/")] = target
    return copies


def plugins_folder(copies: dict[str, str]) -> str:
    """Where the image puts the plugins folder: the folder the Airflow plugin file lands in."""
    return copies["plugins/hdp_quality_plugin.py"].rsplit("/", 1)[0]


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())


# ---------------------------------------------------------------- structure


def test_required_services_present(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_shared_settings_come_from_one_anchor(compose_text, compose):
    assert "x-airflow-common" in compose, "no x-airflow-common block"
    assert re.search(r"^x-airflow-common:\s*&airflow-common\b", compose_text, re.M)
    merged = re.findall(r"^  ([a-z-]+):\n    <<: \*airflow-common$", compose_text, re.M)
    assert set(merged) >= AIRFLOW_SERVICES, (
        f"not built from the x-airflow-common anchor: {sorted(AIRFLOW_SERVICES - set(merged))}"
    )


def test_production_image_carries_no_simulator_or_benchmark(services):
    """The platform stage copies the platform package and the plugin file, never plugins/ whole
    nor the simulator or the benchmarks; only the demo's one-shot service builds the demo stage."""
    copies = dockerfile_copies("platform")
    plugin_sources = [src for src in copies if src.startswith("plugins")]
    assert "plugins" not in copies, "the platform stage copies plugins/ whole"
    assert plugin_sources, "the platform stage copies nothing from plugins/"
    for src in plugin_sources:
        assert not src.startswith(("plugins/hdp_sim", "plugins/hdp_bench")), src
    assert "plugins/hdp" in copies
    demo = dockerfile_copies("demo")
    assert set(demo) == {"plugins/hdp_sim"}, demo
    assert not any(src.startswith("plugins/hdp_bench") for src in dockerfile_copies(None))
    targets = {name: (svc.get("build") or {}).get("target") for name, svc in services.items()}
    for name in AIRFLOW_SERVICES:
        assert targets[name] == "platform", f"{name} builds {targets[name]!r}"
    assert {n for n, t in targets.items() if t == "demo"} == {"his-simulator"}
    assert services["his-simulator"].get("profiles") == ["demo"]
    assert services["his-simulator"]["image"] != services["airflow-scheduler"]["image"]


def test_airflow_services_share_one_image_and_build(services):
    images = {name: services[name].get("image") for name in AIRFLOW_SERVICES}
    builds = {name: services[name].get("build") for name in AIRFLOW_SERVICES}
    assert len(set(images.values())) == 1 and None not in images.values(), images
    first = next(iter(builds.values()))
    assert all(b == first for b in builds.values()), builds
    assert first["dockerfile"] == "docker/Dockerfile"
    assert (ROOT / first["context"] / first["dockerfile"]).is_file()


def test_airflow_services_use_celery_executor(services):
    for name in AIRFLOW_SERVICES:
        assert env_of(services[name]).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
    broker = env_of(services["airflow-worker"])["AIRFLOW__CELERY__BROKER_URL"]
    assert broker.startswith("redis://") and "@redis:" in broker


def test_airflow_services_run_the_right_commands(services):
    for name, words in AIRFLOW_COMMANDS.items():
        command = services[name]["command"]
        command = command.split() if isinstance(command, str) else command
        assert command == ["airflow", *words], f"{name}: {command}"
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init and "python -m hdp db init" in init


def test_airflow_services_get_every_airflow_setting(services):
    for name in AIRFLOW_SERVICES:
        missing = AIRFLOW_SETTINGS - set(env_of(services[name]))
        assert not missing, f"{name} lacks {sorted(missing)}"
        env = env_of(services[name])
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )


def test_services_start_in_order_and_report_health(services):
    for name in AIRFLOW_COMMANDS:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["warehouse"]["condition"] == "service_healthy", name
        assert deps["airflow-db"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
    for name in set(AIRFLOW_COMMANDS) | {"warehouse", "airflow-db", "redis"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["airflow-init"]["depends_on"]["warehouse"]["condition"] == "service_healthy"


def test_his_source_is_demo_only(services):
    assert "his-source" in services
    assert services["his-source"].get("profiles") == ["demo"]
    for name in REQUIRED_SERVICES:
        assert not services[name].get("profiles"), f"{name} would not start with a plain `up`"


# ---------------------------------------------------------------- variables and secrets


def test_every_compose_variable_is_in_env_example(compose, env_example):
    referenced = {m.group(1) for s in strings_in(compose) for m in VAR_REF.finditer(s)}
    assert referenced, "no ${VAR} found: the pattern or the file is wrong"
    missing = referenced - set(env_example)
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_secrets_have_no_default_in_compose(compose):
    refs = [m for s in strings_in(compose) for m in VAR_REF.finditer(s)]
    secret_refs = [m for m in refs if SECRET_NAME.search(m.group(1))]
    assert secret_refs, "no secret variable referenced at all"
    for m in secret_refs:
        assert m.group(2) == ":?", f"{m.group(0)}: a secret must be ${{{m.group(1)}:?...}}"


def test_no_literal_secret_in_compose(services):
    for name, service in services.items():
        for key, value in env_of(service).items():
            if (
                SECRET_NAME.search(key)
                and not key.startswith("AIRFLOW_CONN_")
                and not key.endswith("_FILE")
            ):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), f"{name}.{key}={value!r}"
            for password in URI_PASSWORD.findall(value):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", password), (
                    f"{name}.{key}: URI password {password!r} is not a required variable"
                )


def test_env_example_holds_no_real_secret(env_example):
    secrets = {k: v for k, v in env_example.items() if SECRET_NAME.search(k)}
    assert secrets, "no secret variable in .env.example"
    for key, value in secrets.items():
        for password in URI_PASSWORD.findall(value):
            assert password == PLACEHOLDER or re.fullmatch(r"\$\{[A-Z0-9_]+\}", password), key
        if not key.startswith("AIRFLOW_CONN_"):
            assert value == PLACEHOLDER, (
                f".env.example: {key} must be the placeholder {PLACEHOLDER}"
            )


def test_env_example_says_how_to_generate_secrets():
    text = ENV_EXAMPLE.read_text()
    assert "secrets.token_urlsafe" in text
    assert "urlsafe_b64encode(os.urandom(32))" in text or "Fernet.generate_key()" in text


def test_env_example_shows_tls_source_example():
    text = ENV_EXAMPLE.read_text()
    for param in ("sslmode=verify-full", "sslrootcert=", "sslcert=", "sslkey="):
        assert param in text, f".env.example: no {param} example"


def test_dotenv_is_git_ignored():
    lines = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in lines or "/.env" in lines, ".env is not in .gitignore"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "git does not ignore .env"
    kept = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT, check=False)
    assert kept.returncode == 1, ".env.example must not be ignored"


# ---------------------------------------------------------------- paths


def test_mounted_host_paths_exist(services, compose):
    named = set(compose.get("volumes") or {})
    bind_sources = []
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/", "~", "$")):
                bind_sources.append((name, source))
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert bind_sources, "no bind mount found: the warehouse init scripts should be one"
    for name, source in bind_sources:
        assert source.startswith("./"), f"{name}: {source} is outside the repository"
        assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_image_copies_the_code_from_existing_folders():
    copies = dockerfile_copies()
    for folder in CODE_DIRS:
        assert folder in copies, f"docker/Dockerfile does not COPY {folder}/"
        assert (ROOT / folder).is_dir(), f"{folder}/ does not exist, so the image cannot be built"


def test_code_paths_agree_with_airflow_settings(services):
    copies = dockerfile_copies()
    env = env_of(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == copies["dags"]
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == plugins_folder(copies)
    assert copies["plugins/hdp"] == plugins_folder(copies) + "/hdp"
    assert env["HDP_DBT_PROJECT_DIR"] == copies["dbt_project"]
    assert env["HDP_DBT_PROFILES_DIR"] == copies["dbt_project"]
    assert plugins_folder(copies) in dockerfile_env()["PYTHONPATH"].split(":")
    # A bind mount over the code (development) must land where Airflow looks.
    for name in AIRFLOW_SERVICES:
        for volume in services[name].get("volumes") or []:
            source, target = volume.split(":")[:2]
            for folder, lands in (("dags", copies["dags"]), ("plugins", plugins_folder(copies))):
                if source.rstrip("/") in (f"./{folder}", folder):
                    assert target == lands, f"{name}: {volume}"


def test_state_folders_are_volumes(services):
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        targets = {v.split(":")[1] for v in services[name].get("volumes") or []}
        assert env["HDP_HOME"] in targets, f"{name}: HDP_HOME {env['HDP_HOME']} is not a volume"
        assert "/opt/airflow/logs" in targets, f"{name}: no shared log volume"


# ---------------------------------------------------------------- the code's environment


def test_env_reader_pattern_finds_names():
    sample = (
        'os.environ["HDP_HOME"]; os.environ.get("HDP_PG_URL"); os.getenv(\'AIRFLOW_CONN_X\')\n'
        "{{ env_var('HDP_WAREHOUSE_USER') }} os.environ.get('OTHER')\n"
        'login("HDP_AIRFLOW_DB_URL", "airflow", "airflow_db_password", "airflow")'
    )
    assert env_names_read_by(sample) == {
        "HDP_HOME",
        "HDP_PG_URL",
        "AIRFLOW_CONN_X",
        "HDP_WAREHOUSE_USER",
        "HDP_AIRFLOW_DB_URL",
    }


def test_code_env_vars_reach_the_airflow_services(services):
    found = env_names_read_by_code()
    has_code = any((ROOT / "plugins").rglob("*.py"))
    assert found or not has_code, "plugins/ has code but no environment read was found: ENV_READ?"
    restricted = set(ADMIN_ONLY_VARS) | set(DEMO_ONLY_VARS) | NOT_FOR_COMPOSE
    needed = (CODE_ENV_VARS | found) - restricted
    for name in AIRFLOW_SERVICES:
        missing = needed - set(env_of(services[name]))
        assert not missing, f"{name} lacks {sorted(missing)} (read by the code)"


def test_restricted_vars_reach_exactly_their_services(services):
    for var, holders in {**ADMIN_ONLY_VARS, **DEMO_ONLY_VARS}.items():
        for name, service in services.items():
            has = var in env_of(service)
            assert has == (name in holders), f"{var} in {name}: {has}, expected {name in holders}"


def test_embedded_cluster_settings_stay_out(services):
    for name in AIRFLOW_SERVICES:
        leaked = {"HDP_PG_BINDIR", "HDP_PG_PORT"} & set(env_of(services[name]))
        assert not leaked, f"{name}: {sorted(leaked)} belong to the embedded cluster"


def test_warehouse_connection_agrees_with_dbt_settings(services):
    env = env_of(services["airflow-worker"])
    uri = env["AIRFLOW_CONN_HDP_WAREHOUSE"]
    assert uri.startswith("postgresql://")
    assert (
        f"@{env['HDP_WAREHOUSE_HOST']}:{env['HDP_WAREHOUSE_PORT']}/{env['HDP_WAREHOUSE_DB']}" in uri
    )
    # tasks load as hdp_load, dbt transforms as hdp_dbt: two logins, neither the owner
    init = env_of(services["airflow-init"])
    assert uri.startswith("postgresql://hdp_load:${HDP_LOADER_PASSWORD")
    assert env["HDP_WAREHOUSE_USER"] == "hdp_dbt"
    assert init["HDP_TRANSFORMER_URL"].startswith(
        f"postgresql://{env['HDP_WAREHOUSE_USER']}:{env['HDP_WAREHOUSE_PASSWORD']}@"
    )
    assert f"@{env['HDP_WAREHOUSE_HOST']}:" in init["HDP_TRANSFORMER_URL"]
    owner = init["HDP_WAREHOUSE_OWNER_URL"]
    assert "HDP_WAREHOUSE_OWNER_PASSWORD" in owner
    for name, service in services.items():
        if name != "airflow-init":
            leaked = {v for v in env_of(service).values() if "HDP_WAREHOUSE_OWNER_PASSWORD" in v}
            assert not leaked or name == "warehouse", f"{name} holds the owner's password"
    assert env["HDP_WAREHOUSE_HOST"] in services
    airflow = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
    assert airflow == env["HDP_AIRFLOW_DB_URL"], "two different Airflow metadata logins"


def _db_host(url: str) -> str:
    return re.sub(r"^[^@]*@", "", url).split(":", 1)[0].split("/", 1)[0]


def test_airflow_metadata_has_a_server_of_its_own(services, compose):
    """Issue 12, finding 10: a warehouse restart must not take the scheduler's state with it."""
    warehouse_host = env_of(services["airflow-worker"])["HDP_WAREHOUSE_HOST"]
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        hosts = {
            _db_host(env[key])
            for key in (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "AIRFLOW__CELERY__RESULT_BACKEND",
                "HDP_AIRFLOW_DB_URL",
            )
        }
        assert len(hosts) == 1, f"{name}: metadata on several hosts {sorted(hosts)}"
        (host,) = hosts
        assert host != warehouse_host, f"{name}: Airflow's metadata is on the warehouse server"
        assert host in services, f"{name}: metadata host {host} is not a service"
    metadata = services[host]
    assert metadata["image"].startswith("postgres:")
    assert metadata.get("healthcheck", {}).get("test")
    volumes = {v.split(":")[0] for v in metadata.get("volumes") or []}
    warehouse_volumes = {v.split(":")[0] for v in services["warehouse"].get("volumes") or []}
    assert volumes and not volumes & warehouse_volumes, "the two servers share a volume"
    assert volumes <= set(compose.get("volumes") or {})
    assert env_of(metadata).get("POSTGRES_DB") == "airflow"
    # the warehouse server no longer creates (or knows the password of) Airflow's database
    assert "AIRFLOW_DB_PASSWORD" not in " ".join(env_of(services["warehouse"]).values())
    init = (ROOT / "docker" / "warehouse-init" / "10-create-databases.sh").read_text()
    assert not re.search(r"\b(role|database) airflow\b", init), "warehouse-init makes it"


def test_warehouse_init_script_gets_its_variables(services):
    init_dir = ROOT / "docker" / "warehouse-init"
    scripts = sorted(init_dir.glob("*.sh")) + sorted(init_dir.glob("*.sql"))
    assert scripts, "no warehouse init script"
    env = env_of(services["warehouse"])
    for script in scripts:
        for var in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", script.read_text()):
            assert var in env, f"{script.name} reads {var}, not given to warehouse"


# ---------------------------------------------------------------- ports and docs


def test_api_server_port_is_loopback_and_documented(services, env_example):
    ports = services["airflow-apiserver"]["ports"]
    assert len(ports) == 1
    m = re.fullmatch(r"127\.0\.0\.1:\$\{HDP_AIRFLOW_PORT:-(\d+)\}:8080", str(ports[0]))
    assert m, f"api-server port {ports[0]!r} is not bound to 127.0.0.1"
    default = m.group(1)
    assert env_example["HDP_AIRFLOW_PORT"] == default
    doc = DEPLOY_DOC.read_text()
    assert f"http://127.0.0.1:{default}" in doc, (
        f"docs/deploy.md does not give http://127.0.0.1:{default}"
    )
    assert "HDP_AIRFLOW_PORT" in doc


def test_no_service_publishes_beyond_loopback(services):
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_deploy_doc_covers_services_and_commands(services):
    doc = DEPLOY_DOC.read_text()
    for name in services:
        assert f"`{name}`" in doc, f"docs/deploy.md does not describe {name}"
    for phrase in (
        "cp .env.example .env",
        "docker compose up -d",
        "docker compose --profile demo up",
    ):
        assert phrase in doc, f"docs/deploy.md lacks `{phrase}`"
    for param in ("sslmode=verify-full", "sslrootcert", "sslcert", "sslkey"):
        assert param in doc


# ---------------------------------------------------------------- image


def test_dockerfile_installs_hashed_lock_as_non_root():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim-bookworm AS platform")
    installs = [rest for word, rest in instructions if word == "RUN" and "pip install" in rest]
    assert installs, "no pip install in docker/Dockerfile"
    install = installs[0]
    assert "--require-hashes" in install and "--no-deps" in install
    copies = dockerfile_copies()
    assert copies.get("requirements/main.lock", "").rsplit("/", 1)[-1] == "main.lock"
    assert re.search(r"-r \S*main\.lock", install), "the install does not read main.lock"
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, "docker/Dockerfile never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"runs as {users[-1]}"
    runtime_user = users[-1].split(":")[0]
    assert re.search(rf"useradd\b.*\b{runtime_user}$", install_line("useradd")), (
        f"the image never creates the user {runtime_user}"
    )


def install_line(word: str) -> str:
    return next(rest for w, rest in dockerfile_instructions() if w == "RUN" and word in rest)


def test_image_bakes_the_dbt_manifest():
    parse = install_line("dbt parse")
    assert f"--project-dir {dockerfile_copies()['dbt_project']}" in parse
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().split()
    for path in (".env", ".venv", ".git", "var", "dbt_project/target"):
        assert path in ignore, f"{path} would enter the build context"


def test_celery_executor_comes_from_the_main_lock():
    """One hashed lock for every process: the workers `make up-celery` starts and the image's
    (issue 19: no side lock the distributed run would not have used)."""
    main = lock_pins(MAIN_LOCK)
    for package in ("apache-airflow-providers-celery", "celery", "kombu", "redis"):
        assert package in main, f"requirements/main.lock lacks {package}"
    pinned = (ROOT / "requirements" / "main.in").read_text()
    assert re.search(r"^apache-airflow-providers-celery==\S+$", pinned, re.M)
    assert not list((ROOT / "docker").glob("*.lock")), "a side lock next to the Dockerfile"
    install = install_line("pip install")
    assert re.findall(r"-r (\S+)", install) == ["/tmp/req/main.lock"], install


# ---------------------------------------------------------------- what the distributed run needed

# Settings the distributed run (hdp.runtime.celery, `make up-celery`) gives Airflow on top of the
# embedded environment that compose does without, and why: the rest must be in compose too.
RUN_ONLY_SETTINGS = {
    # on compose's network a container's hostname resolves: Airflow's default FQDN does
    "AIRFLOW__CORE__HOSTNAME_CALLABLE",
    # the run's own addresses: compose names its services instead (airflow-apiserver:8080)
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__BASE_URL",
    # sized for this 2-core machine; compose keeps Airflow's defaults (16 per worker, 32)
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__CORE__PARALLELISM",
    # Airflow's defaults, spelled out by the run: queue `default`, log server port 8793
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    # compose's scheduler serves its health check (its healthcheck reads it)
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
}


def _distributed_env(tmp_path, monkeypatch) -> tuple[dict[str, str], dict[str, str], object]:
    monkeypatch.setenv("HDP_HOME", str(tmp_path))
    from hdp.config import load_settings
    from hdp.runtime import celery
    from hdp.runtime.env import airflow_env

    settings = load_settings()
    topo = celery.topology(settings)
    return airflow_env(settings), celery.celery_env(settings, topo), topo


def test_compose_sets_what_the_distributed_run_needed(services, tmp_path, monkeypatch):
    embedded, distributed, _ = _distributed_env(tmp_path, monkeypatch)
    needed = {
        key
        for key, value in distributed.items()
        if key.startswith("AIRFLOW__") and embedded.get(key) != value
    }
    assert "AIRFLOW__CELERY__BROKER_URL" in needed, "the run's environment was not read"
    for name in AIRFLOW_COMMANDS:
        missing = needed - RUN_ONLY_SETTINGS - set(env_of(services[name]))
        assert not missing, f"{name} lacks {sorted(missing)}, which the distributed run needed"
    assert (
        env_of(services["airflow-worker"])["AIRFLOW__CORE__EXECUTOR"]
        == (distributed["AIRFLOW__CORE__EXECUTOR"])
    )


def test_compose_runs_the_processes_the_distributed_run_ran(services, tmp_path, monkeypatch):
    """The same Airflow commands (less the run's own flags), one compose service each."""
    from hdp.runtime import celery

    _, _, topo = _distributed_env(tmp_path, monkeypatch)

    def without_flags(command: list[str]) -> list[str]:
        """The command's words, less its `--flag value` and `--switch` options."""
        kept, skip = [], False
        for word in command:
            if skip:
                skip = False
            elif word.startswith("--"):
                skip = word not in ("--skip-serve-logs",)
            else:
                kept.append(word)
        return kept

    ran = {
        f"airflow-{name.replace('api-server', 'apiserver')}": command
        for name, command in celery.SERVICE_COMMANDS.items()
    }
    worker = celery.worker_command(topo.workers[0])
    assert worker[:3] == ["ip", "netns", "exec"]
    ran["airflow-worker"] = worker[worker.index("airflow") :]
    for name, command in ran.items():
        assert services[name]["command"] == without_flags(command), (name, command)
    # the broker the run started (Debian's redis-server) is compose's `redis` service
    assert services["redis"]["image"].startswith("redis:")
    assert "--requirepass" in " ".join(services["redis"]["command"])
