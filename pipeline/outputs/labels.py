"""The Chinese words people read for custdq's codes (worklists, `cases list`, `cases show`):
roles, statuses, close reasons, events, rules (their titles come from checks/catalogue.py)."""

from __future__ import annotations

from checks.catalogue import RULES

ROLE_NAMES = {"applicant": "投保人", "insured": "被保险人", "policy": "保单"}
SEVERITY_NAMES = {"error": "错误", "warning": "警告"}
STATUS_NAMES = {"new": "新增", "open": "未结", "reopened": "重新打开"}
RULE_STATUS_NAMES = {"ok": "正常", "not_applicable": "未运行", "error": "出错", "disabled": "已停用",
                     "not_implemented": "未实现"}  # a rule's outcome on a night (the manifest's `rules`)
STATE_NAMES = {"open": "未结", "closed": "已关闭"}
CLOSE_NAMES = {"corrected": "已更正", "legitimate": "核实无误", "false": "虚假资料", "resolved": "不再触发（自动关闭）"}
ACTION_NAMES = {"raised": "发现", "reopened": "重新打开", "raised_again": "再次发现", "resolved": "不再触发，自动关闭",
                "suppressed": "已核实无误，不再提示", "disposed": "处置"}

# the item fields an event names, as the worklists name them
FIELD_NAMES = {"state": "状态", "close_reason": "关闭原因", "closed_on": "关闭日期", "work_state": "处理状态",
               "result": "处理结果", "note": "处理说明", "first_seen": "首次发现", "list_due": "清单下发期限",
               "channel_due": "渠道核查期限", "cooling_off_end": "犹豫期截止", "due_date": "处理期限",
               "provisional": "期限待定", "reopen_reason": "重开原因", "rule_code": "规则代码", "last_seen": "最近发现"}


def value_name(field: str, value) -> str:
    """An event's value as people read it: 空 for none, Chinese for the coded states."""
    if value is None or value == "":
        return "空"
    if field == "close_reason":
        return CLOSE_NAMES.get(value, value)
    if field == "state":
        return STATE_NAMES.get(value, value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def changes(what: str | None) -> str:
    """An event's JSON `what` as people read it: 处理状态 未处理 → 已完成；处理结果 空 → 核实无误."""
    import json

    fields = json.loads(what) if what else {}
    return "；".join(f"{FIELD_NAMES.get(k, k)} {value_name(k, v[0])} → {value_name(k, v[1])}"
                    if isinstance(v, list) and len(v) == 2 else f"{FIELD_NAMES.get(k, k)} {value_name(k, v)}"
                    for k, v in fields.items())


def rule_name(code: str) -> str:
    """The rule's code with its Chinese title: `PHONE_SHARED 电话号码多人共用`."""
    rule = RULES.get(code)
    return f"{code} {rule.title}" if rule else code
