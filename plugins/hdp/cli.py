"""Command line of the platform: `python -m hdp <command>` (the Makefile's targets call it).

The one entry point of the platform. The demo's simulated sources have their own
(`python -m hdp_sim`, which `make demo` calls), and so do the benchmarks (`python -m hdp_bench`).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from dataclasses import replace

from hdp.config import load_settings
from hdp.warehouse.clusters import Cluster, PostgresNotFound, stop_embedded
from hdp.warehouse.mariadb import MariaDBNotFound

log = logging.getLogger("hdp")


def cmd_db(args: argparse.Namespace) -> int:
    from hdp.runtime.setup import ensure_platform

    settings = load_settings()
    cluster = Cluster.for_home(settings.home, settings.pg_port)
    if args.action == "start":
        ensure_platform()
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
        ensure_platform()
    return 0


def cmd_mariadb(args: argparse.Namespace) -> int:
    """The embedded MariaDB server of the MySQL sources (hdp.warehouse.mariadb)."""
    from hdp.warehouse.mariadb import URL_ENV, mariadb_server, stop_mariadb

    settings = load_settings()
    server = mariadb_server(settings)
    if server is None:
        print(f"{URL_ENV} names an existing server: nothing to {args.action} here")
        return 0 if args.action != "status" else 1
    if args.action == "start":
        server.start()
        print(f"MariaDB ready on 127.0.0.1:{server.port} (data in {server.data_dir})")
    elif args.action == "stop":
        stop_mariadb(settings)
        print("MariaDB stopped")
    else:
        running = server.is_running()
        print("running" if running else "stopped")
        return 0 if running else 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a command (airflow, dbt, psql...) with the platform's environment."""
    from hdp.runtime.env import platform_env
    from hdp.runtime.setup import ensure_platform

    ensure_platform()
    env = {**os.environ, **platform_env()}
    return subprocess.call(args.command, env=env)


def cmd_dbt(args: argparse.Namespace) -> int:
    """dbt on the platform's project and profile, with the standard layer's registry
    (hdp.runtime.standard) in its environment: `python -m hdp dbt build --select std_encounter`."""
    from hdp.runtime.env import platform_env
    from hdp.runtime.setup import ensure_platform

    settings = load_settings()
    ensure_platform()
    env = {**os.environ, **platform_env(settings)}
    command = ["dbt", *args.dbt_args]
    if args.dbt_args and not {"--project-dir", "--profiles-dir"} & set(args.dbt_args):
        command += ["--project-dir", str(settings.dbt_project_dir)]
        command += ["--profiles-dir", str(settings.dbt_profiles_dir)]
    return subprocess.call(command, env=env, cwd=settings.dbt_project_dir)


def cmd_quality(args: argparse.Namespace) -> int:
    """Quality operations: replay quarantined rows after a fix; list, release or reject the
    deliveries the guard holds for review (hdp.quality.guard)."""
    from hdp.quality.gate import replay_quarantine
    from hdp.runtime.setup import ensure_platform
    from hdp.warehouse.database import connect, logins

    ensure_platform()
    if args.action != "replay":
        return _review(args)
    wh = connect(logins().loader)
    try:
        outcome = replay_quarantine(
            wh,
            source=args.source or "his",
            expectations_dir=load_settings().expectations_dir,
            table=args.table,
        )
    finally:
        wh.close()
    for check_id, (released, held) in outcome.items():
        print(f"{check_id}: {released} rows released, {held} still quarantined")
    if not outcome:
        print(f"no quarantined rows of source {args.source or 'his'}")
    print("released rows reach staging and the marts with the next hdp_transform run")
    return 0


