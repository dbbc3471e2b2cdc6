"""A source database's catalogue, and what the scaffold infers from it (hdp.ingest.scaffold).

Reads the catalogue only (tables, columns, types, comments, keys and unique indexes), never a
row: nothing here can put patient data on a screen or in a log. The reader is one function per
SQL dialect (`CATALOGUE_READERS`), so a MySQL, SQL Server or Oracle source needs one more
function that returns the same `Table` records (MySQL and MariaDB: `read_mysql_catalogue`, from
information_schema); the inference below is dialect-free.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg2

from hdp.errors import safe_error
from hdp.ingest.mysql import UnsupportedType, pg_type, start_session


class CatalogueError(RuntimeError):
    """The catalogue could not be read: the message says what to grant or fix."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # as the source declares it: 'timestamp without time zone', 'varchar(20)'
    not_null: bool = False
    comment: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    # unique indexes (not partial, no expression), each its columns in index order
    unique_indexes: tuple[tuple[str, ...], ...] = ()
    comment: str = ""

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class KeyChoice:
    columns: tuple[str, ...]  # empty: no key found
    origin: str  # 'primary key', 'unique index', or '' when none
    note: str = ""  # what the user must check or decide


@dataclass(frozen=True)
class WatermarkChoice:
    column: str | None  # None: no usable watermark, a TODO for the user
    note: str = ""


@dataclass(frozen=True)
class TablePlan:
    """What the scaffold writes for one table: its key, watermark and personal columns."""

    table: Table
    key: KeyChoice
    watermark: WatermarkChoice
    personal: dict[str, str] = field(default_factory=dict)  # column -> kind (name, id_card...)

    @property
    def todos(self) -> list[str]:
        """What the user must decide before the manifest loads (the loader rejects a TODO)."""
        found = []
        if not self.key.columns:
            found.append(f"primary key: {self.key.note}")
        if self.watermark.column is None:
            found.append(f"watermark: {self.watermark.note}")
        return found


# --- types -------------------------------------------------------------------------------

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("timestamp", re.compile(r"^(timestamp|datetime|smalldatetime|datetime2|datetimeoffset)")),
    ("date", re.compile(r"^date$")),
    ("integer", re.compile(r"^(smallint|integer|int|bigint|tinyint|mediumint|serial|bigserial)")),
    ("numeric", re.compile(r"^(numeric|decimal|real|double|float|money|number)")),
    ("boolean", re.compile(r"^(boolean|bool|bit)$")),
    ("text", re.compile(r"^(text|character|varchar|char|nvarchar|nchar|varchar2|nvarchar2|clob)")),
)


def type_family(data_type: str) -> str:
    """The family of a declared type: timestamp, date, integer, numeric, boolean, text, other."""
    declared = data_type.strip().lower()
    for family, pattern in _FAMILIES:
        if pattern.match(declared):
            return family
    return "other"


# --- keys --------------------------------------------------------------------------------


def choose_key(table: Table) -> KeyChoice:
    """The primary key; else a unique index of not-null columns; else none (a TODO)."""
    if table.primary_key:
        return KeyChoice(table.primary_key, "primary key")
    not_null = {c.name for c in table.columns if c.not_null}
    for index in table.unique_indexes:
        if set(index) <= not_null:
            return KeyChoice(
                index,
                "unique index",
                "the source declares no primary key: check the index identifies a row",
            )
    if table.unique_indexes:
        return KeyChoice(
            (),
            "",
            "no primary key; its unique indexes allow nulls (not a key): choose the columns "
            "that identify a row",
        )
    return KeyChoice(
        (),
        "",
        "no primary key and no unique index: choose the columns that "
        "identify a row (the gate checks they are unique and not null)",
    )


# --- watermark ---------------------------------------------------------------------------

