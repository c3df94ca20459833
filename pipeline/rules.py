"""Runs every enabled rule over the in-scope frame into one findings table (`run_rules`), and
the shared-contact rules over the book's pool (pipeline.book.detect), through one wrapper.

Each rule is timed and isolated (`isolated`): a rule that raises is recorded as an `error` outcome (its
exception type only, never a value from the data) and the batch goes on, as in pandera's lazy
validation. Outcomes carry numbers per rule: rows tested, rows failed, percent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import TypeVar

import pandas as pd

from checks import findings as fnd
from checks.catalogue import BOOK_RULES, EVALUATORS, RULES
from checks.findings import RuleContext
from pipeline.ingest.columns import EXTRACT_COLUMNS
from pipeline.settings import Section, Settings

log = logging.getLogger("custdq")


@dataclass
class Outcome:
    rule_code: str
    severity: str
    status: str  # ok | error | disabled | not_implemented | not_applicable
    rows_tested: int = 0
    rows_failed: int = 0
    findings: int = 0
    percent_failed: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    reason: str | None = None  # why a rule did not apply
    book: dict | None = None  # book-wide rules: earlier policies implicated, clusters

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def judged(cls, rule_code: str, severity: str, tested: int, failed: int, findings: int, seconds: float,
               **extra) -> Outcome:
        """A rule that ran: `failed` of `tested` rows raised `findings` findings (the one home
        of the percent's formula)."""
        return cls(rule_code, severity, "ok", tested, failed, findings,
                   round(100.0 * failed / tested, 4) if tested else 0.0, round(seconds, 3), **extra)


PARAM_KEYS = ("minor_age", "id_card_types", "residence_permit_types", "foreign_permanent_types", "phone_placeholders")


def _plain(value: object) -> object:
    """A setting as the rules (checks/, which know nothing of pipeline.settings) read it: a
    section as a plain mapping, lists as they are."""
    return value.model_dump() if isinstance(value, Section) else value


def context(business_date, raw: pd.DataFrame, cfg: Settings, agents: pd.DataFrame | None = None,
            night: dict | None = None) -> RuleContext:
    """The RuleContext of one chunk of a night (or one book load): labels, rule parameters,
    roster; `night` carries analyses of the roster from chunk to chunk."""
    return RuleContext(business_date, raw, {c.name: c.label for c in EXTRACT_COLUMNS},
                       {k: _plain(getattr(cfg, k)) for k in PARAM_KEYS}, agents, night=night if night is not None else {})


def severity_of(code: str, cfg: Settings) -> str:
    return cfg.rules.severity.get(code, RULES[code].severity)


T = TypeVar("T")


def isolated(codes: tuple[str, ...], cfg: Settings, rows: int, evaluate: Callable[[], T],
             passes: tuple[type[BaseException], ...] = ()) -> tuple[T | None, list[Outcome]]:
    """`evaluate()`, the evaluation of the rules `codes` (one rule, or rules that share one
    computation, like the two shared-contact rules), timed and isolated: a rule that does not
    apply, or raises, becomes an outcome saying so (its exception's type only, never a value
    from the data) and the night goes on without its findings. Exceptions of the types `passes`
    are not the rules' (a failed store or index) and end the night. Returns (what `evaluate`
    returned, or None; the outcomes of the rules that did not run, else [])."""
    started = time.perf_counter()
    try:
        return evaluate(), []
    except passes:
        raise
    except fnd.NotApplicable as why:
        return None, [Outcome(code, severity_of(code, cfg), "not_applicable", reason=str(why)) for code in codes]
    except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the night
        log.error("rule %s failed: %s (the other rules went on)", "/".join(codes), type(exc).__name__)
        seconds = round(time.perf_counter() - started, 3)
        return None, [Outcome(code, severity_of(code, cfg), "error", rows, error=type(exc).__name__, seconds=seconds)
                      for code in codes]


def _findings(evaluate: Callable, frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    return evaluate(frame, ctx)[fnd.FINDING_COLUMNS]


def run_rules(frame: pd.DataFrame, ctx: RuleContext, cfg: Settings,
              codes: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, list[Outcome]]:
    """The rules `codes` (default: every rule but the book-wide ones, BOOK_RULES, which
    pipeline.book.detect judges) over `frame`, each `isolated`."""
    disabled = set(cfg.rules.disabled)
    parts, outcomes = [], []
    for code, spec in RULES.items():
        if code in BOOK_RULES if codes is None else code not in codes:
            continue
        severity = severity_of(code, cfg)
        if code in disabled:
            outcomes.append(Outcome(code, severity, "disabled"))
            continue
        evaluate = EVALUATORS.get(code)
        if evaluate is None:
            outcomes.append(Outcome(code, severity, "not_implemented"))
            continue
        started = time.perf_counter()
        found, failures = isolated((code,), cfg, len(frame), partial(_findings, evaluate, frame, ctx))
        if found is None:
            outcomes += failures
            continue
        found = found.assign(rule_code=code, severity=severity, category=spec.category)
        failed = int(found["row"].nunique())
        outcomes.append(Outcome.judged(code, severity, len(frame), failed, len(found),
                                       time.perf_counter() - started))
        parts.append(found)
    table = pd.concat(parts, ignore_index=True) if parts else fnd.empty().assign(rule_code="", severity="", category="")
    return table, outcomes


def merge_outcomes(a: list[Outcome], b: list[Outcome]) -> list[Outcome]:
    """The outcomes of two chunks of one night as one (a rule that failed in either failed)."""
    if not a:
        return list(b)
    theirs = {o.rule_code: o for o in b}
    out = []
    for mine in a:
        other = theirs.get(mine.rule_code)
        if other is None:
            out.append(mine)
            continue
        if "error" in (mine.status, other.status):  # its findings of every chunk are dropped (run.py)
            broken = mine if mine.status == "error" else other
            out.append(replace(broken, rows_tested=mine.rows_tested + other.rows_tested, rows_failed=0, findings=0,
                               percent_failed=0.0, seconds=round(mine.seconds + other.seconds, 3)))
            continue
        if mine.status != "ok" or other.status != "ok":
            out.append(mine if mine.status != "ok" else other)
            continue
        tested, failed = mine.rows_tested + other.rows_tested, mine.rows_failed + other.rows_failed
        out.append(Outcome.judged(mine.rule_code, mine.severity, tested, failed, mine.findings + other.findings,
                                  mine.seconds + other.seconds))
    return out
