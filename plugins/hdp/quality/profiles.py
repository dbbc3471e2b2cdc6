"""Column profiles and their anomaly monitors (issue 15 item 3): per batch and column, the null
share, distinct count, lengths, min and max, the most frequent shape, the share matching the
column's pattern and, for date-like columns, the years; stored in audit.column_profile and
compared with the column's history (the profiles of its last published batches).

A shape is a value with every run of digits written `9`, of Latin letters `a`, of any other
script `z` (`2018-01-01` → `9-9-9`, `2018-01-01 星期五` → `9-9-9 z`, `10/23/64 21:09` →
`9/9/9 9:9`, `4.40E+17` → `9.9a+9`): it says how a value is written, never what it is. The
column's pattern is the one its catalogue declares (a `profile.pattern_share` entry with a
`pattern` regex for that column), else the shape its history wrote most often, else (a first
batch) the batch's own most frequent shape. So a column whose dates gain a weekday suffix, or
whose values went through a spreadsheet, drops from ~100% to ~0% matching without any
declaration.

One SQL statement per batch table reads its rows once (a materialised CTE shapes each value,
the aggregates read it); no scan per column. Nothing of a row is kept but these statistics, and
a column that is or looks like an identifier (by its name, or long digit/letter runs, or other
scripts: free text may hold names) keeps shape statistics only: no min, max or years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median

from psycopg2 import sql

from hdp.quality.checks import Check

HISTORY_BATCHES = 7  # a column's history: the profiles of its last published batches
# shapes, pattern shares and years come from up to this many rows of a batch (a deterministic
# sample of larger ones: shaping every value was half the gate's time on 100,000 rows)
SAMPLE_ROWS = 20_000
MIN_ROWS = 20  # a batch with fewer non-empty values of a column is profiled, not judged
# defaults when the catalogue has no profile entry for a monitor (expectations/defaults.yml
# has them all; these keep a source catalogue without defaults honest)
DEFAULT_THRESHOLDS = {"null_share": 0.5, "pattern_share": 0.5, "year_shift": 50, "length": 0.3}

# names of columns that identify a person or a record (pinyin initials too: xm 姓名, sfzh
# 身份证号, dh 电话): their values are never stored, whatever they look like
IDENTIFIER_NAME = re.compile(
    r"(^|_)(id|ids|no|nbr|num|number|key|code|card|mrn|ssn|phone|mobile|tel|name|names|address|"
    r"addr|email|birth|dob|xm|sfz|sfzh|dh|brid|bah)(_|$)|birth|idcard|id_card|patient|person",
    re.IGNORECASE,
)
NUMERIC_SHAPES = ("9", "-9", "9.9", "-9.9")
SHORT_NUMBER = 8  # a number of this many characters or more may be an identifier (a card, a phone)
SHAPE_LENGTH = 40


@dataclass(frozen=True)
class ColumnProfile:
    column: str
    rows: int
    nulls: int  # null or blank
    distinct_count: int
    min_length: int | None
    max_length: int | None
    avg_length: float | None
    top_shape: str | None
    top_shape_share: float | None
    pattern: str | None  # the shape (or declared regex) the column was compared with
    pattern_share: float | None
    dated_share: float | None  # share of non-empty values from which a year was read
    year_min: int | None
    year_median: int | None
    year_max: int | None
    min_value: str | None  # None for an identifier-like column
    max_value: str | None
    is_identifier: bool

    @property
    def filled(self) -> int:
        return self.rows - self.nulls

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def is_dated(self) -> bool:
        return bool(self.dated_share and self.dated_share >= 0.5)


@dataclass(frozen=True)
class Anomaly:
    """A monitor that fired: the column, what history allowed and what the batch showed."""

    check: Check | None
    monitor: str
    column: str
    observed: str
    expected: str

    @property
    def check_id(self) -> str:
        return self.check.id if self.check else f"profile.{self.monitor}"

    @property
    def severity(self) -> str:
        return self.check.severity if self.check else "warn"


def shape_sql(value: sql.Composable) -> sql.Composable:
    """SQL of a text value's shape (see the module docstring); null for null."""
    return sql.SQL(
        "left(regexp_replace(regexp_replace(regexp_replace(regexp_replace({v}, "
        "'[0-9]+', '9', 'g'), '[A-Za-z]+', 'a', 'g'), '[^ -~]+', 'z', 'g'), '\\s+', ' ', 'g'), "
        "{n})"
    ).format(v=value, n=sql.Literal(SHAPE_LENGTH))


