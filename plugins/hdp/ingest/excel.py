"""Excel workbooks as file drops (.xlsx, .xlsm, .xlsb, .xls, .ods), read by python-calamine.

A pharmacy's export often comes as a workbook, not a CSV. A workbook is loaded like a CSV drop
(hdp.ingest.files: exactly once by the sha256 of its bytes, one batch per file, the gate and the
publish unchanged): one sheet, chosen by the manifest's `sheet` (a name, or a position from 0;
default the first), whose first row is the header. Every cell lands as text, together with its
Excel type in `_cell_types` (one letter per file column, in the header's order), so the gate can
see what a spreadsheet did to the data:

- `s` text, `n` number, `d` date or date-time, `t` time or duration, `b` boolean, `-` empty;
- a number is written with Excel's 15 significant digits (`format(v, ".15g")`): a code typed
  as a number shows as `123` with type `n` (its leading zeros are gone: `00123` was text `s`),
  an 18-digit id Excel kept as a number shows as `4.4e+17` (its last digits are lost);
- a date cell is ISO text (`2064-10-23 21:09:00`); a date Excel did not format as one stays a
  serial number (`45123`, type `n`) and fails the column's date parse like any other text.

Completely empty rows (a workbook's formatting often reaches past the data) are skipped and
counted; a row with cells beyond the header's width is kept as malformed, as a CSV line with
too many fields is (its first cell as the key, the row's cell types in `_raw_line`, never its
values). Nothing here logs or raises with a cell's content.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

CELL_TYPES_COLUMN = "_cell_types"
EMPTY = "-"


class WorkbookRefused(ValueError):
    """The workbook cannot be read as the manifest's table (no such sheet, not a workbook)."""


@dataclass(frozen=True)
class Sheet:
    """A sheet's data rows (file columns, then _line_no, _malformed, _raw_line, _cell_types)."""

    rows: list[list[str | None]]
    malformed: int
    blank_rows: int


def cell_text(value: object) -> tuple[str | None, str]:
    """A cell as (text, Excel type letter); an empty cell is (None, '-')."""
    if value is None or value == "":
        return None, EMPTY
    if isinstance(value, bool):  # before int: bool is an int
        text, kind = ("true" if value else "false"), "b"
    elif isinstance(value, int | float):
        text, kind = format(float(value), ".15g"), "n"
    elif isinstance(value, datetime):
        text, kind = value.isoformat(sep=" "), "d"
    elif isinstance(value, date):
        text, kind = value.isoformat(), "d"
    elif isinstance(value, time | timedelta):
        text, kind = (value.isoformat() if isinstance(value, time) else str(value)), "t"
    else:
        text, kind = str(value), "s"
    return text, kind


def _open_sheet(data: bytes, sheet: str | int | None) -> list[list[object]]:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # calamine's errors name the format problem, not cell values
        raise WorkbookRefused(
            f"not a readable workbook ({type(exc).__name__}): re-export it as .xlsx or CSV"
        ) from None
    names = book.sheet_names
    if sheet is None:
        sheet = 0
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise WorkbookRefused(
                f"the manifest's sheet {sheet} (a position from 0) is not there: the workbook "
                f"has {len(names)} sheet{'' if len(names) == 1 else 's'}"
            )
        chosen = book.get_sheet_by_index(sheet)
    else:
        if sheet not in names:
            raise WorkbookRefused(
                f"the workbook has no sheet named {sheet!r} (the manifest's `sheet`): it has "
                f"{len(names)} sheet{'' if len(names) == 1 else 's'}; name the sheet or give "
                "its position"
            )
        chosen = book.get_sheet_by_name(sheet)
    return chosen.to_python(skip_empty_area=False)


def read_sheet(
    data: bytes, columns: Sequence[str], sheet: str | int | None = None
) -> tuple[list[str], Sheet]:
    """(the header as found, the data rows) of the chosen sheet; WorkbookRefused when the
    workbook or the sheet cannot be read. The caller compares the header with the manifest's."""
    cells = _open_sheet(data, sheet)
    while cells and all(cell_text(v)[0] is None for v in cells[-1]):
        cells.pop()  # formatting past the last row of data
    if not cells:
        return [], Sheet([], 0, 0)
    header = [(cell_text(v)[0] or "").strip() for v in cells[0]]
    while header and header[-1] == "":
        header.pop()  # empty cells right of the header
    width = len(columns)
    rows: list[list[str | None]] = []
    malformed = blank = 0
    for line_no, raw in enumerate(cells[1:], start=2):
        texts, types = zip(*(cell_text(v) for v in raw), strict=True) if raw else ((), ())
        if all(t is None for t in texts):
            blank += 1
            continue
        texts, types = list(texts), list(types)
        while len(texts) > width and texts[-1] is None:
            texts.pop()
            types.pop()
        texts += [None] * (width - len(texts))
        types += [EMPTY] * (width - len(types))
        signature = "".join(types)
        if len(texts) == width:
            rows.append([*texts, str(line_no), "f", None, signature])
            continue
        malformed += 1
        key = texts[0] if texts[0] is not None else f"line:{line_no}"
        rows.append([key, *([None] * (width - 1)), str(line_no), "t", signature, signature])
    return header, Sheet(rows, malformed, blank)
