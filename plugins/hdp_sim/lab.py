"""Simulated laboratory (LIS) source: one CSV file of results per day, as many LIS export.

`write_drops()` reads the HIS's encounters (outpatient visits, inpatient stays) and writes
`lis_results_YYYYMMDD.csv` per collection day plus `lis_manifest.json` listing, per file, its
encoding and every defective row. A pure function of the seed, the day and the HIS rows:
rerunning writes the same bytes.

File format: a header line, comma-separated, no quoting (no field holds a comma, quote or
newline, except the malformed lines), lines end with '\\n'. Columns: FILE_COLUMNS. Encodings
vary by day as exports from different LIS versions do: mostly UTF-8, some UTF-8 with a BOM,
some GBK (the Chinese test names must be decoded accordingly).

Defects (DEFECT_KINDS), each at `defect_rate` of the rows of a file:
- unparseable_numeric: a numeric test's result_value is '阴性', '12..5' or '<0.0.1'
- unit_variant: the unit spelled another way ('mmol/l', 'umol/L', '10*9/L', ...)
- missing_patient_id: patient_id empty
- duplicate_row: a row written twice (same result_id, identical line)
- malformed_line: a line with the wrong number of fields (a comma inside a value, or fields
  missing at the end)
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from hdp_sim.his import _rng
from hdp_sim.pharmacy import CAT_NAMES, categories, his_clock, read_encounters

FILE_COLUMNS = (
    "result_id",
    "order_id",
    "patient_id",
    "encounter_type",
    "visit_id",
    "admission_id",
    "test_code",
    "test_name",
    "specimen",
    "result_value",
    "unit",
    "reference_range",
    "abnormal_flag",
    "collected_at",
    "reported_at",
)
MANIFEST_NAME = "lis_manifest.json"
ENCODINGS = ("utf-8", "utf-8-sig", "gbk")
ENCODING_SHARES = (0.6, 0.2, 0.2)

DEFECT_KINDS: dict[str, str] = {
    "unparseable_numeric": "numeric test whose result_value is not a number ('阴性', '12..5')",
    "unit_variant": "unit written in a nonstandard spelling (mmol/l for mmol/L, umol/L, ...)",
    "missing_patient_id": "patient_id empty",
    "duplicate_row": "the same row (same result_id) twice in a file",
    "malformed_line": "a line with the wrong number of fields",
}

# fmt: off
# code: (name, specimen, unit, low, high, mean, sd, decimals, panel); low/high None: qualitative
TESTS: dict[str, tuple] = {
    "WBC":   ("白细胞计数", "全血", "10^9/L", 3.5, 9.5, 6.5, 1.8, 2, "CBC"),
    "RBC":   ("红细胞计数", "全血", "10^12/L", 3.8, 5.8, 4.6, 0.5, 2, "CBC"),
    "HGB":   ("血红蛋白", "全血", "g/L", 115, 175, 138, 17, 0, "CBC"),
    "PLT":   ("血小板计数", "全血", "10^9/L", 125, 350, 230, 60, 0, "CBC"),
    "NEUT%": ("中性粒细胞百分比", "全血", "%", 40, 75, 60, 9, 1, "CBC"),
    "LYMPH%": ("淋巴细胞百分比", "全血", "%", 20, 50, 30, 8, 1, "CBC"),
    "CRP":   ("C反应蛋白", "血清", "mg/L", 0, 10, 4, 4, 1, "CRP"),
    "PCT":   ("降钙素原", "血清", "ng/mL", 0, 0.05, 0.03, 0.02, 2, "PCT"),
    "ALT":   ("丙氨酸氨基转移酶", "血清", "U/L", 9, 50, 25, 12, 0, "LFT"),
    "AST":   ("天门冬氨酸氨基转移酶", "血清", "U/L", 15, 40, 24, 9, 0, "LFT"),
    "TBIL":  ("总胆红素", "血清", "μmol/L", 0, 23, 12, 5, 1, "LFT"),
    "ALB":   ("白蛋白", "血清", "g/L", 40, 55, 44, 4, 1, "LFT"),
    "CREA":  ("肌酐", "血清", "μmol/L", 57, 111, 80, 20, 0, "RFT"),
    "UREA":  ("尿素", "血清", "mmol/L", 3.1, 8.0, 5.2, 1.5, 2, "RFT"),
    "UA":    ("尿酸", "血清", "μmol/L", 208, 428, 330, 80, 0, "RFT"),
    "K":     ("钾", "血清", "mmol/L", 3.5, 5.3, 4.2, 0.4, 2, "ELEC"),
    "NA":    ("钠", "血清", "mmol/L", 137, 147, 141, 2.5, 1, "ELEC"),
    "CL":    ("氯", "血清", "mmol/L", 99, 110, 104, 2.5, 1, "ELEC"),
    "GLU":   ("葡萄糖", "血清", "mmol/L", 3.9, 6.1, 5.3, 1.0, 2, "GLU"),
    "HBA1C": ("糖化血红蛋白", "全血", "%", 4.0, 6.0, 5.6, 0.6, 1, "HBA1C"),
    "TC":    ("总胆固醇", "血清", "mmol/L", 0, 5.2, 4.7, 0.9, 2, "LIPID"),
    "TG":    ("甘油三酯", "血清", "mmol/L", 0, 1.7, 1.5, 0.7, 2, "LIPID"),
    "HDL":   ("高密度脂蛋白胆固醇", "血清", "mmol/L", 1.04, 10, 1.3, 0.3, 2, "LIPID"),
    "LDL":   ("低密度脂蛋白胆固醇", "血清", "mmol/L", 0, 3.4, 2.8, 0.8, 2, "LIPID"),
    "PT":    ("凝血酶原时间", "血浆", "s", 9.4, 12.5, 11.0, 0.9, 1, "COAG"),
    "APTT":  ("活化部分凝血活酶时间", "血浆", "s", 25.1, 36.5, 30, 3.5, 1, "COAG"),
    "CTNI":  ("心肌肌钙蛋白I", "血清", "ng/mL", 0, 0.04, 0.015, 0.01, 3, "CARD"),
    "BNP":   ("B型钠尿肽", "血浆", "pg/mL", 0, 100, 60, 45, 0, "CARD"),
    "TSH":   ("促甲状腺激素", "血清", "mIU/L", 0.27, 4.2, 2.0, 1.0, 2, "THY"),
    "FT4":   ("游离甲状腺素", "血清", "pmol/L", 12, 22, 16.5, 2.5, 1, "THY"),
    "FLUA":  ("甲型流感病毒抗原", "鼻咽拭子", "", None, None, 0, 0, 0, "FLU"),
    "UPRO":  ("尿蛋白", "尿液", "", None, None, 0, 0, 0, "URINE"),
    "UGLU":  ("尿葡萄糖", "尿液", "", None, None, 0, 0, 0, "URINE"),
}
# fmt: on

# Local test code -> LOINC (codes where the mapping is well established; others unmapped).
LOINC: dict[str, str] = {
    "WBC": "6690-2",
    "RBC": "789-8",
    "HGB": "718-7",
    "PLT": "777-3",
    "NEUT%": "770-8",
    "LYMPH%": "736-9",
    "CRP": "1988-5",
    "PCT": "33959-8",
    "ALT": "1742-6",
    "AST": "1920-8",
    "TBIL": "1975-2",
    "ALB": "1751-7",
    "CREA": "2160-0",
    "UREA": "3091-6",
    "UA": "3084-1",
    "K": "2823-3",
    "NA": "2951-2",
    "CL": "2075-0",
    "GLU": "2345-7",
    "HBA1C": "4548-4",
    "TC": "2093-3",
    "TG": "2571-8",
    "HDL": "2085-9",
    "LDL": "13457-7",
    "PT": "5902-2",
    "APTT": "3173-2",
    "CTNI": "10839-9",
    "BNP": "30934-4",
    "TSH": "3016-3",
    "FT4": "3024-7",
    "FLUA": "80382-5",
    "UPRO": "2888-6",
    "UGLU": "2350-7",
}

UNIT_VARIANTS = {
    "mmol/L": ("mmol/l", "MMOL/L"),
    "μmol/L": ("umol/L", "umol/l"),
    "10^9/L": ("10*9/L", "×10^9/L"),
    "10^12/L": ("10*12/L",),
    "g/L": ("g/l",),
    "mg/L": ("mg/l",),
    "U/L": ("IU/L", "u/l"),
    "ng/mL": ("ng/ml",),
    "pg/mL": ("pg/ml",),
    "%": ("％",),
    "s": ("sec",),
    "mIU/L": ("uIU/mL",),
    "pmol/L": ("pmol/l",),
}

CODES = tuple(TESTS)
PANELS: dict[str, list[str]] = {}
for _code, _spec in TESTS.items():
    PANELS.setdefault(_spec[8], []).append(_code)
PANEL_NAMES = tuple(PANELS)

# Panels ordered per prescribing category (see pharmacy.CATEGORIES): (panel, probability).
_PANELS_BY_CATEGORY = {
    "urti": "CBC:0.5 CRP:0.4 FLU:0.15",
    "lrti": "CBC:0.8 CRP:0.7 PCT:0.3",
    "flu": "CBC:0.6 CRP:0.4 FLU:0.8",
    "airway": "CBC:0.4 CRP:0.3",
    "cardio": "LIPID:0.3 RFT:0.2 ELEC:0.2 CARD:0.15",
    "stroke": "LIPID:0.5 COAG:0.4 GLU:0.3",
    "diabetes": "GLU:0.8 HBA1C:0.5 LIPID:0.3 RFT:0.2 URINE:0.3",
    "thyroid": "THY:0.9",
    "lipid": "LIPID:0.9 LFT:0.3",
    "gi": "CBC:0.3 LFT:0.2",
    "abdominal": "CBC:0.7 CRP:0.4 LFT:0.3",
    "liver": "LFT:0.9 CBC:0.3",
    "infection": "CBC:0.8 CRP:0.6 PCT:0.2",
    "uti": "URINE:0.9 CBC:0.4",
    "renal": "RFT:0.9 ELEC:0.6 URINE:0.5",
    "obstetric": "CBC:0.6 URINE:0.5 GLU:0.3",
    "anaemia": "CBC:0.9",
    "gout": "RFT:0.8",
}
_IP_PANELS = "CBC:1 LFT:0.8 RFT:0.8 ELEC:0.8 GLU:0.6 COAG:0.6 CRP:0.4"
# categories whose results drift abnormal: (tests, shift in SDs)
_SHIFTS = {
    "lrti": {"WBC": 2.5, "NEUT%": 2.0, "CRP": 6.0, "PCT": 4.0, "LYMPH%": -1.5},
    "infection": {"WBC": 2.0, "NEUT%": 1.5, "CRP": 5.0, "PCT": 3.0},
    "urti": {"WBC": 0.8, "CRP": 1.5},
    "flu": {"LYMPH%": -1.0, "CRP": 1.0},
    "diabetes": {"GLU": 3.0, "HBA1C": 3.0},
    "renal": {"CREA": 4.0, "UREA": 2.5, "K": 1.0},
    "liver": {"ALT": 3.0, "AST": 2.5, "TBIL": 1.5},
    "lipid": {"TC": 1.5, "TG": 1.5, "LDL": 1.5},
    "anaemia": {"HGB": -3.0, "RBC": -2.0},
    "gout": {"UA": 2.5},
}


_STREAM_LAB = 11
DAY_SECONDS = 86_400


def _parse(spec: str) -> list[tuple[int, float]]:
    return [(PANEL_NAMES.index(p), float(w)) for p, w in (x.split(":") for x in spec.split())]


def encoding_for(day: date, seed: int) -> str:
    """The file encoding of a day's drop (a fixed draw per seed and day)."""
    u = _rng(seed, (day - date(1970, 1, 1)).days, _STREAM_LAB, 1).random()
    return ENCODINGS[int(np.searchsorted(np.cumsum(ENCODING_SHARES), u, side="right"))]


