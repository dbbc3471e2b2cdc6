"""Dates: parsed, or quarantined by the gate with check id and column, never a silent null
(issue 15, part A). One table of examples is held against the warehouse's parser, staging's
macro as dbt renders it and the gate's generated row checks; a generic test walks every staging
model and, for each column it parses with parse_cn_date, asserts that non-empty input values =
parsed values + values the gate quarantines (real PostgreSQL)."""

from __future__ import annotations

import re
from datetime import date, datetime

import jinja2
import pytest
from psycopg2 import sql

from hdp.config import REPO_ROOT
from hdp.quality.checks import for_table, load_catalogue
from hdp.warehouse.database import connect

MACROS = REPO_ROOT / "dbt_project" / "macros"
STAGING = REPO_ROOT / "dbt_project" / "models" / "staging"
EXPECTATIONS = REPO_ROOT / "expectations"

# text as delivered -> the date it means (None: it means none and must be quarantined);
# not from a simulator: the shapes seen in real exports
EXAMPLES: list[tuple[str, date | None]] = [
    ("2018-01-01", date(2018, 1, 1)),
    ("2018/1/2", date(2018, 1, 2)),
    ("20180103", date(2018, 1, 3)),
    ("2018.1.4", date(2018, 1, 4)),
    (" 2018-01-05 ", date(2018, 1, 5)),
    ("２０１８－０１－０６", date(2018, 1, 6)),  # full-width, typed by an input method
    ("2018-01-01 星期一", date(2018, 1, 1)),  # a weekday suffix: Monday, and it is one
    ("2018-01-05 星期五", date(2018, 1, 5)),
    ("2018-01-07 星期日", date(2018, 1, 7)),
    ("2018-01-07星期天", date(2018, 1, 7)),
    ("2018/1/3 周三", date(2018, 1, 3)),
    ("2018-01-04（周四）", date(2018, 1, 4)),
    ("2018-01-05 Fri", date(2018, 1, 5)),
    ("2018-01-06 Saturday", date(2018, 1, 6)),
    ("2018-01-01 星期五", date(2018, 1, 1)),  # parses; its weekday contradicts (flagged)
    ("2016-02-29", date(2016, 2, 29)),
    ("2018-02-29", None),  # not a leap year
    ("2018-04-31", None),
    ("2018-13-01", None),
    ("0000-01-01", None),
    ("2018-1/2", None),  # two separators
    ("2018-01-01 星期八", None),
    ("2018-01-01 Funday", None),
    ("10/23/64", None),  # Excel's rewrite: the century is lost, nothing to guess
    ("unknown", None),
    ("-", None),
]
EMPTY = ["", "   "]  # empty input is missing, not unparseable: neither parsed nor quarantined
CONTRADICTING = {"2018-01-01 星期五"}


def render_macro(call: str) -> str:
    """A staging macro call rendered as dbt renders it, from the project's macro files."""
    env = jinja2.Environment(  # SQL, not HTML: dbt renders without escaping too
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.do"],
        autoescape=False,  # noqa: S701
    )
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(MACROS.glob("*.sql")))
    module = env.from_string(text).make_module()
    return env.from_string("{{ " + call + " }}").render(
        **{n: getattr(module, n) for n in dir(module) if not n.startswith("_")}
    )


PARSING_MACROS = {"parse_cn_date": "date", "parse_cn_timestamp": "timestamp"}


def staging_parsed_columns() -> list[tuple[str, str, str, str, str]]:
    """(model, source, raw table, column, type) of every parse_cn_date / parse_cn_timestamp
    call on a raw column in a staging model (a call on an expression, as in the mapping layer,
    is not a raw column)."""
    found = []
    for path in sorted(STAGING.rglob("stg_*.sql")):
        text = path.read_text(encoding="utf-8")
        source = re.search(r"published_rows\('raw_(\w+)',\s*'(\w+)'", text)
        for macro, column in re.findall(r"(parse_cn_date|parse_cn_timestamp)\('(\w+)'\)", text):
            assert source, f"{path.name} parses {column} but reads no published_rows()"
            found.append(
                (path.stem, source.group(1), source.group(2), column, PARSING_MACROS[macro])
            )
    return found


