"""Every rule of SPEC 3, declared once: its code, severity, category, title, scope and evaluator.

Every list of rules elsewhere is derived from here (ROW_RULES, NIGHT_RULES, BOOK_RULES,
RULE_OF_KIND, EVALUATORS). A rule is added in this one place: a `RuleSpec` line naming the
vectorised function that evaluates it.

Scopes:

- ``row``: judged on each row alone, chunk by chunk (pipeline.chunks);
- ``night``: judged over the whole night's policy numbers once the chunks are read
  (DUPLICATE_POLICY);
- ``book``: judged against the book-wide contact index (pipeline.book.detect); `kind` is the
  contact kind it looks at (P phones, B bank accounts).

An evaluator takes the in-scope normalised frame and a RuleContext and returns rows of the
findings table (checks.findings.FINDING_COLUMNS). A row or night rule declared without an
evaluator is reported as `not_implemented` in the manifest rather than pretending it passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from checks import agents, completeness, contacts, duplicates, identity
from checks.findings import RuleContext

ERROR, WARNING = "error", "warning"
ROW, NIGHT, BOOK = "row", "night", "book"
Evaluator = Callable[[pd.DataFrame, RuleContext], pd.DataFrame]


@dataclass(frozen=True)
class RuleSpec:
    code: str
    severity: str  # the default; config `rules.severity` overrides it (severity_of)
    category: str
    title: str  # shown to people (worklists' 规则名称, `cases show`, the docs)
    scope: str = ROW
    evaluator: Evaluator | None = None  # row and night rules; book rules are pipeline.book.detect's
    kind: str | None = None  # book rules: the contact kind they judge


_RULES = (
    RuleSpec("MISSING_FIELD", ERROR, "资料不完整", "关键信息缺失", ROW, completeness.missing_field),
    RuleSpec("ID_FORMAT", ERROR, "身份信息校验不符", "身份证号码位数或格式错误", ROW, identity.id_format),
    RuleSpec("ID_CORRUPTED", ERROR, "身份信息校验不符", "身份证号码被表格软件损坏", ROW, identity.id_corrupted),
    RuleSpec("ID_CHECKSUM", ERROR, "身份信息校验不符", "身份证号码校验位错误", ROW, identity.id_checksum),
    RuleSpec("ID_BIRTH_INVALID", ERROR, "身份信息校验不符", "身份证号码中的出生日期无效", ROW, identity.id_birth_invalid),
    RuleSpec("ID_REGION_UNKNOWN", WARNING, "身份信息校验不符", "身份证号码地址码不存在", ROW, identity.id_region_unknown),
    RuleSpec("ID_LEGACY_15", WARNING, "身份信息校验不符", "15位旧身份证号码", ROW, identity.id_legacy_15),
    RuleSpec("ID_SEX_MISMATCH", ERROR, "身份信息校验不符", "性别与身份证号码不符", ROW, identity.id_sex_mismatch),
    RuleSpec("ID_BIRTH_MISMATCH", ERROR, "身份信息校验不符", "出生日期与身份证号码不符", ROW, identity.id_birth_mismatch),
    RuleSpec("PHONE_INVALID", ERROR, "联系方式异常", "电话号码无效", ROW, contacts.phone_invalid),
    RuleSpec("PHONE_PLACEHOLDER", ERROR, "联系方式异常", "电话号码为虚假填充号码", ROW, contacts.phone_placeholder),
    RuleSpec("BANK_ACCOUNT_INVALID", ERROR, "账户信息异常", "缴费账号格式无效", ROW, contacts.bank_account_invalid),
    RuleSpec("BANK_CARD_LUHN", WARNING, "账户信息异常", "银行卡号校验未通过", ROW, contacts.bank_card_luhn),
    RuleSpec("BANK_HOLDER_MISMATCH", WARNING, "账户信息异常", "缴费账户户名非投保人本人", ROW,
             contacts.bank_holder_mismatch),
    RuleSpec("PHONE_SHARED", WARNING, "可疑线索", "同一电话号码出现在不同客户的资料中", BOOK, kind="P"),
    RuleSpec("BANK_SHARED", WARNING, "可疑线索", "同一银行账号出现在不同客户的资料中", BOOK, kind="B"),
    RuleSpec("PHONE_IS_AGENT", ERROR, "可疑线索", "客户电话为业务员电话", ROW, agents.phone_is_agent),
    RuleSpec("DUPLICATE_POLICY", ERROR, "资料不完整", "同一保单号在提取文件中重复出现", NIGHT, duplicates.duplicate_policy),
    RuleSpec("FIELD_INVALID", ERROR, "资料不完整", "关键信息无法识别", ROW, completeness.field_invalid),
)

RULES: dict[str, RuleSpec] = {r.code: r for r in _RULES}


def codes(scope: str) -> tuple[str, ...]:
    """The codes of one scope, in catalogue order."""
    return tuple(r.code for r in _RULES if r.scope == scope)


ROW_RULES = codes(ROW)
NIGHT_RULES = codes(NIGHT)
BOOK_RULES = codes(BOOK)
RULE_OF_KIND = {r.kind: r.code for r in _RULES if r.scope == BOOK}
# the evaluators by code (a test may swap one for a broken one: the engine reads this dict)
EVALUATORS: dict[str, Evaluator] = {r.code: r.evaluator for r in _RULES if r.evaluator is not None}
