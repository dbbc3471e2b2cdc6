"""Keys without identifiers (issue 15, item 6): a pharmacy's sales export with no sale id, a
social-security card number (社保卡号) in its key, saved in GBK by Chinese Excel, set up as a
hospital would (its own project folder: manifest, checks, drop folder). A bad row is quarantined,
kept out of staging and released by `python -m hdp quality replay` after a fix, and no card
number ever reaches a table or view of the audit schema; no service login can read the secret
or hash a number of its choosing; a manifest whose key changed still leaves the quarantined row
out; an export keyed by its content is deduplicated across encodings and file names."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import errors, sql

from hdp.config import REPO_ROOT, load_settings
from hdp.manifest import load_manifest
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect

pytestmark = pytest.mark.integration

SOURCE = "sales"
HEADER = ["销售日期", "社保卡号", "药品名称", "数量", "金额"]
MANIFEST = """\
source: sales
kind: files
description: Retail pharmacy sales export (a test source; no sale id)
drop_dir: {drop_dir}
pattern: sales_*.csv
contains_personal_data: true
tables:
  - name: sales
    # no id column: a sale is the card, the day and the drug
    primary_key: {primary_key}
    columns: [销售日期, 社保卡号, 药品名称, 数量, 金额]
    identifiers:
      社保卡号: direct
      销售日期: quasi
"""
CATALOGUE = """\
source: sales
checks:
  - id: sales.sales.quantity_number
    table: sales
    level: row
    category: conformance
    severity: quarantine
    column: 数量
    fails_when: not _malformed and "数量" !~ '^[0-9]+$'
    threshold: 0.5
    means: A quantity is a whole number of packs.
    fix: Correct the quantity in the landed row (a data steward), then replay the quarantine.
  - id: schema.columns
    table: sales
    level: batch
    category: conformance
    severity: block
    expectation: ExpectTableColumnsToMatchSet
    kwargs:
      column_set: [销售日期, 社保卡号, 药品名称, 数量, 金额, _batch_id, _extracted_at, _source,
        _file_name, _line_no, _malformed, _raw_line]
      exact_match: true
    means: The landing table has the file's columns plus the file load metadata.
    fix: Migrate the landing table.
  - id: watermark.not_null
    table: sales
    level: batch
    category: completeness
    severity: block
    expectation: ExpectColumnValuesToNotBeNull
    kwargs: {column: 销售日期}
    means: Every sale has its day.
    fix: Ask the pharmacy to re-send the export.
