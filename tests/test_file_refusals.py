"""File-level refusals with their own messages (issue 15, part B): a blank file, a header-only
file, a header that differs only in letter case, and UTF-16/UTF-32 files (decoded). Unit tests
of the decoding and parsing functions the loader calls (no database); the fixtures are generated
here and look like no simulator of ours (other columns, GBK/UTF-16 text)."""

from __future__ import annotations

import pytest

from hdp.ingest.files import FileRefused, detect_encoding, parse_lines

COLUMNS = ("specimen_no", "analyte", "result_value", "resulted_on")
HEADER = ",".join(COLUMNS)
ROWS = ["S-0001,血红蛋白,135,2018-01-01 星期一", "S-0002,白细胞,6.2,2018-01-02 星期二"]
TEXT = "\r\n".join([HEADER, *ROWS]) + "\r\n"


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n", b"  \r\n\r\n", b"\xef\xbb\xbf\n"])
def test_a_blank_file_is_refused_as_blank(data):
    encoding = detect_encoding(data)
    with pytest.raises(FileRefused, match=r"^blank file") as refused:
        parse_lines(data.decode(encoding), COLUMNS)
    assert "schema drift" not in str(refused.value)


@pytest.mark.parametrize("text", [HEADER, HEADER + "\n", HEADER + "\r\n\r\n"])
def test_a_header_only_file_is_refused_not_published_empty(text):
    with pytest.raises(FileRefused, match=r"^header only, no rows"):
        parse_lines(text, COLUMNS)


def test_a_header_that_differs_only_in_case_says_so():
    shouted = ",".join(c.upper() if i % 2 == 0 else c for i, c in enumerate(COLUMNS))
    text = "\n".join([shouted, *ROWS]) + "\n"
    with pytest.raises(FileRefused) as refused:
        parse_lines(text, COLUMNS)
    message = str(refused.value)
    assert message.startswith("header differs only in case: ")
    assert "specimen_no" in message and "result_value" in message  # the fields that differ
    assert (
        "analyte" not in message.split("expected", maxsplit=1)[0]
    )  # a field that matches is not listed
    assert "missing" not in message
    assert "S-0001" not in message and "血红蛋白" not in message  # no value of the file


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-32-be", b"\x00\x00\xfe\xff"),
    ],
)
def test_utf16_and_utf32_files_are_decoded(encoding, bom):
    """Excel's 'Unicode text' is UTF-16 with a BOM: decoded, not 'neither UTF-8 nor GBK'."""
    data = bom + TEXT.encode(encoding)
    found = detect_encoding(data)
    rows, malformed = parse_lines(data.decode(found), COLUMNS)
    assert malformed == 0
    assert [r[:4] for r in rows] == [r.split(",") for r in ROWS]


def test_gbk_and_utf8_are_still_told_apart():
    assert detect_encoding(TEXT.encode("gbk")) == "gbk"
    assert detect_encoding(TEXT.encode("utf-8")) == "utf-8"
    assert detect_encoding(b"\xef\xbb\xbf" + TEXT.encode("utf-8")) == "utf-8-sig"


def test_utf16_without_a_bom_is_refused_naming_utf16():
    """Without a BOM the byte order is a guess: refused, with a message that says UTF-16."""
    data = TEXT.encode("utf-16-le")
    with pytest.raises(UnicodeError, match="UTF-16"):
        detect_encoding(data)
