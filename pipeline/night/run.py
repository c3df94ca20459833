"""The nightly job for business date T (SPEC 1 `custdq run`), stage by stage.

`_night` is the night, top to bottom: each stage is a function that takes what it needs and
returns a frozen result (pipeline.night.results); the large working data of a stage (the
chunks' findings, tonight's contact rows) is dropped by name once the next stage has used it.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from checks.arrays import isin_text
from pipeline import clock, outputs, settings, store
from pipeline.book import database as index_db
from checks.catalogue import COMPLAINT_RULES, SETTLED_BY_PEOPLE
from pipeline.book.detect import INDEX_FAILURES, shared_night
from pipeline.book.index import ContactIndex
from pipeline.book.rows import version_of
from pipeline.book.tonight import NightContacts
from pipeline.calendar import WorkCalendar
from pipeline.cases import complaints, nights
from pipeline.cases.night import CaseUpdate, reconcile, shared_keys
from pipeline.clock import CHINA
from pipeline.errors import InputError
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.ingest.roster import load_roster
from pipeline.logs import count
from pipeline.night import engines, gatehost
from pipeline.night.expectations import aggregates, run_gate
from pipeline.night.items import build, night_deadlines
from pipeline.night.manifest import finish_manifest, night_manifest
from pipeline.night.results import (Checked, Gate, GateInputs, Items, NightRequest, Shared, TakenBack, Tonight,
                                    Written, outcomes)
from pipeline.outputs.dashboard.dims import night_dims
from pipeline.outputs.dashboard.page import write_dashboard
from pipeline.outputs.worklists import write_worklists
from pipeline.progress import Stages, release, use_system_allocator
from pipeline.rows.chunks import first_rows, night_rules
from pipeline.rows.engine import CheckJob
from pipeline.rules import isolated
from pipeline.store import hashkey
from pipeline.store.lock import store_lock

__all__ = ["NightRequest", "RunResult", "run_night"]

log = logging.getLogger("custdq")
STAGES = ["ingest", "normalise", "contract", "scope", "check", "shared", "items", "cases", "outputs", "expectations",
          "store", "dashboard"]


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict
    items: pd.DataFrame
    gate_failed: bool = False  # a blocking expectation failed: exit 1 (outputs are written)
    created: list[str] = field(default_factory=list)  # what the run created (a store, a hash key)

    def summary(self) -> list[str]:
        """What the operator reads on stderr at the end of the night: what was created, the
        counts, every warning, a failed gate."""
        m, r = self.manifest, self.manifest["rows"]
        lines = [f"custdq: {line}" for line in self.created]
        lines.append(
            f"custdq: {m['business_date']}: {r['rows_read']} rows read, {r['rows_in_scope']} checked, "
            f"{r['rows_out_of_scope']} out of scope, {r['rows_quarantined']} quarantined; "
            f"{m['items']['total']} items; list due {m['deadlines']['list_due']}; outputs in {Path(self.out_dir).absolute()}"
            f"{'; replaced the earlier run of this date' if m.get('replaced_earlier_run') else ''}")
        lines += [f"warning: {line}" for line in m.get("warnings", [])]
        if self.gate_failed:
            lines.append(f"custdq: error: blocking expectations failed: "
                         f"{', '.join(m['expectations']['blocking_failed'])} (outputs written; see {outputs.DATA_DOCS}/index.html)")
        return lines


def run_night(request: NightRequest) -> RunResult:
    engines.check_name(request.engine)
    if not request.extracts:
        raise InputError("no extract file given")
    started = dt.datetime.now(CHINA)
    if request.business_date > started.date() and not request.allow_future:
        raise InputError(f"--business-date {request.business_date} is after today ({started.date()}, China time): "
                         "a night of a later date would turn every real night before it into an older night, "
                         "refused until --rewind; nothing was done. Add --allow-future-date if you mean it")
    use_system_allocator()
    cfg = settings.load(request.config_path)  # every setting checked here: a bad one is exit 2 before any store
    out = Path(request.out_dir) if request.out_dir else Path("out") / request.business_date.isoformat()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    outputs.refuse_foreign(out, store.resolve(request.db, cfg))
    stages = Stages(STAGES, quiet=request.quiet)
    log.info("business date %s, %d extract file(s), case store %s, output folder %s", request.business_date,
             len(request.extracts), store.safe_url(store.resolve(request.db, cfg)), out)
    log.debug("settings: %s", cfg.model_dump(exclude={"aliases", "placeholders"}))
    engine_db, key, created = store.open_with_key(request.db, cfg, request.new_store, request.business_date)
    new_dirs = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    log.debug("hash key fingerprint %s", hashkey.fingerprint(key))
    host = gatehost.start(cfg)  # Great Expectations' import starts on the other core
    try:
        result = _locked_night(request, cfg, key, engine_db, created, stages, started, out, host)
    except BaseException:
        created.remove(engine_db)  # a first night that failed leaves no store and no key behind
        if new_dirs is not None and new_dirs.is_dir() and not any(p.is_file() for p in new_dirs.rglob("*")):
            shutil.rmtree(new_dirs, ignore_errors=True)  # nor an empty output folder
        raise
    finally:
        if host is not None:
            host.close()
    result.created = created.notes()
    return result


def _locked_night(request: NightRequest, cfg: settings.Settings, key: bytes, engine_db: sa.Engine,
                  created: store.Created, stages: Stages, started: dt.datetime, out: Path,
                  host: gatehost.GateHost | None) -> RunResult:
    """Under the writer lock: refuse an older night, run the night into a staging folder, and
    publish it into `out` only when it is complete."""
    date = request.business_date.isoformat()
    with store_lock(engine_db, "run", date, cfg.lock_wait, notify=stages.note), \
            index_db.open_for(engine_db, created.url, cfg, key, create=True) as index:
        if index.created:
            created.index = index.path
        with engine_db.begin() as conn:  # a command killed between the two commits, taken back
            recovered = nights.recover(conn, index)
        with engine_db.connect() as conn:  # an older night is refused before any work (SPEC 7)
            later = nights.check_order(conn, date, request.rewind)
        out.mkdir(parents=True, exist_ok=True)
        staging = outputs.staging_dir(out)
        try:
            engine = engines.engine_for(request.engine, cfg)
            try:
                result = _night(Tonight(request, cfg, key, engine_db, created.url, index, engine, stages, staging,
                                        started, tuple(recovered), tuple(later), host))
            finally:
                engine.close()
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write the night's outputs ({exc.strerror or type(exc).__name__}); "
                             "nothing was changed: earlier outputs and the case store are as they were") from None
        finally:
            if staging.exists() and not (staging / outputs.MANIFEST).exists():
                outputs.discard(staging)
        outputs.publish(staging, out)  # the complete night replaces the old one, manifest.json last
        result.out_dir = out
        return result


def _night(n: Tonight) -> RunResult:
    """The night, stage by stage; everything it writes to the store is one transaction (the
    contact index's transaction commits just before the store's: pipeline.book.database)."""
    checked, found, contacts = read_and_check(n)
    with n.store.begin() as conn:
        n.index.begin()
        taken = take_back(n, conn)
        shared, book_found = shared_contacts(n, conn, checked, contacts, taken)
        del contacts  # tonight's contact rows are in the index now
        items = build_items(n, found, book_found)
        del found, book_found
        update = update_cases(n, conn, checked, shared, items, taken)
        items = items.narrowed()
        gate_inputs = hand_to_gate(n, checked, shared)
        written = write_outputs(n, checked, items, update)
        gate = batch_expectations(n, gate_inputs)
        manifest = night_manifest(n, conn, checked, shared, items, update, written, gate, taken)
        record(n, conn, checked, written, manifest)
        with n.stages.stage("dashboard"):  # inside the transaction: it sees tonight, and a failure undoes it
            write_dashboard(conn, n.out / outputs.DASHBOARD, n.date, gate.result.docs if gate else None)
        finish_manifest(manifest, n.stages, n.out)
        n.index.commit(conn)
    return RunResult(n.out, manifest, update.listing, gate_failed=bool(gate and gate.blocking_failed))


def read_and_check(n: Tonight) -> tuple[Checked, list[pd.DataFrame], NightContacts]:
    """ingest .. check: the roster, then every row read, normalised, held to the contract,
    scoped and checked by the row rules, chunk by chunk (the engine: pipeline.rows.engine); then
    the rules over the whole night's policy numbers. Returns the result, the findings and
    tonight's contact rows (each policy's first record's). Every row read is accounted for, or
    the night stops."""
    mapping = alias_map(EXTRACT_COLUMNS, n.cfg.aliases)
    with n.stages.stage("ingest"):
        roster = load_roster(n.request.agents, n.cfg) if n.request.agents else None
    if roster:
        log.info("agent roster: %s agents", count(len(roster.agents)))
    job = CheckJob(n.request.business_date, n.cfg, roster.agents if roster else None, n.key,
                   version_of(n.date, "night"))
    reading, tally = n.engine.check_rows(n.request.extracts, mapping, job, n.stages)
    for i in reading.inputs:
        log.info("read %s: %s, encoding %s, %s records, %s malformed, %s blank lines, reader %s", i.path, i.format,
                 i.encoding, count(i.rows), count(i.malformed_rows), count(i.blank_rows), i.reader)
    sources = [i.path for i in reading.inputs]
    quarantine = pd.concat([reading.quarantine, *tally.quarantined], ignore_index=True)
    log.info("scope: %s in scope, %s out of scope, %s quarantined", count(tally.in_scope),
             count(tally.out_of_scope), count(len(quarantine)))
    rows = {"rows_read": sum(i.rows for i in reading.inputs), "rows_in_scope": tally.in_scope,
            "rows_out_of_scope": tally.out_of_scope, "rows_quarantined": len(quarantine)}
    if rows["rows_read"] != rows["rows_in_scope"] + rows["rows_out_of_scope"] + rows["rows_quarantined"]:
        raise RuntimeError("row reconciliation failed: a row was lost (bug)")
    with n.stages.stage("check"):
        policies = tally.policy_frame()
        found, outcomes = night_rules(policies, tally, n.request.business_date, n.cfg, sources)
        repeated = policies["policy_no"].duplicated()
        contacts = tally.contacts
        if contacts is None:
            raise RuntimeError("a night's tally holds no contact rows (bug)")
        contacts.keep_first(first_rows(policies, repeated))
    checked = Checked(reading, roster, sources, quarantine, policies, repeated, outcomes, rows,
                      tally.seen or {}, tally.term_unreadable, tally.chunks, tally.contact_seconds)
    return checked, found, contacts


def take_back(n: Tonight, conn: sa.Connection) -> TakenBack:
    """shared (first): a rewind's later nights and any earlier run of tonight taken back (SPEC 7)."""
    with n.stages.stage("shared"):
        rewound = nights.rewind(conn, n.index, list(n.later), n.date, clock.stamp()) if n.later else []
        replaced = nights.take_back(conn, n.date, n.index)
    return TakenBack(rewound, replaced["contact_rows_taken_back"], replaced["run_events_taken_back"],
                     replaced["manifest"])


