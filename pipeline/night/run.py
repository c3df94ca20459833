"""The nightly job for business date T (SPEC 1 `custdq run`), stage by stage."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from checks.arrays import isin_text
from checks.catalogue import RULES
from pipeline import config, outputs, store
from pipeline.store import hashkey
from pipeline.night import alerts, gatehost, nights
from pipeline.book.detect import shared_night
from pipeline.book import database as index_db
from pipeline.book.rows import version_of
from pipeline.rows.chunks import check_rows, first_rows, night_rules
from pipeline.cases.night import reconcile, shared_keys
from pipeline.outputs.dashboard.dims import night_dims
from pipeline.outputs.dashboard.page import write_dashboard
from pipeline.night.manifest import finish_manifest, night_manifest
from pipeline.night.expectations import aggregates, run_gate
from pipeline.store.lock import store_lock
from pipeline.calendar import WorkCalendar
from pipeline import clock
from pipeline.clock import CHINA
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.errors import InputError
from pipeline.night.items import build, night_deadlines
from pipeline.logs import count
from pipeline.night.progress import Stages, release, use_system_allocator
from pipeline.ingest.roster import load_roster
from pipeline.outputs.worklists import write_worklists

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
                         f"{', '.join(m['expectations']['blocking_failed'])} (outputs written; see data_docs/index.html)")
        return lines


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


@dataclass
class Night:
    """One night's working state, handed from stage to stage (each stage below reads what the
    ones before it left here and adds its own)."""

    request: NightRequest
    cfg: dict
    key: bytes
    engine_db: object  # the case store's SQLAlchemy engine
    db: str  # its URL
    stages: Stages
    started: dt.datetime
    out: Path = Path()  # the night's staging folder (published into --out when it succeeds)
    spark: object | None = None  # pipeline.spark.night.SparkNight, or None for the local engine
    index: index_db.IndexFile | None = None  # the contact index (pipeline.book.database), open for the night
    created: store.Created | None = None  # what opening the store created (a failed first night removes it)
    later: tuple = ()  # the later nights a --rewind takes back first
    warnings: list[alerts.Alert] = field(default_factory=list)
    # ingest and check
    roster: object | None = None
    reading: object | None = None
    tally: object | None = None
    sources: list[str] = field(default_factory=list)
    quarantine: pd.DataFrame | None = None
    checked: pd.DataFrame | None = None  # tonight's in-scope rows, their policy columns only
    repeated: pd.Series | None = None  # a policy number's later records tonight
    found_parts: list | None = None
    outcomes: list = field(default_factory=list)
    # shared, items, cases
    book: object | None = None
    replaced: dict = field(default_factory=dict)
    calendar: WorkCalendar | None = None
    deadlines: object | None = None
    fired: pd.DataFrame | None = None
    cases: object | None = None  # pipeline.cases.night.Night: the open list and its counts
    rows: dict = field(default_factory=dict)
    # outputs, expectations
    worklist_files: dict = field(default_factory=dict)
    dims: pd.DataFrame | None = None
    rows_flagged: int = 0
    gate: object | None = None
    reference: dict = field(default_factory=dict)
    gate_host: gatehost.GateHost | None = None  # the gate's own process, when it has one
    gate_inputs: tuple = ()  # (figures, distinct values) the gate judges

    @property
    def date(self) -> str:
        return self.request.business_date.isoformat()


def run_night(request: NightRequest) -> RunResult:
    if request.engine not in ("local", "spark"):
        raise InputError(f"--engine {request.engine}: the engines are local and spark")
    if not request.extracts:
        raise InputError("no extract file given")
    started = dt.datetime.now(CHINA)
    if request.business_date > started.date() and not request.allow_future:
        raise InputError(f"--business-date {request.business_date} is after today ({started.date()}, China time): "
                         "a night of a later date would turn every real night before it into an older night, "
                         "refused until --rewind; nothing was done. Add --allow-future-date if you mean it")
    use_system_allocator()
    cfg = config.load(request.config_path)
    out = Path(request.out_dir) if request.out_dir else Path("out") / request.business_date.isoformat()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    outputs.refuse_foreign(out, store.resolve(request.db, cfg))
    stages = Stages(STAGES, quiet=request.quiet)
    log.info("business date %s, %d extract file(s), case store %s, output folder %s", request.business_date,
             len(request.extracts), store.safe_url(store.resolve(request.db, cfg)), out)
    log.debug("settings: %s", {k: v for k, v in cfg.items() if k not in ("aliases", "placeholders")})
    engine_db, key, created = store.open_with_key(request.db, cfg, request.new_store, request.business_date)
    new_dirs = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    log.debug("hash key fingerprint %s", hashkey.fingerprint(key))
    night = Night(request, cfg, key, engine_db, created.url, stages, started, created=created,
                  gate_host=gatehost.start(cfg))  # Great Expectations' import starts on the other core
    try:
        result = _locked_night(night, out)
    except BaseException:
        created.remove(engine_db)  # a first night that failed leaves no store and no key behind
        if new_dirs is not None and new_dirs.is_dir() and not any(p.is_file() for p in new_dirs.rglob("*")):
            shutil.rmtree(new_dirs, ignore_errors=True)  # nor an empty output folder
        raise
    finally:
        if night.gate_host is not None:
            night.gate_host.close()
    result.created = created.notes()
    return result


def _locked_night(night: Night, out: Path) -> RunResult:
    """Under the writer lock: refuse an older night, run the night into a staging folder, and
    publish it into `out` only when it is complete."""
    with store_lock(night.engine_db, "run", night.date, float(night.cfg["store"]["lock_wait_seconds"]),
                    notify=night.stages.note), \
            index_db.open_for(night.engine_db, night.db, night.cfg, night.key, create=True) as index:
        night.index = index
        if index.created and night.created is not None:
            night.created.index = index.path
        with night.engine_db.begin() as conn:  # a command killed between the two commits, taken back
            recovered = nights.reconcile(conn, index)
        if recovered:
            night.warnings.append(alerts.recovered(recovered))
        with night.engine_db.connect() as conn:  # an older night is refused before any work (SPEC 7)
            night.later = tuple(nights.check_order(conn, night.date, night.request.rewind))
        out.mkdir(parents=True, exist_ok=True)
        night.out = staging = outputs.staging_dir(out)
        try:
            night.spark = _spark(night.request.engine, night.cfg)
            try:
                result = _night(night)
            finally:
                if night.spark is not None:
                    night.spark.close()
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write the night's outputs ({exc.strerror or type(exc).__name__}); "
                             "nothing was changed: earlier outputs and the case store are as they were") from None
        finally:
            if staging.exists() and not (staging / "manifest.json").exists():
                outputs.discard(staging)
        outputs.publish(staging, out)  # the complete night replaces the old one, manifest.json last
        result.out_dir = out
        return result


def _spark(engine: str, cfg: dict):
    """The Spark side of the night (pipeline.spark), or None for the local engine."""
    if engine != "spark":
        return None
    from pipeline.spark.night import SparkNight

    return SparkNight(cfg)


def _night(n: Night) -> RunResult:
    """The night, stage by stage; everything it writes to the store is one transaction."""
    read_and_check(n)
    night_wide_rules(n)
    with n.engine_db.begin() as conn:
        n.index.begin()  # the index's transaction, committed just before the store's (pipeline.book.database)
        shared_contacts(n, conn)
        build_items(n)
        update_cases(n, conn)
        hand_to_gate(n)
        write_outputs(n)
        batch_expectations(n)
        manifest = night_manifest(n, conn)
        with n.stages.stage("store"):
            store.record_run(conn, manifest)
            store.record_dims(conn, n.date, n.dims)
            if n.roster is not None:
                store.record_agents(conn, n.date, n.roster.agents)
            nights.keep_journals(conn, n.index, n.cfg["store"]["undo_nights"])
        with n.stages.stage("dashboard"):  # inside the transaction: it sees tonight, and a failure undoes it
            write_dashboard(conn, n.out / "dashboard.html", n.date, n.gate.docs if n.gate and n.gate.docs else None)
        finish_manifest(manifest, n.stages, n.out)
        n.index.commit(conn)
    return RunResult(n.out, manifest, n.cases.listing, gate_failed=bool(n.gate and n.gate.blocking_failed))


def read_and_check(n: Night) -> None:
    """ingest .. check: the roster, then every row read, normalised, held to the contract,
    scoped and checked by the row rules, chunk by chunk (pipeline.rows.chunks, or Spark tasks)."""
    mapping = alias_map(EXTRACT_COLUMNS, n.cfg["aliases"])
    with n.stages.stage("ingest"):
        n.roster = load_roster(n.request.agents, n.cfg) if n.request.agents else None
    if n.roster:
        log.info("agent roster: %s agents", count(len(n.roster.agents)))
    version = version_of(n.date, "night")
    check = n.spark.check_rows if n.spark is not None else check_rows
    n.reading, n.tally = check(n.request.extracts, mapping, n.request.business_date, n.cfg,
                               n.roster.agents if n.roster else None, n.key, version, n.stages)
    for i in n.reading.inputs:
        log.info("read %s: %s, encoding %s, %s records, %s malformed, %s blank lines, reader %s", i.path, i.format,
                 i.encoding, count(i.rows), count(i.malformed_rows), count(i.blank_rows), i.reader)
    n.sources = [i.path for i in n.reading.inputs]
    n.quarantine = pd.concat([n.reading.quarantine, *n.tally.quarantined], ignore_index=True)
    log.info("scope: %s in scope, %s out of scope, %s quarantined", count(n.tally.in_scope),
             count(n.tally.out_of_scope), count(len(n.quarantine)))


def night_wide_rules(n: Night) -> None:
    """check (continued): the rules over the whole night's policy numbers; tonight's contact rows
    narrowed to each policy's first record."""
    with n.stages.stage("check"):
        n.checked = n.tally.policy_frame()
        n.found_parts, n.outcomes = night_rules(n.checked, n.tally, n.request.business_date, n.cfg, n.sources)
        n.tally.found = []
        n.repeated = n.checked["policy_no"].duplicated()
        n.tally.contacts.keep_first(first_rows(n.checked, n.repeated))


