"""Exactly-once loading of file drops (a `kind: files` source manifest, e.g. the LIS's CSVs).

A file is identified by the sha256 of its bytes (audit.file_load, unique per source): a content
already loaded and validated is skipped, whatever its name; the same name with other bytes is a
new delivery. Each file is one batch of audit.load_batch, keyed (source, table, run id
`<dag run id>:<file name>:<sha256 prefix>`), so the gate (hdp.quality.gate.validate_batch) and the
publish (hdp.quality.gate.publish_run) work on it unchanged; files are independent deliveries, so
each is published on its own (publish_files) and a rejected file holds back no other.

Rows land in raw_<source>.<table> as text, as delivered, with _batch_id, _extracted_at, _source,
_file_name, _line_no. A line with the wrong number of fields is not lost: it is stored with
_malformed = true, its first field as the key and the line itself in _raw_line (other columns
null), and the gate's row-level check quarantines it (audit.row_issue) with its check id.
A source without an id column (`primary_key: content_hash`) is keyed by its rows' values: a
row whose decoded content another validated delivery already holds (the same sheet re-saved
in GBK instead of UTF-8, or sent under another name) is skipped (rows_skipped), and so is a
line repeated within the file (hdp.quality.dedup.drop_repeated_content).
The batch row, the COPY and the file record commit in one transaction: a crash mid-file leaves
no row, and the rerun loads the file once.

Only a regular file directly in the drop folder is read (opened relative to the folder with
O_NOFOLLOW): a symbolic link, a hard link, a path through `..` or anything else is refused
without reading a byte of it, because a link named like a drop can point at a secret the
loader's account may read. No message (exception, audit.file_load.error, log) ever quotes file
content: a refusal names the line number and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import sql

from hdp.config import load_settings
from hdp.errors import safe_error
from hdp.ingest.excel import CELL_TYPES_COLUMN, WorkbookRefused, read_sheet
from hdp.ingest.extract import source_columns
from hdp.manifest import SourceManifest, TableSpec, is_workbook
from hdp.quality.dedup import drop_repeated_content
from hdp.quality.gate import PublishBlocked, publish_run

log = logging.getLogger(__name__)

# load metadata of a file row, after the file's own columns (all text)
FILE_METADATA = (
    ("_batch_id", "bigint"),
    ("_extracted_at", "timestamp with time zone"),
    ("_source", "text"),
    ("_file_name", "text"),
    ("_line_no", "integer"),
    ("_malformed", "boolean"),
    ("_raw_line", "text"),
)
# a workbook's rows also keep each cell's Excel type (hdp.ingest.excel)
WORKBOOK_METADATA = (*FILE_METADATA, (CELL_TYPES_COLUMN, "text"))
# a content whose batch reached one of these is not loaded again: held is waiting for a person
# (hdp.quality.guard), dismissed was rejected on review; `python -m hdp files readmit` loads a
# content again
DONE = ("passed", "published", "held", "dismissed")


class FilesWithheld(PublishBlocked):
    """Some files of a run were not validated: the others were published all the same."""

    def __init__(self, message: str, *, published: dict[str, int], withheld: list[str]):
        super().__init__(message)
        self.published = published
        self.withheld = withheld


class FileRefused(RuntimeError):
    """A file cannot be loaded as delivered (not a plain file of the drop folder, encoding,
    header); recorded in audit.file_load. Its message never quotes the file's content."""


class FileLoadError(RuntimeError):
    """A load failed in the database; the message keeps PostgreSQL's error class and SQLSTATE
    but none of its quoted values or CONTEXT lines (COPY's CONTEXT quotes the failing line)."""


@dataclass(frozen=True)
class FileLoad:
    source: str
    file_name: str
    sha256: str
    status: str  # loaded | skipped (this content was loaded before)
    batch_id: int | None
    batch_run_id: str | None  # audit.load_batch.run_id of the file's batch
    encoding: str | None = None
    rows: int = 0
    rows_malformed: int = 0


