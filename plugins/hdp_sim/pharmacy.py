"""Simulated pharmacy source (药房/药库): prescriptions, dispensing, purchasing and stock.

The pharmacy follows the HIS source database: every completed outpatient visit and every
inpatient day the HIS holds gets prescriptions (read through `his_conn`), written in the
`pharmacy` schema of its own database (pharmacy_schema.sql). `generate()` covers the HIS's
whole simulated range; `advance_day()` catches up with the days the HIS has added since.
Everything is a pure function of the seed, the day and the HIS rows (generators seeded with
(seed, day, stream)), written with COPY from vectorised numpy arrays.

What drives the numbers:
- A visit's primary ICD-10 diagnosis picks its prescribing category (respiratory, cardiac,
  ...); the category picks drug groups, antibiotic probability and treatment length. The HIS
  already puts more respiratory visits in winter, so respiratory drugs peak in winter.
- ~88% of completed visits get a prescription of 1-6 lines (mean ~2.7). Inpatients get one
  daily order (长期医嘱) per day in hospital: infusion fluid, 1-4 regimen drugs fixed per
  admission and, for ~half of the admissions, a parenteral antibacterial for 3-10 days.
- Stock: FEFO batches per drug; a line is dispensed only if stock covers it (stock-outs leave
  lines undispensed). An order is placed when stock plus open orders falls under two weeks'
  forecast demand over the supplier's lead time plus 3 days; suppliers deliver late at times.
  Batches expire (written off, they leave the snapshot); some arrive short-dated.
- Prices change on the first of a month for ~3% of the drugs (集采 cuts mostly) and now and
  then for a single drug (调价); drug_prices keeps the history.
- Returns (退药): ~0.6% of sales come back 1-5 days later as negative rows (is_return).

Rows for a HIS of scale 0.1 x 90 days from 2024-01-01 (~100k visits; seed 42, ~13 s):
suppliers 6, drugs 247, drug_prices 287, prescriptions 102,906, prescription_lines 270,132,
dispensing 267,711, purchase_orders 1,927, receipts 1,841, stock_batches 41,460.

The pharmacy needs its own database: its bookkeeping schema `sim` has the HIS's table names.
Defects (DEFECT_KINDS) are injected at `defect_rate` per kind and listed in
sim.defect_manifest; sim.change_log lists what advance_day changed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from psycopg2.extras import execute_values

from hdp_sim import drugs as rx
from hdp_sim.his import _day_ord, _hash01, _rng
from hdp_sim.tsv import NULL, copy_rows, money

log = logging.getLogger(__name__)

SCHEMA_SQL = Path(__file__).with_name("pharmacy_schema.sql")

DEFECT_KINDS: dict[str, str] = {
    "unit_mixup": "prescription line unit is 盒 (box) although quantity counts 片/粒",
    "strength_in_grams": "drug strength_mg recorded in grams (250 mg stored as 0.25)",
    "zero_quantity": "prescription line quantity is 0",
    "negative_quantity": "dispensing row with a negative quantity (and amount) but is_return false",
    "unknown_drug_code": "prescription line drug_code matches no drug (a retired local code)",
    "price_100x": "dispensing unit_price (and amount) 100 times the real price (fen as yuan)",
    "duplicate_dispensing": "a dispensing row re-sent under a new dispense_id, same content",
}

PHARMACY_TABLES = (
    "suppliers",
    "drugs",
    "drug_prices",
    "prescriptions",
    "prescription_lines",
    "dispensing",
    "purchase_orders",
    "receipts",
    "stock_batches",
)
_COLUMN_SPEC = {
    "suppliers": "supplier_code supplier_name lead_time_days updated_at",
    "drugs": "drug_code drug_id generic_name brand_name specification dosage_form unit "
    "pack_size strength_mg route manufacturer atc_code ddd_value ddd_unit is_essential "
    "antibiotic_grade supplier_code unit_price is_active created_at updated_at",
    "drug_prices": "price_id drug_code valid_from valid_to unit_price reason updated_at",
    "prescriptions": "prescription_id encounter_type visit_id admission_id patient_id doctor_id "
    "dept_code diagnosis_code prescription_type prescribed_at updated_at",
    "prescription_lines": "line_id prescription_id line_no drug_code dose_per_time dose_unit "
    "frequency days quantity unit updated_at",
    "dispensing": "dispense_id line_id drug_code batch_no quantity unit_price amount is_return "
    "return_of pharmacy_code dept_code dispensed_at updated_at",
    "purchase_orders": "po_id supplier_code drug_code quantity unit_price ordered_at expected_at "
    "status updated_at",
    "receipts": "receipt_id po_id drug_code received_at quantity batch_no expiry_date updated_at",
    "stock_batches": "snapshot_id snapshot_date drug_code batch_no expiry_date quantity_on_hand "
    "unit_price updated_at",
    "sim.defect_manifest": "sim_day kind table_name record_id column_name clean_value",
    "sim.change_log": "sim_day kind table_name record_id column_name",
}
COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c.split()) for t, c in _COLUMN_SPEC.items()}
MONEY_COLUMNS = {"unit_price", "amount"}
ID_COLUMN = {t: c[0] for t, c in COLUMNS.items()}

SUPPLIERS = (  # code, name, nominal lead time (days)
    ("S01", "国药控股北京有限公司", 2),
    ("S02", "华润医药商业集团有限公司", 2),
    ("S03", "上海医药分销控股有限公司", 3),
    ("S04", "九州通医药集团股份有限公司", 4),
    ("S05", "重药控股股份有限公司", 5),
    ("S06", "本地药品配送有限公司", 1),
)
DAY_SECONDS = 86_400
RX_SHARE = 0.88  # completed outpatient visits that get a prescription
RETURN_RATE = 0.006  # sales returned (退药) within 1-5 days
FORECAST_DAYS = 14
SAFETY_DAYS = 3
ORDER_COVER_DAYS = 12  # an order tops the stock up to lead time + this many days of demand
UNKNOWN_CODE_BASE = 99_000  # unknown_drug_code defects use Y99000.. : no drug has one
CHRONIC_GROUPS = {
    "cardio",
    "lipid",
    "antiplatelet",
    "diabetes",
    "thyroid",
    "psych",
    "neuro",
    "uro",
    "gout",
    "blood",
    "tcm_cardio",
    "antiviral",
}

# Prescribing categories: (outpatient drug groups with weights, P(antibacterial) outpatient,
# P(antibacterial) inpatient). A diagnosis maps to one category (see _category).
# fmt: off
CATEGORIES: dict[str, tuple[dict[str, float], float, float]] = {
    "urti":       ({"resp_symptom": 4, "fever": 2, "allergy": 1}, 0.30, 0.70),
    "lrti":       ({"resp_symptom": 4, "fever": 1, "resp_airway": 1.5}, 0.55, 0.95),
    "flu":        ({"antiviral": 3, "fever": 3, "resp_symptom": 3}, 0.10, 0.50),
    "airway":     ({"resp_airway": 5, "resp_symptom": 2, "steroid": 0.5}, 0.20, 0.75),
    "cardio":     ({"cardio": 5, "lipid": 2, "antiplatelet": 2, "tcm_cardio": 1}, 0.01, 0.15),
    "stroke":     ({"antiplatelet": 3, "lipid": 2, "cardio": 1, "tcm_cardio": 1}, 0.01, 0.30),
    "diabetes":   ({"diabetes": 5, "lipid": 1, "cardio": 1}, 0.01, 0.20),
    "thyroid":    ({"thyroid": 5}, 0.00, 0.10),
    "lipid":      ({"lipid": 5, "antiplatelet": 1}, 0.00, 0.10),
    "gi":         ({"gi": 6, "antiemetic": 0.5}, 0.05, 0.35),
    "abdominal":  ({"gi": 3, "pain": 2}, 0.20, 0.85),
    "liver":      ({"antiviral": 3, "gi": 2}, 0.01, 0.25),
    "infection":  ({"fever": 3, "antiviral": 1}, 0.35, 0.85),
    "uti":        ({"uro": 1, "pain": 1}, 0.85, 0.95),
    "renal":      ({"cardio": 3, "blood": 2}, 0.03, 0.30),
    "uro":        ({"uro": 5, "pain": 1}, 0.05, 0.45),
    "msk":        ({"pain": 5, "blood": 1, "steroid": 0.3}, 0.01, 0.30),
    "gout":       ({"gout": 4, "pain": 2}, 0.00, 0.10),
    "injury":     ({"pain": 5}, 0.15, 0.55),
    "neuro":      ({"neuro": 3, "psych": 1, "pain": 1}, 0.01, 0.20),
    "psych":      ({"psych": 6}, 0.00, 0.05),
    "cancer":     ({"antiemetic": 3, "steroid": 2, "gi": 2, "pain": 2}, 0.03, 0.35),
    "obstetric":  ({"blood": 5}, 0.02, 0.45),
    "gyn":        ({"blood": 1, "pain": 2}, 0.25, 0.50),
    "eye_ent":    ({"topical": 5, "allergy": 1}, 0.20, 0.45),
    "skin":       ({"allergy": 4, "steroid": 1}, 0.08, 0.30),
    "anaemia":    ({"blood": 5}, 0.00, 0.10),
    "dental":     ({"pain": 3}, 0.35, 0.50),
    "newborn":    ({"blood": 1}, 0.02, 0.30),
    "other":      ({"fever": 1, "gi": 1, "pain": 1}, 0.03, 0.30),
}
# ICD-10 prefixes, most specific first
_PREFIXES = (
    ("J09 J10 J11 U07", "flu"), ("J43 J44 J45 J46 J47", "airway"),
    ("J12 J13 J14 J15 J16 J17 J18 J20 J21 J22 J40 J41 J42 J85 J86 J90 J96", "lrti"),
    ("J R05 R50", "urti"), ("I6", "stroke"), ("I", "cardio"), ("E10 E11", "diabetes"),
    ("E0", "thyroid"), ("E78", "lipid"), ("K0 K1", "dental"),
    ("K35 K40 K56 K80 K81 K85", "abdominal"), ("K7 B18", "liver"), ("K A09 R10", "gi"),
    ("N30 N39", "uti"), ("N0 N1", "renal"), ("N20 N40", "uro"), ("N7 N8 N9", "gyn"),
    ("M10", "gout"), ("M", "msk"), ("S T", "injury"), ("G R42 R51 R55", "neuro"),
    ("F", "psych"), ("C Z51 D0 D1 D2 D3", "cancer"), ("O Z34", "obstetric"),
    ("H", "eye_ent"), ("L B35 B0", "skin"), ("D5 D6", "anaemia"), ("A B", "infection"),
    ("P", "newborn"),
)
# fmt: on
SURGICAL_DEPTS = ("D02", "D0302")  # perioperative prophylaxis raises inpatient antibiotic use

CAT_NAMES = tuple(CATEGORIES)


@dataclass(frozen=True)
class PharmacyConfig:
    seed: int = 42
    scale: float = 1.0  # share of the HIS's encounters that reach the pharmacy (1.0: all)
    defect_rate: float = 0.01  # share of rows per defect kind (per table where it applies)


# --------------------------------------------------------------------------------------------
# Determinism helpers (same scheme as his.py)


_STREAM_SETUP, _STREAM_DAY, _STREAM_STOCK, _STREAM_DEFECT, _STREAM_FIX = 1, 2, 3, 4, 5


def _from_ord(d: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(d))


def _ts(day_ord: int, seconds) -> np.ndarray:
    """Timestamps inside the day (seconds clipped to it, so updated_at never leaves it)."""
    secs = np.clip(np.asarray(seconds, dtype=np.int64), 0, DAY_SECONDS - 1)
    return (np.int64(day_ord) * DAY_SECONDS + secs).astype("datetime64[s]")


def _pick(rng: np.random.Generator, candidates: np.ndarray, rate: float) -> np.ndarray:
    """A binomial(len, rate) random subset of candidate indices, in ascending order."""
    k = rng.binomial(len(candidates), rate) if len(candidates) and rate > 0 else 0
    return np.sort(rng.choice(candidates, size=k, replace=False)) if k else candidates[:0]


def normalise_icd(code: str | None) -> str:
    """'j18.9 ' / 'J189' -> 'J18.9' (the HIS's format defects undone)."""
    c = (code or "").strip().upper()
    if len(c) > 3 and "." not in c:
        c = c[:3] + "." + c[3:]
    return c


def _category(code: str | None) -> int:
    c = normalise_icd(code)
    for prefixes, name in _PREFIXES:
        if c.startswith(tuple(prefixes.split())):
            return CAT_NAMES.index(name)
    return CAT_NAMES.index("other")


def categories(codes: np.ndarray) -> np.ndarray:
    """Prescribing category index per ICD-10 code (any HIS format; None -> 'other')."""
    uniq, inv = np.unique(np.asarray([c or "" for c in codes], dtype=str), return_inverse=True)
    return np.asarray([_category(c) for c in uniq.tolist()], dtype=np.int64)[inv]


# --------------------------------------------------------------------------------------------
# Reading the HIS


@dataclass
class Encounters:
    """HIS encounters of a date range, as arrays sorted by time (outpatient) or id (inpatient)."""

    op: dict[str, np.ndarray]  # visit_id patient_id dept_code doctor_id at visit_type icd
    ip: dict[str, np.ndarray]  # admission_id patient_id dept_code doctor_id admitted_at
    #                            start_day end_day (ordinals, end exclusive) icd

    def op_day(self, day_ord: int) -> dict[str, np.ndarray]:
        day_of = self.op["at"] // DAY_SECONDS
        lo, hi = np.searchsorted(day_of, [day_ord, day_ord + 1])
        return {k: v[lo:hi] for k, v in self.op.items()}

    def ip_day(self, day_ord: int) -> dict[str, np.ndarray]:
        """Admissions in hospital on the day (admission day up to the day before discharge)."""
        m = (self.ip["start_day"] <= day_ord) & (day_ord < self.ip["end_day"])
        return {k: v[m] for k, v in self.ip.items()}


def his_clock(his_conn) -> tuple[date, date]:
    """(first_day, current_day) of the HIS simulator."""
    with his_conn.cursor() as cur:
        cur.execute("select first_day, current_day from sim.clock")
        row = cur.fetchone()
    his_conn.rollback()
    if row is None:
        raise RuntimeError("HIS sim.clock is empty: generate the HIS source first")
    return row[0], row[1]


def read_encounters(his_conn, first_day: date, last_day: date) -> Encounters:
    """Completed outpatient visits and inpatient stays of [first_day, last_day] from the HIS.

    Uses the HIS's clean values where its simulator recorded a defect (orphan patient, re-sent
    visit, discharge before admission): the pharmacy and the LIS saw the real encounter.
    Simple scans joined in numpy: the HIS has no index on diagnoses.encounter_id.
    """
    end = last_day + timedelta(days=1)
    with his_conn.cursor() as cur:
        cur.execute(
            "select kind, table_name, record_id, clean_value from sim.defect_manifest "
            "where kind in ('orphan_patient_ref', 'duplicate_visit', "
            "'discharge_before_admission') and table_name in "
            "('outpatient_visits', 'inpatient_admissions')"
        )
        fixes: dict[tuple[str, int], str | None] = {}
        for kind, table, rid, clean in cur.fetchall():
            fixes[(table[:1] + kind, rid)] = clean
        cur.execute(
            "select v.visit_id, v.patient_id, v.dept_code, coalesce(v.doctor_id, 0), "
            "extract(epoch from v.visit_at)::bigint, v.visit_type "
            "from his.outpatient_visits v "
            "where v.visit_at >= %s and v.visit_at < %s and v.status = 'completed' "
            "and v.dept_code is not null order by v.visit_at, v.visit_id",
            (first_day, end),
        )
        rows = [
            r
            for r in cur.fetchall()
            if ("oduplicate_visit", r[0]) not in fixes  # a re-sent copy: no second visit
        ]
        cur.execute(
            "select encounter_id, icd10_code from his.diagnoses where is_primary "
            "and encounter_type = 'OP' and diagnosed_at >= %s and diagnosed_at < %s "
            "order by diagnosis_id desc",
            (first_day, end + timedelta(days=1)),
        )
        op_dx = dict(cur.fetchall())
        cols = list(zip(*rows, strict=True)) if rows else [()] * 6
        ids = np.asarray(cols[0], dtype=np.int64)
        op = {
            "visit_id": ids,
            "patient_id": np.asarray(
                [
                    int(fixes.get(("oorphan_patient_ref", v), p) or p)
                    for v, p in zip(cols[0], cols[1], strict=True)
                ],
                dtype=np.int64,
            ),
            "dept_code": np.asarray(cols[2], dtype=object).astype(str),
            "doctor_id": np.asarray(cols[3], dtype=np.int64),
            "at": np.asarray(cols[4], dtype=np.int64),
            "visit_type": np.asarray(cols[5], dtype=object).astype(str),
            "icd": np.asarray([op_dx.get(v) or "" for v in cols[0]], dtype=object).astype(str),
        }
        cur.execute(
            "select admission_id, patient_id, dept_code, coalesce(attending_doctor_id, 0), "
            "extract(epoch from admitted_at)::bigint, admitted_at::date - date '1970-01-01', "
            "discharged_at from his.inpatient_admissions "
            "where admitted_at < %s and dept_code is not null "
            "and (discharged_at is null or discharged_at >= %s or discharged_at < admitted_at) "
            "order by admission_id",
            (end, first_day),
        )
        rows = cur.fetchall()
        cur.execute(
            "select encounter_id, icd10_code from his.diagnoses where is_primary "
            "and encounter_type = 'IP' and encounter_id = any(%s) order by diagnosis_id desc",
            ([r[0] for r in rows],),
        )
        ip_dx = dict(cur.fetchall())
    his_conn.rollback()
    far = 2_147_483_647
    out_rows = []
    for aid, pid, dept, doc, at, start, discharged in rows:
        clean = fixes.get(("idischarge_before_admission", aid), discharged)
        if isinstance(clean, str):
            clean = date.fromisoformat(clean[:10])
        elif isinstance(clean, datetime):
            clean = clean.date()
        end_day = far if clean is None else _day_ord(clean)
        if end_day < _day_ord(first_day):
            continue
        patient = int(fixes.get(("iorphan_patient_ref", aid), pid) or pid)
        out_rows.append((aid, patient, dept, doc, at, start, max(end_day, start + 1)))
    cols = list(zip(*out_rows, strict=True)) if out_rows else [()] * 7
    ip = {
        "admission_id": np.asarray(cols[0], dtype=np.int64),
        "patient_id": np.asarray(cols[1], dtype=np.int64),
        "dept_code": np.asarray(cols[2], dtype=object).astype(str),
        "doctor_id": np.asarray(cols[3], dtype=np.int64),
        "admitted_at": np.asarray(cols[4], dtype=np.int64),
        "start_day": np.asarray(cols[5], dtype=np.int64),
        "end_day": np.asarray(cols[6], dtype=np.int64),
        "icd": np.asarray([ip_dx.get(a) or "" for a in cols[0]], dtype=object).astype(str),
    }
    return Encounters(op, ip)


# --------------------------------------------------------------------------------------------
# Static tables


@dataclass
class _Static:
    """The catalogue with the simulation's choices: selection tables per group and route."""

    cat: rx.Catalogue
    supplier_idx: np.ndarray  # per drug: index into SUPPLIERS
    op_groups: np.ndarray  # per category: cumulative group probabilities (outpatient)
    ip_groups: np.ndarray  # per category: cumulative group probabilities (inpatient)
    pick_op: list[tuple[np.ndarray, np.ndarray]]  # per group: (drug idx, cumulative weights)
    pick_ip: list[tuple[np.ndarray, np.ndarray]]
    code_index: dict[str, int]

    @classmethod
    def build(cls, seed: int) -> _Static:
        cat = rx.catalogue()
        supplier_idx = (_hash01(cat.drug_id, seed, 41) * len(SUPPLIERS)).astype(np.int64)
        ng = len(rx.GROUPS)
        op = np.zeros((len(CAT_NAMES), ng))
        for i, name in enumerate(CAT_NAMES):
            for g, w in CATEGORIES[name][0].items():
                op[i, rx.GROUPS.index(g)] = w
        ip = op.copy()
        ip[:, rx.GROUPS.index("gi")] += 1.0  # stress-ulcer prophylaxis on the wards
        parenteral = cat.route == "P"
        systemic_abx = np.isin(cat.group, [rx.GROUPS.index(g) for g in rx.ANTIBACTERIAL_GROUPS])
        # clinics prescribe oral/inhaled/topical forms; wards prefer parenteral ones
        w_op = cat.popularity * np.where(parenteral & ~systemic_abx, 0.0, 1.0)
        w_ip = cat.popularity * np.where(parenteral, 3.0, 1.0)

        def tables(w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            for g in range(ng):
                idx = np.flatnonzero((cat.group == g) & (w > 0))
                if not len(idx):
                    idx = np.flatnonzero(cat.group == g)
                    out.append((idx, np.cumsum(np.ones(len(idx)))))
                else:
                    out.append((idx, np.cumsum(w[idx])))
            return out

        return cls(
            cat=cat,
            supplier_idx=supplier_idx,
            op_groups=np.cumsum(op / op.sum(1, keepdims=True), axis=1),
            ip_groups=np.cumsum(ip / ip.sum(1, keepdims=True), axis=1),
            pick_op=tables(w_op),
            pick_ip=tables(w_ip),
            code_index={c: i for i, c in enumerate(cat.drug_code.tolist())},
        )

    def choose(self, group: np.ndarray, u: np.ndarray, inpatient: bool) -> np.ndarray:
        """A drug index per (group, uniform draw)."""
        table = self.pick_ip if inpatient else self.pick_op
        out = np.zeros(len(group), dtype=np.int64)
        for g in np.unique(group).tolist():
            m = group == g
            idx, cum = table[g]
            hit = np.searchsorted(cum, u[m] * cum[-1], side="right")
            out[m] = idx[np.minimum(hit, len(idx) - 1)]
        return out


# --------------------------------------------------------------------------------------------
# State carried from day to day


@dataclass
class _Batch:
    batch_no: str
    expiry: int  # day ordinal
    qty: int


@dataclass
class _Order:
    po_id: int
    drug: int
    qty: int
    arrive: int  # day ordinal the delivery comes
    received_qty: int


@dataclass
class _State:
    cfg: PharmacyConfig
    st: _Static
    price: np.ndarray  # current price per drug, cents
    price_row: np.ndarray  # price_id of each drug's current drug_prices row
    batches: list[list[_Batch]]  # per drug, sorted by expiry
    orders: list[_Order]  # open purchase orders
    demand: dict[int, np.ndarray]  # day ordinal -> units prescribed per drug (forecast input)
    next_ids: dict[str, int]
    price_at: np.ndarray  # when each drug's price last changed (epoch seconds)
    sales: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # last days' sales
    batch_seq: int = 0


@dataclass
class _Out:
    """Rows produced by one simulated day (or by the set-up)."""

    tables: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)
    manifest: list[tuple] = field(default_factory=list)
    changes: list[tuple] = field(default_factory=list)
    updates: dict[str, list[tuple]] = field(default_factory=dict)  # advance_day only

    def add(self, table: str, rows: dict[str, np.ndarray]) -> None:
        if len(next(iter(rows.values()))):
            self.tables.setdefault(table, []).append(rows)

    def defect(self, day: str, kind: str, table: str, ids, column=None, clean=None) -> None:
        ids = np.atleast_1d(ids).tolist()
        if not ids:
            return
        n = len(ids)
        if clean is None:
            cleans = [None] * n
        else:
            cleans = [None if c is None else str(c) for c in np.atleast_1d(clean).tolist()]
        self.manifest.extend(
            zip([day] * n, [kind] * n, [table] * n, ids, [column] * n, cleans, strict=True)
        )

    def count(self, table: str) -> int:
        return sum(len(r[ID_COLUMN[table]]) for r in self.tables.get(table, []))

    def merge(self, other: _Out) -> None:
        for t, chunks in other.tables.items():
            self.tables.setdefault(t, []).extend(chunks)
        self.manifest.extend(other.manifest)
        self.changes.extend(other.changes)
        for t, rows in other.updates.items():
            self.updates.setdefault(t, []).extend(rows)


def _new_ids(state: _State, key: str, n: int) -> np.ndarray:
    start = state.next_ids[key]
    state.next_ids[key] += n
    return np.arange(start, start + n, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Public API


def create_schema(conn) -> None:
    """Create the pharmacy and sim schemas and tables (idempotent)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
    conn.commit()


def table_counts(conn) -> dict[str, int]:
    """Rows per pharmacy.* table."""
    out = {}
    with conn.cursor() as cur:
        for t in PHARMACY_TABLES:
            cur.execute(f"select count(*) from pharmacy.{t}")
            out[t] = cur.fetchone()[0]
    conn.rollback()
    return out


def generate(conn, his_conn, config: PharmacyConfig | None = None) -> dict[str, int]:
    """(Re)create the pharmacy for the HIS's whole simulated range; rows per pharmacy table."""
    config = config or PharmacyConfig()
    first_day, last_day = his_clock(his_conn)
    enc = read_encounters(his_conn, first_day, last_day)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
            tables = [f"pharmacy.{t}" for t in PHARMACY_TABLES]
            tables += ["sim.clock", "sim.defect_manifest", "sim.change_log"]
            cur.execute(f"truncate {', '.join(tables)} restart identity")
            st = _Static.build(config.seed)
            d0, d1 = _day_ord(first_day), _day_ord(last_day)
            days = list(range(d0, d1 + 1))
            lines = {d: _prescribe_day(config, st, enc, d) for d in days}
            state, out = _setup(config, st, d0, lines)
            for d in days:
                out.merge(_run_day(state, d, lines[d]))
            _write(cur, out)
            _write_drugs(cur, state, d0)
            cur.execute(
                "insert into sim.clock (seed, scale, first_day, current_day, defect_rate) "
                "values (%s, %s, %s, %s, %s)",
                (config.seed, config.scale, first_day, last_day, config.defect_rate),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    counts = table_counts(conn)
    log.info("pharmacy source generated: %s", counts)
    return counts


def advance_day(conn, his_conn) -> dict[str, int]:
    """Simulate the days the HIS has and the pharmacy not yet, with returns and corrections."""
    _, his_day = his_clock(his_conn)
    try:
        with conn.cursor() as cur:
            cur.execute("select seed, scale, first_day, current_day, defect_rate from sim.clock")
            row = cur.fetchone()
            if row is None:
                raise RuntimeError("sim.clock is empty: run hdp_sim.pharmacy.generate()")
            seed, scale, _, current_day, defect_rate = row
            if his_day <= current_day:
                conn.rollback()
                return {"days": 0}
            config = PharmacyConfig(seed, scale, defect_rate)
            st = _Static.build(seed)
            state = _load_state(cur, config, st, _day_ord(current_day))
            enc = read_encounters(his_conn, current_day + timedelta(days=1), his_day)
            out = _Out()
            d1 = _day_ord(his_day)
            for d in range(_day_ord(current_day) + 1, d1 + 1):
                lines = _prescribe_day(config, st, enc, d)
                out.merge(_run_day(state, d, lines))
                _corrections(cur, state, d, out)
            _apply_updates(cur, out)
            counts = {f"new_{t}": out.count(t) for t in PHARMACY_TABLES}
            for table, chunks in out.tables.items():
                for rows in chunks:
                    for rid in rows[ID_COLUMN[table]].tolist():
                        day = str(_from_ord(d1))
                        out.changes.append((day, "new", table, rid, None))
            _write(cur, out)
            counts["changes"] = len(out.changes)
            counts["defects"] = len(out.manifest)
            counts["days"] = d1 - _day_ord(current_day)
            cur.execute("update sim.clock set current_day = %s", (his_day,))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    log.info("pharmacy advanced to %s: %s", his_day, counts)
    return counts


# --------------------------------------------------------------------------------------------
# Prescribing (a pure function of the seed, the day and the HIS encounters)


@dataclass
class _Lines:
    """One day's prescriptions and their lines, before stock, ids relative to the day."""

    rx: dict[str, np.ndarray]
    line: dict[str, np.ndarray]  # rx_pos (index into rx), drug, quantity, days, per_day, secs


def _prescribe_inpatients(cfg: PharmacyConfig, st: _Static, enc: Encounters, d: int, rng):
    """One daily order per admission in hospital; the regimen is fixed per admission."""
    ip = enc.ip_day(d)
    keep = _hash01(ip["admission_id"], cfg.seed, 1) < cfg.scale
    ip = {k: v[keep] for k, v in ip.items()}
    n_ip = len(ip["admission_id"])
    aid = ip["admission_id"]
    ip_cat = categories(ip["icd"])
    p_ip = np.asarray([CATEGORIES[c][2] for c in CAT_NAMES])[ip_cat]
    surgical = np.isin(
        np.char.ljust(ip["dept_code"].astype(str), 5).astype("<U5"),
        [d for d in SURGICAL_DEPTS if len(d) == 5],
    ) | np.char.startswith(ip["dept_code"].astype(str), "D02")
    p_ip = np.where(surgical, np.maximum(p_ip, 0.55), p_ip)
    day_in_stay = d - ip["start_day"]
    abx_days = 3 + (_hash01(aid, cfg.seed, 2) * 8).astype(np.int64)
    on_abx = (_hash01(aid, cfg.seed, 3) < p_ip) & (day_in_stay < abx_days)
    n_reg = 1 + (_hash01(aid, cfg.seed, 4) * 4).astype(np.int64)  # regimen drugs 1-4
    slots = 1 + n_reg + on_abx  # fluid + regimen + antibacterial
    ip_pos = np.repeat(np.arange(n_ip), slots)
    ip_first = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
    slot = np.arange(len(ip_pos)) - np.repeat(ip_first, slots)
    key = aid[ip_pos] * 16 + slot
    cum = st.ip_groups[ip_cat[ip_pos]]
    ip_group = np.minimum((_hash01(key, cfg.seed, 5)[:, None] > cum).sum(1), len(rx.GROUPS) - 1)
    ip_group[slot == 0] = rx.GROUPS.index("fluid")
    is_abx = on_abx[ip_pos] & (slot == slots[ip_pos] - 1)
    reserve = _hash01(aid[ip_pos], cfg.seed, 6) < np.where(
        np.isin(ip_cat[ip_pos], [CAT_NAMES.index(c) for c in ("lrti", "infection")]), 0.15, 0.03
    )
    ip_group[is_abx] = np.where(
        reserve[is_abx], rx.GROUPS.index("abx_reserve"), rx.GROUPS.index("abx_iv")
    )
    # the same admission keeps its drugs (antibacterial chosen once per admission)
    u = np.where(is_abx, _hash01(aid[ip_pos], cfg.seed, 7), _hash01(key, cfg.seed, 8))
    ip_drug = st.choose(ip_group, u, inpatient=True)
    ip_secs = 8 * 3600 + rng.integers(0, 7200, n_ip)
    if n_ip:
        ip_secs = np.where(
            ip["start_day"] == d,
            np.maximum(ip["admitted_at"] % DAY_SECONDS + 1800, ip_secs),
            ip_secs,
        )
    return ip, aid, ip_pos, ip_drug, ip_secs


def _prescribe_day(cfg: PharmacyConfig, st: _Static, enc: Encounters, d: int) -> _Lines:
    rng = _rng(cfg.seed, d, _STREAM_DAY)
    op = enc.op_day(d)
    # --- outpatients
    keep = _hash01(op["visit_id"], cfg.seed, 1) < cfg.scale * RX_SHARE
    op = {k: v[keep] for k, v in op.items()}
    n_op = len(op["visit_id"])
    op_cat = categories(op["icd"])
    n_lines = np.clip(1 + rng.poisson(1.7, n_op), 1, 6)
    p_abx = np.asarray([CATEGORIES[c][1] for c in CAT_NAMES])[op_cat]
    has_abx = rng.random(n_op) < p_abx
    rx_pos = np.repeat(np.arange(n_op), n_lines)
    first = np.concatenate([[0], np.cumsum(n_lines)[:-1]]).astype(np.int64)
    line_no = np.arange(len(rx_pos)) - np.repeat(first, n_lines)
    cum = st.op_groups[op_cat[rx_pos]]
    group = (rng.random(len(rx_pos))[:, None] > cum).sum(1)
    group = np.minimum(group, len(rx.GROUPS) - 1)
    abx_line = has_abx[rx_pos] & (line_no == 0)
    # outpatient infusion (门诊输液) is still common for antibacterials: ~20%
    iv = rng.random(len(rx_pos)) < 0.2
    group[abx_line] = np.where(iv[abx_line], rx.GROUPS.index("abx_iv"), rx.GROUPS.index("abx_oral"))
    drug = st.choose(group, rng.random(len(rx_pos)), inpatient=False)
    chronic = np.isin(group, [rx.GROUPS.index(g) for g in CHRONIC_GROUPS])
    days = np.where(
        chronic,
        rng.choice([7, 14, 28, 30], len(rx_pos), p=[0.2, 0.35, 0.3, 0.15]),
        rng.integers(3, 8, len(rx_pos)),
    )
    days = np.where(abx_line & iv, rng.integers(1, 4, len(rx_pos)), days)
    op_secs = (op["at"] % DAY_SECONDS) + rng.integers(300, 1500, n_op)
    ip, aid, ip_pos, ip_drug, ip_secs = _prescribe_inpatients(cfg, st, enc, d, rng)
    n_ip = len(aid)
    # --- together
    per_day = st.cat.per_day
    all_drug = np.concatenate([drug, ip_drug])
    all_days = np.concatenate([days, np.ones(len(ip_drug), np.int64)]).astype(np.int64)
    need = np.ceil(per_day[all_drug] * all_days - 1e-9).astype(np.int64)
    pack = st.cat.pack_size[all_drug]
    is_op_line = np.arange(len(all_drug)) < len(drug)
    solid = np.isin(st.cat.unit[all_drug], ["片", "粒"])
    # clinics hand out whole boxes of tablets and capsules
    whole = is_op_line & solid
    qty = np.where(whole, np.ceil(need / pack).astype(np.int64) * pack, np.maximum(need, 1))
    rxs = {
        "encounter_type": np.concatenate([np.full(n_op, "OP"), np.full(n_ip, "IP")]),
        "visit_id": np.concatenate([op["visit_id"], np.zeros(n_ip, np.int64)]),
        "admission_id": np.concatenate([np.zeros(n_op, np.int64), aid]),
        "patient_id": np.concatenate([op["patient_id"], ip["patient_id"]]),
        "doctor_id": np.concatenate([op["doctor_id"], ip["doctor_id"]]),
        "dept_code": np.concatenate([op["dept_code"], ip["dept_code"]]).astype(str),
        "diagnosis_code": np.concatenate([op["icd"], ip["icd"]]).astype(str),
        "visit_type": np.concatenate([op["visit_type"], np.full(n_ip, "住院")]).astype(str),
        "secs": np.concatenate([op_secs, ip_secs]).astype(np.int64),
    }
    line = {
        "rx_pos": np.concatenate([rx_pos, n_op + ip_pos]).astype(np.int64),
        "drug": all_drug,
        "days": all_days,
        "quantity": qty,
        "inpatient": ~is_op_line,
    }
    # a drug at most once per prescription
    k = line["rx_pos"] * 10_000 + line["drug"]
    _, first_idx = np.unique(k, return_index=True)
    keep_line = np.sort(first_idx)
    line = {c: v[keep_line] for c, v in line.items()}
    return _Lines(rxs, line)


# --------------------------------------------------------------------------------------------
# Set-up (generate only): suppliers, price history, opening stock


def _setup(cfg: PharmacyConfig, st: _Static, d0: int, lines: dict[int, _Lines]):
    rng = _rng(cfg.seed, _STREAM_SETUP)
    cat = st.cat
    n = len(cat)
    out = _Out()
    before = _ts(d0 - 1, 8 * 3600)
    out.add(
        "suppliers",
        {
            "supplier_code": np.asarray([s[0] for s in SUPPLIERS]),
            "supplier_name": np.asarray([s[1] for s in SUPPLIERS]),
            "lead_time_days": np.asarray([s[2] for s in SUPPLIERS], dtype=np.int64),
            "updated_at": np.full(len(SUPPLIERS), before),
        },
    )
    next_ids = {
        k: 1 for k in ("price", "prescription", "line", "dispense", "po", "receipt", "snapshot")
    }
    price = cat.base_price_cents.copy()
    state = _State(
        cfg,
        st,
        price,
        np.zeros(n, np.int64),
        [[] for _ in range(n)],
        [],
        {},
        next_ids,
        np.full(n, (d0 - 1200) * DAY_SECONDS + 9 * 3600, dtype=np.int64),
    )
    pid = _new_ids(state, "price", n)
    state.price_row = pid.copy()
    valid_from = d0 - 200 - (_hash01(cat.drug_id, cfg.seed, 9) * 900).astype(np.int64)
    out.add(
        "drug_prices",
        {
            "price_id": pid,
            "drug_code": cat.drug_code,
            "valid_from": valid_from.astype("datetime64[D]"),
            "valid_to": np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"),
            "unit_price": price.copy(),
            "reason": np.full(n, "initial"),
            "updated_at": (valid_from * DAY_SECONDS + 9 * 3600).astype("datetime64[s]"),
        },
    )
    # opening stock: 10-30 days of the first fortnight's demand, in 1-3 batches
    first = sorted(lines)[:FORECAST_DAYS]
    demand = np.zeros(n)
    for d in first:
        demand += np.bincount(lines[d].line["drug"], lines[d].line["quantity"], minlength=n)
    demand /= max(1, len(first))
    cover = rng.uniform(10, 30, n)
    total = np.maximum(np.ceil(demand * cover), cat.pack_size * 5).astype(np.int64)
    for i in range(n):
        k = int(rng.integers(1, 4))
        shares = rng.dirichlet(np.ones(k))
        for j in range(k):
            # the oldest batch is sometimes close to expiry (or expires during the run)
            expiry = d0 + int(rng.integers(20, 120) if j == 0 else rng.integers(150, 900))
            qty = int(total[i] * shares[j])
            if qty > 0:
                state.batches[i].append(_Batch(_batch_no(state, d0 - 30), expiry, qty))
        state.batches[i].sort(key=lambda b: b.expiry)
    return state, out


def _batch_no(state: _State, d: int) -> str:
    state.batch_seq += 1
    return f"{_from_ord(d):%Y%m%d}{state.batch_seq % 100_000:05d}"


# --------------------------------------------------------------------------------------------
# One day: prices, deliveries, dispensing, returns, ordering, snapshot, defects


def _fill(state: _State, rng, rxs, ln) -> tuple[np.ndarray, np.ndarray]:
    """First come, first served from FEFO batches; stock-outs leave lines undispensed."""
    drug = ln["drug"]
    n_ln = len(drug)
    order = np.argsort(rxs["secs"][ln["rx_pos"]], kind="stable")
    picked = rng.random(n_ln) < np.where(ln["inpatient"], 1.0, 0.985)  # a few never collected
    ok = np.zeros(n_ln, bool)
    batch_of = np.full(n_ln, "", dtype=object)
    qty = ln["quantity"]
    for i in np.unique(drug[order]).tolist():
        sel = order[(drug[order] == i) & picked[order]]
        if not len(sel):
            continue
        batches = state.batches[i]
        on_hand = sum(b.qty for b in batches)
        cum = np.cumsum(qty[sel])
        fill = sel[cum <= on_hand]
        ok[fill] = True
        starts = np.concatenate([[0], np.cumsum(qty[fill])[:-1]]) if len(fill) else []
        bcum = np.cumsum([b.qty for b in batches]) if batches else np.zeros(0)
        where = np.searchsorted(bcum, np.asarray(starts, dtype=float), side="right")
        batch_of[fill] = [batches[w].batch_no for w in where.tolist()] if len(fill) else []
        _take(batches, int(qty[fill].sum()))
    return ok, batch_of


def _expire(state: _State, d: int) -> None:
    """Expired batches are written off before the pharmacy opens (they leave the snapshot)."""
    for b in state.batches:
        b[:] = [x for x in b if x.expiry > d]


def _run_day(state: _State, d: int, lines: _Lines) -> _Out:
    out = _Out()
    cfg, st = state.cfg, state.st
    rng = _rng(cfg.seed, d, _STREAM_STOCK)
    _price_events(state, d, out)
    _deliveries(state, d, out)
    _expire(state, d)
    rxs, ln = lines.rx, lines.line
    rx_ids = _new_ids(state, "prescription", len(rxs["patient_id"]))
    line_ids = _new_ids(state, "line", len(ln["drug"]))
    rx_at = _ts(d, rxs["secs"])
    out.add(
        "prescriptions",
        {
            "prescription_id": rx_ids,
            "encounter_type": rxs["encounter_type"],
            "visit_id": np.where(rxs["visit_id"] > 0, rxs["visit_id"], -1),
            "admission_id": np.where(rxs["admission_id"] > 0, rxs["admission_id"], -1),
            "patient_id": rxs["patient_id"],
            "doctor_id": np.where(rxs["doctor_id"] > 0, rxs["doctor_id"], -1),
            "dept_code": rxs["dept_code"],
            "diagnosis_code": np.where(rxs["diagnosis_code"] == "", NULL, rxs["diagnosis_code"]),
            "prescription_type": np.where(
                rxs["encounter_type"] == "IP",
                "长期",
                np.where(
                    rxs["visit_type"] == "急诊",
                    "急诊",
                    np.where(np.char.startswith(rxs["dept_code"], "D04"), "儿科", "普通"),
                ),
            ),
            "prescribed_at": rx_at,
            "updated_at": rx_at,
        },
    )
    cat = st.cat
    drug = ln["drug"]
    per_day = cat.per_day[drug]
    times = np.where(per_day >= 4, 4, np.maximum(1, np.rint(np.minimum(per_day, 3))))
    times = np.where(per_day == 6, 3, times)
    freq = np.where(
        per_day < 1, "prn", np.asarray(["", "qd", "bid", "tid", "qid"])[times.astype(int)]
    )
    freq = np.where(ln["inpatient"] & (freq == "tid") & (cat.route[drug] == "P"), "q8h", freq)
    units_per_time = np.where(per_day < 1, 1.0, per_day / times)
    strength = cat.strength_mg[drug]
    in_mg = ~np.isnan(strength) & (cat.group[drug] != rx.GROUPS.index("fluid"))
    dose = np.where(in_mg, units_per_time * np.nan_to_num(strength), units_per_time)
    line_at = rx_at[ln["rx_pos"]]
    lines_out = {
        "line_id": line_ids,
        "prescription_id": rx_ids[ln["rx_pos"]],
        "line_no": _rank_within(ln["rx_pos"]) + 1,
        "drug_code": cat.drug_code[drug].astype(object),
        "dose_per_time": np.asarray([f"{x:.4f}".rstrip("0").rstrip(".") for x in dose.tolist()]),
        "dose_unit": np.where(in_mg, "mg", cat.unit[drug]),
        "frequency": freq,
        "days": ln["days"],
        "quantity": ln["quantity"].copy(),
        "unit": cat.unit[drug].astype(object),
        "updated_at": line_at,
    }
    qty = ln["quantity"]
    ok, batch_of = _fill(state, rng, rxs, ln)
    served = np.flatnonzero(ok)
    served = served[np.argsort(rxs["secs"][ln["rx_pos"][served]], kind="stable")]
    disp_ids = _new_ids(state, "dispense", len(served))
    delay = np.where(ln["inpatient"][served], rng.integers(3600, 4 * 3600, len(served)), 0)
    delay = delay + rng.integers(300, 2400, len(served))
    disp_at = _ts(d, rxs["secs"][ln["rx_pos"][served]] + delay)
    price = state.price[drug[served]]
    pharmacy = np.where(
        ln["inpatient"][served],
        "P02",
        np.where(rxs["visit_type"][ln["rx_pos"][served]] == "急诊", "P03", "P01"),
    )
    disp = {
        "dispense_id": disp_ids,
        "line_id": line_ids[served],
        "drug_code": cat.drug_code[drug[served]],
        "batch_no": batch_of[served],
        "quantity": qty[served].copy(),
        "unit_price": price.copy(),
        "amount": qty[served] * price,
        "is_return": np.zeros(len(served), bool),
        "return_of": np.full(len(served), -1, np.int64),
        "pharmacy_code": pharmacy,
        "dept_code": rxs["dept_code"][ln["rx_pos"][served]],
        "dispensed_at": disp_at,
        "updated_at": disp_at,
    }
    state.demand[d] = np.bincount(drug, qty, minlength=len(cat)).astype(float)
    state.demand.pop(d - FORECAST_DAYS, None)
    _line_defects(state, d, out, lines_out)
    _dispense_defects(state, d, out, disp)
    out.add("prescription_lines", lines_out)
    out.add("dispensing", disp)
    sales = _returns(state, d, out, rng)
    n_sale = len(disp_ids)
    defective = [r[3] for r in out.manifest if r[2] == "dispensing"]
    clean = ~np.isin(disp["dispense_id"][:n_sale], defective)
    state.sales[d] = {k: v[:n_sale][clean] for k, v in disp.items()}
    state.sales.pop(d - 6, None)
    out.add("dispensing", sales)
    _purchase(state, d, out, rng)
    _snapshot(state, d, out)
    return out


def _returns(state: _State, d: int, out: _Out, rng) -> dict[str, np.ndarray]:
    """退药: sales of the last five days whose (hashed) return day is today; not restocked."""
    cfg = state.cfg
    parts = []
    for s in range(d - 5, d):
        sale = state.sales.get(s)
        if sale is None or not len(sale["dispense_id"]):
            continue
        ids = sale["dispense_id"]
        back = (_hash01(ids, cfg.seed, 51) < RETURN_RATE) & (
            s + 1 + (_hash01(ids, cfg.seed, 52) * 5).astype(np.int64) == d
        )
        if back.any():
            parts.append({k: v[back] for k, v in sale.items()})
    if not parts:
        return {c: np.zeros(0) for c in COLUMNS["dispensing"]}
    r = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(r["dispense_id"])
    frac = 0.3 + 0.7 * _hash01(r["dispense_id"], cfg.seed, 53)
    qty = -np.clip(np.rint(r["quantity"] * frac), 1, r["quantity"]).astype(np.int64)
    at = _ts(d, np.sort(rng.integers(9 * 3600, 17 * 3600, n)))
    ids = _new_ids(state, "dispense", n)
    out.changes.extend((str(_from_ord(d)), "return", "dispensing", i, None) for i in ids.tolist())
    return {
        "dispense_id": ids,
        "line_id": r["line_id"],
        "drug_code": r["drug_code"],
        "batch_no": r["batch_no"],
        "quantity": qty,
        "unit_price": r["unit_price"],
        "amount": qty * r["unit_price"],
        "is_return": np.ones(n, bool),
        "return_of": r["dispense_id"],
        "pharmacy_code": r["pharmacy_code"],
        "dept_code": r["dept_code"],
        "dispensed_at": at,
        "updated_at": at,
    }


def _rank_within(pos: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal (sorted) values."""
    if not len(pos):
        return pos
    start = np.concatenate([[0], np.flatnonzero(pos[1:] != pos[:-1]) + 1])
    counts = np.diff(np.append(start, len(pos)))
    return np.arange(len(pos)) - np.repeat(start, counts)


def _take(batches: list[_Batch], qty: int) -> None:
    for b in batches:
        if qty <= 0:
            break
        t = min(b.qty, qty)
        b.qty -= t
        qty -= t
    batches[:] = [b for b in batches if b.qty > 0]


def _price_events(state: _State, d: int, out: _Out) -> None:
    """集采 rounds on the first of a month (~3% of drugs), now and then a single 调价."""
    cfg, cat = state.cfg, state.st.cat
    day = _from_ord(d)
    u = _hash01(cat.drug_id * 100_000 + d, cfg.seed, 11)
    if day.day == 1:
        hit = u < 0.03
        reason = "集采"
    else:
        hit = u < 0.0004
        reason = "调价"
    idx = np.flatnonzero(hit)
    if not len(idx):
        return
    v = _hash01(cat.drug_id[idx] * 100_000 + d, cfg.seed, 12)
    factor = np.where(reason == "集采", 0.45 + 0.4 * v, np.where(v < 0.5, 0.9, 1.08))
    _set_prices(state, d, out, idx, np.maximum(1, np.rint(state.price[idx] * factor)), reason)


def _set_prices(state, d, out, idx, new_cents, reason) -> None:
    cat = state.st.cat
    ids = _new_ids(state, "price", len(idx))
    at = _ts(d, 7 * 3600 + np.arange(len(idx)))
    out.add(
        "drug_prices",
        {
            "price_id": ids,
            "drug_code": cat.drug_code[idx],
            "valid_from": np.full(len(idx), np.datetime64(_from_ord(d), "D")),
            "valid_to": np.full(len(idx), np.datetime64("NaT"), dtype="datetime64[D]"),
            "unit_price": np.asarray(new_cents, dtype=np.int64),
            "reason": np.full(len(idx), reason),
            "updated_at": at,
        },
    )
    # close the previous rows (an update in place: updated_at moves)
    for prev, ts in zip(state.price_row[idx].tolist(), at.tolist(), strict=True):
        out.updates.setdefault("price_close", []).append((prev, str(_from_ord(d)), str(ts)))
    state.price_row[idx] = ids
    state.price[idx] = np.asarray(new_cents, dtype=np.int64)
    state.price_at[idx] = at.astype(np.int64)
    out.updates.setdefault("drug_price", []).extend(
        zip(
            cat.drug_code[idx].tolist(),
            money(state.price[idx]).tolist(),
            [str(t) for t in at.tolist()],
            strict=True,
        )
    )


def _deliveries(state: _State, d: int, out: _Out) -> None:
    cfg, cat = state.cfg, state.st.cat
    due = [o for o in state.orders if o.arrive <= d]
    if not due:
        return
    state.orders = [o for o in state.orders if o.arrive > d]
    po = np.asarray([o.po_id for o in due], dtype=np.int64)
    drug = np.asarray([o.drug for o in due], dtype=np.int64)
    ordered = np.asarray([o.qty for o in due], dtype=np.int64)
    got = np.asarray([o.received_qty for o in due], dtype=np.int64)
    shelf = np.where(
        _hash01(po, cfg.seed, 21) < 0.05,
        30 + (_hash01(po, cfg.seed, 22) * 60).astype(np.int64),  # short-dated stock
        180 + (_hash01(po, cfg.seed, 23) * 720).astype(np.int64),
    )
    batch = np.asarray([_batch_no(state, d) for _ in due])
    for i, b, q, e in zip(
        drug.tolist(), batch.tolist(), got.tolist(), (d + shelf).tolist(), strict=True
    ):
        state.batches[i].append(_Batch(b, e, q))
        state.batches[i].sort(key=lambda x: x.expiry)
    at = _ts(d, 9 * 3600 + (_hash01(po, cfg.seed, 24) * 6 * 3600).astype(np.int64))
    out.add(
        "receipts",
        {
            "receipt_id": _new_ids(state, "receipt", len(due)),
            "po_id": po,
            "drug_code": cat.drug_code[drug],
            "received_at": at,
            "quantity": got,
            "batch_no": batch,
            "expiry_date": (d + shelf).astype("datetime64[D]"),
            "updated_at": at,
        },
    )
    status = np.where(got < ordered, "partial", "received")
    for p, s, ts in zip(po.tolist(), status.tolist(), at.tolist(), strict=True):
        out.updates.setdefault("po_status", []).append((p, s, str(ts)))


def _purchase(state: _State, d: int, out: _Out, rng) -> None:
    """Reorder point policy: order when stock + open orders < demand over lead time + safety."""
    cfg, st = state.cfg, state.st
    cat = st.cat
    n = len(cat)
    hist = [v for k, v in state.demand.items() if k <= d]
    mean = np.mean(hist, axis=0) if hist else np.zeros(n)
    on_hand = np.asarray([sum(b.qty for b in bs) for bs in state.batches], dtype=np.int64)
    on_order = np.bincount(
        [o.drug for o in state.orders], [o.qty for o in state.orders], minlength=n
    ).astype(np.int64)
    lead = np.asarray([s[2] for s in SUPPLIERS])[st.supplier_idx]
    rop = mean * (lead + SAFETY_DAYS)
    idx = np.flatnonzero((on_hand + on_order < rop) & (mean > 0))
    if not len(idx):
        return
    target = mean[idx] * (lead[idx] + ORDER_COVER_DAYS)
    pack = cat.pack_size[idx]
    qty = (np.ceil((target - on_hand[idx] - on_order[idx]) / pack) * pack).astype(np.int64)
    qty = np.maximum(qty, pack)
    ids = _new_ids(state, "po", len(idx))
    late = _hash01(ids, cfg.seed, 31)
    jitter = np.where(late < 0.08, 4 + (late * 50).astype(np.int64), (late * 3).astype(np.int64))
    arrive = d + lead[idx] + jitter - 1
    partial = _hash01(ids, cfg.seed, 32) < 0.05
    got = np.where(
        partial, np.maximum(1, (qty * (0.5 + 0.4 * _hash01(ids, cfg.seed, 33))).astype(int)), qty
    )
    for p, i, q, a, g in zip(
        ids.tolist(), idx.tolist(), qty.tolist(), arrive.tolist(), got.tolist(), strict=True
    ):
        state.orders.append(_Order(p, i, q, max(a, d + 1), g))
    at = _ts(d, 16 * 3600 + rng.integers(0, 3600, len(idx)))
    out.add(
        "purchase_orders",
        {
            "po_id": ids,
            "supplier_code": np.asarray([s[0] for s in SUPPLIERS])[st.supplier_idx[idx]],
            "drug_code": cat.drug_code[idx],
            "quantity": qty,
            "unit_price": state.price[idx].copy(),
            "ordered_at": at,
            "expected_at": (d + lead[idx]).astype("datetime64[D]"),
            "status": np.full(len(idx), "open"),
            "updated_at": at,
        },
    )


def _snapshot(state: _State, d: int, out: _Out) -> None:
    cat = state.st.cat
    rows = [(i, b) for i, bs in enumerate(state.batches) for b in bs if b.qty > 0]
    if not rows:
        return
    drug = np.asarray([i for i, _ in rows], dtype=np.int64)
    out.add(
        "stock_batches",
        {
            "snapshot_id": _new_ids(state, "snapshot", len(rows)),
            "snapshot_date": np.full(len(rows), np.datetime64(_from_ord(d), "D")),
            "drug_code": cat.drug_code[drug],
            "batch_no": np.asarray([b.batch_no for _, b in rows]),
            "expiry_date": np.asarray([b.expiry for _, b in rows]).astype("datetime64[D]"),
            "quantity_on_hand": np.asarray([b.qty for _, b in rows], dtype=np.int64),
            "unit_price": state.price[drug].copy(),
            "updated_at": np.full(len(rows), _ts(d, DAY_SECONDS - 60)),
        },
    )


# --------------------------------------------------------------------------------------------
# Defects


def _line_defects(state: _State, d: int, out: _Out, lines: dict[str, np.ndarray]) -> None:
    """unknown_drug_code, zero_quantity, unit_mixup: at most one per line."""
    rate = state.cfg.defect_rate
    rng = _rng(state.cfg.seed, d, _STREAM_DEFECT)
    day_s = str(_from_ord(d))
    free = np.ones(len(lines["line_id"]), bool)

    def take(mask=None) -> np.ndarray:
        chosen = _pick(rng, np.flatnonzero(free if mask is None else free & mask), rate)
        free[chosen] = False
        return chosen

    i = take()
    ids = lines["line_id"][i]
    out.defect(day_s, "unknown_drug_code", "prescription_lines", ids, "drug_code",
               lines["drug_code"][i])  # fmt: skip
    lines["drug_code"][i] = [f"Y{UNKNOWN_CODE_BASE + int(x) % 1000:05d}" for x in ids.tolist()]
    i = take()
    out.defect(day_s, "zero_quantity", "prescription_lines", lines["line_id"][i], "quantity",
               lines["quantity"][i])  # fmt: skip
    lines["quantity"][i] = 0
    i = take(np.isin(lines["unit"], ["片", "粒"]))
    out.defect(day_s, "unit_mixup", "prescription_lines", lines["line_id"][i], "unit",
               lines["unit"][i])  # fmt: skip
    lines["unit"][i] = "盒"


def _dispense_defects(state: _State, d: int, out: _Out, disp: dict[str, np.ndarray]) -> None:
    """negative_quantity, price_100x (in place), duplicate_dispensing (appended rows)."""
    rate = state.cfg.defect_rate
    rng = _rng(state.cfg.seed, d, _STREAM_DEFECT, 2)
    day_s = str(_from_ord(d))
    free = np.ones(len(disp["dispense_id"]), bool)

    def take() -> np.ndarray:
        chosen = _pick(rng, np.flatnonzero(free), rate)
        free[chosen] = False
        return chosen

    dups = take()
    i = take()
    out.defect(day_s, "negative_quantity", "dispensing", disp["dispense_id"][i], "quantity",
               disp["quantity"][i])  # fmt: skip
    disp["quantity"][i] = -disp["quantity"][i]
    disp["amount"][i] = -disp["amount"][i]
    i = take()
    out.defect(day_s, "price_100x", "dispensing", disp["dispense_id"][i], "unit_price",
               money(disp["unit_price"][i]))  # fmt: skip
    disp["unit_price"][i] = disp["unit_price"][i] * 100
    disp["amount"][i] = disp["amount"][i] * 100
    if len(dups):
        copy = {c: v[dups].copy() for c, v in disp.items()}
        copy["dispense_id"] = _new_ids(state, "dispense", len(dups))
        copy["updated_at"] = np.minimum(
            copy["updated_at"] + np.timedelta64(37, "s"), _ts(d, DAY_SECONDS - 1)
        )
        out.defect(day_s, "duplicate_dispensing", "dispensing", copy["dispense_id"], None,
                   disp["dispense_id"][dups])  # fmt: skip
        for c, values in disp.items():
            disp[c] = np.concatenate([values, copy[c]])


# --------------------------------------------------------------------------------------------
# Writing


def _text(values: np.ndarray, digits: int = 5) -> np.ndarray:
    """Floats as COPY text (nan -> NULL), without trailing zeros."""
    out = [NULL if math.isnan(v) else f"{v:.{digits}f}".rstrip("0").rstrip(".") for v in values]
    return np.asarray(out, dtype=object)


def _nullable_ids(values: np.ndarray) -> np.ndarray:
    return np.where(values < 0, NULL, values.astype(str)).astype(object)


_NULLABLE_IDS = {"visit_id", "admission_id", "doctor_id", "return_of"}


def _write(cur, out: _Out) -> None:
    for table, chunks in out.tables.items():
        cols = COLUMNS[table]
        data = []
        for c in cols:
            arr = np.concatenate([np.asarray(ch[c]) for ch in chunks])
            if c in MONEY_COLUMNS:
                arr = money(arr)
            elif c in _NULLABLE_IDS:
                arr = _nullable_ids(arr.astype(np.int64))
            elif c == "is_return":
                arr = arr.astype(bool)
            elif arr.dtype.kind == "f":
                arr = _text(arr)
            data.append(arr)
        copy_rows(cur, f"pharmacy.{table}", cols, data)
    _copy_tuples(cur, "sim.defect_manifest", out.manifest)
    _copy_tuples(cur, "sim.change_log", out.changes)
    _apply_updates(cur, out)


def _copy_tuples(cur, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = COLUMNS[table]
    data = []
    for i, c in enumerate(cols):
        values = [r[i] for r in rows]
        data.append(np.asarray(values, dtype=np.int64 if c == "record_id" else object))
    copy_rows(cur, table, cols, data)


def _apply_updates(cur, out: _Out) -> None:
    """In-place updates of earlier rows: closed price rows, delivered orders, drug prices."""
    ups, out.updates = out.updates, {}
    if ups.get("price_close"):
        execute_values(
            cur,
            "update pharmacy.drug_prices p set valid_to = f.valid_to::date, "
            "updated_at = f.updated_at::timestamp from (values %s) "
            "as f (price_id, valid_to, updated_at) where p.price_id = f.price_id",
            ups["price_close"],
            page_size=1000,
        )
    if ups.get("po_status"):
        execute_values(
            cur,
            "update pharmacy.purchase_orders p set status = f.status, "
            "updated_at = f.updated_at::timestamp from (values %s) "
            "as f (po_id, status, updated_at) where p.po_id = f.po_id",
            ups["po_status"],
            page_size=1000,
        )
    if ups.get("drug_price"):
        execute_values(
            cur,
            "update pharmacy.drugs d set unit_price = f.unit_price::numeric, "
            "updated_at = greatest(d.updated_at, f.updated_at::timestamp) from (values %s) "
            "as f (drug_code, unit_price, updated_at) where d.drug_code = f.drug_code",
            ups["drug_price"],
            page_size=1000,
        )


def _write_drugs(cur, state: _State, d0: int) -> None:
    """The drug dictionary as of the end of generate(), with strength_in_grams defects."""
    cfg, st = state.cfg, state.st
    cat = st.cat
    n = len(cat)
    rng = _rng(cfg.seed, _STREAM_SETUP, 2)
    strength = cat.strength_mg.copy()
    created = _ts(d0 - 1200, 9 * 3600 + np.arange(n))
    out = _Out()
    cand = np.flatnonzero(~np.isnan(strength) & (strength >= 1))
    bad = _pick(rng, cand, cfg.defect_rate)
    if not len(bad) and cfg.defect_rate > 0:
        bad = np.sort(rng.choice(cand, size=1, replace=False))
    out.defect(str(_from_ord(d0)), "strength_in_grams", "drugs", cat.drug_id[bad],
               "strength_mg", _text(strength[bad]))  # fmt: skip
    strength[bad] = strength[bad] / 1000
    out.add(
        "drugs",
        {
            "drug_code": cat.drug_code,
            "drug_id": cat.drug_id,
            "generic_name": cat.generic_name,
            "brand_name": cat.brand_name,
            "specification": cat.specification,
            "dosage_form": cat.dosage_form,
            "unit": cat.unit,
            "pack_size": cat.pack_size,
            "strength_mg": strength,
            "route": cat.route,
            "manufacturer": cat.manufacturer,
            "atc_code": cat.atc_code,
            "ddd_value": cat.ddd_value,
            "ddd_unit": cat.ddd_unit,
            "is_essential": cat.is_essential,
            "antibiotic_grade": cat.antibiotic_grade,
            "supplier_code": np.asarray([s[0] for s in SUPPLIERS])[st.supplier_idx],
            "unit_price": state.price.copy(),
            "is_active": np.ones(n, bool),
            "created_at": created,
            "updated_at": np.maximum(created, state.price_at.astype("datetime64[s]")),
        },
    )
    _write(cur, out)


# --------------------------------------------------------------------------------------------
# advance_day: state from the database, corrections


def _load_state(cur, cfg: PharmacyConfig, st: _Static, current: int) -> _State:
    cat = st.cat
    n = len(cat)
    idx = st.code_index
    cur.execute(
        "select distinct on (drug_code) drug_code, price_id, "
        "round(unit_price * 100)::bigint, extract(epoch from updated_at)::bigint "
        "from pharmacy.drug_prices order by drug_code, valid_from desc, price_id desc"
    )
    price = cat.base_price_cents.copy()
    price_row = np.zeros(n, np.int64)
    price_at = np.zeros(n, np.int64)
    for code, pid, cents, at in cur.fetchall():
        if code in idx:
            price[idx[code]], price_row[idx[code]], price_at[idx[code]] = cents, pid, at
    batches: list[list[_Batch]] = [[] for _ in range(n)]
    cur.execute(
        "select drug_code, batch_no, expiry_date - date '1970-01-01', "
        "quantity_on_hand::bigint from pharmacy.stock_batches where snapshot_date = %s "
        "order by drug_code, expiry_date, batch_no",
        (_from_ord(current),),
    )
    for code, bno, exp, q in cur.fetchall():
        batches[idx[code]].append(_Batch(bno, exp, q))
    cur.execute(
        "select po_id, drug_code, quantity::bigint, ordered_at::date - date '1970-01-01' "
        "from pharmacy.purchase_orders where status = 'open' order by po_id"
    )
    orders = []
    for po, code, q, d in cur.fetchall():
        i = idx[code]
        lead = SUPPLIERS[st.supplier_idx[i]][2]
        u = float(_hash01(np.asarray([po]), cfg.seed, 31)[0])
        jitter = 4 + int(u * 50) if u < 0.08 else int(u * 3)
        partial = float(_hash01(np.asarray([po]), cfg.seed, 32)[0]) < 0.05
        got = max(1, int(q * (0.5 + 0.4 * _hash01(np.asarray([po]), cfg.seed, 33)[0])))
        orders.append(_Order(po, i, q, max(d + lead + jitter - 1, d + 1), got if partial else q))
    cur.execute(
        "select p.prescribed_at::date - date '1970-01-01', l.drug_code, sum(l.quantity) "
        "from pharmacy.prescription_lines l join pharmacy.prescriptions p "
        "using (prescription_id) where p.prescribed_at >= %s group by 1, 2",
        (_from_ord(current - FORECAST_DAYS + 1),),
    )
    demand: dict[int, np.ndarray] = {}
    for d, code, q in cur.fetchall():
        if code in idx:
            demand.setdefault(d, np.zeros(n))[idx[code]] = float(q)
    next_ids = {}
    for key, table, col in (
        ("price", "drug_prices", "price_id"),
        ("prescription", "prescriptions", "prescription_id"),
        ("line", "prescription_lines", "line_id"),
        ("dispense", "dispensing", "dispense_id"),
        ("po", "purchase_orders", "po_id"),
        ("receipt", "receipts", "receipt_id"),
        ("snapshot", "stock_batches", "snapshot_id"),
    ):
        cur.execute(f"select max({col}) from pharmacy.{table}")
        next_ids[key] = (cur.fetchone()[0] or 0) + 1
    cur.execute("select count(*) from pharmacy.receipts")
    state = _State(cfg, st, price, price_row, batches, orders, demand, next_ids, price_at)
    state.batch_seq = 100_000 + int(cur.fetchone()[0])
    cur.execute(
        "select d.dispense_id, d.line_id, d.drug_code, d.batch_no, d.quantity::bigint, "
        "round(d.unit_price * 100)::bigint, d.pharmacy_code, d.dept_code, "
        "d.dispensed_at::date - date '1970-01-01' from pharmacy.dispensing d "
        "where d.dispensed_at >= %s and not d.is_return and not exists (select 1 from "
        "sim.defect_manifest m where m.table_name = 'dispensing' "
        "and m.record_id = d.dispense_id) order by d.dispense_id",
        (_from_ord(current - 4),),
    )
    rows = cur.fetchall()
    for d in sorted({r[8] for r in rows}):
        part = [r for r in rows if r[8] == d]
        cols = list(zip(*part, strict=True))
        state.sales[d] = {
            "dispense_id": np.asarray(cols[0], dtype=np.int64),
            "line_id": np.asarray(cols[1], dtype=np.int64),
            "drug_code": np.asarray(cols[2], dtype=str),
            "batch_no": np.asarray(cols[3], dtype=object),
            "quantity": np.asarray(cols[4], dtype=np.int64),
            "unit_price": np.asarray(cols[5], dtype=np.int64),
            "pharmacy_code": np.asarray(cols[6], dtype=str),
            "dept_code": np.asarray(cols[7], dtype=str),
        }
    return state


def _corrections(cur, state: _State, d: int, out: _Out) -> None:
    """A price entered wrongly is corrected (更正); a few undispensed lines are amended."""
    cfg, cat = state.cfg, state.st.cat
    rng = _rng(cfg.seed, d, _STREAM_FIX)
    day_s = str(_from_ord(d))
    i = np.asarray([int(rng.integers(len(cat)))])
    new = np.maximum(1, np.rint(state.price[i] * rng.choice([0.95, 1.05])))
    _set_prices(state, d, out, i, new, "更正")
    out.changes.append((day_s, "correction", "drugs", int(cat.drug_id[i[0]]), "unit_price"))
    # outpatient lines of yesterday that were never dispensed: the doctor shortened them
    cur.execute(
        "select l.line_id, l.quantity::bigint from pharmacy.prescription_lines l "
        "join pharmacy.prescriptions p using (prescription_id) "
        "where p.prescribed_at >= %s and p.prescribed_at < %s and p.encounter_type = 'OP' "
        "and l.quantity > 1 and not exists (select 1 from pharmacy.dispensing x "
        "where x.line_id = l.line_id) and not exists (select 1 from sim.defect_manifest m "
        "where m.table_name = 'prescription_lines' and m.record_id = l.line_id) "
        "order by l.line_id",
        (_from_ord(d - 1), _from_ord(d)),
    )
    rows = cur.fetchall()
    keep = sorted(rng.permutation(len(rows))[: max(1, len(rows) // 20)].tolist()) if rows else []
    fixes = []
    ts = _ts(d, 10 * 3600 + np.arange(len(keep)))
    for k, t in zip(keep, ts.tolist(), strict=True):
        line_id, q = rows[k]
        fixes.append((line_id, max(1, q // 2), str(t)))
        out.changes.append((day_s, "correction", "prescription_lines", line_id, "quantity"))
    if fixes:
        execute_values(
            cur,
            "update pharmacy.prescription_lines l set quantity = f.quantity, "
            "updated_at = f.updated_at::timestamp from (values %s) "
            "as f (line_id, quantity, updated_at) where l.line_id = f.line_id",
            fixes,
        )
