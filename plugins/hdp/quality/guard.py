"""The delivery guard (issue 15 item 4): a file delivery that would replace already published
versions of many keys with values of another shape is held for review instead of winning by
recency.

The gate (hdp.quality.gate.validate_batch) asks review() after profiling the batch
(hdp.quality.profiles): when the delivery holds at least the catalogue's share and number of
keys that a published batch already holds (`delivery.replaces_published`, threshold
`{share, rows}`) and a profile monitor fired on it (formats, lengths, empty shares, years), the
batch is held: audit.load_batch.status = 'held', a record in audit.held_delivery with the
reason. A held batch is neither published (publish leaves it out, the run turns red) nor lost
(its rows stay in raw_<source>), and neither a rerun nor a cleared task loads or validates it
again. A person decides: release() makes it passed (the next publish promotes it), reject()
rejects it for good. readmit() lets an earlier good file be loaded again (its bytes would be
skipped as already loaded); a readmitted content bypasses the guard (a person chose it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg2 import sql

from hdp.quality.checks import Check

log = logging.getLogger(__name__)

CHECK_ID = "delivery.replaces_published"
DEFAULT_THRESHOLD = {"share": 0.5, "rows": 20}


@dataclass(frozen=True)
class Review:
    """The guard's verdict on one batch."""

    status: str  # pass | warn | held
    observed: str
    expected: str
    keys: int = 0
    keys_replaced: int = 0
    reason: str = ""


def release_command(batch_id: int) -> str:
    return f"python -m hdp quality release {batch_id}"


def reject_command(batch_id: int) -> str:
    return f"python -m hdp quality reject {batch_id}"


def decision(wh, batch_id: int) -> tuple[bool, str | None, str]:
    """(held before, decision: None pending | released | rejected, reason) of a batch."""
    with wh.cursor() as cur:
        cur.execute(
            "select decision, reason from audit.held_delivery where batch_id = %s", (batch_id,)
        )
        row = cur.fetchone()
    wh.rollback()
    return (row is not None, row[0] if row else None, row[1] if row else "")


def _is_file_batch(cur, source: str, table: str) -> bool:
    cur.execute(
        "select 1 from information_schema.columns where table_schema = %s and table_name = %s "
        "and column_name = '_file_name'",
        (f"raw_{source}", table),
    )
    return cur.fetchone() is not None


def _readmitted(cur, batch_id: int) -> bool:
    cur.execute(
        "select readmitted_at is not null from audit.file_load where batch_id = %s", (batch_id,)
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _keys(cur, source: str, table: str, primary_key: list[str], batch_id: int) -> tuple[int, int]:
    """(distinct keys of the batch, of those the ones a published batch already holds)."""
    raw = sql.Identifier(f"raw_{source}"), sql.Identifier(table)

    def key(alias: str) -> sql.Composable:
        return sql.SQL("audit.record_key({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(alias, k)) for k in primary_key
            )
        )

    cur.execute(
        sql.SQL(
            "with batch as (select distinct {rkey} as k from {s}.{t} as r "
            "where r._batch_id = %s and not coalesce(r._malformed, false)), "
            "published as (select distinct {pkey} as k from {s}.{t} as p "
            "inner join audit.load_batch as b on b.batch_id = p._batch_id "
            "where b.status = 'published' and b.source = %s and b.table_name = %s) "
            "select (select count(*) from batch), "
            "(select count(*) from batch inner join published using (k))"
        ).format(rkey=key("r"), pkey=key("p"), s=raw[0], t=raw[1]),
        (batch_id, source, table),
    )
    keys, replaced = cur.fetchone()
    return int(keys), int(replaced)


