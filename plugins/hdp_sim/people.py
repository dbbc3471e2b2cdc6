"""Vectorised generation of simulated people: age and sex by population, names, contact data."""

from __future__ import annotations

from functools import cache, reduce

import numpy as np

from hdp_sim import idcard
from hdp_sim import reference as ref

# Which patients a department sees (Department.population).
POPULATIONS = ("newborn", "child", "obstetric", "female", "adult", "any")
DAYS_PER_YEAR = 365.25
# Adult age bands of a tertiary hospital's patients: older people dominate.
_ADULT_BANDS = np.asarray(
    [[14, 25], [25, 35], [35, 45], [45, 55], [55, 65], [65, 75], [75, 85], [85, 96]]
)
_ADULT_SHARES = np.asarray([8, 15, 14, 17, 19, 16, 9, 2], dtype=float)
# Children's visits fall with age (infants and toddlers are sick most often).
_CHILD_SHARES = np.asarray([10, 9, 8, 7, 6, 6, 5, 5, 4, 4, 4, 3, 3, 3], dtype=float)
GENDER_STYLES = np.asarray([["1", "2"], ["男", "女"], ["M", "F"]])
_GENDER_STYLE_SHARES = (0.5, 0.3, 0.2)


def cat(*parts) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    return reduce(np.strings.add, [np.asarray(p, dtype=str) for p in parts])


def zfill(values: np.ndarray, width: int) -> np.ndarray:
    """Left-pad digit strings with zeros (np.strings.zfill fails on empty arrays)."""
    values = np.asarray(values, dtype=str)
    return np.strings.zfill(values, width) if len(values) else values


@cache
def _tables():
    pairs = [s.split(":") for s in ref.SURNAMES.split()]
    surnames = np.asarray([p[0] for p in pairs])
    shares = np.asarray([float(p[1]) for p in pairs])
    male = np.asarray(list(dict.fromkeys(ref.GIVEN_MALE)))
    female = np.asarray(list(dict.fromkeys(ref.GIVEN_FEMALE)))
    neutral = np.asarray(list(dict.fromkeys(ref.GIVEN_NEUTRAL)))
    regions = np.asarray([r[0] for r in ref.REGIONS], dtype=np.int64)
    prefixes = np.asarray([r[1] for r in ref.REGIONS])
    region_p = np.asarray([r[2] for r in ref.REGIONS], dtype=float)
    local = np.asarray([r[1].startswith("湖北省武汉市") for r in ref.REGIONS])
    return {
        "surnames": surnames,
        "surname_p": shares / shares.sum(),
        "male": male,
        "female": female,
        "neutral": neutral,
        "regions": regions,
        "prefixes": prefixes,
        "region_p": region_p / region_p.sum(),
        "local_idx": np.flatnonzero(local),
        "streets": np.asarray(ref.STREETS),
        "mobile": np.asarray(ref.MOBILE_PREFIXES),
    }


def _adult_age_days(rng: np.random.Generator, n: int, min_years: float = 14) -> np.ndarray:
    band = rng.choice(len(_ADULT_SHARES), size=n, p=_ADULT_SHARES / _ADULT_SHARES.sum())
    lo = np.maximum(_ADULT_BANDS[band, 0], min_years)
    years = lo + rng.random(n) * (_ADULT_BANDS[band, 1] - lo)
    return (years * DAYS_PER_YEAR).astype(np.int64)


def _child_age_days(rng: np.random.Generator, n: int) -> np.ndarray:
    years = rng.choice(len(_CHILD_SHARES), size=n, p=_CHILD_SHARES / _CHILD_SHARES.sum())
    return ((years + rng.random(n)) * DAYS_PER_YEAR).astype(np.int64)


