"""Legacy latin1 columns on a real MariaDB server (issue 16): a Chinese HIS of the MySQL 5 era
whose clients wrote GBK through latin1 connections stores GBK bytes in latin1 columns. Read as
latin1 they become mojibake (张三 as "ÕÅÈý"); the extract detects them and decodes them as GBK.
A column whose bytes are neither ASCII nor GBK is refused, naming the column, until the manifest
declares what it holds. The fixture is a ward system with pinyin names, not our simulator."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from hdp.ingest.extract import ExtractError, connect_source, extract_table
from hdp.ingest.mysql import MySQLColumn, decide_charsets
from hdp.manifest import SourceManifest, TableSpec
from hdp.warehouse.database import Login, connect
from hdp.warehouse.mariadb import connect as mariadb_connect
from tests.conftest import reset_platform_databases

DATABASE = "t_ward"
READER = "t_ward_reader"
NAMES = ["张三", "李四光", "欧阳娜娜", "Wang Wei"]  # GBK on the wire, one ASCII-only
SOURCE_SQL = [
    f"drop database if exists {DATABASE}",
    f"create database {DATABASE} character set latin1",
    f"""create table {DATABASE}.brxx (
        brid int not null primary key,
        xm varchar(40) character set latin1,
        bz varchar(40) character set latin1,
        dm varchar(10) character set latin1,
        gxsj datetime not null
    ) default charset = latin1""",
]
MANIFEST = SourceManifest(
    source="ward",
    description="a ward system on MariaDB with latin1 tables (test fixture)",
    conn_id="ward_source",
    schema=DATABASE,
    schedule="@daily",
    owner="data-platform",
    contains_personal_data=True,
    freshness_hours=26,
    tables=(TableSpec("brxx", ("brid",), "gxsj"),),
)


def _run(admin, statements, rows=()) -> None:
    conn = mariadb_connect(admin, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("set names latin1")  # how the legacy clients connected
            for statement in statements:
                if rows:
                    cur.executemany(statement, rows)
                else:
                    cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def ward(mariadb, pg_admin_dsn):
    from hdp_sim.sources import logins

    _, admin = mariadb
    _run(admin, SOURCE_SQL)
    # the bytes a GBK client sent through a latin1 connection: stored unconverted
    rows = [
        (i + 1, name.encode("gbk"), b"ok", b"A01", f"2026-01-0{i + 1} 08:00:00")
        for i, name in enumerate(NAMES)
    ]
    _run(
        admin,
        [f"insert into {DATABASE}.brxx (brid, xm, bz, dm, gxsj) values (%s, %s, %s, %s, %s)"],
        rows,
    )
    password = secrets.token_urlsafe(16)
    _run(
        admin,
        [
            f"create or replace user '{READER}'@'127.0.0.1' identified by '{password}'",
            f"grant select on {DATABASE}.* to '{READER}'@'127.0.0.1'",
        ],
    )
    reader = Login.from_url(f"mysql://{READER}:{password}@{admin.host}:{admin.port}/{DATABASE}")
    reset_platform_databases(pg_admin_dsn)
    lg = logins()
    owner = connect(lg.warehouse)
    with owner.cursor() as cur:
        cur.execute("create schema raw_ward")
        cur.execute("grant usage, create on schema raw_ward to hdp_loader")
    owner.commit()
    yield reader, admin, lg, owner
    owner.close()
    _run(admin, [f"drop database if exists {DATABASE}", f"drop user '{READER}'@'127.0.0.1'"])


def _extract(ward, manifest: SourceManifest, run_id: str):
    reader, _, lg, _ = ward
    src, wh = connect_source(reader), connect(lg.loader)
    try:
        return extract_table(src, wh, manifest, "brxx", run_id)
    finally:
        src.close()
        wh.close()


def _raw(ward, query: str):
    owner = ward[3]
    with owner.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    owner.rollback()
    return rows


def test_gbk_bytes_in_latin1_columns_are_detected_and_decoded(ward, caplog):
    with caplog.at_level("INFO", logger="hdp.ingest.extract"):
        result = _extract(ward, MANIFEST, "run-1")
    assert result.rows_written == len(NAMES)
    names = _raw(ward, "select xm from raw_ward.brxx order by brid")
    assert [n for (n,) in names] == NAMES  # not ÕÅÈý
    assert "latin1 column xm holds GBK bytes: 3 values decoded as GBK" in caplog.text
    assert not any(name in caplog.text for name in NAMES)  # a count, never a value


def test_bytes_neither_ascii_nor_gbk_are_refused_until_declared(ward):
    _, admin, _, _ = ward
    # real Latin-1 text in another column: "café" ends in a lone GBK lead byte
    _run(
        admin, [f"update {DATABASE}.brxx set bz = x'636166e9', gxsj = '2026-02-01' where brid = 4"]
    )
    with pytest.raises(ExtractError) as refused:
        _extract(ward, MANIFEST, "run-2")
    message = str(refused.value)
    assert "column bz is declared latin1" in message and "charsets: {bz: latin1}" in message
    assert "caf" not in message  # never the value
    assert _raw(ward, "select count(*) from raw_ward.brxx where _batch_id <> 1") == [(0,)]
    # the operator declares it and reruns the same run: the refused run loads
    declared = replace(
        MANIFEST, tables=(replace(MANIFEST.tables[0], charsets=(("bz", "latin1"),)),)
    )
    result = _extract(ward, declared, "run-2")
    assert result.rows_written == len(NAMES)  # nothing published yet: the whole table again
    assert _raw(ward, "select xm, bz from raw_ward.brxx where brid = 4 and _batch_id <> 1") == [
        ("Wang Wei", "café")
    ]


@pytest.mark.unit
def test_decide_charsets_follows_the_probe_and_the_declaration():
    cols = [MySQLColumn("a", "varchar(9)", "latin1"), MySQLColumn("b", "int", None)]
    assert decide_charsets(cols, [0, 0], {}, "x")[0][0].decode_as is None  # ASCII only
    decided, decoded = decide_charsets(cols, [5, 0], {}, "x")
    assert decided[0].decode_as == "gbk" and decoded == {"a": 5} and decided[1] is cols[1]
    assert decide_charsets(cols, [5, 2], {"a": "latin1"}, "x")[0][0].decode_as is None
    assert decide_charsets(cols, [5, 2], {"a": "gbk"}, "x")[0][0].decode_as == "gbk"
