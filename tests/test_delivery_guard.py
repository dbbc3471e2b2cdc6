"""Column profiles, their anomaly monitors and the delivery guard (issue 15 items 3 and 4), as an
outsider's files would meet them: a dispensing export no simulator of ours writes (its own
columns, far-future de-identified dates, codes with leading zeros, 18-digit card numbers), no
declared pattern or type, and the two real cases: dates that gain a weekday suffix, and an
Excel re-delivery of earlier clean rows (two-digit years, codes without their leading zeros,
card numbers as 4.40E+17). Real PostgreSQL, the real loader, gate (GX), guard and publish; the
operator's commands through `python -m hdp`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from psycopg2 import sql

from hdp.config import REPO_ROOT, load_settings
from hdp.ingest.files import FilesWithheld, ensure_landing_tables, ingest_file, list_new_files
from hdp.ingest.files import publish_files as _publish_files
from hdp.manifest import SourceManifest, TableSpec
from hdp.quality.gate import DeliveryHeld, QualityGateFailed, validate_batch
from hdp.warehouse.database import connect

SOURCE = "xrx"
TABLE = "dispensing"
COLUMNS = ("line_id", "drug_code", "card_no", "dispensed_at", "quantity")
MANIFEST = SourceManifest(
    source=SOURCE,
    description="an outside pharmacy's dispensing export",
    conn_id=None,
    schema=None,
    schedule="@daily",
    owner="data-platform",
    contains_personal_data=True,
    freshness_hours=26,
    tables=(TableSpec(TABLE, ("line_id",), "", COLUMNS),),
    kind="files",
    drop_dir="drops/xrx",
    pattern="xrx_*.csv",
)
ROWS = 60


def _card(i: int) -> str:
    return f"44{i:016d}"


def clean_rows(start: int) -> list[list[str]]:
    """Clean lines: de-identified dates shifted into the 2160s, 5-digit codes, card numbers."""
    return [
        [
            f"L{i:05d}",
            f"00{100 + i % 37:03d}",
            _card(i),
            f"2164-{1 + i % 12:02d}-{1 + i % 28:02d} {8 + i % 10:02d}:{i % 60:02d}",
            str(1 + i % 5),
        ]
        for i in range(start, start + ROWS)
    ]


def excel_rows(rows: list[list[str]]) -> list[list[str]]:
    """The same lines after a spreadsheet: M/D/YY h:mm, codes lose their leading zeros, long
    numbers in scientific notation (the upper-cased header was fixed by hand)."""
    out = []
    for line_id, code, card, at, qty in rows:
        year, month, rest = at.split("-", 2)
        day, time = rest.split(" ")
        hour, minute = time.split(":")
        out.append(
            [
                line_id,
                str(int(code)),
                f"{float(card):.2E}",
                f"{int(month)}/{int(day)}/{year[2:]} {int(hour)}:{minute}",
                qty,
            ]
        )
    return out


def weekday_rows(start: int) -> list[list[str]]:
    """New lines whose dates carry a weekday suffix (which even contradicts the date)."""
    return [[*r[:3], r[3].replace(" ", " 星期五 ", 1), r[4]] for r in clean_rows(start)]


def write(folder: Path, name: str, rows: list[list[str]]) -> Path:
    path = folder / name
    lines = [",".join(COLUMNS), *(",".join(r) for r in rows)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


@pytest.fixture
def env(platform, tmp_path):
    """A fresh platform with the outside source's landing table, its catalogue (the defaults,
    with the file table's metadata columns: no declaration of any column) and a drop folder."""
    lg = platform
    owner = connect(lg.warehouse)
    ensure_landing_tables(owner, MANIFEST)  # as set-up does, then handed to the loader
    with owner.cursor() as cur:
        for statement in (
            "alter schema {} owner to hdp_loader",
            "alter table {}.{} owner to hdp_loader",
        ):
            names = [sql.Identifier(f"raw_{SOURCE}"), sql.Identifier(TABLE)]
            cur.execute(sql.SQL(statement).format(*names[: statement.count("{}")]))
    owner.commit()
    owner.close()
    wh = connect(lg.loader)
    expectations = tmp_path / "expectations"
    expectations.mkdir()
    shutil.copy(REPO_ROOT / "expectations" / "defaults.yml", expectations / "defaults.yml")
    metadata = ["_batch_id", "_extracted_at", "_source", "_file_name", "_line_no"]
    catalogue = {
        "source": SOURCE,
        "checks": [
            {
                "id": "schema.columns",
                "table": TABLE,
                "level": "batch",
                "category": "conformance",
                "severity": "block",
                "expectation": "ExpectTableColumnsToMatchSet",
                "kwargs": {
                    "column_set": [*COLUMNS, *metadata, "_malformed", "_raw_line"],
                    "exact_match": True,
                },
                "means": "the file's columns and the load metadata",
                "fix": "migrate the landing table",
            },
            {
                "id": "watermark.not_null",
                "table": TABLE,
                "level": "batch",
                "category": "completeness",
                "severity": "block",
                "expectation": "ExpectColumnValuesToNotBeNull",
                "kwargs": {"column": "line_id"},
                "means": "every line has its id",
                "fix": "re-export",
            },
        ],
    }
    (expectations / f"{SOURCE}.yml").write_text(yaml.safe_dump(catalogue), encoding="utf-8")
    drops = tmp_path / "drops"
    drops.mkdir()
    yield lg, wh, expectations, drops
    wh.close()