def age_and_sex(
    rng: np.random.Generator, populations: np.ndarray, day_ord: int
) -> tuple[np.ndarray, np.ndarray]:
    """(is_male, birth day as days since 1970-01-01) of new people seen by each population."""
    n = len(populations)
    age = np.zeros(n, dtype=np.int64)
    is_male = rng.random(n) < 0.5
    for pop in POPULATIONS:
        idx = np.flatnonzero(populations == pop)
        m = len(idx)
        if not m:
            continue
        if pop == "newborn":
            age[idx] = rng.integers(0, 28, size=m)
            is_male[idx] = rng.random(m) < 0.515
        elif pop == "child":
            age[idx] = _child_age_days(rng, m)
        elif pop == "obstetric":
            years = np.clip(rng.normal(30.0, 4.5, size=m), 20, 44.9)
            age[idx] = (years * DAYS_PER_YEAR).astype(np.int64)
            is_male[idx] = False
        elif pop == "female":
            age[idx] = _adult_age_days(rng, m, min_years=16)
            is_male[idx] = False
        elif pop == "adult":
            age[idx] = _adult_age_days(rng, m)
        else:  # any
            kids = rng.random(m) < 0.15
            age[idx] = np.where(kids, _child_age_days(rng, m), _adult_age_days(rng, m))
    return is_male, day_ord - age


def names(rng: np.random.Generator, is_male: np.ndarray) -> np.ndarray:
    """Chinese names: a (weighted) surname and a one- or two-character given name."""
    t = _tables()
    n = len(is_male)
    surname = t["surnames"][rng.choice(len(t["surnames"]), size=n, p=t["surname_p"])]

    def given() -> np.ndarray:
        by_sex = np.where(
            is_male,
            t["male"][rng.integers(len(t["male"]), size=n)],
            t["female"][rng.integers(len(t["female"]), size=n)],
        )
        neutral = t["neutral"][rng.integers(len(t["neutral"]), size=n)]
        return np.where(rng.random(n) < 0.15, neutral, by_sex)

    first, second = given(), given()
    return cat(surname, first, np.where(rng.random(n) < 0.72, second, ""))


def given_name_start(name: str) -> int:
    """Index where the given name starts (after a one- or two-character surname)."""
    return 2 if len(name) >= 3 and name[:2] in {"欧阳", "司马", "诸葛"} else 1


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    t = _tables()
    prefix = t["mobile"][rng.integers(len(t["mobile"]), size=n)]
    return cat(prefix, zfill(rng.integers(0, 10**8, size=n).astype(str), 8))


def addresses(rng: np.random.Generator, n: int, region_idx: np.ndarray) -> np.ndarray:
    t = _tables()
    street = t["streets"][rng.integers(len(t["streets"]), size=n)]
    number = rng.integers(1, 400, size=n).astype(str)
    flat = cat(
        rng.integers(1, 30, size=n).astype(str),
        "栋",
        rng.integers(1, 6, size=n).astype(str),
        "单元",
        (rng.integers(1, 33, size=n) * 100 + rng.integers(1, 5, size=n)).astype(str),
        "室",
    )
    return cat(
        t["prefixes"][region_idx], street, number, "号", np.where(rng.random(n) < 0.65, flat, "")
    )


def people(
    rng: np.random.Generator, is_male: np.ndarray, birth_days: np.ndarray
) -> dict[str, np.ndarray]:
    """Identity and contact columns of new registrations (clean, defect-free values)."""
    t = _tables()
    n = len(is_male)
    birth = birth_days.astype("datetime64[D]")
    born_in = rng.choice(len(t["regions"]), size=n, p=t["region_p"])
    # most patients live in Wuhan now, wherever they were born
    lives_in = np.where(
        rng.random(n) < 0.75, born_in, t["local_idx"][rng.integers(len(t["local_idx"]), size=n)]
    )
    style = rng.choice(len(GENDER_STYLES), size=n, p=_GENDER_STYLE_SHARES)
    phone = phones(rng, n).astype(object)
    phone[rng.random(n) < 0.02] = None  # not given at registration
    return {
        "name": names(rng, is_male),
        "gender": GENDER_STYLES[style, np.where(is_male, 0, 1)],
        "birth_date": np.datetime_as_string(birth, unit="D"),
        "id_card_no": idcard.generate(rng, t["regions"][born_in], birth, is_male),
        "phone": phone,
        "address": addresses(rng, n, lives_in),
    }
