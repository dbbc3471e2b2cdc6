"""GB 11643-1999 identity card numbers: check character, validation, vectorised generator."""

from __future__ import annotations

import numpy as np
import pytest

from hdp_sim import idcard


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("11010519491231002", "X"),  # the standard's own example
        ("44052418800101001", "4"),
    ],
)
def test_check_char(first17, expected):
    assert idcard.check_char(first17) == expected


def test_check_char_rejects_non_digits():
    with pytest.raises(ValueError, match="17 ASCII digits"):
        idcard.check_char("1101051949123100X")


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", False),  # the standard writes an upper-case X
        ("110105194912310021", False),  # wrong check character
        ("11010519490231002X", False),  # 31 February is no birth date
        ("11010519491231002", False),  # too short
        ("", False),
    ],
)
def test_is_valid(number, valid):
    assert idcard.is_valid(number) is valid


def test_generator_is_valid_and_encodes_birth_date_and_sex():
    rng = np.random.Generator(np.random.PCG64(1))
    n = 2000
    birth = np.datetime64("1930-01-01") + rng.integers(0, 34_000, n).astype("timedelta64[D]")
    is_male = rng.random(n) < 0.5
    region = rng.choice([110105, 420106, 440305], n)
    cards = idcard.generate(rng, region, birth, is_male)
    assert all(idcard.is_valid(c) for c in cards)
    for card, b, male, r in zip(cards.tolist(), birth, is_male, region, strict=True):
        assert card[:6] == str(r)
        assert card[6:14] == str(b).replace("-", "")
        assert int(card[16]) % 2 == (1 if male else 0)