def _review(args: argparse.Namespace) -> int:
    """`quality held`, `quality release <delivery>`, `quality reject <delivery>`."""
    from hdp.quality import guard
    from hdp.warehouse.database import connect, logins

    wh = connect(logins().loader)
    try:
        if args.action == "held":
            pending = guard.held(wh, source=args.source)
            for d in pending:
                print(f"{d.batch_id}\t{d.source}.{d.table}\t{d.file_name}\t{d.reason}")
            if not pending:
                print("no delivery is held for review")
            return 0
        if not args.delivery:
            print(f"quality {args.action} needs a delivery: its batch id, file name or sha256")
            return 2
        try:
            delivery = guard.resolve(wh, args.delivery)
            (guard.release if args.action == "release" else guard.reject)(wh, delivery)
        except (LookupError, ValueError) as exc:
            print(str(exc))
            return 1
    finally:
        wh.close()
    name = f"{delivery.source}.{delivery.table} batch {delivery.batch_id} ({delivery.file_name})"
    if args.action == "release":
        print(
            f"{name} released: published by the next run of hdp_ingest_{delivery.source} "
            "(or rerun that run's publish task); its rows then win over the published ones"
        )
    else:
        print(f"{name} rejected: never published; its rows stay in raw_{delivery.source}")
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    """File-source operations: re-admit a content already loaded (its bytes would be skipped)."""
    from hdp.quality import guard
    from hdp.runtime.setup import ensure_platform
    from hdp.warehouse.database import connect, logins

    ensure_platform()
    wh = connect(logins().loader)
    try:
        source, name, digest = guard.readmit(wh, source=args.source, ref=args.file)
    except LookupError as exc:
        print(str(exc))
        return 1
    finally:
        wh.close()
    print(
        f"{source} file {name} (sha256 {digest[:12]}) re-admitted: the next run of "
        f"hdp_ingest_{source} loads it again as a new delivery, when it is in the drop folder"
    )
    return 0


def cmd_security(args: argparse.Namespace) -> int:
    """Key rotation, identity store refresh, roles and grants, where the secrets are."""
    from hdp.security import roles
    from hdp.warehouse.database import connect, logins

    settings = load_settings()
    if args.action == "where-secrets":
        print(roles.secrets_report(settings))
        return 0
    lg = logins(settings)
    if args.action == "apply-roles":
        admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
        with admin, admin.cursor() as cur:
            roles.apply_roles(cur, lg.warehouse.user, lg.warehouse.dbname)
        admin.close()
        print("roles and grants applied")
        return 0
    conn = connect(lg.warehouse)
    try:
        if args.action == "rotate-pseudonym-key":
            version = roles.rotate_pseudonym_key(conn, settings)
            print(
                f"pseudonym key rotated to version {version}; now rebuild the models "
                "(python -m hdp run dbt build ...) and refresh the identity store "
                "(python -m hdp security refresh-identity)"
            )
        else:
            rows = roles.refresh_patient_identity(conn, roles.identity_key(settings))
            print(f"hdp_private.patient_identity refreshed: {rows} registrations, encrypted")
    finally:
        conn.close()
    return 0


