"""Simulated HIS source: a deterministic, realistic hospital database with manifested defects.

`generate()` writes a registry of earlier patients plus `history_days` days of activity;
`advance_day()` adds one more day and corrects some earlier records, as a live HIS would.
Everything is a pure function of the seed and the simulated day (generators seeded with
(seed, day)), written with COPY from vectorised numpy arrays.

Rows per 1.0 of scale (a large tertiary hospital, see DOMAIN.md); measured for the default
90 days from 2024-01-01 (winter, so above the yearly mean), seed 42:

    table                 per day (year mean)   90 days     note
    departments           -                     45          fixed: 9 divisions, 36 departments
    doctors               -                     1,651       fixed; ~5% leave, old visits keep them
    patients              ~3,000 new            598,886     300,000 registered before day one
    outpatient_visits     ~10,000               1,000,058   Mon ~1.3x, Sun ~0.5x the mean
    inpatient_admissions  ~275                  24,626      stay log-normal, median 7 days
    diagnoses             ~15,000               1,490,504   1-3 per encounter, one primary

Rows grow linearly with scale and days: scale 3 for 90 days, or scale 1 for ten months, is
~10 million rows.

Defects are injected at `defect_rate` per kind and table (see DEFECT_KINDS) and every defective
row is listed in sim.defect_manifest. sim.person_truth links every patient_id to its person.
sim.change_log lists what advance_day changed (kind new / correction / discharge / change:
promotions, transfers, renamed departments, kept by the warehouse as history); generate()
logs nothing there (its history is the initial snapshot).

Gender codes 1/2, M/F and 男/女 are the routine mix of a HIS fed by several front ends and are
not defects; only '0', '9', 'U', '未知', '' and lower-case 'm'/'f' are (nonstandard_gender_code).
Birth dates are ISO text except the nonstandard_date_format rows ('1980/1/2' or '19800102').
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from psycopg2.extras import execute_values

from hdp_sim import people as ppl
from hdp_sim import reference as ref
from hdp_sim.tsv import MONEY_NULL, copy_rows, money

log = logging.getLogger(__name__)

SCHEMA_SQL = Path(__file__).with_name("his_schema.sql")

DEFECT_KINDS: dict[str, str] = {
    "duplicate_registration": "a person registered again under a new patient_id/mrn with the same "
    "ID card number; the name may carry a homophone typo, full-width characters or spaces",
    "fullwidth_name": "patient name contains full-width characters (ideographic space U+3000)",
    "stray_whitespace": "patient name has leading, trailing or inner ASCII spaces",
    "nonstandard_gender_code": "gender is none of the routine 1/2/M/F/男/女: "
    "'0', '9', 'U', '未知', '' or lower-case 'm'/'f'",
    "nonstandard_date_format": "birth_date is not ISO: '1980/1/2' or '19800102'",
    "nonstandard_icd_format": "ICD-10 code in lower case, without its dot or with spaces around",
    "invalid_id_card_checksum": "ID card number whose check character is wrong",
    "future_birth_date": "birth_date after the registration day (century typo, e.g. 2085 for 1985)",
    "discharge_before_admission": "discharged_at earlier than admitted_at",
    "negative_fee": "outpatient fee or admission total_cost with the sign flipped",
    "orphan_patient_ref": "visit or admission whose patient_id matches no patient",
    "orphan_encounter_ref": "diagnosis whose encounter_id matches no visit or admission",
    "orphan_department_ref": "doctor whose dept_code (a retired code) matches no department",
    "duplicate_visit": "the same visit (patient, dept, doctor, visit_at) under a second visit_id",
}

HIS_TABLES = (
    "departments",
    "doctors",
    "patients",
    "outpatient_visits",
    "inpatient_admissions",
    "diagnoses",
)
_COLUMN_SPEC = {
    "departments": "dept_code dept_name parent_code dept_type is_active created_at updated_at",
    "doctors": "doctor_id doctor_name dept_code title gender hired_on left_on updated_at",
    "patients": "patient_id mrn name gender birth_date id_card_no phone address registered_at "
    "updated_at",
    "outpatient_visits": "visit_id patient_id dept_code doctor_id visit_at visit_type fee status "
    "updated_at",
    "inpatient_admissions": "admission_id patient_id dept_code attending_doctor_id ward bed_no "
    "admitted_at discharged_at discharge_status total_cost updated_at",
    "diagnoses": "diagnosis_id encounter_type encounter_id icd10_code diagnosis_name is_primary "
    "diagnosed_at updated_at",
    "sim.defect_manifest": "sim_day kind table_name record_id column_name clean_value",
    "sim.change_log": "sim_day kind table_name record_id column_name",
    "sim.person_truth": "patient_id person_id sex birth_date",
}
COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c.split()) for t, c in _COLUMN_SPEC.items()}
MONEY_COLUMNS = {"fee", "total_cost"}

# Volumes per 1.0 of scale.
VISITS_PER_DAY = 10_000.0
ADMISSIONS_PER_DAY = 275.0
DOCTORS = 1_500
REGISTRY = 300_000  # patients registered before the first simulated day
NEW_PATIENT_SHARE = {"OP": 0.30, "IP": 0.10}
CANCEL_RATE = 0.04
ORPHAN_ID_BASE = 900_000_000_000  # ids in orphan references start here: no real row has one
TITLES = ("主任医师", "副主任医师", "主治医师", "住院医师")
TITLE_SHARES = (0.12, 0.22, 0.33, 0.33)
DISCHARGE_STATUS = ("cured", "improved", "transferred", "died")
DISCHARGE_SHARES = (0.30, 0.628, 0.06, 0.012)
# Outpatient clinics by weekday (Mon..Sun); the emergency department barely notices weekends.
_OP_WEEK = np.asarray([1.32, 1.16, 1.10, 1.06, 1.00, 0.62, 0.48])
OP_WEEK = _OP_WEEK / _OP_WEEK.mean()
ED_WEEK = np.asarray([1.0, 0.97, 0.97, 0.97, 1.0, 1.05, 1.04])
IP_WEEK = np.asarray([1.15, 1.10, 1.08, 1.05, 1.00, 0.85, 0.77])
SPRING_FESTIVAL = {
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
}
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    scale: float = 0.1  # rows per 1.0 of scale: see the module docstring
    history_days: int = 90  # days of history generated by generate()
    first_day: date = date(2024, 1, 1)
    defect_rate: float = 0.01  # share of rows per defect kind (per table where it makes sense)


# --------------------------------------------------------------------------------------------
# Determinism helpers


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


_STREAM_STAFF, _STREAM_REGISTRY, _STREAM_DAY, _STREAM_FIX, _STREAM_CHANGE = 1, 2, 3, 4, 5
_M64 = (1 << 64) - 1


def _hash01(keys: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """Uniform [0, 1) per key, stateless (splitmix64): the same record always draws the same."""
    x = np.asarray(keys, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = x + np.uint64((seed * 0x100000001B3 + salt * 0x9E3779B9) & _M64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _hash_normal(keys: np.ndarray, seed: int, salt: int) -> np.ndarray:
    u1 = np.maximum(_hash01(keys, seed, salt), 1e-12)
    u2 = _hash01(keys, seed, salt + 1)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def _visit_propensity(patient_ids: np.ndarray, seed: int) -> np.ndarray:
    """How often a registration comes back: chronic patients far more often than most."""
    return np.exp(1.0 * _hash_normal(patient_ids, seed, 11))


def _length_of_stay(admission_ids: np.ndarray, seed: int) -> np.ndarray:
    """Planned length of stay in days: log-normal, median 7, mostly 3-15."""
    z = _hash_normal(admission_ids, seed, 21)
    return np.clip(np.rint(7.0 * np.exp(0.55 * z)), 1, 90).astype(np.int64)


def _day_ord(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _ts(day: date, seconds: np.ndarray) -> np.ndarray:
    """Timestamps inside `day` (seconds clipped to the day, so updated_at never leaves it)."""
    secs = np.clip(np.asarray(seconds, dtype=np.int64), 0, DAY_SECONDS - 1)
    return np.datetime64(day, "s") + secs.astype("timedelta64[s]")


def _respiratory_factor(day: date) -> float:
    """Winter respiratory season: peaks around 20 January (x1.45), lowest in July (x0.55)."""
    doy = day.timetuple().tm_yday
    return 1.0 + 0.45 * math.cos(2 * math.pi * (doy - 20) / 365.25)


def _holiday_factor(day: date) -> float:
    """Clinics nearly empty during the Spring Festival week, quieter in the National Day week."""
    sf = SPRING_FESTIVAL.get(day.year)
    if sf is not None and sf - timedelta(days=1) <= day <= sf + timedelta(days=5):
        return 0.35
    if day.month == 10 and day.day <= 7:
        return 0.55
    if day.month == 1 and day.day == 1:
        return 0.6
    return 1.0


def _pick(rng: np.random.Generator, candidates: np.ndarray, rate: float) -> np.ndarray:
    """A binomial(len, rate) random subset of candidate indices, in ascending order."""
    k = rng.binomial(len(candidates), rate) if len(candidates) and rate > 0 else 0
    return np.sort(rng.choice(candidates, size=k, replace=False)) if k else candidates[:0]


# --------------------------------------------------------------------------------------------
# Static reference arrays


@dataclass
class _Catalogue:
    depts: list[ref.Department]  # active departments that see patients
    dept_codes: np.ndarray
    division: np.ndarray
    population: np.ndarray
    op_share: np.ndarray
    ip_share: np.ndarray
    respiratory: np.ndarray
    emergency: np.ndarray
    daily_cost: np.ndarray  # cents per inpatient day
    wards: list[np.ndarray]
    codes: np.ndarray
    code_names: np.ndarray
    code_chapter: np.ndarray
    seasonal_code: np.ndarray
    dx: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per dept: code idx, op w, ip w
    comorbid: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def build(cls) -> _Catalogue:
        icd = ref.icd10_codes()
        codes = np.asarray(sorted(icd))
        index = {c: i for i, c in enumerate(codes)}

        def table(spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return (
                np.asarray([index[c] for c, _, _ in spec]),
                np.asarray([w for _, w, _ in spec], dtype=float),
                np.asarray([w for _, _, w in spec], dtype=float),
            )

        depts = [
            d
            for d in ref.departments()
            if d.is_active and d.dept_type in ("clinical", "emergency") and d.diagnoses
        ]
        op = np.asarray([d.op_weight for d in depts])
        ip = np.asarray([d.ip_weight for d in depts])
        wards, floor = [], 3
        for d in depts:
            n = 0 if d.ip_weight <= 0 else 1 + min(2, int(d.ip_weight // 3))
            wards.append(np.asarray([f"{floor + i // 2}{'AB'[i % 2]}病区" for i in range(n)]))
            floor += (n + 1) // 2
        surgical = np.asarray([d.code.startswith(("D02", "D0302")) for d in depts])
        return cls(
            depts=depts,
            dept_codes=np.asarray([d.code for d in depts]),
            division=np.asarray([d.parent for d in depts]),
            population=np.asarray([d.population for d in depts]),
            op_share=op / op.sum(),
            ip_share=ip / ip.sum(),
            respiratory=np.asarray([d.respiratory for d in depts]),
            emergency=np.asarray([d.dept_type == "emergency" for d in depts]),
            daily_cost=np.where(surgical, 420_000, 260_000),
            wards=wards,
            codes=codes,
            code_names=np.asarray([icd[c].description_zh for c in codes]),
            code_chapter=np.asarray([icd[c].chapter for c in codes]),
            seasonal_code=np.asarray(
                [icd[c].chapter == "X" or c in ("U07.1", "R05") for c in codes]
            ),
            dx=[table(d.diagnoses) for d in depts],
            comorbid=table(ref.COMORBIDITIES),
        )


@dataclass
class _Doctors:
    doctor_id: np.ndarray
    dept_idx: np.ndarray  # index into _Catalogue.depts; -1: sees no patients
    rank: np.ndarray  # index into TITLES
    hired_on: np.ndarray  # days since epoch
    left_on: np.ndarray  # days since epoch; large for doctors still working

    def on_duty(self, day_ord: int, n_depts: int, senior_only: bool = False):
        """(doctor ids sorted by department, offset per department, count per department)."""
        ok = (self.dept_idx >= 0) & (self.hired_on <= day_ord) & (self.left_on > day_ord)
        if senior_only:
            ok &= self.rank <= 2
        idx = np.flatnonzero(ok)
        idx = idx[np.argsort(self.dept_idx[idx], kind="stable")]
        counts = np.bincount(self.dept_idx[idx], minlength=n_depts)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return self.doctor_id[idx], self.rank[idx], offsets, counts


class _Pool:
    """Registrations a returning patient can come back under (grows day by day)."""

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []
        self._cache: dict[str, np.ndarray] | None = None

    def extend(self, **cols: np.ndarray) -> None:
        if len(next(iter(cols.values()))):
            self._chunks.append(cols)
            self._cache = None

    def arrays(self) -> dict[str, np.ndarray]:
        if self._cache is None:
            keys = self._chunks[0].keys() if self._chunks else ()
            self._cache = {k: np.concatenate([c[k] for c in self._chunks]) for k in keys}
            self._chunks = [self._cache] if self._chunks else []
        return self._cache

    def __len__(self) -> int:
        return sum(len(c["patient_id"]) for c in self._chunks)


@dataclass
class _Context:
    cfg: SimConfig
    cat: _Catalogue
    doctors: _Doctors
    pool: _Pool
    next_ids: dict[str, int]
    # clean identity columns of earlier registrations, for duplicate registrations
    originals: Any = None


@dataclass
class _Out:
    """Rows produced by one simulated day (or by the static set-up)."""

    tables: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)
    manifest: list[tuple] = field(default_factory=list)

    def add(self, table: str, rows: dict[str, np.ndarray]) -> None:
        if len(next(iter(rows.values()))):
            self.tables.setdefault(table, []).append(rows)

    def defect(self, day, kind: str, table: str, ids, column=None, clean=None) -> None:
        ids = np.atleast_1d(ids).tolist()
        if not ids:
            return
        n = len(ids)
        days = [str(day)] * n if np.ndim(day) == 0 else [str(d) for d in day]
        if clean is None:
            cleans = [None] * n
        elif np.ndim(clean) == 0:
            cleans = [str(clean)] * n
        else:
            cleans = [None if c is None else str(c) for c in np.asarray(clean).tolist()]
        self.manifest.extend(
            zip(days, [kind] * n, [table] * n, ids, [column] * n, cleans, strict=True)
        )

    def count(self, table: str) -> int:
        return sum(len(r[COLUMNS[table][0]]) for r in self.tables.get(table, []))


# --------------------------------------------------------------------------------------------
# Public API


def create_schema(conn) -> None:
    """Create the his and sim schemas and tables (idempotent)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
    conn.commit()


