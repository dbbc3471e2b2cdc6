"""SQL Server and Oracle sources (issue 16): their type mapping and the SQL that renders each
row as a line of COPY text. Neither server can run on these machines, so the SQL is checked by
parsing it with sqlfluff's T-SQL and Oracle grammars, and the mapping against the types a real
HIS of each kind declares (docs/sources.md says what was and was not run)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlfluff

from hdp.ingest import mssql, oracle
from hdp.ingest.mysql import UnsupportedType

pytestmark = pytest.mark.unit

M = mssql.MSSQLColumn
OC = oracle.OracleColumn
CONSTANTS = ["7", "2026-01-01T00:00:00+00:00", "his's"]  # batch, time, source (a quote in it)


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (M("sfzy", "bit"), "boolean"),
        (M("nl", "tinyint"), "smallint"),
        (M("brid", "int"), "integer"),
        (M("je", "money"), "numeric(19,4)"),
        (M("je", "smallmoney"), "numeric(10,4)"),
        (M("dj", "decimal", precision=12, scale=2), "numeric(12,2)"),
        (M("f", "float", precision=53), "double precision"),
        (M("f", "float", precision=24), "real"),
        (M("xm", "nvarchar", 40), "character varying(40)"),
        (M("bz", "nvarchar", -1), "text"),  # nvarchar(max)
        (M("dm", "char", 6), "character varying(6)"),
        (M("guid", "uniqueidentifier"), "uuid"),
        (M("jlsj", "datetime2", datetime_precision=7), "timestamp(6) without time zone"),
        (M("jlsj", "datetime2", datetime_precision=0), "timestamp(0) without time zone"),
        (M("rq", "datetime"), "timestamp(3) without time zone"),
        (M("rq", "smalldatetime"), "timestamp(0) without time zone"),
        (M("ts", "datetimeoffset", datetime_precision=7), "timestamp(6) with time zone"),
        (M("sj", "time", datetime_precision=0), "time(0) without time zone"),
        (M("zp", "varbinary", -1), "bytea"),
        (M("rv", "rowversion"), "bigint"),
        (M("rv", "timestamp"), "bigint"),  # T-SQL's timestamp is rowversion
        (M("x", "xml"), "text"),
    ],
)
def test_sql_server_types(column, expected):
    assert column.pg_type == expected


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (OC("BRID", "NUMBER", precision=10, scale=0), "bigint"),
        (OC("NL", "NUMBER", precision=3, scale=0), "smallint"),
        (OC("ID", "NUMBER", precision=9, scale=0), "integer"),
        (OC("BIG", "NUMBER", precision=20, scale=0), "numeric(20,0)"),
        (OC("JE", "NUMBER", precision=12, scale=2), "numeric(12,2)"),
        (OC("ANY", "NUMBER"), "numeric"),
        (OC("CSRQ", "DATE"), "timestamp(0) without time zone"),  # a DATE has a time of day
        (OC("JLSJ", "TIMESTAMP(6)"), "timestamp(6) without time zone"),
        (OC("JLSJ", "TIMESTAMP(9)"), "timestamp(6) without time zone"),
        (OC("JLSJ", "TIMESTAMP(6) WITH TIME ZONE"), "timestamp(6) with time zone"),
        (OC("JLSJ", "TIMESTAMP(6) WITH LOCAL TIME ZONE"), "timestamp(6) with time zone"),
        (OC("XM", "VARCHAR2", char_length=40), "character varying(40)"),
        (OC("XM", "NVARCHAR2", char_length=20), "character varying(20)"),
        (OC("BZ", "CLOB"), "text"),
        (OC("ZP", "RAW", char_length=0), "bytea"),
        (OC("F", "BINARY_DOUBLE"), "double precision"),
        (OC("D", "INTERVAL DAY(2) TO SECOND(6)"), "interval"),
    ],
)
def test_oracle_types(column, expected):
    assert column.pg_type == expected


@pytest.mark.parametrize(
    "column",
    [M("g", "geography"), M("v", "sql_variant"), OC("L", "LONG"), OC("B", "BLOB")],
)
def test_types_without_a_mapping_are_refused_naming_the_column(column):
    with pytest.raises(UnsupportedType, match=f"column {column.name}"):
        _ = column.pg_type


MSSQL_COLUMNS = [
    M("brid", "int"),
    M("xm", "nvarchar", 40),
    M("jlsj", "datetime2", datetime_precision=7),
    M("je", "money"),
    M("zp", "varbinary", -1),
    M("sfzy", "bit"),
    M("rv", "rowversion"),
    M("guid", "uniqueidentifier"),
    M("ts", "datetimeoffset", datetime_precision=7),
    M("odd]name", "nvarchar", 10),
]
ORACLE_COLUMNS = [
    OC("BRID", "NUMBER", precision=10, scale=0),
    OC("XM", "VARCHAR2", char_length=40),
    OC("CSRQ", "DATE"),
    OC("JE", "NUMBER", precision=12, scale=2),
    OC("JLSJ", "TIMESTAMP(6) WITH TIME ZONE"),
    OC("BZ", "CLOB"),
    OC("ZP", "RAW", char_length=16),
    OC("LT", "TIMESTAMP(6) WITH LOCAL TIME ZONE"),
    OC('odd"name', "VARCHAR2", char_length=10),
]


def test_sql_server_row_line_parses_as_t_sql_and_escapes_for_copy():
    where = mssql.watermark_where("jlsj", datetime(2026, 1, 1), datetime(2026, 1, 2, 8))
    query = mssql.select_lines(MSSQL_COLUMNS, CONSTANTS, "dbo", "brxx", where)
    # raises on a syntax error (sqlfluff's grammar lacks T-SQL's ]] escape inside brackets)
    sqlfluff.parse(query.replace("[odd]]name]", "[odd_name]"), dialect="tsql")
    assert query.count("coalesce(") == len(MSSQL_COLUMNS)  # every value: NULL becomes \N
    # a tab between the values: the columns, then the three constants
    assert query.count(", nchar(9), coalesce(") == len(MSSQL_COLUMNS) - 1
    assert "N'\\N'), nchar(9), N'7', nchar(9), N'2026" in query
    text = mssql.value_text(M("xm", "nvarchar", 40))
    # backslash first, then tab, newline, carriage return, as COPY text wants them
    assert text.index("N'\\\\'") < text.index("nchar(9), N'\\t'") < text.index("nchar(13)")
    assert "[odd]]name]" in query and "N'his''s'" in query  # identifiers and constants quoted
    assert "convert(varchar(20), convert(bigint, [rv]))" in query  # rowversion as its number
    assert "N'\\\\x' + convert(varchar(max), convert(varbinary(max), [zp]), 2)" in query
    assert "[jlsj] > convert(datetime2, N'2026-01-01 00:00:00.000000', 121)" in query


def test_oracle_row_line_parses_as_oracle_sql_and_escapes_for_copy():
    where = oracle.watermark_where("JLSJ", None, 123456)
    query = oracle.select_lines(ORACLE_COLUMNS, CONSTANTS, "HIS", "BRXX", where)
    sqlfluff.parse(query, dialect="oracle")
    assert query.count("nvl(") == len(ORACLE_COLUMNS)
    assert query.count(" || chr(9) || ") == len(ORACLE_COLUMNS) + 2
    assert "to_char(\"CSRQ\", 'YYYY-MM-DD HH24:MI:SS')" in query  # a DATE keeps its time
    assert "to_char(\"JE\", 'TM9')" in query  # every digit, '.' by the session's NLS
    assert "'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM'" in query
    assert 'cast("LT" as timestamp with time zone)' in query
    assert "'\\\\x' || rawtohex(\"ZP\")" in query
    assert '"odd""name"' in query and "'his''s'" in query
    assert query.endswith('where "JLSJ" <= 123456')
    for statement in oracle.SESSION_SQL:
        sqlfluff.parse(statement, dialect="oracle")