# Change-time names, most telling first: English and the pinyin initials Chinese hospital
# systems use (更新时间 gxsj, 修改时间 xgsj, 操作时间 czsj, 最后更新/修改时间 zhgxsj/zhxgsj).
CHANGE_TIME_NAMES: tuple[str, ...] = (
    "updated_at",
    "modified_at",
    "last_modified",
    "last_modified_at",
    "last_updated",
    "last_update",
    "changed_at",
    "update_time",
    "updatetime",
    "modify_time",
    "modifytime",
    "last_modify_time",
    "change_time",
    "gxsj",
    "xgsj",
    "zhgxsj",
    "zhxgsj",
    "czsj",
)
# the same meaning in a column comment (a pinyin column with a Chinese comment)
CHANGE_TIME_COMMENT = re.compile(r"(更新|修改|变更|操作)(时间|日期)")


def change_time_rank(column: Column) -> int | None:
    """How telling a column's name (or comment) is as a change time; None if it is not one."""
    name = column.name.lower()
    if name in CHANGE_TIME_NAMES:
        return CHANGE_TIME_NAMES.index(name)
    if CHANGE_TIME_COMMENT.search(column.comment):
        return len(CHANGE_TIME_NAMES)
    return None


def choose_watermark(table: Table) -> WatermarkChoice:
    """A timestamp column named like a change time; else none, with the reason.

    The extract (hdp.ingest.watermark) also takes an integer the source raises on every change
    (a change number), but the catalogue cannot tell one from a key that never moves when a
    row is corrected, and there is no full-reload mode: an integer, a date or a text column
    leaves a TODO, with a hint when an integer might do."""
    ranked = sorted(
        (rank, i, c)
        for i, c in enumerate(table.columns)
        if (rank := change_time_rank(c)) is not None
    )
    for _, _, column in ranked:
        if type_family(column.data_type) == "timestamp":
            return WatermarkChoice(column.name)
    if ranked:
        column = ranked[0][2]
        return WatermarkChoice(
            None,
            f"{column.name} looks like a change time but is {column.data_type}: the extract "
            "needs a timestamp or a change number; ask the source to add one (or a view that "
            "casts it)",
        )
    integers = [c.name for c in table.columns if type_family(c.data_type) == "integer"]
    hint = (
        f" (integer column {integers[0]} will do only if the source raises it on every insert "
        "and update, or the table is append-only)"
        if integers
        else ""
    )
    return WatermarkChoice(
        None,
        "no change-time column: the extract needs a timestamp or a change number and has no "
        f"full reload{hint}; ask the source for a last-modified column",
    )


# --- personal data -----------------------------------------------------------------------

# Direct identifiers by kind: English names and the pinyin initials of Chinese systems
# (姓名 xm, 身份证号 sfzh, 联系电话 lxdh, 地址 dz...). Matched on the whole name or one of
# its '_' parts, so dept_name is not a person's name but patient_name and hz_xm are.
PERSONAL_NAMES: dict[str, frozenset[str]] = {
    "name": frozenset(
        {
            "name",
            "patient_name",
            "person_name",
            "full_name",
            "xm",
            "xingming",
            "hzxm",
            "brxm",
            "lxrxm",
            "jsxm",
        }
    ),
    "id_card": frozenset(
        {
            "id_card",
            "id_card_no",
            "idcard",
            "id_no",
            "id_number",
            "national_id",
            "sfzh",
            "sfzhm",
            "zjhm",
            "shenfenzheng",
        }
    ),
    "phone": frozenset(
        {
            "phone",
            "phone_no",
            "mobile",
            "mobile_no",
            "tel",
            "telephone",
            "lxdh",
            "sjhm",
            "lxrdh",
            "dh",
        }
    ),
    "address": frozenset(
        {"address", "addr", "home_address", "dz", "jtdz", "zz", "xzz", "hjdz", "lxdz"}
    ),
}
PERSONAL_COMMENT: dict[str, re.Pattern[str]] = {
    "name": re.compile(r"(患者|病人|联系人)?姓名"),
    "id_card": re.compile(r"身份证|证件号"),
    "phone": re.compile(r"电话|手机"),
    "address": re.compile(r"地址|住址"),
}


def personal_kind(column: Column) -> str | None:
    """The kind of direct identifier a column looks like (name, id_card, phone, address)."""
    name = column.name.lower()
    parts = set(name.split("_"))
    for kind, names in PERSONAL_NAMES.items():
        if name in names or (kind != "name" and parts & names):
            return kind
    for kind, pattern in PERSONAL_COMMENT.items():
        if pattern.search(column.comment):
            return kind
    return None


