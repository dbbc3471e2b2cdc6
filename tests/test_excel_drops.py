"""Excel workbooks as file drops (issue 16, item 6; hdp.ingest.excel).

The workbooks are written here with xlsxwriter and look like no simulator of ours: a pharmacy's
sales export with Chinese headers-turned-pinyin columns, mixed cell types (text, numbers, Excel
dates, booleans), a second sheet, and an Excel-mangled re-save of the same rows (codes that lost
their leading zeros, an 18-digit id kept as a number, two-digit years typed as text).
"""

from __future__ import annotations

import io
import shutil
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
import xlsxwriter

from hdp.config import load_settings
from hdp.ingest import files as filedrop
from hdp.ingest.excel import cell_text, read_sheet
from hdp.ingest.files import FileRefused, parse_delivery, parse_workbook
from hdp.manifest import load_manifest
from hdp.orchestration.dags import load_metadata
from hdp.quality.gate import validate_batch
from hdp.warehouse.database import connect

COLUMNS = ("xsdh", "ypbm", "ypmc", "sl", "dj", "xsrq", "sfyb")  # 销售单号, 药品编码, ... 是否医保
HEADER = list(COLUMNS)
CLEAN = [  # sale id (text), drug code (text, leading zeros), name, qty, price, sold at, insured
    ("XS20180101000000001", "00123", "阿莫西林胶囊", 2, 12.5, datetime(2018, 1, 1, 9, 30), True),
    ("XS20180101000000002", "04567", "布洛芬缓释胶囊", 1, 23.8, datetime(2018, 1, 1, 10, 5), False),
    ("XS20180102000000003", "00089", "头孢克肟片", 3, 31.0, datetime(2018, 1, 2, 14, 0), True),
]
MANIFEST = """\
    source: {source}
    kind: files
    description: a pharmacy's daily sales workbook (test)
    drop_dir: {drops}
    pattern: sales_*.xlsx
    contains_personal_data: false
    tables:
      - name: sales
        primary_key: [xsdh]
        sheet: 销售明细
        columns: [xsdh, ypbm, ypmc, sl, dj, xsrq, sfyb]
"""
# what a catalogue says about a workbook's cells (docs/sources.md, "Excel workbooks")
CHECKS = """\
    source: {source}
    checks:
      - id: {source}.sales.code_as_number
        table: sales
        level: row
        category: conformance
        severity: quarantine
        column: ypbm
        fails_when: substr(_cell_types, 2, 1) = 'n'
        means: The drug code is a number cell, so Excel dropped its leading zeros.
        fix: Have the pharmacy format the code column as text and re-send the workbook.
      - id: {source}.sales.id_in_scientific_notation
        table: sales
        level: row
        category: conformance
        severity: quarantine
        column: xsdh
        fails_when: substr(_cell_types, 1, 1) = 'n' and xsdh ~* 'e[+-]?[0-9]+$'
        means: The sale id was kept as a number; Excel keeps 15 digits, the rest are lost.
        fix: Have the pharmacy format the id column as text and re-send the workbook.
      - id: {source}.sales.sold_at_is_a_date
        table: sales
        level: row
        category: conformance
        severity: quarantine
        column: xsrq
        fails_when: substr(_cell_types, 6, 1) <> 'd'
        means: The sale time is not a date cell (text such as 10/23/64 loses its century).
        fix: Have the pharmacy keep the column as dates and re-send the workbook.
"""


