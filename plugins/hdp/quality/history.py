"""Quality history: the latest verdict per source table, trends, and run-over-run comparison.

A failing check is *new* when the table's previous gated batch passed it, *persisting* when it
failed there too, and a check that failed on the previous batch and passes now is *resolved*.
Everything here is counts and check names: no row value ever leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TableQuality:
    source: str
    table: str
    batch_id: int
    status: str
    rows: int | None
    finished_at: object
    checks_passed: int
    checks_failed: int


@dataclass(frozen=True)
class CheckChange:
    source: str
    table: str
    check: str
    column: str | None
    change: str  # new | persisting | resolved
    observed: str | None


# A check *fails* when it blocked its batch, or warned at batch level. Row-level results (rows
# quarantined or flagged) are reported per check in the quarantine section instead: a few bad
# rows a day are routine, not a change to review.
FAILING = (
    "coalesce(q.status = 'fail' or (q.status = 'warn' and q.check_name <> 'row_check'), "
    "not q.success)"
)

LATEST = """
with gated as (
    select b.*, row_number() over (
        partition by b.source, b.table_name order by b.batch_id desc) as recency
    from audit.load_batch b
    where b.status in ('passed', 'published', 'withheld', 'rejected', 'failed', 'loaded', 'held')
)
select g.source, g.table_name, g.batch_id, g.status, g.rows_written, g.finished_at,
    count(q.*) filter (where not {failing}), count(q.*) filter (where {failing})
from gated g
left join audit.quality_result q using (batch_id)
where g.recency = 1
group by 1, 2, 3, 4, 5, 6
order by 1, 2
"""

CHANGES = """
with gated as (
    select b.batch_id, b.source, b.table_name, row_number() over (
        partition by b.source, b.table_name order by b.batch_id desc) as recency
    from audit.load_batch b
    where exists (select 1 from audit.quality_result q where q.batch_id = b.batch_id)
),
current_run as (
    select g.source, g.table_name, q.check_name, q.check_id, q.column_name,
        not {failing} as success, q.observed_value
    from gated g join audit.quality_result q using (batch_id) where g.recency = 1
),
previous_run as (
    select g.source, g.table_name, q.check_name, q.check_id, q.column_name,
        not {failing} as success
    from gated g join audit.quality_result q using (batch_id) where g.recency = 2
)
select c.source, c.table_name, c.check_name, c.column_name,
    case
        when not c.success and coalesce(p.success, true) then 'new'
        when not c.success then 'persisting'
        else 'resolved'
    end as change,
    c.observed_value
from current_run c
left join previous_run p
    on p.source = c.source and p.table_name = c.table_name
    and p.check_name = c.check_name
    and p.check_id is not distinct from c.check_id  -- profile monitors share a check name
    and p.column_name is not distinct from c.column_name
where not c.success or (c.success and p.success is false)
order by 5, 1, 2, 3
"""

TREND = """
select source, table_name, batch_id, status, rows_written, finished_at,
    (select count(*) from audit.quality_result q
     where q.batch_id = b.batch_id and {failing}) as failed
from (
    select b.*, row_number() over (
        partition by source, table_name order by batch_id desc) as recency
    from audit.load_batch b
) b
where recency <= %s
order by source, table_name, batch_id
"""


def latest(wh) -> list[TableQuality]:
    with wh.cursor() as cur:
        cur.execute(LATEST.format(failing=FAILING))
        rows = [TableQuality(*r) for r in cur.fetchall()]
    wh.rollback()
    return rows


def changes(wh) -> list[CheckChange]:
    with wh.cursor() as cur:
        cur.execute(CHANGES.format(failing=FAILING))
        rows = [CheckChange(*r) for r in cur.fetchall()]
    wh.rollback()
    return rows


def trend(wh, last: int = 10) -> dict[tuple[str, str], list[tuple[int, str, int | None, int]]]:
    """Per table, the last `last` batches: (batch_id, status, rows, failed checks)."""
    with wh.cursor() as cur:
        cur.execute(TREND.format(failing=FAILING), (last,))
        out: dict[tuple[str, str], list[tuple[int, str, int | None, int]]] = {}
        for source, table, batch_id, status, rows, _finished, failed in cur.fetchall():
            out.setdefault((source, table), []).append((batch_id, status, rows, failed))
    wh.rollback()
    return out


QUARANTINE = """
select source, table_name, check_id, category,
    count(*) filter (where action = 'quarantine' and released_at is null) as held,
    count(*) filter (where action = 'quarantine' and released_at is not null) as released,
    count(*) filter (where action = 'warn') as warned
from audit.row_issue
group by 1, 2, 3, 4
order by 1, 2, 3
"""


def quarantine(wh) -> list[tuple[str, str, str, str, int, int, int]]:
    """Per check: rows held in quarantine, released by replay, and flagged (warn)."""
    with wh.cursor() as cur:
        cur.execute(QUARANTINE)
        rows = cur.fetchall()
    wh.rollback()
    return rows


def run_batches(wh, run_id: str) -> list[tuple[str, str, str, int | None, int | None, str | None]]:
    """The batches of one DAG run: (source, table, status, rows, quarantined, failed checks)."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select source, table_name, status, rows_written, rows_quarantined, error
            from audit.load_batch where run_id = %s order by source, table_name
            """,
            (run_id,),
        )
        rows = cur.fetchall()
    wh.rollback()
    return rows


CLEANING = """
select rule_id, table_name, column_name, fixes, rows_checked, values_changed
from marts.mart_cleaning_rule_counts
where built_at = (select max(built_at) from marts.mart_cleaning_rule_counts)
order by rule_id
"""


def cleaning_counts(wh) -> list[tuple[str, str, str, str, int, int]]:
    """Values each cleaning rule changed, at the latest dbt build (empty before the first)."""
    with wh.cursor() as cur:
        cur.execute(
            "select to_regclass('marts.mart_cleaning_rule_counts') is not null "
            "and has_table_privilege('marts.mart_cleaning_rule_counts', 'select')"
        )
        if not cur.fetchone()[0]:
            wh.rollback()
            return []
        cur.execute(CLEANING)
        rows = cur.fetchall()
    wh.rollback()
    return rows


@dataclass(frozen=True)
class RefusedFile:
    source: str
    file_name: str
    reason: str | None  # the refusal's message: names fields and lines, never a value
    refused_at: datetime


def refused_files(wh, limit: int = 20) -> list[RefusedFile]:
    """The latest refused deliveries, newest first (audit.refused_file: nothing of them was
    loaded; the sender re-sends, a new content loads as a new delivery)."""
    with wh.cursor() as cur:
        cur.execute(
            "select source, file_name, reason, refused_at from audit.refused_file "
            "order by refused_at desc, source, file_name limit %s",
            (limit,),
        )
        rows = [RefusedFile(*row) for row in cur.fetchall()]
    wh.rollback()
    return rows
