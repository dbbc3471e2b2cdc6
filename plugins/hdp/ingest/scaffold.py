"""`python -m hdp source new`: onboard a database source from its live catalogue.

Writes what README "Add a new source" asks for, with what the catalogue can tell filled in:
the manifest (each table's key and watermark, `contains_personal_data`), the three-line DAG
file, dbt sources, staging models (the same macros as every source's: published_rows,
latest_version; personal columns pseudonymised or dropped) and one parked mapping skeleton per
standard entity (`map_<source>__<entity>.sql.todo`, from the standard models' contracts). What
the catalogue cannot decide is a TODO: the manifest loader rejects a TODO key or watermark, and
a parked mapping is ignored by dbt and the standard registry until it is renamed, so a fresh
scaffold never breaks `dbt build`. It reads the catalogue only, never a row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from hdp.ingest.catalogue import Column, TablePlan, type_family
from hdp.manifest import TODO

_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
# text columns named like times: *_at, *_time, *sj (时间) -> timestamp; *_date, *rq (日期) -> date
_TEXT_TIMESTAMP = re.compile(r"(_at|_time|time|sj)$")
_TEXT_DATE = re.compile(r"(_date|rq)$")
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Scaffold:
    """One source's scaffold: where it comes from and what the catalogue said of its tables."""

    source: str
    conn_id: str
    schema: str
    plans: tuple[TablePlan, ...]
    institution: str | None = None

    @property
    def personal(self) -> list[str]:
        return [f"{p.table.name}.{c} ({k})" for p in self.plans for c, k in p.personal.items()]


@dataclass(frozen=True)
class ContractColumn:
    name: str
    data_type: str
    required: bool
    description: str
    direct_identifier: bool = False  # meta: {direct_identifier: true} in the standard's yml


@dataclass(frozen=True)
class Contract:
    """A standard entity's contract: its columns in order (models/standard/std_<entity>.yml)."""

    entity: str
    columns: tuple[ContractColumn, ...]


# --- names -------------------------------------------------------------------------------


def ident(name: str) -> str:
    """A column or table name as SQL: quoted unless plain lower case."""
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def model_name(source: str, table: str) -> str:
    return f"stg_{source}__{re.sub(r'[^a-z0-9_]+', '_', table.lower()).strip('_')}"


def _key_arg(key: tuple[str, ...]) -> str:
    """published_rows()'s key argument: a name, or a list for a composite key."""
    if len(key) == 1:
        return repr(key[0])
    return "[" + ", ".join(repr(c) for c in key) + "]"


# --- the manifest and the DAG ------------------------------------------------------------


def render_manifest(s: Scaffold) -> str:
    lines = [
        f"# Source manifest of {s.source}, scaffolded from the catalogue of schema {s.schema}",
        "# (`python -m hdp source new`). Check each table's key and watermark; a TODO is",
        "# rejected by the manifest loader until you replace it.",
        f"source: {s.source}",
        f'description: "{s.source} (TODO: what the source system is)"',
        f"conn_id: {s.conn_id}            # env AIRFLOW_CONN_{s.conn_id.upper()}",
        f"schema: {s.schema}",
        'schedule: "@daily"',
        "owner: data-platform",
    ]
    if s.personal:
        lines.append("contains_personal_data: true   # staging pseudonymises or drops them:")
        lines += [f"#   {p}" for p in s.personal]
    else:
        lines.append("contains_personal_data: false  # TODO: no column looked personal; check")
    lines += ["freshness_hours: 26", "lookback_minutes: 60", "tables:"]
    for plan in s.plans:
        lines += _manifest_table(plan)
    return "\n".join(lines) + "\n"


def _manifest_table(plan: TablePlan) -> list[str]:
    out = [f"  - name: {_scalar(plan.table.name)}"]
    if plan.table.comment:
        out.insert(0, f"  # {plan.table.comment}")
    if plan.key.columns:
        note = f"   # {plan.key.origin}" + (f"; {plan.key.note}" if plan.key.note else "")
        keys = ", ".join(_scalar(c) for c in plan.key.columns)
        out.append(f"    primary_key: [{keys}]{note}")
    else:
        out.append(f"    primary_key: [{TODO}]   # {plan.key.note}")
    if plan.watermark.column:
        out.append(f"    watermark: {_scalar(plan.watermark.column)}")
    else:
        out.append(f"    watermark: {TODO}   # {plan.watermark.note}")
    if plan.personal:  # names, card numbers, phones, addresses: each identifies a person
        out.append("    identifiers:   # direct | quasi (birth date, sex...: add them) | none")
        out += [f"      {_scalar(c)}: direct   # {k}" for c, k in plan.personal.items()]
    return out


