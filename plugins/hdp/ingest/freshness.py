"""Freshness per source: has the source delivered by its deadline?

A source *delivers* when an extract reads at least one row from it. The ingest DAG checks after
every extract that the last delivery is younger than the manifest's `freshness_hours`; a stale
source is recorded in audit.freshness_check (shown on the Data quality page) and fails the
DAG's `freshness` task, whose failure callback sends the alert (hdp.orchestration.notify).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Freshness:
    source: str
    last_delivery: datetime | None
    age_hours: float | None
    max_age_hours: float

    @property
    def is_stale(self) -> bool:
        return self.age_hours is None or self.age_hours > self.max_age_hours

    def message(self) -> str:
        if self.last_delivery is None:
            return f"source {self.source} has never delivered a row"
        state = "STALE" if self.is_stale else "fresh"
        return (
            f"source {self.source} is {state}: last delivery {self.last_delivery:%Y-%m-%d %H:%M %Z}"
            f" ({self.age_hours:.1f} h ago; deadline {self.max_age_hours:g} h)"
        )


def check_freshness(wh, *, source: str, run_id: str, max_age_hours: float) -> Freshness:
    """Measure and record the age of the source's last delivery (one row per run)."""
    with wh.cursor() as cur:
        # rows re-read in the look-back window and already published are no delivery
        cur.execute(
            """
            select max(finished_at), extract(epoch from now() - max(finished_at)) / 3600
            from audit.load_batch
            where source = %s and rows_read - coalesce(rows_skipped, 0) > 0
              and finished_at is not null
            """,
            (source,),
        )
        last, age = cur.fetchone()
        result = Freshness(source, last, None if age is None else float(age), max_age_hours)
        cur.execute(
            """
            insert into audit.freshness_check
                (source, run_id, last_delivery, age_hours, max_age_hours, is_stale)
            values (%s, %s, %s, %s, %s, %s)
            """,
            (source, run_id, last, result.age_hours, max_age_hours, result.is_stale),
        )
    wh.commit()
    return result


def latest(wh) -> list[Freshness]:
    """The most recent freshness verdict of every source."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select distinct on (source) source, last_delivery, age_hours, max_age_hours
            from audit.freshness_check order by source, checked_at desc
            """
        )
        rows = [Freshness(*r) for r in cur.fetchall()]
    wh.rollback()
    return rows