def plan_table(table: Table) -> TablePlan:
    personal = {c.name: k for c in table.columns if (k := personal_kind(c)) is not None}
    return TablePlan(table, choose_key(table), choose_watermark(table), personal)


# --- readers, one per dialect ------------------------------------------------------------

_PG_TABLES = """
select c.oid, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
       has_table_privilege(c.oid, 'select')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
order by c.relname
"""
_PG_COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(col_description(a.attrelid, a.attnum), '')
from pg_attribute a
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""
# keys and unique indexes on plain columns (no expression, not partial), columns in index order
_PG_INDEXES = """
select i.indisprimary, array_agg(a.attname order by k.ord)
from pg_index i
cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
where i.indrelid = %s and i.indisunique and i.indpred is null and i.indexprs is null
group by i.indexrelid, i.indisprimary
order by i.indisprimary desc, i.indexrelid
"""


def read_postgres_catalogue(conn, schema: str, only: Sequence[str] = ()) -> list[Table]:
    """Tables of a PostgreSQL schema the login can read, with columns, keys and comments."""
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_namespace where nspname = %s", (schema,))
        if cur.fetchone() is None:
            raise CatalogueError(f"schema {schema} does not exist in the source database")
        cur.execute("select has_schema_privilege(%s, 'usage')", (schema,))
        if not cur.fetchone()[0]:
            raise CatalogueError(
                f"the login cannot use schema {schema} (no USAGE): grant it usage on the "
                "schema and select on its tables, the rights the extract needs too"
            )
        cur.execute(_PG_TABLES, (schema,))
        found = [(oid, name, comment, ok) for oid, name, comment, ok in cur.fetchall()]
        wanted = [t for t in found if not only or t[1] in only]
        _check_selection(schema, only, {t[1] for t in found})
        unreadable = sorted(name for _, name, _, ok in wanted if not ok)
        if unreadable:
            raise CatalogueError(
                f"the login cannot select from {schema}.{', '.join(unreadable)}: grant select "
                "(the extract needs it), or leave the tables out with --tables"
            )
        return [_pg_table(cur, oid, name, comment) for oid, name, comment, _ in wanted]


def _check_selection(schema: str, only: Sequence[str], found: set[str]) -> None:
    missing = sorted(set(only) - found)
    if missing:
        raise CatalogueError(f"no table {', '.join(missing)} in schema {schema}")
    if not found:
        raise CatalogueError(f"schema {schema} has no table")


def _pg_table(cur, oid: int, name: str, comment: str) -> Table:
    cur.execute(_PG_COLUMNS, (oid,))
    columns = tuple(Column(n, t, bool(nn), _one_line(c)) for n, t, nn, c in cur.fetchall())
    cur.execute(_PG_INDEXES, (oid,))
    indexes = cur.fetchall()
    primary = next((tuple(cols) for is_pk, cols in indexes if is_pk), ())
    unique = tuple(tuple(cols) for is_pk, cols in indexes if not is_pk)
    return Table(name, columns, primary, unique, _one_line(comment))


def _one_line(comment: str) -> str:
    """A comment fit for a SQL or YAML comment line: a newline there would end it."""
    return " ".join(comment.split())


def connect_postgres(login):
    """A read-only session on the source: the scaffold never writes there."""
    from hdp.warehouse.database import connect

    try:
        conn = connect(login, connect_timeout=10)
    except psycopg2.Error as exc:
        raise CatalogueError(f"cannot connect to the source: {safe_error(exc)}") from exc
    conn.set_session(readonly=True)
    return conn


_MYSQL_TABLES = """
select table_name, table_comment, table_type from information_schema.tables
where table_schema = %s and table_type in ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED')
order by table_name
"""
_MYSQL_COLUMNS = """
select column_name, column_type, is_nullable = 'NO', column_comment
from information_schema.columns where table_schema = %s and table_name = %s
order by ordinal_position
"""
# unique indexes over whole columns (no prefix index: a prefix is not the column's value)
_MYSQL_INDEXES = """
select index_name, group_concat(column_name order by seq_in_index separator '\t'),
       max(sub_part is not null)
from information_schema.statistics
where table_schema = %s and table_name = %s and non_unique = 0
group by index_name
order by index_name <> 'PRIMARY', index_name
"""