def drop_dir(manifest: SourceManifest) -> Path:
    """The folder a file source drops into: absolute, or relative to $HDP_HOME."""
    folder = Path(manifest.drop_dir or f"drops/{manifest.source}")
    return folder if folder.is_absolute() else load_settings().home / folder


def file_table(manifest: SourceManifest) -> TableSpec:
    if manifest.kind != "files" or len(manifest.tables) != 1 or not manifest.tables[0].columns:
        raise ValueError(
            f"source {manifest.source}: a file source has kind: files and exactly one table "
            "with its expected columns (dags/sources/<source>.yml)"
        )
    return manifest.tables[0]


def file_metadata(manifest: SourceManifest) -> tuple[tuple[str, str], ...]:
    """The load metadata columns of a file source's raw table (a workbook's adds _cell_types)."""
    return WORKBOOK_METADATA if manifest.file_format == "workbook" else FILE_METADATA


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unread_digest(file_name: str) -> str:
    """audit.file_load's key for a file refused before it was read: a digest of its name
    (prefixed so that it never equals a content's), since its bytes are never opened."""
    return sha256_of(f"hdp-unread-file:{file_name}".encode())


def read_drop(path: Path, folder: Path) -> bytes:
    """The bytes of `path`, which must be a regular file directly in `folder` (no symbolic
    link, no other hard link, no `..`); raises FileRefused without reading anything else.

    The file is opened relative to the folder's descriptor with O_NOFOLLOW, so a link swapped
    in between the check and the open is refused too; O_NONBLOCK keeps a FIFO from blocking.
    """
    path = Path(path)
    name = path.name
    if (
        name in ("", ".", "..")
        or ".." in path.parts
        or os.path.realpath(path.parent) != os.path.realpath(folder)
    ):
        raise FileRefused(f"{name or path}: not a file of the drop folder {folder}")
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
        except OSError as exc:
            if os.path.islink(path):
                raise FileRefused(f"{name}: a symbolic link, not a delivered file") from None
            raise FileRefused(f"{name}: cannot be opened ({exc.strerror})") from None
    finally:
        os.close(folder_fd)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{name}: not a regular file")
        if info.st_nlink != 1:
            raise FileRefused(
                f"{name}: a hard link ({info.st_nlink} names for one file), not a delivered "
                "file: a drop is written into the folder, not linked there"
            )
        return handle.read()


def batch_run_id(run_id: str, file_name: str, sha256: str) -> str:
    """The load batch's run id: one batch per file content per DAG run."""
    return f"{run_id}:{file_name}:{sha256[:12]}"


# byte-order marks, longest first (UTF-32 LE's begins with UTF-16 LE's)
BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
)


