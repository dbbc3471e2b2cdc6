"""MySQL types in PostgreSQL (hdp.ingest.mysql.pg_type), as docs/sources.md documents them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hdp.ingest.catalogue import CATALOGUE_READERS, read_mysql_catalogue
from hdp.ingest.mysql import (
    MySQLColumn,
    UnsupportedType,
    copy_line,
    pg_type,
    quote_literal,
    quote_name,
)
from hdp.warehouse.database import Login

REPO = Path(__file__).resolve().parents[1]

MAPPING = [
    ("tinyint(1)", "boolean"),
    ("tinyint(1) unsigned", "boolean"),
    ("bit(1)", "boolean"),
    ("bit(8)", "bigint"),
    ("tinyint(4)", "smallint"),
    ("tinyint(3) unsigned", "smallint"),
    ("smallint(6)", "smallint"),
    ("smallint(5) unsigned", "integer"),
    ("mediumint(9)", "integer"),
    ("mediumint(8) unsigned", "integer"),
    ("int(11)", "integer"),
    ("int(10) unsigned", "bigint"),
    ("int unsigned zerofill", "bigint"),
    ("bigint(20)", "bigint"),
    ("bigint(20) unsigned", "numeric(20,0)"),
    ("decimal(10,2)", "numeric(10,2)"),
    ("decimal(12,4) unsigned", "numeric(12,4)"),
    ("decimal", "numeric(10,0)"),
    ("float", "real"),
    ("double", "double precision"),
    ("varchar(20)", "character varying(20)"),
    ("char(18)", "character varying(18)"),
    ("text", "text"),
    ("longtext", "text"),
    ("enum('M','F','U')", "text"),
    ("set('a','b')", "text"),
    ("json", "text"),
    ("blob", "bytea"),
    ("varbinary(16)", "bytea"),
    ("longblob", "bytea"),
    ("date", "date"),
    ("datetime", "timestamp without time zone"),
    ("datetime(3)", "timestamp(3) without time zone"),
    ("timestamp", "timestamp with time zone"),
    ("timestamp(6)", "timestamp(6) with time zone"),
    ("time", "interval"),
    ("year(4)", "smallint"),
]


@pytest.mark.parametrize(("mysql", "postgres"), MAPPING)
def test_mysql_type_maps_to_postgres(mysql, postgres):
    assert pg_type(mysql) == postgres
    assert pg_type(mysql.upper()) == postgres  # information_schema's case varies by version


def test_unsigned_integers_widen_to_hold_the_largest_value():
    """Each unsigned maximum fits its PostgreSQL type's range."""
    ranges = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
    for base, maximum in (("tinyint", 255), ("smallint", 65535), ("mediumint", 2**24 - 1)):
        assert maximum <= ranges[pg_type(f"{base} unsigned")]
    assert ranges[pg_type("int unsigned")] >= 2**32 - 1
    assert pg_type("bigint unsigned") == "numeric(20,0)"  # 2**64 - 1 has 20 digits


@pytest.mark.parametrize("mysql", ["geometry", "point", "polygon", "inet6"])
def test_unmapped_types_are_refused_naming_the_column(mysql):
    with pytest.raises(UnsupportedType, match=rf"{mysql}.*column his\.t\.shape"):
        pg_type(mysql, "his.t.shape")


def test_docs_table_gives_every_mapping():
    """docs/sources.md's table of MySQL types agrees with pg_type, row by row."""
    doc = (REPO / "docs" / "sources.md").read_text(encoding="utf-8")
    doc = doc.split("## MySQL and MariaDB sources", 1)[1].split("\n## ", 1)[0]  # that section
    rows = re.findall(r"^\| `([^`]+)`[^|]*\| `([^`]+)` \|", doc, re.M)
    documented = {m: p for m, p in rows}
    for mysql, postgres in documented.items():
        assert pg_type(mysql) == postgres, mysql
    bases = {re.split(r"[\s(]", m)[0] for m, _ in MAPPING}
    assert bases <= {re.split(r"[\s(]", m)[0] for m in documented}, "undocumented types"


def test_quoting_keeps_names_and_literals_whole():
    assert quote_name("a`b") == "`a``b`"
    assert quote_literal("it's \\ here") == "'it\\'s \\\\ here'"


def test_copy_line_maps_null_and_appends_the_batch_metadata():
    line = copy_line([MySQLColumn("id", "int"), MySQLColumn("seen", "datetime")], ["7", "x"])
    assert line.startswith("concat_ws(char(9), coalesce(cast(`id` as char), '\\\\N')")
    assert "month(`seen`) = 0" in line  # zero dates become NULL
    assert line.endswith("'7', 'x')")


def test_mysql_urls_are_mysql_logins():
    quoted = "p%40ss"  # "p@ss", as a URL must spell it
    login = Login.from_url(f"mysql://reader:{quoted}@10.0.0.5/his")
    assert (login.dialect, login.port, login.password, login.dbname) == (
        "mysql",
        3306,
        "p@ss",
        "his",
    )
    assert Login.from_url(login.url) == login
    assert Login.from_url("mariadb://r:p@h:3307/x").dialect == "mysql"
    assert Login.from_url("postgresql://u:p@h/db").dialect == "postgresql"
    assert CATALOGUE_READERS["mysql"][1] is read_mysql_catalogue


def test_mysql_statement_errors_are_not_retried_but_lost_connections_are():
    import pymysql

    from hdp.ingest.extract import ExtractError, is_deterministic

    for error, expected in (
        (pymysql.err.ProgrammingError(1064, "syntax"), True),
        (pymysql.err.DataError(1292, "bad value"), True),
        (pymysql.err.OperationalError(2013, "Lost connection"), False),
    ):
        wrapped = ExtractError("reading from the MySQL source failed")
        wrapped.__cause__ = error
        assert is_deterministic(wrapped) is expected, error


def test_an_airflow_mysql_connection_is_a_mysql_login(monkeypatch):
    """The extract task's login (hdp.orchestration.common.connection_login) keeps the dialect
    of an Airflow connection of type mysql, so the task connects with PyMySQL."""
    from hdp.orchestration.common import connection_login

    monkeypatch.setenv("AIRFLOW_CONN_T_CLINIC_SOURCE", "mysql://reader:secret@10.1.2.3:3307/his")
    monkeypatch.setenv("AIRFLOW_CONN_T_PG_SOURCE", "postgresql://reader:secret@10.1.2.3:5433/his")
    login = connection_login("t_clinic_source")
    assert (login.dialect, login.host, login.port, login.dbname) == (
        "mysql",
        "10.1.2.3",
        3307,
        "his",
    )
    assert connection_login("t_pg_source").dialect == "postgresql"
