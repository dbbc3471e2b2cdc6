"""Master patient index: how well the HIS registrations are grouped into persons.

The index itself is dbt (models/intermediate/int_mpi__*, int_his__patient_key_map); this module
measures it against the simulator's truth (sim.person_truth: every patient_id and its real
person). A *pair* is two registrations: a true pair belongs to one real person, a predicted pair
shares a patient_key. Precision = correct / predicted pairs, recall = correct / true pairs;
overall and by the rule that put the pair together (id_card: both registrations carry the
person's valid card number; probabilistic: at least one joined by score).

    python -m hdp_bench mpi                          # scale 0.1, 90 days, default defect rate
    python -m hdp_bench mpi --scale 0.3 --defect-rate 0.05

The benchmark drops and recreates the databases of its own HDP_HOME (default var/bench-mpi) on
its own port (default 55499), like hdp_bench.bench, and stops its cluster afterwards. It prints
counts and ratios only, never an identifier.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hdp.config import REPO_ROOT

DEFAULT_HOME = REPO_ROOT / "var" / "bench-mpi"
DEFAULT_PG_PORT = "55499"
DEFAULT_AIRFLOW_PORT = "18499"
# the key map, everything it needs, and the two review models built on it
MPI_SELECTOR = ("+int_his__patient_key_map", "int_mpi__review_queue", "int_mpi__match_explanation")
RULES = ("id_card", "probabilistic")


# --------------------------------------------------------------------------------------------
# Pairwise precision and recall


@dataclass(frozen=True)
class PairScore:
    """Pair counts of one slice (overall or one rule) and the ratios they give."""

    label: str
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _pairs_by_rule(bases: Iterable[str]) -> dict[str, int]:
    """Pairs inside one group of registrations, by rule: two card holders pair by the card;
    a pair with a registration that joined by score is probabilistic."""
    counts = Counter(bases)
    total, by_card = _pairs(sum(counts.values())), _pairs(counts["id_card"])
    return {"id_card": by_card, "probabilistic": total - by_card}


def pair_scores(
    truth: Mapping[int, int], clustering: Mapping[int, tuple[str, str]]
) -> dict[str, PairScore]:
    """Pairwise scores of `clustering` (patient_id -> (patient_key, person_match_basis))
    against `truth` (patient_id -> person_id), over the registrations both know."""
    ids = truth.keys() & clustering.keys()
    persons: Counter[int] = Counter(truth[i] for i in ids)
    true_pairs = sum(_pairs(n) for n in persons.values())
    predicted: dict[str, list[str]] = {}
    correct: dict[tuple[str, int], list[str]] = {}
    for i in ids:
        key, basis = clustering[i]
        predicted.setdefault(key, []).append(basis)
        correct.setdefault((key, truth[i]), []).append(basis)
    pred = Counter[str]()
    good = Counter[str]()
    for bases in predicted.values():
        pred.update(_pairs_by_rule(bases))
    for bases in correct.values():
        good.update(_pairs_by_rule(bases))
    # recall by rule: the share of all true pairs that this rule found
    scores = {rule: PairScore(rule, true_pairs, pred[rule], good[rule]) for rule in RULES}
    scores["overall"] = PairScore("overall", true_pairs, sum(pred.values()), sum(good.values()))
    return scores


def fetch_truth(his_conn) -> dict[int, int]:
    """patient_id -> real person_id (sim.person_truth; the simulator owner's login)."""
    with his_conn.cursor() as cur:
        cur.execute("select patient_id, person_id from sim.person_truth")
        return dict(cur.fetchall())


def fetch_clustering(warehouse_conn) -> dict[int, tuple[str, str]]:
    """patient_id -> (patient_key, person_match_basis) from the built key map."""
    with warehouse_conn.cursor() as cur:
        cur.execute(
            "select patient_id, patient_key, person_match_basis "
            "from intermediate.int_his__patient_key_map"
        )
        return {pid: (key, basis) for pid, key, basis in cur.fetchall()}


def fetch_index_counts(warehouse_conn) -> dict[str, int]:
    """Sizes of the index's models, and the persons holding two valid card numbers (must be 0)."""
    queries = {
        "registrations": "select count(*) from intermediate.int_mpi__registrations",
        "candidate_pairs": "select count(*) from intermediate.int_mpi__candidate_pairs",
        "links_id_card": "select count(*) from intermediate.int_mpi__links "
        "where match_rule = 'id_card'",
        "links_probabilistic": "select count(*) from intermediate.int_mpi__links "
        "where match_rule = 'probabilistic'",
        "review_queue": "select count(*) from intermediate.int_mpi__review_queue",
        "persons": "select count(distinct patient_key) from intermediate.int_his__patient_key_map",
        "persons_with_two_valid_cards": """
            select count(*) from (
                select km.patient_key
                from intermediate.int_his__patient_key_map as km
                inner join intermediate.int_mpi__registrations as reg
                    on km.patient_id = reg.patient_id
                where reg.is_id_card_valid
                group by km.patient_key
                having count(distinct reg.id_card_key) > 1
            ) as conflicted
        """,
    }
    counts: dict[str, int] = {}
    with warehouse_conn.cursor() as cur:
        for name, query in queries.items():
            cur.execute(query)
            counts[name] = int(cur.fetchone()[0])
    return counts


# --------------------------------------------------------------------------------------------
# Building the index on a benchmark's own databases


def dbt(*args: str) -> subprocess.CompletedProcess[str]:
    """dbt against this HDP_HOME's warehouse, with target and logs under HDP_HOME (a shared
    dbt_project/target would be clobbered by concurrent runs of other homes)."""
    from hdp.config import load_settings
    from hdp.runtime.env import platform_env

    settings = load_settings()
    env = {
        **platform_env(settings),
        "DBT_TARGET_PATH": str(settings.home / "dbt-target"),
        "DBT_LOG_PATH": str(settings.home / "dbt-logs"),
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            *args,
            "--project-dir",
            str(settings.dbt_project_dir),
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=settings.dbt_project_dir,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise RuntimeError(f"`dbt {' '.join(args)}` failed:\n{tail}\n{proc.stderr[-2000:]}")
    return proc


def build_index() -> subprocess.CompletedProcess[str]:
    """dbt build (models and their tests, unit tests included) of the index's models."""
    return dbt("build", "--select", *MPI_SELECTOR)


def ingest_his(lg, run_id: str) -> None:
    """Extract, gate and publish every HIS table as the ingest DAG does (without Airflow)."""
    from hdp.config import load_settings
    from hdp.ingest.extract import extract_table
    from hdp.manifest import load_manifest
    from hdp.quality.gate import publish_run, validate_batch
    from hdp.warehouse.database import connect

    settings = load_settings()
    manifest = load_manifest("his")
    src, wh = connect(lg.his_reader), connect(lg.loader)
    try:
        for spec in manifest.tables:
            loaded = extract_table(src, wh, manifest, spec.name, run_id)
            validate_batch(
                wh,
                warehouse_url=lg.loader.url,
                quality_dir=settings.quality_dir,
                expectations_dir=settings.expectations_dir,
                batch_id=loaded.batch_id,
                source="his",
                table=spec.name,
                primary_key=list(spec.primary_key),
                watermark=spec.watermark,
            )
        publish_run(wh, source="his", run_id=run_id, tables=[t.name for t in manifest.tables])
    finally:
        src.close()
        wh.close()


def measure(lg) -> tuple[dict[str, PairScore], dict[str, int]]:
    """Pair scores and index counts of the built index against the simulator's truth."""
    from hdp.warehouse.database import connect

    his_conn, wh = connect(lg.his_owner), connect(lg.warehouse)
    try:
        truth = fetch_truth(his_conn)
        clustering = fetch_clustering(wh)
        counts = fetch_index_counts(wh)
    finally:
        his_conn.close()
        wh.close()
    counts["duplicate_registrations_in_truth"] = len(truth) - len(set(truth.values()))
    return pair_scores(truth, clustering), counts


# --------------------------------------------------------------------------------------------
# The benchmark


def _isolate() -> None:
    """Own state folder and ports unless given; never the demo's cluster or a foreign server."""
    os.environ.setdefault("HDP_HOME", str(DEFAULT_HOME))
    os.environ.setdefault("HDP_PG_PORT", DEFAULT_PG_PORT)
    os.environ.setdefault("HDP_AIRFLOW_PORT", DEFAULT_AIRFLOW_PORT)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if os.environ.get("HDP_PG_URL"):
        raise SystemExit("hdp_bench.mpi bench drops and recreates databases: unset HDP_PG_URL")
    if Path(os.environ["HDP_HOME"]).resolve() == (REPO_ROOT / "var").resolve():
        raise SystemExit(
            "hdp_bench.mpi bench would reset the demo's databases: use another HDP_HOME"
        )


def _reset_databases() -> None:
    """Start this home's cluster; drop and recreate its warehouse and source databases."""
    import psycopg2
    from psycopg2 import sql

    from hdp_sim.sources import ensure_demo_databases as ensure_database
    from hdp_sim.sources import init_databases, logins

    ensure_database()
    lg = logins()
    admin = psycopg2.connect(lg.admin.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        for db in (lg.warehouse.dbname, lg.his_owner.dbname, lg.pharmacy_owner.dbname):
            cur.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db))
            )
    admin.close()
    init_databases(lg)


