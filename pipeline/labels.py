"""The Chinese words people read for custdq's codes (worklists, `cases list`, `cases show`):
roles, statuses, close reasons, events, rules (their titles come from checks/catalogue.py)."""

from __future__ import annotations

from checks.catalogue import RULES

ROLE_NAMES = {"applicant": "投保人", "insured": "被保险人", "policy": "保单"}
SEVERITY_NAMES = {"error": "错误", "warning": "警告"}
STATUS_NAMES = {"new": "新增", "open": "未结", "reopened": "重新打开"}
STATE_NAMES = {"open": "未结", "closed": "已关闭"}
CLOSE_NAMES = {"corrected": "已更正", "legitimate": "核实无误", "false": "虚假资料", "resolved": "不再触发（自动关闭）"}
ACTION_NAMES = {"raised": "发现", "reopened": "重新打开", "raised_again": "再次发现", "resolved": "不再触发，自动关闭",
                "suppressed": "已核实无误，不再提示", "disposed": "处置"}


def rule_name(code: str) -> str:
    """The rule's code with its Chinese title: `PHONE_SHARED 电话号码多人共用`."""
    rule = RULES.get(code)
    return f"{code} {rule.title}" if rule else code
