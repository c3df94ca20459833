"""The whole case store as comparable frames, less what differs between equal stores: run
timestamps, surrogate ids, event times, the record of rewinds. Used by the re-run property
tests (tests/test_reruns.py) to say that a store equals the one a clean sequence gives."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import sqlalchemy as sa

from pipeline import settings, store
from pipeline.book import database

# manifest keys that describe the run rather than the night (times, memory, re-run bookkeeping)
VOLATILE = {"started_at", "finished_at", "timings_seconds", "peak_memory_mb", "peak_memory_mb_after_stage",
            "memory_mb_after_stage", "outputs", "case_store", "warnings", "warnings_zh", "chunks"}  # chunks: how it ran
SECONDS = ("expectations", "contact_index")  # sections whose "seconds" is a timing
SKIP_TABLES = {"rewinds", "custdq_meta"}


def _manifest(text: str) -> str:
    m = {k: v for k, v in json.loads(text).items() if k not in VOLATILE}
    m.get("items", {}).pop("run_events_taken_back", None)  # what the run replaced: bookkeeping, not the night
    m.pop("replaced_earlier_run", None)
    for section in SECONDS:
        m.get(section, {}).pop("seconds", None)
    m.get("contact_index", {}).pop("rows_taken_back", None)
    for rule in m.get("rules", {}).values():
        rule.pop("seconds", None)
    for i in m.get("inputs", []):
        i.pop("path", None)
    m.get("engine", {}).pop("seconds", None)
    return json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)


# the contact index's tables (pipeline.book.database), less surrogate ids and write tokens
INDEX_TABLES = {"contacts": ["id"], "replaced": ["id"], "seen": [], "versions": ["token"]}


def _index(engine, url: str) -> dict[str, pd.DataFrame]:
    with engine.begin() as conn:
        path = database.path_for(conn, url, settings.load())
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for name, drop in INDEX_TABLES.items():
            sql = f"SELECT * FROM {name}"  # noqa: S608 - constant names
            out[f"index.{name}"] = con.sql(sql).to_arrow_table().to_pandas().drop(columns=drop)
        return out
    finally:
        con.close()


def dump(url: str) -> dict[str, pd.DataFrame]:
    engine = store.open_store(url)
    out = {}
    tables = _index(engine, url)
    with engine.connect() as conn:
        for name, table in store.metadata.tables.items():
            if name in SKIP_TABLES:
                continue
            tables[name] = store.read_frame(conn, sa.select(table))
    for name, frame in tables.items():
        if name == "runs":
            frame["manifest"] = frame["manifest"].map(_manifest)
            frame = frame.drop(columns=["started_at", "finished_at"])
        if name == "item_events":
            frame = frame.drop(columns=["id", "at"])
        if name == "night_undo":  # the marker holds an event id, a surrogate
            frame = frame[frame["item_id"] != ""]
        frame = frame.astype(object).where(frame.notna(), None).map(
            lambda v: bytes(v).hex() if isinstance(v, (bytes, memoryview)) else v)
        out[name] = frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)
    engine.dispose()
    return out


def _json_diff(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _json_diff(a.get(k), b.get(k), f"{where}.{k}")
        return out
    return [] if a == b else [f"{where}: {str(a)[:200]} != {str(b)[:200]}"]


def differences(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> list[str]:
    """Human-readable differences between two dumps (empty when equal)."""
    found = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is not None and y is not None and x.equals(y):
            continue
        if x is None or y is None or len(x) != len(y):
            only = pd.concat([x.assign(_in="a"), y.assign(_in="b")]).drop_duplicates(
                subset=list(x.columns), keep=False).head(8) if x is not None and y is not None else None
            found.append(f"{name}: {len(x) if x is not None else '-'} vs {len(y) if y is not None else '-'} rows\n"
                         f"{only.to_string() if only is not None else ''}")
            continue
        for col in x.columns:
            if not x[col].equals(y[col]):
                if col == "manifest":
                    for u, v in zip(x[col], y[col]):
                        found += [f"{name}.manifest{d}" for d in _json_diff(json.loads(u), json.loads(v))]
                else:
                    bad = x[col] != y[col]
                    found.append(f"{name}.{col}: {int(bad.sum())} rows differ, e.g. "
                                 f"{list(zip(x.loc[bad, col].head(3), y.loc[bad, col].head(3)))}")
    return found