def _scalar(value: str) -> str:
    """A name as a YAML scalar: bare when plain, else double-quoted (JSON is valid YAML)."""
    return value if _PLAIN.match(value) else json.dumps(value, ensure_ascii=False)


def render_dag(source: str) -> str:
    return (
        f'"""Airflow DAG: daily ingest of {source} (dags/sources/{source}.yml), gated by GX."""\n'
        "\n"
        "from hdp.orchestration.dags import build_ingest_dag\n"
        "\n"
        f'dag = build_ingest_dag("{source}")\n'
    )


# --- dbt sources and staging -------------------------------------------------------------


def render_sources_yml(s: Scaffold) -> str:
    tables = []
    for plan in s.plans:
        entry: dict = {"name": plan.table.name}
        if plan.table.comment:
            entry["description"] = plan.table.comment
        described = [
            {"name": c.name, "description": c.comment} for c in plan.table.columns if c.comment
        ]
        if described:
            entry["columns"] = described
        tables.append(entry)
    doc = {
        "version": 2,
        "sources": [
            {
                "name": f"raw_{s.source}",
                "description": (
                    f"{s.source}, copied incrementally by the extractor: same tables, columns "
                    "and types as the source, append-only, plus _batch_id, _extracted_at and "
                    "_source (scaffolded; TODO: describe the source)."
                ),
                "schema": f"raw_{s.source}",
                "config": {
                    "loaded_at_field": "_extracted_at",
                    "freshness": {
                        "warn_after": {"count": 26, "period": "hour"},
                        "error_after": {"count": 50, "period": "hour"},
                    },
                },
                "tables": tables,
            }
        ],
    }
    return _yaml(doc)


def render_models_yml(s: Scaffold) -> str:
    models = []
    for plan in s.plans:
        if not plan.key.columns:
            continue  # its staging is parked (.sql.todo) until the key is chosen
        key = plan.key.columns
        entry: dict = {
            "name": model_name(s.source, plan.table.name),
            "description": f"One row per {', '.join(key)}, latest published version "
            "(scaffolded: TODO describe).",
        }
        if len(key) == 1:
            entry["columns"] = [{"name": key[0], "data_tests": ["unique", "not_null"]}]
        else:
            entry["columns"] = [{"name": c, "data_tests": ["not_null"]} for c in key]
            entry["data_tests"] = [
                {"unique": {"column_name": " || '|' || ".join(f"{c}::text" for c in key)}}
            ]
        models.append(entry)
    return (
        "# Staging of "
        + s.source
        + " (scaffolded): one view per raw table.\n"
        + _yaml({"version": 2, "models": models})
    )


def _yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)


def render_staging(s: Scaffold, plan: TablePlan) -> str:
    key = plan.key.columns or (TODO,)
    version = plan.watermark.column or "_extracted_at"
    header = [
        f"-- Staging of {s.source}.{plan.table.name}"
        + (f" ({plan.table.comment})" if plan.table.comment else "")
        + ": scaffolded from the source's catalogue.",
        "-- Cleaning only: rename, cast, standardise codes, flag defects (TODO: review each",
        "-- column). Personal data is pseudonymised (a keyed HMAC) or not passed on.",
    ]
    header += [f"-- TODO {t}" for t in plan.todos]
    selected = [_staging_column(plan, c) for c in plan.table.columns]
    selected += [
        "        _source as data_source,",
        "        _extracted_at,",
        "        _batch_id",
    ]
    body = [
        "with",
        "",
        "source as (",
        f"    {{{{ published_rows('raw_{s.source}', '{plan.table.name}') }}}}",
        "),",
        "",
        "latest as (",
        f"    {{{{ latest_version('source', {_key_arg(key)}, '{version}') }}}}",
        "),",
        "",
        "cleaned as (",
        "    select",
        *selected,
        "    from latest",
        ")",
        "",
        "select * from cleaned",
    ]
    return "\n".join(header + body) + "\n"


def _staging_column(plan: TablePlan, column: Column) -> str:
    """One select line: pseudonymised, dropped, parsed or passed on as it is."""
    kind = plan.personal.get(column.name)
    line = _personal_column(column, kind) if kind else _typed_column(column)
    return "        " + line


def _alias(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower())


