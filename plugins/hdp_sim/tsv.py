"""Vectorised column formatting and chunked COPY into PostgreSQL (text format)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

NULL = "\\N"
_CENTS = np.asarray([f"{i:02d}" for i in range(100)])
MONEY_NULL = np.iinfo(np.int64).min  # sentinel for a null amount in an int64 cents array


def money(cents: np.ndarray) -> np.ndarray:
    """int64 cents -> '123.45' / '-0.50' strings; MONEY_NULL -> NULL."""
    cents = np.asarray(cents, dtype=np.int64)
    is_null = cents == MONEY_NULL
    safe = np.where(is_null, 0, cents)
    whole = np.abs(safe) // 100
    text = np.strings.add(
        np.strings.add(np.where(safe < 0, "-", ""), whole.astype(str)),
        np.strings.add(".", _CENTS[np.abs(safe) % 100]),
    )
    return np.where(is_null, NULL, text)


def column_text(values: np.ndarray) -> list[str]:
    """One column as COPY text fields (values must not contain tab, newline or backslash)."""
    kind = values.dtype.kind
    if kind in "iu":
        return values.astype(str).tolist()
    if kind == "b":
        return np.where(values, "t", "f").tolist()
    if kind == "M":
        text = np.datetime_as_string(values, unit="s" if values.dtype != "M8[D]" else "D")
        return np.where(np.isnat(values), NULL, text).tolist()
    if kind == "U":
        return values.tolist()
    return [NULL if v is None else v for v in values.tolist()]


def copy_rows(
    cur, table: str, columns: Sequence[str], data: Sequence[np.ndarray], chunk: int = 200_000
) -> int:
    """COPY equal-length column arrays into table, in chunks; returns the row count."""
    n = len(data[0]) if data else 0
    cols = ", ".join(columns)
    for start in range(0, n, chunk):
        parts = [column_text(a[start : start + chunk]) for a in data]
        buf = io.StringIO()
        buf.write("\n".join(map("\t".join, zip(*parts, strict=True))))
        buf.write("\n")
        buf.seek(0)
        cur.copy_expert(f"copy {table} ({cols}) from stdin", buf)
    return n
