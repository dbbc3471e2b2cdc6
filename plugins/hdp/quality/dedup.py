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


def content_key_sql(spec: TableSpec, alias: str) -> sql.Composable:
    """A file row's content (`primary_key: content_hash`): every column's decoded value, white
    space trimmed and Unicode NFC-normalised, and the line itself for a malformed one, as one
    text (audit.record_key()). The same rows re-saved in another encoding (GBK, UTF-8 with or
    without BOM, CRLF) or under another name have the same content."""
    parts = [
        sql.SQL("normalize(btrim({}), nfc)").format(sql.Identifier(alias, c)) for c in spec.columns
    ]
    parts.append(sql.SQL("normalize({}, nfc)").format(sql.Identifier(alias, "_raw_line")))
    return sql.SQL("audit.record_key({})").format(sql.SQL(", ").join(parts))


def drop_repeated_content(
    cur, manifest: SourceManifest, spec: TableSpec, batch_id: int, earlier: tuple[str, ...]
) -> int:
    """Content-hash tables: delete the batch's rows whose content (content_key_sql) an earlier
    line of the batch, or a row of another batch of the table whose status is in `earlier`,
    already has (a delivery sent again in another encoding or under another name). Returns
    the rows deleted."""
    if not spec.content_hash:
        return 0
    raw = sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
    new, old = content_key_sql(spec, "n"), content_key_sql(spec, "o")
    cur.execute(
        sql.SQL(
            "delete from {s}.{t} as n using {s}.{t} as o where n._batch_id = %s "
            "and o._batch_id = %s and o._line_no < n._line_no and {old} = {new}"
        ).format(s=raw[0], t=raw[1], old=old, new=new),
        (batch_id, batch_id),
    )
    dropped = cur.rowcount
    cur.execute(
        sql.SQL(
            "delete from {s}.{t} as n using {s}.{t} as o where n._batch_id = %s "
            "and o._batch_id in (select b.batch_id from audit.load_batch as b "
            "where b.source = %s and b.table_name = %s and b.batch_id <> %s "
            "and b.status = any(%s)) and {old} = {new}"
        ).format(s=raw[0], t=raw[1], old=old, new=new),
        (batch_id, manifest.source, spec.name, batch_id, list(earlier)),
    )
    return dropped + cur.rowcount