def detect_encoding(data: bytes) -> str:
    """The codec of a file: the one its byte-order mark names (UTF-8, UTF-16 or UTF-32, as
    Excel's "Unicode text" writes UTF-16), else strict UTF-8, else strict GBK. A file without a
    BOM holding NUL bytes is UTF-16/UTF-32 of unknown byte order (no CSV text holds NUL, and
    such bytes would pass as UTF-8): refused, naming UTF-16."""
    for bom, codec, name in BOMS:
        if data.startswith(bom):
            try:
                data.decode(codec)
            except UnicodeDecodeError:
                raise UnicodeError(
                    f"starts with a {name} byte-order mark but is not {name}"
                ) from None
            return codec
    if b"\x00" in data:
        raise UnicodeError(
            "NUL bytes and no byte-order mark: UTF-16 or UTF-32 of unknown byte order; "
            "ask for UTF-8, GBK, or UTF-16 with its byte-order mark"
        )
    for encoding in ("utf-8", "gbk"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise UnicodeError("neither UTF-8 (with or without BOM) nor GBK, nor UTF-16/UTF-32 with a BOM")


def _done_status(cur, source: str, sha256: str) -> tuple[str | None, str | None, str | None]:
    """(status, run id, file name) of the batch that last loaded this content, if any."""
    cur.execute(
        "select case when h.decision = 'rejected' then 'dismissed' else b.status end, "
        "b.run_id, f.file_name from audit.file_load as f "
        "left join audit.load_batch as b on b.batch_id = f.batch_id "
        "left join audit.held_delivery as h on h.batch_id = f.batch_id "
        "where f.source = %s and f.sha256 = %s and f.status = 'loaded'",
        (source, sha256),
    )
    row = cur.fetchone()
    return (row[0], row[1], row[2]) if row else (None, None, None)


def _skipped(name: str, loaded_as: str | None) -> str:
    """How a skip is logged: the file's name and, when it differs, the name the same bytes were
    loaded under (a re-send under another name shows as one)."""
    readmit = f"`python -m hdp files readmit {name}` loads it again"
    if loaded_as and loaded_as != name:
        return f"a duplicate: the same bytes as {loaded_as}, loaded before ({readmit})"
    return f"already loaded ({readmit})"


def list_new_files(wh, manifest: SourceManifest, folder: Path | None = None) -> list[Path]:
    """Entries of the drop folder matching the manifest's pattern whose content has not been
    loaded and validated yet, in name order. An entry that read_drop refuses (a symbolic link,
    a hard link...) is listed, unread, so that its load records the refusal and alerts."""
    folder = folder or drop_dir(manifest)
    paths = sorted(
        p for p in folder.glob(manifest.pattern or "*") if not p.is_dir() or p.is_symlink()
    )
    new = []
    with wh.cursor() as cur:
        for path in paths:
            try:
                digest = sha256_of(read_drop(path, folder))
            except FileRefused:
                new.append(path)
                continue
            status, _, loaded_as = _done_status(cur, manifest.source, digest)
            if status not in DONE:
                new.append(path)
            elif loaded_as != path.name:
                log.info(
                    "%s file %s: %s (batch %s), skipped",
                    manifest.source,
                    path.name,
                    _skipped(path.name, loaded_as),
                    status,
                )
    wh.rollback()
    return new


def _escape(value: str | None) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def parse_lines(text: str, columns: tuple[str, ...]) -> tuple[list[list[str | None]], int]:
    """Rows (file columns, then _line_no, _malformed, _raw_line) of a file's data lines and the
    number of malformed lines; raises FileRefused when the header is not `columns`."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line break
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not any(line.strip() for line in lines):
        raise FileRefused("blank file: no header line and no rows")
    try:
        header = [c.strip() for c in next(csv.reader([lines[0]]))]
    except csv.Error:
        header = []
    if header != list(columns):
        raise FileRefused(header_mismatch(header, columns))
    if not any(line.strip() for line in lines[1:]):
        # not a 0-row batch: an export that lost its rows would publish as "nothing happened"
        raise FileRefused("header only, no rows: the header matches but no data line follows")
    rows: list[list[str | None]] = []
    malformed = 0
    width = len(columns)
    for line_no, line in enumerate(lines[1:], start=2):
        try:
            fields = next(csv.reader([line]), [])
        except csv.Error:
            fields = []
        if len(fields) == width:
            rows.append([*fields, str(line_no), "f", None])
            continue
        malformed += 1
        # keep the line: its first field as the key the quarantine records it under
        key = fields[0].strip() if fields and fields[0].strip() else f"line:{line_no}"
        rows.append([key, *([None] * (width - 1)), str(line_no), "t", line])
    return rows, malformed


def parse_workbook(
    data: bytes, columns: tuple[str, ...], sheet: str | int | None
) -> tuple[list[list[str | None]], int]:
    """parse_lines for a workbook's sheet (hdp.ingest.excel): the same refusals (blank,
    header only, another header), rows with their cells' Excel types."""
    try:
        header, found = read_sheet(data, columns, sheet)
    except WorkbookRefused as exc:
        raise FileRefused(str(exc)) from None
    if not header and not found.rows:
        raise FileRefused("blank sheet: no header row and no rows")
    if header != list(columns):
        raise FileRefused(header_mismatch(header, columns))
    if not found.rows:
        raise FileRefused("header only, no rows: the header matches but no data row follows")
    if found.blank_rows:
        log.info("%s completely empty rows skipped", found.blank_rows)
    return found.rows, found.malformed


