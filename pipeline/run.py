"""The nightly job for business date T (SPEC 1 `custdq run`), stage by stage."""

from __future__ import annotations

import datetime as dt
import logging
import platform
import shutil
from dataclasses import dataclass, field
from importlib import metadata as md
from pathlib import Path

import pandas as pd

from checks.arrays import isin_text
from checks.catalogue import RULES
from pipeline import __version__, alerts, config, hashkey, nights, outputs, store
from pipeline.book.detect import shared_night
from pipeline.book.index import ContactIndex
from pipeline.book.rows import version_of
from pipeline.chunks import check_rows, first_rows, night_rules, per_worker, workers_of
from pipeline.cases.night import reconcile, shared_keys
from pipeline.dashboard.dims import night_dims
from pipeline.dashboard.page import write_dashboard
from pipeline.expectations import aggregates, run_gate
from pipeline.lock import store_lock
from pipeline.calendar import WorkCalendar
from pipeline import clock
from pipeline.clock import CHINA
from pipeline.columns import EXTRACT_COLUMNS, alias_map
from pipeline.errors import InputError
from pipeline.items import build, night_deadlines
from pipeline.logs import count
from pipeline.progress import Stages, peak_memory_mb, release, use_system_allocator
from pipeline.roster import load_roster
from pipeline.worklists import write_worklists

log = logging.getLogger("custdq")
STAGES = ["ingest", "normalise", "contract", "scope", "check", "shared", "items", "cases", "outputs", "expectations",
          "store", "dashboard"]
PACKAGES = ["pandas", "pandera", "pyarrow", "numpy", "openpyxl", "click", "chinesecalendar",
            "SQLAlchemy", "phonenumbers", "python-stdnum", "PyYAML", "scipy", "XlsxWriter", "great-expectations"]


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict
    items: pd.DataFrame
    gate_failed: bool = False  # a blocking expectation failed: exit 1 (outputs are written)
    created: list[str] = field(default_factory=list)  # what the run created (a store, a hash key)


