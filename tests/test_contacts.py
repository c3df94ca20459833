"""Phones and bank accounts on one record: the vectorised phone path equals per-row
phonenumbers; PHONE_INVALID, PHONE_PLACEHOLDER and the bank rules end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.phones import _one, normalise
from tests.helpers import night, row
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


def per_row(values):
    return [_one(v) for v in values]


def agree(values: list[str]) -> None:
    out = normalise(pd.Series(values, dtype="str"))
    for value, e164, valid, (ref_e164, ref_valid) in zip(values, out["e164"], out["valid"], per_row(values)):
        assert (None if pd.isna(e164) else e164, bool(valid)) == (ref_e164, ref_valid), value


def test_vectorised_phones_equal_per_row_phonenumbers_on_random_numbers():
    rng = np.random.default_rng(4)
    n = 20_000
    mobiles = ["1" + "".join(map(str, d)) for d in rng.integers(0, 10, (n, 10))]
    landlines = ["0" + "".join(map(str, d))[: rng.integers(9, 12)] for d in rng.integers(0, 10, (n, 11))]
    forms = []
    for m, l in zip(mobiles, landlines):
        k = rng.integers(0, 6)
        forms.append([m, f"+86 {m[:3]} {m[3:7]} {m[7:]}", f"0086-{m}", f"86{m}", l, f"({l[:4]}){l[4:]}"][k])
    agree(forms)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789+-() 转#xX")), max_size=18))
def test_any_text_of_phone_characters_agrees(text):
    out = normalise(pd.Series([text], dtype="str")).iloc[0]
    if pd.isna(out["extension"]):
        ref_e164, ref_valid = _one(text.upper())
        assert bool(out["valid"]) == ref_valid or not text.strip()


@pytest.mark.parametrize("phone", ["13912345678", "+86 139 1234 5678", "0086-13912345678", "8613912345678",
                                   "139-1234-5678", "021-68888888", "(0755)88889999", "0755-88889999转123",
                                   "0755-88889999-123", "13812345678", "13988888888", "17405123456"])
def test_valid_phones_raise_nothing(invoke, tmp_path, phone):
    assert night(invoke, tmp_path, [row(applicant_phone=phone)])[0] == []


@pytest.mark.parametrize("phone, rule", [
    ("1391234567", "PHONE_INVALID"), ("3891", "PHONE_INVALID"), ("12345678", "PHONE_PLACEHOLDER"), ("+852 2123 4567", "PHONE_INVALID"),
    ("17406123456", "PHONE_INVALID"), ("电话号码", "PHONE_INVALID"),
    ("13800138000", "PHONE_PLACEHOLDER"), ("138 0013 8000", "PHONE_PLACEHOLDER"), ("11111111111", "PHONE_PLACEHOLDER"),
    ("12345678901", "PHONE_PLACEHOLDER"), ("010-12345678", "PHONE_PLACEHOLDER"), ("13888888888", "PHONE_PLACEHOLDER"),
])
def test_phone_findings(invoke, tmp_path, phone, rule):
    found, items = night(invoke, tmp_path, [row(applicant_phone=phone)])
    assert found == [("P0001", rule, "applicant_phone")]
    assert "1391234567" not in items["evidence"].iloc[0]


def test_insured_phone_is_checked(invoke, tmp_path):
    assert night(invoke, tmp_path, [row(insured_phone="123")])[0] == [("P0001", "PHONE_INVALID", "insured_phone")]


@pytest.mark.parametrize("account, rule", [
    ("62220", "BANK_ACCOUNT_INVALID"), ("6222-0212-3456-7890-12A", "BANK_ACCOUNT_INVALID"),
    ("6222021234567890124", "BANK_CARD_LUHN"), ("6222 0212 3456 7890 128", None), ("6222-0212-3456-7890-128", None),
    ("123456789012", None),
])
def test_bank_accounts(invoke, tmp_path, account, rule):
    found, items = night(invoke, tmp_path, [row(bank_account=account)])
    assert found == ([("P0001", rule, "bank_account")] if rule else [])
    if rule == "BANK_CARD_LUHN":
        assert items["severity"].item() == "warning" and items["evidence"].item() == "622202*********0124"


@pytest.mark.parametrize("holder, hit", [("张三", False), ("张 三", False), ("", False), ("李四", True)])
def test_bank_holder(invoke, tmp_path, holder, hit):
    found, items = night(invoke, tmp_path, [row(bank_account_holder=holder)])
    assert found == ([("P0001", "BANK_HOLDER_MISMATCH", "bank_account_holder")] if hit else [])
    if hit:
        assert items["evidence"].item() == "户名李*，投保人张*"