# a direct identifier -> its keyed HMAC (the patient index's matching keys, so equal values of
# two sources give equal keys), from the value normalised as the index normalises it
_KEYED = {
    "name": "mpi_match_name('{col}')",
    "id_card": "normalize_cn_id_card('{col}')",
    "phone": "\"nullif(regexp_replace(\" ~ to_halfwidth('{col}') ~ \", '[^0-9]', '', 'g'), '')\"",
}


def _personal_column(column: Column, kind: str) -> str:
    if kind not in _KEYED:  # an address: no model matches on it
        return f"-- {column.name}: {kind}, not passed on (TODO: keep only what a model needs)"
    value = _KEYED[kind].format(col=ident(column.name))
    return f"{{{{ matching_key('{kind}', {value}) }}}} as {_alias(column.name)}_key,"


def _typed_column(column: Column) -> str:
    col, alias = ident(column.name), _alias(column.name)
    comment = f"  -- {column.comment}" if column.comment else ""
    text = type_family(column.data_type) == "text"
    if text and _TEXT_TIMESTAMP.search(column.name.lower()):
        # the one parser the gate's `parses: timestamp` check calls (expectations/README.md)
        return (
            f"{{{{ parse_cn_timestamp('{col}') }}}} as {alias},"
            f"{comment or '  -- a timestamp delivered as text'}"
        )
    if text and _TEXT_DATE.search(column.name.lower()):
        return f"{{{{ parse_cn_date('{col}') }}}} as {alias},{comment}"
    return f"{col}{'' if col == alias else f' as {alias}'},{comment}"


# --- mapping skeletons -------------------------------------------------------------------


def read_contracts(project_dir: Path) -> list[Contract]:
    """The standard entities' contracts (models/standard/*.yml) that mapping models feed."""
    seeded = {
        p.name.split("__", 1)[1].removesuffix(".csv")
        for p in (project_dir / "seeds" / "mapping").rglob("map_*__*.csv")
    }
    contracts = []
    for path in sorted((project_dir / "models" / "standard").glob("*.yml")):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []:
            entity = model["name"].removeprefix("std_")
            if not model["name"].startswith("std_") or entity in seeded:
                continue
            contracts.append(Contract(entity, tuple(_contract_column(c) for c in model["columns"])))
    return contracts


def _contract_column(column: dict) -> ContractColumn:
    required = any(c.get("type") == "not_null" for c in column.get("constraints") or [])
    meta = column.get("meta") or (column.get("config") or {}).get("meta") or {}
    return ContractColumn(
        column["name"],
        column.get("data_type", "text"),
        required,
        " ".join(str(column.get("description", "")).split()),
        bool(meta.get("direct_identifier")),
    )


def render_mapping(s: Scaffold, contract: Contract) -> str:
    first = next((p for p in s.plans if p.key.columns), s.plans[0])
    lines = [
        f"-- Mapping of {s.source} onto the standard entity {contract.entity}"
        f" (std_{contract.entity}, models/standard/):",
        "-- scaffolded, parked as .sql.todo, which dbt and the standard registry ignore. Fill in",
        f"-- every TODO, then rename the file to map_{s.source}__{contract.entity}.sql; delete it",
        f"-- if {s.source} holds no {contract.entity}. Every column of the contract, in its order",
        "-- and type (the contract checks them); docs/standard-model.md has the conventions.",
        "with",
        "",
        "source as (",
        f"    -- TODO: the staging model(s) that hold {contract.entity}",
        f"    select * from {{{{ ref('{model_name(s.source, first.table.name)}') }}}}",
        "),",
        "",
        "mapped as (",
        "    select",
    ]
    for i, column in enumerate(contract.columns):
        comma = "," if i < len(contract.columns) - 1 else ""
        value, decided = _mapped_value(s, first, contract.entity, column)
        note = "required; " if column.required else ""
        if column.direct_identifier:
            note += "a direct identifier: a *_key of staging or null; "
        note += column.description[:80] or "what the source holds for it"
        lines.append(
            f"        {value} as {column.name}{comma}  -- {'' if decided else 'TODO '}{note}"
        )
    lines += ["    from source", ")", "", "select * from mapped"]
    return "\n".join(lines) + "\n"


def _record_id(plan: TablePlan) -> str:
    """The source's own record id: the key, a composite key joined with '|'."""
    return " || '|' || ".join(f"{ident(c)}::text" for c in plan.key.columns) or "null"