def workbook(rows, *, sheet: str = "销售明细", mangled: bool = False, header=HEADER) -> bytes:
    """An .xlsx with a cover sheet and the sales sheet; `mangled`: the codes and ids as Excel
    turns them when a column is not text (numbers), the dates as two-digit-year text."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False})
    book.add_worksheet("说明").write_string(0, 0, "导出说明")
    ws = book.add_worksheet(sheet)
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    ws.write_row(0, 0, header)
    for r, (sale, code, name, qty, price, sold, insured) in enumerate(rows, start=1):
        if mangled:
            ws.write_number(r, 0, float(sale[2:]) if sale.startswith("XS") else float(sale))
            ws.write_number(r, 1, int(code))
            ws.write_string(r, 5, sold.strftime("%m/%d/%y %H:%M"))
        else:
            ws.write_string(r, 0, sale)
            ws.write_string(r, 1, code)
            ws.write_datetime(r, 5, sold, when)
        ws.write_string(r, 2, name)
        ws.write_number(r, 3, qty)
        ws.write_number(r, 4, price)
        ws.write_boolean(r, 6, insured)
    for r in range(len(rows) + 1, len(rows) + 4):  # formatting past the data: empty rows
        ws.write_blank(r, 0, None, when)
    book.close()
    return buffer.getvalue()


# ------------------------------------------------------------------ reading, without a database


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00123", ("00123", "s")),
        (123.0, ("123", "n")),  # a code Excel turned into a number: its zeros are gone
        (4.4e17, ("4.4e+17", "n")),  # an 18-digit id: Excel kept 15 digits
        (12.5, ("12.5", "n")),
        (datetime(2064, 10, 23, 21, 9), ("2064-10-23 21:09:00", "d")),
        (True, ("true", "b")),
        ("", (None, "-")),
        (None, (None, "-")),
    ],
)
def test_each_cell_is_text_with_its_excel_type(value, expected):
    assert cell_text(value) == expected


@pytest.mark.unit
def test_the_named_sheet_is_read_with_each_cells_type():
    header, sheet = read_sheet(workbook(CLEAN), COLUMNS, "销售明细")
    assert header == HEADER
    assert sheet.blank_rows == 0 and sheet.malformed == 0  # trailing formatting is not data
    first = sheet.rows[0]
    assert first[: len(COLUMNS)] == [
        "XS20180101000000001",
        "00123",
        "阿莫西林胶囊",
        "2",
        "12.5",
        "2018-01-01 09:30:00",
        "true",
    ]
    assert first[len(COLUMNS) :] == ["2", "f", None, "sssnndb"]  # line 2, not malformed, types
    # the same sheet by position (the cover sheet is 0)
    assert read_sheet(workbook(CLEAN), COLUMNS, 1)[1].rows == sheet.rows


@pytest.mark.unit
def test_a_mangled_resave_shows_in_the_cell_types():
    _, sheet = read_sheet(workbook(CLEAN, mangled=True), COLUMNS, "销售明细")
    codes = [row[1] for row in sheet.rows]
    assert codes == ["123", "4567", "89"]  # what a text-only reader would silently accept
    assert {row[-1][:2] for row in sheet.rows} == {"nn"}  # id and code are number cells
    assert sheet.rows[0][5] == "01/01/18 09:30" and sheet.rows[0][-1][5] == "s"


@pytest.mark.unit
def test_a_missing_sheet_is_refused_without_naming_the_workbooks_sheets():
    with pytest.raises(FileRefused) as refused:
        parse_workbook(workbook(CLEAN, sheet="Sheet1"), COLUMNS, "销售明细")
    assert "no sheet named '销售明细'" in str(refused.value) and "2 sheets" in str(refused.value)
    assert "Sheet1" not in str(refused.value)  # a workbook's own text is never quoted
    with pytest.raises(FileRefused, match="sheet 5"):
        parse_workbook(workbook(CLEAN), COLUMNS, 5)


@pytest.mark.unit
def test_workbook_refusals_match_the_csv_ones():
    with pytest.raises(FileRefused, match=r"^header only"):
        parse_workbook(workbook([]), COLUMNS, "销售明细")
    with pytest.raises(FileRefused, match=r"^header differs only in case"):
        parse_workbook(workbook(CLEAN, header=[c.upper() for c in HEADER]), COLUMNS, "销售明细")
    with pytest.raises(FileRefused, match="not a readable workbook"):
        parse_workbook(b"PK\x03\x04 not really a zip", COLUMNS, None)


@pytest.mark.unit
def test_a_workbook_dropped_into_a_csv_source_is_refused_with_the_fix():
    lis = load_manifest("lis")
    with pytest.raises(FileRefused, match="format: workbook"):
        parse_delivery(lis, lis.tables[0], "lis_results_20240101.xlsx", workbook(CLEAN))


@pytest.mark.unit
def test_a_row_wider_than_the_header_is_kept_as_malformed():
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    ws = book.add_worksheet("销售明细")
    ws.write_row(0, 0, HEADER)
    ws.write_row(1, 0, ["XS1", "00123", "药", 1, 2.0, "2018-01-01", "true", "多出的一格"])
    book.close()
    _, sheet = read_sheet(buffer.getvalue(), COLUMNS, None)
    assert sheet.malformed == 1
    row = sheet.rows[0]
    assert row[0] == "XS1" and row[1 : len(COLUMNS)] == [None] * (len(COLUMNS) - 1)
    assert row[-3] == "t" and row[-2] == row[-1] == "sssnnsss"
    assert "多出的一格" not in row[-2]  # the raw-line column keeps the cell types, not values


# --------------------------------------------------------------- loading, against PostgreSQL


@pytest.fixture
def workbook_source(platform, tmp_path):
    """A workbook source `pharmxl` declared as README says (manifest and catalogue), with its
    landing table created the way set-up does; the expectations folder is the repo's defaults
    plus this source's catalogue."""
    source = "pharmxl"
    drops = tmp_path / "drops"
    drops.mkdir()
    manifests = tmp_path / "sources"
    manifests.mkdir()
    (manifests / f"{source}.yml").write_text(
        textwrap.dedent(MANIFEST.format(source=source, drops=drops)), encoding="utf-8"
    )
    expectations = tmp_path / "expectations"
    expectations.mkdir()
    shutil.copy(load_settings().expectations_dir / "defaults.yml", expectations)
    (expectations / f"{source}.yml").write_text(
        textwrap.dedent(CHECKS.format(source=source)), encoding="utf-8"
    )
    manifest = load_manifest(source, manifests)
    owner = connect(platform.warehouse)
    try:
        filedrop.ensure_landing_tables(owner, manifest)
        with owner.cursor() as cur:
            cur.execute(f"grant usage on schema raw_{source} to hdp_loader")
            cur.execute(
                f"grant select, insert, delete on all tables in schema raw_{source} to hdp_loader"
            )
        owner.commit()
    finally:
        owner.close()
    wh = connect(platform.loader)
    yield manifest, drops, expectations, wh
    wh.close()


