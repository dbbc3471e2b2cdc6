"""Source manifests (dags/sources/<source>.yml): every source and table, in one place.

A source is a database (`kind: database`, the default: `conn_id`, `schema`, a watermark per
table, whose kind its source type decides: hdp.ingest.watermark; `time_zone` of naive
timestamps, per source or per table) or a folder of file drops (`kind: files`: `drop_dir`,
`pattern`, and each table's expected `columns`, the file header; hdp.ingest.files). A file
source's `format` is `csv` or `workbook` (Excel and OpenDocument sheets: hdp.ingest.excel),
by default from its pattern's suffix; a workbook table may name its `sheet` (or its position).

Each table may declare the identifier class of its columns (`identifiers:`, a mapping of column
to `direct`, `quasi` or `none`; a column not named is `none`): `direct` identifies a person on
its own (ID card, social-security card, phone, name, medical record number), `quasi` does in
combination (birth date, sex, address region). A file source without an id column declares
`primary_key: content_hash`: its rows are keyed by all their values (decoded text), so the same
rows re-sent in another encoding or under another name are one row (hdp.ingest.files). Whatever
the key, audit.row_issue stores it only as a keyed hash (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from hdp.config import REPO_ROOT

MANIFEST_DIR = REPO_ROOT / "dags" / "sources"
# what `python -m hdp source new` writes where the catalogue could not decide (a table without
# a key, a change time that is not a timestamp): refused here, so a guess never runs
TODO = "TODO"
# identifier classes a manifest may declare per column (`identifiers:`)
IDENTIFIER_CLASSES = ("direct", "quasi", "none")
# a file source's key when its export has no id: every column's value (hdp.ingest.files)
CONTENT_HASH = "content_hash"


@dataclass(frozen=True)
class TableSpec:
    name: str
    primary_key: tuple[str, ...]
    watermark: str
    columns: tuple[str, ...] = ()  # file sources: the expected header, in order
    # databases: the IANA zone of a naive timestamp watermark's wall-clock time (the table's
    # `time_zone`, else the source's); None: compared and stored as the source has it
    time_zone: str | None = None
    # file sources in workbooks: the sheet, by name or position from 0 (None: the first)
    sheet: str | int | None = None
    # MySQL sources: what a legacy latin1 column's bytes hold, column -> "latin1" or "gbk"
    # (undeclared: detected, hdp.ingest.mysql.decide_charsets)
    charsets: tuple[tuple[str, str], ...] = ()
    # (column, class) of every column declared `direct` or `quasi` (`identifiers:`)
    identifiers: tuple[tuple[str, str], ...] = ()
    # files: `primary_key: content_hash`, the key is every column (primary_key holds them all)
    content_hash: bool = False

    def identifier_class(self, column: str) -> str:
        """`direct`, `quasi` or `none` (a column the manifest does not declare)."""
        return dict(self.identifiers).get(column, "none")

    @property
    def direct_identifiers(self) -> tuple[str, ...]:
        return tuple(c for c, kind in self.identifiers if kind == "direct")


@dataclass(frozen=True)
class SourceManifest:
    source: str
    description: str
    conn_id: str | None  # database sources only
    schema: str | None  # database sources only
    schedule: str
    owner: str
    contains_personal_data: bool
    freshness_hours: float  # alert when the source has delivered no row for this long
    tables: tuple[TableSpec, ...]
    kind: str = "database"  # or "files"
    drop_dir: str | None = None  # files: relative to $HDP_HOME unless absolute
    pattern: str | None = None  # files: glob of the files to load, e.g. lis_results_*.csv
    # databases: each run re-reads this far behind the last published watermark, so a row
    # whose source transaction committed late (after a later-stamped row was extracted) arrives
    lookback_minutes: float = 60.0
    # databases, integer watermarks: each run re-reads this many numbers behind the last one
    lookback_ids: int = 0
    file_format: str = "csv"  # files: "csv" or "workbook" (hdp.ingest.excel)

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.source}"

    def table(self, name: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == name:
                return spec
        raise KeyError(f"source {self.source!r} has no table {name!r} in its manifest")


def load_manifest(source: str, folder: Path = MANIFEST_DIR) -> SourceManifest:
    path = folder / f"{source}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    kind = data.get("kind", "database")
    if kind not in ("database", "files"):
        raise ValueError(f"{path.name}: kind must be 'database' or 'files', not {kind!r}")
    tables = tuple(_table_spec(path, t, kind, data.get("time_zone")) for t in data["tables"])
    for spec in tables:
        _refuse_todo(path, spec, kind)
        _refuse_unknown_zone(path, spec)
    if any(spec.direct_identifiers for spec in tables) and not data.get(
        "contains_personal_data", True
    ):
        raise ValueError(
            f"{path.name}: contains_personal_data is false, but direct identifiers are declared "
            "(identifiers:): set contains_personal_data: true"
        )
    return SourceManifest(
        source=data["source"],
        description=data.get("description", ""),
        conn_id=data["conn_id"] if kind == "database" else data.get("conn_id"),
        schema=data["schema"] if kind == "database" else data.get("schema"),
        schedule=data.get("schedule", "@daily"),
        owner=data.get("owner", "data-platform"),
        contains_personal_data=bool(data.get("contains_personal_data", True)),
        freshness_hours=float(data.get("freshness_hours", 26)),
        tables=tables,
        kind=kind,
        drop_dir=data.get("drop_dir", f"drops/{data['source']}") if kind == "files" else None,
        pattern=data.get("pattern", "*.csv") if kind == "files" else None,
        lookback_minutes=float(data.get("lookback_minutes", 60)),
        lookback_ids=int(data.get("lookback_ids", 0)),
        file_format=_file_format(path, data) if kind == "files" else "csv",
    )


def _charsets(path: Path, table: dict) -> tuple[tuple[str, str], ...]:
    declared = table.get("charsets") or {}
    wrong = {c: v for c, v in declared.items() if v not in ("latin1", "gbk")}
    if wrong:
        raise ValueError(
            f"{path.name}: table {table['name']}: charsets must map a column to latin1 or gbk, "
            f"not {wrong}"
        )
    return tuple(sorted(declared.items()))


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")  # hdp.ingest.excel reads these


def is_workbook(name: str) -> bool:
    """A file name (or pattern) of an Excel or OpenDocument workbook."""
    return name.lower().endswith(WORKBOOK_SUFFIXES)


def _file_format(path: Path, data: dict) -> str:
    """A file source's `format`, by default `workbook` when its pattern ends in a workbook's
    suffix (.xlsx, .xls, ...), else `csv`."""
    declared = data.get("format")
    if declared is None:
        return "workbook" if is_workbook(data.get("pattern", "*.csv")) else "csv"
    if declared not in ("csv", "workbook"):
        raise ValueError(f"{path.name}: format must be 'csv' or 'workbook', not {declared!r}")
    return declared


def _table_spec(path: Path, t: dict, kind: str, source_zone: str | None) -> TableSpec:
    """One table of a manifest, its key (a list of columns, or content_hash) and identifiers."""
    columns = tuple(t.get("columns") or ())
    key = t.get("primary_key") or ()
    content_hash = key == CONTENT_HASH
    if content_hash:
        if kind != "files" or not columns:
            raise ValueError(
                f"{path.name}: table {t['name']}: primary_key: {CONTENT_HASH} is for file "
                "sources with their columns listed (the key is every column's value)"
            )
        key = columns
    elif isinstance(key, str):
        key = [key]
    return TableSpec(
        name=t["name"],
        primary_key=tuple(key),
        watermark=t.get("watermark", "updated_at" if kind == "database" else ""),
        columns=columns,
        time_zone=t.get("time_zone", source_zone),
        identifiers=_identifiers(path, t, columns),
        content_hash=content_hash,
        sheet=t.get("sheet"),
        charsets=_charsets(path, t),
    )


def _identifiers(path: Path, t: dict, columns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The table's `identifiers:` mapping, validated: a known class, a column the file has."""
    declared = t.get("identifiers") or {}
    where = f"{path.name}: table {t['name']}: identifiers"
    if not isinstance(declared, dict):
        raise ValueError(f"{where}: write a mapping of column to class, e.g. id_card_no: direct")
    out = []
    for column, kind in declared.items():
        if kind not in IDENTIFIER_CLASSES:
            raise ValueError(
                f"{where}: column {column!r} has class {kind!r}: one of "
                f"{', '.join(IDENTIFIER_CLASSES)} (direct identifies a person on its own, quasi "
                "in combination)"
            )
        if columns and column not in columns:
            raise ValueError(f"{where}: column {column!r} is not one of the table's columns")
        if kind != "none":
            out.append((str(column), str(kind)))
    return tuple(out)


