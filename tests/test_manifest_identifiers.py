"""Identifier classes and keys in the manifests (issue 15): what a manifest may declare per
column, what it refuses, and the content-hash key of exports without an id."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdp.manifest import load_manifest

pytestmark = pytest.mark.unit

FILES = """\
source: shop
kind: files
contains_personal_data: {personal}
tables:
  - name: sales
    primary_key: {key}
    columns: [day, card_no, drug, qty]
{identifiers}
"""


def _write(tmp_path: Path, *, key="[card_no, day, drug]", identifiers="", personal="true"):
    (tmp_path / "shop.yml").write_text(
        FILES.format(key=key, identifiers=identifiers, personal=personal), encoding="utf-8"
    )
    return load_manifest("shop", tmp_path)


def test_identifiers_are_declared_per_column_and_default_to_none(tmp_path):
    spec = _write(
        tmp_path, identifiers="    identifiers:\n      card_no: direct\n      day: quasi"
    ).tables[0]
    assert spec.direct_identifiers == ("card_no",)
    assert spec.identifier_class("day") == "quasi"
    assert spec.identifier_class("drug") == "none"
    # the file's expected header is still `columns:`, untouched
    assert spec.columns == ("day", "card_no", "drug", "qty")
    assert spec.primary_key == ("card_no", "day", "drug") and not spec.content_hash


@pytest.mark.parametrize(
    ("identifiers", "message"),
    [
        ("    identifiers:\n      card_no: secret", "column 'card_no' has class 'secret': one of"),
        ("    identifiers:\n      cardno: direct", "column 'cardno' is not one of the table's"),
        ("    identifiers: [card_no]", "write a mapping of column to class"),
    ],
)
def test_a_wrong_declaration_is_refused_when_the_manifest_is_read(tmp_path, identifiers, message):
    with pytest.raises(ValueError, match=r"shop\.yml: table sales: identifiers") as refused:
        _write(tmp_path, identifiers=identifiers)
    assert message in str(refused.value)


def test_direct_identifiers_need_contains_personal_data(tmp_path):
    with pytest.raises(ValueError, match="contains_personal_data is false"):
        _write(tmp_path, identifiers="    identifiers:\n      card_no: direct", personal="false")


def test_an_export_without_an_id_is_keyed_by_its_content(tmp_path):
    spec = _write(tmp_path, key="content_hash").tables[0]
    assert spec.content_hash and spec.primary_key == ("day", "card_no", "drug", "qty")


def test_a_content_hash_key_needs_a_file_source(tmp_path):
    (tmp_path / "db.yml").write_text(
        "source: db\nconn_id: c\nschema: s\ntables:\n  - name: t\n    primary_key: content_hash\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="primary_key: content_hash is for file sources"):
        load_manifest("db", tmp_path)


def test_the_platforms_manifests_declare_the_patients_identifiers():
    """The identifiers staging pseudonymises or drops are declared where the source is."""
    his = load_manifest("his").table("patients")
    assert set(his.direct_identifiers) == {"mrn", "name", "id_card_no", "phone", "address"}
    assert his.identifier_class("birth_date") == "quasi"
    assert his.identifier_class("patient_id") == "none"
    hisb = load_manifest("hisb").table("brxx")
    assert set(hisb.direct_identifiers) == {"jzkh", "xm", "sfzh", "lxdh", "dz"}
