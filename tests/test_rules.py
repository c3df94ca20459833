"""The rules of this release through the whole night: MISSING_FIELD (with its exemptions),
FIELD_INVALID, DUPLICATE_POLICY, and the engine's isolation of a failing rule."""

from __future__ import annotations

import pandas as pd
import pytest

from checks import catalogue as registry
from checks.catalogue import RULES
from tests.helpers import person, policy, read_outputs, row, write_csv
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


DATE = "2026-11-20"


def night(invoke, tmp_path, rows, *extra, name="e.csv"):
    out = tmp_path / "out"
    path = write_csv(tmp_path / name, rows)
    result = invoke("run", str(path), "--business-date", DATE, "--out", str(out), "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return read_outputs(out)


def found(items: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(items["policy_no"], items["rule_code"], items["field"]))


def test_a_clean_row_raises_nothing(invoke, tmp_path):
    items, quarantine, manifest = night(invoke, tmp_path, [row()])
    assert items.empty and quarantine.empty
    assert manifest["rules"]["MISSING_FIELD"]["rows_tested"] == 1
    assert manifest["rules"]["MISSING_FIELD"]["rows_failed"] == 0


@pytest.mark.parametrize("field", ["applicant_name", "applicant_sex", "applicant_birth_date", "applicant_id_type",
                                   "applicant_id_no", "applicant_address", "applicant_phone", "insured_name",
                                   "insured_sex", "insured_birth_date", "insured_id_type", "insured_id_no"])
@pytest.mark.parametrize("value", ["", "  ", "不详", "N/A", "null", "－"])
def test_every_key_field_missing_or_placeholder(invoke, tmp_path, field, value):
    items, _, _ = night(invoke, tmp_path, [row(**{field: value})])
    assert found(items) == {("P0001", "MISSING_FIELD", field)}
    assert items["role"].item() == field.split("_")[0]
    assert items["severity"].item() == "error" and items["category"].item() == "资料不完整"


def test_non_key_fields_may_be_missing(invoke, tmp_path):
    items, _, _ = night(invoke, tmp_path, [row(insured_phone="", bank_account_holder="", product_code="无",
                                               receipt_date="", channel="个险")])
    assert "MISSING_FIELD" not in set(items["rule_code"])


def test_insured_fields_may_be_empty_when_relation_is_self(invoke, tmp_path):
    empty_insured = {f: "" for f in ("insured_name", "insured_sex", "insured_birth_date", "insured_id_type",
                                     "insured_id_no")}
    # P0002's unidentified insured gets a phone of its own: sharing P0001's would be a PHONE_SHARED clue
    items, _, _ = night(invoke, tmp_path, [row(relation="本人", **empty_insured),
                                           row(policy_no="P0002", relation="配偶", **empty_insured,
                                               insured_phone="13711112222")])
    assert {p for p, _, _ in found(items)} == {"P0002"}
    assert len(items) == 5


def test_minor_id_exemption_is_computed_on_the_issue_date(invoke, tmp_path):
    """17 on the issue date but 18 on the business date: still exempt. 18 on the issue date: not."""
    minor = dict(relation="子女", insured_id_type="", insured_id_no="", insured_birth_date="2008-11-19",
                 issue_date="2026-11-18", insured_phone="")  # four children on one phone would be PHONE_SHARED
    adult = dict(minor, insured_birth_date="2008-11-18")
    no_issue = dict(minor, issue_date="", insured_birth_date="2008-11-21")  # falls back to the business date
    unknown_age = dict(minor, insured_birth_date="")
    items, _, _ = night(invoke, tmp_path, [row(policy_no="M1", **minor), row(policy_no="M2", **adult),
                                           row(policy_no="M3", **no_issue), row(policy_no="M4", **unknown_age)])
    assert found(items) == {
        ("M2", "MISSING_FIELD", "insured_id_type"), ("M2", "MISSING_FIELD", "insured_id_no"),
        ("M4", "MISSING_FIELD", "insured_id_type"), ("M4", "MISSING_FIELD", "insured_id_no"),
        ("M4", "MISSING_FIELD", "insured_birth_date"),
    }


def test_configured_placeholders(invoke, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("placeholders: [无, 查无此人]\n", encoding="utf-8")
    items, _, _ = night(invoke, tmp_path, [row(applicant_name="查无此人", applicant_address="不详")],
                        "--config", str(cfg))
    assert found(items) == {("P0001", "MISSING_FIELD", "applicant_name")}


@pytest.mark.parametrize("field, value, ok", [
    ("applicant_sex", "9", False), ("applicant_sex", "男性", True), ("applicant_sex", "f", True),
    ("applicant_sex", "2", True), ("applicant_sex", "X", False),
    ("applicant_birth_date", "1980/5/17", True), ("applicant_birth_date", "19800517", True),
    ("applicant_birth_date", "1980年5月17日", True), ("applicant_birth_date", "1980-02-30", False),
    ("applicant_birth_date", "17/05/1980", False), ("insured_birth_date", "生日不详了", False),
    ("issue_date", "2026-13-01", False), ("receipt_date", "yesterday", False),
    ("insured_sex", "Ｍ", True),
])
def test_field_invalid(invoke, tmp_path, field, value, ok):
    items, _, _ = night(invoke, tmp_path, [row(**{field: value})])
    items = items[items["rule_code"] == "FIELD_INVALID"]  # a readable but different sex is ID_SEX_MISMATCH's
    expected = set() if ok else {("P0001", "FIELD_INVALID", field)}
    assert found(items) == expected
    if not ok:
        evidence = items["evidence"].item()  # its shape, never the whole value (issue 27)
        assert evidence.startswith(f"原值: {value[0]}")
        assert evidence == f"原值: {value}" if len(value) == 1 else (value not in evidence and
                                                                    evidence.endswith(f"（{len(value)} 个字符）"))
        assert items["role"].item() == ("policy" if field in ("issue_date", "receipt_date") else field.split("_")[0])


def test_duplicate_policy_is_one_item_per_policy_across_files(invoke, tmp_path):
    first = write_csv(tmp_path / "a.csv", [row(policy_no="D1"), row(policy_no="D2")])
    second = write_csv(tmp_path / "b.csv", [row(policy_no="D1", applicant_phone=""), row(policy_no="D1")])
    out = tmp_path / "out"
    result = invoke("run", str(first), str(second), "--business-date", DATE, "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    items, _, _ = read_outputs(out)
    dup = items[items["rule_code"] == "DUPLICATE_POLICY"]
    assert dup["policy_no"].tolist() == ["D1"]
    assert dup["detail"].item() == "保单号在本批提取中出现3次"
    assert dup["evidence"].item() == "文件1第2行、文件2第2行、文件2第3行"
    assert items["item_id"].is_unique


def test_a_failing_rule_is_recorded_and_the_night_goes_on(invoke, tmp_path, monkeypatch):
    def broken(frame, ctx):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(registry.EVALUATORS, "DUPLICATE_POLICY", broken)
    items, _, manifest = night(invoke, tmp_path, [row(applicant_phone="")])
    assert manifest["rules"]["DUPLICATE_POLICY"]["status"] == "error"
    assert manifest["rules"]["DUPLICATE_POLICY"]["error"] == "ZeroDivisionError"
    assert found(items) == {("P0001", "MISSING_FIELD", "applicant_phone")}


def test_a_failing_shared_contact_judgement_is_recorded_and_the_night_goes_on(invoke, tmp_path, monkeypatch):
    """The book rules go through the row rules' wrapper (pipeline.rules.isolated): a judgement
    that raises is both shared-contact rules' `error` outcome, the other rules' items are listed,
    tonight's contact rows are still written, and the earlier night's shared items stay open
    (a rule that did not run resolves nothing)."""
    from checks import shared

    first = write_csv(tmp_path / "n1.csv", [policy("S1", 1), policy("S2", 2, applicant_phone=person(1)["applicant_phone"])])
    done = invoke("run", str(first), "--business-date", "2026-11-19", "--out", str(tmp_path / "o1"), "--quiet")
    assert done.exit_code == 0, done.output
    before, _, _ = read_outputs(tmp_path / "o1")
    assert sorted(before.loc[before["rule_code"] == "PHONE_SHARED", "policy_no"]) == ["S1", "S2"]

    def broken(pool, judged=None):
        raise ZeroDivisionError("boom")

    whole = shared.involved
    monkeypatch.setattr(shared, "involved", broken)
    second = write_csv(tmp_path / "n2.csv", [policy("S3", 3, applicant_phone=""),
                                             policy("S4", 4, applicant_phone=person(1)["applicant_phone"])])
    done = invoke("run", str(second), "--business-date", DATE, "--out", str(tmp_path / "o2"), "--quiet")
    assert done.exit_code == 0, done.output
    items, _, manifest = read_outputs(tmp_path / "o2")
    for code in ("PHONE_SHARED", "BANK_SHARED"):
        assert manifest["rules"][code]["status"] == "error" and manifest["rules"][code]["error"] == "ZeroDivisionError"
    assert any("PHONE_SHARED" in w for w in manifest["warnings"])
    assert ("S3", "MISSING_FIELD", "applicant_phone") in found(items)
    shared_items = items[items["rule_code"] == "PHONE_SHARED"]
    assert sorted(shared_items["policy_no"]) == ["S1", "S2"]  # carried, not resolved; S4 not judged tonight
    assert manifest["contact_index"]["contact_rows_tonight"] == 3  # S3's account, S4's phone and account: written
    assert manifest["contact_index"]["cluster_rounds"] == 0  # the manifest keeps its shape

    monkeypatch.setattr(shared, "involved", whole)  # the same night again, the rule whole: S4 joins the shared phone
    done = invoke("run", str(second), "--business-date", DATE, "--out", str(tmp_path / "o3"), "--quiet")
    assert done.exit_code == 0, done.output
    again, _, manifest = read_outputs(tmp_path / "o3")
    assert manifest["rules"]["PHONE_SHARED"]["status"] == "ok"
    assert sorted(again.loc[again["rule_code"] == "PHONE_SHARED", "policy_no"]) == ["S1", "S2", "S4"]


def test_disabled_rules_and_severity_overrides(invoke, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rules:\n  disabled: [FIELD_INVALID]\n  severity: {MISSING_FIELD: warning}\n", encoding="utf-8")
    items, _, manifest = night(invoke, tmp_path, [row(applicant_phone="", applicant_sex="9")], "--config", str(cfg))
    assert manifest["rules"]["FIELD_INVALID"]["status"] == "disabled"
    assert items["rule_code"].tolist() == ["MISSING_FIELD"] and items["severity"].tolist() == ["warning"]


def test_every_rule_reports_its_status(invoke, tmp_path):
    _, _, manifest = night(invoke, tmp_path, [row()])
    statuses = {code: r["status"] for code, r in manifest["rules"].items()}
    assert list(statuses) == list(RULES)  # catalogue order, every rule
    assert {c for c, s in statuses.items() if s == "ok"} == set(RULES) - {"PHONE_IS_AGENT", "BANK_IS_AGENT", "ADDRESS_IS_AGENT"}
    for code in ("PHONE_IS_AGENT", "BANK_IS_AGENT", "ADDRESS_IS_AGENT"):  # no --agents roster
        assert statuses[code] == "not_applicable"
        assert manifest["rules"][code]["reason"] == "no agent roster given (--agents)"
    idle = [w for w in manifest["warnings"] if "did not run" in w]  # one line for the one reason
    assert idle == ["rules PHONE_IS_AGENT, BANK_IS_AGENT, ADDRESS_IS_AGENT did not run: no agent roster given (--agents)"]
    # every rule has an evaluator, but the book's (pipeline.book.detect) and the complaints' (pipeline.cases.complaints)
    assert set(registry.EVALUATORS) | set(registry.BOOK_RULES) | set(registry.COMPLAINT_RULES) == set(RULES)