def parse_delivery(
    manifest: SourceManifest, spec: TableSpec, name: str, data: bytes
) -> tuple[str, list[list[str | None]], int]:
    """(encoding or format, rows, malformed rows) of a delivery, by the source's `format`."""
    if manifest.file_format == "workbook":
        if not is_workbook(name):
            raise FileRefused(
                "not a workbook: this source's format is workbook (.xlsx, .xlsm, .xlsb, .xls, "
                ".ods); a CSV export belongs to a source of format csv"
            )
        rows, malformed = parse_workbook(data, spec.columns, spec.sheet)
        return "workbook", rows, malformed
    if is_workbook(name):
        raise FileRefused(
            "an Excel or OpenDocument workbook in a CSV source: declare `format: workbook` "
            "(and its `sheet`) in the source's manifest, or have the sender export CSV"
        )
    encoding = detect_encoding(data)
    rows, malformed = parse_lines(data.decode(encoding), spec.columns)
    return encoding, rows, malformed


def header_mismatch(header: list[str], columns: tuple[str, ...]) -> str:
    """Why a header is not the manifest's, naming only the manifest's columns and positions:
    the header line is file content (a secret, if the file is not what its name says)."""
    if len(header) == len(columns) and [h.lower() for h in header] == [c.lower() for c in columns]:
        differing = [
            f"{i + 1} ({c})" for i, (h, c) in enumerate(zip(header, columns, strict=True)) if h != c
        ]
        return (
            f"header differs only in case: fields {', '.join(differing)} are spelt in other "
            f"letter case; expected the {len(columns)} columns {','.join(columns)} exactly "
            "(a spreadsheet may have changed them: re-export, or have the sender keep the names)"
        )
    found = f"{len(header)} field{'' if len(header) == 1 else 's'} found"
    expected = f"expected the {len(columns)} columns {','.join(columns)}"
    first = next((i for i, (a, b) in enumerate(zip(header, columns, strict=False)) if a != b), None)
    if first is None:
        where = f"fields 1-{min(len(header), len(columns))} match, {found}"
    else:
        where = f"field {first + 1} is not {columns[first]!r}, {found}"
    missing = [c for c in columns if c not in header]
    if header and not missing and len(header) == len(columns):
        where += " (same names, another order)"
    elif missing:
        where += f"; missing {', '.join(missing)}"
    return f"schema drift: header line 1 does not match: {expected}; {where}"


def ensure_landing_tables(conn, manifest: SourceManifest) -> None:
    """Create the landing table raw_<source>.<table> of a file source from its manifest (the
    file's columns as text, in the header's order, then FILE_METADATA), and its schema; commits.

    Set-up calls it for every `kind: files` manifest, so dbt's staging builds on an empty
    source before the first file arrives, and each load calls it again (a no-op then): adding
    a file source needs its manifest, never an edit of the platform library. A landing table
    whose columns differ from the manifest's is refused as drift (FileRefused)."""
    spec = file_table(manifest)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(manifest.raw_schema))
        )
        metadata = file_metadata(manifest)
        _ensure_raw_table(cur, manifest.raw_schema, spec.name, spec.columns, metadata)
    conn.commit()


