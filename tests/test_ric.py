"""GB 11643 identity numbers: property tests, the vectorised analysis against the scalar
module, the check character against python-stdnum on 1M random bodies, junk input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric

from checks import ric
from checks.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from checks.regions import county_codes, known_codes
from checks.ric_vector import CHECKSUM, CORRUPTED, FORMAT, OK, analyse

TODAY = dt.date(2026, 11, 20)
CODES = sorted(county_codes())


@st.composite
def valid_numbers(draw):
    code = draw(st.sampled_from(CODES))
    birth = draw(st.dates(dt.date(1900, 1, 1), TODAY))
    seq = draw(st.integers(0, 999))
    body = f"{code}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_character(body)


@settings(max_examples=300, deadline=None)
@given(valid_numbers())
def test_every_valid_number_passes_both_ways(number):
    assert ric.validate(number, TODAY) == number
    a = analyse(pd.Series([number], dtype="str"), TODAY).iloc[0]
    assert a["status"] == OK and not a["birth_invalid"] and not a["region_unknown"]
    assert a["sex"] == ric.get_sex(number) and a["birth"].date() == ric.get_birth_date(number)


@settings(max_examples=300, deadline=None)
@given(valid_numbers(), st.integers(0, 17), st.sampled_from(list("0123456789X")))
def test_every_single_substitution_is_caught(number, position, char):
    if position < 17 and char == "X" or number[position] == char:
        return
    changed = number[:position] + char + number[position + 1:]
    assert ric.calc_check_character(changed) != changed[17]  # the check character no longer fits ...
    assert not ric.is_valid(changed)  # ... so both the scalar module and the night reject it
    assert analyse(pd.Series([changed], dtype="str"), TODAY).iloc[0]["status"] in (CHECKSUM, CORRUPTED)


@settings(max_examples=300, deadline=None)
@given(valid_numbers(), st.integers(0, 16))
def test_every_adjacent_transposition_of_distinct_digits_is_caught(number, i):
    if number[i] == number[i + 1] or number[i + 1] == "X":
        return
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2:]
    assert ric.calc_check_character(swapped) != swapped[17]
    # caught: as a wrong check character, or as spreadsheet damage when it now ends in 000
    assert analyse(pd.Series([swapped], dtype="str"), TODAY).iloc[0]["status"] in (CHECKSUM, CORRUPTED)


def test_check_character_agrees_with_python_stdnum_on_1m_random_bodies():
    rng = np.random.default_rng(20261120)
    digits = rng.integers(0, 10, (1_000_000, 17))
    bodies = pd.Series((digits + 48).astype(np.uint8).view("S17").ravel().astype(str), dtype="str")
    from checks.arrays import char_matrix
    from checks.ric import CHECK_CHARACTERS, WEIGHTS
    m = (char_matrix(bodies, 17) - 48).astype(np.int64)
    vector = np.array(list(CHECK_CHARACTERS))[(m * np.array(WEIGHTS)).sum(axis=1) % 11]
    reference = np.array([stdnum_ric.calc_check_digit(b + "?") for b in bodies])
    assert (vector == reference).all()
    status = analyse(bodies + pd.Series(reference, dtype="str"), TODAY)["status"]
    assert status.eq(OK).all()


def test_vectorised_equals_scalar_on_messy_values():
    rng = np.random.default_rng(1)
    values = []
    for code in rng.choice(CODES, 300):
        body = f"{code}{rng.integers(1890, 2030)}{rng.integers(0, 14):02d}{rng.integers(0, 33):02d}{rng.integers(0, 1000):03d}"
        values += [body + ric.calc_check_character(body), body + "0", body[:6] + body[8:15], body[:15] + "000"]
    values += ["4.40106E+17", "110105194912310021.0", "12345", "ABCDEFGHIJKLMNOPQR", "11010519491231002Y"]
    a = analyse(pd.Series(values, dtype="str"), TODAY)
    for value, (status, birth_invalid, region_unknown) in zip(values, a[["status", "birth_invalid", "region_unknown"]].values):
        if ric.is_corrupted(value):
            assert status == CORRUPTED, value
            continue
        try:
            ric.validate(value, TODAY)
            scalar = OK
        except InvalidComponent:  # a real birth date or address code is wrong: judged apart
            scalar = "component"
        except (InvalidChecksum, InvalidFormat, InvalidLength) as exc:  # anything else is a bug: raised
            scalar = {InvalidChecksum: CHECKSUM, InvalidFormat: FORMAT, InvalidLength: FORMAT}[type(exc)]
        if scalar == "component":
            assert status == OK and (birth_invalid or region_unknown), value
        else:
            assert status == scalar and not birth_invalid and not region_unknown, value


def test_junk_never_raises():
    junk = [None, "", " ", "nan", "€", "０１２", "X" * 300, "\x00", "=1+1", "-1", "1e308", "9" * 18, "0" * 15]
    a = analyse(pd.Series(junk, dtype="str"), TODAY)
    assert len(a) == len(junk)
    assert pd.isna(a["status"].iloc[0])  # a missing number has no status (MISSING_FIELD judges it)
    for value in junk[1:]:
        assert ric.is_valid(value) in (True, False)


def test_allow_list_codes_and_permits_are_known():
    assert {"810000", "820000", "830000", "320219", "622961"} <= known_codes()