def shared_contacts(n: Tonight, conn: sa.Connection, checked: Checked, contacts: NightContacts,
                    taken: TakenBack) -> tuple[Shared, pd.DataFrame | None]:
    """shared: PHONE_SHARED / BANK_SHARED against the book, tonight's rows written into the
    index (`contacts` is closed: its memory and file go back). Returns the result and the book's
    findings."""
    with n.stages.stage("shared"):
        labels = {c.name: c.label for c in EXTRACT_COLUMNS}
        book = shared_night(n.index, contacts, checked.policies, labels, n.request.business_date, n.cfg,
                            checked.sources, checked.contact_seconds, shared_keys(conn), n.engine.crowded)
        contacts.close()
        release()
        # AGENT_COMPLAINT_RECHECK: the complaints in the store against the book (SPEC 9)
        judged, failures = isolated(COMPLAINT_RULES, n.cfg, 0, partial(
            complaints.rechecks, conn, ContactIndex(n.index), n.request.business_date, n.cfg, n.key),
            passes=INDEX_FAILURES)
        rechecked, recheck_outcomes = judged if judged is not None else (None, failures)
        found_parts = [f for f in (book.found, rechecked) if f is not None and len(f)]
        log.info("shared contacts: %s", {k: v for k, v in book.stats.items() if not isinstance(v, dict)})
    shared = Shared(book.outcomes + recheck_outcomes, {**book.stats, "rows_taken_back": taken.contact_rows}, book.judged)
    for o in outcomes(checked, shared):
        log.info("rule %s: %s, %s rows failed, %s findings, %.3f s", o.rule_code, o.status,
                 count(o.rows_failed or 0), count(o.findings or 0), o.seconds or 0.0)
    return shared, (pd.concat(found_parts, ignore_index=True) if len(found_parts) > 1 else
                    found_parts[0] if found_parts else None)


