"""The ID_* rules through the whole night: messy but valid numbers raise nothing; each rule
fires on its own defect with masked evidence; only the documents of SPEC 2.3 are judged."""

from __future__ import annotations

import pytest

from checks import ric
from tests.helpers import id_no, read_outputs, row, write_csv
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


def night(invoke, tmp_path, rows):
    out = tmp_path / "out"
    result = invoke("run", str(write_csv(tmp_path / "e.csv", rows)), "--business-date", "2026-11-20",
                    "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return read_outputs(out)[0]


def ids(items):
    items = items[items["rule_code"].str.startswith("ID_")]
    return sorted(zip(items["policy_no"], items["rule_code"], items["role"]))


def person(body17: str, sex: str, birth: str) -> dict:
    return {"applicant_id_no": id_no(body17), "applicant_sex": sex, "applicant_birth_date": birth}


def test_messy_valid_numbers_raise_nothing(invoke, tmp_path):
    x_number = id_no("11010519491231002")  # check character X
    assert x_number.endswith("X")
    rows = [
        row(policy_no="V1", applicant_id_no=x_number.lower(), applicant_sex="女", applicant_birth_date="1949-12-31"),
        row(policy_no="V2", applicant_id_no="１１０１０５１９４９１２３１００２Ｘ", applicant_sex="F",
            applicant_birth_date="1949/12/31"),
        row(policy_no="V3", applicant_id_no=" 110105 1949 1231 002X ", applicant_sex="2", applicant_birth_date="19491231"),
        row(policy_no="V4", **person("11010319700101001", "男", "1970-01-01")),   # retired 崇文区
        row(policy_no="V5", **person("50010119600101002", "女", "1960-01-01")),   # Chongqing before 1997
        row(policy_no="V6", applicant_id_type="港澳台居民居住证", **person("81000019900101001", "男", "1990-01-01")),
        row(policy_no="V7", applicant_id_type="外国人永久居留身份证", **person("93315619900101001", "男", "1990-01-01")),
        row(policy_no="V8", applicant_id_type="护照", applicant_id_no="E12345678"),
        row(policy_no="V9", applicant_id_type="外国人永久居留身份证", applicant_id_no="USA123456789012"),
        row(policy_no="V10", **person("63282519850101001", "男", "1985-01-01")),  # allow-listed code
        row(policy_no="V11", applicant_id_type="01", **person("44010619800101000", "女", "1980-01-01")),  # ends in 000
    ]
    assert ids(night(invoke, tmp_path, rows)) == []


@pytest.mark.parametrize("over, rule", [
    ({"applicant_id_no": "1101051949123100"}, "ID_FORMAT"),
    ({"applicant_id_no": "11010519491231002Y"}, "ID_FORMAT"),
    ({"applicant_id_no": "4.40106E+17"}, "ID_CORRUPTED"),
    ({"applicant_id_no": "440106198005170031.0"}, "ID_CORRUPTED"),
    ({"applicant_id_no": "440106198005170000"}, "ID_CORRUPTED"),
    ({"applicant_id_no": id_no("44010619800517003")[:17] + "9"}, "ID_CHECKSUM"),
    ({"applicant_id_no": id_no("44010619800230003"), "applicant_birth_date": ""}, "ID_BIRTH_INVALID"),
    ({"applicant_id_no": id_no("10010119800517003")}, "ID_REGION_UNKNOWN"),
    ({"applicant_id_no": "440106800517003"}, "ID_LEGACY_15"),
    ({"applicant_sex": "女"}, "ID_SEX_MISMATCH"),
    ({"applicant_birth_date": "1980-05-18"}, "ID_BIRTH_MISMATCH"),
])
def test_each_rule_fires_on_its_defect(invoke, tmp_path, over, rule):
    items = night(invoke, tmp_path, [row(**over)])
    assert ids(items) == [("P0001", rule, "applicant")]
    hit = items[items["rule_code"] == rule].iloc[0]
    if rule not in ("ID_SEX_MISMATCH", "ID_BIRTH_MISMATCH"):
        raw = ric.compact(over["applicant_id_no"])
        assert hit["evidence"] == raw[0] + "*" * (len(raw) - 2) + raw[-1]
    assert row()["applicant_id_no"] not in items.to_csv()


def test_insured_is_checked_and_self_rows_are_not_double_counted(invoke, tmp_path):
    rows = [row(policy_no="I1", insured_sex="男"),
            row(policy_no="I2", relation="本人", insured_name="", insured_sex="", insured_birth_date="",
                insured_id_type="", insured_id_no="", applicant_sex="女")]
    assert ids(night(invoke, tmp_path, rows)) == [("I1", "ID_SEX_MISMATCH", "insured"),
                                                  ("I2", "ID_SEX_MISMATCH", "applicant")]


def test_a_wrong_check_character_is_one_item_not_four(invoke, tmp_path):
    bad = id_no("44010619800517003")[:17] + "9"
    items = night(invoke, tmp_path, [row(applicant_id_no=bad, applicant_sex="女", applicant_birth_date="1990-01-01")])
    assert ids(items) == [("P0001", "ID_CHECKSUM", "applicant")]


def test_untyped_numbers_shaped_like_id_cards_are_checked(invoke, tmp_path):
    bad = id_no("44010619800517003")[:17] + "9"
    rows = [row(policy_no="U1", applicant_id_type="", applicant_id_no=bad),
            row(policy_no="U2", applicant_id_type="", applicant_id_no="E12345678")]
    items = night(invoke, tmp_path, rows)
    assert ids(items) == [("U1", "ID_CHECKSUM", "applicant")]
    assert {("U1", "MISSING_FIELD"), ("U2", "MISSING_FIELD")} <= set(zip(items["policy_no"], items["rule_code"]))


def test_household_register_numbers_are_checked(invoke, tmp_path):
    bad = id_no("44010620150517003")[:17] + "9"
    rows = [row(policy_no="H1", relation="子女", insured_id_type="户口簿", insured_id_no=bad,
                insured_birth_date="2015-05-17", insured_sex="男")]
    assert ids(night(invoke, tmp_path, rows)) == [("H1", "ID_CHECKSUM", "insured")]
