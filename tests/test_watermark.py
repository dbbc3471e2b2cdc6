"""Watermark kinds without a database (issue 16): which source types make which kind, how each
kind is compared, stepped back by the look-back window, and stored in and read back from
audit.load_batch; and the manifest's time zone and look-back of integer watermarks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hdp.ingest.watermark import (
    StoredWatermark,
    Watermark,
    WatermarkError,
    WatermarkKind,
    watermark_of,
)
from hdp.manifest import load_manifest

CST = timezone(timedelta(hours=8))
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("sql_type", "zone", "kind"),
    [
        ("timestamp without time zone", None, WatermarkKind.TIMESTAMP),
        ("timestamp(3) without time zone", None, WatermarkKind.TIMESTAMP),
        ("timestamp with time zone", None, WatermarkKind.TIMESTAMPTZ),
        ("timestamp(6) with time zone", None, WatermarkKind.TIMESTAMPTZ),
        # a declared zone changes nothing for values that carry their offset, or for numbers
        ("timestamp with time zone", "Asia/Shanghai", WatermarkKind.TIMESTAMPTZ),
        ("timestamp without time zone", "Asia/Shanghai", WatermarkKind.ZONED_TIMESTAMP),
        ("bigint", None, WatermarkKind.INTEGER),
        ("integer", None, WatermarkKind.INTEGER),
        ("smallint", "Asia/Shanghai", WatermarkKind.INTEGER),
    ],
)
def test_the_source_type_decides_the_kind(sql_type, zone, kind):
    assert watermark_of("chg", sql_type, zone, "emr.t").kind is kind


@pytest.mark.parametrize("sql_type", ["date", "text", "numeric(12,0)", "character varying(19)"])
def test_an_unsupported_type_is_refused_naming_table_column_and_type(sql_type):
    pattern = rf"emr\.t: watermark chg is {re.escape(sql_type)}: .*integer"
    with pytest.raises(WatermarkError, match=pattern):
        watermark_of("chg", sql_type, None, "emr.t")


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(WatermarkError, match=r"emr\.t: time zone 'Asia/Beijing' .* IANA"):
        watermark_of("chg", "timestamp without time zone", "Asia/Beijing", "emr.t")


def _wm(kind: WatermarkKind, zone: str | None = None) -> Watermark:
    return Watermark("chg", kind, zone, "emr.t")


def test_timestamptz_values_of_different_offsets_compare_and_store_as_utc():
    wm = _wm(WatermarkKind.TIMESTAMPTZ)
    beijing = datetime(2026, 3, 2, 14, 0, tzinfo=CST)  # 06:00 UTC
    new_york = datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=-5)))  # 06:00 UTC
    stored = wm.to_audit(beijing)
    assert stored == StoredWatermark("timestamptz", datetime(2026, 3, 2, 6, 0), None)
    assert stored == wm.to_audit(new_york)
    back = wm.from_audit(stored)
    assert back == beijing and back.tzinfo is not None
    # the user's bug: the stored low (read back) against the source's aware max
    low = wm.back(back, HOUR, 0)
    assert wm.later(datetime(2026, 3, 2, 6, 30, tzinfo=UTC), low)
    assert not wm.later(low, beijing)


def test_naive_timestamp_is_kept_as_the_source_has_it():
    """The default for every existing source: stored, read back and stepped back unchanged."""
    wm = _wm(WatermarkKind.TIMESTAMP)
    value = datetime(2026, 3, 2, 9, 0, 0, 123456)
    assert wm.to_audit(value) == StoredWatermark("timestamp", value, None)
    assert wm.from_audit(StoredWatermark(None, value, None)) == value  # a batch of before
    assert wm.from_audit(wm.to_audit(value)) == value
    assert wm.back(value, HOUR, 5) == value - HOUR


def test_zoned_timestamp_stores_its_instant_in_utc_and_reads_back_wall_time():
    wm = _wm(WatermarkKind.ZONED_TIMESTAMP, "Asia/Shanghai")
    wall = datetime(2026, 3, 2, 9, 0)
    stored = wm.to_audit(wall)
    assert stored == StoredWatermark("zoned_timestamp", datetime(2026, 3, 2, 1, 0), None)
    assert wm.from_audit(stored) == wall
    # batches stored before the zone was declared hold the source's wall time as it is
    assert wm.from_audit(StoredWatermark(None, wall, None)) == wall
    assert wm.from_audit(StoredWatermark("timestamp", wall, None)) == wall


def test_zoned_look_back_covers_a_daylight_saving_change():
    """New York springs forward at 02:00 on 2026-03-08 and falls back at 02:00 on 2026-11-01
    (01:00-02:00 happens twice). The window reaches back its length in real time and in wall
    time, whichever is further; an ambiguous wall time is stored as the earlier instant."""
    wm = _wm(WatermarkKind.ZONED_TIMESTAMP, "America/New_York")
    # an hour before 03:30 EDT is 01:30 EST (wall arithmetic would say 02:30, a time that
    # never happened, and miss the rows of 01:30-02:00)
    assert wm.back(datetime(2026, 3, 8, 3, 30), HOUR, 0) == datetime(2026, 3, 8, 1, 30)
    # two hours before 02:30 EST is the first 01:30 (EDT); rows stamped 01:00-01:30 in the
    # second pass are inside the window too, so the wall time reaches back to 00:30
    assert wm.back(datetime(2026, 11, 1, 2, 30), 2 * HOUR, 0) == datetime(2026, 11, 1, 0, 30)
    assert wm.to_audit(datetime(2026, 11, 1, 1, 30)).at == datetime(2026, 11, 1, 5, 30)
    # Beijing has no daylight saving: an hour back is an hour of wall time
    cn = _wm(WatermarkKind.ZONED_TIMESTAMP, "Asia/Shanghai")
    assert cn.back(datetime(2026, 11, 1, 1, 30), HOUR, 0) == datetime(2026, 11, 1, 0, 30)


def test_integer_watermark_is_stored_as_a_number_and_looks_back_by_ids():
    wm = _wm(WatermarkKind.INTEGER)
    assert wm.to_audit(9_000_000_000) == StoredWatermark("integer", None, 9_000_000_000)
    assert wm.from_audit(StoredWatermark("integer", None, 12)) == 12
    assert wm.back(12, HOUR, 0) == 12  # minutes mean nothing to a counter
    assert wm.back(12, HOUR, 5) == 7
    assert wm.later(13, 12) and not wm.later(12, 12)
    # a batch of before could not store a number (the old code failed): nothing to start from
    assert wm.from_audit(StoredWatermark(None, None, None)) is None


def test_a_legacy_timestamptz_batch_is_read_as_the_warehouse_stored_it():
    """Before this fix an aware max was written into the naive column, converted to the
    loader's session time zone; the extract reads it back through that zone (`at_tz`)."""
    wm = _wm(WatermarkKind.TIMESTAMPTZ)
    aware = datetime(2026, 3, 2, 14, 0, tzinfo=CST)
    legacy = StoredWatermark(None, datetime(2026, 3, 2, 14, 0), None, at_tz=aware)
    assert wm.from_audit(legacy) == aware


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (WatermarkKind.TIMESTAMPTZ, datetime(2026, 3, 2, 9, 0)),  # naive where aware belongs
        (WatermarkKind.TIMESTAMP, datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        (WatermarkKind.INTEGER, "12"),
        (WatermarkKind.INTEGER, True),
        (WatermarkKind.ZONED_TIMESTAMP, 12),
    ],
)
def test_a_source_value_of_the_wrong_kind_is_refused(kind, value):
    with pytest.raises(WatermarkError, match=r"emr\.t: watermark chg"):
        _wm(kind, "Asia/Shanghai" if kind is WatermarkKind.ZONED_TIMESTAMP else None).check(value)


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        (WatermarkKind.INTEGER, StoredWatermark("timestamptz", datetime(2026, 3, 2), None)),
        (WatermarkKind.TIMESTAMPTZ, StoredWatermark("integer", None, 12)),
        # the zone was dropped from the manifest: UTC cannot become the source's wall time
        (WatermarkKind.TIMESTAMP, StoredWatermark("zoned_timestamp", datetime(2026, 3, 2), None)),
    ],
)
def test_a_changed_kind_is_refused_with_what_to_do(kind, stored):
    with pytest.raises(WatermarkError, match=r"emr\.t: .*published batches.*"):
        _wm(kind).from_audit(stored)


