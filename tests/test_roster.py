"""The agent roster (`--agents`, SPEC 2.2): any extract format, Chinese headers, its own
header contract."""

from __future__ import annotations

import json

from tests.helpers import row, write_csv, write_xlsx

AGENT = {"agent_code": "A0001", "agent_name": "王五", "agent_phone": "13600001111",
         "agent_id_no": "110101198001010011", "branch": "广东分公司"}
CHINESE = {"agent_code": "业务员代码", "agent_name": "业务员姓名", "agent_phone": "业务员电话",
           "agent_id_no": "业务员证件号码", "branch": "管理机构"}


def run(invoke, tmp_path, roster):
    extract = write_csv(tmp_path / "e.csv", [row()])
    out = tmp_path / "out"
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--agents", str(roster),
                    "--out", str(out), "--quiet")
    return result, out


def test_xlsx_roster_with_chinese_headers(invoke, tmp_path):
    roster = write_xlsx(tmp_path / "agents.xlsx", [AGENT, dict(AGENT, agent_code="不详"), dict(AGENT)],
                        headers=CHINESE, title_rows=1)
    result, out = run(invoke, tmp_path, roster)
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["inputs"][1]
    assert entry["role"] == "agent roster" and entry["format"] == "xlsx" and entry["rows"] == 3
    assert entry["rows_without_agent_code"] == 1 and entry["duplicate_agent_codes"] == 1


def test_roster_lacking_the_agent_phone_is_exit_2(invoke, tmp_path):
    roster = write_csv(tmp_path / "agents.csv", [{k: v for k, v in AGENT.items() if k != "agent_phone"}],
                       headers=CHINESE)
    result, out = run(invoke, tmp_path, roster)
    assert result.exit_code == 2
    assert "agents.csv: missing required column agent_phone (业务员电话)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_files_that_are_not_a_roster(invoke, tmp_path):
    result, _ = run(invoke, tmp_path, write_csv(tmp_path / "agents.csv", [row()]))  # a policy extract
    assert result.exit_code == 2 and "missing required column agent_phone" in result.output
    unrelated = tmp_path / "notes.csv"
    unrelated.write_text("a,b\n1,2\n", encoding="utf-8")
    result, _ = run(invoke, tmp_path, unrelated)
    assert result.exit_code == 2 and "no header row naming agent_code / 业务员代码" in result.output