def _mapped_value(
    s: Scaffold, plan: TablePlan, entity: str, column: ContractColumn
) -> tuple[str, bool]:
    """A column's value and whether the catalogue decided it (else a typed null, a TODO)."""
    institution = f"'{s.institution}'" if s.institution else None
    if column.name == "source_system":
        return f"'{s.source}'::{column.data_type}", True
    if column.name == "institution_id" and institution:
        return f"{institution}::{column.data_type}", True
    if column.name == "source_record_id" and plan.key.columns:
        return f"({_record_id(plan)})::{column.data_type}", False
    if column.name == f"{entity}_key" and plan.key.columns and institution:
        prefix = f"{s.institution}:{s.source}:"
        return f"('{prefix}' || {_record_id(plan)})::{column.data_type}", False
    return f"cast(null as {column.data_type})", False


def render_source_system_seed(s: Scaffold) -> str:
    header = "source_system,institution_id,source_kind,vendor,description,diagnosis_code_system"
    institution = s.institution or TODO
    # vendor, description and the diagnosis code system are the operator's to fill in
    return f"{header}\n{s.source},{institution},database,,{s.source},\n"


# --- the files ---------------------------------------------------------------------------


def scaffold_files(s: Scaffold, root: Path) -> dict[Path, str]:
    """Every file of the scaffold, relative to the project root, and its content."""
    dbt = Path("dbt_project")
    files: dict[Path, str] = {
        Path("dags") / "sources" / f"{s.source}.yml": render_manifest(s),
        Path("dags") / f"hdp_ingest_{s.source}.py": render_dag(s.source),
        dbt / "models" / "staging" / s.source / f"_{s.source}__sources.yml": render_sources_yml(s),
        dbt / "models" / "staging" / s.source / f"_{s.source}__models.yml": render_models_yml(s),
    }
    for plan in s.plans:
        parked = "" if plan.key.columns else ".todo"  # a model without a key cannot build
        name = model_name(s.source, plan.table.name)
        files[dbt / "models" / "staging" / s.source / f"{name}.sql{parked}"] = render_staging(
            s, plan
        )
    for contract in read_contracts(root / dbt):
        path = dbt / "models" / "mapping" / s.source / f"map_{s.source}__{contract.entity}.sql"
        files[path.with_name(path.name + ".todo")] = render_mapping(s, contract)
    seed = dbt / "seeds" / "mapping" / s.source / f"map_{s.source}__source_system.csv"
    # with an institution the seed is complete enough to feed std_source_system; without, parked
    files[seed if s.institution else seed.with_name(seed.name + ".todo")] = (
        render_source_system_seed(s)
    )
    return files


class ScaffoldExists(RuntimeError):
    """Files of the scaffold exist already: nothing was written."""


def write_files(files: dict[Path, str], root: Path, force: bool = False) -> list[Path]:
    """Write every file, or none: an existing file refuses the whole scaffold unless force."""
    existing = sorted(p for p in files if (root / p).exists())
    if existing and not force:
        raise ScaffoldExists(
            "these files exist already, nothing was written (--force overwrites them): "
            + ", ".join(str(p) for p in existing)
        )
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return sorted(files)


def stale_files(s: Scaffold, files: dict[Path, str], root: Path) -> list[Path]:
    """Files of the source's own folders that this scaffold does not write (a table left out
    by --tables, a table dropped at the source): named, never deleted."""
    dbt = root / "dbt_project"
    folders = [
        dbt / "models" / "staging" / s.source,
        dbt / "models" / "mapping" / s.source,
        dbt / "seeds" / "mapping" / s.source,
    ]
    found = {p.relative_to(root) for f in folders if f.is_dir() for p in f.iterdir() if p.is_file()}
    return sorted(found - set(files))


def describe(s: Scaffold) -> list[str]:
    """What the catalogue told, per table, for the terminal: names and types, never a row."""
    out = []
    for plan in s.plans:
        key = ", ".join(plan.key.columns) or TODO
        origin = f" ({plan.key.origin})" if plan.key.origin else ""
        watermark = plan.watermark.column or TODO
        personal = ", ".join(f"{c} ({k})" for c, k in plan.personal.items()) or "none"
        out.append(
            f"{plan.table.name}: key {key}{origin}; watermark {watermark}; personal {personal}"
        )
        out += [f"  TODO {t}" for t in plan.todos]
        if plan.key.columns and plan.key.note:
            out.append(f"  note: {plan.key.note}")
    return out
