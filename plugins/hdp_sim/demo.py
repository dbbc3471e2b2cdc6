"""The demo: simulated sources, then the platform's DAGs through Airflow (`make demo`).

`python -m hdp_sim demo` sets up the simulated HIS, pharmacy, LIS and Hospital B's HIS (on the
project-local MariaDB: hdp_sim.sources) once,
then runs each DAG once with `airflow dags test` and prints the platform's summary.
`python -m hdp_sim up` is the platform's `up` with the simulated sources in place;
`python -m hdp_sim sim generate|advance` writes history or one more day (Hospital B has a
history only: `advance` leaves it as generated). The platform (hdp) never imports this package.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

from hdp.config import load_settings
from hdp.warehouse.clusters import PostgresNotFound
from hdp.warehouse.database import connect
from hdp_sim import his, hospital_b, lab, pharmacy
from hdp_sim.sources import DemoLogins, ensure_demo_databases

log = logging.getLogger(__name__)

DAG_IDS = (
    "hdp_ingest_his",
    "hdp_ingest_pharmacy",
    "hdp_ingest_lis",
    "hdp_ingest_hisb",
    "hdp_transform",
    "hdp_procurement_report",
)


def write_lab_drops(his_conn, seed: int, day: date | None = None) -> int:
    """The simulated LIS's daily CSV files in the LIS drop folder: the whole HIS history when
    the folder has none yet, or one `day`; returns the files written."""
    from hdp.ingest.files import drop_dir
    from hdp.manifest import load_manifest

    manifest = load_manifest("lis")
    folder = drop_dir(manifest)
    if day is None and any(folder.glob(manifest.pattern or "*.csv")):
        return 0
    return len(lab.write_drops(his_conn, folder, seed=seed, first_day=day, last_day=day))


def _has_clock(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("select to_regclass('sim.clock') is not null")
        exists = cur.fetchone()[0]
        if exists:
            cur.execute("select count(*) from sim.clock")
            exists = cur.fetchone()[0] > 0
    conn.rollback()
    return bool(exists)


def ensure_source_generated(lg: DemoLogins) -> list[str]:
    """Generate each simulated source's history once (the pharmacy follows the HIS's days);
    returns the sources generated now."""
    settings = load_settings()
    made: list[str] = []
    his_conn, pharmacy_conn = connect(lg.his_owner), connect(lg.pharmacy_owner)
    try:
        if not _has_clock(his_conn):
            his.generate(
                his_conn,
                his.SimConfig(
                    seed=settings.seed, scale=settings.scale, history_days=settings.history_days
                ),
            )
            made.append("his")
        if not _has_clock(pharmacy_conn):
            pharmacy.generate(pharmacy_conn, his_conn, pharmacy.PharmacyConfig(seed=settings.seed))
            made.append("pharmacy")
        if write_lab_drops(his_conn, settings.seed):
            made.append("lis")
        if _generate_hospital_b(lg, settings.seed, settings.scale, settings.history_days, False):
            made.append("hisb")
    finally:
        his_conn.close()
        pharmacy_conn.close()
    return made


def _has_mysql_clock(conn) -> bool:
    """Whether Hospital B's simulation on MySQL has been written (hisb_sim.clock has its row)."""
    with conn.cursor() as cur:
        cur.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = %s and table_name = 'clock'",
            (hospital_b.SIM_DATABASE,),
        )
        exists = cur.fetchone()[0] > 0
        if exists:
            cur.execute(f"select count(*) from {hospital_b.SIM_DATABASE}.clock")
            exists = cur.fetchone()[0] > 0
    conn.rollback()
    return bool(exists)


