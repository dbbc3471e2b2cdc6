"""MySQL and MariaDB sources: their types in PostgreSQL, and their rows as COPY text.

One mapping (`pg_type`) serves the catalogue (hdp.ingest.catalogue), the raw tables and the
extract (hdp.ingest.extract), so a column is never typed two ways. It is documented as a table in
docs/sources.md. The extract does not fetch rows into Python: the source server itself renders
each row as one line of PostgreSQL's COPY text format (`copy_line`), the `mariadb` command-line
client streams those lines (`--quick`, unbuffered) and they are piped unchanged into
`COPY ... FROM STDIN` on the warehouse. Values the warehouse cannot hold are settled in that
expression, on the server: `0000-00-00` and other zero dates become NULL (and are counted per
column, `zero_date_counts`, so the extract reports them), `tinyint(1)` becomes a boolean, unsigned
integers widen. A legacy `latin1` column that holds GBK bytes (a Chinese HIS of the MySQL 5
era whose clients wrote GBK through a latin1 connection) is found by a probe of the interval's
values (`charset_probe`): all of its non-ASCII values are valid GBK, so it is decoded as GBK on
the server; a column whose bytes are neither ASCII nor GBK is refused with a message naming the
column, unless the table's manifest declares what it holds (`charsets: {<column>: latin1}`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# reasons a value was changed on the way in, as the extract reports them
ZERO_DATE = "mysql_zero_date"  # 0000-00-00 (or a zero month or day): stored as NULL


class UnsupportedType(ValueError):
    """A MySQL type with no PostgreSQL counterpart here: the message names the column."""


LEGACY_CHARSETS = ("latin1", "gbk")  # what a latin1 column's bytes may be declared to hold


@dataclass(frozen=True)
class MySQLColumn:
    name: str
    column_type: str  # information_schema.columns.column_type: 'int(10) unsigned', "enum('a')"
    charset: str | None = None  # information_schema.columns.character_set_name (text columns)
    # a latin1 column's bytes as read: "gbk" (decoded as GBK) or None (as declared)
    decode_as: str | None = None

    @property
    def is_latin1(self) -> bool:
        return (self.charset or "").lower() == "latin1"

    @property
    def pg_type(self) -> str:
        return pg_type(self.column_type, self.name)

    @property
    def is_date(self) -> bool:
        """A date or date-time column: it can hold zero dates."""
        return _base(self.column_type) in ("date", "datetime", "timestamp")


def _base(column_type: str) -> str:
    return re.split(r"[\s(]", column_type.strip().lower(), maxsplit=1)[0]


def _args(column_type: str) -> str | None:
    found = re.match(r"^\w+\s*\(([^)]*)\)", column_type.strip())
    return found.group(1).replace(" ", "") if found else None


# base type -> (signed, unsigned) PostgreSQL type: an unsigned integer takes the next wider
# signed type, since PostgreSQL has no unsigned integers
_INTEGERS = {
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20,0)"),
}
_TEXT = {"tinytext", "text", "mediumtext", "longtext", "enum", "set", "json", "long"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_FRACTION = re.compile(r"^[0-6]$")


def pg_type(column_type: str, column: str = "") -> str:  # noqa: PLR0911, PLR0912 (one case a type)
    """The PostgreSQL type a MySQL column lands as (docs/sources.md, "MySQL types")."""
    declared = column_type.strip().lower()
    base, args = _base(declared), _args(declared)
    unsigned = " unsigned" in f" {declared}"
    if base == "tinyint" and args == "1":
        return "boolean"  # MySQL's BOOLEAN is tinyint(1)
    if base == "bit":
        return "boolean" if args in (None, "1") else "bigint"
    if base in _INTEGERS:
        return _INTEGERS[base][1 if unsigned else 0]
    if base in ("decimal", "numeric", "dec", "fixed"):
        precision = args or "10,0"  # MySQL's default: decimal(10,0)
        return f"numeric({precision})"
    if base == "float":
        return "real"
    if base in ("double", "real"):
        return "double precision"
    if base in ("char", "varchar"):
        return f"character varying({args})" if args else "text"  # n counts characters in both
    if base in _TEXT:
        return "text"
    if base in _BINARY:
        return "bytea"
    if base == "date":
        return "date"
    if base in ("datetime", "timestamp"):
        fraction = f"({args})" if args and _FRACTION.match(args) and args != "0" else ""
        zone = "with" if base == "timestamp" else "without"
        return f"timestamp{fraction} {zone} time zone"
    if base == "time":
        return "interval"  # MySQL's time spans -838:59:59 to 838:59:59, not a time of day
    if base == "year":
        return "smallint"
    where = f" (column {column})" if column else ""
    raise UnsupportedType(
        f"MySQL type {column_type}{where} has no PostgreSQL mapping here (hdp.ingest.mysql): "
        "leave the column out with a view at the source, or cast it there to text"
    )


def quote_name(name: str) -> str:
    """A MySQL identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def quote_literal(value: str) -> str:
    """A MySQL string literal (the session's sql_mode has no NO_BACKSLASH_ESCAPES)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_zero(ref: str) -> str:
    """A zero date or date-time: zero year, month or day (MySQL's 0000-00-00 and relatives)."""
    return f"(year({ref}) = 0 or month({ref}) = 0 or dayofmonth({ref}) = 0)"


def _escaped(text_expr: str) -> str:
    """COPY text escaping: backslash, tab, newline and carriage return."""
    out = f"replace({text_expr}, '\\\\', '\\\\\\\\')"
    for char, escape in (("\\t", "\\\\t"), ("\\n", "\\\\n"), ("\\r", "\\\\r")):
        out = f"replace({out}, '{char}', '{escape}')"
    return out


def value_text(column: MySQLColumn) -> str:  # noqa: PLR0911 (one case a type)
    """A MySQL expression of one column's value as COPY text (NULL as NULL: copy_line maps it)."""
    ref = quote_name(column.name)
    target = column.pg_type
    if target == "boolean":
        return f"case when {ref} is null then null when {ref} <> 0 then 't' else 'f' end"
    if target == "bytea":
        return f"concat('\\\\\\\\x', hex({ref}))"  # COPY text of bytea's hex form: \\x0a1b
    if target == "date":
        return f"if({_is_zero(ref)}, null, date_format({ref}, '%Y-%m-%d'))"
    if target.startswith("timestamp"):
        # the session runs in UTC, so a MySQL timestamp (stored in UTC) lands as it is stored
        suffix = "+00" if "with time zone" in target else ""
        return (
            f"if({_is_zero(ref)}, null, concat(date_format({ref}, '%Y-%m-%d %H:%i:%s.%f'), "
            f"'{suffix}'))"
        )
    if column.decode_as == "gbk":  # latin1 on the server, GBK bytes in fact
        return _escaped(f"convert(convert(cast({ref} as binary) using gbk) using utf8mb4)")
    if _base(column.column_type) == "bit":  # bit(n): its number, not its bytes
        return f"cast({ref} + 0 as char)"
    if target in ("smallint", "integer", "bigint", "real", "double precision", "interval") or (
        target.startswith("numeric")
    ):
        return f"cast({ref} as char)"
    return _escaped(f"cast({ref} as char)")  # text of every kind, in the session's utf8mb4


def copy_line(columns: list[MySQLColumn], constants: list[str]) -> str:
    """A MySQL expression of a whole row as one line of COPY text; `constants` (already text,
    no tab or newline) follow the columns (the batch's metadata)."""
    parts = [f"coalesce({value_text(c)}, '\\\\N')" for c in columns]
    parts += [quote_literal(v) for v in constants]
    return "concat_ws(char(9), " + ", ".join(parts) + ")"


def zero_date_counts(columns: list[MySQLColumn]) -> str:
    """Select list counting the zero dates of each date column (empty string if none)."""
    dates = [c for c in columns if c.is_date]
    return ", ".join(f"coalesce(sum({_is_zero(quote_name(c.name))}), 0)" for c in dates)


class CharsetRefused(ValueError):
    """A latin1 column holds bytes that are neither ASCII nor GBK, and no declaration says what
    they are: the message names the column and the count, never a value."""


def charset_probe(columns: list[MySQLColumn]) -> str:
    """Select list: per latin1 column, the values with non-ASCII bytes and, of those, the values
    whose bytes are not valid GBK (empty string if no column is latin1)."""
    parts = []
    for column in (c for c in columns if c.is_latin1):
        raw = f"cast({quote_name(column.name)} as binary)"
        # a byte of 0x80 or more: hex pairs from the start, the first one not ASCII
        non_ascii = f"hex({raw}) regexp '^([0-7][0-9A-F])*[89A-F]'"
        parts.append(f"coalesce(sum({non_ascii}), 0)")
        parts.append(f"coalesce(sum({raw} <> cast(convert({raw} using gbk) as binary)), 0)")
    return ", ".join(parts)


def decide_charsets(
    columns: list[MySQLColumn],
    found: tuple | list,
    declared: dict[str, str],
    where: str,
) -> tuple[list[MySQLColumn], dict[str, int]]:
    """The columns as they are to be read, given `charset_probe`'s counts (`found`, in its
    order) and the manifest's `charsets`; and the values decoded as GBK per column. Raises
    CharsetRefused for a latin1 column with non-GBK bytes that no declaration covers."""
    from dataclasses import replace

    counts = iter(found)
    out, decoded = [], {}
    for column in columns:
        if not column.is_latin1:
            out.append(column)
            continue
        non_ascii, not_gbk = int(next(counts)), int(next(counts))
        said = declared.get(column.name)
        if said == "latin1" or non_ascii == 0:
            out.append(column)
        elif said == "gbk" or not_gbk == 0:
            out.append(replace(column, decode_as="gbk"))
            decoded[column.name] = non_ascii
        else:
            raise CharsetRefused(
                f"{where}: column {column.name} is declared latin1 at the source and {not_gbk} of "
                f"its {non_ascii} non-ASCII values are not GBK either, so their text cannot be "
                "told: declare what the column holds in the table's manifest, "
                f"`charsets: {{{column.name}: latin1}}` (true Latin-1 text) or "
                f"`{{{column.name}: gbk}}`, or convert the column at the source"
            )
    return out, decoded


# the extract's session: UTC (timestamps as stored), utf8mb4, backslash escapes on, zero dates
# readable; read only. One statement each (PyMySQL runs one at a time).
SESSION_SQL = (
    "set names utf8mb4",
    "set session time_zone = '+00:00', session sql_mode = ''",
    "set session transaction read only",
)


def start_session(conn) -> None:
    """Set the extract's session (SESSION_SQL) on a PyMySQL connection."""
    with conn.cursor() as cur:
        for statement in SESSION_SQL:
            cur.execute(statement)


def read_columns(cur, schema: str, table: str) -> list[MySQLColumn]:
    """The columns of a source table in table order (a PyMySQL cursor); [] if none is visible."""
    cur.execute(
        "select column_name, column_type, character_set_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    return [MySQLColumn(name, kind, charset) for name, kind, charset in cur.fetchall()]


# --- the rows' stream: the source's own command-line client ---------------------------------


class ClientNotFound(RuntimeError):
    """The `mariadb` (or `mysql`) command-line client is missing: the message names the package."""


def client_binary() -> str:
    """The MariaDB or MySQL command-line client (Debian: mariadb-client, which mariadb-server
    pulls in)."""
    import shutil

    for name in ("mariadb", "mysql"):
        found = shutil.which(name)
        if found:
            return found
    raise ClientNotFound(
        "the extract of a MySQL source streams rows through the `mariadb` command-line client, "
        "which is not installed: `apt-get install mariadb-client` (Debian/Ubuntu), or "
        "`make mariadb` as root"
    )


def _option_value(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class LineCounter:
    """A binary file wrapper that counts the lines read through it (one line, one row)."""

    def __init__(self, raw) -> None:
        self.raw, self.lines = raw, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.lines += chunk.count(b"\n")
        return chunk

    readline = read  # psycopg2's copy_expert only calls read(size)


class ClientStream:
    """`with ClientStream(conn, query) as rows:` the output of `query` as a file: the rows the
    source server rendered as COPY text, read by its command-line client without buffering
    (`--quick`). `conn` is the PyMySQL connection whose login and database the client uses; the
    password goes through a 0600 option file, never the command line. `rows.lines` counts them."""

    def __init__(self, conn, query: str) -> None:
        self.conn, self.query = conn, query

    def __enter__(self) -> LineCounter:
        import subprocess
        import tempfile

        self._folder = tempfile.TemporaryDirectory(prefix="hdp-mysql-")
        options = os.path.join(self._folder.name, "client.cnf")
        fd = os.open(options, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("[client]\n")
            if self.conn.unix_socket:
                handle.write(f"socket={_option_value(_text(self.conn.unix_socket))}\n")
            else:
                handle.write(f"host={_option_value(_text(self.conn.host))}\n")
                handle.write(f"port={int(self.conn.port)}\n")
            handle.write(f"user={_option_value(_text(self.conn.user))}\n")
            handle.write(f"password={_option_value(_text(self.conn.password))}\n")
        self._stderr = open(os.path.join(self._folder.name, "stderr"), "w+b")
        database = _text(self.conn.db)
        self._proc = subprocess.Popen(
            [
                client_binary(),
                f"--defaults-file={options}",  # must be first; nothing else is read
                "--batch",
                "--raw",  # the server escaped every value already
                "--skip-column-names",
                "--quick",
                "--default-character-set=utf8mb4",
                *([f"--database={database}"] if database else []),
                "--execute",
                "; ".join([*SESSION_SQL, self.query]),
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.rows = LineCounter(self._proc.stdout)
        return self.rows

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is not None:
                self._proc.kill()
            self._proc.stdout.close()
            code = self._proc.wait()
            self._stderr.seek(0)
            first = self._stderr.read().decode(errors="replace").strip().splitlines()
        finally:
            self._stderr.close()
            self._folder.cleanup()
        if kind is None and code != 0:
            # the client's error can quote a value: its first line, quoted parts replaced
            message = re.sub(r"'[^']*'", "'…'", first[0] if first else "")[:300]
            raise ClientError(f"the mariadb client failed (exit {code}): {message}")


class ClientError(RuntimeError):
    """The command-line client exited with an error while reading the rows."""