def write_drops(
    his_conn,
    out_dir: Path,
    seed: int = 42,
    first_day: date | None = None,
    last_day: date | None = None,
    defect_rate: float = 0.01,
) -> list[Path]:
    """Write one results file per day of [first_day, last_day] (default: the HIS's range).

    Also writes (merges into) out_dir/lis_manifest.json; returns the paths of the CSV files.
    """
    his_first, his_last = his_clock(his_conn)
    first_day = first_day or his_first
    last_day = last_day or his_last
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc = read_encounters(his_conn, first_day, last_day)
    manifest_path = out_dir / MANIFEST_NAME
    manifest = (
        json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    )
    files = manifest.setdefault("files", {})
    paths = []
    day = first_day
    while day <= last_day:
        name = f"lis_results_{day:%Y%m%d}.csv"
        text, defects, n_rows = _day_file(enc, day, seed, defect_rate)
        encoding = encoding_for(day, seed)
        path = out_dir / name
        path.write_bytes(text.encode(encoding))
        files[name] = {"encoding": encoding, "rows": n_rows, "defects": defects}
        paths.append(path)
        day += timedelta(days=1)
    manifest["files"] = dict(sorted(files.items()))
    manifest["defect_kinds"] = DEFECT_KINDS
    manifest["columns"] = list(FILE_COLUMNS)
    manifest_path.write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return paths