def versions() -> dict[str, str]:
    found = {"custdq": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_night(extracts: list[str], business_date: dt.date, out_dir: str | None = None, db: str | None = None,
              config_path: str | None = None, agents: str | None = None, engine: str = "local",
              quiet: bool = False, rewind: bool = False) -> RunResult:
    if engine not in ("local", "spark"):
        raise InputError(f"--engine {engine}: the engines are local and spark")
    if not extracts:
        raise InputError("no extract file given")
    started = dt.datetime.now(CHINA)
    use_system_allocator()
    cfg = config.load(config_path)
    out = Path(out_dir) if out_dir else Path("out") / business_date.isoformat()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    stages = Stages(STAGES, quiet=quiet)
    log.info("business date %s, %d extract file(s), case store %s, output folder %s", business_date, len(extracts),
             store.safe_url(store.resolve(db, cfg)), out)
    log.debug("settings: %s", {k: v for k, v in cfg.items() if k not in ("aliases", "placeholders")})
    engine_db, key, created = store.open_with_key(db, cfg)
    db = created.url
    new_dirs = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    log.debug("hash key fingerprint %s", hashkey.fingerprint(key))
    try:
        result = _locked_night(extracts, business_date, out, engine_db, db, cfg, key, agents, stages, started,
                               engine, rewind)
    except BaseException:
        created.remove(engine_db)  # a first night that failed leaves no store and no key behind
        if new_dirs is not None and new_dirs.is_dir() and not any(p.is_file() for p in new_dirs.rglob("*")):
            shutil.rmtree(new_dirs, ignore_errors=True)  # nor an empty output folder
        raise
    result.created = created.notes()
    return result


def _locked_night(extracts, business_date, out, engine_db, db, cfg, key, agents, stages, started, engine,
                  rewind) -> RunResult:
    with store_lock(engine_db, "run", business_date.isoformat(), float(cfg["store"]["lock_wait_seconds"]),
                    notify=stages.note):
        with engine_db.connect() as conn:  # an older night is refused before any work (SPEC 7)
            later = nights.check_order(conn, business_date.isoformat(), rewind)
        out.mkdir(parents=True, exist_ok=True)
        staging = outputs.staging_dir(out)
        try:
            spark = _spark(engine, cfg)
            try:
                result = _night(extracts, business_date, staging, engine_db, db, cfg, key, agents, stages, started,
                                spark, later)
            finally:
                if spark is not None:
                    spark.close()
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


def _night(extracts, business_date, out, engine_db, db, cfg, key, agents, stages, started, spark=None,
           later=()) -> RunResult:
    mapping = alias_map(EXTRACT_COLUMNS, cfg["aliases"])
    with stages.stage("ingest"):
        roster = load_roster(agents, cfg) if agents else None
    if roster:
        log.info("agent roster: %s agents", count(len(roster.agents)))
    version = version_of(business_date.isoformat(), "night")
    check = spark.check_rows if spark is not None else check_rows
    reading, tally = check(extracts, mapping, business_date, cfg, roster.agents if roster else None, key, version,
                           stages)
    inputs_extra = [roster.manifest] if roster else []
    for i in reading.inputs:
        log.info("read %s: %s, encoding %s, %s records, %s malformed, %s blank lines, reader %s", i.path, i.format,
                 i.encoding, count(i.rows), count(i.malformed_rows), count(i.blank_rows), i.reader)
    sources = [i.path for i in reading.inputs]
    quarantine = pd.concat([reading.quarantine, *tally.quarantined], ignore_index=True)
    log.info("scope: %s in scope, %s out of scope, %s quarantined", count(tally.in_scope),
             count(tally.out_of_scope), count(len(quarantine)))
    with stages.stage("check"):
        checked = tally.policy_frame()  # tonight's in-scope rows, their policy columns only
        found_parts, outcomes = night_rules(checked, tally, business_date, cfg, sources)
        tally.found = []
        tonight = tally.contacts
        repeated = checked["policy_no"].duplicated()  # a policy number's later records tonight
        tonight.keep_first(first_rows(checked, repeated))
    warnings: list[str] = []
    with engine_db.begin() as conn:  # the night's store writes: one transaction
        with stages.stage("shared"):
            # first, the later nights of a rewind and any earlier run of tonight go (SPEC 7)
            rewound = nights.rewind(conn, list(later), business_date.isoformat(), clock.stamp()) if later else []
            if rewound:
                warnings.append(f"rewound night(s) {', '.join(rewound)}: run them again, oldest first")
            replaced = nights.take_back(conn, business_date.isoformat())
            labels = {c.name: c.label for c in EXTRACT_COLUMNS}
            book = shared_night(conn, tonight, checked, labels, business_date, cfg, sources, tally.contact_seconds,
                                shared_keys(conn), spark.crowded if spark is not None else None)
            tonight.close()  # tonight's contact rows are in the index now: their memory and file go back
            del tonight
            tally.contacts = None
            release()
            book.stats["rows_taken_back"] = replaced["contact_rows_taken_back"]
            book.stats.update(_compaction(conn, book.stats, cfg["contact_index"], warnings))
            order = {code: i for i, code in enumerate(RULES)}
            outcomes = sorted(outcomes + book.outcomes, key=lambda o: order[o.rule_code])
            log.info("shared contacts: %s", {k: v for k, v in book.stats.items() if not isinstance(v, dict)})
        for o in outcomes:
            log.info("rule %s: %s, %s rows failed, %s findings, %.3f s", o.rule_code, o.status,
                     count(o.rows_failed or 0), count(o.findings or 0), o.seconds or 0.0)
        with stages.stage("items"):
            calendar = WorkCalendar(cfg["calendar"]["years"])
            deadlines = night_deadlines(business_date, calendar, cfg)
            fired = build(found_parts, business_date, deadlines, cfg, book.found)
            del found_parts
            book.found = None
            fired["value_key"] = value_keys(fired, key)
        with stages.stage("cases"):
            night = reconcile(conn, fired, business_date, dt.datetime.now(CHINA).isoformat(timespec="seconds"),
                              pd.Index(checked["policy_no"].unique()), {o.rule_code for o in outcomes if o.status == "ok"},
                              book.judged, replaced["run_events_taken_back"])
            items = night.listing
            fired = fired[["policy_no", "rule_code"]]  # all the later stages read of tonight's findings
            log.info("items: %s", ", ".join(f"{k} {count(v)}" for k, v in night.counts.items()))

        rows = {
            "rows_read": sum(i.rows for i in reading.inputs),
            "rows_in_scope": tally.in_scope,
            "rows_out_of_scope": tally.out_of_scope,
            "rows_quarantined": len(quarantine),
        }
        if rows["rows_read"] != rows["rows_in_scope"] + rows["rows_out_of_scope"] + rows["rows_quarantined"]:
            raise RuntimeError("row reconciliation failed: a row was lost (bug)")
        with stages.stage("outputs"):
            outputs.write_items(items, out)
            outputs.write_quarantine(quarantine, out)
            worklist_files = write_worklists(items, out)
            dims = night_dims(checked, fired, ~repeated.to_numpy())  # the dashboard's per-branch/channel/agent figures
            flagged = pd.Index(fired["policy_no"].astype("str").unique())
            rows_flagged = int(isin_text(checked["policy_no"], flagged).sum()) if len(fired) else 0
            log.info("outputs: %s items listed, %s worklist files, %s quarantined rows", count(len(items)),
                     count(sum(map(len, worklist_files.values()))), count(len(quarantine)))
        gate = None
        if cfg["expectations"]["enabled"]:
            with stages.stage("expectations"):
                history = [h for h in store.run_history(engine_db) if h["business_date"] < business_date.isoformat()]
                duplicate_rows = int(repeated.sum())
                figures, distinct, reference = aggregates(tally.seen, duplicate_rows, rows, outcomes, history,
                                                          cfg["expectations"])
                gate = run_gate(figures, distinct, reference, cfg["expectations"], out)
                outputs.write_json({"reference": reference, **gate.to_dict()}, out / "expectations.json")
                log.info("expectations: %d evaluated, %d failed, blocking failed: %s", len(gate.results),
                         sum(not r["success"] for r in gate.results), gate.blocking_failed or "none")
                if gate.blocking_failed:
                    stages.note(f"blocking expectations failed: {', '.join(gate.blocking_failed)}")
        finished = dt.datetime.now(CHINA)
        manifest = {
            "custdq_version": __version__,
            "business_date": business_date.isoformat(),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "inputs": [i.to_dict() for i in reading.inputs] + inputs_extra,
            "rows": rows,
            "rows_blank_skipped": sum(i.blank_rows for i in reading.inputs),
            "quarantine_reasons": quarantine["reason"].str.replace(r"\d+ fields where", "N fields where", regex=True)
                                                      .value_counts().to_dict(),
            "optional_columns_absent": reading.absent_optional,
            "coverage_term_unreadable_checked": tally.term_unreadable,
            "chunks": {"rows_per_chunk": cfg["chunk_rows"], "chunks": tally.chunks} | ({} if spark is not None else {
                "workers": workers_of(cfg), "rows_per_worker_chunk": per_worker(cfg["chunk_rows"], workers_of(cfg))}),
            "engine": spark.describe() if spark is not None else {"name": "local"},
            "rules": {o.rule_code: o.to_dict() for o in outcomes},
            "contact_index": book.stats,
            "worklists": {"folder": "worklists", "files": sum(map(len, worklist_files.values())),
                          "branches": len(worklist_files), "rows": len(items)},
            "findings_per_rule": {k: int(v) for k, v in fired["rule_code"].value_counts().sort_index().items()},
            "open_items_per_rule": {k: int(v) for k, v in items["rule_code"].value_counts().sort_index().items()},
            "findings_tonight": len(fired),
            "rows_flagged": rows_flagged,
            "replaced_earlier_run": replaced["manifest"] is not None,
            "expectations": gate.to_dict() if gate else {"enabled": False},
            "items": night.counts,
            "deadlines": {
                "list_due": deadlines.list_due.isoformat(), "channel_due": deadlines.channel_due.isoformat(),
                "list_due_met": finished.date() <= deadlines.list_due, "provisional": deadlines.provisional,
                "calendar_source": calendar.source, "calendar_years_uncovered": sorted(calendar.uncovered),
            },
            "case_store": store.safe_url(db),
            "timings_seconds": stages.timings,
            "peak_memory_mb": peak_memory_mb(),
            "versions": versions(),
        }
        manifest["warnings"] = alerts.night_warnings(
            manifest, gate.results if gate else [], reference if gate else {},
            nights.same_inputs(conn, manifest["inputs"], business_date.isoformat()), warnings)
        with stages.stage("store"):
            store.record_run(conn, manifest)
            store.record_dims(conn, business_date.isoformat(), dims)
            nights.keep_journals(conn, cfg["store"]["undo_nights"])
        with stages.stage("dashboard"):  # inside the transaction: it sees tonight, and a failure undoes it
            write_dashboard(conn, out / "dashboard.html", business_date.isoformat(),
                            gate.docs if gate and gate.docs else None)
        manifest["timings_seconds"] = stages.timings
        manifest["peak_memory_mb"] = peak_memory_mb()
        manifest["peak_memory_mb_after_stage"] = stages.peaks
        manifest["memory_mb_after_stage"] = stages.resident
        manifest["outputs"] = outputs.listing(out)  # what a complete night holds, to check a copy against
        outputs.write_json(manifest, out / "manifest.json")  # last: its presence marks a complete night
        log.debug("stage seconds %s, peak memory %s MB", stages.timings, manifest["peak_memory_mb"])
    return RunResult(out, manifest, items, gate_failed=bool(gate and gate.blocking_failed))


def _compaction(conn, stats: dict, settings: dict, warnings: list[str]) -> dict:
    """Past `recent_rows_warning` rows in night tiers, the night folds them into the main tier
    itself (`auto_compact`, in its own transaction, under the writer lock it holds), so that no
    operator has to remember `custdq index compact`; with `auto_compact` off it warns instead."""
    due = stats["recent_rows"] > int(settings["recent_rows_warning"])
    if not due:
        return {"compact_due": False, "rows_compacted": 0}
    if not settings["auto_compact"]:
        warnings.append(f"the contact index's night tiers hold {stats['recent_rows']} rows; "
                        "run `custdq index compact` in a quiet hour")
        return {"compact_due": True, "rows_compacted": 0}
    done = ContactIndex(conn).compact()
    log.info("contact index compacted: %s rows folded into the main tier in %s s", count(done["rows_moved"]),
             done["seconds"])
    return {"compact_due": False, "rows_compacted": done["rows_moved"], "main_rows": done["main_rows"],
            "recent_rows": done["recent_rows"], "night_tiers": done["night_tiers"]}


def value_keys(fired: pd.DataFrame, key: bytes) -> pd.Series:
    """Keyed hash (hex) of what each finding is about: the shared value for book-wide findings
    (already set), else rule + field + the field's normalised value."""
    text = fired["rule_code"] + "|" + fired["field"] + "|" + fired["value_text"].fillna("").astype(str)
    own = hashkey.keyed(key, text, as_hex=True)
    return fired["value_key"].where(fired["value_key"].notna(), own)
