"""Batch expectations for the night, run through a Great Expectations Checkpoint (issue 6).

GX stays off the row-level hot path: it validates small frames of what the night already
computed - one row of night aggregates (volume against recent nights, null rates of key fields,
duplicate policy numbers, each rule's failure rate) and the distinct values of the coded
columns - so it costs a fraction of a second after its import. The suite comes from the config
(`expectations`); an expectation listed in `expectations.blocking` that fails makes the run
exit 1 after every output is written. Data Docs are built into `<out>/data_docs/` and made to
open offline (`pipeline/outputs/datadocs.py`: vendored copies instead of CDNs, no marketing), the results
are kept in `<out>/expectations.json`, the manifest and the case store's run history.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from typing import TYPE_CHECKING

from checks.catalogue import SETTLED_BY_PEOPLE
from pipeline.files import DATA_DOCS
from pipeline.rows.profile import CODED, KEY_FIELDS

if TYPE_CHECKING:  # the gate's own process imports this module: it stays light (pipeline.night.gatehost)
    from pipeline.settings import Expectations



@dataclass
class GateResult:
    results: list[dict] = field(default_factory=list)
    blocking_failed: list[str] = field(default_factory=list)
    docs: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"evaluated": len(self.results), "failed": sum(not r["success"] for r in self.results),
                "blocking_failed": self.blocking_failed, "data_docs": self.docs, "seconds": self.seconds,
                "results": self.results}


def aggregates(seen: dict, duplicate_rows: int, rows: dict, outcomes, history: list[dict],
               cfg: Expectations) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(one row of night figures, distinct coded values, the volume reference) for the suite,
    from the night's merged `profile` and its count of repeated policy numbers."""
    nights = cfg.volume.nights
    earlier = [h["rows_read"] for h in history][-nights:]
    reference = statistics.median(earlier) if earlier else None
    n = max(seen["rows"], 1)
    figures = {"rows_read": rows["rows_read"], "rows_in_scope": rows["rows_in_scope"],
               "volume_ratio": (rows["rows_read"] / reference) if reference else 1.0,
               "duplicate_policy_rows": duplicate_rows}
    for name in KEY_FIELDS:
        if name in seen["nulls"]:
            figures[f"null_rate_{name}"] = float(seen["nulls"][name]) / n
    for o in outcomes:
        if o.status == "ok" and o.rule_code not in SETTLED_BY_PEOPLE:  # (a re-check list is no failure rate)
            figures[f"fail_pct_{o.rule_code}"] = float(o.percent_failed)
    values = seen["values"]
    longest = max((len(v) for v in values.values()), default=0)
    distinct = pd.DataFrame({k: sorted(v) + [None] * (longest - len(v)) for k, v in
                             ((k, values[k]) for k in dict.fromkeys(CODED.values()) if k in values)})
    return pd.DataFrame([figures]), distinct, {"median_rows_read": reference, "nights": len(earlier)}


def _suite(gx, figures: pd.DataFrame, distinct: pd.DataFrame, cfg: Expectations):
    """(name, expectation, frame) triples; names are what the config's `blocking` refers to."""
    E = gx.expectations
    out = []
    vol = cfg.volume
    out.append(("volume", E.ExpectColumnValuesToBeBetween(column="volume_ratio", min_value=vol.min_ratio,
                                                          max_value=vol.max_ratio), "night"))
    for name, limit in cfg.null_rates.items():
        if f"null_rate_{name}" in figures.columns:
            out.append((f"null_rate:{name}", E.ExpectColumnValuesToBeBetween(
                column=f"null_rate_{name}", min_value=0.0, max_value=float(limit)), "night"))
    out.append(("unique_policy_no", E.ExpectColumnValuesToBeBetween(column="duplicate_policy_rows", min_value=0,
                                                                     max_value=0), "night"))
    for kind, allowed in cfg.value_sets.items():
        if kind in distinct.columns:
            out.append((f"value_set:{kind}", E.ExpectColumnDistinctValuesToBeInSet(
                column=kind, value_set=[str(v) for v in allowed]), "values"))
    limits = cfg.rule_failure_pct
    for column in figures.columns:
        if column.startswith("fail_pct_"):
            code = column[len("fail_pct_"):]
            limit = float(limits.get(code, limits["default"]))
            out.append((f"rule_failure:{code}", E.ExpectColumnValuesToBeBetween(
                column=column, min_value=0.0, max_value=limit), "night"))
    return out


