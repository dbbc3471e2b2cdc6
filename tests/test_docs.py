"""Documentation that cannot go stale unnoticed: the newcomer's map is checked against the code.

No database: these read files only. Each test names what a change forgot to document, so the
fix is an edit of the yml or markdown it names.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "dbt_project" / "models"
PLATFORM = REPO / "plugins" / "hdp"
DOCS = [
    REPO / "README.md",
    REPO / "dbt_project" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
INCREMENTAL = re.compile(r"materialized\s*=\s*['\"]incremental['\"]")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _documented_models() -> set[str]:
    """Names of the models that have an entry in a yml file under models/."""
    names: set[str] = set()
    for path in MODELS.rglob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names.update(entry["name"] for entry in doc.get("models") or [])
    return names


def _incremental_facts() -> list[str]:
    return sorted(
        path.stem
        for path in MODELS.rglob("fct_*.sql")
        if INCREMENTAL.search(path.read_text(encoding="utf-8"))
    )


def _transform_dag_source() -> str:
    """The module that builds the transform DAG, wherever the package layout puts it."""
    for path in PLATFORM.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if 'dag_id="hdp_transform"' in text:
            return text
    raise AssertionError("no module of plugins/hdp builds the DAG hdp_transform")


def test_every_dbt_model_has_a_yml_entry():
    """dbt docs, and a newcomer, learn what a model holds from its yml entry."""
    models = {path.stem for path in MODELS.rglob("*.sql")}
    missing = sorted(models - _documented_models())
    assert not missing, f"models without a yml entry (description and columns): {missing}"


def test_every_yml_entry_names_a_model():
    """An entry left behind by a renamed or deleted model documents nothing."""
    models = {path.stem for path in MODELS.rglob("*.sql")}
    orphans = sorted(_documented_models() - models)
    assert not orphans, f"yml entries for models that do not exist: {orphans}"


def test_readme_starts_with_make_demo_and_make_test():
    """The first commands a newcomer reads are the two that do everything on a fresh machine."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c][:2] == ["make demo", "make test"]


def test_transform_dag_names_every_incremental_fact():
    """The transform DAG's page in the Airflow UI lists the facts a full refresh rebuilds."""
    facts = _incremental_facts()
    assert len(facts) >= 2, facts
    source = _transform_dag_source()
    missing = [fact for fact in facts if f"`{fact}`" not in source]
    assert not missing, f"the transform DAG's doc_md does not name the incremental {missing}"


def test_relative_links_in_the_docs_resolve():
    """Sections moved between files must not leave links to nowhere."""
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, f"links to missing files: {broken}"


def test_architecture_map_names_every_platform_module():
    """docs/architecture.md is where a newcomer finds a module: every one of them is on it."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(
        path.relative_to(PLATFORM).as_posix()
        for path in [*PLATFORM.rglob("*.py"), *PLATFORM.rglob("*.sql")]
        if path.name not in {"__init__.py", "__main__.py"}
    )
    missing = [m for m in modules if not re.search(rf"(?<![\w/]){re.escape(m)}\b", doc)]
    assert not missing, f"docs/architecture.md does not place {missing}"
