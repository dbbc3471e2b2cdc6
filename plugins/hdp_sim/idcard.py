"""Resident identity card numbers (GB 11643-1999).

An 18-character number: 6-digit administrative region code, 8-digit birth date (YYYYMMDD),
3-digit sequence (odd for men, even for women) and a check character computed with
ISO 7064 MOD 11-2 over the first 17 digits.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)

_SHAPE = re.compile(r"^\d{17}[\dX]$")


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits of an ID card number."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("an ID card number's first 17 characters must be 17 ASCII digits")
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def is_valid(id_card: str) -> bool:
    """True if the number has the GB 11643-1999 shape, a real birth date and a correct check char.

    Lower-case 'x' is rejected: the standard writes the check character as upper-case 'X'.
    """
    if not isinstance(id_card, str) or not _SHAPE.match(id_card):
        return False
    try:
        datetime.strptime(id_card[6:14], "%Y%m%d")
    except ValueError:
        return False
    return check_char(id_card[:17]) == id_card[17]


def check_chars(first17: np.ndarray) -> np.ndarray:
    """Vectorised check characters for an int64 array of 17-digit numbers."""
    digits = np.empty((first17.shape[0], 17), dtype=np.int64)
    rest = first17.astype(np.int64)
    for pos in range(16, -1, -1):
        digits[:, pos] = rest % 10
        rest = rest // 10
    remainder = (digits @ np.asarray(WEIGHTS, dtype=np.int64)) % 11
    return np.asarray(list(CHECK_CHARS))[remainder]


def generate(
    rng: np.random.Generator,
    region_codes: np.ndarray,
    birth_dates: np.ndarray,
    is_male: np.ndarray,
) -> np.ndarray:
    """Valid ID card numbers, one per person, as a numpy string array.

    region_codes: int array of 6-digit region codes; birth_dates: datetime64[D] array;
    is_male: bool array. The sequence number is random with parity set by sex.
    """
    n = len(birth_dates)
    ymd = birth_dates.astype("datetime64[D]")
    years = ymd.astype("datetime64[Y]").astype(np.int64) + 1970
    months = (ymd.astype("datetime64[M]").astype(np.int64) % 12) + 1
    days = (ymd - ymd.astype("datetime64[M]")).astype(np.int64) + 1
    # sequence 001..999 with parity: odd for men, even for women
    seq = rng.integers(0, 499, size=n) * 2 + np.where(is_male, 1, 2)
    first17 = (
        np.asarray(region_codes, dtype=np.int64) * 10**11
        + (years * 10000 + months * 100 + days) * 1000
        + seq
    )
    return np.strings.add(first17.astype(str), check_chars(first17))
