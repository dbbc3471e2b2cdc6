"""Documentation that cannot go stale unnoticed: the newcomer's map is checked against the code.

No database: these read files only. Each test names what a change forgot to document, so the
fix is an edit of the yml or markdown it names.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "dbt_project" / "models"
PLUGINS = REPO / "plugins"
PLATFORM = PLUGINS / "hdp"
DOCS = [
    REPO / "README.md",
    REPO / "dbt_project" / "README.md",
    REPO / "expectations" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
INCREMENTAL = re.compile(r"materialized\s*=\s*['\"]incremental['\"]")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOTTED = re.compile(r"(?<![\w/.:-])(hdp(?:_sim|_bench)?(?:\.[A-Za-z_]\w*)+)")
COMMAND = re.compile(r"python -m (hdp(?:_sim|_bench)?)((?: +[^\s`#'\"]+)*)")


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


def _defines(module: Path, name: str) -> bool:
    text = module.read_text(encoding="utf-8")
    return bool(re.search(rf"^(?:(?:async )?def|class) {name}\b|^{name}\s*[:=]", text, re.M))


def _resolves(dotted: str) -> bool:
    """A dotted name is a module under plugins/, or a name defined at the top of one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = PLUGINS.joinpath(*parts[:i])
        module = base.with_suffix(".py") if base.with_suffix(".py").exists() else None
        module = module or (base / "__init__.py" if (base / "__init__.py").exists() else None)
        if module:
            return i == len(parts) or _defines(module, parts[i])
    return False


def test_module_names_in_the_docs_exist():
    """`hdp.x.y` in a page names a module or a function a reader will look for."""
    stale = sorted(
        {
            f"{doc.relative_to(REPO)}: {name}"
            for doc in DOCS
            for name in DOTTED.findall(doc.read_text(encoding="utf-8"))
            if not _resolves(name)
        }
    )
    assert not stale, f"names of no module or function: {stale}"


@functools.cache
def _positionals(module: str, words: tuple[str, ...]) -> list[str]:
    """The positional part of `python -m module words... --help`'s usage line."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *words, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"python -m {module} {' '.join(words)}: {proc.stderr[-400:]}"
    usage = " ".join(proc.stdout.split("\n\n")[0].split())
    usage = usage.removeprefix(f"usage: python -m {' '.join([module, *words])}")
    return re.sub(r"\[[^\]]*\]", " ", usage).split()


def _command_errors(module: str, words: list[str]) -> list[str]:
    """Walk the words of a documented command down its argparse subcommands."""
    for depth, word in enumerate(words):
        positionals = _positionals(module, tuple(words[:depth]))
        if not positionals or positionals[0] == "...":
            return [] if positionals else [f"python -m {module} {' '.join(words)}: no {word!r}"]
        choices = positionals[0].strip("{}").split(",")
        if not all(alternative in choices for alternative in word.split("|")):
            return [f"python -m {module} {' '.join(words)}: {word!r} not in {choices}"]
    return []


def test_commands_in_the_docs_exist():
    """Every `python -m hdp...` command a page gives is one the entry point accepts."""
    commands = set()
    for doc in DOCS:
        for module, rest in COMMAND.findall(doc.read_text(encoding="utf-8")):
            words = []
            for word in rest.split():
                if word[0] in "-<[.$" or "=" in word:
                    break
                words.append(word)
            commands.add((module, tuple(words)))
    assert commands
    errors = [e for module, words in sorted(commands) for e in _command_errors(module, [*words])]
    assert not errors, errors