def _gate(platform, wh, manifest, expectations: Path, batch_id: int):
    spec = manifest.tables[0]
    return validate_batch(
        wh,
        warehouse_url=platform.loader.url,
        quality_dir=load_settings().quality_dir,
        expectations_dir=expectations,
        batch_id=batch_id,
        source=manifest.source,
        table=spec.name,
        primary_key=list(spec.primary_key),
        watermark=spec.watermark,
        metadata=load_metadata(manifest),
    )


def _rows(wh, query: str, params=()):
    with wh.cursor() as cur:
        cur.execute(query, params)
        out = cur.fetchall()
    wh.rollback()
    return out


def test_a_workbook_loads_once_and_only_once_and_passes_the_default_gate(platform, workbook_source):
    manifest, drops, expectations, wh = workbook_source
    path = drops / "sales_20180102.xlsx"
    path.write_bytes(workbook(CLEAN))
    first = filedrop.ingest_file(wh, manifest, path, "run-1", folder=drops)
    assert first.status == "loaded" and first.rows == 3 and first.encoding == "workbook"
    stored = _rows(wh, "select ypbm, xsrq, _cell_types from raw_pharmxl.sales order by _line_no")
    assert stored[0] == ("00123", "2018-01-01 09:30:00", "sssnndb")
    result = _gate(platform, wh, manifest, expectations, first.batch_id)
    assert result.rows_quarantined == 0
    assert not [c for c in result.checks if c.status == "fail"]  # the defaults fit a workbook
    published = filedrop.publish_files(wh, manifest=manifest, run_id="run-1")
    assert published == {path.name: 3}
    # the operator's rerun, and the same bytes under another name: loaded once
    assert filedrop.ingest_file(wh, manifest, path, "run-2", folder=drops).status == "skipped"
    copy = drops / "sales_20180102 (1).xlsx"
    copy.write_bytes(path.read_bytes())
    assert filedrop.ingest_file(wh, manifest, copy, "run-3", folder=drops).status == "skipped"
    assert _rows(wh, "select count(*) from raw_pharmxl.sales") == [(3,)]