def table_counts(conn) -> dict[str, int]:
    """Rows per his.* table."""
    with conn.cursor() as cur:
        out = {}
        for t in HIS_TABLES:
            cur.execute(f"select count(*) from his.{t}")
            out[t] = cur.fetchone()[0]
    conn.rollback()
    return out


def generate(conn, config: SimConfig) -> dict[str, int]:
    """(Re)create the source: empty his.* and sim.*, write the history; rows per his table."""
    if config.history_days < 1:
        raise ValueError("SimConfig.history_days must be at least 1")
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
            tables = [f"his.{t}" for t in HIS_TABLES] + [
                "sim.clock",
                "sim.defect_manifest",
                "sim.change_log",
                "sim.person_truth",
            ]
            cur.execute(f"truncate {', '.join(tables)} restart identity")
            keys = _drop_primary_keys(cur)  # one index build after the load beats 3M inserts
            writer = _Writer(cur)
            cat = _Catalogue.build()
            ctx = _static_setup(config, cat, writer)
            last_day = config.first_day + timedelta(days=config.history_days - 1)
            for offset in range(config.history_days):
                day = config.first_day + timedelta(days=offset)
                out = _simulate_day(
                    ctx, day, last_day, _rng(config.seed, _day_ord(day), _STREAM_DAY)
                )
                writer.write(out)
            writer.flush()
            for stmt in keys:
                cur.execute(stmt)
            cur.execute(
                "insert into sim.clock (seed, scale, first_day, current_day, defect_rate) "
                "values (%s, %s, %s, %s, %s)",
                (config.seed, config.scale, config.first_day, last_day, config.defect_rate),
            )
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    counts = table_counts(conn)
    log.info("HIS source generated: %s", counts)
    return counts


def advance_day(conn) -> dict[str, int]:
    """Simulate one more day: new activity, discharges and corrections of earlier records."""
    try:
        with conn.cursor() as cur:
            cur.execute("select seed, scale, first_day, current_day, defect_rate from sim.clock")
            row = cur.fetchone()
            if row is None:
                raise RuntimeError("sim.clock is empty: run hdp_sim.his.generate() first")
            seed, scale, first_day, current_day, defect_rate = row
            # a database generated by an older version logged integer keys only
            cur.execute("alter table sim.change_log alter column record_id type text")
            day = current_day + timedelta(days=1)
            cfg = SimConfig(seed, scale, (current_day - first_day).days + 1, first_day, defect_rate)
            ctx = _load_context(cur, cfg)
            out = _simulate_day(ctx, day, day, _rng(seed, _day_ord(day), _STREAM_DAY))
            fix_rng = _rng(seed, _day_ord(day), _STREAM_FIX)
            changes: list[tuple] = []
            counts = {f"new_{t}": out.count(t) for t in HIS_TABLES[2:]}
            counts["discharged_inpatient_admissions"] = _discharge_open(
                cur, ctx, day, fix_rng, out, changes
            )
            counts |= _correct(cur, ctx, day, fix_rng, out, changes)
            counts |= _change_reference(
                _Fixer(cur, ctx, day, _rng(seed, _day_ord(day), _STREAM_CHANGE), changes)
            )
            for table, chunks in out.tables.items():
                if table.startswith("sim."):
                    continue
                for rows in chunks:
                    for rid in rows[COLUMNS[table][0]].tolist():
                        changes.append((str(day), "new", table, rid, None))
            writer = _Writer(cur)
            writer.write(out)
            writer.flush()
            _copy_tuples(cur, "sim.change_log", changes)
            counts["defects"] = len(out.manifest)
            cur.execute("update sim.clock set current_day = %s", (day,))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    log.info("HIS advanced to the next simulated day: %s", counts)
    return counts


