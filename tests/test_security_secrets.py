"""Secrets: none in the repository or in DAG code; generated ones are private files whose place
the platform names."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hdp.config import REPO_ROOT, load_settings
from hdp.security import roles as security

# placeholders the docs and .env.example use in place of a value
PLACEHOLDERS = {"change-me", "changeme", "PASSWORD", "password", "secret", "xxxxxx"}
LITERALS = [
    # password = "...", token: '...', fernet_key="..."
    re.compile(
        r"(?i)(password|passwd|secret|api_?key|token|fernet_?key)[\"']?\s*[:=]\s*"
        r"[\"']([^\"'\s${<]{6,})[\"']"
    ),
    # scheme://user:password@host with a literal password
    re.compile(r"[a-z+]+://[^:/\s\"'$]+:([^@/\s\"'${<]{4,})@"),
    # VAR=value lines (env files, shell) for secret-looking variables
    re.compile(
        r"(?m)^(?:export\s+)?[A-Z][A-Z0-9_]*(?:PASSWORD|SECRET|FERNET_KEY|_KEY)=([^\s#$]{6,})\s*$"
    ),
]
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _repository_files() -> list[Path]:
    """What is committed or about to be (untracked, not ignored), minus virtualenvs."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = []
    for name in filter(None, out.split("\0")):
        path = REPO_ROOT / name
        if name.split("/")[0].startswith(".venv") or not path.is_file():
            continue
        if path.stat().st_size < 5_000_000:
            files.append(path)
    return files


def _texts() -> dict[str, str]:
    return {
        str(p.relative_to(REPO_ROOT)): p.read_bytes().decode("utf-8", errors="ignore")
        for p in _repository_files()
    }


def _values(node) -> list[str]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _values(value)]
    if isinstance(node, list):
        return [v for value in node for v in _values(value)]
    return [str(node)]


def _generated_secrets() -> dict[str, str]:
    """Every generated secret this machine holds: the tests', the demo's."""
    dirs = {load_settings().secrets_dir, REPO_ROOT / "var" / "secrets", REPO_ROOT / "var" / "test"}
    found: dict[str, str] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if not path.is_file() or "secrets" not in path.parts:
                continue
            text = path.read_text(errors="ignore").strip()
            try:
                values = _values(json.loads(text)) if path.suffix == ".json" else [text]
            except ValueError:
                values = [text]
            for value in values:
                if len(value) >= 12:
                    found[value] = str(path)
    return found


def test_no_generated_secret_is_in_the_repository(cluster):
    from hdp_sim.sources import logins

    logins()  # make sure this session's secrets exist
    generated = _generated_secrets()
    assert generated, "no generated secret found to look for"
    leaks = [
        f"{name} holds the secret from {source}"
        for name, text in _texts().items()
        for value, source in generated.items()
        if value in text
    ]
    assert not leaks


def test_no_password_or_key_literal_in_the_repository():
    leaks = []
    for name, text in _texts().items():
        if PRIVATE_KEY.search(text):
            leaks.append(f"{name}: a private key")
        for pattern in LITERALS:
            for match in pattern.finditer(text):
                if match.group(match.lastindex) not in PLACEHOLDERS:
                    line = text.count("\n", 0, match.start()) + 1
                    leaks.append(f"{name}:{line}: {match.group(0)[:60]}")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    "path",
    [
        *sorted((REPO_ROOT / "dags").rglob("*.py")),
        REPO_ROOT / "plugins/hdp/orchestration/dags.py",
        REPO_ROOT / "plugins/hdp/orchestration/common.py",
    ],
)
def test_dag_code_names_connections_never_credentials(path: Path):
    text = path.read_text()
    assert "://" not in text.replace("hdp://warehouse", "")
    assert not re.search(r"(?i)password\s*[=:]\s*[\"']", text)  # no literal password


def test_generated_secrets_are_private_files(platform):
    from hdp.runtime.env import platform_env

    platform_env()  # Airflow's keys
    security.identity_key(load_settings())
    sdir = load_settings().secrets_dir
    assert (sdir.stat().st_mode & 0o777) == 0o700
    files = [p for p in sdir.rglob("*") if p.is_file()]
    assert {"pseudonym_key", "identity_key", "airflow_fernet_key"} <= {p.name for p in files}
    for path in files:
        assert (path.stat().st_mode & 0o077) == 0, f"{path} is readable by others"
    # the source connections the demo records for the platform (URLs with passwords)
    connections = sdir / "connections"
    assert {"his_source", "pharmacy_source"} <= {p.name for p in connections.iterdir()}
    for folder in [p for p in sdir.rglob("*") if p.is_dir()]:
        assert (folder.stat().st_mode & 0o077) == 0, f"{folder} is open to others"


def test_the_platform_says_where_secrets_are_without_printing_them(cluster):
    sdir = load_settings().secrets_dir
    report = security.secrets_report()
    assert str(sdir) in report and "pseudonym_key" in report
    for path in sdir.iterdir():
        if path.is_file() and path.suffix != ".json":
            assert path.read_text().strip() not in report
