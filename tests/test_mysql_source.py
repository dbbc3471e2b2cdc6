"""A MySQL-family source on a real MariaDB server (hdp.warehouse.mariadb): its catalogue read
from information_schema, and a table of the types that trip a migration (tinyint(1), unsigned
integers, enum, a zero date, utf8mb4 Chinese text, blobs, NULLs) extracted into raw_<source>
twice, through the same batches, intervals and audit as a PostgreSQL source."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from hdp.ingest.catalogue import CatalogueError, plan_table, read_catalogue
from hdp.ingest.extract import connect_source, extract_table, source_columns
from hdp.manifest import SourceManifest, TableSpec
from hdp.quality.gate import publish_run
from hdp.warehouse.database import Login, connect
from hdp.warehouse.mariadb import connect as mariadb_connect
from tests.conftest import reset_platform_databases

DATABASE = "t_clinic"
READER = "t_clinic_reader"
# a clinic system's visit table as MySQL 5.x-era HIS schemas declare them
SOURCE_SQL = [
    f"drop database if exists {DATABASE}",
    f"create database {DATABASE} character set utf8mb4",
    f"""
    create table {DATABASE}.visit (
        visit_id int unsigned not null primary key,
        is_inpatient tinyint(1) not null,
        sex enum('M','F','U'),
        admitted_on date,
        patient_name varchar(40) comment '患者姓名',
        amount decimal(10,2),
        photo blob,
        big bigint unsigned,
        recorded_at timestamp null default null,
        updated_at datetime(3) not null comment '更新时间',
        ward_code varchar(40),
        unique key uq_big (big),
        unique key uq_ward (ward_code(10))
    ) engine = InnoDB default charset = utf8mb4 comment '就诊记录'
    """,
    f"create view {DATABASE}.visit_today as select visit_id from {DATABASE}.visit",
]
TRICKY_NAME = "O'Brien\ttab\nline \\ back"
ROWS = [
    (
        4294967295,
        1,
        "F",
        "0000-00-00",
        "张三丰",
        "12.50",
        b"\x00\xff\n",
        18446744073709551615,
        "2026-01-01 08:00:00",
        "2026-01-01 08:00:00.123",
    ),
    (2, 0, None, "2026-02-03", TRICKY_NAME, None, None, None, None, "2026-01-01 09:00:00"),
    (3, 1, "U", None, None, "0.00", b"", 0, None, "2026-01-01 10:00:00"),
]
INSERT = (
    f"insert into {DATABASE}.visit (visit_id, is_inpatient, sex, admitted_on, patient_name, "
    "amount, photo, big, recorded_at, updated_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

MANIFEST = SourceManifest(
    source="clinic",
    description="a clinic system on MariaDB (test fixture)",
    conn_id="clinic_source",
    schema=DATABASE,
    schedule="@daily",
    owner="data-platform",
    contains_personal_data=True,
    freshness_hours=26,
    tables=(TableSpec("visit", ("visit_id",), "updated_at"),),
    lookback_minutes=60,
)


def _admin_run(admin, statements, rows=()) -> None:
    conn = mariadb_connect(admin, autocommit=True)
    try:
        with conn.cursor() as cur:
            # the session as a legacy HIS runs it: zero dates allowed, times in UTC
            cur.execute("set session sql_mode = '', time_zone = '+00:00'")
            for statement in statements:
                if rows:
                    cur.executemany(statement, rows)
                else:
                    cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def clinic(mariadb, pg_admin_dsn):
    """The clinic database on MariaDB with a read-only login, and empty platform databases
    with raw_clinic. Yields (reader login, admin login, platform logins, wh owner)."""
    from hdp_sim.sources import logins

    _, admin = mariadb
    _admin_run(admin, SOURCE_SQL)
    _admin_run(admin, [INSERT], ROWS)
    password = secrets.token_urlsafe(16)
    _admin_run(
        admin,
        [
            f"create or replace user '{READER}'@'127.0.0.1' identified by '{password}'",
            f"grant select on {DATABASE}.* to '{READER}'@'127.0.0.1'",
        ],
    )
    reader = Login.from_url(f"mysql://{READER}:{password}@{admin.host}:{admin.port}/{DATABASE}")
    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    wh_owner = connect(lg.warehouse)
    with wh_owner.cursor() as cur:
        cur.execute("create schema raw_clinic")
        cur.execute("grant usage, create on schema raw_clinic to hdp_loader")
    wh_owner.commit()
    yield reader, admin, lg, wh_owner
    wh_owner.close()
    _admin_run(admin, [f"drop database if exists {DATABASE}", f"drop user '{READER}'@'127.0.0.1'"])


def test_catalogue_from_information_schema(clinic):
    reader = clinic[0]
    tables = {t.name: t for t in read_catalogue(reader, "mysql", DATABASE)}
    assert set(tables) == {"visit", "visit_today"}
    visit = tables["visit"]
    assert visit.comment == "就诊记录"
    assert visit.primary_key == ("visit_id",)
    assert visit.unique_indexes == (("big",),)  # the prefix index is no key
    assert visit.column("visit_id").data_type == "int(10) unsigned"
    assert visit.column("visit_id").not_null and not visit.column("sex").not_null
    assert visit.column("patient_name").comment == "患者姓名"
    plan = plan_table(visit)
    assert plan.watermark.column == "updated_at"
    assert plan.key.columns == ("visit_id",)
    assert plan.personal == {"patient_name": "name"}
    with pytest.raises(CatalogueError, match="no table nope"):
        read_catalogue(reader, "mysql", DATABASE, ["nope"])
    with pytest.raises(CatalogueError, match="does not exist"):
        read_catalogue(reader, "mysql", "t_no_such_database")


def test_raw_columns_take_the_mapped_types(clinic):
    src = connect_source(clinic[0])
    try:
        columns = dict(source_columns(src, DATABASE, "visit"))
    finally:
        src.close()
    assert columns == {
        "visit_id": "bigint",
        "is_inpatient": "boolean",
        "sex": "text",
        "admitted_on": "date",
        "patient_name": "character varying(40)",
        "amount": "numeric(10,2)",
        "photo": "bytea",
        "big": "numeric(20,0)",
        "recorded_at": "timestamp with time zone",
        "updated_at": "timestamp(3) without time zone",
        "ward_code": "character varying(40)",
    }


def _extract(clinic, run_id: str, publish: bool = True):
    reader, _, lg, wh_owner = clinic
    src, wh = connect_source(reader), connect(lg.loader)
    try:
        result = extract_table(src, wh, MANIFEST, "visit", run_id)
        if publish and not result.already_published:
            with wh_owner.cursor() as cur:  # stands in for the gate (tested elsewhere)
                cur.execute(
                    "update audit.load_batch set status = 'passed' where source = 'clinic' "
                    "and run_id = %s and status = 'loaded'",
                    (run_id,),
                )
            wh_owner.commit()
            publish_run(wh, source="clinic", run_id=run_id, tables=["visit"], manifest=MANIFEST)
    finally:
        src.close()
        wh.close()
    return result


def _raw(clinic, query: str = "", params=()):
    wh_owner = clinic[3]
    with wh_owner.cursor() as cur:
        cur.execute(
            query
            or "select visit_id, is_inpatient, sex, admitted_on, patient_name, amount, photo, "
            "big, recorded_at, updated_at, _source from raw_clinic.visit order by visit_id, "
            "_batch_id",
            params,
        )
        rows = cur.fetchall()
    wh_owner.rollback()
    return rows


def test_extract_lands_every_value_and_reruns_load_nothing_new(clinic):
    first = _extract(clinic, "run-1")
    assert (first.rows_read, first.rows_written) == (3, 3)
    assert first.zero_dates == {"admitted_on": 1}
    assert first.high_watermark == datetime(2026, 1, 1, 10, 0)
    rows = [(*r[:6], None if r[6] is None else bytes(r[6]), *r[7:]) for r in _raw(clinic)]
    assert rows == [
        (
            2,
            False,
            None,
            date(2026, 2, 3),
            TRICKY_NAME,
            None,
            None,
            None,
            None,
            datetime(2026, 1, 1, 9, 0),
            "clinic",
        ),
        (
            3,
            True,
            "U",
            None,
            None,
            Decimal("0.00"),
            b"",  # an empty blob is not NULL
            Decimal(0),
            None,
            datetime(2026, 1, 1, 10, 0),
            "clinic",
        ),
        (
            4294967295,
            True,
            "F",
            None,  # 0000-00-00
            "张三丰",
            Decimal("12.50"),
            b"\x00\xff\n",
            Decimal(18446744073709551615),
            datetime(2026, 1, 1, 8, 0, tzinfo=UTC),
            datetime(2026, 1, 1, 8, 0, 0, 123000),
            "clinic",
        ),
    ]
    audit = _raw(
        clinic,
        "select rows_read, rows_written, status, watermark_kind from audit.load_batch "
        "where source = 'clinic' and run_id = 'run-1'",
    )
    assert audit == [(3, 3, "published", "timestamp")]

    again = _extract(clinic, "run-1")  # the same run: published, immutable
    assert again.already_published and again.rows_written == 3
    second = _extract(clinic, "run-2")  # nothing changed: the look-back re-reads, stores nothing
    assert second.rows_written == 0 and second.rows_skipped == 1
    assert len(_raw(clinic)) == 3


def test_a_changed_row_arrives_with_the_next_run(clinic):
    admin = clinic[1]
    _admin_run(
        admin,
        [
            f"update {DATABASE}.visit set patient_name = '李四', updated_at = "
            "'2026-01-01 12:00:00' where visit_id = 2"
        ],
    )
    third = _extract(clinic, "run-3")
    assert (third.rows_written, third.zero_dates) == (1, {})
    names = _raw(
        clinic,
        "select patient_name from raw_clinic.visit where visit_id = 2 order by _batch_id",
    )
    assert names == [(TRICKY_NAME,), ("李四",)]


def test_a_failed_client_read_leaves_raw_as_before(clinic, monkeypatch):
    """The client fails mid-extract (here: a column it cannot read): the batch is failed,
    raw holds what it held, and the error quotes no value."""
    from hdp.ingest import extract, mysql

    before = _raw(clinic)
    real = mysql.copy_line
    monkeypatch.setattr(
        mysql, "copy_line", lambda cols, consts: real(cols, consts) + ", no_such_column"
    )
    _admin_run(
        clinic[1],
        [f"update {DATABASE}.visit set updated_at = '2026-01-01 13:00:00' where visit_id = 3"],
    )
    with pytest.raises(extract.ExtractError, match="mariadb client failed"):
        _extract(clinic, "run-4")
    assert _raw(clinic) == before
    status = _raw(
        clinic, "select status from audit.load_batch where source = 'clinic' and run_id = 'run-4'"
    )
    assert status == [("failed",)]
    monkeypatch.undo()
    retried = _extract(clinic, "run-4")  # the retry of the same run loads the row
    assert retried.rows_written == 1