def review(
    wh,
    *,
    batch_id: int,
    source: str,
    table: str,
    primary_key: list[str],
    check: Check | None,
    anomalies: list,
) -> Review | None:
    """The guard's verdict on a file batch (None: not a file source, or no guard configured).
    `anomalies`: the profile monitors that fired on the batch (hdp.quality.profiles.detect)."""
    if check is None:
        return None
    threshold = {**DEFAULT_THRESHOLD, **(check.threshold or {})}
    share_limit, rows_limit = float(threshold["share"]), int(threshold["rows"])
    expected = (
        f"no replacement of at least {share_limit:.0%} and {rows_limit} published keys "
        "by values of another shape"
    )
    with wh.cursor() as cur:
        file_batch = _is_file_batch(cur, source, table)
        readmitted = file_batch and _readmitted(cur, batch_id)
        keys, replaced = (0, 0)
        if file_batch and not readmitted:
            keys, replaced = _keys(cur, source, table, primary_key, batch_id)
    wh.rollback()
    if not file_batch:
        return None
    _, decided, _ = decision(wh, batch_id)
    if decided == "released" or readmitted:
        why = "released by a reviewer" if decided == "released" else "re-admitted by the operator"
        return Review("pass", why, expected)
    share = replaced / keys if keys else 0.0
    observed = f"{replaced} of {keys} keys ({share:.0%}) replace published versions"
    if replaced < rows_limit or share < share_limit or not anomalies:
        why = "too few to hold" if anomalies else "same shape"
        return Review("pass", f"{observed}; {why}", expected, keys, replaced)
    shapes = "; ".join(f"{a.column}: {a.monitor} {a.observed}" for a in anomalies[:6])
    reason = f"{observed} with values of another shape ({shapes})"
    status = "held" if check.severity == "block" else "warn"
    return Review(status, reason, expected, keys, replaced, reason)


def hold(
    wh,
    *,
    batch_id: int,
    source: str,
    table: str,
    rows: int,
    primary_key: list[str],
    reason: str,
) -> None:
    """Record why the batch is held (the gate's record() set its status; commits)."""
    with wh.cursor() as cur:
        _, replaced = _keys(cur, source, table, primary_key, batch_id)
        cur.execute(
            "update audit.load_batch set error = %s where batch_id = %s",
            (f"held for review: {CHECK_ID}", batch_id),
        )
        cur.execute(
            """
            insert into audit.held_delivery (batch_id, source, table_name, file_name, rows,
                keys_replaced, reason)
            values (%s, %s, %s, (select file_name from audit.file_load where batch_id = %s),
                %s, %s, %s)
            on conflict (batch_id) do update set reason = excluded.reason,
                keys_replaced = excluded.keys_replaced, rows = excluded.rows, held_at = now()
            """,
            (batch_id, source, table, batch_id, rows, replaced, reason[:1000]),
        )
    wh.commit()


def held_message(source: str, table: str, batch_id: int, reason: str) -> str:
    """What the operator reads on the red task, the run summary and the page."""
    return (
        f"delivery held for review: {source}.{table} batch {batch_id}: {reason}. It is neither "
        f"published nor lost (its rows stay in raw_{source}.{table}). Compare it on the Data "
        f"quality page, then `{release_command(batch_id)}` (published by the next run of "
        f"hdp_ingest_{source}) or `{reject_command(batch_id)}`."
    )


@dataclass(frozen=True)
class HeldDelivery:
    batch_id: int
    source: str
    table: str
    file_name: str | None
    rows: int
    keys_replaced: int
    reason: str
    decision: str | None
    run_id: str


def held(wh, *, source: str | None = None, pending_only: bool = True) -> list[HeldDelivery]:
    """Held deliveries (pending ones unless pending_only is False), oldest first."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select h.batch_id, h.source, h.table_name, h.file_name, h.rows, h.keys_replaced,
                h.reason, h.decision, b.run_id
            from audit.held_delivery as h
            inner join audit.load_batch as b on b.batch_id = h.batch_id
            where (%s::text is null or h.source = %s) and (not %s or h.decision is null)
            order by h.batch_id
            """,
            (source, source, pending_only),
        )
        rows = [HeldDelivery(*r) for r in cur.fetchall()]
    wh.rollback()
    return rows


