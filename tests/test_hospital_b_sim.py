"""The simulated Hospital B (hdp_sim.hospital_b) in memory: determinism, sizing, its vendor's
formats, and the true cross-hospital pairs against Hospital A's own registry (no database)."""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pytest

from hdp_sim import his, idcard
from hdp_sim import hospital_b as hb

CONFIG = hb.HospitalBConfig(seed=7, scale=0.02, history_days=20)
# the three formats the front ends write (module docstring); anything else is a defect
TIME_SHAPES = (
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
    r"^\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}$",
    r"^\d{14}$",
)
DATE_SHAPES = (r"^\d{4}-\d{2}-\d{2}$", r"^\d{8}$", r"^\d{4}/\d{1,2}/\d{1,2}$")


@pytest.fixture(scope="module")
def sim() -> hb.HospitalB:
    return hb.simulate(CONFIG)


def _by_kind(sim: hb.HospitalB, kind: str) -> dict[str, tuple]:
    return {row[3]: row for row in sim.manifest if row[1] == kind}


def _parse_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def test_same_seed_same_rows_other_seed_other_rows(sim):
    again = hb.simulate(CONFIG)
    for table in hb.TABLES:
        for column in hb.COLUMNS[table]:
            assert np.array_equal(sim.tables[table][column], again.tables[table][column]), (
                f"{table}.{column} differs between two runs of one seed"
            )
    assert sim.manifest == again.manifest
    other = hb.simulate(hb.HospitalBConfig(seed=8, scale=0.02, history_days=20))
    assert not np.array_equal(sim.tables["brxx"]["xm"], other.tables["brxx"]["xm"])


def test_rows_grow_with_scale_and_days(sim):
    double = hb.simulate(hb.HospitalBConfig(seed=7, scale=0.04, history_days=20))
    longer = hb.simulate(hb.HospitalBConfig(seed=7, scale=0.02, history_days=40))
    assert double.count("brxx") == 2 * sim.count("brxx")
    for table in ("mzgh", "cfmx", "zdxx"):
        assert 1.7 < double.count(table) / sim.count(table) < 2.3, table
        assert 1.7 < longer.count(table) / sim.count(table) < 2.3, table
    # per 1.0 of scale, ~2,500 registrations a day (the module docstring): weekends are quieter
    per_day = sim.count("mzgh") / CONFIG.history_days / CONFIG.scale
    assert 2_000 < per_day < 3_000, per_day


def test_vendor_codes_and_keys(sim):
    brxx, mzgh, zdxx = sim.tables["brxx"], sim.tables["mzgh"], sim.tables["zdxx"]
    assert set(brxx["xb"].tolist()) == {"男", "女"}
    assert set(sim.tables["ysxx"]["xb"].tolist()) <= {"男", "女"}
    assert "atc_code" not in hb.COLUMNS["ypzd"]  # names and specifications only
    # monotonic registration ids: the extract's watermark is czsj, but the key still rises
    assert np.all(np.diff(mzgh["ghxh"]) == 1)
    assert np.all(np.diff(sim.tables["cfmx"]["mxxh"]) == 1)
    for table in hb.TABLES:
        key = sim.tables[table][hb.COLUMNS[table][0]]
        assert len(set(key.tolist())) == len(key), f"{table}: duplicate keys"
    # clinical edition 2.0: category, dot, three characters, maybe an 'x' extension
    shape = re.compile(r"^[A-Z]\d{2}\.[0-9x]\d{2}(x\d{3})?$")
    assert all(shape.match(c) for c in zdxx["zddm"].tolist())
    assert any("x0" in c for c in zdxx["zddm"].tolist())
    # a diagnosis names a registration or a stay of this hospital
    stays = set(sim.tables["zyjl"]["zyh"].tolist())
    visits = set(mzgh["ghxh"].astype(str).tolist())
    pairs = zip(zdxx["jzlx"].tolist(), zdxx["jzh"].tolist(), strict=True)
    assert all(j in (visits if k == "门诊" else stays) for k, j in pairs)


