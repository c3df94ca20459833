"""The night's `manifest.json`, built in this one place. Its shape is published as a JSON Schema,
`docs/manifest.schema.json`, which downstream users parse against; a test validates real
nights' manifests with it, so a field added here without the schema (or the other way round)
fails."""

from __future__ import annotations

import datetime as dt
import platform
from importlib import metadata as md
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__, outputs, store
from pipeline.night import alerts
from pipeline.night import nights
from pipeline.rows.chunks import per_worker, workers_of
from pipeline.clock import CHINA
from pipeline.night.progress import peak_memory_mb

if TYPE_CHECKING:
    from pipeline.night.progress import Stages
    from pipeline.night.run import Night

PACKAGES = ["pandas", "pandera", "pyarrow", "numpy", "openpyxl", "click", "chinesecalendar",
            "SQLAlchemy", "phonenumbers", "python-stdnum", "PyYAML", "scipy", "XlsxWriter", "great-expectations"]


def versions() -> dict[str, str]:
    found = {"custdq": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = "not installed"
    return found


def night_manifest(n: Night, conn) -> dict:
    """Everything the night did, once its outputs are written (the store and dashboard stages
    follow; finish_manifest adds their timings)."""
    finished = dt.datetime.now(CHINA)
    reading, tally, gate, cfg, spark = n.reading, n.tally, n.gate, n.cfg, n.spark
    items = n.cases.listing
    manifest = {
        "custdq_version": __version__,
        "business_date": n.date,
        "started_at": n.started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "inputs": [i.to_dict() for i in reading.inputs] + ([n.roster.manifest] if n.roster else []),
        "rows": n.rows,
        "rows_blank_skipped": sum(i.blank_rows for i in reading.inputs),
        "quarantine_reasons": n.quarantine["reason"].str.replace(r"\d+ fields where", "N fields where", regex=True)
                                                    .value_counts().to_dict(),
        "optional_columns_absent": reading.absent_optional,
        "coverage_term_unreadable_checked": tally.term_unreadable,
        "chunks": {"rows_per_chunk": cfg["chunk_rows"], "chunks": tally.chunks} | ({} if spark is not None else {
            "workers": workers_of(cfg), "rows_per_worker_chunk": per_worker(cfg["chunk_rows"], workers_of(cfg))}),
        "engine": spark.describe() if spark is not None else {"name": "local"},
        "rules": {o.rule_code: o.to_dict() for o in n.outcomes},
        "contact_index": n.book.stats,
        "worklists": {"folder": "worklists", "files": sum(map(len, n.worklist_files.values())),
                      "branches": len(n.worklist_files), "rows": len(items)},
        "findings_per_rule": {k: int(v) for k, v in n.fired["rule_code"].value_counts().sort_index().items()},
        "open_items_per_rule": {k: int(v) for k, v in items["rule_code"].value_counts().sort_index().items()},
        "findings_tonight": len(n.fired),
        "rows_flagged": n.rows_flagged,
        "replaced_earlier_run": n.replaced["manifest"] is not None,
        "expectations": gate.to_dict() if gate else {"enabled": False},
        "items": n.cases.counts,
        "deadlines": {
            "list_due": n.deadlines.list_due.isoformat(), "channel_due": n.deadlines.channel_due.isoformat(),
            "list_due_met": finished.date() <= n.deadlines.list_due, "provisional": n.deadlines.provisional,
            "calendar_source": n.calendar.source, "calendar_years_uncovered": sorted(n.calendar.uncovered),
        },
        "case_store": store.shown_url(n.db),  # an SQLite file by its absolute path (outputs.refuse_foreign)
        "timings_seconds": n.stages.timings,
        "peak_memory_mb": peak_memory_mb(),
        "versions": versions(),
    }
    said = alerts.night_warnings(manifest, gate.results if gate else [], n.reference if gate else {},
                                 nights.same_inputs(conn, manifest["inputs"], n.date), n.warnings)
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
    outputs.write_json(manifest, out / "manifest.json")