# --------------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Buffers rows per table and COPYs them in chunks."""

    def __init__(self, cur, chunk_rows: int = 200_000) -> None:
        self.cur = cur
        self.chunk_rows = chunk_rows
        self.buffers: dict[str, list[dict[str, np.ndarray]]] = {}
        self.manifest: list[tuple] = []
        # one background thread runs the COPYs (in submission order) while the next days are
        # simulated: the server's work overlaps numpy's instead of following it
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future] = []

    def write(self, out: _Out) -> None:
        for table, chunks in out.tables.items():
            self.buffers.setdefault(table, []).extend(chunks)
            if sum(len(c[COLUMNS[table][0]]) for c in self.buffers[table]) >= self.chunk_rows:
                self._flush_table(table)
        self.manifest.extend(out.manifest)

    def _flush_table(self, table: str) -> None:
        chunks = self.buffers.pop(table, [])
        if not chunks:
            return
        cols = COLUMNS[table]
        data = []
        for c in cols:
            arr = np.concatenate([ch[c] for ch in chunks])
            data.append(money(arr) if c in MONEY_COLUMNS else arr)
        name = table if table.startswith("sim.") else f"his.{table}"
        self.pending.append(
            self.pool.submit(copy_rows, self.cur, name, cols, data, self.chunk_rows)
        )

    def flush(self) -> None:
        for table in list(self.buffers):
            self._flush_table(table)
        try:
            for job in self.pending:
                job.result()
        finally:
            self.pending = []
            self.pool.shutdown(wait=True)
        _copy_tuples(self.cur, "sim.defect_manifest", self.manifest)
        self.manifest = []


def _drop_primary_keys(cur) -> list[str]:
    """Drop the primary keys of his.* and sim.person_truth; returns statements restoring them."""
    cur.execute(
        "select format('alter table %I.%I add constraint %I ', n.nspname, t.relname, c.conname)"
        " || pg_get_constraintdef(c.oid), "
        "format('alter table %I.%I drop constraint %I', n.nspname, t.relname, c.conname) "
        "from pg_constraint c join pg_class t on t.oid = c.conrelid "
        "join pg_namespace n on n.oid = t.relnamespace "
        "where c.contype = 'p' "
        "and (n.nspname = 'his' or (n.nspname, t.relname) = ('sim', 'person_truth')) "
        "order by n.nspname, t.relname"
    )
    rows = cur.fetchall()
    for _, drop in rows:
        cur.execute(drop)
    return [add for add, _ in rows]


