"""The policy extract's columns (SPEC 2.1) and the agent roster's (SPEC 2.2).

One table declares every canonical name, its Chinese aliases and whether the extract may
lack it. Header matching is exact after trimming spaces (full-width spaces included); the
config file may add aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    aliases: tuple[str, ...]
    label: str  # how the column is named to people (worklists, details)
    optional: bool = False


EXTRACT_COLUMNS: tuple[Column, ...] = (
    Column("policy_no", ("保单号", "保险单号"), "保单号"),
    Column("issue_date", ("承保日期", "生效日期"), "承保日期"),
    Column("receipt_date", ("回执日期", "回执签收日期"), "回执日期", optional=True),
    Column("product_code", ("险种代码",), "险种代码", optional=True),
    Column("coverage_years", ("保险期间", "保险期间(年)"), "保险期间", optional=True),
    Column("channel", ("销售渠道", "渠道"), "销售渠道"),
    Column("branch", ("分支机构", "管理机构", "机构"), "分支机构"),
    Column("agent_code", ("业务员代码", "营销员代码", "代理人代码"), "业务员代码"),
    Column("applicant_name", ("投保人姓名",), "投保人姓名"),
    Column("applicant_sex", ("投保人性别",), "投保人性别"),
    Column("applicant_birth_date", ("投保人出生日期",), "投保人出生日期"),
    Column("applicant_id_type", ("投保人证件类型",), "投保人证件类型"),
    Column("applicant_id_no", ("投保人证件号码",), "投保人证件号码"),
    Column("applicant_address", ("投保人联系地址", "投保人地址"), "投保人联系地址"),
    Column("applicant_phone", ("投保人电话", "投保人手机", "投保人联系电话"), "投保人电话"),
    Column("insured_name", ("被保险人姓名",), "被保险人姓名"),
    Column("insured_sex", ("被保险人性别",), "被保险人性别"),
    Column("insured_birth_date", ("被保险人出生日期",), "被保险人出生日期"),
    Column("insured_id_type", ("被保险人证件类型",), "被保险人证件类型"),
    Column("insured_id_no", ("被保险人证件号码",), "被保险人证件号码"),
    Column("insured_phone", ("被保险人电话",), "被保险人电话", optional=True),
    Column("relation", ("投被保人关系", "与投保人关系"), "投被保人关系"),
    Column("bank_account", ("缴费账号", "银行账号"), "缴费账号"),
    Column("bank_account_holder", ("账户户名", "开户人"), "账户户名", optional=True),
)

AGENT_COLUMNS: tuple[Column, ...] = (
    Column("agent_code", ("业务员代码",), "业务员代码"),
    Column("agent_name", ("业务员姓名",), "业务员姓名"),
    Column("agent_phone", ("业务员电话",), "业务员电话"),
    Column("agent_id_no", ("业务员证件号码",), "业务员证件号码"),
    Column("branch", ("分支机构", "管理机构", "机构"), "分支机构"),
    Column("agent_address", ("业务员地址", "业务员住址"), "业务员地址", optional=True),
    Column("agent_bank_account", ("业务员银行账号", "业务员账号"), "业务员银行账号", optional=True),
    Column("team", ("团队", "所属团队"), "团队", optional=True),
    Column("team_leader", ("团队主管", "团队长"), "团队主管", optional=True),
)

# complaints against agents and agencies (SPEC 9, `custdq complaints load`)
COMPLAINT_COLUMNS: tuple[Column, ...] = (
    Column("complaint_ref", ("投诉编号", "投诉单号"), "投诉编号"),
    Column("agent_code", ("业务员代码", "代理机构代码", "被投诉人代码"), "业务员代码或代理机构代码"),
    Column("complaint_date", ("投诉日期",), "投诉日期"),
    Column("complaint_type", ("投诉类型",), "投诉类型"),
    Column("substantiated", ("是否查实", "查实"), "是否查实"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in EXTRACT_COLUMNS}
CANONICAL: tuple[str, ...] = tuple(c.name for c in EXTRACT_COLUMNS)
REQUIRED: tuple[str, ...] = tuple(c.name for c in EXTRACT_COLUMNS if not c.optional)
DATE_COLUMNS = ("issue_date", "receipt_date", "applicant_birth_date", "insured_birth_date")
SEX_COLUMNS = ("applicant_sex", "insured_sex")


# full-width ASCII forms (U+FF01-U+FF5E) and the ideographic space -> their half-width forms
HALF_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def clean_header(text: object) -> str:
    """Header cell -> comparable text: full-width to half-width, BOM removed, trimmed.

    >>> clean_header(" 保险期间（年）\u3000")
    '保险期间(年)'
    """
    if text is None:
        return ""
    return str(text).replace("\ufeff", "").translate(HALF_WIDTH).strip()


def alias_map(columns: tuple[Column, ...], extra: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """header text -> canonical name, for the canonical names, the aliases and config aliases."""
    mapping: dict[str, str] = {}
    for col in columns:
        mapping[col.name] = col.name
        for alias in col.aliases:
            mapping[alias] = col.name
    known = {c.name for c in columns}
    for name, aliases in (extra or {}).items():
        if name in known:
            for alias in aliases:
                mapping[clean_header(alias)] = name
    return mapping
