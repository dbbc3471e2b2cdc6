"""Row-level security by institution (macros/enable_department_rls.sql, hdp.security.roles): a
hospital's analyst (hdp_institution_analyst) sees only the rows of the institutions mapped to
their login in every fact and mart, group analysts see all. Tested by logging in as each, and as
a hospital-B analyst who tries to reach Hospital A's rows."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from psycopg2 import errors

from hdp.runtime.dbt import run_dbt
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect

HOSPITAL_A, HOSPITAL_B = "H001", "H002"


@pytest.fixture(scope="module")
def logins(built_warehouse) -> tuple[Login, dict[str, Login]]:
    lg, _ = built_warehouse
    passwords = {name: secrets.token_urlsafe(16) for name in ("t_group", "t_a", "t_b", "t_none")}
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        security.create_login(cur, "t_group", passwords["t_group"], security.ANALYST)
        security.create_login(
            cur, "t_a", passwords["t_a"], security.INSTITUTION_ANALYST, institutions=[HOSPITAL_A]
        )
        security.create_login(
            cur, "t_b", passwords["t_b"], security.INSTITUTION_ANALYST, institutions=[HOSPITAL_B]
        )
        security.create_login(cur, "t_none", passwords["t_none"], security.INSTITUTION_ANALYST)
    admin.close()
    host, port = lg.warehouse.host, lg.warehouse.port
    return lg.warehouse, {n: Login(n, p, host, port, "hdp") for n, p in passwords.items()}


def _rows(login: Login, query: str, params: tuple = ()) -> list[tuple]:
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params or None)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def _count(login: Login, query: str, params: tuple = ()) -> int:
    return int(_rows(login, query, params)[0][0])


def _facts_and_marts(owner: Login) -> list[tuple[str, bool]]:
    """Every fact, mart and patient dimension in schema marts, and whether it has
    institution_id (found from the catalogue, not listed here)."""
    return [
        (name, has_institution)
        for name, has_institution in _rows(
            owner,
            "select c.relname, exists (select 1 from pg_attribute a where a.attrelid = c.oid "
            "and a.attname = 'institution_id' and not a.attisdropped) "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'marts' and c.relkind = 'r' "
            "and (c.relname like 'fct\\_%' or c.relname like 'mart\\_%' "
            "or c.relname like 'dim\\_patient%') order by 1",
        )
        # the cleaning counts are the platform's own (rules x runs), read by the quality page
        if name != "mart_cleaning_rule_counts"
    ]


def test_a_hospital_analyst_sees_only_their_hospitals_rows(logins) -> None:
    owner, as_login = logins
    for fact in ("fct_encounter", "fct_diagnosis"):
        hospital_a = _count(
            owner, f"select count(*) from marts.{fact} where institution_id = %s", (HOSPITAL_A,)
        )
        assert hospital_a > 0
        assert _count(as_login["t_a"], f"select count(*) from marts.{fact}") == hospital_a
        assert _rows(as_login["t_a"], f"select distinct institution_id from marts.{fact}") == [
            (HOSPITAL_A,)
        ]
        # group analysts see every institution's rows
        total = _count(owner, f"select count(*) from marts.{fact}")
        assert _count(as_login["t_group"], f"select count(*) from marts.{fact}") == total
    patients = _count(
        owner,
        "select count(distinct patient_key) from marts.fct_encounter where institution_id = %s",
        (HOSPITAL_A,),
    )
    assert _count(as_login["t_a"], "select count(*) from marts.dim_patient") == patients > 0


def test_a_hospital_b_analyst_reads_no_hospital_a_row_in_any_fact_or_mart(logins) -> None:
    owner, as_login = logins
    tables = _facts_and_marts(owner)
    assert {"fct_encounter", "fct_diagnosis", "dim_patient"} <= {name for name, _ in tables}
    for attacker in ("t_b", "t_none"):
        for name, has_institution in tables:
            if has_institution:
                seen = _count(
                    as_login[attacker],
                    f"select count(*) from marts.{name} where institution_id = %s",
                    (HOSPITAL_A,),
                )
                assert seen == 0, f"{attacker} reads Hospital A rows of marts.{name}"
            # a table that does not say whose rows it holds shows a hospital's analyst nothing
            assert _count(as_login[attacker], f"select count(*) from marts.{name}") == 0, name


def test_a_hospital_b_analyst_cannot_widen_their_own_view(logins) -> None:
    _, as_login = logins
    attacker = as_login["t_b"]
    # the mapping: read only their own row, write none
    assert _rows(attacker, "select role_name, institution_id from audit.analyst_institution") == [
        ("t_b", HOSPITAL_B)
    ]
    for statement in (
        "insert into audit.analyst_institution values ('t_b', 'H001')",
        "update audit.analyst_institution set institution_id = 'H001'",
        "set role hdp_analyst",
        "alter table marts.fct_encounter disable row level security",
        "select * from standard.std_encounter limit 1",
        "select * from intermediate.int_encounters__unioned limit 1",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            _rows(attacker, statement)
    # the patients function answers for the caller's own institutions only
    assert _count(attacker, "select count(*) from audit.institution_patient_keys()") == 0


def test_policies_survive_a_rebuild_of_the_facts(logins) -> None:
    """An operator reruns the facts (a table rebuild drops the policies; the post-hook makes
    them again): the hospital-B analyst still reads none of Hospital A's rows."""
    owner, as_login = logins
    done = run_dbt("run", "--select", "fct_encounter", "--full-refresh")
    assert done.returncode == 0, done.stdout[-2000:]
    assert _count(owner, "select count(*) from marts.fct_encounter") > 0
    assert _count(as_login["t_b"], "select count(*) from marts.fct_encounter") == 0
    assert _count(as_login["t_a"], "select count(*) from marts.fct_encounter") == _count(
        owner, "select count(*) from marts.fct_encounter where institution_id = %s", (HOSPITAL_A,)
    )