def _orders(enc, d: int, rng) -> dict[str, np.ndarray]:
    """Panels ordered on the day: outpatients by diagnosis, inpatients on admission/every 3 days."""
    op, ip = enc.op_day(d), enc.ip_day(d)
    n_panels = len(PANEL_NAMES)
    prob = np.zeros((len(CAT_NAMES), n_panels))
    for cat, spec in _PANELS_BY_CATEGORY.items():
        for p, w in _parse(spec):
            prob[CAT_NAMES.index(cat), p] = w
    prob[CAT_NAMES.index("other"), PANEL_NAMES.index("CBC")] = 0.1
    ip_prob = np.zeros(n_panels)
    for p, w in _parse(_IP_PANELS):
        ip_prob[p] = w
    op_cat = categories(op["icd"])
    ip_cat = categories(ip["icd"])
    ip_today = (d - ip["start_day"]) % 3 == 0
    n_op, n_ip = len(op["visit_id"]), len(ip["admission_id"])
    p = np.vstack([prob[op_cat], np.maximum(prob[ip_cat], ip_prob) * ip_today[:, None]])
    hit = rng.random(p.shape) < p
    enc_i, panel = np.nonzero(hit)
    per_encounter = {
        "patient_id": np.concatenate([op["patient_id"], ip["patient_id"]]),
        "is_ip": np.concatenate([np.zeros(n_op, bool), np.ones(n_ip, bool)]),
        "visit_id": np.concatenate([op["visit_id"], np.zeros(n_ip, np.int64)]),
        "admission_id": np.concatenate([np.zeros(n_op, np.int64), ip["admission_id"]]),
        "secs": np.concatenate(
            [op["at"] % DAY_SECONDS + 900, 6 * 3600 + rng.integers(0, 3600, n_ip)]
        ),
        "cat": np.concatenate([op_cat, ip_cat]).astype(np.int64),
    }
    out = {k: v[enc_i] for k, v in per_encounter.items()}
    out["secs"] = np.minimum(out["secs"], DAY_SECONDS - 4 * 3600)
    out["panel"] = panel
    return out


