"""BANK_IS_AGENT (issue 31, art. 11): the applicant's premium account is an agent's own account,
unless the applicant is that agent; not applicable without the roster's account column."""

from __future__ import annotations

import pytest

from tests.helpers import id_no, night_with_roster, postgres_url, row

AGENT_ID = id_no("44010619850101001")
ACCOUNT = "6222021234567890128"  # the account row() gives every applicant


@pytest.fixture
def night(invoke, tmp_path):
    """One night of `rows` with the roster `agents`, on a real SQLite file (PostgreSQL: below)."""
    return lambda _invoke, _tmp, rows, agents: night_with_roster(invoke, tmp_path, f"sqlite:///{tmp_path / 'c.db'}",
                                                                 rows, agents, "BANK_IS_AGENT")


def agent(**over):
    base = {"agent_code": "A0009", "agent_name": "王五", "agent_phone": "13600001111", "agent_id_no": AGENT_ID,
            "branch": "广东分公司", "agent_bank_account": "6222 0212 3456 7890 128"}
    return base | over


def test_a_premium_account_that_is_the_agents_own(invoke, tmp_path, night):
    other = row(policy_no="P2", bank_account="6222021234567890136", applicant_name="李四",
                applicant_id_no=id_no("44010619810101002"), bank_account_holder="李四")
    items, manifest = night(invoke, tmp_path, [row(bank_account="6222-0212-3456-7890-128"), other], [agent()])
    assert items["policy_no"].tolist() == ["P0001"]
    assert items[["role", "field", "severity", "category"]].values.tolist() == [
        ["applicant", "bank_account", "error", "可疑线索"]]
    assert items["detail"].item() == "缴费账号为业务员的银行账号"
    evidence = items["evidence"].item()
    assert evidence.endswith(" 属于 业务员A0009 王*") and ACCOUNT not in evidence and "0128" in evidence
    assert manifest["rules"]["BANK_IS_AGENT"]["status"] == "ok"


def test_the_agents_own_policy_is_not_a_finding(invoke, tmp_path, night):
    own = row(applicant_name="王五", applicant_id_no=AGENT_ID, applicant_birth_date="1985-01-01",
              bank_account_holder="王五")
    same_name_no_id = row(policy_no="P2", applicant_name="赵六", bank_account="6222021234567890136",
                          bank_account_holder="赵六")
    items, _ = night(invoke, tmp_path, [own, same_name_no_id],
                     [agent(), agent(agent_code="A0010", agent_name="赵六", agent_id_no="",
                                     agent_bank_account="6222021234567890136")])
    assert items.empty


def test_without_the_roster_s_account_column_the_rule_says_why(invoke, tmp_path, night):
    plain = {k: v for k, v in agent().items() if k != "agent_bank_account"}
    items, manifest = night(invoke, tmp_path, [row()], [plain])
    assert items.empty
    assert manifest["rules"]["BANK_IS_AGENT"]["status"] == "not_applicable"
    assert "业务员银行账号" in manifest["rules"]["BANK_IS_AGENT"]["reason"]
    assert "agent_bank_account" in manifest["inputs"][-1]["optional_columns_absent"]


def test_a_short_or_blank_agent_account_matches_nothing(invoke, tmp_path, night):
    items, manifest = night(invoke, tmp_path, [row(bank_account="1234567")],
                            [agent(agent_bank_account="1234567"), agent(agent_code="A0010", agent_bank_account="")])
    assert items.empty and manifest["rules"]["BANK_IS_AGENT"]["status"] == "ok"


def test_on_postgresql_too(invoke, tmp_path):
    items, manifest = night_with_roster(invoke, tmp_path, postgres_url(), [row(bank_account="6222-0212-3456-7890-128")],
                                        [agent()], "BANK_IS_AGENT")
    assert items["policy_no"].tolist() == ["P0001"] and manifest["rules"]["BANK_IS_AGENT"]["status"] == "ok"
