"""`python -m hdp source new` against a live source of a shape our simulators never have.

A hospital system "yyb" in the test cluster: pinyin table names, a composite key, a change
time called czsj (no updated_at), a keyless results table whose times are text, a table keyed
by a unique index only, Chinese column comments, and a read-only login. The command runs as an
operator runs it, on a temporary copy of the project (HDP_PROJECT_DIR), never on this one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import yaml
from psycopg2 import sql

from hdp.manifest import load_manifest
from hdp.runtime.standard import registry_env

REPO = Path(__file__).resolve().parents[1]
# a value of a row: it must never show on the terminal or in a written file
ROW_MARK = "张三丰ROWVALUE"

SOURCE_DDL = """
create schema yy;
create table yy.mz_ghxx (  -- 门诊挂号信息: registrations, keyed per hospital branch
    yljgdm text not null,
    ghxh bigint not null,
    brxm text,
    sfzh text,
    lxdh text,
    ghrq text,
    gxsj timestamp not null,
    primary key (yljgdm, ghxh)
);
comment on column yy.mz_ghxx.brxm is '患者姓名';
comment on column yy.mz_ghxx.ghrq is '挂号日期
(文本, yyyymmdd)';
create table yy.zy_brry (  -- 住院病人入院: admissions; its change time is czsj
    zyh text primary key,
    c_name text,
    jtdz text,
    rysj text,
    czsj timestamp with time zone
);
comment on column yy.zy_brry.c_name is '病人姓名';
comment on table yy.zy_brry is '住院病人入院登记';
create table yy.jy_jg (  -- 检验结果: no key at all, times as text
    sqdh text,
    jgz text,
    bgsj text,
    xgsj varchar(19)
);
comment on column yy.jy_jg.xgsj is '修改时间';
create table yy.ks_dm (  -- 科室代码: no primary key, a unique index on a not-null column
    ksdm text not null,
    ksmc text,
    modified_at timestamp
);
create unique index ks_dm_ksdm on yy.ks_dm (ksdm);
"""


# a standard entity of the probe's own (the project's entities come with the team's branches):
# the scaffold must write its mapping skeleton from this contract alone
PROBE_CONTRACT = {
    "version": 2,
    "models": [
        {
            "name": "std_zz_visit",
            "description": "A probe entity of test_scaffold.",
            "columns": [
                {"name": name, "data_type": data_type, **extra}
                for name, data_type, extra in (
                    ("zz_visit_key", "text", {"constraints": [{"type": "not_null"}]}),
                    ("institution_id", "text", {"constraints": [{"type": "not_null"}]}),
                    ("source_system", "text", {"constraints": [{"type": "not_null"}]}),
                    ("source_record_id", "text", {"constraints": [{"type": "not_null"}]}),
                    ("visit_started_at", "timestamp", {}),
                    ("department_code", "text", {}),
                    ("patient_name", "text", {"meta": {"direct_identifier": True}}),
                )
            ],
        }
    ],
}


def _url(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    return f"postgresql://{user}:{password}@{parts.hostname}:{parts.port}{parts.path}"


@pytest.fixture(scope="module")
def source_db(pg_admin_dsn) -> Iterator[dict[str, str]]:
    """The source database, its read-only login, a login without rights on the schema and one
    that may not select from one table; yields their connection URLs."""
    name = f"yyb_{secrets.token_hex(4)}"
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    logins = {role: secrets.token_hex(12) for role in ("reader", "nobody", "partial")}
    roles = {role: f"{name}_{role}" for role in logins}
    with admin.cursor() as cur:
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        for role, password in logins.items():
            cur.execute(
                sql.SQL("create role {} login password %s").format(sql.Identifier(roles[role])),
                (password,),
            )
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + "/" + name
    src = psycopg2.connect(dsn)
    with src, src.cursor() as cur:
        cur.execute(SOURCE_DDL)
        cur.execute(
            "insert into yy.mz_ghxx values ('H2', 1, %s, '110101199003070015', '13800000000',"
            " '20240102', now())",
            (ROW_MARK,),
        )
        cur.execute(
            "insert into yy.zy_brry values ('Z1', %s, %s, '2024-01-02 08:00', now())",
            (ROW_MARK, ROW_MARK),
        )
        cur.execute("insert into yy.jy_jg values ('S1', %s, '2024-01-02 09:00', '')", (ROW_MARK,))
        cur.execute("insert into yy.ks_dm values ('K01', '内科', now())")
        reader, partial = sql.Identifier(roles["reader"]), sql.Identifier(roles["partial"])
        cur.execute(sql.SQL("grant usage on schema yy to {}, {}").format(reader, partial))
        cur.execute(sql.SQL("grant select on all tables in schema yy to {}").format(reader))
        cur.execute(sql.SQL("grant select on yy.mz_ghxx, yy.ks_dm to {}").format(partial))
    src.close()
    yield {
        "dsn": dsn,
        **{role: _url(dsn, roles[role], pw) for role, pw in logins.items()},
    }
    with admin.cursor() as cur:
        cur.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
        for role in roles.values():
            cur.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    admin.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's dags/, dbt_project/ and expectations/ for the scaffold to write."""
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__")
    for folder in ("dags", "dbt_project", "expectations"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    standard = root / "dbt_project" / "models" / "standard"
    (standard / "std_zz_visit.yml").write_text(yaml.safe_dump(PROBE_CONTRACT), encoding="utf-8")
    (standard / "std_zz_visit.sql").write_text("{{ union_standard('zz_visit') }}\n")
    return root


def _hdp(project: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HDP_PROJECT_DIR": str(project),
        "HDP_DBT_PROJECT_DIR": str(project / "dbt_project"),
        "AIRFLOW_CONN_YYB_SOURCE": url,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hdp",
            "source",
            "new",
            "yyb",
            "--from-connection",
            "yyb_source",
            "--schema",
            "yy",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
    )


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _scans(dsn: str) -> int:
    """Sequential and index scans of the source's tables so far (statistics of the server)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) "
                "from pg_stat_user_tables where schemaname = 'yy'"
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scaffolded(source_db, project) -> dict:
    """A dry run, then the scaffold; what each printed and the files before and after."""
    before = _snapshot(project)
    scans_before = _scans(source_db["dsn"])
    dry = _hdp(project, source_db["reader"], "--dry-run", "--institution", "H002")
    after_dry = _snapshot(project)
    run = _hdp(project, source_db["reader"], "--institution", "H002")
    time.sleep(1.5)  # the backend of the scaffold flushes its statistics as it exits
    return {
        "before": before,
        "dry": dry,
        "after_dry": after_dry,
        "run": run,
        "after": _snapshot(project),
        "scans": _scans(source_db["dsn"]) - scans_before,
    }


def test_dry_run_lists_the_files_and_writes_none(scaffolded):
    dry = scaffolded["dry"]
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "would write dags/sources/yyb.yml" in dry.stdout
    assert "would write dbt_project/models/staging/yyb/stg_yyb__mz_ghxx.sql" in dry.stdout
    assert scaffolded["after_dry"] == scaffolded["before"]


def test_scaffold_infers_keys_watermarks_and_personal_data(scaffolded, project):
    run = scaffolded["run"]
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "mz_ghxx: key yljgdm, ghxh (primary key); watermark gxsj" in out
    assert "zy_brry: key zyh (primary key); watermark czsj" in out
    assert "ks_dm: key ksdm (unique index); watermark modified_at" in out
    assert "jy_jg: key TODO; watermark TODO" in out
    assert "xgsj looks like a change time but is character varying(19)" in out
    for personal in (
        "brxm (name)",
        "sfzh (id_card)",
        "lxdh (phone)",
        "c_name (name)",
        "jtdz (address)",
    ):
        assert personal in out
    new = set(scaffolded["after"]) - set(scaffolded["before"])
    assert {
        "dags/sources/yyb.yml",
        "dags/hdp_ingest_yyb.py",
        "dbt_project/models/staging/yyb/_yyb__sources.yml",
        "dbt_project/models/staging/yyb/_yyb__models.yml",
        "dbt_project/models/staging/yyb/stg_yyb__mz_ghxx.sql",
        "dbt_project/models/staging/yyb/stg_yyb__zy_brry.sql",
        "dbt_project/models/staging/yyb/stg_yyb__ks_dm.sql",
        "dbt_project/models/staging/yyb/stg_yyb__jy_jg.sql.todo",  # no key: parked
        "dbt_project/seeds/mapping/yyb/map_yyb__source_system.csv",
    } <= new
    comments = yaml.safe_load(
        (project / "dbt_project/models/staging/yyb/_yyb__sources.yml").read_text()
    )
    columns = {
        c["name"]: c["description"]
        for t in comments["sources"][0]["tables"]
        for c in t.get("columns", [])
    }
    assert columns["brxm"] == "患者姓名"
    assert columns["ghrq"] == "挂号日期 (文本, yyyymmdd)"  # a two-line comment, one line


def test_it_reads_the_catalogue_never_a_row(scaffolded, source_db, project):
    run = scaffolded["run"]
    assert ROW_MARK not in run.stdout + run.stderr
    written = [project / p for p in set(scaffolded["after"]) - set(scaffolded["before"])]
    assert written and not [p for p in written if ROW_MARK in p.read_text(encoding="utf-8")]
    assert scaffolded["scans"] == 0, "the scaffold scanned a source table"
    # the measure works: one count(*) of the read-only login shows as a scan
    before = _scans(source_db["dsn"])
    reader = psycopg2.connect(source_db["reader"])
    with reader.cursor() as cur:
        cur.execute("select count(*) from yy.mz_ghxx")
    reader.close()
    deadline = time.monotonic() + 10
    while _scans(source_db["dsn"]) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _scans(source_db["dsn"]) > before


def test_the_manifest_refuses_the_todo_then_loads_once_it_is_decided(scaffolded, project):
    folder = project / "dags" / "sources"
    with pytest.raises(ValueError, match="table jy_jg: primary_key is not set"):
        load_manifest("yyb", folder)
    _leave_out_the_keyless_table(folder)
    manifest = load_manifest("yyb", folder)
    assert manifest.conn_id == "yyb_source" and manifest.schema == "yy"
    assert manifest.contains_personal_data is True
    assert manifest.table("mz_ghxx").primary_key == ("yljgdm", "ghxh")
    assert manifest.table("zy_brry").watermark == "czsj"
    assert manifest.table("ks_dm").primary_key == ("ksdm",)


def _leave_out_the_keyless_table(folder: Path) -> None:
    """The operator's decision: the results table waits until the source gives it a key."""
    doc = yaml.safe_load((folder / "yyb.yml").read_text(encoding="utf-8"))
    doc["tables"] = [t for t in doc["tables"] if t["name"] != "jy_jg"]
    (folder / "yyb.yml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


_DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("RESULT" + json.dumps({"errors": {k: v[-500:] for k, v in bag.import_errors.items()},
    "dags": {d.dag_id: sorted(t.task_id for t in d.tasks) for d in bag.dags.values()}}))
"""


def test_the_dag_file_loads_in_a_dagbag(scaffolded, project, tmp_path):
    _leave_out_the_keyless_table(project / "dags" / "sources")
    env = {
        **os.environ,
        "HDP_PROJECT_DIR": str(project),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'absent.sqlite'}",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _DAGBAG, str(project / "dags" / "hdp_ingest_yyb.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.split("RESULT", 1)[1].splitlines()[0])
    assert payload["errors"] == {}
    assert "hdp_ingest_yyb" in payload["dags"]
    assert {"extract", "gate", "publish"} <= set(payload["dags"]["hdp_ingest_yyb"])


def test_dbt_parses_the_project_with_the_scaffold(scaffolded, project):
    dbt_dir = project / "dbt_project"
    env = {
        **os.environ,
        "HDP_WAREHOUSE_HOST": "127.0.0.1",
        "HDP_WAREHOUSE_PORT": "9",
        "HDP_WAREHOUSE_USER": "nobody",
        "HDP_WAREHOUSE_DB": "nowhere",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **registry_env(dbt_dir),
    }
    assert (dbt_dir / "models/mapping/yyb/map_yyb__zz_visit.sql.todo").is_file()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "parse",
            "--project-dir",
            str(dbt_dir),
            "--profiles-dir",
            str(dbt_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=dbt_dir,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    nodes = json.loads((dbt_dir / "target" / "manifest.json").read_text())["nodes"]
    staged = {n["name"] for n in nodes.values() if n["resource_type"] == "model"}
    assert {"stg_yyb__mz_ghxx", "stg_yyb__zy_brry", "stg_yyb__ks_dm"} <= staged
    assert "stg_yyb__jy_jg" not in staged  # parked until it has a key
    assert "map_yyb__zz_visit" not in staged  # parked until it is filled in
    composite = next(
        n
        for n in nodes.values()
        if n["resource_type"] == "test"
        and n.get("attached_node") == "model.hdp.stg_yyb__mz_ghxx"
        and n["test_metadata"]["name"] == "unique"
    )
    assert "yljgdm::text || '|' || ghxh::text" in json.dumps(composite["test_metadata"])


def test_rerun_without_force_refuses_and_changes_nothing(scaffolded, source_db, project):
    before = _snapshot(project)
    again = _hdp(project, source_db["reader"])
    assert again.returncode == 1
    assert "exist already, nothing was written (--force overwrites them)" in again.stderr
    assert "dags/sources/yyb.yml" in again.stderr
    assert _snapshot(project) == before
    forced = _hdp(project, source_db["reader"], "--force", "--tables", "mz_ghxx,ks_dm")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert load_manifest("yyb", project / "dags" / "sources").table("ks_dm").watermark == (
        "modified_at"
    )


def test_a_login_without_catalogue_rights_gets_a_clear_error(source_db, project):
    before = _snapshot(project)
    nobody = _hdp(project, source_db["nobody"])
    assert nobody.returncode == 2
    assert "cannot use schema yy (no USAGE): grant it usage" in nobody.stderr
    assert "Traceback" not in nobody.stderr
    partial = _hdp(project, source_db["partial"])
    assert partial.returncode == 2
    assert "cannot select from yy.jy_jg, zy_brry" in partial.stderr
    wrong = _hdp(project, source_db["reader"].replace("@", "x@", 1))  # a wrong password
    assert wrong.returncode == 2 and "cannot connect to the source" in wrong.stderr
    assert secrets_not_in(wrong.stderr, source_db["reader"])
    assert _snapshot(project) == before


def secrets_not_in(text: str, url: str) -> bool:
    """The connection's password never reaches the terminal."""
    password = urlsplit(url).password or ""
    return bool(password) and password not in text


def test_generated_staging_is_sqlfluff_clean(scaffolded, project):
    """`make lint` stays green after a scaffold: the files follow the project's SQL style."""
    shutil.copy(REPO / ".sqlfluff", project / ".sqlfluff")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "sqlfluff"),
            "lint",
            "dbt_project/models/staging/yyb",
            "--disable-progress-bar",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


_PIPELINE = """
from hdp.config import load_settings
from hdp.ingest.extract import extract_table
from hdp.manifest import load_manifest
from hdp.runtime.standard import registry_env
from hdp.quality.gate import publish_run, validate_batch
from hdp.runtime.dbt import run_dbt
from hdp.runtime.setup import init_databases
from hdp.warehouse.database import connect, logins, source_login

init_databases()  # raw_yyb and its grants, from the scaffolded manifest
settings, lg, manifest = load_settings(), logins(), load_manifest("yyb")
src, wh = connect(source_login(manifest.conn_id)), connect(lg.loader)
for spec in manifest.tables:
    batch = extract_table(src, wh, manifest, spec.name, "run-1").batch_id
    validate_batch(wh, warehouse_url=lg.loader.url, quality_dir=settings.quality_dir,
        expectations_dir=settings.expectations_dir, batch_id=batch, source="yyb",
        table=spec.name, primary_key=list(spec.primary_key), watermark=spec.watermark)
publish_run(wh, source="yyb", run_id="run-1", tables=[t.name for t in manifest.tables])
src.close()
wh.close()
run_dbt("run", "--select", "path:models/staging/yyb", "path:models/mapping/yyb", "std_zz_visit")
"""


def test_a_scaffolded_source_loads_and_its_staging_builds(scaffolded, source_db, project, platform):
    """The operator's path after the scaffold: every table of the decided manifest extracted,
    gated and published, then dbt builds the staging views, with names, cards and phones as
    keyed HMACs and the address not passed on."""
    rerun = _hdp(
        project,
        source_db["reader"],
        "--force",
        "--tables",
        "mz_ghxx,zy_brry,ks_dm",
        "--institution",
        "H002",
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # the results table is left out: its parked staging is named, not silently kept
    assert "not part of this scaffold: dbt_project/models/staging/yyb/stg_yyb__jy_jg.sql.todo" in (
        rerun.stdout
    )
    # the operator takes the mapping skeleton as it is (its typed nulls satisfy the contract)
    parked = project / "dbt_project/models/mapping/yyb/map_yyb__zz_visit.sql.todo"
    parked.rename(parked.with_suffix(""))
    env = {
        **os.environ,
        "HDP_PROJECT_DIR": str(project),
        "HDP_DBT_PROJECT_DIR": str(project / "dbt_project"),
        "AIRFLOW_CONN_YYB_SOURCE": source_db["reader"],
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PIPELINE],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr[-600:]
    from hdp.warehouse.database import connect

    wh = connect(platform.warehouse)
    try:
        with wh.cursor() as cur:
            cur.execute("select brxm_key, sfzh_key, lxdh_key, ghrq from staging.stg_yyb__mz_ghxx")
            rows = cur.fetchall()
            cur.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'staging' and table_name = 'stg_yyb__zy_brry'"
            )
            admissions = dict(cur.fetchall())
            cur.execute(
                "select zz_visit_key, source_system, source_record_id from standard.std_zz_visit"
            )
            standard_rows = cur.fetchall()
    finally:
        wh.close()
    assert len(rows) == 1
    name_key, card_key, phone_key, registered_on = rows[0]
    assert name_key and card_key and phone_key and ROW_MARK not in name_key
    assert str(registered_on) == "2024-01-02"
    assert "jtdz" not in admissions and "c_name" not in admissions
    assert admissions["rysj"] == "timestamp without time zone"
    assert "c_name_key" in admissions
    # the mapping skeleton reached the standard entity through its enforced contract
    assert standard_rows == [("H002:yyb:K01", "yyb", "K01")]