def test_the_manifest_declares_a_time_zone_per_source_and_per_table(tmp_path: Path):
    (tmp_path / "emr.yml").write_text(
        "source: emr\nconn_id: emr_source\nschema: emr\ntime_zone: Asia/Shanghai\n"
        "lookback_ids: 500\ntables:\n"
        "  - {name: obs_entry, primary_key: [rec_no], watermark: modified_on}\n"
        "  - {name: bed_move, primary_key: [move_no], watermark: moved_on, time_zone: UTC}\n",
        encoding="utf-8",
    )
    manifest = load_manifest("emr", tmp_path)
    assert manifest.table("obs_entry").time_zone == "Asia/Shanghai"
    assert manifest.table("bed_move").time_zone == "UTC"
    assert manifest.lookback_ids == 500


def test_a_manifest_with_an_unknown_time_zone_is_refused(tmp_path: Path):
    (tmp_path / "emr.yml").write_text(
        "source: emr\nconn_id: emr_source\nschema: emr\ntime_zone: CST\ntables:\n"
        "  - {name: obs_entry, primary_key: [rec_no], watermark: modified_on}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"emr\.yml \(table obs_entry\): time zone .CST."):
        load_manifest("emr", tmp_path)


def test_existing_manifests_declare_no_zone_and_keep_their_defaults():
    """Every source of today keeps its behaviour: no zone, no look-back in ids."""
    for source in ("his", "hisb", "pharmacy"):
        manifest = load_manifest(source)
        assert manifest.lookback_ids == 0
        assert all(t.time_zone is None for t in manifest.tables)


# --- dbt: the latest version of a row is ordered by the manifest's watermark ------------------

_PUBLISHED = re.compile(r"published_rows\(\s*'raw_(\w+)',\s*'(\w+)'")
_LATEST = re.compile(
    r"latest_version\(\s*([^,]+?),\s*(\[[^\]]*\]|[^,)]+?)\s*(?:,\s*([^)]+?))?\s*\)"
)


def test_every_latest_version_call_names_its_version_column():
    """latest_version has no default version column (it assumed updated_at)."""
    from hdp.config import REPO_ROOT

    calls = [
        (path.name, match.group(3))
        for path in sorted((REPO_ROOT / "dbt_project" / "models").rglob("*.sql"))
        for match in _LATEST.finditer(path.read_text(encoding="utf-8"))
    ]
    assert len(calls) > 20
    assert [name for name, version in calls if version is None] == []


def test_staging_orders_versions_by_the_manifest_watermark():
    """A staging model's latest version is ordered by the watermark its source's manifest
    names for the table (not a literal updated_at, nor a renamed copy of it)."""
    from hdp.config import REPO_ROOT
    from hdp.manifest import all_manifests

    manifests = {m.source: m for m in all_manifests() if m.kind == "database"}
    checked = 0
    for path in sorted((REPO_ROOT / "dbt_project" / "models" / "staging").rglob("*.sql")):
        text = path.read_text(encoding="utf-8")
        published, latest = _PUBLISHED.search(text), _LATEST.search(text)
        if not (published and latest) or published.group(1) not in manifests:
            continue
        source, table = published.groups()
        expected = manifests[source].table(table).watermark
        assert latest.group(3) == f"'{expected}'", f"{path.name}: {latest.group(3)} != {expected}"
        checked += 1
    assert checked >= 20


def test_the_cleaning_counts_order_his_versions_by_his_watermark():
    from hdp.config import REPO_ROOT
    from hdp.manifest import load_manifest

    mart = REPO_ROOT / "dbt_project" / "models" / "marts" / "quality"
    text = (mart / "mart_cleaning_rule_counts.sql").read_text(encoding="utf-8")
    (declared,) = re.findall(r"\{% set watermark = '(\w+)' %\}", text)
    tables = set(re.findall(r"\('his\.\w+\.\w+\.\w+', '(\w+)'", text))
    assert len(tables) >= 4
    his = load_manifest("his")
    assert {his.table(t).watermark for t in tables} == {declared}


def test_staging_versions_rows_by_the_manifest_key():
    """published_rows() reads the table's key from the manifest (macro manifest_key); the key a
    staging model versions rows by (latest_version) is that key too: a manifest whose key
    changes without its staging fails here, never silently versions by the old one."""
    import ast

    from hdp.config import REPO_ROOT
    from hdp.manifest import all_manifests

    manifests = {m.source: m for m in all_manifests()}
    checked = 0
    for path in sorted((REPO_ROOT / "dbt_project" / "models" / "staging").rglob("*.sql")):
        text = path.read_text(encoding="utf-8")
        published, latest = _PUBLISHED.search(text), _LATEST.search(text)
        if not (published and latest) or published.group(1) not in manifests:
            continue
        source, table = published.groups()
        key = ast.literal_eval(latest.group(2))
        key = (key,) if isinstance(key, str) else tuple(key)
        assert key == manifests[source].table(table).primary_key, path.name
        checked += 1
    assert checked >= 20
    # and no staging or mapping model passes published_rows() a key of its own
    typed = [
        path.name
        for folder in ("staging", "mapping")
        for path in (REPO_ROOT / "dbt_project" / "models" / folder).rglob("*.sql")
        if re.search(r"published_rows\(\s*'[^']+',\s*'[^']+',", path.read_text(encoding="utf-8"))
    ]
    assert typed == []