def read_mysql_catalogue(conn, schema: str, only: Sequence[str] = ()) -> list[Table]:
    """Tables of a MySQL/MariaDB database (`schema`: MySQL's database) from information_schema,
    with each column's declared type (`column_type`; its PostgreSQL type: hdp.ingest.mysql)."""
    with conn.cursor() as cur:
        cur.execute("select 1 from information_schema.schemata where schema_name = %s", (schema,))
        if cur.fetchone() is None:
            raise CatalogueError(
                f"database {schema} does not exist on the MySQL source, or the login has no "
                "privilege on it: grant it select on the database's tables"
            )
        # information_schema lists only what the login has a privilege on
        cur.execute(_MYSQL_TABLES, (schema,))
        found = [(name, "" if kind == "VIEW" else comment) for name, comment, kind in cur]
        _check_selection(schema, only, {name for name, _ in found})
        return [
            _mysql_table(cur, schema, name, comment)
            for name, comment in found
            if not only or name in only
        ]


def _mysql_table(cur, schema: str, name: str, comment: str) -> Table:
    cur.execute(_MYSQL_COLUMNS, (schema, name))
    columns = tuple(Column(n, t, bool(nn), _one_line(c)) for n, t, nn, c in cur.fetchall())
    for column in columns:  # refused now, not at the first extract
        try:
            pg_type(column.data_type, f"{schema}.{name}.{column.name}")
        except UnsupportedType as exc:
            raise CatalogueError(str(exc)) from None
    cur.execute(_MYSQL_INDEXES, (schema, name))
    primary: tuple[str, ...] = ()
    unique: list[tuple[str, ...]] = []
    for index, cols, prefixed in cur.fetchall():
        if prefixed:
            continue
        if index == "PRIMARY":
            primary = tuple(cols.split("\t"))
        else:
            unique.append(tuple(cols.split("\t")))
    return Table(name, columns, primary, tuple(unique), _one_line(comment))


def connect_mysql(login):
    """A read-only session on a MySQL or MariaDB source (PyMySQL)."""
    import pymysql

    from hdp.ingest.extract import connect_source

    try:
        conn = connect_source(login)
    except pymysql.Error as exc:
        raise CatalogueError(f"cannot connect to the MySQL source: {safe_error(exc)}") from exc
    start_session(conn)
    return conn


CatalogueReader = Callable[..., list[Table]]
# dialect (the connection URL's scheme) -> (connect, read the catalogue)
CATALOGUE_READERS: dict[str, tuple[Callable, CatalogueReader]] = {
    "postgres": (connect_postgres, read_postgres_catalogue),
    "postgresql": (connect_postgres, read_postgres_catalogue),
    "mysql": (connect_mysql, read_mysql_catalogue),  # MySQL and MariaDB
    "mariadb": (connect_mysql, read_mysql_catalogue),
}


def read_catalogue(login, dialect: str, schema: str, only: Sequence[str] = ()) -> list[Table]:
    """The catalogue of a source through its dialect's reader; a clear error for any failure."""
    if dialect not in CATALOGUE_READERS:
        raise CatalogueError(
            f"no catalogue reader for {dialect!r} sources yet (readers: "
            f"{', '.join(sorted(CATALOGUE_READERS))}; hdp.ingest.catalogue.CATALOGUE_READERS)"
        )
    connect, read = CATALOGUE_READERS[dialect]
    conn = connect(login)
    try:
        return read(conn, schema, only)
    except (psycopg2.Error, *_mysql_errors()) as exc:
        raise CatalogueError(f"cannot read the catalogue: {safe_error(exc)}") from exc
    finally:
        conn.close()


def _mysql_errors() -> tuple[type[BaseException], ...]:
    import pymysql

    return (pymysql.Error,)