def _generate_hospital_b(lg: DemoLogins, seed: int, scale: float, days: int, again: bool) -> bool:
    """Hospital B's history on MariaDB (same seed and scale as Hospital A's, so its referrals
    are Hospital A's people); once, unless `again`. Returns whether it was generated now."""
    from hdp.ingest.extract import connect_source

    conn = connect_source(lg.hisb_owner)
    try:
        if not again and _has_mysql_clock(conn):
            return False
        counts = hospital_b.generate(
            conn, hospital_b.HospitalBConfig(seed=seed, scale=scale, history_days=days)
        )
        log.info("Hospital B source generated: %s", counts)
        return True
    finally:
        conn.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from hdp.runtime.airflow import dags_test, prepare, print_secrets_location, process_env
    from hdp.runtime.summary import print_summary

    settings = load_settings()
    env = process_env()
    # the demo runs its DAGs one after another, so no publish overlaps a dbt run: no window is
    # needed, and the incremental facts rebuild only what changed since the previous demo
    env.setdefault("HDP_REPROCESS_WINDOW_HOURS", "0")
    print(
        "» preparing: embedded PostgreSQL and MariaDB, databases and roles, Airflow metadata, "
        "dbt manifest"
    )
    lg = ensure_demo_databases()
    prepare(env, set_up=False)
    made = ensure_source_generated(lg)
    if made:
        print(
            f"» simulated sources generated: {', '.join(made)} "
            f"(scale {settings.scale}, seed {settings.seed})"
        )
    else:
        print("» simulated sources already present (python -m hdp_sim sim advance adds a day)")
    logs = settings.home / "logs"
    started = time.time()
    for dag_id in DAG_IDS:
        print(f"» airflow dags test {dag_id} ...", flush=True)
        log_file = logs / f"{dag_id}.log"
        log_file.unlink(missing_ok=True)
        code = dags_test(dag_id, env, log_file)
        if code != 0:
            print_summary(started_at=started)
            print(f"\n✗ DAG {dag_id} failed: see the table above and {log_file}", file=sys.stderr)
            return code
    print_summary(started_at=started)
    print_secrets_location()  # issue 6: say where the generated secrets are kept
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """The platform's `up` (Airflow, DAGs scheduled daily) with the simulated sources ready."""
    from hdp.runtime.airflow import up

    lg = ensure_demo_databases()
    ensure_source_generated(lg)
    return up(set_up=False)


def cmd_up_celery(args: argparse.Namespace) -> int:
    """The platform's distributed run (hdp.runtime.celery) with the simulated sources ready."""
    from hdp.runtime.celery import cmd_up_celery as up_celery

    lg = ensure_demo_databases()
    ensure_source_generated(lg)
    return up_celery(args)


def cmd_sim(args: argparse.Namespace) -> int:
    """Simulated sources: the HIS, and the pharmacy that follows the HIS's days."""
    lg = ensure_demo_databases()
    settings = load_settings()
    conn, pharm = connect(lg.his_owner), connect(lg.pharmacy_owner)
    try:
        if args.action == "generate":
            config = his.SimConfig(
                seed=args.seed if args.seed is not None else settings.seed,
                scale=args.scale if args.scale is not None else settings.scale,
                history_days=args.days if args.days is not None else settings.history_days,
            )
            counts = his.generate(conn, config)
            print(f"HIS source generated (seed {config.seed}, scale {config.scale}): {counts}")
            counts = pharmacy.generate(pharm, conn, pharmacy.PharmacyConfig(seed=config.seed))
            print(f"pharmacy source generated: {counts}")
            print(f"laboratory: {write_lab_drops(conn, config.seed)} results files dropped")
            _generate_hospital_b(lg, config.seed, config.scale, config.history_days, True)
            print("Hospital B (hisb) source generated")
        else:
            for _ in range(args.days or 1):
                counts = his.advance_day(conn)
                print(f"HIS advanced one day: {counts}")
                counts = pharmacy.advance_day(pharm, conn)
                print(f"pharmacy advanced one day: {counts}")
                with conn.cursor() as cur:
                    cur.execute("select current_day from sim.clock")
                    day = cur.fetchone()[0]
                conn.rollback()
                files = write_lab_drops(conn, settings.seed, day)
                print(f"laboratory: {files} results file dropped for {day}")
    finally:
        conn.close()
        pharm.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(prog="python -m hdp_sim", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    sub.add_parser(
        "demo", help="simulated sources, then ingest → gate → dbt → report through Airflow"
    ).set_defaults(func=cmd_demo)
    sub.add_parser(
        "up", help="the simulated sources, then Airflow with the DAGs scheduled daily"
    ).set_defaults(func=cmd_up)
    sub.add_parser(
        "up-celery", help="the simulated sources, then the distributed run (CeleryExecutor)"
    ).set_defaults(func=cmd_up_celery)
    sim = sub.add_parser(
        "sim", help="simulated HIS and pharmacy sources: generate history, advance days"
    )
    sim.add_argument("action", choices=["generate", "advance"])
    sim.add_argument("--scale", type=float)
    sim.add_argument("--seed", type=int)
    sim.add_argument("--days", type=int, help="history days (generate) or days to advance")
    sim.set_defaults(func=cmd_sim)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PostgresNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
