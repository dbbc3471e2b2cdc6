"""One config object for the platform, read from the environment.

Every setting has a default that works on a developer machine with the embedded PostgreSQL
cluster; production sets the environment variables (see .env.example and docs/deploy.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _project_root() -> Path:
    """The folder holding dags/, dbt_project/ and expectations/: HDP_PROJECT_DIR when set (an
    installed package), else the checkout this package was installed from in editable mode."""
    if os.environ.get("HDP_PROJECT_DIR"):
        return Path(os.environ["HDP_PROJECT_DIR"]).resolve()
    for folder in Path(__file__).resolve().parents:
        if (folder / "dbt_project").is_dir() and (folder / "dags").is_dir():
            return folder
    return Path.cwd()


REPO_ROOT = _project_root()

DEFAULT_PG_PORT = 55432


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


@dataclass(frozen=True)
class Settings:
    home: Path
    pg_port: int
    pg_url: str | None  # admin URL of an existing server; None = embedded cluster
    dbt_project_dir: Path
    dbt_profiles_dir: Path
    expectations_dir: Path
    scale: float
    seed: int
    history_days: int

    @property
    def quality_dir(self) -> Path:
        return self.home / "quality"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def embedded(self) -> bool:
        return self.pg_url is None


def load_settings() -> Settings:
    home = _path("HDP_HOME", REPO_ROOT / "var")
    dbt_dir = _path("HDP_DBT_PROJECT_DIR", REPO_ROOT / "dbt_project")
    return Settings(
        home=home,
        pg_port=int(os.environ.get("HDP_PG_PORT", DEFAULT_PG_PORT)),
        pg_url=os.environ.get("HDP_PG_URL") or None,
        dbt_project_dir=dbt_dir,
        dbt_profiles_dir=_path("HDP_DBT_PROFILES_DIR", dbt_dir),
        expectations_dir=_path("HDP_EXPECTATIONS_DIR", REPO_ROOT / "expectations"),
        scale=float(os.environ.get("HDP_SCALE", "0.1")),
        seed=int(os.environ.get("HDP_SEED", "42")),
        history_days=int(os.environ.get("HDP_HISTORY_DAYS", "90")),
    )