def test_text_times_in_three_formats_and_defects_in_none(sim):
    unparseable = _by_kind(sim, "unparseable_timestamp")
    assert unparseable, "the simulation injects unparseable times"
    seen = set()
    for key, text in zip(sim.tables["mzgh"]["ghxh"].tolist(), sim.tables["mzgh"]["ghsj"].tolist(),
                         strict=True):  # fmt: skip
        shapes = [i for i, s in enumerate(TIME_SHAPES) if re.match(s, text)]
        parsed = _parse_time(text)
        if str(key) in unparseable:
            assert parsed is None, "an injected defect must not parse"
            clean = datetime.fromisoformat(unparseable[str(key)][5])
            assert clean.date() >= CONFIG.first_day
            continue
        assert parsed is not None and len(shapes) == 1, "a routine time parses in one format"
        seen.add(shapes[0])
    assert seen == {0, 1, 2}
    for table, column in (("zyjl", "ryrq"), ("cfmx", "kfsj"), ("brxx", "djsj")):
        assert all(_parse_time(t) for t in sim.tables[table][column].tolist()), column
    dates = sim.tables["brxx"]["csrq"].tolist()
    assert {i for d in dates for i, s in enumerate(DATE_SHAPES) if re.match(s, d)} == {0, 1, 2}


def test_referrals_are_hospital_a_people_with_true_pairs(sim):
    """Every referral's truth names a person of Hospital A's registry, and the row agrees with
    that person except where the manifest says how this desk recorded them differently."""
    ctx = his._Context(his.SimConfig(seed=7, scale=0.02, first_day=CONFIG.first_day), None, None,
                       his._Pool(), {})  # fmt: skip
    his._registry(ctx)  # Hospital A's own registry code, not the replay under test
    a_clean = ctx.originals.chunks[0]
    a_pool = ctx.pool.arrays()
    truth = sim.tables["sim.cross_hospital_truth"]
    referrals = _by_kind(sim, "cross_hospital_referral")
    assert len(truth["brid"]) == len(referrals) == round(sim.count("brxx") * hb.REFERRAL_SHARE)
    brxx = sim.tables["brxx"]
    row_of = {b: i for i, b in enumerate(brxx["brid"].tolist())}
    changed = {k: _by_kind(sim, k) for k in hb.DEFECT_KINDS}
    for brid, a_id in zip(truth["brid"].tolist(), truth["his_patient_id"].tolist(), strict=True):
        i, a = row_of[brid], a_id - 1  # Hospital A's registry: patient_id 1..n in order
        assert referrals[str(brid)][5] == str(a_id)
        assert brxx["xb"][i] == ("男" if a_pool["is_male"][a] else "女")
        b_birth = sim.tables["sim.person_truth"]["birth_date"][i].astype(date)
        assert b_birth == (np.datetime64(int(a_pool["birth"][a]), "D")).astype(date)
        key = str(brid)
        card = brxx["sfzh"][i]
        if key in changed["missing_id_card"]:
            assert card is None
        elif key in changed["mistyped_id_card"]:
            assert card != a_clean["id_card_no"][a] and not idcard.is_valid(card)
        else:
            assert card == a_clean["id_card_no"][a]
        name_same = brxx["xm"][i] == a_clean["name"][a]
        assert name_same == (key not in changed["name_variant"])
        assert (brxx["dz"][i] == a_clean["address"][a]) == (key not in changed["moved_address"])
    # realistic shares make linking depend on the score, not on the card alone
    refs = set(referrals)
    for kind in ("missing_id_card", "name_variant", "moved_address", "changed_phone"):
        assert refs & set(changed[kind]), f"no referral with {kind}"
    # Hospital B's own people never share a person id with Hospital A's
    own = set(sim.tables["sim.person_truth"]["person_id"].tolist()) - set(truth["person_id"])
    assert min(own) > hb.PERSON_ID_BASE


def test_registration_realities(sim):
    brxx = sim.tables["brxx"]
    n = sim.count("brxx")
    missing = np.asarray([c is None for c in brxx["sfzh"].tolist()])
    assert 0.04 < missing.mean() < 0.35  # children and emergencies, not a broken export
    passports = brxx["zjlx"] == "护照"
    assert all(re.match(r"^E\d{8}$", c) for c in brxx["sfzh"][passports].tolist())
    cards = [c for c, t in zip(brxx["sfzh"].tolist(), brxx["zjlx"].tolist(), strict=True)
             if t == "身份证"]  # fmt: skip
    invalid = sum(not idcard.is_valid(c) for c in cards)
    assert invalid == len(_by_kind(sim, "mistyped_id_card")) > 0
    assert len(cards) + missing.sum() + passports.sum() == n