def year_sql(value: sql.Composable, shape: sql.Composable) -> sql.Composable:
    """SQL of the year a date-like text value names: a leading 4-digit year (ISO, 2018/1/2), a
    trailing one (1/2/2018), or a spreadsheet's two-digit year (`10/23/64`: 1930-2029, as Excel
    reads it; the century the source meant is lost). Null for anything else."""
    return sql.SQL(
        "case when {s} ~ '^9[-/.]9[-/.]9' then case "
        "when {v} ~ '^[0-9]{{4}}[-/.]' then substring({v} from '^([0-9]{{4}})')::int "
        "when {v} ~ '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{4}}' "
        "then substring({v} from '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.]([0-9]{{4}})')::int "
        "when {v} ~ '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{2}}([^0-9]|$)' then "
        "substring({v} from '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.]([0-9]{{2}})')::int "
        "+ case when substring({v} from '^[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.]([0-9]{{2}})')::int"
        " < 30 then 2000 else 1900 end "
        "end end"
    ).format(v=value, s=shape)


def looks_like_identifier(name: str, top_shape: str | None, max_length: int | None) -> bool:
    """A column whose values may identify someone: by its name, or by its values' shape (long
    runs of digits or letters, another script: a name, an address, free text)."""
    if IDENTIFIER_NAME.search(name):
        return True
    if top_shape is None:
        return False
    if "z" in top_shape:
        return True
    length = max_length or 0
    if top_shape in NUMERIC_SHAPES:
        return length >= SHORT_NUMBER
    return not re.match(r"^9[-/.]9[-/.]9", top_shape) and length >= SHORT_NUMBER


def profile_query(
    schema: str,
    table: str,
    columns: list[str],
    patterns: dict[str, tuple[str, str]],
    *,
    skip_malformed: bool,
    sample: int = 65536,
) -> tuple[sql.Composable, list]:
    """The one statement that profiles a batch (parameters: the batch id, then the patterns).
    `patterns`: column → ("shape", s) or ("regex", r): what the pattern share counts.
    `sample`: of 65536, the share of rows whose values are shaped (the shape, pattern share and
    years come from those; counts, lengths, distinct values, min and max from every row)."""
    mode_cols, aggregates = [], []
    params: list = []
    for i, column in enumerate(columns):
        v, s = sql.Identifier(f"v{i}"), sql.Identifier(f"s{i}")
        mode_cols.append(
            sql.SQL("mode() within group (order by {s}) as {m}").format(
                s=s, m=sql.Identifier(f"m{i}")
            )
        )
        kind, pattern = patterns.get(column, ("mode", ""))
        if kind == "regex":
            matches = sql.SQL("count({s}) filter (where {v} ~ %s)").format(v=v, s=s)
            params.append(pattern)
        elif kind == "shape":
            matches = sql.SQL("count({s}) filter (where {s} = %s)").format(s=s)
            params.append(pattern)
        else:
            matches = sql.SQL("count({s}) filter (where {s} = modes.{m})").format(
                s=s, m=sql.Identifier(f"m{i}")
            )
        year = year_sql(v, s)
        numeric = sql.SQL(
            "case when {s} in ('9', '-9', '9.9', '-9.9') then {v}::numeric end"
        ).format(s=s, v=v)
        aggregates.append(
            sql.SQL(
                "count({v}), count({s}), count(distinct {v}), min(length({v})), "
                "max(length({v})), avg(length({v}))::float8, modes.{m}, "
                "count({s}) filter (where {s} = modes.{m}), {matches}, "
                "count({year}), min({year}), "
                "percentile_disc(0.5) within group (order by {year}), max({year}), "
                "min({v}), max({v}), min({num})::text, max({num})::text"
            ).format(
                v=v,
                s=s,
                m=sql.Identifier(f"m{i}"),
                matches=matches,
                year=year,
                num=numeric,
            )
        )
    where = sql.SQL("_batch_id = %s")
    if skip_malformed:
        where += sql.SQL(" and not coalesce(_malformed, false)")

    def value(column: str) -> sql.Composable:
        return sql.SQL("nullif(btrim(r.{}::text), '')").format(sql.Identifier(column))

    query = sql.SQL(
        "with shaped as materialized (select {shaped} from (select *, "
        "(hashtext(ctid::text) & 65535) < {sample} as sampled from {schema}.{table} "
        "where {where}) as r), "
        "modes as (select {modes} from shaped) "
        "select count(*), {aggregates} from shaped cross join modes group by {group}"
    ).format(
        shaped=sql.SQL(", ").join(
            sql.SQL("{} as {}, case when r.sampled then {} end as {}").format(
                value(c),
                sql.Identifier(f"v{i}"),
                shape_sql(value(c)),
                sql.Identifier(f"s{i}"),
            )
            for i, c in enumerate(columns)
        ),
        sample=sql.Literal(int(sample)),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
        where=where,
        modes=sql.SQL(", ").join(mode_cols),
        aggregates=sql.SQL(", ").join(aggregates),
        group=sql.SQL(", ").join(
            sql.SQL("modes.{}").format(sql.Identifier(f"m{i}")) for i in range(len(columns))
        ),
    )
    return query, params


