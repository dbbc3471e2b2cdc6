"""Command line of the platform: `python -m hdp <command>` (the Makefile's targets call it)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from hdp.config import load_settings
from hdp.pgcluster import Cluster, PostgresNotFound, embedded_clusters, stop_embedded

log = logging.getLogger("hdp")


def ensure_database() -> None:
    """Start the embedded clusters, the warehouse's and Airflow's metadata (unless HDP_PG_URL
    names a server), and create dbs/roles."""
    from hdp.database import init_databases

    settings = load_settings()
    if settings.embedded:
        for cluster in embedded_clusters(settings):
            cluster.start()
    init_databases()


def cmd_db(args: argparse.Namespace) -> int:
    settings = load_settings()
    cluster = Cluster.for_home(settings.home, settings.pg_port)
    if args.action == "start":
        ensure_database()
        print(f"PostgreSQL ready on 127.0.0.1:{settings.pg_port} (data in {cluster.data_dir})")
    elif args.action == "stop":
        if settings.embedded:
            stop_embedded(settings)
        print("PostgreSQL stopped")
    elif args.action == "status":
        running = settings.embedded and cluster.is_running()
        print("running" if running else "stopped")
        return 0 if running else 1
    elif args.action == "init":
        ensure_database()
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    """Simulated sources: the HIS, and the pharmacy that follows the HIS's days."""
    from hdp.database import connect, logins
    from hdp.orchestrate import write_lab_drops
    from hdp.simulator import his, pharmacy

    ensure_database()
    settings = load_settings()
    lg = logins()
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run a command (airflow, dbt, psql...) with the platform's environment."""
    from hdp.env import platform_env

    ensure_database()
    env = {**os.environ, **platform_env()}
    return subprocess.call(args.command, env=env)


def cmd_quality(args: argparse.Namespace) -> int:
    """Quality operations: replay quarantined rows after a fix."""
    from hdp.config import load_settings
    from hdp.database import connect, logins
    from hdp.quality import replay_quarantine

    ensure_database()
    wh = connect(logins().loader)
    try:
        outcome = replay_quarantine(
            wh,
            source=args.source,
            expectations_dir=load_settings().expectations_dir,
            table=args.table,
        )
    finally:
        wh.close()
    for check_id, (released, held) in outcome.items():
        print(f"{check_id}: {released} rows released, {held} still quarantined")
    if not outcome:
        print(f"no quarantined rows of source {args.source}")
    print("released rows reach staging and the marts with the next hdp_transform run")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(prog="python -m hdp", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)

    db = sub.add_parser("db", help="embedded PostgreSQL: start, stop, status, init")
    db.add_argument("action", choices=["start", "stop", "status", "init"])
    db.set_defaults(func=cmd_db)

    sim = sub.add_parser(
        "sim", help="simulated HIS and pharmacy sources: generate history, advance days"
    )
    sim.add_argument("action", choices=["generate", "advance"])
    sim.add_argument("--scale", type=float)
    sim.add_argument("--seed", type=int)
    sim.add_argument("--days", type=int, help="history days (generate) or days to advance")
    sim.set_defaults(func=cmd_sim)

    run = sub.add_parser("run", help="run a command with the platform environment")
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)

    quality = sub.add_parser("quality", help="replay quarantined rows after a fix")
    quality.add_argument("action", choices=["replay"])
    quality.add_argument("--source", default="his")
    quality.add_argument("--table", help="only this table (default: every table)")
    quality.set_defaults(func=cmd_quality)

    from hdp import orchestrate

    orchestrate.register(sub)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PostgresNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