@pytest.mark.parametrize(
    "name",
    ["张伟", "刘静", "陈晓红"],
)
def test_name_variants_differ_but_keep_the_person(name):
    rng = np.random.default_rng(3)
    variants = {hb.name_variant(name, rng) for _ in range(40)}
    assert name not in variants
    assert any(" " in v or "\u3000" in v for v in variants)
    assert any(v.isascii() for v in variants), "a pinyin spelling"
    assert any(not v.isascii() and v.strip() != name and " " not in v for v in variants)


def test_mistyped_card_always_fails_its_check():
    rng = np.random.default_rng(5)
    card = "420111198001020011"
    card = card[:17] + idcard.check_char(card[:17])
    assert idcard.is_valid(card)
    assert not any(idcard.is_valid(hb.mistype_card(card, rng)) for _ in range(200))


def test_each_table_checks_its_own_change_time_as_watermark():
    """Hospital B has no updated_at: the gate's watermark check of each table resolves to the
    change-time column the manifest names (gxsj / xgsj / czsj), the simulator's watermark."""
    from hdp.config import REPO_ROOT
    from hdp.manifest import load_manifest
    from hdp.quality.checks import for_table, load_catalogue
    from hdp.quality.gate import build_expectations

    catalogue = load_catalogue(REPO_ROOT / "expectations", "hisb")
    manifest = load_manifest("hisb")
    assert {t.name for t in manifest.tables} == set(hb.TABLES)
    for spec in manifest.tables:
        assert spec.watermark == hb.WATERMARKS[spec.name] != "updated_at"
        assert spec.watermark in hb.COLUMNS[spec.name]
        checks = [c for c in for_table(catalogue, spec.name) if c.id == "watermark.not_null"]
        (expectation,) = build_expectations(
            checks, list(hb.COLUMNS[spec.name]), list(spec.primary_key), spec.watermark
        )
        assert expectation.column == spec.watermark, spec.name


def _seed(name: str) -> list[dict[str, str]]:
    import csv

    from hdp.config import REPO_ROOT

    path = REPO_ROOT / "dbt_project" / "seeds" / "mapping" / "hisb" / f"{name}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_mapping_seeds_agree_with_the_source_codes():
    """Every department code is mapped; the drug map names real catalogue entries under their
    own names, with a WHO ATC level-5 shape, and leaves some drugs unmapped on purpose."""
    departments = {r["dept_code"]: r for r in _seed("hisb_department_map")}
    assert set(departments) == {d.code for d in hb.DEPARTMENTS}
    for d in hb.DEPARTMENTS:
        expected = {"临床": "clinical", "急诊": "emergency", "医技": "medical_technology"}[d.kind]
        assert departments[d.code]["department_type"] == expected, d.code
    catalogue = {code: name for code, name, *_ in hb.DRUGS}
    mapped = _seed("hisb_drug_atc_map")
    assert {r["drug_code"] for r in mapped} < set(catalogue)
    for row in mapped:
        assert catalogue[row["drug_code"]] == row["drug_name"]
        assert re.match(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$", row["atc_code"])
        # the strength per dispensing unit is the specification's: '0.25g*24粒' = 6000 mg
        spec = next(d[2] for d in hb.DRUGS if d[0] == row["drug_code"])
        dose, _, count = spec.partition("*")
        number, unit = re.match(r"^([\d.]+)(mg|g)$", dose).groups()
        mg = float(number) * (1000 if unit == "g" else 1)
        packs = int(re.match(r"\d+", count).group()) if count else 1
        assert float(row["strength_mg_per_unit"]) == pytest.approx(mg * packs), row["drug_code"]
    assert len(catalogue) - len(mapped) >= 5
    systems = {r["field"]: r for r in _seed("hisb_code_systems")}
    assert systems["diagnosis"]["code_system_version"] == "2.0"
