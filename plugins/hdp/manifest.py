"""Source manifests (dags/sources/<source>.yml): every source and table, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hdp.config import REPO_ROOT

MANIFEST_DIR = REPO_ROOT / "dags" / "sources"


@dataclass(frozen=True)
class TableSpec:
    name: str
    primary_key: tuple[str, ...]
    watermark: str


@dataclass(frozen=True)
class SourceManifest:
    source: str
    description: str
    conn_id: str
    schema: str
    schedule: str
    owner: str
    contains_personal_data: bool
    freshness_hours: float  # alert when the source has delivered no row for this long
    tables: tuple[TableSpec, ...]

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
    tables = tuple(
        TableSpec(
            name=t["name"],
            primary_key=tuple(t["primary_key"]),
            watermark=t.get("watermark", "updated_at"),
        )
        for t in data["tables"]
    )
    return SourceManifest(
        source=data["source"],
        description=data.get("description", ""),
        conn_id=data["conn_id"],
        schema=data["schema"],
        schedule=data.get("schedule", "@daily"),
        owner=data.get("owner", "data-platform"),
        contains_personal_data=bool(data.get("contains_personal_data", True)),
        freshness_hours=float(data.get("freshness_hours", 26)),
        tables=tables,
    )


def all_manifests(folder: Path = MANIFEST_DIR) -> list[SourceManifest]:
    return [load_manifest(p.stem, folder) for p in sorted(folder.glob("*.yml"))]