@pytest.fixture(scope="module")
def warehouse(pg_admin_dsn):
    """One empty platform for the module: these tests only call the warehouse's functions on
    temporary tables (resetting the platform per test would cost ~8 s each)."""
    from hdp_sim.sources import logins
    from tests.conftest import reset_platform_databases

    reset_platform_databases(pg_admin_dsn)
    conn = connect(logins().warehouse)
    yield conn
    conn.close()


def _values_table(cur, column: str, values: list[str]) -> None:
    cur.execute(
        sql.SQL("create temp table delivered ({} text) on commit drop").format(
            sql.Identifier(column)
        )
    )
    cur.executemany("insert into delivered values (%s)", [(v,) for v in values])


def _assert_one_verdict(wh, column: str, parser: str, check, examples) -> None:
    """The function audit.<parser> (the gate's), the macro <parser> (staging's) and the gate's
    generated check agree on every example: the value it parses to, or null and quarantined;
    an empty value is null and not quarantined."""
    staged = render_macro(f"{parser}('{column}')")
    try:
        with wh.cursor() as cur:
            _values_table(cur, column, [v for v, _ in examples] + EMPTY)
            cur.execute(
                sql.SQL("select {col}, audit.{fn}({col}), ")
                .format(col=sql.Identifier(column), fn=sql.Identifier(parser))
                .as_string(cur)
                + f"{staged}, ({check.fails_when}) from delivered"
            )
            got = {v: (fn, macro, bool(q)) for v, fn, macro, q in cur.fetchall()}
    finally:
        wh.rollback()
    for text, expected in examples:
        assert got[text] == (expected, expected, expected is None), text
    for text in EMPTY:
        assert got[text] == (None, None, False), repr(text)


def test_the_parser_staging_and_the_gate_agree_on_every_example(warehouse):
    """audit.parse_cn_date (the gate's), the parse_cn_date macro (staging's) and the gate's
    generated check on his.patients.birth_date give one verdict per example."""
    check = next(
        c
        for c in for_table(load_catalogue(EXPECTATIONS, "his"), "patients")
        if c.column == "birth_date" and c.severity == "quarantine" and c.parses == "date"
    )
    _assert_one_verdict(warehouse, "birth_date", "parse_cn_date", check, EXAMPLES)


def test_a_weekday_that_contradicts_the_date_is_a_named_warning(warehouse):
    """2018-01-01 was a Monday: '2018-01-01 星期五' parses to its date and is flagged by a warn
    check of its own; a matching or absent weekday is not."""
    check = next(
        c
        for c in for_table(load_catalogue(EXPECTATIONS, "his"), "patients")
        if c.id == "his.patients.birth_date_weekday_matches"
    )
    assert (check.severity, check.column) == ("warn", "birth_date")
    wh = warehouse
    try:
        with wh.cursor() as cur:
            _values_table(cur, "birth_date", [v for v, _ in EXAMPLES] + EMPTY)
            cur.execute(f"select birth_date from delivered where {check.fails_when}")
            flagged = {v for (v,) in cur.fetchall()}
    finally:
        wh.rollback()
    assert flagged == CONTRADICTING


# a real export's dates: a weekday after each, and a few impossible or garbled ones
WEEKDAY_FIXTURE = [f"2018-01-{d:02d} 星期{'一二三四五六日'[(d - 1) % 7]}" for d in range(1, 29)]
WEEKDAY_FIXTURE += ["2018-02-29 星期四", "2019-02-30", "not a date", "", " "]
# the same as times: a weekday between date and time
TIME_FIXTURE = [f"{v} 08:{i:02d}" if v.strip() else v for i, v in enumerate(WEEKDAY_FIXTURE)]
FIXTURES = {"date": WEEKDAY_FIXTURE, "timestamp": TIME_FIXTURE}