def resolve(wh, delivery: str) -> HeldDelivery:
    """A held delivery named by its batch id, its file name or a prefix of its sha256."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select h.batch_id from audit.held_delivery as h
            left join audit.file_load as f on f.batch_id = h.batch_id
            where h.batch_id::text = %s or h.file_name = %s
               or (length(%s) >= 8 and f.sha256 like %s || '%%')
            order by h.decision is null desc, h.batch_id desc
            """,
            (delivery, delivery, delivery, delivery),
        )
        found = [b for (b,) in cur.fetchall()]
    wh.rollback()
    if not found:
        raise LookupError(
            f"no held delivery {delivery!r}: name it by batch id, file name or sha256 prefix "
            "(the Data quality page and `python -m hdp quality held` list them)"
        )
    return next(d for d in held(wh, pending_only=False) if d.batch_id == found[0])


def _decide(wh, delivery: HeldDelivery, choice: str, status: str, error: str | None) -> None:
    if delivery.decision is not None:
        raise ValueError(
            f"delivery {delivery.batch_id} ({delivery.file_name}) was {delivery.decision} "
            "already: a decision is final (re-send or readmit the file to load it again)"
        )
    with wh.cursor() as cur:
        cur.execute(
            "update audit.held_delivery set decision = %s, decided_at = now(), "
            "decided_by = session_user where batch_id = %s and decision is null",
            (choice, delivery.batch_id),
        )
        cur.execute(
            "update audit.load_batch set status = %s, error = %s "
            "where batch_id = %s and status = 'held'",
            (status, error, delivery.batch_id),
        )
        if cur.rowcount != 1:
            wh.rollback()
            raise ValueError(f"batch {delivery.batch_id} is no longer held")
    wh.commit()
    log.info(
        "%s.%s delivery %s (%s) %s",
        delivery.source,
        delivery.table,
        delivery.batch_id,
        delivery.file_name,
        choice,
    )


def release(wh, delivery: HeldDelivery) -> None:
    """A reviewer accepts the delivery: its batch is passed, the next publish promotes it."""
    _decide(wh, delivery, "released", "passed", None)


def reject(wh, delivery: HeldDelivery) -> None:
    """A reviewer refuses the delivery: its batch is rejected for good (never published)."""
    _decide(wh, delivery, "rejected", "rejected", f"rejected on review: {CHECK_ID}")


def readmit(wh, *, source: str | None, ref: str) -> tuple[str, str, str]:
    """Let a content already loaded be loaded again as a new delivery (named by file name or
    sha256 prefix; `source` None: any source): the next run of the source's DAG loads it when
    it is in the drop folder. Returns (source, file name, sha256)."""
    with wh.cursor() as cur:
        cur.execute(
            """
            select source, file_name, sha256 from audit.file_load
            where (%s::text is null or source = %s) and status = 'loaded'
              and (file_name = %s or (length(%s) >= 8 and sha256 like %s || '%%'))
            order by loaded_at desc
            """,
            (source, source, ref, ref, ref),
        )
        found = cur.fetchall()
        if not found:
            wh.rollback()
            raise LookupError(
                f"no loaded file {ref!r}{f' of source {source}' if source else ''}: name it by "
                "file name or sha256 prefix (audit.file_load)"
            )
        if len({(s, d) for s, _, d in found}) > 1:
            wh.rollback()
            raise LookupError(f"{ref!r} names several contents: give --source or the sha256")
        source, name, digest = found[0]
        cur.execute(
            "update audit.file_load set status = 'readmitted', readmitted_at = now(), "
            "readmitted_by = session_user where source = %s and sha256 = %s",
            (source, digest),
        )
    wh.commit()
    log.info(
        "%s file %s (sha256 %s) re-admitted: loaded again on the next run",
        source,
        name,
        digest[:12],
    )
    return source, name, digest
