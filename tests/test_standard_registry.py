"""The standard layer's registry is found from the project's files (hdp.runtime.standard)."""

from __future__ import annotations

import json
from pathlib import Path

from hdp.config import REPO_ROOT
from hdp.runtime.standard import ENV_VAR, mapping_entity, registry_env, standard_registry


def _touch(path: Path, text: str = "select 1") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_a_new_source_joins_by_adding_files_in_its_own_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "models/mapping/his/map_his__encounter.sql")
    _touch(tmp_path / "models/mapping/zyyy_b/map_zyyy_b__encounter.sql")
    _touch(tmp_path / "models/mapping/zyyy_b/map_zyyy_b__medication_order_line.sql")
    _touch(tmp_path / "seeds/mapping/zyyy_b/map_zyyy_b__source_system.csv", "source_system\n")
    # parked, a staging model, a seed of another folder: none of them is a member
    _touch(tmp_path / "models/mapping/zyyy_b/map_zyyy_b__diagnosis.sql.todo")
    _touch(tmp_path / "models/staging/zyyy_b/stg_zyyy_b__mzgh.sql")
    _touch(tmp_path / "seeds/map_zyyy_b__dept.csv", "a\n")
    _touch(tmp_path / "models/mapping/zyyy_b/notes.md", "map_x__y")

    assert standard_registry(tmp_path) == {
        "encounter": ["map_his__encounter", "map_zyyy_b__encounter"],
        "medication_order_line": ["map_zyyy_b__medication_order_line"],
        "source_system": ["map_zyyy_b__source_system"],
    }
    assert json.loads(registry_env(tmp_path)[ENV_VAR])["encounter"][1] == "map_zyyy_b__encounter"


def test_the_entity_is_what_follows_the_double_underscore() -> None:
    assert mapping_entity("map_hisb__organisation_unit") == "organisation_unit"
    assert mapping_entity("map_his__encounter") == "encounter"
    assert mapping_entity("stg_his__patients") is None
    assert mapping_entity("map_nounderscore") is None


def test_the_project_registers_every_source_of_hospital_a() -> None:
    registry = standard_registry(REPO_ROOT / "dbt_project")
    assert set(registry["source_system"]) >= {
        "map_his__source_system",
        "map_pharmacy__source_system",
        "map_lis__source_system",
    }
    assert "map_his__institution" in registry["institution"]


def test_an_empty_project_has_an_empty_registry(tmp_path: Path) -> None:
    assert standard_registry(tmp_path) == {}
