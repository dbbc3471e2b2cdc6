"""Identifiers and quasi-identifiers after a real pipeline run (extract, gate, dbt build).

- No table that the transformer builds, and no table or view an analyst or a service login can
  read outside the landing schemas (raw_*) and staging's views over them, holds a clear name,
  card number, phone, MRN or address of a simulated patient: the master patient index keeps
  keyed HMACs of what it matches on, not the values.
- The patient dimensions publish dates to the month at most and residence to the province.
- Every patient shares the published quasi-identifiers of the patient dimensions (dim_patient
  joined to its dim_patient_history periods) with at least k - 1 others (k = HDP_K_ANONYMITY,
  5 by default), and the dbt build itself checks it (generic test `k_anonymity`).
"""

from __future__ import annotations

import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import pytest
from psycopg2 import sql

from hdp.runtime.dbt import run_dbt
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect
from hdp_sim.reference import REGIONS
from tests.test_identifier_scan import Identifiers, simulated_identifiers

K = int(os.environ.get("HDP_K_ANONYMITY", "5"))
PATIENT_DIMENSIONS = ("dim_patient", "dim_patient_history")
# published columns that are not quasi-identifiers: keys, flags an outsider cannot know, and
# the history's numbering (the periods themselves are compared). Every other column is one, so
# a column added later is measured without anyone remembering to list it.
NOT_QUASI_IDENTIFIERS = frozenset(
    {
        "patient_key",
        "patient_version_key",
        "his_record_count",
        "is_id_card_valid",
        "is_unknown_member",
        "data_source",
        "version_number",
        "is_current",
    }
)
# the landing and staging's views over it hold identifiers by design (docs/security.md)
LANDING = re.compile(r"^(raw_.*|staging)$")
SENTINEL_DATES = ("1900-01-01", "9999-12-31")
PROVINCE = re.compile(r"^(.+?(?:省|自治区)|北京市|上海市|天津市|重庆市)")


@pytest.fixture(scope="module")
def pipeline(built_warehouse):
    """The session's built warehouse (tests/conftest.py), restored."""
    return built_warehouse


@pytest.fixture(scope="module")
def identifiers(pipeline) -> Identifiers:
    lg, _ = pipeline
    return simulated_identifiers(lg)


@pytest.fixture(scope="module")
def analysts(pipeline) -> dict[str, Login]:
    """An analyst login and a department analyst login mapped to the busiest department."""
    lg, _ = pipeline
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    made: dict[str, Login] = {}
    with admin, admin.cursor() as cur:
        cur.execute(
            "select department_key from marts.fct_encounter where department_key <> '-1' "
            "group by 1 order by count(*) desc limit 1"
        )
        (department,) = cur.fetchone()
        for name, group, departments in [
            ("t_k_analyst", security.ANALYST, []),
            ("t_k_dept_analyst", security.DEPT_ANALYST, [department]),
        ]:
            password = secrets.token_urlsafe(16)
            security.create_login(cur, name, password, group, departments)
            made[name] = Login(name, password, lg.warehouse.host, lg.warehouse.port, "hdp")
    admin.close()
    return made


def _dump(cur, schema: str, table: str) -> str:
    cur.execute(
        sql.SQL("select coalesce(string_agg(t::text, E'\\n'), '') from {}.{} t").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
    )
    return cur.fetchone()[0]


def _readable_relations(cur) -> list[tuple[str, str]]:
    """Every table and view the connected role may select from (schema usage included)."""
    cur.execute(
        """
        select n.nspname, c.relname
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm')
          and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
          and n.nspname not like 'pg_temp%%'
          and has_schema_privilege(n.oid, 'usage')
          and has_table_privilege(c.oid, 'select')
        order by 1, 2
        """
    )
    return cur.fetchall()


def test_the_build_passes(pipeline):
    _, build = pipeline
    assert build.returncode == 0, build.stdout[-3000:]
    assert "ERROR=0" in build.stdout.replace(" ", "")


def test_no_table_outside_the_landing_stores_a_clear_identifier(pipeline, identifiers):
    """What the transformer builds (intermediate, marts, reference) and the audit hold no name,
    card number, phone, MRN or address: staging is views only, the rest is scanned."""
    lg, _ = pipeline
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            """
            select n.nspname, c.relname, c.relkind from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p', 'm')
              and n.nspname in ('staging', 'intermediate', 'marts', 'reference', 'audit')
            order by 1, 2
            """
        )
        stored = cur.fetchall()
        assert not [r for r in stored if r[0] == "staging"], "staging must hold views only"
        assert ("intermediate", "int_mpi__registrations", "r") in stored
        leaks = {}
        for schema, table, _ in stored:
            found = identifiers.found_in(_dump(cur, schema, table))
            if found:
                leaks[f"{schema}.{table}"] = len(found)
    wh.close()
    assert not leaks, f"clear identifiers stored outside the landing (values found): {leaks}"


@pytest.mark.parametrize("role", ["t_k_analyst", "t_k_dept_analyst", "loader", "transformer"])
def test_no_role_reads_a_clear_identifier_outside_the_landing(
    pipeline, identifiers, analysts, role
):
    """As each analyst and service login: every table and view it can read, except the landing
    (raw_*) and staging's views over it, holds no clear identifier; analysts reach neither."""
    lg, _ = pipeline
    login = analysts.get(role) or getattr(lg, role)
    conn = connect(login)
    conn.autocommit = True
    with conn.cursor() as cur:
        readable = _readable_relations(cur)
        assert readable, role
        if role.startswith("t_k_"):
            landing = [r for r in readable if LANDING.match(r[0])]
            assert not landing, f"{role} reads the landing: {landing}"
            assert ("marts", "dim_patient") in readable
        if role == "transformer":
            assert ("intermediate", "int_mpi__registrations") in readable
        leaks = {}
        for schema, table in readable:
            if LANDING.match(schema):
                continue
            found = identifiers.found_in(_dump(cur, schema, table))
            if found:
                leaks[f"{schema}.{table}"] = len(found)
    conn.close()
    assert not leaks, f"{role} reads clear identifiers (values found): {leaks}"