def load(env, path: Path, run_id: str):
    lg, wh, expectations, drops = env
    loaded = ingest_file(wh, MANIFEST, path, run_id, folder=drops)
    if loaded.batch_id is None:
        return loaded, None
    settings = load_settings()
    gate = validate_batch(
        wh,
        warehouse_url=lg.loader.url,
        quality_dir=settings.quality_dir,
        expectations_dir=expectations,
        batch_id=loaded.batch_id,
        source=SOURCE,
        table=TABLE,
        primary_key=["line_id"],
        watermark="line_id",
    )
    return loaded, gate


def publish(env, run_id: str) -> dict[str, int]:
    return _publish_files(env[1], manifest=MANIFEST, run_id=run_id)


def rows(wh, query: str, params=()) -> list[tuple]:
    with wh.cursor() as cur:
        cur.execute(query, params)
        found = cur.fetchall()
    wh.rollback()
    return found


def published(wh) -> dict[str, tuple]:
    """What staging would publish: each key's latest published version (as stg_lis__results)."""
    return {
        r[0]: r[1:]
        for r in rows(
            wh,
            f"select distinct on (r.line_id) r.line_id, r.drug_code, r.card_no, r.dispensed_at "
            f"from raw_{SOURCE}.{TABLE} as r inner join audit.load_batch as b "
            "on b.batch_id = r._batch_id and b.status = 'published' "
            "order by r.line_id, r._batch_id desc, r._line_no desc",
        )
    }