"""
COMPOSITE = "[社保卡号, 销售日期, 药品名称]"
# 18-character card numbers (the resident identity card number serves as the social-security
# card number): what must never appear in the audit
CARDS = [f"44030019{800101 + i:06d}{1000 + i:04d}"[:18] for i in range(6)]
SALES = [
    ("2024-03-01", CARDS[0], "阿莫西林胶囊", "2", "25.60"),
    ("2024-03-01", CARDS[1], "布洛芬缓释胶囊", "1", "18.00"),
    ("2024-03-01", CARDS[2], "复方甘草片", "两盒", "9.90"),  # the bad row: not a number
    ("2024-03-02", CARDS[3], "阿莫西林胶囊", "1", "12.80"),
    ("2024-03-02", CARDS[4], "蒙脱石散", "3", "30.00"),
    ("2024-03-02", CARDS[5], "板蓝根颗粒", "1", "15.50"),
]
BAD = SALES[2]


def _csv(rows, encoding: str) -> bytes:
    lines = [",".join(HEADER), *(",".join(r) for r in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def _project(tmp_path: Path, primary_key: str = COMPOSITE) -> Path:
    """The hospital's own project folder (HDP_PROJECT_DIR): the source's manifest in
    dags/sources, the checks in expectations, the drop folder."""
    root = tmp_path / "project"
    drops = tmp_path / "drops"
    (root / "dags" / "sources").mkdir(parents=True)
    (root / "expectations").mkdir()
    drops.mkdir()
    (root / "dags" / "sources" / f"{SOURCE}.yml").write_text(
        MANIFEST.format(drop_dir=drops, primary_key=primary_key), encoding="utf-8"
    )
    shutil.copy(load_settings().expectations_dir / "defaults.yml", root / "expectations")
    (root / "expectations" / f"{SOURCE}.yml").write_text(CATALOGUE, encoding="utf-8")
    return root


def _manifest_dir(root: Path) -> Path:
    return root / "dags" / "sources"


def _drop(root: Path, name: str, data: bytes) -> None:
    drops = Path(load_manifest(SOURCE, _manifest_dir(root)).drop_dir)
    (drops / name).write_bytes(data)


def _landing_schema(platform) -> None:
    """What set-up gives every raw_<source> of the manifests (hdp.security.apply_roles)."""
    owner = connect(platform.warehouse)
    with owner, owner.cursor() as cur:
        cur.execute(f"create schema if not exists raw_{SOURCE}")
        cur.execute(f"grant usage, create on schema raw_{SOURCE} to hdp_loader")
        cur.execute(f"grant usage on schema raw_{SOURCE} to hdp_transformer")
        cur.execute(
            f"alter default privileges for role hdp_loader in schema raw_{SOURCE} "
            "grant select on tables to hdp_transformer"
        )
    owner.close()


def _ingest(platform, root: Path, run_id: str):
    """The file DAG's load → gate → publish, as the loader."""
    from hdp.ingest.files import ingest_file, list_new_files, publish_files
    from hdp.quality.gate import validate_batch

    manifest = load_manifest(SOURCE, _manifest_dir(root))
    spec = manifest.tables[0]
    drops = Path(manifest.drop_dir)
    wh = connect(platform.loader)
    try:
        gates = []
        for path in list_new_files(wh, manifest, drops):
            loaded = ingest_file(wh, manifest, path, run_id, folder=drops)
            if loaded.batch_id is None:
                continue
            gates.append(
                validate_batch(
                    wh,
                    warehouse_url=platform.loader.url,
                    quality_dir=load_settings().quality_dir,
                    expectations_dir=root / "expectations",
                    batch_id=loaded.batch_id,
                    source=SOURCE,
                    table=spec.name,
                    primary_key=list(spec.primary_key),
                    watermark=spec.watermark,
                )
            )
        published = publish_files(wh, manifest=manifest, run_id=run_id)
    finally:
        wh.close()
    return gates, published


def _rows(login, query: str, params=()):
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.commit()
        conn.close()


def _audit_dump(login) -> dict[str, str]:
    """Every table and view of the audit schema, as text."""
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select table_name from information_schema.tables where table_schema = 'audit'"
            )
            names = [n for (n,) in cur.fetchall()]
            dump = {}
            for name in names:
                cur.execute(
                    sql.SQL(
                        "select coalesce(string_agg(t::text, E'\\n'), '') from audit.{} t"
                    ).format(sql.Identifier(name))
                )
                dump[name] = cur.fetchone()[0]
            return dump
    finally:
        conn.close()


def _cards_in_audit(platform) -> dict[str, list[str]]:
    dump = _audit_dump(platform.warehouse)
    assert {"row_issue", "quarantined_row", "load_batch", "file_load"} <= dump.keys()
    return {
        t: [c for c in CARDS if c in text]
        for t, text in dump.items()
        if any(c in text for c in CARDS)
    }


def _dbt_project(tmp_path: Path) -> Path:
    """A dbt project with the platform's own macros and one staging model over the source:
    published_rows() finds the table's key in the manifests."""
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt_project" / "macros", project / "macros")
    (project / "models").mkdir()
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """\
            name: record_keys
            version: "1.0.0"
            config-version: 2
            profile: hdp
            model-paths: ["models"]
            macro-paths: ["macros"]
            flags:
              send_anonymous_usage_stats: false
            models:
              record_keys:
                +schema: staging
                +materialized: view
            """
        ),
        encoding="utf-8",
    )
    (project / "models" / "_sources.yml").write_text(
        textwrap.dedent(
            f"""\
            version: 2
            sources:
              - name: raw_{SOURCE}
                schema: raw_{SOURCE}
                tables: [{{name: sales}}]
              - name: audit
                schema: audit
                tables: [{{name: load_batch}}, {{name: row_issue}}, {{name: quarantined_row}}]
            """
        ),
        encoding="utf-8",
    )
    (project / "models" / f"stg_{SOURCE}__sales.sql").write_text(
        f'select "药品名称" as drug_name, "数量" as quantity\n'
        f"from ({{{{ published_rows('raw_{SOURCE}', 'sales') }}}}) as published\n",
        encoding="utf-8",
    )
    return project