def _copy_tuples(cur, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = COLUMNS[table]
    data = []
    for i, c in enumerate(cols):
        values = [r[i] for r in rows]
        if c == "record_id":  # text: a department's key is its code
            values = [str(v) for v in values]
        data.append(np.asarray(values, dtype=object))
    copy_rows(cur, table, cols, data)


# --------------------------------------------------------------------------------------------
# Static set-up (generate only): departments, doctors, the registry before the first day


def _static_setup(cfg: SimConfig, cat: _Catalogue, writer: _Writer) -> _Context:
    out = _Out()
    day0 = cfg.first_day
    depts = ref.departments()
    n = len(depts)
    created = np.datetime64(datetime(day0.year - 15, 1, 1, 8), "s")
    out.add(
        "departments",
        {
            "dept_code": np.asarray([d.code for d in depts]),
            "dept_name": np.asarray([d.name for d in depts]),
            "parent_code": np.asarray([d.parent for d in depts], dtype=object),
            "dept_type": np.asarray([d.dept_type for d in depts]),
            "is_active": np.asarray([d.is_active for d in depts]),
            "created_at": np.full(n, created),
            "updated_at": np.full(n, _ts(day0 - timedelta(days=1), 8 * 3600)),
        },
    )
    doctors = _doctors(cfg, cat, out)
    writer.write(out)
    pool = _Pool()
    ctx = _Context(cfg, cat, doctors, pool, {})
    reg = _registry(ctx)
    writer.write(reg)
    ctx.next_ids = {
        "patient": len(pool) + 1,
        "person": len(pool) + 1,
        "visit": 1,
        "admission": 1,
        "diagnosis": 1,
    }
    return ctx


def _doctors(cfg: SimConfig, cat: _Catalogue, out: _Out) -> _Doctors:
    rng = _rng(cfg.seed, _STREAM_STAFF)
    weight = np.asarray([d.op_weight + d.ip_weight for d in cat.depts])
    per_dept = np.maximum(3, np.rint(DOCTORS * cfg.scale * weight / weight.sum())).astype(int)
    tech = [d for d in ref.departments() if d.dept_type == "medical_technology"]
    n_tech = max(1, round(DOCTORS * cfg.scale * 0.02))
    dept_idx = np.concatenate(
        [np.repeat(np.arange(len(cat.depts)), per_dept), np.full(n_tech * len(tech), -1)]
    )
    dept_code = np.concatenate(
        [np.repeat(cat.dept_codes, per_dept), np.repeat([d.code for d in tech], n_tech)]
    ).astype(object)
    n = len(dept_idx)
    # position within the department: the first two (a 主任医师 and a 主治医师) never leave,
    # so every department always has a doctor and an attending
    first = np.concatenate([[0], np.flatnonzero(dept_code[1:] != dept_code[:-1]) + 1])
    pos = np.arange(n) - np.repeat(first, np.diff(np.append(first, n)))
    rank = rng.choice(len(TITLES), size=n, p=TITLE_SHARES)
    rank[pos == 0], rank[pos == 1] = 0, 2
    is_male = rng.random(n) < 0.55
    years = (
        np.asarray([25.0, 17.0, 9.0, 2.5])[rank]
        + rng.normal(0, 1, n) * np.asarray([6.0, 4.0, 3.0, 1.5])[rank]
    )
    d0 = _day_ord(cfg.first_day)
    hired_on = d0 - 30 - (np.clip(years, 0, 38) * 365.25).astype(np.int64)
    left_on = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    movable = np.flatnonzero(pos >= 2)
    leavers = _pick(rng, movable, 0.05)
    during = rng.random(len(leavers)) < 0.6
    left_on[leavers] = np.where(
        during & (cfg.history_days > 1),
        d0 + 1 + rng.integers(0, max(1, cfg.history_days - 1), size=len(leavers)),
        d0 - rng.integers(30, 700, size=len(leavers)),
    )
    left_on[leavers] = np.maximum(left_on[leavers], hired_on[leavers] + 30)
    has_left = left_on < np.iinfo(np.int32).max
    upd_day = np.where(has_left, left_on, hired_on)
    updated_at = (upd_day.astype("datetime64[D]").astype("datetime64[s]")) + np.where(
        has_left, 17 * 3600, 9 * 3600
    ).astype("timedelta64[s]")
    doctor_id = np.arange(1001, 1001 + n, dtype=np.int64)
    orphan = _pick(rng, movable, cfg.defect_rate)
    if not len(orphan) and cfg.defect_rate > 0 and len(movable):
        orphan = np.sort(rng.choice(movable, size=1, replace=False))
    for i in orphan.tolist():
        out.defect(
            str(upd_day[i].astype("datetime64[D]")),
            "orphan_department_ref",
            "doctors",
            doctor_id[i],
            "dept_code",
            dept_code[i],
        )
        dept_code[i] = dept_code[i][:3] + "99"  # a retired code: no department has it
    out.add(
        "doctors",
        {
            "doctor_id": doctor_id,
            "doctor_name": ppl.names(rng, is_male),
            "dept_code": dept_code,
            "title": np.asarray(TITLES)[rank],
            "gender": np.where(is_male, "男", "女"),
            "hired_on": hired_on.astype("datetime64[D]"),
            "left_on": np.where(has_left, left_on.astype("datetime64[D]"), np.datetime64("NaT")),
            "updated_at": updated_at,
        },
    )
    return _Doctors(doctor_id, dept_idx, rank, hired_on, left_on)


def _registry(ctx: _Context) -> _Out:
    """Patients registered during the five years before the first simulated day."""
    cfg = ctx.cfg
    rng = _rng(cfg.seed, _STREAM_REGISTRY)
    n = max(10, round(REGISTRY * cfg.scale))
    d0 = _day_ord(cfg.first_day)
    is_male, birth = ppl.age_and_sex(rng, np.full(n, "any"), d0)
    start = np.maximum(birth, d0 - 5 * 365)
    reg_secs = (start * DAY_SECONDS + rng.random(n) * (d0 - start) * DAY_SECONDS).astype(np.int64)
    order = np.argsort(reg_secs, kind="stable")  # ids follow registration order
    is_male, birth, reg_secs = is_male[order], birth[order], reg_secs[order]
    registered_at = reg_secs.astype("datetime64[s]")
    ids = np.arange(1, n + 1, dtype=np.int64)
    out = _Out()
    rows = _patient_rows(rng, ids, is_male, birth, registered_at)
    ctx.originals = _MemoryOriginals(rows)
    _patient_defects(rng, cfg, out, rows, birth, set())
    out.add("patients", rows)
    out.add("sim.person_truth", _truth(ids, ids, is_male, birth))
    ctx.pool.extend(
        patient_id=ids,
        is_male=is_male,
        birth=birth,
        weight=_visit_propensity(ids, cfg.seed),
        person_id=ids,
    )
    return out


def _truth(patient_ids, person_ids, is_male, birth) -> dict[str, np.ndarray]:
    return {
        "patient_id": patient_ids,
        "person_id": person_ids,
        "sex": np.where(is_male, "M", "F"),
        "birth_date": birth.astype("datetime64[D]"),
    }


def _patient_rows(rng, ids, is_male, birth, registered_at) -> dict[str, np.ndarray]:
    rows = ppl.people(rng, is_male, birth)
    rows = {k: v.astype(object) for k, v in rows.items()}
    return {
        "patient_id": ids,
        "mrn": ppl.zfill((ids + 100_000).astype(str), 10),
        **rows,
        "registered_at": registered_at,
        "updated_at": registered_at,
    }


class _MemoryOriginals:
    """Identity columns of registrations held in memory (generate)."""

    COLUMNS = ("name", "id_card_no", "phone", "address")

    def __init__(self, rows: dict[str, np.ndarray]) -> None:
        self.chunks: list[dict[str, np.ndarray]] = []
        self.add(rows)

    def add(self, rows: dict[str, np.ndarray]) -> None:
        cols = ("patient_id", *self.COLUMNS)
        self.chunks.append({c: np.asarray(rows[c]).copy() for c in cols})

    def get(self, patient_ids: np.ndarray) -> dict[str, np.ndarray]:
        # ids are issued in sequence, so each chunk holds one contiguous range: no concatenation
        starts = np.asarray([int(ch["patient_id"][0]) for ch in self.chunks])
        which = np.searchsorted(starts, patient_ids, side="right") - 1
        pairs = list(zip(which.tolist(), (patient_ids - starts[which]).tolist(), strict=True))
        return {
            c: np.asarray([self.chunks[w][c][i] for w, i in pairs], dtype=object)
            for c in self.COLUMNS
        }


class _DbOriginals:
    """Identity columns of registrations read from his.patients (advance_day)."""

    def __init__(self, cur) -> None:
        self.cur = cur

    def add(self, rows) -> None:
        pass

    def get(self, patient_ids: np.ndarray) -> dict[str, np.ndarray]:
        # the values before any defect: a person re-registers with their real card and name
        self.cur.execute(
            "select p.patient_id, coalesce(n.clean_value, p.name), "
            "coalesce(c.clean_value, p.id_card_no), p.phone, p.address from his.patients p "
            "left join sim.defect_manifest n on n.table_name = 'patients' "
            "and n.record_id = p.patient_id and n.column_name = 'name' "
            "left join sim.defect_manifest c on c.table_name = 'patients' "
            "and c.record_id = p.patient_id and c.column_name = 'id_card_no' "
            "where p.patient_id = any(%s)",
            (patient_ids.tolist(),),
        )
        found = {r[0]: r[1:] for r in self.cur.fetchall()}
        rows = [found[i] for i in patient_ids.tolist()]
        return {
            c: np.asarray([r[k] for r in rows], dtype=object)
            for k, c in enumerate(("name", "id_card_no", "phone", "address"))
        }


# --------------------------------------------------------------------------------------------
# Patient defects


def _fullwidth(name: str, rng: np.random.Generator) -> str:
    i = ppl.given_name_start(name)
    return name[:i] + "\u3000" + name[i:] if rng.random() < 0.7 else name + "\u3000"


def _spaced(name: str, rng: np.random.Generator) -> str:
    i = ppl.given_name_start(name)
    return [f" {name}", f"{name} ", f"{name}  ", f"{name[:i]} {name[i:]}"][rng.integers(4)]


def _patient_defects(rng, cfg: SimConfig, out: _Out, rows, birth: np.ndarray, skip) -> None:
    """Inject per-row defects into new patient rows; each row gets at most one kind."""
    ids = rows["patient_id"]
    days = rows["registered_at"].astype("datetime64[D]").astype(str)
    free = np.asarray([i not in skip for i in range(len(ids))], dtype=bool)
    rate = cfg.defect_rate

    def take() -> np.ndarray:
        chosen = _pick(rng, np.flatnonzero(free), rate)
        free[chosen] = False
        return chosen

    for i in take():
        clean = rows["name"][i]
        rows["name"][i] = _fullwidth(clean, rng)
        out.defect(days[i], "fullwidth_name", "patients", ids[i], "name", clean)
    for i in take():
        clean = rows["name"][i]
        rows["name"][i] = _spaced(clean, rng)
        out.defect(days[i], "stray_whitespace", "patients", ids[i], "name", clean)
    for i in take():
        clean = rows["gender"][i]
        male = clean in ("1", "男", "M")
        choices = ["0", "9", "U", "未知", "", "m" if male else "f"]
        rows["gender"][i] = choices[rng.integers(len(choices))]
        out.defect(days[i], "nonstandard_gender_code", "patients", ids[i], "gender", clean)
    for i in take():
        clean = rows["birth_date"][i]
        y, m, d = clean.split("-")
        rows["birth_date"][i] = f"{y}/{int(m)}/{int(d)}" if rng.random() < 0.5 else y + m + d
        out.defect(days[i], "nonstandard_date_format", "patients", ids[i], "birth_date", clean)
    for i in take():
        clean = rows["birth_date"][i]
        b = date(1970, 1, 1) + timedelta(days=int(birth[i]))
        reg_year = int(days[i][:4])
        year = b.year + 100 if b.year < 2000 else b.year + 70  # 1985 -> 2085: century typo
        if year <= reg_year + 10:
            year = reg_year + 20
        day_of_month = min(b.day, 28) if b.month == 2 else b.day
        rows["birth_date"][i] = date(year, b.month, day_of_month).isoformat()
        out.defect(days[i], "future_birth_date", "patients", ids[i], "birth_date", clean)
    for i in take():
        clean = rows["id_card_no"][i]
        wrong = [c for c in "0123456789X" if c != clean[17]]
        rows["id_card_no"][i] = clean[:17] + wrong[rng.integers(len(wrong))]
        out.defect(days[i], "invalid_id_card_checksum", "patients", ids[i], "id_card_no", clean)


# --------------------------------------------------------------------------------------------
# One simulated day


def _hours(rng, n: int, emergency: np.ndarray, inpatient: np.ndarray) -> np.ndarray:
    """Second of the day of each encounter: clinic sessions, round-the-clock emergency."""
    morning = rng.random(n) < 0.68
    clinic = np.where(
        morning,
        np.clip(rng.normal(9.6, 1.0, n), 7.5, 11.95),
        np.clip(rng.normal(14.8, 0.9, n), 13.5, 17.4),
    )
    ed = np.where(rng.random(n) < 0.85, rng.normal(14.0, 4.5, n) % 24, rng.random(n) * 24)
    ward = np.where(rng.random(n) < 0.8, np.clip(rng.normal(10.5, 1.8, n), 7.5, 18), ed)
    hours = np.where(inpatient, ward, np.where(emergency, ed, clinic))
    return np.clip((hours * 3600).astype(np.int64), 0, DAY_SECONDS - 1)


def _population_masks(pool: dict[str, np.ndarray], day_ord: int) -> dict[str, np.ndarray]:
    age = day_ord - pool["birth"]
    female = ~pool["is_male"]
    year = ppl.DAYS_PER_YEAR
    return {
        "newborn": age < 28,
        "child": age < 14 * year,
        "obstetric": female & (age >= 20 * year) & (age < 45 * year),
        "female": female & (age >= 16 * year),
        "adult": age >= 14 * year,
        "any": np.ones(len(age), dtype=bool),
    }


# One day reads top to bottom (volumes, patients, visits, admissions, diagnoses, defects);
# splitting it further would scatter the shared per-day arrays across many signatures.
def _simulate_day(  # noqa: PLR0915
    ctx: _Context, day: date, horizon: date, rng: np.random.Generator
) -> _Out:
    """All new rows of one day; admissions discharged by `horizon` are written discharged."""
    cfg, cat = ctx.cfg, ctx.cat
    out = _Out()
    d_ord = _day_ord(day)
    dow = day.weekday()
    resp = _respiratory_factor(day)
    holiday = _holiday_factor(day)
    general = 1.0 + 0.06 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 20) / 365.25)
    resp_mult = np.where(cat.respiratory, resp, 1.0)
    op_lam = (
        VISITS_PER_DAY
        * cfg.scale
        * cat.op_share
        * general
        * resp_mult
        * np.where(cat.emergency, ED_WEEK[dow], OP_WEEK[dow] * holiday)
    )
    ip_lam = (
        ADMISSIONS_PER_DAY
        * cfg.scale
        * cat.ip_share
        * IP_WEEK[dow]
        * np.sqrt(resp_mult)
        * (1 + (holiday - 1) * 0.6)
    )
    op_n, ip_n = rng.poisson(op_lam), rng.poisson(ip_lam)
    dept = np.concatenate(
        [np.repeat(np.arange(len(op_n)), op_n), np.repeat(np.arange(len(ip_n)), ip_n)]
    )
    is_ip = np.concatenate([np.zeros(op_n.sum(), bool), np.ones(ip_n.sum(), bool)])
    n = len(dept)
    secs = _hours(rng, n, cat.emergency[dept], is_ip)
    pop = cat.population[dept]

    # --- who comes: returning registrations, first-timers and re-registered people
    pool = ctx.pool.arrays()
    masks = _population_masks(pool, d_ord) if len(ctx.pool) else {}
    is_new = rng.random(n) < np.where(is_ip, NEW_PATIENT_SHARE["IP"], NEW_PATIENT_SHARE["OP"])
    is_dup = np.zeros(n, bool)
    is_dup[_pick(rng, np.flatnonzero(is_new), cfg.defect_rate)] = True
    from_pool = np.full(n, -1, dtype=np.int64)
    for g in ppl.POPULATIONS:
        need = np.flatnonzero((pop == g) & (~is_new | is_dup))
        if not len(need):
            continue
        cand = np.flatnonzero(masks[g]) if masks else np.zeros(0, np.int64)
        if not len(cand):
            is_new[need], is_dup[need] = True, False
            continue
        w = pool["weight"][cand]
        hit = np.searchsorted(np.cumsum(w), rng.random(len(need)) * w.sum(), side="right")
        from_pool[need] = cand[np.minimum(hit, len(cand) - 1)]
    new_idx = np.flatnonzero(is_new)
    patient_id = np.zeros(n, dtype=np.int64)
    birth = np.zeros(n, dtype=np.int64)
    returning = np.flatnonzero(~is_new)
    if len(returning):
        patient_id[returning] = pool["patient_id"][from_pool[returning]]
        birth[returning] = pool["birth"][from_pool[returning]]
    if len(new_idx):
        _register(ctx, rng, out, day, new_idx, secs, pop, is_dup, from_pool, patient_id, birth)

    # --- outpatient visits
    op = np.flatnonzero(~is_ip)
    op = _unique_times(op, patient_id, secs)
    op = op[np.argsort(secs[op], kind="stable")]
    visit_ids = np.arange(ctx.next_ids["visit"], ctx.next_ids["visit"] + len(op), dtype=np.int64)
    ctx.next_ids["visit"] += len(op)
    doc_ids, doc_rank, off, cnt = ctx.doctors.on_duty(d_ord, len(cat.depts))
    vd = dept[op]
    pick = off[vd] + (rng.random(len(op)) * cnt[vd]).astype(np.int64)
    v_doctor, v_rank = doc_ids[pick], doc_rank[pick]
    ed = cat.emergency[vd]
    vtype = np.where(ed, "急诊", np.where(v_rank <= 1, "专家", "普通"))
    cancelled = rng.random(len(op)) < CANCEL_RATE
    reg_fee = np.where(
        vtype == "专家",
        rng.choice([5000, 8000, 10000], len(op)),
        np.where(ed, 3000, rng.choice([1000, 1500, 2000], len(op))),
    )
    charges = np.minimum(np.rint(15_000 * np.exp(rng.normal(0, 1.0, len(op)))), 3_000_000)
    fee = np.where(cancelled, 0, reg_fee + charges).astype(np.int64)
    v_secs = secs[op]
    visits = {
        "visit_id": visit_ids,
        "patient_id": patient_id[op].copy(),
        "dept_code": cat.dept_codes[vd],
        "doctor_id": v_doctor,
        "visit_at": _ts(day, v_secs),
        "visit_type": vtype,
        "fee": fee,
        "status": np.where(cancelled, "cancelled", "completed"),
        "updated_at": _ts(
            day,
            v_secs
            + np.where(
                cancelled, rng.integers(60, 3600, len(op)), rng.integers(600, 7200, len(op))
            ),
        ),
    }

    # --- admissions
    ip = np.flatnonzero(is_ip)
    ip = ip[np.argsort(secs[ip], kind="stable")]
    adm_ids = np.arange(
        ctx.next_ids["admission"], ctx.next_ids["admission"] + len(ip), dtype=np.int64
    )
    ctx.next_ids["admission"] += len(ip)
    s_ids, _, s_off, s_cnt = ctx.doctors.on_duty(d_ord, len(cat.depts), senior_only=True)
    ad = dept[ip]
    a_pick = s_off[ad] + (rng.random(len(ip)) * s_cnt[ad]).astype(np.int64)
    ward = np.asarray(
        [w[rng.integers(len(w))] if len(w) else "" for w in (cat.wards[d] for d in ad)],
        dtype=object,
    )
    bed = ppl.zfill(rng.integers(1, 46, len(ip)).astype(str), 2)
    bed = np.where(rng.random(len(ip)) < 0.03, np.strings.add("加", bed), bed)
    a_secs = secs[ip]
    admitted_at = _ts(day, a_secs)
    los = _length_of_stay(adm_ids, cfg.seed)
    discharged = d_ord + los <= _day_ord(horizon)
    adm = {
        "admission_id": adm_ids,
        "patient_id": patient_id[ip].copy(),
        "dept_code": cat.dept_codes[ad],
        "attending_doctor_id": s_ids[a_pick],
        "ward": ward,
        "bed_no": bed,
        "admitted_at": admitted_at,
        "discharged_at": np.full(len(ip), np.datetime64("NaT"), dtype="datetime64[s]"),
        "discharge_status": np.full(len(ip), None, dtype=object),
        "total_cost": np.full(len(ip), MONEY_NULL, dtype=np.int64),
        "updated_at": _ts(day, a_secs + rng.integers(300, 3600, len(ip))),
    }
    di = np.flatnonzero(discharged)
    if len(di):
        _apply_discharge(ctx, rng, out, adm, di, ad[di], d_ord + los[di])

    # --- diagnoses of completed visits and of admissions
    enc_idx = np.concatenate([op[~cancelled], ip])
    enc_type = np.concatenate([np.full((~cancelled).sum(), "OP"), np.full(len(ip), "IP")])
    enc_id = np.concatenate([visit_ids[~cancelled], adm_ids])
    enc_secs = np.concatenate(
        [
            v_secs[~cancelled] + rng.integers(180, 1800, (~cancelled).sum()),
            a_secs + rng.integers(1800, 14_400, len(ip)),
        ]
    )
    age_years = (d_ord - birth[enc_idx]) / ppl.DAYS_PER_YEAR
    dx = _diagnoses(
        ctx, rng, day, resp, dept[enc_idx], enc_type, enc_id, enc_secs, age_years, pop[enc_idx]
    )

    # --- defects of the day's rows
    _encounter_defects(ctx, rng, out, day, visits, adm, dx)
    out.add("outpatient_visits", visits)
    out.add("inpatient_admissions", adm)
    out.add("diagnoses", dx)
    return out