def run_bench(scale: float, days: int, defect_rate: float, seed: int) -> dict[str, object]:
    """Generate, ingest, build the index and measure it; timings in seconds."""
    from hdp.warehouse.database import connect
    from hdp_sim import his
    from hdp_sim.sources import logins

    timings: dict[str, float] = {}
    started = time.perf_counter()
    _reset_databases()
    lg = logins()
    owner = connect(lg.his_owner)
    try:
        his.generate(
            owner,
            his.SimConfig(seed=seed, scale=scale, history_days=days, defect_rate=defect_rate),
        )
    finally:
        owner.close()
    timings["generate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ingest_his(lg, "bench-mpi")
    timings["ingest_s"] = time.perf_counter() - started
    started = time.perf_counter()
    build_index()
    timings["dbt_build_s"] = time.perf_counter() - started
    scores, counts = measure(lg)
    return {"scores": scores, "counts": counts, "timings": timings}


def print_report(result: Mapping[str, object], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    scores: Mapping[str, PairScore] = result["scores"]  # type: ignore[assignment]
    counts: Mapping[str, int] = result["counts"]  # type: ignore[assignment]
    timings: Mapping[str, float] = result["timings"]  # type: ignore[assignment]
    table = Table(title=title)
    for col in ("pairs by", "true pairs", "predicted", "correct", "precision", "recall"):
        table.add_column(col, justify="left" if col == "pairs by" else "right")
    for label in ("overall", *RULES):
        s = scores[label]
        table.add_row(
            label,
            f"{s.true_pairs:,}",
            f"{s.predicted_pairs:,}",
            f"{s.correct_pairs:,}",
            f"{s.precision:.4f}" if s.predicted_pairs else "—",
            f"{s.recall:.4f}",
        )
    console = Console()
    console.print(table)
    console.print(
        "recall by rule = the share of all true pairs the rule found; "
        + ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    )
    console.print(", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=0.1, help="scale of the simulated HIS")
    parser.add_argument("--days", type=int, default=90, help="days of simulated history")
    parser.add_argument("--defect-rate", type=float, default=0.01, help="share per defect kind")
    parser.add_argument("--seed", type=int, default=42)


def command(args: argparse.Namespace) -> int:
    """`python -m hdp_bench mpi`: pairwise precision/recall against the simulator's truth."""
    _isolate()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from hdp.config import load_settings
    from hdp.warehouse.clusters import stop_embedded

    try:
        result = run_bench(args.scale, args.days, args.defect_rate, args.seed)
    finally:
        stop_embedded(load_settings())  # both clusters (warehouse, Airflow metadata)
    print_report(
        result,
        f"MPI pairwise precision/recall — scale {args.scale:g}, {args.days} days, "
        f"defect rate {args.defect_rate:g}, seed {args.seed}",
    )
    return 0
