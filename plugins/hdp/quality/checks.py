"""The checks catalogue: every quality check as data (expectations/defaults.yml + <source>.yml).

Each check has a stable id, a level (row, batch or profile), a category (conformance, completeness,
plausibility), a severity, a threshold and two short texts: what it means and how to fix a
failure. The gate (hdp.quality.gate) runs row-level checks as SQL over the batch and batch-level
checks as Great Expectations expectations built from the same entries, so reports, history and
failure messages all speak of the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LEVELS = ("row", "batch", "profile")
CATEGORIES = ("conformance", "completeness", "plausibility")
SEVERITIES = {
    "row": ("quarantine", "warn"),
    "batch": ("block", "warn"),
    "profile": ("block", "warn"),
}
# computed by hdp.quality (gate, guard), not by GX; delivery.replaces_published: severity block
# holds the delivery for review (hdp.quality.guard)
CUSTOM_BATCH_CHECKS = ("volume.vs_recent", "delivery.replaces_published")
# level profile: a column profile monitor (hdp.quality.profiles), one of these
MONITORS = ("null_share", "pattern_share", "year_shift", "length")
# `parses: <type>` on a row check: a non-empty value the warehouse's parser (the one staging's
# macro calls too) cannot read fails the check. The condition is generated, never typed.
PARSERS = {"date": "audit.parse_cn_date", "timestamp": "audit.parse_cn_timestamp"}


class CatalogueError(ValueError):
    """A catalogue entry is incomplete or inconsistent; the message names file and id."""


@dataclass(frozen=True)
class Check:
    id: str
    table: str  # a table name, or "*" for every table of the source
    level: str
    category: str
    severity: str
    means: str
    fix: str
    column: str | None = None
    fails_when: str | None = None  # row level: SQL condition true for a failing row
    expectation: str | None = None  # batch level: a great_expectations.expectations class
    kwargs: dict[str, Any] = field(default_factory=dict)
    threshold: Any = None
    parses: str | None = None  # row level: the type a text column must parse as (PARSERS)
    monitor: str | None = None  # profile level: which profile monitor (MONITORS)

    @property
    def blocking(self) -> bool:
        return self.severity in ("block", "quarantine")

    def applies_to(self, table: str) -> bool:
        return self.table in ("*", table)


def _check(entry: dict[str, Any], where: str) -> Check:
    cid = entry.get("id")
    if not cid:
        raise CatalogueError(f"{where}: a check without an id")
    missing = [
        k for k in ("table", "level", "category", "severity", "means", "fix") if k not in entry
    ]
    if missing:
        raise CatalogueError(f"{where}: check {cid} lacks {', '.join(missing)}")
    level, severity = entry["level"], entry["severity"]
    if level not in LEVELS:
        raise CatalogueError(f"{where}: check {cid}: level {level!r} is not one of {LEVELS}")
    if entry["category"] not in CATEGORIES:
        raise CatalogueError(f"{where}: check {cid}: category must be one of {CATEGORIES}")
    if severity not in SEVERITIES[level]:
        raise CatalogueError(
            f"{where}: check {cid}: a {level}-level severity is one of {SEVERITIES[level]}"
        )
    parses = entry.get("parses")
    fails_when = entry.get("fails_when")
    if parses is not None:
        fails_when = _parse_failure(entry, where, cid)
    if level == "row" and not fails_when:
        raise CatalogueError(f"{where}: row-level check {cid} needs fails_when (a SQL condition)")
    if level == "profile" and entry.get("monitor") not in MONITORS:
        raise CatalogueError(f"{where}: profile check {cid}: monitor must be one of {MONITORS}")
    if level == "batch" and not entry.get("expectation") and cid not in CUSTOM_BATCH_CHECKS:
        raise CatalogueError(f"{where}: batch-level check {cid} needs an expectation")
    return Check(
        id=cid,
        table=entry["table"],
        level=level,
        category=entry["category"],
        severity=severity,
        means=" ".join(str(entry["means"]).split()),
        fix=" ".join(str(entry["fix"]).split()),
        column=entry.get("column") or (entry.get("kwargs") or {}).get("column"),
        fails_when=fails_when,
        expectation=entry.get("expectation"),
        kwargs=dict(entry.get("kwargs") or {}),
        threshold=entry.get("threshold"),
        parses=parses,
        monitor=entry.get("monitor"),
    )


def _parse_failure(entry: dict[str, Any], where: str, cid: str) -> str:
    """The condition of a `parses:` check: the column is not empty and does not parse."""
    parses, column = entry["parses"], entry.get("column")
    if entry.get("fails_when"):
        raise CatalogueError(f"{where}: check {cid}: give parses or fails_when, not both")
    if parses not in PARSERS:
        raise CatalogueError(f"{where}: check {cid}: parses must be one of {sorted(PARSERS)}")
    if entry.get("level") != "row" or not column:
        raise CatalogueError(f"{where}: check {cid}: parses needs level row and a column")
    quoted = '"' + str(column).replace('"', '""') + '"'
    return f"nullif(btrim({quoted}), '') is not null and {PARSERS[parses]}({quoted}) is null"


def _entries(path: Path) -> list[Check]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [_check(e, path.name) for e in data.get("checks") or []]


def load_catalogue(expectations_dir: Path, source: str) -> list[Check]:
    """Defaults, then the source's own checks (for_table resolves overrides). A source
    without a catalogue file gets the defaults only."""
    defaults = _entries(expectations_dir / "defaults.yml")
    path = expectations_dir / f"{source}.yml"
    own = _entries(path) if path.exists() else []
    ids = [c.id for c in own]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise CatalogueError(f"{path.name}: duplicate check ids {sorted(duplicated)}")
    return defaults + own


def for_table(catalogue: list[Check], table: str) -> list[Check]:
    """The checks of one table: a table-specific entry replaces a default with the same id."""
    specific = {c.id for c in catalogue if c.table == table}
    return [
        c for c in catalogue if c.applies_to(table) and not (c.table == "*" and c.id in specific)
    ]


def by_id(catalogue: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in catalogue}
