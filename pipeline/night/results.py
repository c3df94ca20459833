"""What the night's stages hand each other (pipeline.night.run): each stage takes what it needs
and returns one of these, frozen. A stage's large working data (the chunks' findings, tonight's
contact rows) is returned beside its result and dropped by the night once used, so memory goes
back when a name is let go, not by emptying fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from checks.catalogue import RULES
from pipeline.book.database import IndexFile
from pipeline.calendar import WorkCalendar
from pipeline.ingest import Reading
from pipeline.ingest.roster import Roster
from pipeline.night.expectations import GateResult
from pipeline.night.gatehost import GateHost
from pipeline.night.items import Deadlines
from pipeline.progress import Stages
from pipeline.rows.engine import Engine
from pipeline.rules import Outcome
from pipeline.settings import Settings


@dataclass(frozen=True)
class NightRequest:
    """What the operator asked for: `custdq run`'s arguments and options, as one object."""

    extracts: list[str]
    business_date: dt.date
    out_dir: str | None = None
    db: str | None = None
    config_path: str | None = None
    agents: str | None = None
    engine: str = "local"
    quiet: bool = False
    rewind: bool = False
    new_store: bool = False  # may start a new store where one near it holds nights (pipeline.store.guard)
    allow_future: bool = False  # a business date after today (China time) is meant


@dataclass(frozen=True, eq=False)
class Tonight:
    """What every stage of one night reads and none changes: the request, its settings, the
    stores and the engine, the staging folder the outputs go into."""

    request: NightRequest
    cfg: Settings
    key: bytes  # the store's hash key
    store: sa.Engine  # the case store
    db: str  # its URL
    index: IndexFile  # the contact index, open for the night
    engine: Engine
    stages: Stages
    out: Path  # the night's staging folder (published into --out when the night succeeds)
    started: dt.datetime
    recovered: tuple[str, ...] = ()  # nights taken back: a command was killed between the two commits
    later: tuple[str, ...] = ()  # the later nights a --rewind takes back first
    gate_host: GateHost | None = None  # the gate's own process, when it has one

    @property
    def date(self) -> str:
        return self.request.business_date.isoformat()


@dataclass(frozen=True, eq=False)
class Checked:
    """ingest .. check: every row read is checked, out of scope or quarantined."""

    reading: Reading  # the files as read (pipeline.ingest)
    roster: Roster | None
    sources: list[str]  # the extract files' paths, as findings name them
    quarantine: pd.DataFrame  # the rows set aside, with their reasons
    policies: pd.DataFrame  # tonight's in-scope rows, their policy columns only (by row in the night)
    repeated: pd.Series  # a policy number's later records tonight
    outcomes: list[Outcome]  # the row and night rules' outcomes
    rows: dict  # rows_read, rows_in_scope, rows_out_of_scope, rows_quarantined: they add up
    seen: dict  # what the gate needs of the rows (pipeline.rows.profile)
    term_unreadable: int  # rows whose coverage term could not be read, checked
    chunks: int
    contact_seconds: float  # what making the keyed contact rows took


@dataclass(frozen=True)
class TakenBack:
    """What the night took back before it wrote: later nights (a --rewind), an earlier run of
    this date (SPEC 7)."""

    rewound: list[str]
    contact_rows: int  # the earlier run's contact rows taken out of the index
    run_events: int  # the earlier run's events taken back in the store
    earlier_manifest: dict | None  # the earlier run's manifest, when there was one


@dataclass(frozen=True, eq=False)
class Shared:
    """shared: PHONE_SHARED / BANK_SHARED judged against the book, tonight's contact rows in the
    index (their findings are returned beside this and dropped once items are built)."""

    outcomes: list[Outcome]
    stats: dict  # the manifest's `contact_index`
    judged: set[str]  # the store's shared items' values judged tonight (hex keys)


@dataclass(frozen=True, eq=False)
class Items:
    """items: tonight's findings as items with ids and deadlines (SPEC 4, 5)."""

    fired: pd.DataFrame
    deadlines: Deadlines
    calendar: WorkCalendar

    def narrowed(self) -> Items:
        """What the stages after the case store read of tonight's findings: their policy and rule."""
        return Items(self.fired[["policy_no", "rule_code"]], self.deadlines, self.calendar)


@dataclass(frozen=True, eq=False)
class Written:
    """outputs: the files people read, and the figures the dashboard keeps."""

    worklist_files: dict  # branch -> the worklist files written for it
    dims: pd.DataFrame  # per branch/channel/agent figures (pipeline.outputs.dashboard.dims)
    rows_flagged: int  # in-scope rows with at least one finding


@dataclass(frozen=True, eq=False)
class GateInputs:
    """What the batch expectations judge: one row of the night's figures, the coded columns'
    distinct values, and the volume reference (pipeline.night.expectations.aggregates)."""

    figures: pd.DataFrame
    distinct: pd.DataFrame
    reference: dict


@dataclass(frozen=True, eq=False)
class Gate:
    """expectations: the gate's results and what they were judged against."""

    result: GateResult
    reference: dict

    @property
    def blocking_failed(self) -> list[str]:
        return self.result.blocking_failed


def outcomes(checked: Checked, shared: Shared) -> list[Outcome]:
    """Every rule's outcome tonight, in the catalogue's order."""
    order = {code: i for i, code in enumerate(RULES)}
    return sorted(checked.outcomes + shared.outcomes, key=lambda o: order[o.rule_code])