def import_gx():
    """`import great_expectations`, safe where the main module has no file.

    When PySpark is installed GX probes its Spark Connect module, and PySpark's probe ends the
    process with exit status 0 ("Skipping doctests", `sys.exit(0)`) when `__main__` has neither
    a spec nor a file nor an interactive prompt - `python -c`, a pytest-xdist worker, any host
    that embeds custdq - and grpc is missing: the night would stop silently, with success. For
    the import only, `sys.ps1` is set, so the probe raises its ImportError, which GX handles."""
    main = sys.modules.get("__main__")
    bare = (main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
            and not hasattr(sys, "ps1"))
    if bare:
        sys.ps1 = ">>> "
    try:
        import great_expectations as gx
    finally:
        if bare:
            del sys.ps1
    return gx


def run_gate(figures: pd.DataFrame, distinct: pd.DataFrame, reference: dict, cfg: Expectations, out: Path) -> GateResult:
    import time
    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave the machine
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.disable(logging.CRITICAL)  # GX logs at INFO on its own loggers: our stderr carries our lines only
    try:
        return _run(gx, ProgressBarsConfig, figures, distinct, cfg, out, started)
    finally:
        logging.disable(logging.NOTSET)


def _run(gx, ProgressBarsConfig, figures, distinct, cfg, out, started) -> GateResult:
    import time
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    # the ephemeral context's own docs site lives in a fresh temporary folder: remove both
    scratch = ctx.variables.data_docs_sites.get("local_site", {}).get("store_backend", {}).get("base_directory")
    ctx.delete_data_docs_site("local_site")
    if scratch and Path(scratch).parent == Path(tempfile.gettempdir()):
        shutil.rmtree(scratch, ignore_errors=True)
    docs = out / DATA_DOCS
    ctx.add_data_docs_site(site_name="custdq", site_config={
        "class_name": "SiteBuilder", "show_how_to_buttons": False,  # no tutorial footer, no walkthrough
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_how_to_buttons": False},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.resolve())}})
    # one batch: the night's figures in the first row, the coded columns' distinct values down
    # their own columns (each expectation ignores the other columns' empty cells), so one
    # Checkpoint validates everything and Data Docs are rendered once
    batch_frame = _one_batch(figures, distinct)
    expectations = []
    for name, expectation, _ in _suite(gx, figures, distinct, cfg):
        expectation.meta = {"custdq_name": name}
        expectations.append(expectation)
    # the whole suite stored at once: added one by one to a stored suite, each expectation wrote
    # the suite again (0.65 s of a small night's 2 s gate)
    suite = ctx.suites.add(gx.ExpectationSuite(name="custdq_night", expectations=expectations))
    batch = ctx.data_sources.add_pandas("custdq").add_dataframe_asset("night") \
        .add_batch_definition_whole_dataframe("night")
    definition = ctx.validation_definitions.add(gx.ValidationDefinition(data=batch, suite=suite, name="custdq_night"))
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(
        name="custdq_nightly", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["custdq"])],
        result_format={"result_format": "SUMMARY"}))
    run = checkpoint.run(batch_parameters={"dataframe": batch_frame})
    if docs.is_dir():
        from pipeline.outputs.datadocs import localise

        localise(docs)  # every page opens offline: vendored copies instead of CDNs, no marketing
    result = GateResult()
    blocking = set(cfg.blocking)
    for validation in run.run_results.values():
        for r in validation.results:
            name = (r.expectation_config.meta or {}).get("custdq_name", r.expectation_config.type)
            observed = r.result.get("observed_value")
            if observed is None and r.result.get("partial_unexpected_list") is not None:
                observed = r.result.get("partial_unexpected_list")
            kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k not in ("batch_id",)}
            result.results.append({"name": name, "expectation": r.expectation_config.type,
                                   "success": bool(r.success), "blocking": name in blocking or
                                   name.split(":")[0] in blocking, "observed": _plain(observed),
                                   "kwargs": _plain(kwargs)})
    result.blocking_failed = [r["name"] for r in result.results if r["blocking"] and not r["success"]]
    result.docs = f"{DATA_DOCS}/index.html" if (docs / "index.html").exists() else None
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _one_batch(figures: pd.DataFrame, distinct: pd.DataFrame) -> pd.DataFrame:
    rows = max(len(distinct), 1)
    night = figures.reindex(range(rows))  # figures in row 0, empty below
    return pd.concat([night, distinct.reindex(range(rows))], axis=1)


def _plain(value):
    """JSON-safe copy (GX returns numpy scalars and tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