def _day_file(enc, day: date, seed: int, rate: float) -> tuple[str, list[dict], int]:
    d = (day - date(1970, 1, 1)).days
    rng = _rng(seed, d, _STREAM_LAB)
    o = _orders(enc, d, rng)
    order = np.argsort(o["secs"], kind="stable")
    o = {k: v[order] for k, v in o.items()}
    ymd = int(f"{day:%Y%m%d}")
    n_orders = len(o["panel"])
    order_id = ymd * 100_000 + np.arange(1, n_orders + 1)
    tests_per = np.asarray([len(PANELS[p]) for p in PANEL_NAMES])[o["panel"]]
    oi = np.repeat(np.arange(n_orders), tests_per)
    codes = np.concatenate([PANELS[PANEL_NAMES[p]] for p in o["panel"]]) if n_orders else []
    codes = np.asarray(codes, dtype=str)
    n = len(oi)
    spec = [TESTS[c] for c in codes.tolist()]
    low = np.asarray([s[3] if s[3] is not None else np.nan for s in spec], dtype=float)
    high = np.asarray([s[4] if s[4] is not None else np.nan for s in spec], dtype=float)
    mean = np.asarray([s[5] for s in spec], dtype=float)
    sd = np.asarray([s[6] for s in spec], dtype=float)
    dec = np.asarray([s[7] for s in spec], dtype=int)
    shift = np.zeros(n)
    for cat, tests in _SHIFTS.items():
        m_cat = o["cat"][oi] == CAT_NAMES.index(cat)
        for code, k in tests.items():
            shift[m_cat & (codes == code)] = k
    z = rng.normal(0, 1, n) + shift * rng.uniform(0.3, 1.0, n)
    value = np.maximum(0, mean + sd * z)
    qualitative = np.isnan(low)
    value_text = np.asarray(
        [f"{v:.{k}f}" for v, k in zip(value.tolist(), dec.tolist(), strict=True)], dtype=object
    )
    pos = rng.random(n) < np.where(o["cat"][oi] == CAT_NAMES.index("flu"), 0.5, 0.05)
    qual_value = np.where(
        codes == "FLUA",
        np.where(pos, "阳性", "阴性"),
        np.where(pos, rng.choice(["+", "++", "+-"], n), "阴性"),
    )
    value_text = np.where(qualitative, qual_value, value_text)
    flag = np.where(
        qualitative,
        np.where(pos, "H", "N"),
        np.where(value < low, "L", np.where(value > high, "H", "N")),
    )
    ref = np.asarray(
        [
            "阴性" if s[3] is None else (f"<{s[4]:g}" if s[3] == 0 else f"{s[3]:g}-{s[4]:g}")
            for s in spec
        ],
        dtype=object,
    )
    collected = o["secs"][oi]
    tat = np.where(o["is_ip"][oi], 3600 * 2, 3600) + (
        _panel_tat(o["panel"][oi], rng) if n else np.zeros(0, np.int64)
    )
    reported = np.minimum(collected + tat, DAY_SECONDS - 1)
    day0 = np.int64(d) * DAY_SECONDS
    result_id = ymd * 1_000_000 + np.arange(1, n + 1)
    fields = {
        "result_id": result_id.astype(str),
        "order_id": order_id[oi].astype(str),
        "patient_id": o["patient_id"][oi].astype(str),
        "encounter_type": np.where(o["is_ip"][oi], "IP", "OP"),
        "visit_id": np.where(o["is_ip"][oi], "", o["visit_id"][oi].astype(str)),
        "admission_id": np.where(o["is_ip"][oi], o["admission_id"][oi].astype(str), ""),
        "test_code": codes,
        "test_name": np.asarray([s[0] for s in spec], dtype=object),
        "specimen": np.asarray([s[1] for s in spec], dtype=object),
        "result_value": value_text,
        "unit": np.asarray([s[2] for s in spec], dtype=object),
        "reference_range": ref,
        "abnormal_flag": flag,
        "collected_at": np.datetime_as_string((day0 + collected).astype("datetime64[s]")),
        "reported_at": np.datetime_as_string((day0 + reported).astype("datetime64[s]")),
    }
    rows = [list(r) for r in zip(*[fields[c].tolist() for c in FILE_COLUMNS], strict=True)]
    for r in rows:
        r[13] = r[13].replace("T", " ")
        r[14] = r[14].replace("T", " ")
    defects, lines = _lab_defects(rows, qualitative, rng, rate)
    header = ",".join(FILE_COLUMNS)
    return "\n".join([header, *lines]) + "\n", defects, len(lines)


