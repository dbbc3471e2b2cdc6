"""Least-privilege roles, row-level security, audit, the encrypted identity store and key
rotation, tested by connecting as each role to a warehouse built by the real pipeline."""

from __future__ import annotations

import secrets
from dataclasses import replace

import psycopg2
import pytest
from psycopg2 import errors

from hdp.runtime.dbt import run_dbt
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect
from hdp_sim.sources import init_databases

LOGINS = {
    "t_loader": security.LOADER,
    "t_transformer": security.TRANSFORMER,
    "t_analyst": security.ANALYST,
    "t_dept_analyst": security.DEPT_ANALYST,
    "t_admin": security.ADMIN,
}
RESTRICTED = [
    "select * from raw_his.patients limit 1",
    "select * from staging.stg_his__patients limit 1",
    "select * from intermediate.int_his__patient_key_map limit 1",
    "select * from hdp_private.pseudonym_key",
    "select * from hdp_private.patient_identity limit 1",
    "select hdp_private.pseudonym('x')",
]
MARTS = [
    "dim_patient",
    "dim_doctor",
    "dim_department",
    "dim_date",
    "fct_encounter",
    "fct_diagnosis",
    "fct_lab_result",
]


@pytest.fixture(scope="module")
def built(built_warehouse):
    """The session's built warehouse (tests/conftest.py), restored (this module rotates the
    pseudonym key), and a login of each kind."""
    lg, _ = built_warehouse
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        # the department with the most encounters, and one other with some
        cur.execute(
            "select department_key from marts.fct_encounter where department_key <> '-1' "
            "group by 1 order by count(*) desc limit 2"
        )
        depts = [r[0] for r in cur.fetchall()]
    wh.close()
    passwords = {name: secrets.token_urlsafe(16) for name in LOGINS}
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        for name, group in LOGINS.items():
            departments = depts[:1] if group == security.DEPT_ANALYST else ()
            security.create_login(cur, name, passwords[name], group, departments)
        security.create_login(cur, "t_dept_other", passwords["t_analyst"], security.DEPT_ANALYST)
    admin.close()
    as_role = {
        name: Login(name, passwords[name], lg.warehouse.host, lg.warehouse.port, "hdp")
        for name in LOGINS
    }
    as_role["t_dept_other"] = replace(as_role["t_analyst"], user="t_dept_other")
    return lg, as_role, depts


def _rows(login: Login, query: str, params: tuple = ()) -> list[tuple]:
    conn = connect(login)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def _scalar(login: Login, query: str, params: tuple = ()):
    return _rows(login, query, params)[0][0]