def build_items(n: Tonight, found: list[pd.DataFrame], book_found: pd.DataFrame | None) -> Items:
    """items: tonight's findings as items with stable ids and deadlines (SPEC 4)."""
    with n.stages.stage("items"):
        calendar = WorkCalendar(n.cfg.calendar.years)
        deadlines = night_deadlines(n.request.business_date, calendar, n.cfg)
        fired = build(found, n.request.business_date, deadlines, n.cfg, book_found)
        fired["value_key"] = value_keys(fired, n.key)
    return Items(fired, deadlines, calendar)


def update_cases(n: Tonight, conn: sa.Connection, checked: Checked, shared: Shared, items: Items,
                 taken: TakenBack) -> CaseUpdate:
    """cases: the lifecycle (SPEC 6): new, carried, reopened, resolved items; the open list."""
    with n.stages.stage("cases"):
        ran = {o.rule_code for o in outcomes(checked, shared) if o.status == "ok"} - SETTLED_BY_PEOPLE
        update = reconcile(conn, items.fired, n.request.business_date,
                           dt.datetime.now(CHINA).isoformat(timespec="seconds"),
                           pd.Index(checked.policies["policy_no"].unique()), ran, shared.judged, taken.run_events)
        store.refresh_statistics(conn)
        log.info("items: %s", ", ".join(f"{k} {count(v)}" for k, v in update.counts.items()))
    return update


