"""Column profile monitors without a database (issue 15 item 3): which columns count as
identifiers, what each column's pattern is, and when a monitor fires against a history."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdp.quality.checks import CatalogueError, for_table, load_catalogue
from hdp.quality.profiles import (
    ColumnProfile,
    detect,
    looks_like_identifier,
    monitor_checks,
    patterns_for,
)

EXPECTATIONS = Path(__file__).resolve().parents[1] / "expectations"
DEFAULTS = for_table(load_catalogue(EXPECTATIONS, "nosuchsource"), "t")


def profile(column: str, **kw) -> ColumnProfile:
    base = dict(
        column=column,
        rows=100,
        nulls=0,
        distinct_count=100,
        min_length=10,
        max_length=10,
        avg_length=10.0,
        top_shape="9-9-9",
        top_shape_share=1.0,
        pattern="9-9-9",
        pattern_share=1.0,
        dated_share=1.0,
        year_min=2164,
        year_median=2164,
        year_max=2164,
        min_value=None,
        max_value=None,
        is_identifier=False,
    )
    return ColumnProfile(**{**base, **kw})


def past(**kw) -> dict:
    base = dict(
        rows=100,
        nulls=0,
        avg_length=10.0,
        top_shape="9-9-9",
        pattern="9-9-9",
        pattern_share=1.0,
        dated_share=1.0,
        year_median=2164,
    )
    return {**base, **kw}


@pytest.mark.parametrize(
    ("name", "shape", "length", "identifying"),
    [
        ("card_no", "9", 18, True),  # by its name
        ("patient_id", "9", 6, True),
        ("xm", "z", 3, True),  # pinyin 姓名
        ("remark", "z", 12, True),  # free text in another script may hold names
        ("ref", "9", 18, True),  # long digits: a card or a phone, whatever the name
        ("quantity", "9", 3, False),
        ("dispensed_at", "9-9-9 9:9", 16, False),
        ("unit", "a/a", 6, False),
    ],
)
def test_identifier_columns_by_name_or_shape(name, shape, length, identifying):
    assert looks_like_identifier(name, shape, length) is identifying


def test_defaults_have_every_monitor_and_the_guard():
    entries = monitor_checks(DEFAULTS)
    assert {m for m, _ in entries} == {"null_share", "pattern_share", "year_shift", "length"}
    assert all(c.severity == "warn" for c in entries.values())
    guard = {c.id: c for c in DEFAULTS}["delivery.replaces_published"]
    assert guard.severity == "block" and guard.threshold == {"share": 0.5, "rows": 20}


def test_a_profile_check_needs_a_known_monitor(tmp_path):
    (tmp_path / "defaults.yml").write_text(
        "checks:\n  - {id: p, table: '*', level: profile, monitor: nulls, category: "
        "completeness, severity: warn, means: m, fix: f}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError, match="monitor must be one of"):
        load_catalogue(tmp_path, "x")


def test_the_pattern_is_declared_else_the_history_s_usual_shape():
    declared = monitor_checks(DEFAULTS) | {
        ("pattern_share", "code"): type(DEFAULTS[0])(
            id="x.code_pattern",
            table="t",
            level="profile",
            category="conformance",
            severity="block",
            means="m",
            fix="f",
            column="code",
            kwargs={"pattern": "^[0-9]{5}$"},
            monitor="pattern_share",
        )
    }
    history = {"at": [past(top_shape="9-9-9"), past(top_shape="9-9-9"), past(top_shape="9/9/9")]}
    found = patterns_for(["code", "at", "new"], declared, history)
    assert found == {"code": ("regex", "^[0-9]{5}$"), "at": ("shape", "9-9-9")}


def test_monitors_fire_on_jumps_beyond_history_only():
    history = {"at": [past(), past()]}
    assert detect([profile("at")], history, DEFAULTS) == []
    weekday = profile("at", pattern_share=0.0, top_shape="9-9-9 z 9:9")
    assert [a.monitor for a in detect([weekday], history, DEFAULTS)] == ["pattern_share"]
    excel = profile("at", pattern_share=0.0, year_median=1964, avg_length=14.0)
    fired = {a.monitor for a in detect([excel], history, DEFAULTS)}
    assert fired == {"pattern_share", "year_shift", "length"}
    emptied = profile("at", nulls=100, pattern_share=None, year_median=None, avg_length=None)
    assert [a.monitor for a in detect([emptied], history, DEFAULTS)] == ["null_share"]
    # no history, or a batch too small to judge: profiled, not judged
    assert detect([weekday], {}, DEFAULTS) == []
    assert detect([profile("at", rows=5, pattern_share=0.0)], history, DEFAULTS) == []