def shared_contacts(n: Night, conn) -> None:
    """shared: a rewind's later nights and any earlier run of tonight taken back (SPEC 7), then
    PHONE_SHARED / BANK_SHARED against the book, tonight's rows written into the index."""
    with n.stages.stage("shared"):
        rewound = nights.rewind(conn, n.index, list(n.later), n.date, clock.stamp()) if n.later else []
        if rewound:
            n.warnings.append(alerts.rewound(rewound))
        n.replaced = nights.take_back(conn, n.date, n.index)
        tonight = n.tally.contacts
        labels = {c.name: c.label for c in EXTRACT_COLUMNS}
        book = shared_night(n.index, tonight, n.checked, labels, n.request.business_date, n.cfg, n.sources,
                            n.tally.contact_seconds, shared_keys(conn), n.spark.crowded if n.spark is not None else None)
        tonight.close()  # tonight's contact rows are in the index now: their memory and file go back
        del tonight
        n.tally.contacts = None
        release()
        book.stats["rows_taken_back"] = n.replaced["contact_rows_taken_back"]
        order = {code: i for i, code in enumerate(RULES)}
        n.outcomes = sorted(n.outcomes + book.outcomes, key=lambda o: order[o.rule_code])
        n.book = book
        log.info("shared contacts: %s", {k: v for k, v in book.stats.items() if not isinstance(v, dict)})
    for o in n.outcomes:
        log.info("rule %s: %s, %s rows failed, %s findings, %.3f s", o.rule_code, o.status,
                 count(o.rows_failed or 0), count(o.findings or 0), o.seconds or 0.0)