def _panel_tat(panel: np.ndarray, rng) -> np.ndarray:
    return rng.integers(600, 3 * 3600, len(panel))


def _lab_defects(rows: list[list[str]], qualitative: np.ndarray, rng, rate: float):
    """Inject the defects; returns (manifest entries, output lines)."""
    n = len(rows)
    free = np.ones(n, bool)
    col = {c: i for i, c in enumerate(FILE_COLUMNS)}

    def take(mask=None) -> list[int]:
        cand = np.flatnonzero(free if mask is None else free & mask)
        k = rng.binomial(len(cand), rate) if len(cand) and rate > 0 else 0
        chosen = np.sort(rng.choice(cand, size=k, replace=False)) if k else cand[:0]
        free[chosen] = False
        return chosen.tolist()

    defects: list[dict] = []

    def note(i: int, kind: str, column: str | None) -> None:
        defects.append({"result_id": int(rows[i][0]), "kind": kind, "column": column})

    for i in take(~qualitative):
        rows[i][col["result_value"]] = ["阴性", "12..5", "<0.0.1", "见备注"][int(rng.integers(4))]
        note(i, "unparseable_numeric", "result_value")
    units = np.asarray([r[col["unit"]] in UNIT_VARIANTS for r in rows], dtype=bool)
    for i in take(units):
        variants = UNIT_VARIANTS[rows[i][col["unit"]]]
        rows[i][col["unit"]] = variants[int(rng.integers(len(variants)))]
        note(i, "unit_variant", "unit")
    for i in take():
        rows[i][col["patient_id"]] = ""
        note(i, "missing_patient_id", "patient_id")
    malformed = set(take())
    for i in sorted(malformed):
        note(i, "malformed_line", None)
    dups = set(take())
    for i in sorted(dups):
        note(i, "duplicate_row", None)
    lines = []
    for i, r in enumerate(rows):
        if i in malformed:
            if rng.random() < 0.5:  # a comma typed into the test name
                bad = [*r]
                bad[col["test_name"]] = bad[col["test_name"]] + ",复查"
                line = ",".join(bad)
            else:  # the export cut the line short
                line = ",".join(r[: len(r) - 2])
        else:
            line = ",".join(r)
        lines.append(line)
        if i in dups:
            lines.append(line)
    defects.sort(key=lambda e: (e["result_id"], e["kind"]))
    return defects, lines
