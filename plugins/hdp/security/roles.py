"""Patient data protection: least-privilege roles, the encrypted identity store, key rotation.

Group roles (NOLOGIN; people and services log in with their own login roles, members of one):

- `hdp_loader`       writes raw_<source> and the load/quality audit; reads no model
- `hdp_transformer`  reads raw, audit and the models, writes staging/intermediate/marts/reference,
                     may call hdp_private.pseudonym() but never read the key or the identity store
- `hdp_analyst`      reads the marts (and the reference code lists): nothing with an identifier
- `hdp_dept_analyst` reads the marts, facts limited by row-level security to the departments
                     mapped to the login in audit.analyst_department
- `hdp_institution_analyst` a hospital's analyst: reads the marts, facts and marts limited by
                     row-level security to the institutions mapped to the login in
                     audit.analyst_institution (group analysts, hdp_analyst, see every one)
- `hdp_admin`        member of the warehouse owner: everything, including hdp_private
- `hdp_quality_reader` the Data quality page (login hdp_quality): reads the load and check
                     audit it shows and the cleaning counts mart, nothing else

The warehouse owner (`hdp_owner`) owns the platform's schemas and audit tables and runs set-up;
the pipeline logs in as `hdp_load` (member of hdp_loader: extract and gate) and `hdp_dbt`
(member of hdp_transformer: dbt), so the tables each builds belong to its group. Secrets
(identity key, new pseudonym keys) reach the database by COPY into a session temporary table,
so they never appear in SQL text, in statement logs or in pg_stat_activity. See docs/security.md.
"""

from __future__ import annotations

import io
import logging
import os
import secrets as pysecrets
from collections.abc import Iterable
from pathlib import Path

from psycopg2 import sql

from hdp.config import Settings, load_settings
from hdp.secrets import GENERATORS, secret

log = logging.getLogger(__name__)

LOADER, TRANSFORMER, ANALYST, DEPT_ANALYST, ADMIN, QUALITY_READER = (
    "hdp_loader",
    "hdp_transformer",
    "hdp_analyst",
    "hdp_dept_analyst",
    "hdp_admin",
    "hdp_quality_reader",
)
INSTITUTION_ANALYST = "hdp_institution_analyst"
GROUPS = (LOADER, TRANSFORMER, ANALYST, DEPT_ANALYST, ADMIN, QUALITY_READER, INSTITUTION_ANALYST)
# analysts whose mart rows row-level security limits (macros/enable_department_rls.sql)
LIMITED_ANALYSTS = (DEPT_ANALYST, INSTITUTION_ANALYST)
MODEL_SCHEMAS = ("staging", "mapping", "standard", "intermediate", "marts", "reference")
# Roles whose every statement PostgreSQL logs: whoever may reach raw_* or hdp_private, and the
# analysts (who read what). Role settings are not inherited, so this is set per login.
LOGGED_GROUPS = GROUPS


def raw_schemas() -> list[str]:
    from hdp.manifest import all_manifests

    return sorted({f"raw_{m.source}" for m in all_manifests()})


