"""The night's `manifest.json`, built in this one place. Its shape is published as a JSON Schema,
`docs/manifest.schema.json`, which downstream users parse against; a test validates real
nights' manifests with it, so a field added here without the schema (or the other way round)
fails."""

from __future__ import annotations

import datetime as dt
import platform
from importlib import metadata as md
from pathlib import Path

import sqlalchemy as sa

from pipeline import __version__, outputs, store
from pipeline.cases import nights
from pipeline.cases.night import CaseUpdate
from pipeline.clock import CHINA
from pipeline.night import alerts
from pipeline.night.results import Checked, Gate, Items, Shared, TakenBack, Tonight, Written, outcomes
from pipeline.progress import Stages, peak_memory_mb

PACKAGES = ["pandas", "pandera", "pyarrow", "numpy", "openpyxl", "click", "chinesecalendar",
            "SQLAlchemy", "phonenumbers", "python-stdnum", "PyYAML", "scipy", "XlsxWriter", "great-expectations",
            "duckdb", "pydantic"]


def versions() -> dict[str, str]:
    found = {"custdq": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = "not installed"
    return found


def night_manifest(n: Tonight, conn: sa.Connection, checked: Checked, shared: Shared, items: Items,
                   update: CaseUpdate, written: Written, gate: Gate | None, taken: TakenBack) -> dict:
    """Everything the night did, once its outputs are written (the store and dashboard stages
    follow; finish_manifest adds their timings)."""
    finished = dt.datetime.now(CHINA)
    reading, listing, deadlines = checked.reading, update.listing, items.deadlines
    manifest = {
        "custdq_version": __version__,
        "business_date": n.date,
        "started_at": n.started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "inputs": [i.to_dict() for i in reading.inputs] + ([checked.roster.manifest] if checked.roster else []),
        "rows": checked.rows,
        "rows_blank_skipped": sum(i.blank_rows for i in reading.inputs),
        "quarantine_reasons": checked.quarantine["reason"].str.replace(r"\d+ fields where", "N fields where", regex=True)
                                                          .value_counts().to_dict(),
        "optional_columns_absent": reading.absent_optional,
        "coverage_term_unreadable_checked": checked.term_unreadable,
        "chunks": n.engine.chunking(checked.chunks),
        "engine": n.engine.describe(),
        "rules": {o.rule_code: o.to_dict() for o in outcomes(checked, shared)},
        "contact_index": shared.stats,
        "worklists": {"folder": outputs.WORKLISTS, "files": sum(map(len, written.worklist_files.values())),
                      "branches": len(written.worklist_files), "rows": len(listing)},
        "findings_per_rule": {k: int(v) for k, v in items.fired["rule_code"].value_counts().sort_index().items()},
        "open_items_per_rule": {k: int(v) for k, v in listing["rule_code"].value_counts().sort_index().items()},
        "findings_tonight": len(items.fired),
        "rows_flagged": written.rows_flagged,
        "replaced_earlier_run": taken.earlier_manifest is not None,
        "expectations": gate.result.to_dict() if gate else {"enabled": False},
        "items": update.counts,
        "deadlines": {
            "list_due": deadlines.list_due.isoformat(), "channel_due": deadlines.channel_due.isoformat(),
            "list_due_met": finished.date() <= deadlines.list_due, "provisional": deadlines.provisional,
            "calendar_source": items.calendar.source, "calendar_years_uncovered": sorted(items.calendar.uncovered),
        },
        "case_store": store.shown_url(n.db),  # an SQLite file by its absolute path (outputs.refuse_foreign)
        "timings_seconds": n.stages.timings,
        "peak_memory_mb": peak_memory_mb(),
        "versions": versions(),
    }
    raised = ([alerts.recovered(list(n.recovered))] if n.recovered else []) + (
        [alerts.rewound(taken.rewound)] if taken.rewound else [])
    said = alerts.night_warnings(manifest, gate.result.results if gate else [], gate.reference if gate else {},
                                 nights.same_inputs(conn, manifest["inputs"], n.date), raised)
    manifest["warnings"] = [a.en for a in said]  # the command line's, for operators and scripts (SPEC 7)
    manifest["warnings_zh"] = [a.zh for a in said]  # the dashboards' 运行提醒
    return manifest


def finish_manifest(manifest: dict, stages: Stages, out: Path) -> None:
    """The last figures (every stage's timing and memory, the files the night holds), then
    manifest.json itself: last, its presence marks a complete night."""
    manifest["timings_seconds"] = stages.timings
    manifest["peak_memory_mb"] = peak_memory_mb()
    manifest["peak_memory_mb_after_stage"] = stages.peaks
    manifest["memory_mb_after_stage"] = stages.resident
    manifest["outputs"] = outputs.listing(out)  # what a complete night holds, to check a copy against
    outputs.write_json(manifest, out / outputs.MANIFEST)
