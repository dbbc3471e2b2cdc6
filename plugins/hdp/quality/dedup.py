"""One version of a row, once: a batch's rows that a published batch already holds are dropped.

Used by the extract (rows re-read in the look-back window) and by publish (a run that overlapped
another and loaded the same versions).
"""

from __future__ import annotations

from psycopg2 import sql

from hdp.manifest import SourceManifest, TableSpec


def drop_published_duplicates(cur, manifest: SourceManifest, spec: TableSpec, batch_id: int) -> int:
    """Delete the batch's rows whose version (primary key, watermark value) a published batch
    of the table already holds: rows re-read in the look-back window, or loaded as well by a
    run that overlapped this one. Only published batches whose interval reaches this batch's
    (a timestamp or an integer watermark: hdp.ingest.watermark) are compared (the BRIN index on
    _batch_id finds their rows). Returns the rows deleted."""
    cur.execute(
        """
        select coalesce(array_agg(p.batch_id), '{}')
        from audit.load_batch as b
        inner join audit.load_batch as p
            on p.source = b.source and p.table_name = b.table_name
        where b.batch_id = %s and p.batch_id <> b.batch_id and p.status = 'published'
          and (
              (b.low_watermark is null and b.low_watermark_id is null)
              or p.high_watermark > b.low_watermark
              or p.high_watermark_id > b.low_watermark_id
          )
        """,
        (batch_id,),
    )
    published = cur.fetchone()[0]
    if not published:
        return 0
    raw = sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
    same = sql.SQL(" and ").join(
        sql.SQL("o.{c} = n.{c}").format(c=sql.Identifier(c))
        for c in (*spec.primary_key, spec.watermark)
    )
    cur.execute(
        sql.SQL(
            "delete from {s}.{t} as n using {s}.{t} as o "
            "where n._batch_id = %s and o._batch_id = any(%s) and {same}"
        ).format(s=raw[0], t=raw[1], same=same),
        (batch_id, published),
    )
    return cur.rowcount
