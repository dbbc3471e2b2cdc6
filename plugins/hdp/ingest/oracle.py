"""Oracle sources: their types in PostgreSQL, and their rows as COPY text (Oracle SQL).

The same design as the MySQL dialect (hdp.ingest.mysql): one mapping (`pg_type`) and the
source server rendering each row as one line of PostgreSQL's COPY text (`copy_line`). Oracle
cannot run on these machines: the mapping and the SQL are unit-tested
(tests/test_dialect_sql.py), not run against a server, and the extract is not wired to this
dialect yet (docs/sources.md, "SQL Server and Oracle"). Oracle stores '' as NULL, so an empty
string and NULL cannot be told apart at the source: both land as NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdp.ingest.mysql import UnsupportedType

# the table's columns, in table order (the login sees the tables it may select)
COLUMNS_SQL = (
    "select column_name, data_type, char_length, data_precision, data_scale "
    "from all_tab_columns where owner = :owner and table_name = :name order by column_id"
)
# the extract's session: '.' as the decimal sign and ISO dates, whatever the login's NLS
SESSION_SQL = (
    "alter session set nls_numeric_characters = '.,'",
    "alter session set nls_date_format = 'YYYY-MM-DD HH24:MI:SS'",
    "alter session set time_zone = '+00:00'",
)
_INTEGER_DIGITS = ((4, "smallint"), (9, "integer"), (18, "bigint"))


@dataclass(frozen=True)
class OracleColumn:
    name: str
    data_type: str  # all_tab_columns.data_type: 'NUMBER', 'VARCHAR2', 'TIMESTAMP(6)', ...
    char_length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def pg_type(self) -> str:
        return pg_type(self)


def _fraction(data_type: str) -> int:
    """The fractional digits of TIMESTAMP(n) (Oracle's default 6), at most PostgreSQL's 6."""
    inside = data_type.partition("(")[2].partition(")")[0]
    return min(int(inside), 6) if inside.isdigit() else 6


def pg_type(column: OracleColumn) -> str:  # noqa: PLR0911, PLR0912 (one case a type)
    """The PostgreSQL type an Oracle column lands as (docs/sources.md)."""
    kind = column.data_type.strip().upper()
    if kind == "NUMBER":
        if column.precision is None:
            return "numeric"  # NUMBER without precision: any number
        if (column.scale or 0) == 0:
            for digits, target in _INTEGER_DIGITS:
                if column.precision <= digits:
                    return target
        return f"numeric({column.precision},{column.scale or 0})"
    if kind in ("FLOAT", "BINARY_DOUBLE"):
        return "double precision"
    if kind == "BINARY_FLOAT":
        return "real"
    if kind == "DATE":
        return "timestamp(0) without time zone"  # an Oracle DATE holds a time of day too
    if kind.startswith("TIMESTAMP"):
        zone = "with" if "TIME ZONE" in kind else "without"
        return f"timestamp({_fraction(kind)}) {zone} time zone"
    if kind in ("VARCHAR2", "NVARCHAR2", "CHAR", "NCHAR"):
        return f"character varying({column.char_length})" if column.char_length else "text"
    if kind in ("CLOB", "NCLOB", "ROWID", "UROWID"):
        return "text"
    if kind == "RAW":
        return "bytea"
    if kind.startswith("INTERVAL DAY"):
        return "interval"
    raise UnsupportedType(
        f"Oracle type {column.data_type} (column {column.name}) has no PostgreSQL mapping here "
        "(hdp.ingest.oracle): LONG cannot be used in an expression and BLOB does not fit a "
        "line; leave the column out with a view at the source, or convert it there"
    )


def quote_name(name: str) -> str:
    """An Oracle identifier in double quotes (case kept: the catalogue's own spelling)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _escaped(text_expr: str) -> str:
    """COPY text escaping on the server: backslash, tab, newline, carriage return."""
    out = f"replace({text_expr}, '\\', '\\\\')"
    for code, escape in ((9, "\\t"), (10, "\\n"), (13, "\\r")):
        out = f"replace({out}, chr({code}), '{escape}')"
    return out


def value_text(column: OracleColumn) -> str:
    """An Oracle expression of one column's value as COPY text (NULL stays NULL)."""
    ref = quote_name(column.name)
    target = column.pg_type
    kind = column.data_type.strip().upper()
    if kind == "DATE":
        return f"to_char({ref}, 'YYYY-MM-DD HH24:MI:SS')"
    if kind.startswith("TIMESTAMP"):
        zone = " TZH:TZM" if "WITH TIME ZONE" in kind else ""
        if "LOCAL" in kind:  # shown in the session's zone, UTC (SESSION_SQL)
            zone = " TZH:TZM"
            ref = f"cast({ref} as timestamp with time zone)"
        return f"to_char({ref}, 'YYYY-MM-DD HH24:MI:SS.FF6{zone}')"
    if target == "bytea":
        return f"'\\\\x' || rawtohex({ref})"
    if kind in ("NUMBER", "FLOAT", "BINARY_FLOAT", "BINARY_DOUBLE"):
        return f"to_char({ref}, 'TM9')"  # text-minimum: every digit, no padding, '.' (NLS)
    if kind.startswith("INTERVAL DAY"):
        return f"to_char({ref})"  # +DD HH:MI:SS.FF, which PostgreSQL reads as an interval
    return _escaped(ref)  # VARCHAR2, CHAR, CLOB...: replace() keeps a CLOB a CLOB


def copy_line(columns: list[OracleColumn], constants: list[str]) -> str:
    """An Oracle expression of a whole row as one line of COPY text (`||`, each value
    through nvl(..., '\\N'): Oracle's NULL and '' both become COPY's NULL)."""
    parts = [f"nvl({value_text(c)}, '\\N')" for c in columns]
    parts += [quote_literal(v) for v in constants]
    return " || chr(9) || ".join(parts)


def select_lines(
    columns: list[OracleColumn], constants: list[str], owner: str, table: str, where: str
) -> str:
    """The extract's query: one COPY text line per row of the interval."""
    source = f"{quote_name(owner)}.{quote_name(table)}"
    return f"select {copy_line(columns, constants)} from {source} where {where}"


def watermark_where(column: str, low: object, high: object) -> str:
    """The interval's condition on the watermark column: (low, high], low None for a first
    extract; datetimes as timestamp literals, integers (an SCN, ids) as numbers."""

    def literal(value: object) -> str:
        if isinstance(value, int):
            return str(value)
        return f"timestamp '{value:%Y-%m-%d %H:%M:%S.%f}'"

    ref = quote_name(column)
    upper = f"{ref} <= {literal(high)}"
    return upper if low is None else f"{ref} > {literal(low)} and {upper}"