def build_items(n: Night) -> None:
    """items: tonight's findings as items with stable ids and deadlines (SPEC 4)."""
    with n.stages.stage("items"):
        n.calendar = WorkCalendar(n.cfg["calendar"]["years"])
        n.deadlines = night_deadlines(n.request.business_date, n.calendar, n.cfg)
        n.fired = build(n.found_parts, n.request.business_date, n.deadlines, n.cfg, n.book.found)
        n.found_parts = None
        n.book.found = None
        n.fired["value_key"] = value_keys(n.fired, n.key)


def update_cases(n: Night, conn) -> None:
    """cases: the lifecycle (SPEC 6): new, carried, reopened, resolved items; the open list.
    Then every row read is accounted for, or the night stops."""
    with n.stages.stage("cases"):
        n.cases = reconcile(conn, n.fired, n.request.business_date,
                            dt.datetime.now(CHINA).isoformat(timespec="seconds"),
                            pd.Index(n.checked["policy_no"].unique()),
                            {o.rule_code for o in n.outcomes if o.status == "ok"}, n.book.judged,
                            n.replaced["run_events_taken_back"])
        n.fired = n.fired[["policy_no", "rule_code"]]  # all the later stages read of tonight's findings
        store.refresh_statistics(conn)
        log.info("items: %s", ", ".join(f"{k} {count(v)}" for k, v in n.cases.counts.items()))
    n.rows = {
        "rows_read": sum(i.rows for i in n.reading.inputs),
        "rows_in_scope": n.tally.in_scope,
        "rows_out_of_scope": n.tally.out_of_scope,
        "rows_quarantined": len(n.quarantine),
    }
    if n.rows["rows_read"] != n.rows["rows_in_scope"] + n.rows["rows_out_of_scope"] + n.rows["rows_quarantined"]:
        raise RuntimeError("row reconciliation failed: a row was lost (bug)")