def _run_dbt(project: Path, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    from hdp.runtime.env import platform_env
    from hdp.runtime.standard import registry_env

    settings = load_settings()
    env = {**platform_env(settings), **registry_env(project, _manifest_dir(root))}
    proc = subprocess.run(
        [
            "dbt",
            "run",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=project,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:]
    return proc


def _staged(platform) -> list[tuple[str, str]]:
    return _rows(
        platform.transformer,
        f"select drug_name, quantity from staging.stg_{SOURCE}__sales order by 1, 2",
    )


def _replay(root: Path) -> str:
    """`python -m hdp quality replay --source sales` in the hospital's project folder."""
    env = {**os.environ, "HDP_PROJECT_DIR": str(root)}
    env.pop("HDP_EXPECTATIONS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "hdp", "quality", "replay", "--source", SOURCE],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_a_card_number_in_the_key_never_reaches_the_audit(platform, tmp_path):
    root = _project(tmp_path)
    _landing_schema(platform)
    _drop(root, "sales_20240302.csv", _csv(SALES, "gbk"))
    gates, published = _ingest(platform, root, "run-1")
    assert [g.rows_quarantined for g in gates] == [1]
    assert published == {"sales_20240302.csv": len(SALES) - 1}
    assert _rows(platform.warehouse, "select encoding from audit.file_load") == [("gbk",)]
    # the landing table holds them (the scan would find them), the audit never does
    landed = _rows(
        platform.warehouse, f"select string_agg(\"社保卡号\", ',') from raw_{SOURCE}.sales"
    )
    assert all(card in landed[0][0] for card in CARDS)
    assert _cards_in_audit(platform) == {}
    # the quarantine holds a keyed hash, and the columns it was taken from
    issues = _rows(
        platform.warehouse, "select record_key, key_columns, check_id from audit.row_issue"
    )
    assert len(issues) == 1
    record_key, key_columns, check_id = issues[0]
    assert len(record_key) == 64 and int(record_key, 16) >= 0
    assert key_columns == ["社保卡号", "销售日期", "药品名称"]
    assert check_id == "sales.sales.quantity_number"
    assert BAD[2] not in record_key  # free text (a drug name) never either


def test_the_quarantined_row_stays_out_of_staging_until_replay_releases_it(platform, tmp_path):
    root = _project(tmp_path)
    _landing_schema(platform)
    _drop(root, "sales_20240302.csv", _csv(SALES, "gbk"))
    _ingest(platform, root, "run-1")
    project = _dbt_project(tmp_path)
    _run_dbt(project, root)
    good = sorted((r[2], r[3]) for r in SALES if r != BAD)
    assert _staged(platform) == good
    # nothing changed: replay releases nothing
    assert "sales.sales.quantity_number: 0 rows released, 1 still quarantined" in _replay(root)
    # a data steward corrects the landed row; replay finds it passing now and releases it
    _rows(
        platform.warehouse,
        f'update raw_{SOURCE}.sales set "数量" = %s where "社保卡号" = %s',
        ("2", BAD[1]),
    )
    assert "sales.sales.quantity_number: 1 rows released, 0 still quarantined" in _replay(root)
    _run_dbt(project, root)
    assert _staged(platform) == sorted([*good, (BAD[2], "2")])
    assert _cards_in_audit(platform) == {}


def test_a_changed_manifest_key_still_leaves_the_quarantined_row_out(platform, tmp_path):
    """The operator changes the table's key after the row was quarantined: staging still leaves
    it out (the issue keeps the columns its key was taken from), never silently publishes it."""
    root = _project(tmp_path)
    _landing_schema(platform)
    _drop(root, "sales_20240302.csv", _csv(SALES, "gbk"))
    _ingest(platform, root, "run-1")
    project = _dbt_project(tmp_path)
    _run_dbt(project, root)
    before = _staged(platform)
    assert (BAD[2], BAD[3]) not in before
    manifest = _manifest_dir(root) / f"{SOURCE}.yml"
    for new_key in ("[社保卡号, 销售日期, 药品名称, 金额]", "[社保卡号, 药品名称]"):
        manifest.write_text(
            MANIFEST.format(drop_dir=tmp_path / "drops", primary_key=new_key), encoding="utf-8"
        )
        _run_dbt(project, root)
        assert _staged(platform) == before, new_key
    # a table the manifests do not key fails loudly instead of publishing everything
    manifest.unlink()
    proc = _run_dbt(project, root, check=False)
    assert proc.returncode != 0
    assert "raw_sales.sales: no key in the manifests" in proc.stdout


def test_a_content_keyed_export_is_deduplicated_across_encodings_and_names(platform, tmp_path):
    root = _project(tmp_path, primary_key="content_hash")
    spec = load_manifest(SOURCE, _manifest_dir(root)).tables[0]
    assert spec.content_hash and spec.primary_key == tuple(HEADER)
    _landing_schema(platform)
    # one line sent twice in the same export: one row
    _drop(root, "sales_20240302.csv", _csv([*SALES, SALES[0]], "utf-8-sig"))
    gates, published = _ingest(platform, root, "run-1")
    assert [g.rows_quarantined for g in gates] == [1]
    assert published == {"sales_20240302.csv": len(SALES) - 1}
    # the same sheet re-saved by Excel in GBK and sent again under another name: nothing new
    _drop(root, "sales_20240302_resend.csv", _csv(SALES, "gbk"))
    gates, published = _ingest(platform, root, "run-2")
    assert [g.success for g in gates] == [True]
    assert published == {"sales_20240302_resend.csv": 0}
    assert _rows(
        platform.warehouse,
        "select f.file_name, f.encoding, b.rows_read, b.rows_skipped, b.rows_written "
        "from audit.file_load as f join audit.load_batch as b using (batch_id) order by 1",
    ) == [
        ("sales_20240302.csv", "utf-8-sig", len(SALES) + 1, 1, len(SALES)),
        ("sales_20240302_resend.csv", "gbk", len(SALES), len(SALES), 0),
    ]
    project = _dbt_project(tmp_path)
    _run_dbt(project, root)
    assert _staged(platform) == sorted((r[2], r[3]) for r in SALES if r != BAD)
    # keyed by every value, and still no card number in the audit
    assert _rows(platform.warehouse, "select key_columns from audit.row_issue") == [(HEADER,)]
    assert _cards_in_audit(platform) == {}


# ----------------------------------------------------------------- attacks by service logins


def _login(platform, name: str, group: str) -> Login:
    password = secrets.token_urlsafe(16)
    admin = connect(replace(platform.admin, dbname=platform.warehouse.dbname))
    with admin, admin.cursor() as cur:
        security.create_login(cur, name, password, group)
    admin.close()
    return Login(name, password, platform.warehouse.host, platform.warehouse.port, "hdp")


def _refused(login: Login, query: str, params=()) -> bool:
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            cur.fetchall()
        return False
    except (errors.InsufficientPrivilege, errors.UndefinedFunction):
        return True
    finally:
        conn.rollback()
        conn.close()


def test_no_service_login_reads_the_secret_or_hashes_a_number_of_its_choosing(platform, tmp_path):
    root = _project(tmp_path)
    _landing_schema(platform)
    _drop(root, "sales_20240302.csv", _csv(SALES, "gbk"))
    _ingest(platform, root, "run-1")
    batch_id = _rows(platform.warehouse, "select batch_id from audit.row_issue")[0][0]
    stored = _rows(platform.warehouse, "select record_key from audit.row_issue")[0][0]
    analyst = _login(platform, "t_keys_analyst", security.ANALYST)
    # the attacker knows the card number, the day and the drug of the quarantined sale
    known = [BAD[1], BAD[0], BAD[2]]
    candidate = "select audit.record_key(variadic %s::text[])"
    logins = {
        "loader": platform.loader,
        "transformer": platform.transformer,
        "analyst": analyst,
        "quality reader": platform.quality_reader,
    }
    for who, login in logins.items():
        assert _refused(login, "select * from hdp_private.record_key_secret"), who
        assert _refused(
            login,
            f"select hdp_private.record_key_hmac('sales', 'sales', ({candidate}))",
            (known,),
        ), who
    # only the gate's login may hash keys, and only keys a landed row of the batch has
    for who in ("transformer", "analyst", "quality reader"):
        assert _refused(
            logins[who],
            "select * from audit.record_key_hashes('sales', 'sales', %s::text[], %s, "
            f"array[({candidate})])",
            (["社保卡号", "销售日期", "药品名称"], batch_id, known),
        ), who
    for who in ("analyst", "quality reader"):
        assert _refused(
            logins[who],
            "select * from audit.quarantined_keys('sales', 'sales', %s::text[])",
            (["社保卡号"],),
        ), who
    # the loader, which reads the landing table anyway, gets no hash for a value not landed:
    # a brute force over card numbers finds nothing to compare with audit.row_issue
    columns = ["社保卡号", "销售日期", "药品名称"]
    guesses = [
        json.dumps([f"44030019{n:010d}", BAD[0], BAD[2]], ensure_ascii=False, separators=(",", ":"))
        for n in range(8001010000, 8001010200)
    ]
    assert BAD[1] not in {json.loads(g)[0] for g in guesses}
    hashed = _rows(
        platform.loader,
        "select count(*) from audit.record_key_hashes('sales', 'sales', %s::text[], %s, %s)",
        (columns, batch_id, guesses),
    )
    assert hashed == [(0,)]
    # the clear key in Python is the warehouse's (the guesses above are well formed)
    landed = json.dumps([BAD[1], BAD[0], BAD[2]], ensure_ascii=False, separators=(",", ":"))
    assert _rows(platform.loader, candidate, (known,)) == [(landed,)]
    assert len(stored) == 64
    with pytest.raises(psycopg2.Error):
        _rows(platform.loader, "select key_bytes from hdp_private.record_key_secret")


def test_row_issues_recorded_in_clear_before_are_rehashed_at_set_up(platform, tmp_path):
    """A warehouse whose quarantine holds keys in clear (columns joined with '|', no
    key_columns: before keys were hashed) gets them rehashed by set-up, under the manifest's
    key: the same hash the gate writes now, and the row is still found and held."""
    from hdp.quality.record_keys import migrate_clear_keys

    root = _project(tmp_path)
    _landing_schema(platform)
    _drop(root, "sales_20240302.csv", _csv(SALES, "gbk"))
    _ingest(platform, root, "run-1")
    (hashed,) = _rows(platform.warehouse, "select record_key from audit.row_issue")
    clear = "|".join([BAD[1], BAD[0], BAD[2]])
    _rows(
        platform.warehouse,
        "update audit.row_issue set record_key = %s, key_columns = null",
        (clear,),
    )
    assert _cards_in_audit(platform)  # what a warehouse of before holds
    owner = connect(platform.warehouse)
    keys = {(SOURCE, "sales"): load_manifest(SOURCE, _manifest_dir(root)).tables[0].primary_key}
    assert migrate_clear_keys(owner, keys) == 1
    assert migrate_clear_keys(owner, keys) == 0  # idempotent: set-up runs any number of times
    owner.close()
    assert _rows(platform.warehouse, "select record_key, key_columns from audit.row_issue") == [
        (hashed[0], ["社保卡号", "销售日期", "药品名称"])
    ]
    assert _cards_in_audit(platform) == {}
    held = _rows(
        platform.loader,
        "select record_key from audit.quarantined_keys('sales', 'sales', %s::text[])",
        (["社保卡号", "销售日期", "药品名称"],),
    )
    assert held == [
        (json.dumps([BAD[1], BAD[0], BAD[2]], ensure_ascii=False, separators=(",", ":")),)
    ]