def hdp(*args: str) -> subprocess.CompletedProcess:
    """The operator's command line, as a subprocess with the platform's environment."""
    return subprocess.run(
        [sys.executable, "-m", "hdp", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        check=False,
    )


def _screenshot(page: str, shot: Path) -> None:
    """The page as a real browser renders it (headless Chromium, the page is self-contained)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by `make test` (Makefile target browser)"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    saved = shot.with_suffix(".html")
    saved.write_text(page, encoding="utf-8")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={shot.parent / 'chromium-profile'}",
            "--window-size=1400,1600",
            f"--screenshot={shot}",
            saved.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def clean_history(env) -> tuple[Path, dict]:
    """Two clean deliveries, published: the columns' history."""
    drops = env[3]
    first = write(drops, "xrx_20240101.csv", clean_rows(0))
    write(drops, "xrx_20240102.csv", clean_rows(ROWS))
    for day, name in (("run-1", "xrx_20240101.csv"), ("run-2", "xrx_20240102.csv")):
        load(env, drops / name, day)
        assert publish(env, day) == {name: ROWS}
    return first, published(env[1])


# ------------------------------------------------------------------- profiles and monitors


def test_profiles_hold_statistics_and_no_identifier(env):
    _, wh, _, _ = env
    clean_history(env)
    profile = {
        r[0]: r[1:]
        for r in rows(
            wh,
            "select column_name, rows, nulls, distinct_count, top_shape, pattern_share, "
            "year_median, min_value, max_value, is_identifier from audit.column_profile "
            "where batch_id = (select min(batch_id) from audit.column_profile)",
        )
    }
    assert set(profile) == set(COLUMNS)
    assert profile["dispensed_at"][:6] == (ROWS, 0, ROWS, "9-9-9 9:9", 1.0, 2164)
    assert profile["drug_code"][3] == "9" and profile["quantity"][6:8] == ("1", "5")
    # identifiers (by name: line_id, card_no; by shape: 18 digits) keep shape statistics only
    for column in ("line_id", "card_no"):
        assert profile[column][6:] == (None, None, True), column
    dump = "\n".join(t for (t,) in rows(wh, "select p::text from audit.column_profile as p"))
    cards = [_card(i) for i in range(2 * ROWS)]
    assert not [c for c in cards if c in dump]
    assert "L00001" not in dump


def test_weekday_suffixed_dates_fire_the_pattern_monitor_without_a_declaration(env):
    """2018-01-01 星期五-style dates parse (item 2), so no row check notices them: the share of
    values of the column's usual shape drops from 100% to 0% and the monitor says so."""
    _, wh, _, drops = env
    clean_history(env)
    _, gate = load(env, write(drops, "xrx_20240103.csv", weekday_rows(2 * ROWS)), "run-3")
    fired = {(c.check_id, c.column): c for c in gate.checks if c.check == "profile_monitor"}
    monitor = fired[("profile.pattern_share", "dispensed_at")]
    assert monitor.status == "warn" and monitor.observed.startswith("0% match '9-9-9 9:9'")
    assert "9-9-9 z 9:9" in monitor.observed
    assert {c for _, c in fired} == {"dispensed_at"}  # the other columns kept their shape
    # new keys: nothing replaced, so the guard does not hold it; the warning is recorded
    assert gate.success and not gate.held
    assert rows(
        wh,
        "select status, observed_value from audit.quality_result where check_id = %s "
        "and column_name = 'dispensed_at' and batch_id = %s",
        ("profile.pattern_share", gate.batch_id),
    ) == [("warn", monitor.observed)]


def test_a_declared_pattern_is_counted_and_blocks_as_the_catalogue_says(env):
    """A column entry with its own pattern (a regex) and severity block: the weekday batch is
    rejected, not only flagged."""
    _, wh, expectations, drops = env
    catalogue = yaml.safe_load((expectations / f"{SOURCE}.yml").read_text(encoding="utf-8"))
    catalogue["checks"].append(
        {
            "id": "xrx.dispensing.dispensed_at_pattern",
            "table": TABLE,
            "level": "profile",
            "monitor": "pattern_share",
            "column": "dispensed_at",
            "kwargs": {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$"},
            "category": "conformance",
            "severity": "block",
            "threshold": 0.2,
            "means": "dispensing times are ISO",
            "fix": "ask for ISO times",
        }
    )
    (expectations / f"{SOURCE}.yml").write_text(yaml.safe_dump(catalogue), encoding="utf-8")
    clean_history(env)
    assert rows(
        wh,
        "select distinct pattern, pattern_share from audit.column_profile "
        "where column_name = 'dispensed_at'",
    ) == [("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$", 1.0)]
    with pytest.raises(QualityGateFailed) as failed:
        load(env, write(drops, "xrx_20240103.csv", weekday_rows(2 * ROWS)), "run-3")
    assert "xrx.dispensing.dispensed_at_pattern on column dispensed_at" in str(failed.value)
    assert rows(wh, "select status from audit.load_batch order by batch_id desc limit 1") == [
        ("rejected",)
    ]


# ------------------------------------------------------------------- the delivery guard


def _hold_excel(env, first: Path) -> Path:
    """The Excel re-delivery of the first file's lines: held, with its reason."""
    drops = env[3]
    excel = write(drops, "xrx_20240103.csv", excel_rows(clean_rows(0)))
    with pytest.raises(DeliveryHeld) as held:
        load(env, excel, "run-3")
    message = str(held.value)
    assert f"{ROWS} of {ROWS} keys (100%) replace published versions" in message
    for shape in ("dispensed_at: pattern_share", "dispensed_at: year_shift", "card_no"):
        assert shape in message
    assert "python -m hdp quality release" in message
    assert _card(1) not in message and "L00001" not in message  # no value of the file
    return excel


def test_an_excel_redelivery_is_held_and_published_data_is_unchanged(env):
    _, wh, _, drops = env
    first, before = clean_history(env)
    excel = _hold_excel(env, first)
    ((status, error),) = rows(
        wh,
        "select b.status, b.error from audit.load_batch as b inner join audit.file_load as f "
        "on f.batch_id = b.batch_id where f.file_name = %s",
        (excel.name,),
    )
    assert status == "held" and "delivery.replaces_published" in error
    with pytest.raises(FilesWithheld) as withheld:
        publish(env, "run-3")
    assert withheld.value.published == {} and "held" in str(withheld.value)
    assert published(wh) == before
    # the operator reruns the run (same run id) or a new run comes: nothing is loaded again
    # and the gate does not re-judge it; still held, nothing duplicated
    batches = rows(wh, "select count(*) from audit.load_batch")[0][0]
    for run_id in ("run-3", "run-4"):
        assert list_new_files(wh, MANIFEST, drops) == []
        loaded, gate = load(env, excel, run_id)
        assert loaded.status == "skipped" and gate is None
    held_batch = rows(wh, "select batch_id from audit.held_delivery")[0][0]
    settings = load_settings()
    with pytest.raises(DeliveryHeld):  # the gate task cleared and run again
        validate_batch(
            wh,
            warehouse_url=env[0].loader.url,
            quality_dir=settings.quality_dir,
            expectations_dir=env[2],
            batch_id=held_batch,
            source=SOURCE,
            table=TABLE,
            primary_key=["line_id"],
            watermark="line_id",
        )
    assert rows(wh, "select count(*) from audit.load_batch")[0][0] == batches
    assert rows(wh, "select status from audit.load_batch where batch_id = %s", (held_batch,)) == [
        ("held",)
    ]
    assert published(wh) == before
    # the same bytes under another name are logged with both names
    shutil.copy(first, drops / "xrx_copy.csv")
    logger = logging.getLogger("hdp.ingest.files")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    # a handler of our own: Airflow's logging set-up (imported by other tests) may stop the
    # propagation that caplog relies on
    level, disabled = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        assert list_new_files(wh, MANIFEST, drops) == []
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    assert any("xrx_copy.csv" in r.getMessage() and first.name in r.getMessage() for r in records)
    # the Data quality page (as its own login) and the run summary show the hold, its reason
    # and command, and the anomalies with their columns' trends
    from rich.console import Console

    from hdp.orchestration.quality_app import render
    from hdp.runtime.summary import _print_held_and_anomalies

    reader = connect(env[0].quality_reader)
    try:
        page = render(reader)
    finally:
        reader.close()
    latest = page.split("<h2>Latest batch per table</h2>", 1)[1].split("<h2>", 1)[0]
    assert ">held</span>" in latest and f"{SOURCE} <span" in page and "failing" in page
    held_section = page.split("<h2>Held deliveries</h2>", 1)[1].split("<h2>", 1)[0]
    assert excel.name in held_section and f"python -m hdp quality release {held_batch}" in page
    anomalies = page.split("<h2>Column profile anomalies</h2>", 1)[1].split("<h2>", 1)[0]
    assert "dispensed_at" in anomalies and "profile.year_shift" in anomalies
    assert anomalies.count("<svg") >= 3  # a trend per monitored column
    assert _card(1) not in page and "L00001" not in page
    _screenshot(page, load_settings().home / "screenshots" / "quality-page-held.png")
    console = Console(record=True, width=200)
    _print_held_and_anomalies(console)
    text = console.export_text()
    assert "Held deliveries" in text and f"python -m hdp quality release {held_batch}" in text
    assert "profile.pattern_share" in text


def test_reject_keeps_it_out_for_good(env):
    wh = env[1]
    first, before = clean_history(env)
    excel = _hold_excel(env, first)
    listed = hdp("quality", "held")
    assert listed.returncode == 0 and excel.name in listed.stdout, listed.stderr[-2000:]
    done = hdp("quality", "reject", excel.name)
    assert done.returncode == 0 and "rejected" in done.stdout, done.stderr[-2000:]
    assert rows(wh, "select decision, decided_by from audit.held_delivery") == [
        ("rejected", "hdp_load")
    ]
    again = hdp("quality", "release", excel.name)
    assert again.returncode == 1 and "rejected already" in again.stdout
    loaded, _ = load(env, excel, "run-4")  # re-sent as it was: dismissed, not loaded again
    assert loaded.status == "skipped"
    assert publish(env, "run-4") == {}
    assert published(wh) == before


def test_release_publishes_once_and_readmit_restores_the_clean_file(env):
    _, wh, _, drops = env
    first, before = clean_history(env)
    excel = _hold_excel(env, first)
    held_batch = rows(wh, "select batch_id from audit.held_delivery")[0][0]
    done = hdp("quality", "release", str(held_batch))
    assert done.returncode == 0 and "released" in done.stdout, done.stderr[-2000:]
    # the rerun of the held run publishes it, once; a further run has nothing to publish
    assert publish(env, "run-3") == {excel.name: ROWS}
    assert publish(env, "run-4") == {}
    after = published(wh)
    assert after["L00001"][0] == "101" and after["L00001"][2].startswith("2/2/64 ")
    assert (
        sum(
            n
            for (n,) in rows(wh, "select count(*) from audit.load_batch where status = 'published'")
        )
        == 3
    )
    # the clean file's bytes are skipped as already loaded, until the operator re-admits them
    loaded, _ = load(env, first, "run-5")
    assert loaded.status == "skipped"
    readmitted = hdp("files", "readmit", first.name, "--source", SOURCE)
    assert readmitted.returncode == 0 and first.name in readmitted.stdout, readmitted.stderr
    assert list_new_files(wh, MANIFEST, drops) == [first]
    loaded, gate = load(env, first, "run-5")
    assert loaded.status == "loaded" and gate.success and not gate.held
    guard = next(c for c in gate.checks if c.check_id == "delivery.replaces_published")
    assert guard.status == "pass" and "re-admitted" in guard.observed
    assert publish(env, "run-5") == {first.name: ROWS}
    restored = published(wh)
    assert restored == before
