"""SQL Server sources: their types in PostgreSQL, and their rows as COPY text (T-SQL).

The same design as the MySQL dialect (hdp.ingest.mysql): one mapping (`pg_type`) for the
catalogue, the raw tables and the extract, and the source server renders each row as one line of
PostgreSQL's COPY text (`copy_line`), so rows reach the warehouse as lines, never as Python
values. SQL Server cannot run on these machines: the mapping and the SQL here are unit-tested
(tests/test_dialect_sql.py), not run against a server, and the extract is not wired to this
dialect yet (docs/sources.md, "SQL Server and Oracle").
"""

from __future__ import annotations

from dataclasses import dataclass

from hdp.ingest.mysql import UnsupportedType

# information_schema.columns of one table, in table order
COLUMNS_SQL = (
    "select column_name, data_type, character_maximum_length, numeric_precision, "
    "numeric_scale, datetime_precision from information_schema.columns "
    "where table_schema = %s and table_name = %s order by ordinal_position"
)
# the extract's session: ISO dates whatever the login's language, read only by the login's rights
SESSION_SQL = ("set dateformat ymd", "set language us_english", "set nocount on")


@dataclass(frozen=True)
class MSSQLColumn:
    name: str
    data_type: str  # information_schema.columns.data_type: 'nvarchar', 'datetime2', ...
    max_length: int | None = None  # characters; -1 for (max)
    precision: int | None = None
    scale: int | None = None
    datetime_precision: int | None = None

    @property
    def pg_type(self) -> str:
        return pg_type(self)


_SIMPLE = {
    "bit": "boolean",
    "tinyint": "smallint",  # 0-255: PostgreSQL has no one-byte integer
    "smallint": "smallint",
    "int": "integer",
    "bigint": "bigint",
    "money": "numeric(19,4)",
    "smallmoney": "numeric(10,4)",
    "real": "real",
    "date": "date",
    "datetime": "timestamp(3) without time zone",  # 1/300 s ticks, shown to milliseconds
    "smalldatetime": "timestamp(0) without time zone",
    "uniqueidentifier": "uuid",
    "text": "text",
    "ntext": "text",
    "xml": "text",
    "image": "bytea",
    "rowversion": "bigint",  # 8 bytes that only grow: an integer watermark
    "timestamp": "bigint",  # T-SQL's old name of rowversion, not a time
}


def pg_type(column: MSSQLColumn) -> str:
    """The PostgreSQL type a SQL Server column lands as (docs/sources.md)."""
    base = column.data_type.strip().lower()
    if base in _SIMPLE:
        return _SIMPLE[base]
    if base in ("decimal", "numeric"):
        return f"numeric({column.precision or 18},{column.scale or 0})"
    if base == "float":  # float(n): n <= 24 is 4 bytes
        return "real" if (column.precision or 53) <= 24 else "double precision"
    if base in ("char", "varchar", "nchar", "nvarchar"):
        n = column.max_length
        return "text" if n in (None, -1) else f"character varying({n})"
    if base in ("binary", "varbinary"):
        return "bytea"
    if base in ("datetime2", "time", "datetimeoffset"):
        # PostgreSQL keeps microseconds: datetime2(7)'s 100 ns digit is rounded off
        digits = min(column.datetime_precision if column.datetime_precision is not None else 7, 6)
        return {
            "datetime2": f"timestamp({digits}) without time zone",
            "time": f"time({digits}) without time zone",
            "datetimeoffset": f"timestamp({digits}) with time zone",
        }[base]
    raise UnsupportedType(
        f"SQL Server type {column.data_type} (column {column.name}) has no PostgreSQL mapping "
        "here (hdp.ingest.mssql): leave the column out with a view at the source, or cast it "
        "there (sql_variant, geography, geometry and hierarchyid have none)"
    )


def quote_name(name: str) -> str:
    """A T-SQL identifier in brackets."""
    return "[" + name.replace("]", "]]") + "]"


def quote_literal(value: str) -> str:
    """A T-SQL Unicode string literal."""
    return "N'" + value.replace("'", "''") + "'"


def _escaped(text_expr: str) -> str:
    """COPY text escaping on the server: backslash, tab, newline, carriage return."""
    out = f"replace({text_expr}, N'\\', N'\\\\')"
    for code, escape in ((9, "\\t"), (10, "\\n"), (13, "\\r")):
        out = f"replace({out}, nchar({code}), N'{escape}')"
    return out


def value_text(column: MSSQLColumn) -> str:  # noqa: PLR0911 (one case a type)
    """A T-SQL expression of one column's value as COPY text (NULL stays NULL)."""
    ref = quote_name(column.name)
    target = column.pg_type
    base = column.data_type.strip().lower()
    if target == "boolean":
        return f"case when {ref} is null then null when {ref} = 1 then N't' else N'f' end"
    if base in ("rowversion", "timestamp"):
        return f"convert(varchar(20), convert(bigint, {ref}))"
    if target == "bytea":  # COPY text of bytea's hex form: \\x0a1b
        return f"N'\\\\x' + convert(varchar(max), convert(varbinary(max), {ref}), 2)"
    if base in ("money", "smallmoney"):
        return f"convert(varchar(32), {ref}, 2)"  # 4 decimals, no thousands separators
    if base in ("float", "real"):
        return f"convert(varchar(32), {ref}, 3)"  # style 3: every significant digit
    if target == "date":
        return f"convert(char(10), {ref}, 23)"  # yyyy-mm-dd
    if base == "datetimeoffset":
        return f"convert(varchar(40), {ref}, 127)"  # ISO 8601 with the offset
    if target.startswith(("timestamp", "time")):
        return f"convert(varchar(32), {ref}, 121)"  # yyyy-mm-dd hh:mi:ss.fffffff
    if (
        target == "uuid"
        or target in ("smallint", "integer", "bigint")
        or target.startswith("numeric")
    ):
        return f"convert(varchar(64), {ref})"
    return _escaped(f"convert(nvarchar(max), {ref})")  # every text type, as Unicode


def copy_line(columns: list[MSSQLColumn], constants: list[str]) -> str:
    """A T-SQL expression of a whole row as one line of COPY text (`concat`, SQL Server 2012+;
    each value coalesced to \\N first, since concat turns NULL into '')."""
    parts = [f"coalesce({value_text(c)}, N'\\N')" for c in columns]
    parts += [quote_literal(v) for v in constants]
    return "concat(" + ", nchar(9), ".join(parts) + ")"


def select_lines(
    columns: list[MSSQLColumn], constants: list[str], schema: str, table: str, where: str
) -> str:
    """The extract's query: one COPY text line per row of the interval."""
    source = f"{quote_name(schema)}.{quote_name(table)}"
    return f"select {copy_line(columns, constants)} from {source} where {where}"


def watermark_where(column: str, low: object, high: object) -> str:
    """The interval's condition on the watermark column: (low, high], low None for a first
    extract; datetimes as datetime2 literals, integers (rowversion, ids) as numbers."""

    def literal(value: object) -> str:
        if isinstance(value, int):
            return str(value)
        return f"convert(datetime2, N'{value:%Y-%m-%d %H:%M:%S.%f}', 121)"

    ref = quote_name(column)
    upper = f"{ref} <= {literal(high)}"
    return upper if low is None else f"{ref} > {literal(low)} and {upper}"
