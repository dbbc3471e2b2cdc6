"""Source manifests (dags/sources/<source>.yml): every source and table, in one place.

A source is a database (`kind: database`, the default: `conn_id`, `schema`, a watermark per
table, whose kind its source type decides: hdp.ingest.watermark; `time_zone` of naive
timestamps, per source or per table) or a folder of file drops (`kind: files`: `drop_dir`,
`pattern`, and each table's expected `columns`, the file header; hdp.ingest.files). A file
source's `format` is `csv` or `workbook` (Excel and OpenDocument sheets: hdp.ingest.excel),
by default from its pattern's suffix; a workbook table may name its `sheet` (or its position).
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
    tables = tuple(
        TableSpec(
            name=t["name"],
            primary_key=tuple(t["primary_key"]),
            watermark=t.get("watermark", "updated_at" if kind == "database" else ""),
            columns=tuple(t.get("columns") or ()),
            time_zone=t.get("time_zone", data.get("time_zone")),
            sheet=t.get("sheet"),
            charsets=_charsets(path, t),
        )
        for t in data["tables"]
    )
    for spec in tables:
        _refuse_todo(path, spec, kind)
        _refuse_unknown_zone(path, spec)
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
