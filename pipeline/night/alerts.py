"""What an operator must know about a night, said without `-v` (SPEC 7 "Warnings"): one line
each, printed after the run's summary as `warning: ...`, kept in the manifest (`warnings`) and
shown on the dashboard's top cards.

Each line says what happened and what it means, never a value from a customer's record (coded
values such as a sex code or a channel name may appear). Each is written here once in English
(the command line and the manifest's `warnings`, for operators and their scripts, SPEC 7) and
once in Chinese (the manifest's `warnings_zh`, shown as 运行提醒 on the dashboards).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline.cases.labels import column_title, expectation_title, rule_title


class Alert(NamedTuple):
    en: str
    zh: str


REASONS_ZH = {"no agent roster given (--agents)": "未提供业务员名单（--agents）",
              "the agent roster has no 业务员银行账号 (agent_bank_account)": "业务员名单中没有“业务员银行账号”一列",
              "the agent roster has no 业务员地址 (agent_address)": "业务员名单中没有“业务员地址”一列"}  # checks' NotApplicable reasons
DIGITS = re.compile(r"\d{4}")
_SHIFTED = re.compile(r"(\w+) \([^)]*\) has the form of an? [\w ]+?(?=:)")  # rows.scope's reason


def coded(values: list, most: int = 5) -> list[str]:
    """Unexpected coded values fit to show: short, without a run of digits (a column that holds
    identity numbers or names by mistake is counted, never printed).

    >>> coded(["9", "未说明", "440106198005170035", "张三丰的身份证号码填在这里了"])
    ['9', '未说明', '2 other values']
    """
    fit = [str(v) for v in values if len(str(v)) <= 10 and not DIGITS.search(str(v))][:most]
    rest = len(values) - len(fit)
    return fit + ([f"{rest} other value{'s' if rest > 1 else ''}"] if rest else [])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def expectation(result: dict, reference: dict) -> Alert:
    """One failed expectation, in words."""
    name, kw = result["name"], result.get("kwargs", {})
    seen = result.get("observed") or []
    value = seen[0] if seen and not isinstance(seen[0], str) else None
    blocking = " (blocking: exit 1)" if result.get("blocking") else ""
    stop = "（阻断：退出码 1）" if result.get("blocking") else ""
    if name == "volume" and value is not None:
        return Alert(f"expectation volume failed{blocking}: rows read {_pct(value)} of the median of the last "
                     f"{reference.get('nights')} nights ({reference.get('median_rows_read'):.0f} rows); expected "
                     f"{_pct(kw.get('min_value', 0))} to {_pct(kw.get('max_value', 0))}",
                     f"数据量期望未通过{stop}：读取行数为近 {reference.get('nights')} 晚中位数"
                     f"（{reference.get('median_rows_read'):.0f} 行）的 {_pct(value)}，应在 "
                     f"{_pct(kw.get('min_value', 0))} 至 {_pct(kw.get('max_value', 0))} 之间")
    if name.startswith("null_rate:") and value is not None:
        column = name.split(":", 1)[1]
        return Alert(f"expectation {name} failed{blocking}: {column} is empty in {100 * value:.1f}% of "
                     f"the rows read (at most {100 * kw.get('max_value', 0):.1f}% expected)",
                     f"{expectation_title(name)} 期望未通过{stop}：{column_title(column)} 在 {100 * value:.1f}% 的行中为空"
                     f"（应不超过 {100 * kw.get('max_value', 0):.1f}%）")
    if name == "unique_policy_no" and value is not None:
        return Alert(f"expectation {name} failed{blocking}: {value:.0f} row{'s' if value != 1 else ''} repeat"
                     f"{'' if value != 1 else 's'} a policy number of tonight's extract",
                     f"保单号唯一性期望未通过{stop}：今晚的数据中有 {value:.0f} 行保单号重复")
    if name.startswith("value_set:"):
        column, shown = name.split(":", 1)[1], ", ".join(coded(seen))
        return Alert(f"expectation {name} failed{blocking}: {column} holds values outside the expected set ({shown})",
                     f"{expectation_title(name)} 期望未通过{stop}：有不在允许范围内的取值（{shown}）")
    if name.startswith("rule_failure:") and value is not None:
        code = name.split(":", 1)[1]
        return Alert(f"expectation {name} failed{blocking}: {code} failed on {value:.1f}% of the "
                     f"rows tested (at most {kw.get('max_value', 0):.1f}% expected)",
                     f"规则失败率期望未通过{stop}：{rule_title(code)} 在 {value:.1f}% 的被检行上不通过"
                     f"（应不超过 {kw.get('max_value', 0):.1f}%）")
    return Alert(f"expectation {name} failed{blocking}", f"{expectation_title(name)} 期望未通过{stop}")


def empty(rows: dict) -> list[Alert]:
    """A night that checked nothing, said on any store (the volume expectation needs earlier
    nights to compare with, and a first night has none).

    >>> empty({"rows_read": 0, "rows_in_scope": 0, "rows_out_of_scope": 0, "rows_quarantined": 0})[0].zh
    '数据文件中没有任何记录（只有表头或为空）：今晚什么也没有检查；请确认发送的文件是否正确'
    """
    if not rows["rows_read"]:
        return [Alert("the extract files hold no record (a header only, or nothing): nothing was checked tonight; "
                      "was the right file sent?",
                      "数据文件中没有任何记录（只有表头或为空）：今晚什么也没有检查；请确认发送的文件是否正确")]
    if not rows["rows_in_scope"]:
        return [Alert(f"no row of the {rows['rows_read']} read is in scope ({rows['rows_out_of_scope']} out of scope, "
                      f"{rows['rows_quarantined']} quarantined): nothing was checked tonight; manifest.json and "
                      "quarantine.csv say why",
                      f"读取的 {rows['rows_read']} 行均不在检查范围内（范围外 {rows['rows_out_of_scope']} 行，隔离 "
                      f"{rows['rows_quarantined']} 行）：今晚什么也没有检查；原因见 manifest.json 与 quarantine.csv")]
    return []


def rewound(nights: list[str]) -> Alert:
    return Alert(f"rewound night(s) {', '.join(nights)}: run them again, oldest first",
                 f"已撤回批次 {'、'.join(nights)}：请从最早的一晚起重新运行")


def recovered(nights: list[str]) -> Alert:
    return Alert(f"an earlier command was stopped between the contact index's commit and the case store's; "
                 f"night(s) {', '.join(nights)} were taken back on both sides: run them again, oldest first",
                 f"上一条命令在联系方式索引与案件库两次提交之间中断；批次 {'、'.join(nights)} 已在两边撤回：请从最早的一晚起重新运行")


def night_warnings(manifest: dict, gate_results: list[dict], reference: dict,
                   same_inputs: list[tuple[str, str]], extra: list[Alert]) -> list[Alert]:
    """Every warning of the night, in a fixed order."""
    out = empty(manifest["rows"]) + list(extra)
    out += [expectation(r, reference) for r in gate_results if not r["success"]]
    idle: dict[str, list[str]] = {}  # the rules that did not run, by their reason: one line a reason
    for code, rule in manifest["rules"].items():
        if rule["status"] == "not_applicable":
            idle.setdefault(rule.get("reason", "not applicable"), []).append(code)
    for reason, codes in idle.items():
        out.append(Alert(f"rule{'s' if len(codes) > 1 else ''} {', '.join(codes)} did not run: {reason}",
                         f"规则 {'、'.join(rule_title(c) for c in codes)} 未运行：{REASONS_ZH.get(reason, reason)}"))
    for code, rule in manifest["rules"].items():
        if rule["status"] == "error":
            error = rule.get("error", "an error")
            out.append(Alert(f"rule {code} failed with {error}: its findings are missing tonight",
                             f"规则 {rule_title(code)} 运行出错（{error}）：今晚缺少它的发现"))
    for reason, rows in manifest.get("quarantine_reasons", {}).items():
        shift = _SHIFTED.match(reason)
        if shift:
            out.append(Alert(f"{rows} row{'s' if rows != 1 else ''} quarantined, not checked: {shift.group(0)} "
                             f"(an export that shifted its columns? quarantine.csv lists them; if such numbers are "
                             f"your own codes, take {shift.group(1)} out of scope.identifier_guard)",
                             f"{rows} 行被隔离、未检查：{shift.group(1)} 一列出现了个人号码的格式（导出时列错位？"
                             f"见 quarantine.csv；如这些号码是贵公司自己的代码，请把 {shift.group(1)} 从 "
                             "scope.identifier_guard 中去掉）"))
    d = manifest["deadlines"]
    if d["calendar_years_uncovered"]:
        years = ", ".join(map(str, d["calendar_years_uncovered"]))
        out.append(Alert(f"no official working-day calendar for {years}: deadlines there count weekends only and "
                         "are marked provisional (add calendar.years)",
                         f"{years} 年尚无官方工作日安排：这些年份的期限只按周末推算，标记为“期限待定”"
                         "（请补充 calendar.years）"))
    for path, night in same_inputs:
        out.append(Alert(f"input {path} is the same file (sha256) as an input of the night of {night}",
                         f"输入文件 {path} 与 {night} 批次的输入文件相同（sha256 一致）"))
    if not d["list_due_met"]:
        out.append(Alert(f"the list was due on {d['list_due']} (T+1 working day) and is late",
                         f"清单应于 {d['list_due']}（T+1 个工作日）下发，已逾期"))
    return out