def _unique_times(op: np.ndarray, patient_id: np.ndarray, secs: np.ndarray) -> np.ndarray:
    """Nudge times so no patient has two visits at the same second (that is a duplicate_visit)."""
    for _ in range(10):
        key = patient_id[op] * DAY_SECONDS + secs[op]
        _, first = np.unique(key, return_index=True)
        dup = np.setdiff1d(np.arange(len(op)), first)
        if not len(dup):
            break
        secs[op[dup]] = np.minimum(secs[op[dup]] + 1, DAY_SECONDS - 1)
    return op


def _register(  # noqa: PLR0915
    ctx, rng, out, day, new_idx, secs, pop, is_dup, from_pool, patient_id, births
) -> None:
    """Registrations of first-time patients and of re-registered (duplicate) people."""
    cfg = ctx.cfg
    d_ord = _day_ord(day)
    pool = ctx.pool.arrays()
    m = len(new_idx)
    dup = is_dup[new_idx]
    reg_secs = np.maximum(secs[new_idx] - rng.integers(120, 2400, m), 0)
    order = np.argsort(reg_secs, kind="stable")
    new_idx, dup, reg_secs = new_idx[order], dup[order], reg_secs[order]
    ids = np.arange(ctx.next_ids["patient"], ctx.next_ids["patient"] + m, dtype=np.int64)
    ctx.next_ids["patient"] += m
    is_male, birth = ppl.age_and_sex(rng, pop[new_idx], d_ord)
    person = np.zeros(m, dtype=np.int64)
    fresh = np.flatnonzero(~dup)
    person[fresh] = np.arange(ctx.next_ids["person"], ctx.next_ids["person"] + len(fresh))
    ctx.next_ids["person"] += len(fresh)
    di = np.flatnonzero(dup)
    src = from_pool[new_idx[di]]
    if len(di):
        person[di] = pool["person_id"][src]
        is_male[di] = pool["is_male"][src]
        birth[di] = pool["birth"][src]
    registered_at = _ts(day, reg_secs)
    rows = _patient_rows(rng, ids, is_male, birth, registered_at)
    if len(di):
        orig = ctx.originals.get(pool["patient_id"][src])
        for k, i in enumerate(di.tolist()):
            rows["id_card_no"][i] = orig["id_card_no"][k]
            if rng.random() < 0.5:
                rows["phone"][i] = orig["phone"][k]
            if rng.random() < 0.7:
                rows["address"][i] = orig["address"][k]
            name = orig["name"][k]
            rows["name"][i] = name
            u = rng.random()
            day_s = str(day)
            if u < 0.3:  # a homophone typed for one character of the given name
                start = ppl.given_name_start(name)
                pos = start + int(rng.integers(max(1, len(name) - start)))
                typo = ref.HOMOPHONES.get(name[pos : pos + 1])
                if typo:
                    rows["name"][i] = name[:pos] + typo + name[pos + 1 :]
            elif u < 0.45:
                rows["name"][i] = _fullwidth(name, rng)
                out.defect(day_s, "fullwidth_name", "patients", ids[i], "name", name)
            elif u < 0.6:
                rows["name"][i] = _spaced(name, rng)
                out.defect(day_s, "stray_whitespace", "patients", ids[i], "name", name)
            out.defect(
                day_s,
                "duplicate_registration",
                "patients",
                ids[i],
                None,
                pool["patient_id"][src[k]],
            )
    ctx.originals.add(rows)
    _patient_defects(rng, cfg, out, rows, birth, set(di.tolist()))
    out.add("patients", rows)
    out.add("sim.person_truth", _truth(ids, person, is_male, birth))
    ctx.pool.extend(
        patient_id=ids,
        is_male=is_male,
        birth=birth,
        weight=_visit_propensity(ids, cfg.seed),
        person_id=person,
    )
    patient_id[new_idx] = ids
    births[new_idx] = birth


