"""The retention policy (config `retention:`, docs/retention.md): how long each kind of record is
kept, the cut-off dates it gives for an as-of date, and the checks that refuse a policy or a
date that would destroy something still needed.

One home for "what may go": `cutoffs` turns the policy into dates, and pipeline.retention.plan
turns the dates into the rows both `retention plan` and `retention purge` act on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pipeline import clock
from pipeline.errors import InputError
from pipeline.settings import Settings

# the config's names of items.close_reason (pipeline.cases); YAML reads a bare `false:` as a boolean
CLOSE_REASONS = {"corrected": "corrected", "legitimate": "legitimate", "resolved": "resolved",
                 "false_information": "false"}
QUARTER_DAYS = 92  # the longest quarter: a report of the quarter just ended must still be possible


@dataclass(frozen=True)
class Policy:
    closed_items_days: dict[str, int]
    contacts_days: int
    runs_days: int
    access_log_days: int
    complaints_days: int

    @property
    def as_json(self) -> str:
        return json.dumps({"closed_items_days": dict(sorted(self.closed_items_days.items())),
                           "contacts_days": self.contacts_days, "runs_days": self.runs_days,
                           "access_log_days": self.access_log_days, "complaints_days": self.complaints_days},
                          sort_keys=True)

    @property
    def version(self) -> str:
        """A short digest of the settings: two purges under the same version applied the same rules."""
        return hashlib.sha256(self.as_json.encode("utf-8")).hexdigest()[:12]


def from_config(cfg: Settings) -> Policy:
    """The policy of the settings (each period a whole number of days, at least 1, as loading the
    settings checked), refused (InputError, exit 2) when it would destroy what the store still
    needs (see `check`)."""
    section = cfg.retention
    closed = section.closed_items_days
    policy = Policy({reason: getattr(closed, name) for name, reason in CLOSE_REASONS.items()},
                    section.contacts_days, section.runs_days, section.access_log_days, section.complaints_days)
    check(policy, cfg.store.undo_nights, cfg.rules.complaints.window_days)
    return policy


def check(policy: Policy, undo_nights: int, complaints_window_days: int) -> None:
    """Refuse a policy that would destroy something a later step still needs."""
    if policy.runs_days < undo_nights:
        raise InputError(f"retention.runs_days ({policy.runs_days}) is shorter than store.undo_nights "
                         f"({undo_nights}): a re-run could no longer take its nights back; nothing was changed")
    if policy.closed_items_days["false"] < 2 * QUARTER_DAYS:
        raise InputError(f"retention.closed_items_days.false ({policy.closed_items_days['false']}) would destroy "
                         "虚假资料 items before the quarterly report of their quarter is due; nothing was changed")
    shortest = min(policy.closed_items_days.values())
    if policy.access_log_days < shortest:
        raise InputError(f"retention.access_log_days ({policy.access_log_days}) is shorter than the shortest "
                         f"period of closed items ({shortest}): who looked at a record kept could no longer be "
                         "shown; nothing was changed")
    if policy.complaints_days < complaints_window_days + 2 * QUARTER_DAYS:
        raise InputError(f"retention.complaints_days ({policy.complaints_days}) is shorter than "
                         f"rules.complaints.window_days ({complaints_window_days}) and two quarters: complaints "
                         "still counted towards a re-check, or in the quarter's report, would go; nothing was changed")


def quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


@dataclass(frozen=True)
class Cutoffs:
    """Records dated before these dates go (each date itself is kept)."""

    as_of: dt.date
    closed: dict[str, str]  # close reason -> ISO date: items closed before it
    contacts: str  # ISO date: contact rows of policies that last appeared before it
    runs: str  # business dates before it
    access_log: str  # ISO date: looks before it (China time)
    complaints: str  # ISO date: complaints dated before it


def cutoffs(policy: Policy, as_of: dt.date, future: bool = False) -> Cutoffs:
    """The dates of `as_of`; 虚假资料 by whole quarters, so that a quarter's report is either
    whole or gone. A date after today is refused, unless `future` (a plan, which changes nothing:
    what a purge at the year's end would destroy)."""
    today = clock.now().date()
    if as_of > today and not future:
        raise InputError(f"--as-of {as_of} is in the future (today is {today}); nothing was changed")
    closed = {r: (as_of - dt.timedelta(days=d)).isoformat() for r, d in policy.closed_items_days.items()}
    closed["false"] = quarter_start(as_of - dt.timedelta(days=policy.closed_items_days["false"])).isoformat()
    return Cutoffs(as_of, closed, (as_of - dt.timedelta(days=policy.contacts_days)).isoformat(),
                   (as_of - dt.timedelta(days=policy.runs_days)).isoformat(),
                   (as_of - dt.timedelta(days=policy.access_log_days)).isoformat(),
                   (as_of - dt.timedelta(days=policy.complaints_days)).isoformat())
