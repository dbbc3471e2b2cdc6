"""The layers of the dbt project, checked on dbt's own manifest (target/manifest.json after
`dbt parse`; docs/standard-model.md): no intermediate or mart model depends on a staging model,
every standard model has an enforced contract, every mapping lives in
models/mapping/<source>/ as map_<source>__<entity> with an existing std_<entity>, and a column
the standard marks as a direct identifier leaves a mapping only through the pseudonymisation
macro (macros/standard_identifier.sql), which the source manifest's contains_personal_data
drives."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hdp.config import load_settings
from hdp.runtime.env import platform_env
from hdp.runtime.standard import PERSONAL_DATA_ENV_VAR

Manifest = dict[str, Any]
MAPPING_PATH = re.compile(
    r"^models/mapping/(?P<folder>[a-z][a-z0-9_]*)/"
    r"(?P<name>map_(?P<source>[a-z][a-z0-9_]*?)__(?P<entity>[a-z][a-z0-9_]*))\.sql$"
)
# a direct-identifier column made by the macro:
# standard_identifier[_neighbours]('<source>', '<column>', ...
MACRO_CALL = re.compile(
    r"standard_identifier(?:_neighbours)?\(\s*'(?P<source>[^']+)'\s*,\s*'(?P<column>[^']+)'"
)


def _dbt(command: str, target: Path, env_overrides: dict[str, str] | None = None, *args: str):
    settings = load_settings()
    env = platform_env(settings) | (env_overrides or {})
    return subprocess.run(
        [
            "dbt",
            command,
            *args,
            "--project-dir",
            str(settings.dbt_project_dir),
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
            "--target-path",
            str(target),
            "--no-partial-parse",
        ],
        env=env,
        cwd=settings.dbt_project_dir,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    target = tmp_path_factory.mktemp("dbt_target")
    parsed = _dbt("parse", target)
    assert parsed.returncode == 0, parsed.stdout[-3000:]
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def _models(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["package_name"] == "hdp"
    }


def _mapped_sources(manifest: Manifest) -> set[str]:
    """Sources that have joined the standard: a folder of mapping models of their own."""
    return {
        match["folder"]
        for node in _models(manifest).values()
        if (match := MAPPING_PATH.match(node["original_file_path"])) is not None
    }


def staging_dependencies(manifest: Manifest) -> list[str]:
    """'<model> -> <staging model>' for every intermediate or mart model that depends on the
    staging of a source that has joined the standard (it must read the standard instead; a
    source not mapped yet is read from its staging until its mapping folder lands)."""
    models = _models(manifest)
    mapped = _mapped_sources(manifest)
    found = []
    for node in models.values():
        if not node["original_file_path"].startswith(("models/intermediate/", "models/marts/")):
            continue
        for dependency in node["depends_on"]["nodes"]:
            upstream = models.get(dependency)
            path = upstream["original_file_path"].split("/") if upstream else []
            if path[:2] == ["models", "staging"] and path[2] in mapped:
                found.append(f"{node['name']} -> {upstream['name']}")
    return sorted(found)


def standard_without_contract(manifest: Manifest) -> list[str]:
    """Standard models that are not std_<entity> with an enforced contract."""
    return sorted(
        node["name"]
        for node in _models(manifest).values()
        if node["original_file_path"].startswith("models/standard/")
        and not (node["name"].startswith("std_") and node["config"]["contract"]["enforced"])
    )


def misplaced_mappings(manifest: Manifest) -> list[str]:
    """Mapping models outside models/mapping/<source>/map_<source>__<entity>.sql, or feeding
    an entity the standard does not have."""
    names = {node["name"] for node in _models(manifest).values()}
    wrong = []
    for node in _models(manifest).values():
        path = node["original_file_path"]
        if not path.startswith("models/mapping/"):
            continue
        match = MAPPING_PATH.match(path)
        if match is None or match["folder"] != match["source"]:
            wrong.append(f"{path}: not models/mapping/<source>/map_<source>__<entity>.sql")
        elif f"std_{match['entity']}" not in names:
            wrong.append(f"{path}: no std_{match['entity']}")
    return sorted(wrong)


def direct_identifiers(manifest: Manifest) -> dict[str, set[str]]:
    """Entity -> the columns its standard model marks meta.direct_identifier."""
    marked: dict[str, set[str]] = {}
    for node in _models(manifest).values():
        if node["original_file_path"].startswith("models/standard/"):
            entity = node["name"].removeprefix("std_")
            marked[entity] = {
                name
                for name, column in node["columns"].items()
                if (column.get("meta") or {}).get("direct_identifier")
                or (column.get("config", {}).get("meta") or {}).get("direct_identifier")
            }
    return marked


def exposed_identifiers(manifest: Manifest) -> list[str]:
    """'<mapping>.<column>' for every direct-identifier column a mapping model produces other
    than through the macro of its own source (named by the column only, never a value)."""
    marked = direct_identifiers(manifest)
    exposed = []
    for node in _models(manifest).values():
        match = MAPPING_PATH.match(node["original_file_path"])
        if match is None:
            continue
        code = node["raw_code"]
        through_macro = {
            call["column"]
            for call in MACRO_CALL.finditer(code)
            if call["source"] == match["source"]
        }
        without_calls = MACRO_CALL.sub("", code)
        for column in sorted(marked.get(match["entity"], set())):
            named_otherwise = re.search(rf"\b{re.escape(column)}\b", without_calls)
            if column not in through_macro or named_otherwise:
                exposed.append(f"{node['name']}.{column}")
    return exposed


# -- the rules themselves, on hand-made manifests that do not look like our project ----------


def _node(name: str, path: str, deps: tuple[str, ...] = (), code: str = "", **extra: Any):
    return {
        "resource_type": "model",
        "package_name": "hdp",
        "name": name,
        "original_file_path": path,
        "depends_on": {"nodes": [f"model.hdp.{d}" for d in deps]},
        "config": {"contract": {"enforced": extra.pop("enforced", False)}},
        "columns": extra.pop("columns", {}),
        "raw_code": code,
    }


def _manifest(*nodes: dict[str, Any]) -> Manifest:
    return {"nodes": {f"model.hdp.{n['name']}": n for n in nodes}}


def test_the_rules_catch_a_mart_on_staging_a_loose_contract_and_a_stray_mapping() -> None:
    hand_made = _manifest(
        _node("stg_zyyy__mzgh", "models/staging/zyyy/stg_zyyy__mzgh.sql"),
        _node("stg_newx__fy", "models/staging/newx/stg_newx__fy.sql"),
        _node("std_visit", "models/standard/std_visit.sql", enforced=True),
        _node("std_loose", "models/standard/std_loose.sql", enforced=False),
        _node("map_zyyy__visit", "models/mapping/zyyy/map_zyyy__visit.sql", ("stg_zyyy__mzgh",)),
        _node("map_zyyy__bed", "models/mapping/zyyy/map_zyyy__bed.sql"),
        _node("map_other__visit", "models/mapping/zyyy/map_other__visit.sql"),
        _node("mart_visits", "models/marts/core/mart_visits.sql", ("stg_zyyy__mzgh", "std_visit")),
        _node("int_ok", "models/intermediate/int_ok.sql", ("std_visit",)),
        # newx has no mapping folder yet: its staging is still the way in
        _node("int_newx", "models/intermediate/int_newx.sql", ("stg_newx__fy",)),
    )
    assert staging_dependencies(hand_made) == ["mart_visits -> stg_zyyy__mzgh"]
    assert standard_without_contract(hand_made) == ["std_loose"]
    assert misplaced_mappings(hand_made) == [
        "models/mapping/zyyy/map_other__visit.sql: "
        "not models/mapping/<source>/map_<source>__<entity>.sql",
        "models/mapping/zyyy/map_zyyy__bed.sql: no std_bed",
    ]


def test_a_mapping_that_exposes_a_direct_identifier_is_caught() -> None:
    columns = {
        "visit_key": {},
        "patient_name_key": {"meta": {"direct_identifier": True}},
        "phone_key": {"meta": {"direct_identifier": True}},
    }
    phone = "{{ standard_identifier('zyyy', 'phone_key', 'dh', 'mpi_phone:') }}"
    clean = f"select {{{{ standard_identifier('zyyy', 'patient_name_key', 'xm', 'n:') }}}}, {phone}"
    leaky = f"select xm as patient_name_key, {phone}"
    # the macro called with another source's flag is not this source's pseudonymisation
    borrowed = (
        "select {{ standard_identifier('his', 'patient_name_key', 'xm', 'x:') }}, "
        "{{ standard_identifier('his', 'phone_key', 'dh', 'p:') }}"
    )
    hand_made = _manifest(
        _node("std_visit", "models/standard/std_visit.sql", enforced=True, columns=columns),
        _node("map_zyyy__visit", "models/mapping/zyyy/map_zyyy__visit.sql", code=clean),
        _node("map_leak__visit", "models/mapping/leak/map_leak__visit.sql", code=leaky),
        _node("map_lend__visit", "models/mapping/lend/map_lend__visit.sql", code=borrowed),
    )
    assert exposed_identifiers(hand_made) == [
        "map_leak__visit.patient_name_key",
        "map_leak__visit.phone_key",
        "map_lend__visit.patient_name_key",
        "map_lend__visit.phone_key",
    ]


# -- the project ------------------------------------------------------------------------------


def test_no_intermediate_or_mart_model_depends_on_staging(manifest: Manifest) -> None:
    assert staging_dependencies(manifest) == []


def test_every_standard_model_has_an_enforced_contract(manifest: Manifest) -> None:
    standard = [n for n in _models(manifest).values() if n["name"].startswith("std_")]
    assert len(standard) >= 7  # institution, source_system and the HIS's entities at least
    assert standard_without_contract(manifest) == []


def test_every_mapping_is_in_its_source_folder_and_feeds_a_standard_entity(
    manifest: Manifest,
) -> None:
    mappings = [n for n in _models(manifest).values() if n["name"].startswith("map_")]
    assert {"map_his__person", "map_his__encounter", "map_his__diagnosis"} <= {
        n["name"] for n in mappings
    }
    assert misplaced_mappings(manifest) == []


def test_mappings_pass_direct_identifiers_only_through_the_macro(manifest: Manifest) -> None:
    assert {"name_key", "id_card_key", "phone_key"} <= direct_identifiers(manifest)["person"]
    assert exposed_identifiers(manifest) == []


def test_a_source_without_personal_data_has_its_identifiers_dropped(tmp_path: Path) -> None:
    """The macro follows the manifest's flag: with the HIS declared free of personal data, the
    person mapping computes no pseudonym at all and the identifier columns are empty."""
    results = {}
    for label, flagged in (("personal", '["his"]'), ("none", "[]")):
        target = tmp_path / label
        done = _dbt(
            "compile", target, {PERSONAL_DATA_ENV_VAR: flagged}, "--select", "map_his__person"
        )
        assert done.returncode == 0, done.stdout[-3000:]
        compiled = next(target.rglob("map_his__person.sql")).read_text(encoding="utf-8")
        results[label] = compiled
    assert "hdp_private.pseudonym('mpi_name:'" in results["personal"]
    assert "hdp_private.pseudonym" not in results["none"]
    assert "cast(null as text) as name_key" in results["none"]
    assert "cast(null as text) as name_deletion_keys" in results["none"]