def _profiles_of(row: tuple, columns: list[str], patterns: dict[str, tuple[str, str]]):
    rows = int(row[0])
    out = []
    width = 17
    for i, column in enumerate(columns):
        (
            filled,
            shaped,
            distinct,
            min_len,
            max_len,
            avg_len,
            top,
            top_n,
            matching,
            dated,
            y_min,
            y_med,
            y_max,
            t_min,
            t_max,
            n_min,
            n_max,
        ) = row[1 + i * width : 1 + (i + 1) * width]
        identifier = looks_like_identifier(column, top, max_len)
        numeric = top in NUMERIC_SHAPES
        kind, pattern = patterns.get(column, ("mode", top))
        out.append(
            ColumnProfile(
                column=column,
                rows=rows,
                nulls=rows - int(filled),
                distinct_count=int(distinct),
                min_length=min_len,
                max_length=max_len,
                avg_length=avg_len,
                top_shape=top,
                top_shape_share=top_n / shaped if shaped else None,
                pattern=pattern if kind != "mode" else top,
                pattern_share=matching / shaped if shaped else None,
                dated_share=dated / shaped if shaped else None,
                year_min=None if identifier else y_min,
                year_median=None if identifier else y_med,
                year_max=None if identifier else y_max,
                min_value=None if identifier else (n_min if numeric else t_min),
                max_value=None if identifier else (n_max if numeric else t_max),
                is_identifier=identifier,
            )
        )
    return out


def history(wh, source: str, table: str, before_batch: int) -> dict[str, list[dict]]:
    """column → the profiles (as dicts) of its last HISTORY_BATCHES published batches."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select p.column_name, p.rows, p.nulls, p.avg_length, p.top_shape, p.pattern,
                p.pattern_share, p.dated_share, p.year_median
            from (
                select p.*, row_number() over (
                    partition by p.column_name order by p.batch_id desc) as n
                from audit.column_profile as p
                inner join audit.load_batch as b on b.batch_id = p.batch_id
                where p.source = %s and p.table_name = %s and p.batch_id < %s
                  and b.status = 'published'
            ) as p
            where p.n <= %s
            order by p.column_name, p.batch_id desc
            """,
            (source, table, before_batch, HISTORY_BATCHES),
        )
        names = [d[0] for d in cur.description]
        found: dict[str, list[dict]] = {}
        for row in cur.fetchall():
            found.setdefault(row[0], []).append(dict(zip(names, row, strict=True)))
    wh.rollback()
    return found