def hand_to_gate(n: Tonight, checked: Checked, shared: Shared) -> GateInputs | None:
    """The night's aggregates, for the gate: handed to its own process (gatehost), which judges
    them while the night writes its outputs. None when the gate is off."""
    if not n.cfg.expectations.enabled:
        return None
    history = [h for h in store.run_history(n.store) if h["business_date"] < n.date]
    figures, distinct, reference = aggregates(checked.seen, int(checked.repeated.sum()), checked.rows,
                                              outcomes(checked, shared), history, n.cfg.expectations)
    if n.gate_host is not None:
        n.gate_host.send(figures, distinct, reference, n.cfg.expectations, str(n.out))
    return GateInputs(figures, distinct, reference)


def write_outputs(n: Tonight, checked: Checked, items: Items, update: CaseUpdate) -> Written:
    """outputs: items.csv/.parquet, quarantine.csv, the worklists, the dashboard's figures."""
    listing = update.listing
    with n.stages.stage("outputs"):
        outputs.write_items(listing, n.out)
        outputs.write_quarantine(checked.quarantine, n.out)
        files = write_worklists(listing, n.out)
        dims = night_dims(checked.policies, items.fired, ~checked.repeated.to_numpy())  # per branch/channel/agent
        flagged = pd.Index(items.fired["policy_no"].astype("str").unique())
        rows_flagged = int(isin_text(checked.policies["policy_no"], flagged).sum()) if len(items.fired) else 0
        log.info("outputs: %s items listed, %s worklist files, %s quarantined rows", count(len(listing)),
                 count(sum(map(len, files.values()))), count(len(checked.quarantine)))
    return Written(files, dims, rows_flagged)


def batch_expectations(n: Tonight, inputs: GateInputs | None) -> Gate | None:
    """expectations: the Great Expectations gate's answer (its own process's, or run here when it
    has none or it failed), Data Docs. None when the gate is off."""
    if inputs is None:
        return None
    with n.stages.stage("expectations"):
        result = n.gate_host.result() if n.gate_host is not None else None
        if result is None:
            if n.gate_host is not None:  # (a log line: the night's results are the same either way)
                log.info("expectations: the gate's own process gave no answer; the gate runs in this one")
            result = run_gate(inputs.figures, inputs.distinct, inputs.reference, n.cfg.expectations, n.out)
        outputs.write_json({"reference": inputs.reference, **result.to_dict()}, n.out / outputs.EXPECTATIONS)
        log.info("expectations: %d evaluated, %d failed, blocking failed: %s", len(result.results),
                 sum(not r["success"] for r in result.results), result.blocking_failed or "none")
        if result.blocking_failed:
            n.stages.note(f"blocking expectations failed: {', '.join(result.blocking_failed)}")
    return Gate(result, inputs.reference)


def record(n: Tonight, conn: sa.Connection, checked: Checked, written: Written, manifest: dict) -> None:
    """store: the night's run row, its per-branch figures, the roster's agents; the undo journals
    kept for the last `store.undo_nights` nights."""
    with n.stages.stage("store"):
        store.record_run(conn, manifest)
        store.record_dims(conn, n.date, written.dims)
        if checked.roster is not None:
            store.record_agents(conn, n.date, checked.roster.agents)
        nights.keep_journals(conn, n.index, n.cfg.store.undo_nights)


def value_keys(fired: pd.DataFrame, key: bytes) -> pd.Series:
    """Keyed hash (hex) of what each finding is about: the shared value for book-wide findings
    (already set), else rule + field + the field's normalised value."""
    text = fired["rule_code"] + "|" + fired["field"] + "|" + fired["value_text"].fillna("").astype(str)
    own = hashkey.keyed(key, text, as_hex=True)
    return fired["value_key"].where(fired["value_key"].notna(), own)