def _ensure_raw_table(
    cur,
    schema: str,
    table: str,
    columns: tuple[str, ...],
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """Create raw_<source>.<table> (file columns as text + the load metadata, a BRIN index on
    _batch_id for the gate's and staging's per-batch reads); refuse drift."""
    wanted = [(c, "text") for c in columns] + list(metadata)
    cur.execute(
        "select 1 from pg_catalog.pg_tables where schemaname = %s and tablename = %s",
        (schema, table),
    )
    if cur.fetchone() is None:
        cur.execute(
            sql.SQL("create table {}.{} ({})").format(
                sql.Identifier(schema),
                sql.Identifier(table),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in wanted
                ),
            )
        )
        cur.execute(
            sql.SQL("create index {} on {}.{} using brin (_batch_id)").format(
                sql.Identifier(f"{table}_batch_brin"), sql.Identifier(schema), sql.Identifier(table)
            )
        )
        return
    existing = source_columns(cur.connection, schema, table)
    if existing != wanted:
        missing = [c for c, _ in wanted if c not in dict(existing)]
        extra = [c for c, _ in existing if c not in dict(wanted)]
        raise FileRefused(
            f"schema drift in {schema}.{table}: the manifest wants {missing or 'nothing new'}, "
            f"the raw table has {extra or 'nothing extra'} (or other types/order). Migrate the "
            "raw table to the manifest's columns before the next load."
        )


def _record_refusal(wh, source: str, file_name: str, sha256: str, error: str) -> None:
    wh.rollback()
    with wh.cursor() as cur:
        cur.execute(
            """
            insert into audit.file_load (source, file_name, sha256, status, error)
            values (%s, %s, %s, 'refused', %s)
            on conflict (source, sha256) do update
            set file_name = excluded.file_name, status = 'refused', error = excluded.error,
                batch_id = null, loaded_at = now()
            where audit.file_load.status <> 'loaded'
            """,
            (source, file_name, sha256, error[:500]),
        )
    wh.commit()


def _copy_rows(cur, manifest: SourceManifest, spec: TableSpec, rows, meta: list[str]) -> int:
    """COPY parsed rows with their load metadata into the raw table; returns rows written."""
    buffer = io.StringIO()
    metadata = file_metadata(manifest)
    parsed = len(metadata) - len(meta)  # line, malformed, raw line (and a workbook's types)
    for row in rows:
        # file columns, then the metadata's order: batch, time, source, file, line...
        values: Iterable[str | None] = [*row[: len(spec.columns)], *meta, *row[-parsed:]]
        buffer.write("\t".join(_escape(v) for v in values) + "\n")
    buffer.seek(0)
    names = [*spec.columns, *(n for n, _ in metadata)]
    cur.copy_expert(
        sql.SQL("copy {}.{} ({}) from stdin")
        .format(
            sql.Identifier(manifest.raw_schema),
            sql.Identifier(spec.name),
            sql.SQL(", ").join(sql.Identifier(n) for n in names),
        )
        .as_string(cur.connection),
        buffer,
    )
    return cur.rowcount


def _record_failure(wh, manifest: SourceManifest, spec: TableSpec, run_key: str, exc) -> None:
    """The batch row was rolled back with the rows: record the failed attempt."""
    wh.rollback()
    error = safe_error(exc)
    with wh.cursor() as cur:
        cur.execute(
            """
            insert into audit.load_batch (source, table_name, run_id, status, error)
            values (%s, %s, %s, 'failed', %s)
            on conflict (source, table_name, run_id)
            do update set status = 'failed', error = excluded.error
            """,
            (manifest.source, spec.name, run_key, error),
        )
    wh.commit()


def _read_or_refuse(wh, manifest: SourceManifest, path: Path, folder: Path) -> bytes:
    """read_drop, recording a refusal in audit.file_load under the name's digest."""
    try:
        return read_drop(path, folder)
    except FileRefused as exc:
        message = f"{manifest.source} file refused unread: {exc}. Nothing of it is loaded."
        _record_refusal(wh, manifest.source, path.name, unread_digest(path.name), message)
        raise FileRefused(message) from None