def cmd_source_new(args: argparse.Namespace) -> int:
    """Scaffold a database source from its live catalogue (hdp.ingest.scaffold)."""
    from hdp.config import REPO_ROOT
    from hdp.ingest.catalogue import CatalogueError, plan_table, read_catalogue
    from hdp.ingest.scaffold import (
        SOURCE_NAME,
        Scaffold,
        ScaffoldExists,
        describe,
        scaffold_files,
        stale_files,
        write_files,
    )
    from hdp.warehouse.database import source_dialect, source_login

    if not SOURCE_NAME.match(args.name):
        print(f"error: source name {args.name!r}: lower case letters, digits, _", file=sys.stderr)
        return 2
    login = source_login(args.from_connection)
    if login is None:
        print(
            f"error: no connection {args.from_connection}: set AIRFLOW_CONN_"
            f"{args.from_connection.upper()} or write $HDP_HOME/secrets/connections/"
            f"{args.from_connection} (a read-only login of the source)",
            file=sys.stderr,
        )
        return 2
    only = [t.strip() for t in (args.tables or "").split(",") if t.strip()]
    try:
        tables = read_catalogue(login, source_dialect(args.from_connection), args.schema, only)
    except CatalogueError as exc:
        print(f"error: source {args.from_connection}: {exc}", file=sys.stderr)
        return 2
    scaffold = Scaffold(
        args.name,
        args.from_connection,
        args.schema,
        tuple(plan_table(t) for t in tables),
        args.institution,
    )
    files = scaffold_files(scaffold, REPO_ROOT)
    print("\n".join(describe(scaffold)))
    if args.dry_run:
        for path in sorted(files):
            print(f"would write {path}{' (exists)' if (REPO_ROOT / path).exists() else ''}")
        return 0
    try:
        written = write_files(files, REPO_ROOT, force=args.force)
    except ScaffoldExists as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"wrote {p}" for p in written))
    for path in stale_files(scaffold, files, REPO_ROOT):
        print(f"not part of this scaffold: {path} (delete it if its table is gone)")
    print("next: README 'Add a new source' (fill the TODOs, checks, mapping, then run)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from hdp.runtime import airflow, celery

    parser = argparse.ArgumentParser(prog="python -m hdp", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)

    db = sub.add_parser("db", help="embedded PostgreSQL: start, stop, status, init")
    db.add_argument("action", choices=["start", "stop", "status", "init"])
    db.set_defaults(func=cmd_db)

    mariadb = sub.add_parser(
        "mariadb", help="embedded MariaDB (MySQL sources): start, stop, status"
    )
    mariadb.add_argument("action", choices=["start", "stop", "status"])
    mariadb.set_defaults(func=cmd_mariadb)

    run = sub.add_parser("run", help="run a command with the platform environment")
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)

    dbt = sub.add_parser("dbt", help="dbt on the platform's project (finds every mapping)")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)

    quality = sub.add_parser(
        "quality",
        help="replay quarantined rows after a fix; list, release or reject held deliveries",
    )
    quality.add_argument("action", choices=["replay", "held", "release", "reject"])
    quality.add_argument(
        "delivery", nargs="?", help="release/reject: the batch id, file name or sha256 prefix"
    )
    quality.add_argument("--source", help="replay: the source (default his); held: only this")
    quality.add_argument("--table", help="only this table (default: every table)")
    quality.set_defaults(func=cmd_quality)

    files = sub.add_parser("files", help="file sources: re-admit a file already loaded")
    files.add_argument("action", choices=["readmit"])
    files.add_argument("file", help="the file name or a sha256 prefix (8+ characters)")
    files.add_argument("--source", help="the file source (default: any that has the file)")
    files.set_defaults(func=cmd_files)

    security = sub.add_parser(
        "security", help="rotate the pseudonym key, refresh the identity store, apply roles"
    )
    security.add_argument(
        "action",
        choices=["rotate-pseudonym-key", "refresh-identity", "apply-roles", "where-secrets"],
    )
    security.set_defaults(func=cmd_security)

    source = sub.add_parser("source", help="onboard a source: scaffold it from its catalogue")
    source_sub = source.add_subparsers(dest="source_action", required=True)
    new = source_sub.add_parser(
        "new", help="write manifest, DAG, staging and mapping skeletons from a live catalogue"
    )
    new.add_argument("name", help="the source's name (raw_<name>, stg_<name>__*)")
    new.add_argument("--from-connection", required=True, metavar="CONN_ID")
    new.add_argument("--schema", default="public", help="schema in the source (public)")
    new.add_argument("--tables", help="only these tables, comma-separated (default: all)")
    new.add_argument("--institution", help="the institution id (std_institution) it belongs to")
    new.add_argument("--dry-run", action="store_true", help="print the file list, write none")
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    new.set_defaults(func=cmd_source_new)

    airflow.register(sub)
    celery.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PostgresNotFound, MariaDBNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
