"""LIS file drops → raw_lis → gate → publish → dbt (real PostgreSQL, real files, real GX/dbt)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from hdp.config import load_settings
from hdp.ingest import files as filedrop
from hdp.ingest.files import (
    FileRefused,
    detect_encoding,
    list_new_files,
    parse_lines,
    publish_files,
)
from hdp.manifest import load_manifest
from hdp.quality.gate import validate_batch
from hdp.warehouse.database import connect
from hdp_sim import his, lab
from tests.pipeline import CLEAR_KEY

MANIFEST = load_manifest("lis")
HIS_CONFIG = his.SimConfig(seed=3, scale=0.01, history_days=20)
DROP_SEED = 9
# simulator defect kind → the catalogue check that must find exactly its rows
DEFECT_CHECKS = {
    "malformed_line": "lis.results.malformed_line",
    "missing_patient_id": "lis.results.patient_present",
    "unparseable_numeric": "lis.results.numeric_value",
    "duplicate_row": "lis.results.duplicate_row",
    "unit_variant": "lis.results.unit_spelling",
}


@pytest.fixture(scope="module")
def drops(pg_admin_dsn, tmp_path_factory):
    """The LIS files of a small simulated HIS (its own database), and their manifest."""
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("drop database if exists t_filedrop_his with (force)")
        cur.execute("create database t_filedrop_his")
    conn = psycopg2.connect(pg_admin_dsn.rsplit("/", 1)[0] + "/t_filedrop_his")
    his.generate(conn, HIS_CONFIG)
    out = tmp_path_factory.mktemp("lis")
    paths = lab.write_drops(conn, out, seed=DROP_SEED, defect_rate=0.03)
    conn.close()
    with admin.cursor() as cur:
        cur.execute("drop database if exists t_filedrop_his with (force)")
    admin.close()
    manifest = json.loads((out / lab.MANIFEST_NAME).read_text(encoding="utf-8"))["files"]
    return paths, manifest


def _by_encoding(drops, encoding: str) -> Path:
    paths, manifest = drops
    return next(p for p in paths if manifest[p.name]["encoding"] == encoding)


def ingest_file(wh, manifest, path: Path, run_id: str):
    """hdp.ingest.files.ingest_file of a file in its own folder (the tests' drops are not in the
    manifest's drop folder)."""
    return filedrop.ingest_file(wh, manifest, path, run_id, folder=Path(path).parent)


def _scalar(conn, query: str, params=()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def _gate(lg, wh, batch_id: int):
    settings = load_settings()
    return validate_batch(
        wh,
        warehouse_url=lg.loader.url,
        quality_dir=settings.quality_dir,
        expectations_dir=settings.expectations_dir,
        batch_id=batch_id,
        source="lis",
        table="results",
        primary_key=["result_id"],
        watermark=MANIFEST.table("results").watermark,
    )


@pytest.fixture
def wh(platform):
    conn = connect(platform.loader)
    yield conn
    conn.close()


# ------------------------------------------------------------------- parsing, without a database


def test_encoding_detection_and_malformed_lines_are_kept():
    assert detect_encoding("检验".encode("gbk")) == "gbk"
    assert detect_encoding("检验".encode()) == "utf-8"
    assert detect_encoding("检验".encode("utf-8-sig")) == "utf-8-sig"
    with pytest.raises(UnicodeError):
        detect_encoding(b"\xff\xfe\xff\x00\x81")
    header = ",".join(lab.FILE_COLUMNS)
    good = ",".join(str(i) for i in range(15))
    rows, malformed = parse_lines(f"{header}\r\n{good}\r\n1,2,3\r\n\r\n", lab.FILE_COLUMNS)
    assert malformed == 2 and len(rows) == 3
    assert rows[0][:15] == [str(i) for i in range(15)] and rows[0][15:] == ["2", "f", None]
    assert (
        rows[1][0] == "1" and rows[1][1:15] == [None] * 14 and rows[1][15:] == ["3", "t", "1,2,3"]
    )
    assert rows[2][0] == "line:4"  # a blank line keeps its place
    with pytest.raises(FileRefused, match=r"schema drift: header line 1.*field 11 is not 'unit'"):
        parse_lines(header.replace(",unit,", ",units,") + "\n", lab.FILE_COLUMNS)


# ------------------------------------------------------------------- loading into PostgreSQL


def test_a_file_is_loaded_exactly_once(platform, wh, drops):
    path = drops[0][0]
    rows = drops[1][path.name]["rows"]
    first = ingest_file(wh, MANIFEST, path, "run-1")
    assert first.status == "loaded" and first.rows == rows
    assert _scalar(wh, "select rows_read from audit.load_batch") == rows
    _gate(platform, wh, first.batch_id)
    assert publish_files(wh, manifest=MANIFEST, run_id="run-1") == {
        path.name: rows - _scalar(wh, "select rows_quarantined from audit.load_batch")
    }
    assert list_new_files(wh, MANIFEST, path.parent) == sorted(drops[0])[1:]
    again = ingest_file(wh, MANIFEST, path, "run-2")
    assert again.status == "skipped" and again.batch_id is None
    assert _scalar(wh, "select count(*) from raw_lis.results") == rows
    assert _scalar(wh, "select count(*) from audit.load_batch") == 1
    assert _scalar(wh, "select count(*) from audit.file_load") == 1
    # a retry of the same run (before its gate) replaces the batch instead of adding to it
    second = drops[0][1]
    loaded = ingest_file(wh, MANIFEST, second, "run-2")
    retried = ingest_file(wh, MANIFEST, second, "run-2")
    assert retried.batch_id == loaded.batch_id
    assert (
        _scalar(wh, "select count(*) from raw_lis.results where _batch_id = %s", (loaded.batch_id,))
        == drops[1][second.name]["rows"]
    )


def test_same_name_with_other_bytes_is_a_new_delivery(platform, wh, drops, tmp_path):
    original = drops[0][0]
    first = ingest_file(wh, MANIFEST, original, "run-1")
    _gate(platform, wh, first.batch_id)
    publish_files(wh, manifest=MANIFEST, run_id="run-1")
    resent = tmp_path / original.name
    encoding = drops[1][original.name]["encoding"]
    lines = original.read_bytes().decode(encoding).splitlines()
    resent.write_bytes(("\n".join(lines[:-1]) + "\n").encode(encoding))  # one result withdrawn
    second = ingest_file(wh, MANIFEST, resent, "run-2")
    assert second.status == "loaded" and second.batch_id != first.batch_id
    assert second.rows == first.rows - 1
    names = "select file_name, count(*) from audit.file_load group by 1"
    with wh.cursor() as cur:
        cur.execute(names)
        assert cur.fetchall() == [(original.name, 2)]
    wh.rollback()


def test_same_bytes_under_another_name_are_skipped_naming_both(
    platform, wh, drops, tmp_path, caplog
):
    """A content loaded and validated, sent again under another name: skipped (listed as
    nothing new), and the log line names both file names (and no content)."""
    original = drops[0][0]
    first = ingest_file(wh, MANIFEST, original, "run-1")
    _gate(platform, wh, first.batch_id)
    renamed = tmp_path / "lis_results_resent_copy.csv"
    renamed.write_bytes(original.read_bytes())
    with caplog.at_level("INFO", logger="hdp.ingest.files"):
        assert renamed not in list_new_files(wh, MANIFEST, tmp_path)
        again = ingest_file(wh, MANIFEST, renamed, "run-2")
    assert again.status == "skipped" and again.batch_id is None
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 2, lines
    for line in lines:
        assert renamed.name in line and original.name in line, line
    assert _scalar(wh, "select count(*) from audit.load_batch") == 1


def test_a_time_that_does_not_parse_is_quarantined_before_publication(
    platform, wh, drops, tmp_path
):
    """A file's impossible collection time is quarantined by the gate under its check and
    column (it used to reach staging as a silent null); a weekday after the date parses."""
    original = drops[0][0]
    encoding = drops[1][original.name]["encoding"]
    lines = original.read_bytes().decode(encoding).split("\n")
    header = next(csv.reader([lines[0].rstrip("\r")]))
    at = header.index("collected_at")
    seen: Counter = Counter(next(csv.reader([x]), [""])[0] for x in lines[1:] if x.strip())
    changed = {}
    for n, line in enumerate(lines[1:], start=1):
        fields = next(csv.reader([line.rstrip("\r")]), [])
        if len(fields) != len(header) or seen[fields[0]] != 1 or not fields[at]:
            continue
        day = fields[at][:10]
        fields[at] = "2024-02-30 08:00:00" if not changed else f"{day} 星期一 08:00"
        changed[fields[0]] = fields[at]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(fields)
        lines[n] = out.getvalue() + ("\r" if line.endswith("\r") else "")
        if len(changed) == 2:
            break
    edited = tmp_path / "lis_results_edited.csv"
    edited.write_bytes("\n".join(lines).encode(encoding))
    loaded = ingest_file(wh, MANIFEST, edited, "run-1")
    _gate(platform, wh, loaded.batch_id)
    with wh.cursor() as cur:
        cur.execute(
            f"select {CLEAR_KEY}, check_id, column_name, action from audit.row_issue as i "
            "where check_id like %s",
            ("lis.results.%_parses",),
        )
        issues = cur.fetchall()
    wh.rollback()
    impossible = next(k for k, v in changed.items() if v.startswith("2024-02-30"))
    assert issues == [(impossible, "lis.results.collected_at_parses", "collected_at", "quarantine")]


def test_gbk_and_bom_files_decode_correctly(platform, wh, drops):
    for encoding in ("gbk", "utf-8-sig"):
        path = _by_encoding(drops, encoding)
        loaded = ingest_file(wh, MANIFEST, path, "run-1")
        assert loaded.encoding == encoding
        text = path.read_bytes().decode(encoding)
        expected = Counter(
            f[7] for f in (line.split(",") for line in text.splitlines()[1:]) if len(f) == 15
        )
        with wh.cursor() as cur:
            cur.execute(
                "select test_name, count(*) from raw_lis.results "
                "where _batch_id = %s and not _malformed group by 1",
                (loaded.batch_id,),
            )
            assert dict(cur.fetchall()) == dict(expected)
            # the BOM is not part of the first column: every key is a number
            cur.execute(
                "select count(*) from raw_lis.results where _batch_id = %s "
                "and not _malformed and result_id !~ '^[0-9]+$'",
                (loaded.batch_id,),
            )
            assert cur.fetchone()[0] == 0
        wh.rollback()
        assert "白细胞计数" in expected


def test_defects_are_quarantined_with_the_manifests_counts(platform, wh, drops):
    paths, manifest = drops
    chosen = [*paths[:2], _by_encoding(drops, "gbk"), _by_encoding(drops, "utf-8-sig")]
    injected: Counter[str] = Counter()
    for path in dict.fromkeys(chosen):
        loaded = ingest_file(wh, MANIFEST, path, "run-1")
        gate = _gate(platform, wh, loaded.batch_id)
        assert gate.success
        injected.update(d["kind"] for d in manifest[path.name]["defects"])
        assert loaded.rows_malformed == sum(
            d["kind"] == "malformed_line" for d in manifest[path.name]["defects"]
        )
    with wh.cursor() as cur:
        cur.execute("select check_id, action, count(*) from audit.row_issue group by 1, 2")
        found = {check: (action, n) for check, action, n in cur.fetchall()}
        cur.execute("select sum(rows_quarantined), sum(rows_read) from audit.load_batch")
        quarantined, read = cur.fetchone()
    wh.rollback()
    for kind, check in DEFECT_CHECKS.items():
        assert injected[kind] > 0, kind
        assert found[check][1] == injected[kind], kind
    assert found["lis.results.malformed_line"][0] == "quarantine"
    assert found["lis.results.duplicate_row"][0] == "warn"
    quarantining = ("malformed_line", "missing_patient_id", "unparseable_numeric")
    assert quarantined == sum(injected[k] for k in quarantining)
    # nothing lost: every line of every file is a raw row
    assert read == sum(manifest[p.name]["rows"] for p in dict.fromkeys(chosen))
    published = publish_files(wh, manifest=MANIFEST, run_id="run-1")
    assert sum(published.values()) == read - quarantined


def test_crash_mid_load_leaves_nothing_and_rerun_loads_once(platform, wh, drops):
    path = drops[0][0]
    owner = connect(platform.warehouse)  # scaffolding needs more than the loader has
    with owner.cursor() as cur:
        cur.execute(
            """
            create sequence crash_after;
            grant usage on sequence crash_after to hdp_loader;
            create function crash() returns trigger language plpgsql as $$
            begin
                if nextval('crash_after') > 50 then raise exception 'simulated crash'; end if;
                return new;
            end $$;
            create trigger crash before insert on raw_lis.results
                for each row execute function crash();
            """
        )
    owner.commit()
    with pytest.raises(Exception, match="simulated crash"):
        ingest_file(wh, MANIFEST, path, "run-1")
    assert _scalar(wh, "select count(*) from raw_lis.results") == 0
    assert _scalar(wh, "select count(*) from audit.file_load") == 0
    assert _scalar(wh, "select status from audit.load_batch") == "failed"
    assert _scalar(wh, "select error from audit.load_batch") == (
        "RaiseException (SQLSTATE P0001): simulated crash"
    )
    with owner.cursor() as cur:
        cur.execute("drop trigger crash on raw_lis.results")
    owner.commit()
    owner.close()
    assert list_new_files(wh, MANIFEST, path.parent)[0] == path
    loaded = ingest_file(wh, MANIFEST, path, "run-1")
    assert loaded.status == "loaded"
    assert _scalar(wh, "select count(*) from raw_lis.results") == drops[1][path.name]["rows"]
    assert _scalar(wh, "select count(*) from audit.load_batch") == 1


def test_changed_header_and_undecodable_files_are_refused(platform, wh, drops, tmp_path):
    path = drops[0][0]
    encoding = drops[1][path.name]["encoding"]
    drifted = tmp_path / "lis_results_20990101.csv"
    text = path.read_bytes().decode(encoding)
    drifted.write_bytes(text.replace(",unit,", ",unit_code,", 1).encode(encoding))
    with pytest.raises(FileRefused, match=r"lis_results_20990101\.csv.*schema drift.*missing unit"):
        ingest_file(wh, MANIFEST, drifted, "run-1")
    garbled = tmp_path / "lis_results_20990102.csv"
    garbled.write_bytes(b"result_id,\xff\xfe\x81\n")
    with pytest.raises(FileRefused, match=r"neither UTF-8.*nor GBK"):
        ingest_file(wh, MANIFEST, garbled, "run-1")
    with wh.cursor() as cur:
        cur.execute("select file_name, status, batch_id from audit.file_load order by 1")
        assert cur.fetchall() == [
            ("lis_results_20990101.csv", "refused", None),
            ("lis_results_20990102.csv", "refused", None),
        ]
    wh.rollback()
    assert _scalar(wh, "select count(*) from raw_lis.results") == 0
    assert _scalar(wh, "select count(*) from audit.load_batch") == 0
    # the refusals show on the Data quality page, read through the page's own login (which
    # cannot read audit.file_load), with their reasons and never a byte of the files
    from hdp.orchestration.quality_app import render
    from hdp.quality.history import refused_files

    reader = connect(platform.quality_reader)
    try:
        shown = refused_files(reader)
        page = render(reader)
    finally:
        reader.close()
    assert sorted((f.source, f.file_name) for f in shown) == [
        ("lis", "lis_results_20990101.csv"),
        ("lis", "lis_results_20990102.csv"),
    ]
    reasons = {f.file_name: f.reason or "" for f in shown}
    assert "schema drift" in reasons["lis_results_20990101.csv"]
    assert "nor GBK" in reasons["lis_results_20990102.csv"]
    section = page.split("<h2>Refused files", 1)[1].split("<h2>", 1)[0]
    assert "lis_results_20990101.csv" in section and "schema drift" in section
    assert "lis_results_20990102.csv" in section
    first_row = text.splitlines()[1].split(",")
    assert not [v for v in first_row if len(v) > 3 and v in page]  # no value of the file


# ------------------------------------------------------------------- end to end, with dbt


def test_staging_and_mart_end_to_end(platform, wh, drops):
    from hdp.runtime.dbt import run_dbt
    from tests.pipeline import CLEAR_KEY, ingest

    owner = connect(platform.his_owner)
    his.generate(owner, HIS_CONFIG)  # the HIS the drops were written from
    owner.close()
    ingest(platform, "his-run-1")
    gbk = _by_encoding(drops, "gbk")
    chosen = list(dict.fromkeys([drops[0][0], gbk]))
    for path in chosen:
        loaded = ingest_file(wh, MANIFEST, path, "lis-run-1")
        _gate(platform, wh, loaded.batch_id)
    published = publish_files(wh, manifest=MANIFEST, run_id="lis-run-1")
    run_dbt("seed")
    run_dbt("build")
    dw = connect(platform.warehouse)
    with dw.cursor() as cur:
        cur.execute("select count(*), count(distinct result_id) from staging.stg_lis__results")
        staged, distinct = cur.fetchone()
        cur.execute(
            "select count(distinct result_id) from raw_lis.results r where not _malformed "
            f"and not exists (select 1 from audit.row_issue i where i.batch_id = r._batch_id "
            f"and {CLEAR_KEY} = r.result_id and i.action = 'quarantine')"
        )
        assert staged == distinct == cur.fetchone()[0] <= sum(published.values())
        # Chinese test names of the GBK file arrive intact
        cur.execute(
            "select count(*) from staging.stg_lis__results s join mapping.lis_test_codes c "
            "using (test_code) where s.source_file_name = %s and s.test_name <> c.test_name_zh",
            (gbk.name,),
        )
        assert cur.fetchone()[0] == 0
        cur.execute(
            "select count(*) from staging.stg_lis__results where source_file_name = %s "
            "and test_name = '白细胞计数'",
            (gbk.name,),
        )
        assert cur.fetchone()[0] > 0
        cur.execute(
            "select count(*), count(*) filter (where not has_unknown_patient), "
            "count(*) filter (where not has_unknown_encounter), "
            "count(*) filter (where unit in ('mmol/l', 'umol/L', '％')) from marts.fct_lab_result"
        )
        total, known_patient, known_encounter, unnormalised = cur.fetchone()
        assert total == staged and unnormalised == 0
        assert known_patient == total and known_encounter == total
        cur.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_lab_result'"
        )
        assert "patient_id" not in {c for (c,) in cur.fetchall()}
    dw.close()


def test_drops_folder_copy_lists_only_new_files(platform, wh, drops, tmp_path):
    folder = tmp_path / "drops"
    folder.mkdir()
    for p in drops[0][:3]:
        shutil.copy(p, folder / p.name)
    (folder / "readme.txt").write_text("not a drop", encoding="utf-8")
    assert [p.name for p in list_new_files(wh, MANIFEST, folder)] == [p.name for p in drops[0][:3]]


# ------------------------------------------------------------------- the real Airflow DAG


def test_dag_run_loads_new_files_once(airflow_env):
    from datetime import date

    from hdp.ingest.files import drop_dir
    from hdp_sim.sources import logins
    from tests.test_airflow import _dags_test

    lg = logins()
    owner = connect(lg.his_owner)
    his.generate(owner, his.SimConfig(seed=5, scale=0.01, history_days=5))
    folder = drop_dir(MANIFEST)
    shutil.rmtree(folder, ignore_errors=True)
    lab.write_drops(owner, folder, seed=1, last_day=date(2024, 1, 3), defect_rate=0.02)
    owner.close()
    for attempt in ("first", "again"):
        run = _dags_test("hdp_ingest_lis", airflow_env)
        assert run.returncode == 0, (attempt, run.stdout[-3000:], run.stderr[-3000:])
        wh = connect(lg.warehouse)
        with wh.cursor() as cur:
            cur.execute("select status, count(*) from audit.load_batch group by 1")
            assert dict(cur.fetchall()) == {"published": 3}, attempt
            cur.execute("select count(*) from audit.file_load where status = 'loaded'")
            assert cur.fetchone()[0] == 3
        wh.close()