def _write_batch(
    cur,
    manifest: SourceManifest,
    spec: TableSpec,
    path_name: str,
    run_key: str,
    digest: str,
    rows: list[list[str | None]],
    encoding: str,
    malformed: int,
    started: float,
) -> int:
    """In the caller's transaction: the batch row, the file's rows (a retry of this run replaces
    the batch's rows) and the file record; returns the batch id. `started`: the load's start
    (time.monotonic()), for audit.load_batch.duration_s."""
    _ensure_raw_table(cur, manifest.raw_schema, spec.name, spec.columns, file_metadata(manifest))
    cur.execute(
        """
        insert into audit.load_batch (source, table_name, run_id, status)
        values (%s, %s, %s, 'loading')
        on conflict (source, table_name, run_id)
        do update set status = 'loading', started_at = now(), error = null
        returning batch_id
        """,
        (manifest.source, spec.name, run_key),
    )
    batch_id = cur.fetchone()[0]
    # a retry of this run replaces the batch's rows
    cur.execute(
        sql.SQL("delete from {}.{} where _batch_id = %s").format(
            sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
        ),
        (batch_id,),
    )
    meta = [str(batch_id), datetime.now(UTC).isoformat(), manifest.source, path_name]
    written = _copy_rows(cur, manifest, spec, rows, meta)
    if written != len(rows):
        raise RuntimeError(f"{path_name}: parsed {len(rows)} lines but wrote {written}")
    # `primary_key: content_hash`: rows another validated delivery (or an earlier line) holds
    repeated = drop_repeated_content(cur, manifest, spec, batch_id, ("passed", "published"))
    if repeated:
        log.info(
            "%s file %s: %d rows already delivered (same content), skipped",
            manifest.source,
            path_name,
            repeated,
        )
    cur.execute(
        """
        update audit.load_batch
        set status = 'loaded', rows_read = %s, rows_written = %s, rows_skipped = %s,
            finished_at = now(), duration_s = %s
        where batch_id = %s
        """,
        (len(rows), written - repeated, repeated, time.monotonic() - started, batch_id),
    )
    cur.execute(
        """
        insert into audit.file_load (source, file_name, sha256, batch_id, encoding, rows,
            rows_malformed, status)
        values (%s, %s, %s, %s, %s, %s, %s, 'loaded')
        on conflict (source, sha256) do update
        set file_name = excluded.file_name, batch_id = excluded.batch_id,
            encoding = excluded.encoding, rows = excluded.rows,
            rows_malformed = excluded.rows_malformed, status = 'loaded', error = null,
            loaded_at = now()
        """,
        (manifest.source, path_name, digest, batch_id, encoding, len(rows), malformed),
    )
    return batch_id


