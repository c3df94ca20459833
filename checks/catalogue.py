"""Every rule of SPEC 3, declared once: its code, severity, category, title, scope and evaluator.

Every list of rules elsewhere is derived from here (ROW_RULES, NIGHT_RULES, BOOK_RULES,
RULE_OF_KIND, EVALUATORS). A rule is added in this one place: a `RuleSpec` line naming the
vectorised function that evaluates it.

Scopes:

- ``row``: judged on each row alone, chunk by chunk (pipeline.rows.chunks);
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
ROW, NIGHT, BOOK, COMPLAINTS = "row", "night", "book", "complaints"
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
    fires: str = ""  # when it fires, for the docs (docs/rules.md is generated from the catalogue)


_RULES = (
    RuleSpec(
        "MISSING_FIELD", ERROR, "资料不完整", "关键信息缺失", ROW, completeness.missing_field,
        fires=("a key field is missing or a placeholder; applicant: name, sex, birth date, id type, id number, "
               "address, phone; insured: name, sex, birth date, id type, id number; insured id exempt under 18 on "
               "the issue date; insured fields exempt when relation is 本人"),
    ),
    RuleSpec(
        "ID_FORMAT", ERROR, "身份信息校验不符", "身份证号码位数或格式错误", ROW, identity.id_format,
        fires="an ID-card number is neither 18 characters nor 15 digits",
    ),
    RuleSpec(
        "ID_CORRUPTED", ERROR, "身份信息校验不符", "身份证号码被表格软件损坏", ROW, identity.id_corrupted,
        fires="spreadsheet damage: scientific notation, trailing `.0`, digits lost to float precision",
    ),
    RuleSpec(
        "ID_CHECKSUM", ERROR, "身份信息校验不符", "身份证号码校验位错误", ROW, identity.id_checksum,
        fires="the ISO 7064 MOD 11-2 check character is wrong",
    ),
    RuleSpec(
        "ID_BIRTH_INVALID", ERROR, "身份信息校验不符", "身份证号码中的出生日期无效", ROW, identity.id_birth_invalid,
        fires="the embedded birth date is not a real date, is in the future or before 1900",
    ),
    RuleSpec(
        "ID_REGION_UNKNOWN", WARNING, "身份信息校验不符", "身份证号码地址码不存在", ROW, identity.id_region_unknown,
        fires="the address code was never a GB/T 2260 code",
    ),
    RuleSpec(
        "ID_LEGACY_15", WARNING, "身份信息校验不符", "15位旧身份证号码", ROW, identity.id_legacy_15,
        fires="a 15-digit first-generation number",
    ),
    RuleSpec(
        "ID_SEX_MISMATCH", ERROR, "身份信息校验不符", "性别与身份证号码不符", ROW, identity.id_sex_mismatch,
        fires="recorded sex contradicts the sequence digit's parity",
    ),
    RuleSpec(
        "ID_BIRTH_MISMATCH", ERROR, "身份信息校验不符", "出生日期与身份证号码不符", ROW, identity.id_birth_mismatch,
        fires="recorded birth date differs from the embedded one",
    ),
    RuleSpec(
        "PHONE_INVALID", ERROR, "联系方式异常", "电话号码无效", ROW, contacts.phone_invalid,
        fires="not a valid mainland phone number",
    ),
    RuleSpec(
        "PHONE_PLACEHOLDER", ERROR, "联系方式异常", "电话号码为虚假填充号码", ROW, contacts.phone_placeholder,
        fires=("a filler number: listed in the config (13800138000, 12345678901, 13888888888, 010-12345678), one "
               "digit throughout, the whole number a consecutive run, or a real landline whose 7- or 8-digit local "
               "number is a run — \"real\" judged by phonenumbers' CN metadata (a valid fixed line whose area code is "
               "the one phonenumbers finds: 010-12345678, 0755-12345678, 023-87654321); a number that only starts "
               "like an area code (238 1234 5678) is `PHONE_INVALID`; a mobile with a run only at its end (138 1234 "
               "5678) is a vanity number and is not flagged"),
    ),
    RuleSpec(
        "BANK_ACCOUNT_INVALID", ERROR, "账户信息异常", "缴费账号格式无效", ROW, contacts.bank_account_invalid,
        fires="not 8–30 digits after normalisation",
    ),
    RuleSpec(
        "BANK_CARD_LUHN", WARNING, "账户信息异常", "银行卡号校验未通过", ROW, contacts.bank_card_luhn,
        fires="a 16–19 digit card number failing Luhn",
    ),
    RuleSpec(
        "BANK_HOLDER_MISMATCH", WARNING, "账户信息异常", "缴费账户户名非投保人本人", ROW, contacts.bank_holder_mismatch,
        fires="the account holder is not the applicant",
    ),
    RuleSpec(
        "PHONE_SHARED", WARNING, "可疑线索", "同一电话号码出现在不同客户的资料中", BOOK, kind="P",
        fires=("one phone (E.164) in the records of two or more different customers across tonight's extract and the"
               " contact index (every earlier night and book load), applicant and insured of one policy not counted;"
               " one item per policy and role involved, earlier policies included; evidence lists the other policies"
               " and masked customers; `cluster_id`/`cluster_size`"),
    ),
    RuleSpec(
        "BANK_SHARED", WARNING, "可疑线索", "同一银行账号出现在不同客户的资料中", BOOK, kind="B",
        fires="the same for bank accounts (digits)",
    ),
    RuleSpec(
        "PHONE_IS_AGENT", ERROR, "可疑线索", "客户电话为业务员电话", ROW, agents.phone_is_agent,
        fires=("a customer's phone is an agent's (roster `--agents`) who is not that customer: same identity number,"
               " or same name where the roster has no number; without a roster the manifest says `not_applicable`"),
    ),
    RuleSpec(
        "BANK_IS_AGENT", ERROR, "可疑线索", "缴费账号为业务员银行账号", ROW, agents.bank_is_agent,
        fires=("the applicant's premium account (digits, 8-30) is an agent's `agent_bank_account` on the roster and the"
               " applicant is not that agent (same identity number, or same name where the roster has no number);"
               " without a roster, or a roster without that column, `not_applicable`"),
    ),
    RuleSpec(
        "ADDRESS_IS_AGENT", ERROR, "可疑线索", "客户地址为业务员地址", ROW, agents.address_is_agent,
        fires=("the applicant's address is an agent's `agent_address` on the roster and the applicant is not that agent:"
               " the same street-and-number detail after normalisation (spaces, punctuation, full-width forms, 號/樓,"
               " 幢 for 栋, Chinese numerals before a unit), the province/city/county names written, shortened or left"
               " out but never different; details under 4 characters are not compared (docs/rules.md, limits);"
               " without a roster, or a roster without that column, `not_applicable`"),
    ),
    RuleSpec(
        "DUPLICATE_POLICY", ERROR, "资料不完整", "同一保单号在提取文件中重复出现", NIGHT, duplicates.duplicate_policy,
        fires=("the same `policy_no` more than once in one night's extract files: one item per policy, evidence "
               "lists every file and line"),
    ),
    RuleSpec(
        "AGENT_COMPLAINT_RECHECK", WARNING, "投诉复核", "销售人员投诉复核：请复核客户信息并回访", COMPLAINTS,
        fires=("an agent or agency (`agent_code`) reached `rules.complaints.threshold` (2) substantiated complaints of"
               " `rules.complaints.types` (销售误导) dated within `rules.complaints.window_days` (365) of the night"
               " (`custdq complaints load`): one item for every policy of theirs the contact index holds, raised once"
               " per trigger (the first complaints that reached the threshold), evidence naming the complaints;"
               " settled by people, never resolved by a night"),
    ),
    RuleSpec(
        "FIELD_INVALID", ERROR, "资料不完整", "关键信息无法识别", ROW, completeness.field_invalid,
        fires=("a key date (birth dates, issue date, receipt date) or sex code is present but unreadable; evidence "
               "shows its shape only (first and last character, punctuation, length), never the value"),
    ),
)

RULES: dict[str, RuleSpec] = {r.code: r for r in _RULES}


def codes(scope: str) -> tuple[str, ...]:
    """The codes of one scope, in catalogue order."""
    return tuple(r.code for r in _RULES if r.scope == scope)


ROW_RULES = codes(ROW)
NIGHT_RULES = codes(NIGHT)
BOOK_RULES = codes(BOOK)
COMPLAINT_RULES = codes(COMPLAINTS)  # judged by pipeline.cases.complaints against the store and the index
# items no night resolves: a re-check is a task, closed by the person who did it
SETTLED_BY_PEOPLE = frozenset(COMPLAINT_RULES)
RULE_OF_KIND: dict[str, str] = {r.kind: r.code for r in _RULES if r.scope == BOOK and r.kind}
# the evaluators by code (a test may swap one for a broken one: the engine reads this dict)
EVALUATORS: dict[str, Evaluator] = {r.code: r.evaluator for r in _RULES if r.evaluator is not None}
