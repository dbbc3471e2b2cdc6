"""Does the transform have anything to do? What a complete build read, and what it would read now.

A build's inputs are the published batches that hold rows, the quarantined rows released since,
the dbt project (each node's and own macro's code and configuration in dbt's manifest) and the
day (age bands and "is active" flags follow the calendar). When all four equal those of the last
complete build (every model built and tested), a rebuild would give the same tables: the
transform skips its dbt tasks, and its marts asset is not updated, so nothing downstream runs
either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

# the published batches dbt's staging reads (an empty batch adds no row), and releases
_INPUTS_SQL = """
select
    count(*) filter (where coalesce(rows_written, 0) > 0),
    coalesce(max(batch_id) filter (where coalesce(rows_written, 0) > 0), 0),
    (select count(*) from audit.row_issue where released_at is not null),
    (select coalesce(max(released_at)::text, '') from audit.row_issue)
from audit.load_batch
where status = 'published'
"""


@dataclass(frozen=True)
class BuildInputs:
    published_batches: int
    last_batch_id: int
    released_rows: int
    last_release: str
    project: str
    day: str

    def fingerprint(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        return (
            f"{self.published_batches} published batches with rows (last {self.last_batch_id}), "
            f"{self.released_rows} released rows, project {self.project[:12]}, day {self.day}"
        )


@dataclass(frozen=True)
class Decision:
    build: bool
    reason: str


# what a node's build depends on in dbt's manifest; not its parse time (created_at) or paths
_NODE_KEYS = (
    "checksum",
    "config",
    "raw_code",
    "macro_sql",
    "depends_on",
    "columns",
    "given",
    "expect",
)


def project_checksum(manifest_path: Path) -> str:
    """The dbt project's content: every model's, seed's, test's, unit test's and own macro's
    code and configuration, not the manifest's bytes (its generation time and invocation id
    change at every parse)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    project = manifest.get("metadata", {}).get("project_name")
    digest = hashlib.sha256()
    count = 0
    for section in ("nodes", "unit_tests", "macros"):
        for uid, node in sorted(manifest.get(section, {}).items()):
            if section == "macros" and node.get("package_name") != project:
                continue
            kept = {key: node[key] for key in _NODE_KEYS if key in node}
            digest.update(f"{uid}\n{json.dumps(kept, sort_keys=True, default=str)}\n".encode())
            count += 1
    if not count:
        raise ValueError(f"{manifest_path} lists no dbt node")
    return digest.hexdigest()


def current_inputs(wh, manifest_path: Path, today: date | None = None) -> BuildInputs:
    """What a build would read now; the project is "" when dbt's manifest is missing (a
    deployment that never parsed the project: such a run always builds)."""
    with wh.cursor() as cur:
        cur.execute(_INPUTS_SQL)
        batches, last_batch, released, last_release = cur.fetchone()
    wh.rollback()
    return BuildInputs(
        published_batches=int(batches),
        last_batch_id=int(last_batch),
        released_rows=int(released),
        last_release=str(last_release),
        project=project_checksum(manifest_path) if manifest_path.exists() else "",
        day=(today or date.today()).isoformat(),
    )


def last_complete_build(wh) -> str | None:
    with wh.cursor() as cur:
        cur.execute("select fingerprint from audit.transform_build order by build_id desc limit 1")
        row = cur.fetchone()
    wh.rollback()
    return row[0] if row else None


def decide(current: BuildInputs, last_fingerprint: str | None, *, forced: str = "") -> Decision:
    """Build unless the inputs are those of the last complete build; `forced` names why an
    operator wants a build anyway (full_refresh, force)."""
    if forced:
        return Decision(True, f"build forced ({forced}): {current.describe()}")
    if not current.project:
        return Decision(True, "no dbt manifest to compare the project with: building")
    if last_fingerprint is None:
        return Decision(True, f"no complete build recorded yet: {current.describe()}")
    if current.fingerprint() != last_fingerprint:
        return Decision(True, f"inputs changed since the last complete build: {current.describe()}")
    return Decision(
        False,
        "nothing new since the last complete build (same published batches, releases, dbt "
        f"project and day): {current.describe()}; trigger with force on to rebuild anyway",
    )


def record_complete_build(wh, run_id: str, inputs: BuildInputs) -> None:
    with wh.cursor() as cur:
        cur.execute(
            "insert into audit.transform_build (run_id, inputs, fingerprint) values (%s, %s, %s)",
            (run_id, json.dumps(asdict(inputs), sort_keys=True), inputs.fingerprint()),
        )
    wh.commit()
