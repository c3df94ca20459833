"""Which rows are checked: quarantine (cannot be checked) and scope (SPEC 2.1 coverage term).

Every row read ends in exactly one of three places, so the manifest always adds up:
quarantined (with its source line and reason), out of scope (counted), or in scope (checked).

A row is quarantined when it has no policy number, or when one of its identifying columns
(`scope.identifier_guard`: policy number, branch, channel, agent code - stored and shown as they
are) holds what has the form of an identity number, a mobile or a bank card, where most of the
column's numbers of that length have it too (checks.personal.shifted: a column of all-digit codes
passes such checks only by chance): the mark of an export that shifted its columns, whose row
cannot be checked and whose value must not be published. The quarantine names the column and
the form, never the value; the night warns with their count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from checks.personal import CARD, ID, MOBILE, shifted
from pipeline.ingest.columns import BY_NAME
from pipeline.settings import Settings

FORM_NAMES = {ID: "resident identity number", MOBILE: "mobile number", CARD: "bank card number"}


@dataclass
class Split:
    in_scope: pd.Series  # bool per row
    out_of_scope: pd.Series
    quarantined: pd.DataFrame  # line-level quarantine rows for records that were parsed
    term_unreadable: int


def _guarded(frame: pd.DataFrame, columns: list[str], today: dt.date) -> pd.Series:
    """Per row, why an identifying column cannot be published (the first such column), or missing."""
    why = pd.Series(pd.NA, index=frame.index, dtype="str")
    for column in columns:
        present = frame[column].notna()
        if not present.any():
            continue
        form = shifted(frame.loc[present, column], today)
        form = form[form.notna() & why[form.index].isna()]
        if len(form):
            why[form.index] = (f"{column} ({BY_NAME[column].label}) has the form of a " + form.map(FORM_NAMES) +
                               ": columns shifted in the export? The row was not checked")
    return why


def split(frame: pd.DataFrame, sources: list[str], cfg: Settings, today: dt.date) -> Split:
    suspect = _guarded(frame, list(cfg.scope.identifier_guard), today)
    no_policy = frame["policy_no"].isna() | suspect.notna()
    years = frame["coverage_years_value"]
    unreadable = frame["coverage_years"].notna() & years.isna()
    short = years < float(cfg.scope.min_coverage_years)
    if not cfg.scope.unreadable_term_in_scope:
        short |= unreadable
    out = short.fillna(False) & ~no_policy
    q = frame.loc[no_policy, ["_file", "_line", "policy_no"]]
    reason = suspect[no_policy].fillna("no policy number (policy_no / 保单号 is empty or a placeholder)")
    shown = q["policy_no"].where(~reason.str.startswith("policy_no ("))  # a policy number only when it is one
    quarantined = pd.DataFrame({
        "source_file": np.asarray(sources, dtype=object)[q["_file"].to_numpy()] if len(q) else [],
        "line": q["_line"].to_numpy(),
        "policy_no": shown.astype(object).where(shown.notna(), None).to_numpy(),
        "reason": reason.to_numpy(),
    })
    return Split(~no_policy & ~out, out, quarantined, int((unreadable & ~no_policy).sum()))