def _apply_discharge(ctx, rng, out, adm, rows: np.ndarray, dept_idx, discharge_ord) -> None:
    """Fill the discharge columns of rows `rows` of the admission arrays `adm` (plus defects)."""
    cfg, cat = ctx.cfg, ctx.cat
    ids = adm["admission_id"][rows]
    los = np.maximum(
        1, discharge_ord - adm["admitted_at"][rows].astype("datetime64[D]").astype(np.int64)
    )
    dis_secs = (8.5 * 3600 + _hash01(ids, cfg.seed, 31) * 6 * 3600).astype(np.int64)
    dis_day = discharge_ord.astype("datetime64[D]").astype("datetime64[s]")
    discharged_at = dis_day + dis_secs.astype("timedelta64[s]")
    status_u = _hash01(ids, cfg.seed, 32)
    status = np.asarray(DISCHARGE_STATUS)[
        np.searchsorted(np.cumsum(DISCHARGE_SHARES), status_u * 0.999999)
    ]
    cost = np.rint(
        los * cat.daily_cost[dept_idx] * np.exp(0.35 * _hash_normal(ids, cfg.seed, 33))
    ).astype(np.int64)
    updated_at = dis_day + np.minimum(
        dis_secs + 600 + (_hash01(ids, cfg.seed, 35) * 5400).astype(np.int64), DAY_SECONDS - 1
    ).astype("timedelta64[s]")
    free = np.ones(len(rows), bool)
    days = discharged_at.astype("datetime64[D]").astype(str)
    chosen = _pick(rng, np.flatnonzero(free), cfg.defect_rate)
    free[chosen] = False
    for i in chosen.tolist():
        out.defect(
            days[i],
            "negative_fee",
            "inpatient_admissions",
            ids[i],
            "total_cost",
            money(cost[i : i + 1])[0],
        )
        cost[i] = -cost[i]
    chosen = _pick(rng, np.flatnonzero(free), cfg.defect_rate)
    for i in chosen.tolist():
        out.defect(
            days[i],
            "discharge_before_admission",
            "inpatient_admissions",
            ids[i],
            "discharged_at",
            str(discharged_at[i]).replace("T", " "),
        )
        back = int(rng.integers(3600, 3 * DAY_SECONDS))
        discharged_at[i] = adm["admitted_at"][rows[i]] - np.timedelta64(back, "s")
    adm["discharged_at"][rows] = discharged_at
    adm["discharge_status"][rows] = status
    adm["total_cost"][rows] = cost
    adm["updated_at"][rows] = updated_at


def _diagnoses(ctx, rng, day, resp, dept, enc_type, enc_id, enc_secs, age_years, pop):
    cat = ctx.cat
    n = len(dept)
    is_ip = enc_type == "IP"
    k = np.where(
        is_ip,
        rng.choice([1, 2, 3], n, p=[0.25, 0.40, 0.35]),
        rng.choice([1, 2, 3], n, p=[0.55, 0.30, 0.15]),
    )
    slots = np.full((n, 3), -1, dtype=np.int64)
    season = np.where(cat.seasonal_code, resp, 1.0)
    for d in range(len(cat.depts)):
        idx = np.flatnonzero(dept == d)
        if not len(idx):
            continue
        codes, w_op, w_ip = cat.dx[d]
        for setting, base in (("OP", w_op), ("IP", w_ip)):
            sub = idx[enc_type[idx] == setting]
            if not len(sub):
                continue
            w = base * season[codes]
            if w.sum() <= 0:
                w = (w_op + w_ip) * season[codes]
            p = w / w.sum()
            for s in range(3):
                slots[sub, s] = codes[rng.choice(len(codes), len(sub), p=p)]
    c_codes, c_op, c_ip = cat.comorbid
    adult = (age_years >= 40) & ~np.isin(pop, ["child", "newborn", "obstetric"])
    for s in (1, 2):
        use = adult & (rng.random(n) < 0.6)
        pick_ip = c_codes[rng.choice(len(c_codes), n, p=c_ip / c_ip.sum())]
        pick_op = c_codes[rng.choice(len(c_codes), n, p=c_op / c_op.sum())]
        slots[use, s] = np.where(is_ip, pick_ip, pick_op)[use]
    keep = np.arange(3)[None, :] < k[:, None]
    keep[:, 1] &= slots[:, 1] != slots[:, 0]
    keep[:, 2] &= (slots[:, 2] != slots[:, 0]) & (slots[:, 2] != slots[:, 1])
    enc_rep = np.repeat(np.arange(n), 3).reshape(n, 3)
    slot_rep = np.tile(np.arange(3), (n, 1))
    e, s = enc_rep[keep], slot_rep[keep]
    code_idx = slots[keep]
    ids = np.arange(ctx.next_ids["diagnosis"], ctx.next_ids["diagnosis"] + len(e), dtype=np.int64)
    ctx.next_ids["diagnosis"] += len(e)
    at = _ts(day, enc_secs[e] + s * 60)
    return {
        "diagnosis_id": ids,
        "encounter_type": enc_type[e],
        "encounter_id": enc_id[e].copy(),
        "icd10_code": cat.codes[code_idx].astype(object),
        "diagnosis_name": cat.code_names[code_idx],
        "is_primary": s == 0,
        "diagnosed_at": at,
        "updated_at": at,
    }


