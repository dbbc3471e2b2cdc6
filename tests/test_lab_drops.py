"""The simulated LIS file drops: encodings, determinism, and a manifest that matches the files."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import psycopg2
import pytest

from hdp_sim import his, lab

CONFIG = his.SimConfig(seed=3, scale=0.01, history_days=20)


@pytest.fixture(scope="module")
def his_conn(pg_admin_dsn):
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("drop database if exists t_lab_his with (force)")
        cur.execute("create database t_lab_his")
    conn = psycopg2.connect(pg_admin_dsn.rsplit("/", 1)[0] + "/t_lab_his")
    his.generate(conn, CONFIG)
    yield conn
    conn.close()
    with admin.cursor() as cur:
        cur.execute("drop database if exists t_lab_his with (force)")
    admin.close()


@pytest.fixture(scope="module")
def drops(his_conn, tmp_path_factory):
    out = tmp_path_factory.mktemp("lis")
    paths = lab.write_drops(his_conn, out, seed=9, defect_rate=0.02)
    manifest = json.loads((out / lab.MANIFEST_NAME).read_text(encoding="utf-8"))
    return out, paths, manifest


def _digest(paths) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def test_one_file_per_day_and_byte_identical_reruns(his_conn, drops, tmp_path):
    out, paths, _ = drops
    assert [p.name for p in paths] == [
        f"lis_results_{date(2024, 1, 1 + i):%Y%m%d}.csv" for i in range(20)
    ]
    again = lab.write_drops(his_conn, tmp_path, seed=9, defect_rate=0.02)
    assert _digest(again) == _digest(paths)
    assert (tmp_path / lab.MANIFEST_NAME).read_bytes() == (out / lab.MANIFEST_NAME).read_bytes()
    # rerunning one day into the same directory rewrites the same bytes and keeps the manifest
    before = (out / lab.MANIFEST_NAME).read_bytes()
    lab.write_drops(his_conn, out, seed=9, first_day=date(2024, 1, 5), last_day=date(2024, 1, 5),
                    defect_rate=0.02)  # fmt: skip
    assert (out / lab.MANIFEST_NAME).read_bytes() == before
    assert _digest(paths) == _digest(again)


def test_encodings_bom_and_gbk(drops):
    _, paths, manifest = drops
    seen = set()
    for p in paths:
        raw = p.read_bytes()
        enc = manifest["files"][p.name]["encoding"]
        seen.add(enc)
        assert enc == lab.encoding_for(
            date(int(p.name[12:16]), int(p.name[16:18]), int(p.name[18:20])), 9
        )
        assert raw.startswith(b"\xef\xbb\xbf") == (enc == "utf-8-sig")
        if enc == "gbk":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        text = raw.decode(enc)
        assert text.startswith("result_id,order_id,patient_id")
        assert "白细胞计数" in text
    assert seen == {"utf-8", "utf-8-sig", "gbk"}


def _observed(text: str) -> dict[str, set[int]]:
    """Defects found by reading a file, as sets of result_id per kind."""
    lines = text.splitlines()
    cols = lines[0].split(",")
    i = {c: k for k, c in enumerate(cols)}
    units = {s[2] for s in lab.TESTS.values()}
    found: dict[str, set[int]] = {k: set() for k in lab.DEFECT_KINDS}
    seen: set[str] = set()
    for line in lines[1:]:
        f = line.split(",")
        if line in seen:
            found["duplicate_row"].add(int(f[0]))
            continue
        seen.add(line)
        if len(f) != len(cols):
            found["malformed_line"].add(int(f[0]))
            continue
        rid = int(f[i["result_id"]])
        if f[i["patient_id"]] == "":
            found["missing_patient_id"].add(rid)
        if f[i["unit"]] not in units:
            found["unit_variant"].add(rid)
        if lab.TESTS[f[i["test_code"]]][3] is not None:
            try:
                float(f[i["result_value"]])
            except ValueError:
                found["unparseable_numeric"].add(rid)
    return found


def test_manifest_matches_file_content(drops):
    _, paths, manifest = drops
    totals = dict.fromkeys(lab.DEFECT_KINDS, 0)
    for p in paths:
        entry = manifest["files"][p.name]
        text = p.read_bytes().decode(entry["encoding"])
        assert len(text.splitlines()) - 1 == entry["rows"]
        listed: dict[str, set[int]] = {k: set() for k in lab.DEFECT_KINDS}
        for d in entry["defects"]:
            listed[d["kind"]].add(d["result_id"])
        assert _observed(text) == listed, p.name
        for k, ids in listed.items():
            totals[k] += len(ids)
    assert all(n > 0 for n in totals.values()), totals


def test_catalogue_and_loinc():
    assert 30 <= len(lab.TESTS) <= 40
    assert set(lab.LOINC) <= set(lab.TESTS)
    assert lab.LOINC["HGB"] == "718-7" and lab.LOINC["GLU"] == "2345-7"
    for name, *_ in lab.TESTS.values():
        assert name.encode("gbk").decode("gbk") == name