def write_outputs(n: Night) -> None:
    """outputs: items.csv/.parquet, quarantine.csv, the worklists, the dashboard's figures."""
    items = n.cases.listing
    with n.stages.stage("outputs"):
        outputs.write_items(items, n.out)
        outputs.write_quarantine(n.quarantine, n.out)
        n.worklist_files = write_worklists(items, n.out)
        n.dims = night_dims(n.checked, n.fired, ~n.repeated.to_numpy())  # per branch/channel/agent
        flagged = pd.Index(n.fired["policy_no"].astype("str").unique())
        n.rows_flagged = int(isin_text(n.checked["policy_no"], flagged).sum()) if len(n.fired) else 0
        log.info("outputs: %s items listed, %s worklist files, %s quarantined rows", count(len(items)),
                 count(sum(map(len, n.worklist_files.values()))), count(len(n.quarantine)))


def hand_to_gate(n: Night) -> None:
    """The night's aggregates, for the gate: handed to its own process (gatehost), which judges
    them while the night writes its outputs."""
    if not n.cfg["expectations"]["enabled"]:
        return
    history = [h for h in store.run_history(n.engine_db) if h["business_date"] < n.date]
    figures, distinct, n.reference = aggregates(n.tally.seen, int(n.repeated.sum()), n.rows, n.outcomes, history,
                                                n.cfg["expectations"])
    n.gate_inputs = (figures, distinct)
    if n.gate_host is not None:
        n.gate_host.send(figures, distinct, n.reference, n.cfg["expectations"], str(n.out))


def batch_expectations(n: Night) -> None:
    """expectations: the Great Expectations gate's answer (its own process's, or run here when it
    has none or it failed), Data Docs."""
    if not n.cfg["expectations"]["enabled"]:
        return
    with n.stages.stage("expectations"):
        gate = n.gate_host.result() if n.gate_host is not None else None
        if gate is None:
            if n.gate_host is not None:  # (a log line: the night's results are the same either way)
                log.info("expectations: the gate's own process gave no answer; the gate runs in this one")
            figures, distinct = n.gate_inputs
            gate = run_gate(figures, distinct, n.reference, n.cfg["expectations"], n.out)
        n.gate = gate
        outputs.write_json({"reference": n.reference, **gate.to_dict()}, n.out / "expectations.json")
        log.info("expectations: %d evaluated, %d failed, blocking failed: %s", len(gate.results),
                 sum(not r["success"] for r in gate.results), gate.blocking_failed or "none")
        if gate.blocking_failed:
            n.stages.note(f"blocking expectations failed: {', '.join(gate.blocking_failed)}")


def value_keys(fired: pd.DataFrame, key: bytes) -> pd.Series:
    """Keyed hash (hex) of what each finding is about: the shared value for book-wide findings
    (already set), else rule + field + the field's normalised value."""
    text = fired["rule_code"] + "|" + fired["field"] + "|" + fired["value_text"].fillna("").astype(str)
    own = hashkey.keyed(key, text, as_hex=True)
    return fired["value_key"].where(fired["value_key"].notna(), own)
