"""PHONE_IS_AGENT: a customer's phone is an agent's, unless the customer is that agent."""

from __future__ import annotations

from tests.helpers import id_no, read_outputs, row, write_csv

AGENT_ID = id_no("44010619850101001")


def night(invoke, tmp_path, rows, agents):
    roster = write_csv(tmp_path / "agents.csv", agents)
    out = tmp_path / "out"
    result = invoke("run", str(write_csv(tmp_path / "e.csv", rows)), "--business-date", "2026-11-20",
                    "--agents", str(roster), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    items = read_outputs(out)[0]
    return items[items["rule_code"] == "PHONE_IS_AGENT"]


def agent(**over):
    base = {"agent_code": "A0009", "agent_name": "王五", "agent_phone": "+86 136-0000-1111",
            "agent_id_no": AGENT_ID, "branch": "广东分公司"}
    return base | over


def test_a_customer_with_the_agents_phone(invoke, tmp_path):
    items = night(invoke, tmp_path, [row(applicant_phone="13600001111"), row(policy_no="P2", insured_phone="0086 13600001111"),
                                     row(policy_no="P3")], [agent()])
    assert sorted(zip(items["policy_no"], items["role"])) == [("P0001", "applicant"), ("P2", "insured")]
    assert items["evidence"].iloc[0] == "136****1111 属于 业务员A0009 王*"
    assert items["severity"].iloc[0] == "error" and items["category"].iloc[0] == "可疑线索"


def test_the_agents_own_policy_is_not_a_finding(invoke, tmp_path):
    own = row(applicant_phone="13600001111", applicant_name="王五", applicant_id_no=AGENT_ID,
              applicant_birth_date="1985-01-01", bank_account_holder="王五")
    same_name_no_id = row(policy_no="P2", applicant_phone="13700002222", applicant_name="赵六", bank_account_holder="赵六")
    items = night(invoke, tmp_path, [own, same_name_no_id],
                  [agent(), agent(agent_code="A0010", agent_name="赵六", agent_phone="13700002222", agent_id_no="")])
    assert items.empty


def test_an_agent_without_id_and_another_name_is_a_finding(invoke, tmp_path):
    items = night(invoke, tmp_path, [row(applicant_phone="13700002222")],
                  [agent(agent_code="A0010", agent_name="赵六", agent_phone="13700002222", agent_id_no="")])
    assert items["policy_no"].tolist() == ["P0001"]
