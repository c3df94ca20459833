"""The query parameters of the pages and the API, declared once: each is read and checked by
its declaration (a value it does not allow answers 422 with why, never a 500 from a database
or a date out of range) and the OpenAPI document (pipeline.web.openapi) describes it from the
same declaration.

>>> LIMIT.check("20"), STATUS.check("reopened"), SINCE.check("2026-11-01")
(20, 'reopened', datetime.date(2026, 11, 1))
>>> LIMIT.check("5" * 5000)
Traceback (most recent call last):
...
pipeline.web.calls.Refused: 参数 limit 应为 1 到 1000 之间的整数
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from checks.catalogue import RULES
from checks.masking import holds_personal_number, mask_text
from checks.personal import form_of_text
from pipeline import clock
from pipeline.cases.labels import WORK_STATES
from pipeline.web.calls import Refused
from pipeline.web.users import LONGEST_NUMBER, MAX_NAME, holds_long_number

MAX_TEXT = 100  # characters of a free-text filter (a branch, an agent code)
_INTEGER = re.compile(r"-?[0-9]{1,12}")  # ASCII digits only: int() would take "１２", "1_000" and 4,300 digits
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
NO_NUL = "^[^\\u0000]*$"  # text holds no NUL (pipeline.web.edge refuses it with 400, and lone surrogates)
FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Param:
    """One query parameter: `kind` integer, string, date or flag; `choices` for an enumeration."""

    name: str
    kind: str
    description: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    max_length: int = MAX_TEXT
    identifying: bool = False  # a code (branch, agent): never an identity number, mobile or card
    a_name: bool = False  # a user name: never holds a number of 11 digits or more (users.LONGEST_NUMBER)

    def read(self, request: Request, strict: bool = False) -> Any:
        """The value sent (None when absent, or empty as a page's form sends it), or Refused(422);
        `strict` (the API): an empty number, date, flag or choice is refused too."""
        return self.check(request.query_params.get(self.name), strict)

    def check(self, raw: str | None, strict: bool = False) -> Any:
        if raw is None or (raw == "" and not (strict and (self.kind != "string" or self.choices))):
            return None
        if self.kind == "integer":
            if not _INTEGER.fullmatch(raw) or not self.minimum <= int(raw) <= self.maximum:  # type: ignore[operator]
                raise self._refused(f"应为 {self.minimum} 到 {self.maximum} 之间的整数",
                                    f"must be a whole number {self.minimum}..{self.maximum}")
            return int(raw)
        if self.kind == "date":
            try:
                if not _DATE.fullmatch(raw):
                    raise ValueError(raw)
                return dt.date.fromisoformat(raw)
            except ValueError:
                raise self._refused("应为日期 YYYY-MM-DD", "must be a date YYYY-MM-DD") from None
        if self.kind == "flag":
            if raw.lower() not in FLAGS:
                raise self._refused("应为 1 或 0", "must be 1 or 0")
            return FLAGS[raw.lower()]
        if self.choices and raw not in self.choices:
            raise self._refused(f"应为 {' / '.join(self.choices)} 之一", f"must be one of {', '.join(self.choices)}")
        if len(raw) > self.max_length:
            raise self._refused(f"最长 {self.max_length} 个字符", f"must be at most {self.max_length} characters")
        if self.a_name and holds_long_number(raw):
            raise self._refused(f"含有超过 {LONGEST_NUMBER} 位的数字（用户名不会含有身份证号、手机号或银行卡号）",
                                f"holds a number of more than {LONGEST_NUMBER} digits")
        if self.identifying and _personal(raw):
            # a night quarantines a row whose code has such a form (scope.identifier_guard): it would
            # match nothing, and a page would show it back in its filter form
            raise self._refused("是身份证号、手机号或银行卡号的形式（机构、业务员代码和用户名都不会是这些号码）",
                                "has the form of an identity number, a mobile or a bank card")
        return raw

    def _refused(self, why: str, reason: str) -> Refused:
        return Refused(422, f"参数 {self.name} {why}", {"reason": f"{self.name} {reason}"})

    def schema(self) -> dict:
        """Its JSON Schema, as the OpenAPI document states it."""
        if self.kind == "integer":
            return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.kind == "date":
            return {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
        if self.kind == "flag":
            return {"type": "string", "enum": list(FLAGS)}
        if self.choices:
            return {"type": "string", "enum": list(self.choices)}
        return {"type": "string", "maxLength": self.max_length, "pattern": NO_NUL}


def _personal(text: str) -> bool:
    return form_of_text(text, clock.now().date()) is not None or holds_personal_number(text)


def read_all(request: Request, declared: tuple[Param, ...]) -> dict[str, Any]:
    """Every declared parameter's value (None when absent), or Refused(422): for the API, where a
    name it does not know (a typo: `overdu=1`) would otherwise answer as if it were not sent."""
    known = {p.name for p in declared}
    unknown = sorted(mask_text(k)[:40] for k in request.query_params if k not in known)  # echoed: masked
    if unknown:
        raise Refused(422, f"未知参数 {unknown[0]}", {"reason": f"{unknown[0]} is not a parameter of this call"})
    return {p.name: p.read(request, strict=True) for p in declared}


# the worklist's filters (the /items page, its export and GET /api/items)
BRANCH = Param("branch", "string", "one branch (a branch user: one of theirs); the form of an identity number, "
               "mobile or bank card answers 422", identifying=True)
RULE = Param("rule", "string", "a rule code", choices=tuple(RULES))
CATEGORY = Param("category", "string", "a category: the items of its rules",
                 choices=tuple(sorted({r.category for r in RULES.values()})))
STATUS = Param("status", "string", "new: raised on the latest night; open: raised earlier; reopened",
               choices=("new", "open", "reopened"))
WORK_STATE = Param("work_state", "string", "处理状态", choices=tuple(WORK_STATES))
AGENT = Param("agent", "string", "an agent code; the form of an identity number, mobile or bank card answers 422",
              identifying=True)
OVERDUE = Param("overdue", "flag", "only the items past their deadline")
DUE_WITHIN = Param("due_within", "integer", "only the items due within this many days", 0, 3650)
SORT = Param("sort", "string", "the order (each an index of the store); default due_date",
             choices=("due_date", "branch", "rule_code", "policy_no"))
ORDER = Param("order", "string", "asc (default) or desc", choices=("asc", "desc"))
LIMIT = Param("limit", "integer", "items per page", 1, 1000)
OFFSET = Param("offset", "integer", "items skipped", 0, 10**9)
ASSIGNEE = Param("assignee", "string", "处理人: `me` (the caller's own items, 我的), `none` (未分配) or a user name",
                 max_length=64, a_name=True)
TEAM = Param("team", "string", "the roster's 团队 of the items' agents", max_length=200, identifying=True)
ITEM_FILTERS = (BRANCH, RULE, CATEGORY, STATUS, WORK_STATE, AGENT, ASSIGNEE, TEAM, OVERDUE, DUE_WITHIN, SORT, ORDER,
                LIMIT, OFFSET)
SELECTING = tuple(p for p in ITEM_FILTERS if p not in (SORT, ORDER, LIMIT, OFFSET))  # which items, not their order

NIGHT = Param("night", "date", "the night whose figures (default: the latest)")
USER = Param("user", "string", "one user's requests (and the logins that tried the name); the form of an identity "
             "number, mobile or bank card in it answers 422 (no user has such a name)", max_length=MAX_NAME, a_name=True)
SINCE = Param("since", "date", "from this day on (China time)")
LOG_LIMIT = Param("limit", "integer", "rows", 1, 10_000)
ACCESS_FILTERS = (USER, SINCE, LOG_LIMIT, OFFSET)
QUARTER = Param("quarter", "string", "the quarter, YYYYQn", max_length=6)