def _encounter_defects(ctx, rng, out, day, visits, adm, dx) -> None:
    rate = ctx.cfg.defect_rate
    day_s = str(day)
    # visits: each row at most one kind; duplicates are copies of clean rows
    free = np.ones(len(visits["visit_id"]), bool)

    def take(mask=None) -> np.ndarray:
        cand = np.flatnonzero(free if mask is None else free & mask)
        chosen = _pick(rng, cand, rate)
        free[chosen] = False
        return chosen

    dups = take()
    i = take()
    out.defect(
        day_s,
        "orphan_patient_ref",
        "outpatient_visits",
        visits["visit_id"][i],
        "patient_id",
        visits["patient_id"][i],
    )
    visits["patient_id"][i] = ORPHAN_ID_BASE + visits["visit_id"][i]
    i = take(visits["fee"] > 0)
    out.defect(
        day_s,
        "negative_fee",
        "outpatient_visits",
        visits["visit_id"][i],
        "fee",
        money(visits["fee"][i]),
    )
    visits["fee"][i] = -visits["fee"][i]
    if len(dups):
        copy = {c: v[dups].copy() for c, v in visits.items()}
        new_ids = np.arange(
            ctx.next_ids["visit"], ctx.next_ids["visit"] + len(dups), dtype=np.int64
        )
        ctx.next_ids["visit"] += len(dups)
        copy["visit_id"] = new_ids
        copy["updated_at"] = np.minimum(
            copy["updated_at"] + np.timedelta64(37, "s"), _ts(day, DAY_SECONDS - 1)
        )
        out.defect(
            day_s, "duplicate_visit", "outpatient_visits", new_ids, None, visits["visit_id"][dups]
        )
        for c in visits:
            visits[c] = np.concatenate([visits[c], copy[c]])
    # admissions (discharge-time defects are injected with the discharge)
    i = _pick(rng, np.arange(len(adm["admission_id"])), rate)
    out.defect(
        day_s,
        "orphan_patient_ref",
        "inpatient_admissions",
        adm["admission_id"][i],
        "patient_id",
        adm["patient_id"][i],
    )
    adm["patient_id"][i] = ORPHAN_ID_BASE + adm["admission_id"][i]
    # diagnoses
    free = np.ones(len(dx["diagnosis_id"]), bool)
    i = take()
    out.defect(
        day_s,
        "orphan_encounter_ref",
        "diagnoses",
        dx["diagnosis_id"][i],
        "encounter_id",
        dx["encounter_id"][i],
    )
    dx["encounter_id"][i] = ORPHAN_ID_BASE + dx["diagnosis_id"][i]
    for j in take().tolist():
        clean = dx["icd10_code"][j]
        variants = [clean.lower(), f" {clean} ", f"{clean} "]
        if "." in clean:
            variants += [clean.replace(".", ""), clean.replace(".", "")]
        dx["icd10_code"][j] = variants[rng.integers(len(variants))]
        out.defect(
            day_s, "nonstandard_icd_format", "diagnoses", dx["diagnosis_id"][j], "icd10_code", clean
        )


# --------------------------------------------------------------------------------------------
# advance_day: state from the database, discharges, corrections


def _load_context(cur, cfg: SimConfig) -> _Context:
    cat = _Catalogue.build()
    code_to_idx = {c: i for i, c in enumerate(cat.dept_codes.tolist())}
    cur.execute(
        "select doctor_id, dept_code, title, hired_on - date '1970-01-01', "
        "coalesce(left_on - date '1970-01-01', 2147483647) from his.doctors order by doctor_id"
    )
    rows = cur.fetchall()
    rank = {t: i for i, t in enumerate(TITLES)}
    doctors = _Doctors(
        np.asarray([r[0] for r in rows], dtype=np.int64),
        np.asarray([code_to_idx.get(r[1], -1) for r in rows], dtype=np.int64),
        np.asarray([rank.get(r[2], 3) for r in rows], dtype=np.int64),
        np.asarray([r[3] if r[3] is not None else -(10**6) for r in rows], dtype=np.int64),
        np.asarray([r[4] for r in rows], dtype=np.int64),
    )
    cur.execute(
        "select patient_id, person_id, sex = 'M', birth_date - date '1970-01-01' "
        "from sim.person_truth order by patient_id"
    )
    rows = cur.fetchall()
    pool = _Pool()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    pool.extend(
        patient_id=ids,
        is_male=np.asarray([r[2] for r in rows], dtype=bool),
        birth=np.asarray([r[3] for r in rows], dtype=np.int64),
        weight=_visit_propensity(ids, cfg.seed),
        person_id=np.asarray([r[1] for r in rows], dtype=np.int64),
    )
    next_ids = {}
    for key, sql in (
        ("patient", "select max(patient_id) from his.patients"),
        ("person", "select max(person_id) from sim.person_truth"),
        ("visit", "select max(visit_id) from his.outpatient_visits"),
        ("admission", "select max(admission_id) from his.inpatient_admissions"),
        ("diagnosis", "select max(diagnosis_id) from his.diagnoses"),
    ):
        cur.execute(sql)
        next_ids[key] = (cur.fetchone()[0] or 0) + 1
    return _Context(cfg, cat, doctors, pool, next_ids, _DbOriginals(cur))


def _discharge_open(cur, ctx: _Context, day: date, rng, out: _Out, changes: list) -> int:
    """Discharge the open admissions whose planned stay ends on `day`."""
    cur.execute(
        "select admission_id, dept_code, admitted_at from his.inpatient_admissions "
        "where discharged_at is null order by admission_id"
    )
    rows = cur.fetchall()
    if not rows:
        return 0
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    admitted = np.asarray([r[2] for r in rows], dtype="datetime64[s]")
    d_ord = _day_ord(day)
    due = (
        admitted.astype("datetime64[D]").astype(np.int64) + _length_of_stay(ids, ctx.cfg.seed)
        <= d_ord
    )
    code_to_idx = {c: i for i, c in enumerate(ctx.cat.dept_codes.tolist())}
    dept_idx = np.asarray([code_to_idx.get(r[1], 0) for r in rows], dtype=np.int64)
    sel = np.flatnonzero(due)
    if not len(sel):
        return 0
    adm = {
        "admission_id": ids[sel],
        "admitted_at": admitted[sel],
        "discharged_at": np.full(len(sel), np.datetime64("NaT"), dtype="datetime64[s]"),
        "discharge_status": np.full(len(sel), None, dtype=object),
        "total_cost": np.full(len(sel), MONEY_NULL, dtype=np.int64),
        "updated_at": admitted[sel].copy(),
    }
    _apply_discharge(
        ctx, rng, out, adm, np.arange(len(sel)), dept_idx[sel], np.full(len(sel), d_ord)
    )
    execute_values(
        cur,
        "update his.inpatient_admissions a set discharged_at = f.discharged_at::timestamp, "
        "discharge_status = f.discharge_status, total_cost = f.total_cost::numeric, "
        "updated_at = f.updated_at::timestamp "
        "from (values %s) "
        "as f (admission_id, discharged_at, discharge_status, total_cost, updated_at) "
        "where a.admission_id = f.admission_id",
        list(
            zip(
                adm["admission_id"].tolist(),
                np.datetime_as_string(adm["discharged_at"], unit="s").tolist(),
                adm["discharge_status"].tolist(),
                money(adm["total_cost"]).tolist(),
                np.datetime_as_string(adm["updated_at"], unit="s").tolist(),
                strict=True,
            )
        ),
        page_size=1000,
    )
    changes.extend(
        (str(day), "discharge", "inpatient_admissions", i, None)
        for i in adm["admission_id"].tolist()
    )
    return len(sel)


def _sample_ids(cur, rng, table: str, pk: str, since_sql: str, params, k: int, extra: str = ""):
    """Up to k random, defect-free rows of a table (by primary key range), deterministic."""
    cur.execute(f"select min({pk}), max({pk}) from his.{table} where {since_sql}", params)
    lo, hi = cur.fetchone()
    if lo is None or k <= 0:
        return []
    cand = np.unique(rng.integers(lo, hi + 1, size=min(hi - lo + 1, 4 * k + 10)))
    cur.execute(
        f"select * from his.{table} t where {pk} = any(%s) {extra} and not exists ("
        "select 1 from sim.defect_manifest m where m.table_name = %s and m.record_id = t."
        f"{pk}) order by {pk}",
        (cand.tolist(), table),
    )
    rows = cur.fetchall()
    keep = np.sort(rng.permutation(len(rows))[:k]) if rows else []
    return [rows[i] for i in keep]


class _Fixer:
    """Shared context of one day's corrections: its rng, timestamps and change log."""

    def __init__(self, cur, ctx: _Context, day: date, rng, changes: list) -> None:
        self.cur, self.ctx, self.day, self.rng, self.changes = cur, ctx, day, rng, changes
        self.since = day - timedelta(days=30)

    def stamp(self, n: int) -> list[str]:
        """n increasing times inside the day: later than every earlier updated_at."""
        secs = np.sort(self.rng.integers(8 * 3600, 20 * 3600, n))
        return np.datetime_as_string(_ts(self.day, secs), unit="s").tolist()

    def log(self, table: str, rid, column: str, kind: str = "correction") -> None:
        self.changes.append((str(self.day), kind, table, rid, column))