def _quasi_identifier_columns(cur, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = %s order by ordinal_position",
        (table,),
    )
    return [(c, t) for c, t in cur.fetchall() if c not in NOT_QUASI_IDENTIFIERS]


def _select_text(columns: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)


def published_profiles(cur) -> dict[str, dict[str, tuple]]:
    """Per patient (the unknown member left out): the published quasi-identifiers of
    dim_patient, and of each of its dim_patient_history periods."""
    patient_columns = [c for c, _ in _quasi_identifier_columns(cur, "dim_patient")]
    history_columns = [c for c, _ in _quasi_identifier_columns(cur, "dim_patient_history")]
    assert "sex" in patient_columns and "valid_from" in history_columns
    cur.execute(
        sql.SQL("select patient_key, {} from marts.dim_patient where not is_unknown_member").format(
            _select_text(patient_columns)
        )
    )
    profiles = {key: {"patient": tuple(values), "history": []} for key, *values in cur.fetchall()}
    cur.execute(
        sql.SQL(
            "select patient_key, {} from marts.dim_patient_history where not is_unknown_member"
        ).format(_select_text(history_columns))
    )
    for key, *values in cur.fetchall():
        profiles[key]["history"].append(tuple(values))
    return profiles


def smallest_groups(profiles: dict[str, dict], k: int) -> dict[str, tuple[int, float]]:
    """Smallest equivalence class and share of rows in classes under k: over dim_patient's
    quasi-identifiers, over each history period's, and over a patient's whole profile (both
    dimensions joined on patient_key, as an analyst can)."""
    tuples = {
        "dim_patient": [p["patient"] for p in profiles.values()],
        "dim_patient_history": [row for p in profiles.values() for row in p["history"]],
        "joined": [(p["patient"], tuple(sorted(p["history"]))) for p in profiles.values()],
    }
    measured = {}
    for label, rows in tuples.items():
        sizes = Counter(rows)
        small = sum(n for n in sizes.values() if n < k)
        measured[label] = (min(sizes.values()), small / len(rows))
    return measured


def test_every_patient_shares_the_published_quasi_identifiers_with_k_minus_1_others(
    pipeline, analysts
):
    conn = connect(analysts["t_k_analyst"])
    with conn.cursor() as cur:
        profiles = published_profiles(cur)
    conn.close()
    assert len(profiles) > 500
    measured = smallest_groups(profiles, K)
    report = {
        label: f"smallest {m}, {share:.1%} in groups < {K}"
        for label, (m, share) in measured.items()
    }
    assert all(m >= K for m, _ in measured.values()), report


def test_the_build_checks_k_anonymity_and_the_check_can_fail(pipeline):
    """The platform runs the check at every build (generic test k_anonymity on the patient
    dimensions); with a k larger than the population it fails and names the model."""
    _, build = pipeline
    assert "k_anonymity" in build.stdout
    strict = run_dbt(
        "test", "--select", "tag:k_anonymity", "--vars", "{k_anonymity: 1000000}", check=False
    )
    assert strict.returncode != 0, strict.stdout[-2000:]
    assert "FAIL" in strict.stdout and "dim_patient" in strict.stdout


def test_patient_dimension_dates_are_months_at_most(pipeline):
    """Every date or timestamp an analyst sees in the patient dimensions is the first of a
    month at midnight (the 1900/9999 period bounds aside)."""
    lg, _ = pipeline
    wh = connect(lg.warehouse)
    finer = {}
    with wh.cursor() as cur:
        for table in PATIENT_DIMENSIONS:
            for column, data_type in _quasi_identifier_columns(cur, table):
                if not data_type.startswith(("timestamp", "date")):
                    continue
                c = sql.Identifier(column)
                cur.execute(
                    sql.SQL(
                        "select count(*) filter (where {c} <> date_trunc('month', {c})), "
                        "count({c}) from marts.{t} where {c}::date <> all(%s::date[])"
                    ).format(c=c, t=sql.Identifier(table)),
                    (list(SENTINEL_DATES),),
                )
                off, total = cur.fetchone()
                finer[f"{table}.{column}"] = (off, total)
    wh.close()
    assert finer, "no date column measured"
    assert any(total > 0 for _, total in finer.values()), finer
    assert all(off == 0 for off, _ in finer.values()), f"(finer than a month, of): {finer}"


def test_residence_is_published_to_the_province_at_most(pipeline):
    lg, _ = pipeline
    provinces = {PROVINCE.match(name).group(1) for _, name, _ in REGIONS}
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = any(%s) "
            "and column_name like 'residence%%'",
            (list(PATIENT_DIMENSIONS),),
        )
        columns = cur.fetchall()
        assert columns
        values: set[str] = set()
        for table, column in columns:
            cur.execute(
                sql.SQL("select distinct {}::text from marts.{} where {} is not null").format(
                    sql.Identifier(column), sql.Identifier(table), sql.Identifier(column)
                )
            )
            values.update(v for (v,) in cur.fetchall())
    wh.close()
    assert len(values) > 1
    finer = sorted(values - provinces)
    assert not finer, f"{len(finer)} residence values finer than a province"