def test_an_excel_mangled_resave_is_caught_by_the_gate(platform, workbook_source):
    manifest, drops, expectations, wh = workbook_source
    path = drops / "sales_20180102_resaved.xlsx"
    path.write_bytes(workbook(CLEAN, mangled=True))
    loaded = filedrop.ingest_file(wh, manifest, path, "run-1", folder=drops)
    assert loaded.status == "loaded" and loaded.rows == 3
    result = _gate(platform, wh, manifest, expectations, loaded.batch_id)
    assert result.rows_quarantined == 3
    # nothing of the mangled rows is published: every row is held in quarantine
    filedrop.publish_files(wh, manifest=manifest, run_id="run-1")
    held = _rows(
        wh,
        "select count(*) from raw_pharmxl.sales as r where exists (select 1 from "
        "audit.quarantined_row as q where q.batch_id = r._batch_id and q.table_name = 'sales')",
    )
    assert held == [(3,)]
    issues = dict(
        _rows(
            wh,
            "select check_id, count(*) from audit.row_issue where batch_id = %s group by 1",
            (loaded.batch_id,),
        )
    )
    assert issues == {
        "pharmxl.sales.code_as_number": 3,
        "pharmxl.sales.id_in_scientific_notation": 3,
        "pharmxl.sales.sold_at_is_a_date": 3,
    }


def test_a_csv_file_source_set_up_by_the_recipe_passes_the_default_gate(platform, tmp_path):
    """README's recipe, a new CSV source with no catalogue of its own: the default checks fit a
    file table (its load metadata, no updated_at), so a clean file passes (issue 15, item 5)."""
    drops, manifests = tmp_path / "drops", tmp_path / "sources"
    drops.mkdir()
    manifests.mkdir()
    text = MANIFEST.format(source="pharmcsv", drops=drops).replace("sales_*.xlsx", "sales_*.csv")
    (manifests / "pharmcsv.yml").write_text(
        textwrap.dedent(text).replace("        sheet: 销售明细\n", ""), encoding="utf-8"
    )
    manifest = load_manifest("pharmcsv", manifests)
    assert manifest.file_format == "csv"
    owner = connect(platform.warehouse)
    try:
        filedrop.ensure_landing_tables(owner, manifest)
        with owner.cursor() as cur:
            cur.execute("grant usage on schema raw_pharmcsv to hdp_loader")
            cur.execute("grant select, insert, delete on raw_pharmcsv.sales to hdp_loader")
        owner.commit()
    finally:
        owner.close()
    path = drops / "sales_20180102.csv"
    lines = [",".join(HEADER)] + [
        ",".join([s, c, n, str(q), str(p), d.strftime("%Y-%m-%d %H:%M:%S"), str(i).lower()])
        for s, c, n, q, p, d, i in CLEAN
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    wh = connect(platform.loader)
    try:
        loaded = filedrop.ingest_file(wh, manifest, path, "run-1", folder=drops)
        assert loaded.encoding == "gbk"
        expectations = tmp_path / "expectations"
        expectations.mkdir()
        shutil.copy(load_settings().expectations_dir / "defaults.yml", expectations)
        result = _gate(platform, wh, manifest, expectations, loaded.batch_id)
        assert result.success and not result.failed, [c.check_id for c in result.failed]
        ids = {c.check_id for c in result.checks}
        assert "schema.columns" in ids and "watermark.not_null" not in ids
    finally:
        wh.close()
