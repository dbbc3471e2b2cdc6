"""The registry of the standard layer: which mapping models feed each standard entity.

Every source maps its staging into the standard model with files of its own,
`dbt_project/models/mapping/<source>/map_<source>__<entity>.sql` (or a seed of the same name
under `dbt_project/seeds/mapping/<source>/`), and each `std_<entity>` model is the union of every
mapping for its entity. dbt cannot discover dependencies at parse time (a `ref` must be seen
while parsing, when the project graph is still empty), so the registry is found here, from the
files, and handed to dbt in the environment variable `HDP_STANDARD_MAPPINGS` by every process
that runs dbt (`platform_env`, the Cosmos transform DAG). Nobody edits a list when a source or a
hospital is added; `macros/union_standard.sql` also checks, once the graph is complete, that the
registry names every mapping the project has.

The same variable's sibling `HDP_PERSONAL_DATA_SOURCES` lists the sources whose manifest
(`dags/sources/<source>.yml`) declares `contains_personal_data`: the macro that every mapping
passes a direct identifier through (`macros/standard_identifier.sql`) pseudonymises it for those
and drops it for the others.

And `HDP_SOURCE_KEYS` gives every table's key from its manifest (source -> table -> key
columns): `published_rows('raw_his', 'patients')` (macros/published_rows.sql) looks the key up
there, so no staging or mapping model types a key by hand, and a table without one fails loudly.

A mapping that is not finished yet is parked as `map_<source>__<entity>.sql.todo` (dbt ignores
the file, and so does the registry).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hdp.manifest import MANIFEST_DIR, all_manifests

ENV_VAR = "HDP_STANDARD_MAPPINGS"
PERSONAL_DATA_ENV_VAR = "HDP_PERSONAL_DATA_SOURCES"
SOURCE_KEYS_ENV_VAR = "HDP_SOURCE_KEYS"
_NAME = re.compile(r"^map_(?P<source>[a-z][a-z0-9_]*?)__(?P<entity>[a-z][a-z0-9_]*)$")


def mapping_entity(name: str) -> str | None:
    """The standard entity a mapping node feeds (`map_hisb__encounter` -> `encounter`)."""
    match = _NAME.match(name)
    return match.group("entity") if match else None


def standard_registry(project_dir: Path) -> dict[str, list[str]]:
    """Entity -> sorted mapping model/seed names found under mapping/ folders of the project."""
    registry: dict[str, set[str]] = {}
    for folder, suffix in (("models", ".sql"), ("seeds", ".csv")):
        root = project_dir / folder / "mapping"
        for path in sorted(root.rglob(f"map_*{suffix}")) if root.is_dir() else ():
            entity = mapping_entity(path.name.removesuffix(suffix))
            if entity is not None and path.suffix == suffix:
                registry.setdefault(entity, set()).add(path.name.removesuffix(suffix))
    return {entity: sorted(names) for entity, names in sorted(registry.items())}


def personal_data_sources(manifest_dir: Path = MANIFEST_DIR) -> list[str]:
    """The sources whose manifest declares personal data (sorted)."""
    return sorted(m.source for m in all_manifests(manifest_dir) if m.contains_personal_data)


def source_keys(manifest_dir: Path = MANIFEST_DIR) -> dict[str, dict[str, list[str]]]:
    """Source -> table -> its key columns, from the manifests (a content-hash key: every
    column)."""
    return {
        m.source: {t.name: list(t.primary_key) for t in m.tables}
        for m in all_manifests(manifest_dir)
    }


def registry_env(project_dir: Path, manifest_dir: Path = MANIFEST_DIR) -> dict[str, str]:
    """The environment variables that tell dbt's standard-layer macros the registry, which
    sources hold personal data and every table's key."""
    return {
        ENV_VAR: json.dumps(standard_registry(project_dir), separators=(",", ":")),
        PERSONAL_DATA_ENV_VAR: json.dumps(personal_data_sources(manifest_dir)),
        SOURCE_KEYS_ENV_VAR: json.dumps(
            source_keys(manifest_dir), separators=(",", ":"), ensure_ascii=False
        ),
    }