def ingest_file(
    wh, manifest: SourceManifest, path: Path, run_id: str, folder: Path | None = None
) -> FileLoad:
    """Load one dropped file of `folder` (default: the manifest's drop folder) into
    raw_<source>.<table> exactly once (see the module docstring).

    Skips a content already loaded and validated; raises FileRefused (recorded in
    audit.file_load, nothing loaded) for a path that is not a regular file of the folder, an
    undecodable file or another header.
    """
    spec = file_table(manifest)
    path = Path(path)
    folder = folder or drop_dir(manifest)
    started = time.monotonic()
    data = _read_or_refuse(wh, manifest, path, folder)
    digest = sha256_of(data)
    where = f"{manifest.source} file {path.name} (sha256 {digest[:12]})"
    with wh.cursor() as cur:
        status, done_run, loaded_as = _done_status(cur, manifest.source, digest)
    wh.rollback()
    if status in DONE:
        log.info("%s: %s (batch %s), skipped", where, _skipped(path.name, loaded_as), status)
        return FileLoad(manifest.source, path.name, digest, "skipped", None, done_run)
    try:
        encoding, rows, malformed = parse_delivery(manifest, spec, path.name, data)
    except (UnicodeError, FileRefused) as exc:
        message = f"{where} refused: {exc}. Nothing of it is loaded; ask the sender to re-send it."
        _record_refusal(wh, manifest.source, path.name, digest, message)
        raise FileRefused(message) from exc
    del data
    run_key = batch_run_id(run_id, path.name, digest)
    try:
        with wh.cursor() as cur:
            # one loader per content at a time: two names with the same bytes load once
            cur.execute(
                "select pg_advisory_xact_lock(hashtext(%s))", (f"{manifest.source}:{digest}",)
            )
            status, done_run, loaded_as = _done_status(cur, manifest.source, digest)
            same_run = (done_run or "").startswith(f"{run_id}:") and done_run != run_key
            if status in DONE or (status == "loaded" and same_run):
                wh.rollback()
                log.info(
                    "%s: loaded meanwhile (%s, batch %s), skipped",
                    where,
                    _skipped(path.name, loaded_as),
                    status,
                )
                return FileLoad(manifest.source, path.name, digest, "skipped", None, done_run)
            batch_id = _write_batch(
                cur, manifest, spec, path.name, run_key, digest, rows, encoding, malformed, started
            )
        wh.commit()
    except FileRefused as exc:
        _record_failure(wh, manifest, spec, run_key, exc)
        raise
    except Exception as exc:
        _record_failure(wh, manifest, spec, run_key, exc)
        # not `raise`: the database error's text and CONTEXT can quote the file's lines
        raise FileLoadError(f"{where}: load failed, {safe_error(exc)}") from None
    except BaseException as exc:
        _record_failure(wh, manifest, spec, run_key, exc)
        raise
    with wh.cursor() as cur:
        cur.execute(
            sql.SQL("analyze {}.{}").format(
                sql.Identifier(manifest.raw_schema), sql.Identifier(spec.name)
            )
        )
    wh.commit()
    log.info(
        "%s: batch %s, %s rows (%s malformed), encoding %s, %.2fs",
        where,
        batch_id,
        len(rows),
        malformed,
        encoding,
        time.monotonic() - started,
    )
    return FileLoad(
        manifest.source,
        path.name,
        digest,
        "loaded",
        batch_id,
        run_key,
        encoding,
        len(rows),
        malformed,
    )


def publish_files(wh, *, manifest: SourceManifest, run_id: str) -> dict[str, int]:
    """Publish each validated file batch of this DAG run on its own (hdp.quality.gate.publish_run),
    and any batch an earlier run validated but did not publish (a crash before its publish).

    Returns rows published per file; raises FilesWithheld (a PublishBlocked), after publishing
    the others, when a file of this run was not validated.
    """
    spec = file_table(manifest)
    prefix = f"{run_id}:"
    with wh.cursor() as cur:
        cur.execute(
            """
            select b.run_id, b.status, coalesce(f.file_name, b.run_id) from audit.load_batch as b
            left join audit.file_load as f on f.batch_id = b.batch_id
            where b.source = %s and b.table_name = %s
              and (left(b.run_id, length(%s)) = %s or b.status = 'passed')
            order by b.batch_id
            """,
            (manifest.source, spec.name, prefix, prefix),
        )
        batches = cur.fetchall()
    wh.rollback()
    published: dict[str, int] = {}
    blocked: list[str] = []
    for key, status, file_name in batches:
        if status == "published":
            continue
        if status == "failed" and not key.startswith(prefix):
            continue
        try:
            rows = publish_run(
                wh, source=manifest.source, run_id=key, tables=[spec.name], manifest=manifest
            )
        except PublishBlocked:
            blocked.append(f"{file_name} ({status})")
            continue
        published[file_name] = rows.get(spec.name, 0)
    if blocked:
        raise FilesWithheld(
            f"{manifest.source} run {run_id}: published {len(published)} file(s); not validated, "
            f"so not published: {', '.join(blocked)}. See the gate task's log and the Data "
            "quality page; a corrected file re-sent under the same name loads as a new delivery.",
            published=published,
            withheld=blocked,
        )
    return published