def _correct(cur, ctx: _Context, day: date, rng, out: _Out, changes: list) -> dict[str, int]:
    """Late corrections of earlier records: visits, diagnoses, patients."""
    fx = _Fixer(cur, ctx, day, rng, changes)
    n_visits = out.count("outpatient_visits")
    return {
        "corrected_outpatient_visits": _correct_visits(fx, max(1, round(0.015 * n_visits))),
        "corrected_diagnoses": _correct_diagnoses(
            fx, max(1, round(0.005 * out.count("diagnoses")))
        ),
        "corrected_patients": _correct_patients(fx, max(1, round(0.01 * n_visits))),
    }


def _correct_visits(fx: _Fixer, k: int) -> int:
    """Doctor substituted, department corrected, or fee changed."""
    cur, rng, day, since, cat = fx.cur, fx.rng, fx.day, fx.since, fx.ctx.cat
    stamp, log_change = fx.stamp, fx.log
    rows = _sample_ids(
        cur,
        rng,
        "outpatient_visits",
        "visit_id",
        "visit_at >= %s and visit_at < %s",
        (since, day),
        k,
        # a re-sent visit and its original must stay identical (the duplicate's clean_value
        # names the original); no other two visits share patient and time (_unique_times)
        "and status = 'completed' and t.visit_id not in (select clean_value::bigint "
        "from sim.defect_manifest where kind = 'duplicate_visit')",
    )
    doc_ids, _, off, cnt = fx.ctx.doctors.on_duty(_day_ord(day), len(cat.depts))
    code_to_idx = {c: i for i, c in enumerate(cat.dept_codes.tolist())}
    fixes, when = [], stamp(len(rows))
    for (vid, _pid, dcode, doctor, _at, _vt, fee, _st, _up), ts in zip(rows, when, strict=True):
        u = rng.random()
        d = code_to_idx.get(dcode)
        if u < 0.6 and d is not None:
            if u < 0.2:  # registered at the wrong clinic: another department of the division
                same = np.flatnonzero((cat.division == cat.division[d]) & (cnt > 0))
                same = same[same != d]
                if len(same):
                    d = int(same[rng.integers(len(same))])
            choices = doc_ids[off[d] : off[d] + cnt[d]]
            choices = choices[choices != doctor]
            if len(choices):
                new_doc = int(choices[rng.integers(len(choices))])
                new_code = str(cat.dept_codes[d])
                fixes.append((vid, new_code, new_doc, str(fee), ts))
                if new_code != dcode:
                    log_change("outpatient_visits", vid, "dept_code")
                log_change("outpatient_visits", vid, "doctor_id")
                continue
        new_fee = max(1.0, round(float(fee) * float(rng.uniform(0.6, 1.5)), 2))
        fixes.append((vid, dcode, doctor, f"{new_fee:.2f}", ts))
        log_change("outpatient_visits", vid, "fee")
    if fixes:
        execute_values(
            cur,
            "update his.outpatient_visits v set dept_code = f.dept_code, doctor_id = f.doctor_id, "
            "fee = f.fee::numeric, updated_at = f.updated_at::timestamp "
            "from (values %s) as f (visit_id, dept_code, doctor_id, fee, updated_at) "
            "where v.visit_id = f.visit_id",
            fixes,
        )
    return len(fixes)


def _correct_diagnoses(fx: _Fixer, k: int) -> int:
    """Diagnoses recoded to another code of the same ICD-10 chapter."""
    cur, rng, day, since, cat = fx.cur, fx.rng, fx.day, fx.since, fx.ctx.cat
    stamp, log_change = fx.stamp, fx.log
    rows = _sample_ids(
        cur,
        rng,
        "diagnoses",
        "diagnosis_id",
        "diagnosed_at >= %s and diagnosed_at < %s",
        (since, day),
        k,
    )
    code_idx = {c: i for i, c in enumerate(cat.codes.tolist())}
    fixes, when = [], stamp(len(rows))
    for row, ts in zip(rows, when, strict=True):
        did, code = row[0], row[3]
        i = code_idx.get(code)
        if i is None:
            continue
        same = np.flatnonzero(cat.code_chapter == cat.code_chapter[i])
        same = same[same != i]
        if not len(same):
            continue
        j = int(same[rng.integers(len(same))])
        fixes.append((did, str(cat.codes[j]), str(cat.code_names[j]), ts))
        log_change("diagnoses", did, "icd10_code")
    if fixes:
        execute_values(
            cur,
            "update his.diagnoses d set icd10_code = f.code, diagnosis_name = f.name, "
            "updated_at = f.updated_at::timestamp "
            "from (values %s) as f (diagnosis_id, code, name, updated_at) "
            "where d.diagnosis_id = f.diagnosis_id",
            fixes,
        )
    return len(fixes)


def _correct_patients(fx: _Fixer, k: int) -> int:
    """A new phone number or a new address."""
    cur, rng, day = fx.cur, fx.rng, fx.day
    stamp, log_change = fx.stamp, fx.log
    rows = _sample_ids(cur, rng, "patients", "patient_id", "registered_at < %s", (day,), k)
    fixes, when = [], stamp(len(rows))
    phones = ppl.phones(rng, len(rows)).tolist()
    local = ppl._tables()["local_idx"]
    addrs = ppl.addresses(rng, len(rows), local[rng.integers(len(local), size=len(rows))]).tolist()
    for n, (row, ts) in enumerate(zip(rows, when, strict=True)):
        pid, phone, address = row[0], row[6], row[7]
        if rng.random() < 0.6:
            phone = phones[n]
            log_change("patients", pid, "phone")
        else:
            address = addrs[n]
            log_change("patients", pid, "address")
        fixes.append((pid, phone, address, ts))
    if fixes:
        execute_values(
            cur,
            "update his.patients p set phone = f.phone, address = f.address, "
            "updated_at = f.updated_at::timestamp "
            "from (values %s) as f (patient_id, phone, address, updated_at) "
            "where p.patient_id = f.patient_id",
            fixes,
        )
    return len(fixes)


# Changes of reference data (kind 'change' in sim.change_log): not errors but real events the
# warehouse keeps as history (type-2 dimensions): promotions, transfers, renamed departments.

RENAMED_SUFFIX = "（中心）"


def _change_reference(fx: _Fixer) -> dict[str, int]:
    """Doctors promoted or transferred within their division; now and then a department renamed."""
    cur, rng, day, cat = fx.cur, fx.rng, fx.day, fx.ctx.cat
    cur.execute("select count(*) from his.doctors")
    k = max(1, round(0.002 * cur.fetchone()[0]))
    working = ("left_on is null or left_on > %s", (day,))
    clinical = (
        f"(select dept_code from his.departments where dept_type = 'clinical') "
        f"and (left_on is null or left_on > '{day}')"
    )
    promoted = _sample_ids(cur, rng, "doctors", "doctor_id", *working, k,
                           f"and title <> '{TITLES[0]}' and dept_code in {clinical}")  # fmt: skip
    moved = _sample_ids(cur, rng, "doctors", "doctor_id", *working, int(rng.random() < 0.5),
                        f"and dept_code in {clinical}")  # fmt: skip
    when = iter(fx.stamp(len(promoted) + len(moved) + 1))
    rank = {t: i for i, t in enumerate(TITLES)}
    code_to_idx = {c: i for i, c in enumerate(cat.dept_codes.tolist())}
    fixes = []
    for row in promoted:
        fixes.append((row[0], row[2], TITLES[rank[row[3]] - 1], next(when)))
        fx.log("doctors", row[0], "title", "change")
    for row in moved:
        d = code_to_idx.get(row[2])
        if row[0] in {p[0] for p in promoted}:
            continue
        if d is None:  # a department that sees no patients
            continue
        same = np.flatnonzero((cat.division == cat.division[d]) & ~cat.emergency)
        same = same[same != d]
        if len(same):
            fixes.append((row[0], str(cat.dept_codes[int(same[rng.integers(len(same))])]),
                          row[3], next(when)))  # fmt: skip
            fx.log("doctors", row[0], "dept_code", "change")
    if fixes:
        execute_values(
            cur,
            "update his.doctors d set dept_code = f.dept_code, title = f.title, "
            "updated_at = f.updated_at::timestamp "
            "from (values %s) as f (doctor_id, dept_code, title, updated_at) "
            "where d.doctor_id = f.doctor_id",
            fixes,
        )
    renamed = 0
    if _day_ord(day) % 10 == 0:  # a department becomes a centre (more beds, a new name)
        cur.execute(
            "select dept_code from his.departments where dept_type = 'clinical' "
            "and dept_name not like %s order by dept_code",
            (f"%{RENAMED_SUFFIX}",),
        )
        codes = [c for (c,) in cur.fetchall()]
        if codes:
            code = codes[int(rng.integers(len(codes)))]
            cur.execute(
                "update his.departments set dept_name = dept_name || %s, updated_at = %s "
                "where dept_code = %s",
                (RENAMED_SUFFIX, next(when), code),
            )
            fx.log("departments", code, "dept_name", "change")
            renamed = 1
    return {"changed_doctors": len(fixes), "changed_departments": renamed}