def _ident(*names: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def apply_roles(cur, owner: str, database: str) -> None:
    """Create the group roles and (re)apply every grant; run as a superuser in the warehouse db.

    Idempotent. Default privileges make tables that the owner, the loader or the transformer
    create later (each dbt rebuild) carry the same grants, so no dbt hook has to repeat them.
    Row-level security is the exception: a rebuilt table has no policy, so dbt re-creates the
    policies in a post-hook (macros/enable_department_rls.sql).
    """
    for group in GROUPS:
        cur.execute("select 1 from pg_roles where rolname = %s", (group,))
        if not cur.fetchone():
            cur.execute(sql.SQL("create role {} nologin").format(sql.Identifier(group)))
    q = sql.SQL
    o = sql.Identifier(owner)
    run = cur.execute
    run(q("grant connect on database {} to {}").format(sql.Identifier(database), _ident(*GROUPS)))
    run(q("grant {} to {}").format(o, sql.Identifier(ADMIN)))
    # the owner (and so hdp_admin) keeps full rights over what the pipeline's groups build
    run(q("grant {} to {}").format(_ident(LOADER, TRANSFORMER), o))
    # GX and dbt use session temporary tables; the database is closed to PUBLIC (database.py)
    run(
        q("grant temporary on database {} to {}").format(
            sql.Identifier(database), _ident(LOADER, TRANSFORMER)
        )
    )
    creators = [o, sql.Identifier(LOADER), sql.Identifier(TRANSFORMER)]

    def defaults(schema: str, privileges: str, grantees: Iterable[str]) -> None:
        for creator in creators:
            run(
                q(
                    "alter default privileges for role {} in schema {} grant "
                    + privileges
                    + " to {}"
                ).format(creator, sql.Identifier(schema), _ident(*grantees))
            )

    # landing schemas: clear identifiers. Loader writes, transformer reads; analysts: nothing.
    for schema in raw_schemas():
        s = sql.Identifier(schema)
        run(q("create schema if not exists {} authorization {}").format(s, o))
        run(q("revoke all on schema {} from public").format(s))
        run(q("grant usage, create on schema {} to {}").format(s, sql.Identifier(LOADER)))
        run(q("grant usage on schema {} to {}").format(s, sql.Identifier(TRANSFORMER)))
        rw = "select, insert, update, delete, truncate"
        run(q(f"grant {rw} on all tables in schema {{}} to {{}}").format(s, _ident(LOADER)))
        run(q("grant select on all tables in schema {} to {}").format(s, _ident(TRANSFORMER)))
        defaults(schema, f"{rw} on tables", [LOADER])
        defaults(schema, "select on tables", [TRANSFORMER])

    _grant_audit(cur)

    # models: the transformer builds them; analysts read the marts only.
    for schema in MODEL_SCHEMAS:
        s = sql.Identifier(schema)
        run(q("revoke all on schema {} from public").format(s))
        run(q("grant usage, create on schema {} to {}").format(s, _ident(TRANSFORMER)))
        run(q("grant select on all tables in schema {} to {}").format(s, _ident(TRANSFORMER)))
        defaults(schema, "select on tables", [TRANSFORMER])
    # the Data quality page (its own login) reads the cleaning counts: schema usage here,
    # select on that one mart in its dbt post-hook; no other mart is readable
    run(q("revoke usage on schema marts from {}").format(_ident(LOADER)))
    run(q("grant usage on schema marts to {}").format(_ident(QUALITY_READER)))
    for schema in ("marts", "reference"):
        s = sql.Identifier(schema)
        run(q("grant usage on schema {} to {}").format(s, _ident(ANALYST, *LIMITED_ANALYSTS)))
        run(
            q("grant select on all tables in schema {} to {}").format(
                s, _ident(ANALYST, *LIMITED_ANALYSTS)
            )
        )
        defaults(schema, "select on tables", [ANALYST, *LIMITED_ANALYSTS])

    _hand_over(cur, owner)
    # every owner session (set-up, reports, jobs) refuses to run a policy a service role planted
    _refuse_policies(cur, owner)

    # hdp_private: the transformer may compute pseudonyms, never read the key or identities.
    run(q("revoke all on schema hdp_private from public"))
    run(q("revoke all on all tables in schema hdp_private from public"))
    run(q("revoke all on all functions in schema hdp_private from public"))
    run(q("grant usage on schema hdp_private to {}").format(_ident(TRANSFORMER)))
    run(
        q("grant execute on function hdp_private.pseudonym(text) to {}").format(_ident(TRANSFORMER))
    )


def _grant_audit(cur) -> None:
    q, run = sql.SQL, cur.execute
    # audit: the loader records loads and gate results; the transformer reads them (dbt only
    # publishes passed batches) and records its builds; department analysts read their mapping.
    run(
        q("grant usage on schema audit to {}").format(
            _ident(LOADER, TRANSFORMER, *LIMITED_ANALYSTS)
        )
    )
    # a gate rerun replaces its batch's results; no one but the owner deletes a load record
    run(q("grant select, insert, update on audit.load_batch to {}").format(_ident(LOADER)))
    run(
        q("grant select, insert, update, delete on audit.quality_result to {}").format(
            _ident(LOADER)
        )
    )
    # quarantine: the gate records row issues (a rerun replaces its batch's), replay releases
    run(q("grant select, insert, update, delete on audit.row_issue to {}").format(_ident(LOADER)))
    run(q("grant select, insert on audit.freshness_check to {}").format(_ident(LOADER)))
    # file sources: one record per delivered file (hdp.ingest.files); dbt may read the deliveries
    run(q("grant select, insert, update on audit.file_load to {}").format(_ident(LOADER)))
    run(q("grant select on audit.file_load to {}").format(_ident(TRANSFORMER)))
    run(q("grant select on audit.row_issue to {}").format(_ident(TRANSFORMER)))
    # column profiles (a gate rerun replaces its batch's) and held deliveries (the gate holds,
    # `hdp quality release|reject` decides): statistics and file names, no row value
    run(
        q("grant select, insert, update, delete on audit.column_profile to {}").format(
            _ident(LOADER)
        )
    )
    run(q("grant select, insert, update on audit.held_delivery to {}").format(_ident(LOADER)))
    # the rows held in quarantine (a view, invoker's rights): the gate and dbt's staging
    run(q("grant select on audit.quarantined_row to {}").format(_ident(LOADER, TRANSFORMER)))
    run(q("grant usage, select on all sequences in schema audit to {}").format(_ident(LOADER)))
    run(
        q("grant select on audit.load_batch, audit.quality_result to {}").format(
            _ident(TRANSFORMER)
        )
    )
    run(q("grant select, insert on audit.transform_run to {}").format(_ident(TRANSFORMER)))
    # the transform's change check (hdp.warehouse.builds) runs in Airflow with the loader login
    run(q("grant select, insert on audit.transform_build to {}").format(_ident(LOADER)))
    run(
        q("grant usage on sequence audit.transform_run_transform_id_seq to {}").format(
            _ident(TRANSFORMER)
        )
    )
    run(q("grant execute on function audit.analyze_load_batch() to {}").format(_ident(LOADER)))
    # keys without identifiers (hdp.quality.record_keys): the gate hashes the keys of its batch's
    # rows; the gate, replay and dbt's staging find the rows behind row issues. Nobody but the
    # owner reads the secret or hashes a value of their choosing (hdp_private.record_key_hmac).
    run(
        q(
            "grant execute on function audit.record_key_hashes(text, text, text[], bigint, "
            "text[]) to {}"
        ).format(_ident(LOADER))
    )
    run(
        q(
            "grant execute on function audit.issue_keys(text, text, text[], bigint[]), "
            "audit.quarantined_keys(text, text, text[]) to {}"
        ).format(_ident(LOADER, TRANSFORMER))
    )
    run(q("grant select on audit.analyst_department to {}").format(_ident(DEPT_ANALYST)))
    run(q("grant select on audit.analyst_institution to {}").format(_ident(INSTITUTION_ANALYST)))
    run(
        q("grant execute on function audit.institution_patient_keys() to {}").format(
            _ident(INSTITUTION_ANALYST)
        )
    )
    # the Data quality page shows loads, check results, quarantine counts and freshness only
    run(q("grant usage on schema audit to {}").format(_ident(QUALITY_READER)))
    run(
        q(
            "grant select on audit.load_batch, audit.quality_result, audit.row_issue, "
            "audit.freshness_check, audit.refused_file, audit.column_profile, "
            "audit.held_delivery to {}"
        ).format(_ident(QUALITY_READER))
    )
    run(
        q("grant execute on function audit.analyst_patient_keys() to {}").format(
            _ident(DEPT_ANALYST)
        )
    )


def _hand_over(cur, owner: str) -> None:
    """Give relations the owner built in raw_* and the model schemas to the group that now
    maintains them (warehouses set up before the pipeline ran as hdp_load / hdp_dbt): ANALYZE,
    CREATE INDEX and dbt's drop-and-rename all need ownership."""
    keepers = {schema: LOADER for schema in raw_schemas()} | dict.fromkeys(
        MODEL_SCHEMAS, TRANSFORMER
    )
    cur.execute(
        """
        select n.nspname, c.relname, c.relkind from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
          and pg_get_userbyid(c.relowner) = %s
        """,
        (list(keepers), owner),
    )
    for schema, name, kind in cur.fetchall():
        noun = {"v": "view", "m": "materialized view"}.get(kind, "table")
        cur.execute(
            sql.SQL("alter " + noun + " {}.{} owner to {}").format(
                sql.Identifier(schema), sql.Identifier(name), sql.Identifier(keepers[schema])
            )
        )


def _refuse_policies(cur, role: str) -> None:
    """Sessions of this role run with row_security = off: a table with a policy that would
    apply to it raises an error instead of running the policy's code with its rights. Policies
    do not apply to the owner of a table (nor to the owner and administrators as members of
    the loader and transformer) unless its owner forces them, which only an attack does."""
    cur.execute(sql.SQL("alter role {} set row_security = off").format(sql.Identifier(role)))


def _set_statement_logging(cur, role: str) -> None:
    """PostgreSQL logs every statement of this login (who read or changed what, and when)."""
    try:
        cur.execute("savepoint hdp_log")
        cur.execute(sql.SQL("alter role {} set log_statement = 'all'").format(sql.Identifier(role)))
        cur.execute("release savepoint hdp_log")
    except Exception as exc:  # an existing server may not let us (needs superuser)
        cur.execute("rollback to savepoint hdp_log")
        log.warning("could not enable statement logging for %s: %s", role, exc)


def create_login(
    cur,
    name: str,
    password: str,
    group: str,
    departments: Iterable[str] = (),
    institutions: Iterable[str] = (),
) -> None:
    """Create (or update) a login that is a member of one group role; run as a superuser.

    Loader and transformer logins act as their group (`set role` at login), so the objects they
    create are owned by the group and the group's default privileges apply to them.
    Departments: the dim_department keys a department-level analyst may see; institutions: the
    institution_ids (dim_institution) a hospital's analyst may see.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown group role {group!r}: one of {', '.join(GROUPS)}")
    role = sql.Identifier(name)
    cur.execute("select 1 from pg_roles where rolname = %s", (name,))
    verb = "alter" if cur.fetchone() else "create"
    cur.execute(sql.SQL(verb + " role {} login password %s").format(role), (password,))
    cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), role))
    if group in (LOADER, TRANSFORMER):
        cur.execute(sql.SQL("alter role {} set role = %s").format(role), (group,))
    if group in LOGGED_GROUPS:
        _set_statement_logging(cur, name)
    if group == ADMIN:  # a member of the owner: code the services plant must not run as them
        _refuse_policies(cur, name)
    cur.execute("delete from audit.analyst_department where role_name = %s", (name,))
    for dept in departments:
        cur.execute(
            "insert into audit.analyst_department (role_name, dept_code) values (%s, %s)",
            (name, dept),
        )
    cur.execute("delete from audit.analyst_institution where role_name = %s", (name,))
    for institution in institutions:
        cur.execute(
            "insert into audit.analyst_institution (role_name, institution_id) values (%s, %s)",
            (name, institution),
        )


def send_secret(cur, value: str) -> None:
    """Put a secret into this session's pg_temp.hdp_secret by COPY: never in SQL text or logs."""
    cur.execute(
        "create temporary table if not exists hdp_secret (value text not null) "
        "on commit preserve rows"
    )
    cur.execute("truncate pg_temp.hdp_secret")
    escaped = value.replace("\\", "\\\\")  # COPY text format: backslash is the escape
    cur.copy_expert("copy pg_temp.hdp_secret (value) from stdin", io.StringIO(escaped + "\n"))


def forget_secret(cur) -> None:
    cur.execute("drop table if exists pg_temp.hdp_secret")


def identity_key(settings: Settings | None = None) -> str:
    """The identity-store key: HDP_IDENTITY_KEY, else generated in $HDP_HOME/secrets."""
    settings = settings or load_settings()
    return os.environ.get("HDP_IDENTITY_KEY") or secret(settings.secrets_dir, "identity_key")


# the transformer's model that maps HIS registrations to pseudonyms (dbt int_his__patient_key_map)
KEY_MAP = "intermediate.int_his__patient_key_map"


def guard_owner_session(cur, service_tables: Iterable[str]) -> None:
    """Make this (owner's) transaction safe to read tables a service role owns.

    The loader owns raw_*, the transformer the models: each may hook code to its tables, and
    that code would run with the rights of whoever reads them, here the owner, who can read
    the pseudonym key and the identity key of this session. So: no policy runs (row_security
    off: a planted one raises "query would be affected by row-level security policy"), only
    the owner's own functions are found by name (search_path), and each service table must be
    a plain table of built-in types, locked for the transaction (audit.require_plain_table).
    """
    cur.execute("set local row_security = off")
    cur.execute("set local search_path = pg_catalog, public")
    for name in service_tables:
        cur.execute("select audit.require_plain_table(%s)", (name,))


def refresh_patient_identity(conn, key: str, source: str = "his") -> int:
    """Rebuild hdp_private.patient_identity from the landing table, encrypted; returns rows.

    The latest landed version of each registration, its pseudonym from the transform's key map
    (null until dbt has run), and every direct identifier pgp_sym_encrypt'ed (AES-256). The key
    is random (not a pass phrase), so the iterated S2K stretching (slow, per value) is skipped.
    Landing table and key map belong to service roles: read under guard_owner_session, so no
    code of theirs runs with the owner's rights (it refuses loudly instead).
    """
    raw = sql.Identifier(f"raw_{source}")
    with conn.cursor() as cur:
        guard_owner_session(cur, [f"raw_{source}.patients", KEY_MAP])
        send_secret(cur, key)
        cur.execute("delete from hdp_private.patient_identity where source = %s", (source,))
        cur.execute(
            sql.SQL(
                """
                with k as (select value from pg_temp.hdp_secret),
                latest as (
                    select distinct on (p.patient_id) p.*
                    from {raw}.patients as p
                    inner join audit.load_batch as b
                        on p._batch_id = b.batch_id and b.status = 'published'
                    order by p.patient_id, p.updated_at desc, p._batch_id desc
                )
                insert into hdp_private.patient_identity
                    (source, patient_id, patient_key, mrn, name, id_card_no, phone, address)
                select %s, latest.patient_id, km.patient_key,
                    pgp_sym_encrypt(latest.mrn, k.value, 'cipher-algo=aes256, s2k-mode=1'),
                    pgp_sym_encrypt(latest.name, k.value, 'cipher-algo=aes256, s2k-mode=1'),
                    pgp_sym_encrypt(latest.id_card_no, k.value, 'cipher-algo=aes256, s2k-mode=1'),
                    pgp_sym_encrypt(latest.phone, k.value, 'cipher-algo=aes256, s2k-mode=1'),
                    pgp_sym_encrypt(latest.address, k.value, 'cipher-algo=aes256, s2k-mode=1')
                from latest
                cross join k
                left join intermediate.int_his__patient_key_map as km
                    on latest.patient_id = km.patient_id
                """
            ).format(raw=raw),
            (source,),
        )
        rows = cur.rowcount
        forget_secret(cur)
    conn.commit()
    return rows


def reveal_identity(conn, key: str, patient_key: str, purpose: str) -> list[dict[str, str]]:
    """Decrypt the registrations behind one pseudonym; the access is recorded in the audit."""
    if not purpose.strip():
        raise ValueError("re-identification needs a stated purpose (it is audited)")
    with conn.cursor() as cur:
        send_secret(cur, key)
        cur.execute(
            "insert into audit.identity_access (patient_key, purpose) values (%s, %s)",
            (patient_key, purpose),
        )
        cur.execute(
            """
            select i.patient_id,
                pgp_sym_decrypt(i.mrn, k.value), pgp_sym_decrypt(i.name, k.value),
                pgp_sym_decrypt(i.id_card_no, k.value), pgp_sym_decrypt(i.phone, k.value),
                pgp_sym_decrypt(i.address, k.value)
            from hdp_private.patient_identity as i
            cross join pg_temp.hdp_secret as k
            where i.patient_key = %s
            order by i.patient_id
            """,
            (patient_key,),
        )
        cols = ("patient_id", "mrn", "name", "id_card_no", "phone", "address")
        found = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        forget_secret(cur)
    conn.commit()
    return found


def store_pseudonym_key(conn, key_hex: str, *, rotate: bool) -> int:
    """Write the pseudonym key (hex) into hdp_private.pseudonym_key; returns its version."""
    with conn.cursor() as cur:
        send_secret(cur, key_hex)
        if rotate:
            cur.execute(
                "update hdp_private.pseudonym_key set "
                "key_bytes = decode((select value from pg_temp.hdp_secret), 'hex'), "
                "key_version = key_version + 1, rotated_at = now() returning key_version"
            )
        else:
            cur.execute(
                "insert into hdp_private.pseudonym_key (key_bytes) "
                "select decode(value, 'hex') from pg_temp.hdp_secret "
                "on conflict (id) do nothing returning key_version"
            )
        row = cur.fetchone()
        version = row[0] if row else 0
        if rotate:
            cur.execute("insert into audit.key_rotation (key_version) values (%s)", (version,))
        forget_secret(cur)
    conn.commit()
    return version


def _write_secret_file(path: Path, value: str) -> None:
    """Replace a secret file atomically, mode 0600 from the start."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)


def rotate_pseudonym_key(conn, settings: Settings | None = None) -> int:
    """Replace the pseudonym key with a new random one; returns the new key version.

    The old key is overwritten everywhere (database and $HDP_HOME/secrets/pseudonym_key), so
    old pseudonyms can no longer be produced or linked to new ones. Rebuild the models next
    (`dbt build`), then refresh the identity store so it maps the new pseudonyms.
    """
    settings = settings or load_settings()
    new_key = pysecrets.token_hex(32)
    version = store_pseudonym_key(conn, new_key, rotate=True)
    if not version:
        raise RuntimeError("hdp_private.pseudonym_key is empty: run `python -m hdp db init` first")
    if os.environ.get("HDP_PSEUDONYM_KEY"):
        log.warning(
            "HDP_PSEUDONYM_KEY is set in the environment: it only seeds an empty warehouse, "
            "but replace it in your secrets store too, or a rebuilt warehouse gets the old key"
        )
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    _write_secret_file(settings.secrets_dir / "pseudonym_key", new_key)
    return version


def secrets_report(settings: Settings | None = None) -> str:
    """Where the generated secrets are kept (names only, never values)."""
    settings = settings or load_settings()
    sdir = settings.secrets_dir
    names = sorted(n for n in GENERATORS if (sdir / n).exists())
    extra = [p.name for p in sorted(sdir.glob("*.json"))] if sdir.exists() else []
    extra += [f"connections/{p.name}" for p in sorted(sdir.glob("connections/*"))]
    return (
        f"Secrets: generated in {sdir} (folder 0700, files 0600; never committed): "
        + ", ".join(names + extra)
        + ". Environment variables override them (see .env.example, docs/security.md)."
    )
