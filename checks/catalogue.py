"""Every rule of SPEC 3, declared once. Evaluation lives elsewhere (see registry.py).

The catalogue holds the whole contract, including rules whose evaluator arrives in a later
release: the engine reports those as `not_implemented` in the manifest rather than pretending
they passed.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class RuleSpec:
    code: str
    severity: str
    category: str
    title: str  # shown to people


_RULES = (
    RuleSpec("MISSING_FIELD", ERROR, "资料不完整", "关键信息缺失"),
    RuleSpec("ID_FORMAT", ERROR, "身份信息校验不符", "身份证号码位数或格式错误"),
    RuleSpec("ID_CORRUPTED", ERROR, "身份信息校验不符", "身份证号码被表格软件损坏"),
    RuleSpec("ID_CHECKSUM", ERROR, "身份信息校验不符", "身份证号码校验位错误"),
    RuleSpec("ID_BIRTH_INVALID", ERROR, "身份信息校验不符", "身份证号码中的出生日期无效"),
    RuleSpec("ID_REGION_UNKNOWN", WARNING, "身份信息校验不符", "身份证号码地址码不存在"),
    RuleSpec("ID_LEGACY_15", WARNING, "身份信息校验不符", "15位旧身份证号码"),
    RuleSpec("ID_SEX_MISMATCH", ERROR, "身份信息校验不符", "性别与身份证号码不符"),
    RuleSpec("ID_BIRTH_MISMATCH", ERROR, "身份信息校验不符", "出生日期与身份证号码不符"),
    RuleSpec("PHONE_INVALID", ERROR, "联系方式异常", "电话号码无效"),
    RuleSpec("PHONE_PLACEHOLDER", ERROR, "联系方式异常", "电话号码为虚假填充号码"),
    RuleSpec("BANK_ACCOUNT_INVALID", ERROR, "账户信息异常", "缴费账号格式无效"),
    RuleSpec("BANK_CARD_LUHN", WARNING, "账户信息异常", "银行卡号校验未通过"),
    RuleSpec("BANK_HOLDER_MISMATCH", WARNING, "账户信息异常", "缴费账户户名非投保人本人"),
    RuleSpec("PHONE_SHARED", WARNING, "可疑线索", "同一电话号码出现在不同客户的资料中"),
    RuleSpec("BANK_SHARED", WARNING, "可疑线索", "同一银行账号出现在不同客户的资料中"),
    RuleSpec("PHONE_IS_AGENT", ERROR, "可疑线索", "客户电话为业务员电话"),
    RuleSpec("DUPLICATE_POLICY", ERROR, "资料不完整", "同一保单号在提取文件中重复出现"),
    RuleSpec("FIELD_INVALID", ERROR, "资料不完整", "关键信息无法识别"),
)

RULES: dict[str, RuleSpec] = {r.code: r for r in _RULES}