def _denied(login: Login, query: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        _rows(login, query)


def test_group_roles_exist_and_cannot_log_in(built):
    lg, _, _ = built
    rows = dict(
        _rows(
            lg.admin,
            "select rolname, rolcanlogin from pg_roles where rolname = any(%s)",
            (list(security.GROUPS),),
        )
    )
    assert rows == dict.fromkeys(security.GROUPS, False)


def test_analyst_reads_every_mart_and_nothing_with_an_identifier(built):
    lg, as_role, _ = built
    analyst = as_role["t_analyst"]
    for mart in MARTS:
        assert _scalar(analyst, f"select count(*) from marts.{mart}") == _scalar(
            lg.warehouse, f"select count(*) from marts.{mart}"
        )
    assert _scalar(analyst, "select count(*) from reference.icd10_codes") > 0
    for query in [*RESTRICTED, "select * from audit.load_batch", "create table marts.x (i int)"]:
        _denied(analyst, query)


def test_department_analyst_sees_only_their_departments_rows(built):
    lg, as_role, depts = built
    dept = as_role["t_dept_analyst"]
    mine = depts[0]
    seen = _rows(dept, "select distinct department_key from marts.fct_encounter")
    assert seen == [(mine,)]
    for fact in ("fct_encounter", "fct_diagnosis"):
        expected = _scalar(
            lg.warehouse, f"select count(*) from marts.{fact} where department_key = %s", (mine,)
        )
        assert expected > 0
        assert _scalar(dept, f"select count(*) from marts.{fact}") == expected
    patients = _scalar(
        lg.warehouse,
        "select count(distinct patient_key) from marts.fct_encounter where department_key = %s",
        (mine,),
    )
    assert _scalar(dept, "select count(*) from marts.dim_patient") == patients
    assert patients < _scalar(lg.warehouse, "select count(*) from marts.dim_patient")
    # dimensions without patient data are whole; the mapping shows only the analyst's own rows
    assert _scalar(dept, "select count(*) from marts.dim_department") == _scalar(
        lg.warehouse, "select count(*) from marts.dim_department"
    )
    assert _rows(dept, "select role_name, dept_code from audit.analyst_department") == [
        ("t_dept_analyst", mine)
    ]
    # a department analyst with no department sees no fact and no patient
    other = as_role["t_dept_other"]
    assert _scalar(other, "select count(*) from marts.fct_encounter") == 0
    assert _scalar(other, "select count(*) from marts.dim_patient") == 0
    for query in RESTRICTED:
        _denied(dept, query)


def test_loader_writes_landing_and_audit_but_reads_no_model(built):
    lg, as_role, _ = built
    loader = as_role["t_loader"]
    assert _scalar(loader, "select count(*) from raw_his.patients") > 0
    _rows(loader, "create table raw_his.t_probe (i int); insert into raw_his.t_probe values (1)")
    batch = _scalar(
        loader,
        "insert into audit.load_batch (source, table_name, run_id) "
        "values ('his', 't_probe', 'probe') returning loaded_by",
    )
    assert batch == "t_loader"  # the login, not the group it acts as
    # what the loader creates, the transformer can read (default privileges of the group)
    assert _scalar(as_role["t_transformer"], "select count(*) from raw_his.t_probe") == 1
    _denied(as_role["t_analyst"], "select * from raw_his.t_probe")
    for mart in MARTS:
        _denied(loader, f"select * from marts.{mart} limit 1")
    for query in RESTRICTED[1:]:
        _denied(loader, query)
    _denied(loader, "create table marts.x (i int)")
    _denied(loader, "delete from audit.load_batch where run_id = 'probe'")  # the record stays
    _rows(loader, "drop table raw_his.t_probe")
    _rows(lg.warehouse, "delete from audit.load_batch where run_id = 'probe'")


def test_transformer_builds_models_with_pseudonyms_but_cannot_read_the_key(built):
    _, as_role, _ = built
    tr = as_role["t_transformer"]
    assert _scalar(tr, "select count(*) from raw_his.patients") > 0
    assert _scalar(tr, "select count(*) from staging.stg_his__patients") > 0
    assert _scalar(tr, "select count(*) from audit.load_batch") > 0
    _rows(
        tr,
        "create table marts.t_probe as select hdp_private.pseudonym('x') as k; "
        "create table intermediate.t_probe (i int)",
    )
    assert len(_scalar(tr, "select k from marts.t_probe")) == 64
    assert _scalar(as_role["t_analyst"], "select count(*) from marts.t_probe") == 1
    _rows(tr, "drop table marts.t_probe; drop table intermediate.t_probe")
    for query in RESTRICTED[3:5]:
        _denied(tr, query)
    _denied(tr, "insert into raw_his.departments (dept_code) values ('x')")
    _denied(tr, "insert into audit.load_batch (source, table_name, run_id) values ('a', 'b', 'c')")


def test_admin_reads_restricted_data(built):
    _, as_role, _ = built
    admin = as_role["t_admin"]
    assert _scalar(admin, "select count(*) from hdp_private.pseudonym_key") == 1
    assert _scalar(admin, "select count(*) from raw_his.patients") > 0


def test_audit_records_who_loaded_transformed_and_read(built, cluster):
    lg, as_role, _ = built
    # the pipeline's own logins, never the owner: loads by hdp_load, dbt builds by hdp_dbt
    assert _rows(lg.warehouse, "select distinct loaded_by from audit.load_batch") == [
        (lg.loader.user,)
    ]
    built_marts = _rows(lg.warehouse, "select distinct model, built_by from audit.transform_run")
    assert {f"marts.{m}" for m in MARTS} <= {m for m, _ in built_marts}  # every mart listed
    assert {b for _, b in built_marts} == {lg.transformer.user}
    owners = _rows(
        lg.warehouse,
        "select distinct n.nspname, pg_get_userbyid(c.relowner) from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('raw_his', 'staging', 'intermediate', 'marts') "
        "and c.relkind in ('r', 'v')",
    )
    assert sorted(owners) == [
        ("intermediate", "hdp_transformer"),
        ("marts", "hdp_transformer"),
        ("raw_his", "hdp_loader"),
        ("staging", "hdp_transformer"),
    ]
    settings = dict(
        _rows(
            lg.admin,
            "select r.rolname, array_to_string(s.setconfig, ',') from pg_db_role_setting s "
            "join pg_roles r on r.oid = s.setrole where r.rolname = any(%s)",
            ([*LOGINS, lg.warehouse.user, lg.loader.user, lg.transformer.user],),
        )
    )
    for name in [*LOGINS, lg.warehouse.user, lg.loader.user, lg.transformer.user]:
        assert "log_statement=all" in settings[name], name
    marker = f"hdp_audit_probe_{secrets.token_hex(4)}"
    _rows(as_role["t_admin"], f"select count(*) as {marker} from raw_his.patients")
    server_log = cluster.log_file.read_text(errors="replace")
    assert any("t_admin@hdp" in line and marker in line for line in server_log.splitlines())


def test_roles_are_idempotent(built):
    lg, as_role, depts = built
    # a warehouse set up before the pipeline had its own logins: the owner built this table
    _rows(lg.warehouse, "create table marts.t_legacy as select 1 as n")
    init_databases()  # again: roles, grants and logins stay as they are
    owner = "select pg_get_userbyid(relowner) from pg_class where oid = 'marts.t_legacy'::regclass"
    assert _scalar(lg.warehouse, owner) == security.TRANSFORMER  # handed over: dbt may rebuild it
    _rows(lg.transformer, "drop table marts.t_legacy")
    assert _rows(
        as_role["t_dept_analyst"], "select distinct department_key from marts.fct_encounter"
    ) == [(depts[0],)]


def test_identity_store_is_encrypted_and_reidentification_is_audited(built, cluster):
    lg, _, _ = built
    key = security.identity_key()
    wh = connect(lg.warehouse)
    rows = security.refresh_patient_identity(wh, key)
    assert rows == _scalar(lg.warehouse, "select count(distinct patient_id) from raw_his.patients")
    src = connect(lg.his_owner)
    with src.cursor() as cur:
        cur.execute(
            "select patient_id, name, id_card_no, phone from his.patients "
            "where id_card_no is not null order by patient_id limit 1"
        )
        patient_id, name, id_card_no, phone = cur.fetchone()
    src.close()
    patient_key = _scalar(
        lg.warehouse,
        "select patient_key from hdp_private.patient_identity where patient_id = %s",
        (patient_id,),
    )
    stored = _scalar(
        lg.warehouse,
        "select concat_ws('|', mrn, name, id_card_no, phone, address)::text "
        "from hdp_private.patient_identity where patient_id = %s",
        (patient_id,),
    )
    assert id_card_no not in stored and phone not in stored
    found = security.reveal_identity(wh, key, patient_key, "test: verify decryption")
    assert {
        (r["name"], r["id_card_no"], r["phone"]) for r in found if r["patient_id"] == patient_id
    } == {(name, id_card_no, phone)}
    with pytest.raises(psycopg2.Error):  # the wrong key decrypts nothing
        security.reveal_identity(wh, "wrong-key", patient_key, "test")
    wh.rollback()
    wh.close()
    assert (
        _scalar(
            lg.warehouse,
            "select count(*) from audit.identity_access where patient_key = %s",
            (patient_key,),
        )
        >= 1
    )
    # the identity key never reaches the server's statement log (it travels by COPY)
    assert key not in cluster.log_file.read_text(errors="replace")


def test_pseudonym_key_rotation_changes_every_key(built, cluster):
    from hdp.config import load_settings

    lg, as_role, depts = built
    settings = load_settings()
    key_file = settings.secrets_dir / "pseudonym_key"
    old_file_key = key_file.read_text().strip()
    before = {r[0] for r in _rows(lg.warehouse, "select patient_key from marts.dim_patient")}
    wh = connect(lg.warehouse)
    version = security.rotate_pseudonym_key(wh, settings)
    wh.close()
    assert version == 2
    new_file_key = key_file.read_text().strip()
    assert new_file_key != old_file_key and len(new_file_key) == 64
    assert (key_file.stat().st_mode & 0o777) == 0o600
    # everything downstream of the key map: it also rebuilds the facts (create, swap, drop)
    run_dbt("run", "--select", "int_his__patient_key_map+")
    after = {r[0] for r in _rows(lg.warehouse, "select patient_key from marts.dim_patient")}
    assert len(after) == len(before)
    assert before & after == {"-1"}  # every pseudonym changed; only the unknown member stays
    assert _scalar(lg.warehouse, "select max(key_version) from audit.key_rotation") == 2
    # row-level security survives dbt's rebuild of the tables (post-hook policies)
    dept = as_role["t_dept_analyst"]
    for fact in ("fct_encounter", "fct_diagnosis"):
        seen = _rows(dept, f"select distinct department_key from marts.{fact}")
        assert seen == [(depts[0],)]
    total = _scalar(lg.warehouse, "select count(*) from marts.fct_encounter")
    assert _scalar(as_role["t_analyst"], "select count(*) from marts.fct_encounter") == total
    # neither key ever appears in the server's statement log
    server_log = cluster.log_file.read_text(errors="replace")
    assert old_file_key not in server_log and new_file_key not in server_log