def monitor_checks(checks: list[Check]) -> dict[tuple[str, str | None], Check]:
    """(monitor, column or None) → its catalogue entry (level profile)."""
    return {(c.monitor or "", c.column): c for c in checks if c.level == "profile"}


def _entry(entries: dict, monitor: str, column: str) -> Check | None:
    return entries.get((monitor, column)) or entries.get((monitor, None))


def patterns_for(
    columns: list[str], entries: dict, past: dict[str, list[dict]]
) -> dict[str, tuple[str, str]]:
    """What each column's pattern share counts: a declared regex, else the shape its history
    wrote most often; a column without either is compared with the batch's own top shape."""
    out: dict[str, tuple[str, str]] = {}
    for column in columns:
        declared = entries.get(("pattern_share", column))
        if declared is not None and declared.kwargs.get("pattern"):
            out[column] = ("regex", str(declared.kwargs["pattern"]))
            continue
        shapes = [h["top_shape"] for h in past.get(column, []) if h["top_shape"]]
        if shapes:
            out[column] = ("shape", max(set(shapes), key=shapes.count))
    return out


def profile_batch(
    wh, *, batch_id: int, source: str, table: str, checks: list[Check]
) -> tuple[list[ColumnProfile], dict[str, list[dict]]]:
    """Profile one batch of raw_<source>.<table> (one statement) and return its profiles with
    the columns' history (read before this batch is stored)."""
    schema = f"raw_{source}"
    with wh.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, table),
        )
        names = [c for (c,) in cur.fetchall()]
    wh.rollback()
    columns = [c for c in names if not c.startswith("_")]
    past = history(wh, source, table, batch_id)
    patterns = patterns_for(columns, monitor_checks(checks), past)
    with wh.cursor() as cur:
        cur.execute("select rows_read from audit.load_batch where batch_id = %s", (batch_id,))
        found = cur.fetchone()
    rows = int(found[0] or 0) if found else 0
    sample = 65536 if rows <= SAMPLE_ROWS else max(1, 65536 * SAMPLE_ROWS // rows)
    query, params = profile_query(
        schema, table, columns, patterns, skip_malformed="_malformed" in names, sample=sample
    )
    with wh.cursor() as cur:
        cur.execute(query, [batch_id, *params])
        row = cur.fetchone()
    wh.rollback()
    if row is None:  # no row in the batch
        return [], past
    return _profiles_of(row, columns, patterns), past


def detect(
    profiles: list[ColumnProfile], past: dict[str, list[dict]], checks: list[Check]
) -> list[Anomaly]:
    """The monitors that fire: a jump beyond what the column's history allows."""
    entries = monitor_checks(checks)
    found: list[Anomaly] = []
    for p in profiles:
        hist = past.get(p.column) or []
        if not hist or p.rows < MIN_ROWS:
            continue

        def limit(monitor: str, p=p) -> tuple[Check | None, float]:
            check = _entry(entries, monitor, p.column)
            if check is not None and check.threshold is not None:
                return check, float(check.threshold)
            return check, float(DEFAULT_THRESHOLDS[monitor])

        check, t = limit("null_share")
        was = max(h["nulls"] / h["rows"] for h in hist if h["rows"])
        if p.null_share - was > t:
            found.append(
                Anomaly(
                    check,
                    "null_share",
                    p.column,
                    f"{p.null_share:.0%} empty",
                    f"at most {was:.0%} + {t:.0%} (the last {len(hist)} batches)",
                )
            )
        if p.filled < MIN_ROWS:
            continue
        check, t = limit("pattern_share")
        shares = [h["pattern_share"] for h in hist if h["pattern_share"] is not None]
        if shares and p.pattern_share is not None:
            was = min(shares)
            if was - p.pattern_share > t:
                found.append(
                    Anomaly(
                        check,
                        "pattern_share",
                        p.column,
                        f"{p.pattern_share:.0%} match {p.pattern!r} (now mostly {p.top_shape!r})",
                        f"at least {was:.0%} - {t:.0%} (the last {len(hist)} batches)",
                    )
                )
        check, t = limit("year_shift")
        years = [
            h["year_median"]
            for h in hist
            if h["year_median"] is not None and (h["dated_share"] or 0) >= 0.5
        ]
        if years and p.is_dated and p.year_median is not None:
            was_year = median(years)
            if abs(p.year_median - was_year) >= t:
                found.append(
                    Anomaly(
                        check,
                        "year_shift",
                        p.column,
                        f"median year {p.year_median}",
                        f"within {t:g} years of {was_year:g} (the last {len(hist)} batches)",
                    )
                )
        check, t = limit("length")
        lengths = [h["avg_length"] for h in hist if h["avg_length"]]
        if lengths and p.avg_length:
            was = sum(lengths) / len(lengths)
            if abs(p.avg_length - was) / was > t:
                found.append(
                    Anomaly(
                        check,
                        "length",
                        p.column,
                        f"mean length {p.avg_length:.1f}",
                        f"within {t:.0%} of {was:.1f} (the last {len(hist)} batches)",
                    )
                )
    return found


def store(wh, *, batch_id: int, source: str, table: str, profiles: list[ColumnProfile]) -> None:
    """Replace the batch's profiles in audit.column_profile (the caller commits)."""
    with wh.cursor() as cur:
        cur.execute("delete from audit.column_profile where batch_id = %s", (batch_id,))
        cur.executemany(
            """
            insert into audit.column_profile (batch_id, source, table_name, column_name, rows,
                nulls, distinct_count, min_length, max_length, avg_length, top_shape,
                top_shape_share, pattern, pattern_share, dated_share, year_min, year_median,
                year_max, min_value, max_value, is_identifier)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                %s, %s, %s)
            """,
            [
                (
                    batch_id,
                    source,
                    table,
                    p.column,
                    p.rows,
                    p.nulls,
                    p.distinct_count,
                    p.min_length,
                    p.max_length,
                    p.avg_length,
                    p.top_shape,
                    p.top_shape_share,
                    p.pattern,
                    p.pattern_share,
                    p.dated_share,
                    p.year_min,
                    p.year_median,
                    p.year_max,
                    p.min_value,
                    p.max_value,
                    p.is_identifier,
                )
                for p in profiles
            ],
        )


@dataclass(frozen=True)
class ProfileAnomaly:
    """A monitor that fired, as the Data quality page and the run summary list it."""

    batch_id: int
    source: str
    table: str
    column: str
    check_id: str
    status: str  # warn | fail
    observed: str
    run_id: str


def recent_anomalies(wh, limit: int = 20, run_id: str | None = None) -> list[ProfileAnomaly]:
    """The latest profile monitors that fired (of one DAG run's batches, when run_id is given)."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select r.batch_id, r.source, r.table_name, r.column_name, r.check_id, r.status,
                r.observed_value, b.run_id
            from audit.quality_result as r
            inner join audit.load_batch as b on b.batch_id = r.batch_id
            where r.check_name = 'profile_monitor' and r.status in ('warn', 'fail')
              and (%s::text is null or b.run_id = %s or left(b.run_id, length(%s) + 1) = %s || ':')
            order by r.batch_id desc, r.column_name, r.check_id
            limit %s
            """,
            (run_id, run_id, run_id, run_id, limit),
        )
        found = [ProfileAnomaly(*row) for row in cur.fetchall()]
    wh.rollback()
    return found


def trend(
    wh, source: str, table: str, column: str, batches: int = 10
) -> list[tuple[int, float, float | None]]:
    """(batch id, empty share, pattern share) of a column's last profiles, oldest first."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select batch_id, case when rows > 0 then nulls::float8 / rows else 0 end,
                pattern_share
            from audit.column_profile
            where source = %s and table_name = %s and column_name = %s
            order by batch_id desc limit %s
            """,
            (source, table, column, batches),
        )
        found = cur.fetchall()
    wh.rollback()
    return list(reversed(found))
