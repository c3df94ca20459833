"""The Chinese words people read for custdq's codes (worklists, `cases list`, `cases show`):
roles, statuses, close reasons, events, rules (their titles come from checks/catalogue.py)."""

from __future__ import annotations

from checks.catalogue import RULES
from pipeline.ingest.columns import BY_NAME

# what a person records on an item (SPEC 5): its 处理结果 and 处理状态, in the worklists' order
RESULTS = ["已更正", "核实无误", "虚假资料", "无法联系"]  # 处理结果 (SPEC 5)
STATES = ["未处理", "处理中", "已完成"]  # 处理状态 (SPEC 5): what a person may choose
REVIEW_STATE = "待复核"  # 处理状态 of a settled item waiting for its review (review.results); set by custdq only
WORK_STATES = [*STATES, REVIEW_STATE]  # every 处理状态 an item may show

ROLE_NAMES = {"applicant": "投保人", "insured": "被保险人", "policy": "保单"}
SEVERITY_NAMES = {"error": "错误", "warning": "警告"}
STATUS_NAMES = {"new": "新增", "open": "未结", "reopened": "重新打开"}
RULE_STATUS_NAMES = {"ok": "正常", "not_applicable": "未运行", "error": "出错", "disabled": "已停用",
                     "not_implemented": "未实现"}  # a rule's outcome on a night (the manifest's `rules`)
STATE_NAMES = {"open": "未结", "closed": "已关闭"}
CLOSE_NAMES = {"corrected": "已更正", "legitimate": "核实无误", "false": "虚假资料", "resolved": "不再触发（自动关闭）"}
ACTION_NAMES = {"raised": "发现", "reopened": "重新打开", "raised_again": "再次发现", "resolved": "不再触发，自动关闭",
                "suppressed": "已核实无误，不再提示", "disposed": "处置", "approved": "复核通过",
                "returned": "复核退回", "assigned": "分派", "attached": "添加附件"}

# the item fields an event names, as the worklists name them
FIELD_NAMES = {"state": "状态", "close_reason": "关闭原因", "closed_on": "关闭日期", "work_state": "处理状态",
               "result": "处理结果", "note": "处理说明", "first_seen": "首次发现", "list_due": "清单下发期限",
               "channel_due": "渠道核查期限", "cooling_off_end": "犹豫期截止", "due_date": "处理期限",
               "provisional": "期限待定", "reopen_reason": "重开原因", "rule_code": "规则代码", "last_seen": "最近发现",
               "reason": "退回原因", "assignee": "处理人", "attachment": "附件", "size": "大小（字节）"}


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


def rule_title(code: str) -> str:
    spec = RULES.get(code)
    return f"{spec.title}（{code}）" if spec else code


KINDS_ZH = {"sex": "性别（投保人、被保险人）", "id_type": "证件类型（投保人、被保险人）", "channel": "销售渠道"}  # value sets


def column_title(name: str) -> str:
    """An extract column as the worklists name it (the coded kinds of the value sets by theirs)."""
    return KINDS_ZH.get(name) or (BY_NAME[name].label if name in BY_NAME else name)


def expectation_title(name: str) -> str:
    """A batch expectation's name as managers read it.

    >>> expectation_title("null_rate:applicant_name"), expectation_title("rule_failure:ID_CHECKSUM")
    ('空值率：投保人姓名', '规则失败率：身份证号码校验位错误（ID_CHECKSUM）')
    """
    kind, _, what = name.partition(":")
    if kind == "volume":
        return "数据量"
    if kind == "unique_policy_no":
        return "保单号唯一"
    if kind == "null_rate":
        return f"空值率：{column_title(what)}"
    if kind == "value_set":
        return f"取值范围：{column_title(what)}"
    if kind == "rule_failure":
        return f"规则失败率：{rule_title(what)}"
    return name