def time_zone_info(name: str, where: str) -> ZoneInfo:
    """The IANA time zone `name`, or a ValueError naming `where` it was declared."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{where}: time zone {name!r} is not an IANA time zone name: write one such as "
            "Asia/Shanghai or UTC (abbreviations like CST are ambiguous)"
        ) from None


def _refuse_unknown_zone(path: Path, spec: TableSpec) -> None:
    """A time zone that is not an IANA name is refused when the manifest is read."""
    if spec.time_zone is not None:
        time_zone_info(spec.time_zone, f"{path.name} (table {spec.name})")


def _refuse_todo(path: Path, spec: TableSpec, kind: str) -> None:
    """A table whose key or watermark is missing or still the scaffold's TODO is refused."""
    if not spec.primary_key or TODO in spec.primary_key:
        raise ValueError(
            f"{path.name}: table {spec.name}: primary_key is not set (a TODO of the scaffold): "
            "name the columns that identify a row"
        )
    if kind == "database" and spec.watermark in ("", TODO):
        raise ValueError(
            f"{path.name}: table {spec.name}: watermark is not set (a TODO of the scaffold): "
            "name a timestamp or integer column the source updates on every change"
        )


def all_manifests(folder: Path = MANIFEST_DIR) -> list[SourceManifest]:
    return [load_manifest(p.stem, folder) for p in sorted(folder.glob("*.yml"))]
