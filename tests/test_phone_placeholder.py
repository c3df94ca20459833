"""PHONE_PLACEHOLDER rests on phonenumbers' CN metadata (issue 15, point 8): a landline is a
filler for its local number only when phonenumbers finds it a real fixed-line number with an
area code of its own data (`checks.phones.area_code_length`, column-wise, held equal to
per-row `phonenumbers.length_of_geographical_area_code`); a number that merely starts like an
area code (238 1234 5678: Chongqing's 023 takes 8-digit local numbers) is `PHONE_INVALID`,
never a filler. A real landline whose local number is a run and a real mobile filler are
fillers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from checks.contacts import _runs, placeholder
from checks.phones import area_code_length, fixed_line
from tests.helpers import row
from tests.helpers import night

DEFAULTS = {"numbers": ["13800138000", "12345678901", "13888888888", "01012345678"], "repeated_digit": True,
            "consecutive_runs": True}


def parsed(national: str) -> phonenumbers.PhoneNumber:
    return phonenumbers.PhoneNumber(country_code=86, national_number=int(national))


def reference(national: str, listed: set[str]) -> bool:
    """The filler judgement one number at a time, with phonenumbers' own functions."""
    if national in listed or len(set(national)) == 1 or 7 <= len(national) <= 11 and national in _runs(len(national)):
        return True
    area = phonenumbers.length_of_geographical_area_code(parsed(national))
    local = national[area:]
    return area > 0 and phonenumbers.is_valid_number(parsed(national)) and len(local) in (7, 8) \
        and local in _runs(len(local))


def sample(n: int = 6000, seed: int = 15) -> list[str]:
    """National numbers: area codes of every first digit with local runs and random locals of
    7-9 digits, mobiles, and noise."""
    rng = np.random.default_rng(seed)
    runs = sorted(_runs(7) | _runs(8))
    out = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        area = "10" if rng.random() < 0.1 else str(rng.integers(20, 30)) if rng.random() < 0.4 else \
            str(rng.integers(300, 1000))
        if kind == 0:
            out.append(area + runs[rng.integers(0, len(runs))])
        elif kind == 1:
            out.append(area + "".join(map(str, rng.integers(0, 10, rng.integers(7, 10)))))
        elif kind == 2:
            out.append("1" + "".join(map(str, rng.integers(0, 10, 10))))
        else:
            out.append(str(rng.integers(1, 10)) + "".join(map(str, rng.integers(0, 10, rng.integers(6, 11)))))
    return out + ["23812345678", "2387654321", "1012345678", "75512345678", "13800138000"]


def test_area_codes_and_fixed_lines_equal_per_row_phonenumbers():
    values = sample()
    got = area_code_length(pd.Series(values, dtype="str"))
    lines = fixed_line(pd.Series(values, dtype="str"))
    kinds = (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    for value, area, line in zip(values, got, lines):
        assert area == phonenumbers.length_of_geographical_area_code(parsed(value)), value
        assert line == (phonenumbers.number_type(parsed(value)) in kinds), value
    assert (got == 2).sum() > 300 and (got == 3).sum() > 300  # both kinds of area code were exercised


def test_the_filler_judgement_equals_the_per_row_one():
    values = sample(seed=16)
    ctx = SimpleNamespace(params={"phone_placeholders": DEFAULTS})
    got = placeholder(pd.Series(values + [None], dtype="str"), ctx)
    listed = {n.lstrip("0") for n in DEFAULTS["numbers"]}
    expected = [reference(v, listed) for v in values] + [False]
    assert got.tolist() == expected
    assert sum(expected) > 500  # many area-code-plus-run landlines, real or not


def test_an_11_digit_238_number_is_invalid_never_a_filler():
    number = parsed("23812345678")
    assert not phonenumbers.is_valid_number(number)  # 023 + a 9-digit local number
    ctx = SimpleNamespace(params={"phone_placeholders": DEFAULTS})
    assert placeholder(pd.Series(["23812345678"], dtype="str"), ctx).tolist() == [False]


def test_findings_of_one_night(invoke, tmp_path):
    phones = {
        "I1": "23812345678",       # looks like area code + run; no such number: invalid
        "I2": "023-8123-45678",    # the same written with the trunk 0
        "I3": "0371-1234567",      # Zhengzhou's local numbers have 8 digits: a 7-digit run is no number
        "L1": "023-87654321",      # Chongqing, a real landline whose local number is a run
        "L2": "0755-12345678",     # Shenzhen, a 3-digit area code
        "L3": "010-12345678",      # listed in the config and a real landline with a run
        "M1": "13800138000",       # a real mobile (phonenumbers: valid, mobile) that is a filler
        "M2": "138 1234 5678",     # a vanity mobile: nothing
        "V1": "0755-88889999",     # a real landline: nothing
    }
    found, _ = night(invoke, tmp_path, [row(policy_no=p, applicant_phone=v, insured_phone=f"1391234{i:04d}")
                                        for i, (p, v) in enumerate(phones.items())])
    assert found == [("I1", "PHONE_INVALID", "applicant_phone"), ("I2", "PHONE_INVALID", "applicant_phone"),
                     ("I3", "PHONE_INVALID", "applicant_phone"), ("L1", "PHONE_PLACEHOLDER", "applicant_phone"),
                     ("L2", "PHONE_PLACEHOLDER", "applicant_phone"), ("L3", "PHONE_PLACEHOLDER", "applicant_phone"),
                     ("M1", "PHONE_PLACEHOLDER", "applicant_phone")]
    mobile = phonenumbers.parse("13800138000", "CN")
    assert phonenumbers.is_valid_number(mobile) and phonenumbers.number_type(mobile) == phonenumbers.PhoneNumberType.MOBILE


@pytest.mark.parametrize("numbers, flagged", [([], True), (["01012345678"], True)])
def test_a_real_landline_with_a_run_is_a_filler_listed_or_not(numbers, flagged):
    ctx = SimpleNamespace(params={"phone_placeholders": DEFAULTS | {"numbers": numbers}})
    assert placeholder(pd.Series(["1012345678"], dtype="str"), ctx).tolist() == [flagged]
    off = SimpleNamespace(params={"phone_placeholders": DEFAULTS | {"numbers": [], "consecutive_runs": False}})
    assert placeholder(pd.Series(["1012345678"], dtype="str"), off).tolist() == [False]