@pytest.mark.parametrize(
    ("model", "source", "table", "column", "parsed_as"),
    staging_parsed_columns(),
    ids=str,
)
def test_every_staging_parse_is_parsed_or_recorded_by_the_gate(
    warehouse, model, source, table, column, parsed_as
):
    """Non-empty input values = values staging parses + values the gate records as row issues
    (quarantined; or, where the catalogue says warn, counted and flagged by staging), for every
    column a staging model parses from text into a date or a time (weekday-suffixed fixture)."""
    checks = [
        c
        for c in for_table(load_catalogue(EXPECTATIONS, source), table)
        if c.level == "row" and c.column == column and c.parses == parsed_as
    ]
    macro = next(m for m, t in PARSING_MACROS.items() if t == parsed_as)
    staged = render_macro(f"{macro}('{column}')")
    col = f'"{column}"'  # a staging model's column name: \w+ (staging_parsed_columns)
    condition = " or ".join(f"({c.fails_when})" for c in checks) or "false"
    wh = warehouse
    try:
        with wh.cursor() as cur:
            _values_table(cur, column, FIXTURES[parsed_as])
            cur.execute(
                f"select count(*) filter (where nullif(btrim({col}), '') is not null), "
                f"count({staged}), count(*) filter (where {condition}) from delivered"
            )
            non_empty, parsed, recorded = cur.fetchone()
    finally:
        wh.rollback()
    assert (non_empty, parsed, recorded) == (31, 28, 3), (
        f"{model}.{column} ({source}.{table}, {parsed_as}): {non_empty} non-empty values, "
        f"{parsed} parsed, {recorded} recorded by the gate's checks {[c.id for c in checks]}"
    )


def test_the_generic_test_sees_every_staging_parse():
    """The walk finds the columns staging parses (a regex that found none would pass), and no
    staging model casts a text column to a time by itself (outside the one definition)."""
    found = {(s, t, c) for _, s, t, c, _ in staging_parsed_columns()}
    assert {
        ("his", "patients", "birth_date"),
        ("hisb", "brxx", "csrq"),
        ("hisb", "mzgh", "ghsj"),
        ("lis", "results", "collected_at"),
        ("lis", "results", "reported_at"),
    } <= found
    for path in sorted(STAGING.rglob("stg_*.sql")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"trim\(\w+\)::(date|timestamp)", text), path.name


# time as typed -> what it means (None: quarantined or flagged by the gate)
TIME_EXAMPLES: list[tuple[str, datetime | None]] = [
    ("2024-01-02 08:30:05", datetime(2024, 1, 2, 8, 30, 5)),
    ("2024/1/2 8:30", datetime(2024, 1, 2, 8, 30)),
    (" 2024-01-05T09:30 ", datetime(2024, 1, 5, 9, 30)),
    ("２０２４-０１-０５ ０９:３０:１５", datetime(2024, 1, 5, 9, 30, 15)),
    ("20240102083005", datetime(2024, 1, 2, 8, 30, 5)),
    ("202401020830", datetime(2024, 1, 2, 8, 30)),
    ("2024-1-5  9:30:00", datetime(2024, 1, 5, 9, 30)),
    ("2024/01/05", datetime(2024, 1, 5)),
    ("2024-01-05 星期五", datetime(2024, 1, 5)),
    ("2024-01-05 星期五 09:30", datetime(2024, 1, 5, 9, 30)),
    ("2024-01-05 Fri 09:30", datetime(2024, 1, 5, 9, 30)),
    ("2024-02-30 09:30:00", None),
    ("24-1-5 9:30", None),  # a two-digit year
    ("2024-13-05 09:30", None),
    ("2024-01-05 24:10", None),
    ("2024-01-05 09:60", None),
    ("05/01/2024 09:30", None),
    ("2024-01-05 09:30 extra", None),
    ("2024-01-05 09:30:00.123", None),
]


def test_times_agree_between_the_parser_staging_and_the_gate(warehouse):
    """audit.parse_cn_timestamp, the parse_cn_timestamp macro and the gate's generated
    `parses: timestamp` check give one verdict per example."""
    check = next(
        c
        for c in for_table(load_catalogue(EXPECTATIONS, "lis"), "results")
        if c.column == "collected_at" and c.parses == "timestamp"
    )
    assert check.severity == "quarantine"
    _assert_one_verdict(warehouse, "collected_at", "parse_cn_timestamp", check, TIME_EXAMPLES)
