"""PHONE_SHARED and BANK_SHARED for one night, against the whole book (SPEC 3).

Inside the night's transactions: take back what an earlier run of the same night wrote; look up
the stored rows that share a value with tonight's rows (tonight's policies replace their own
stored rows); grow the pool customer by customer until the clusters are complete; find the
involved rows (checks.shared); then write tonight's rows into the index.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import duckdb

from checks import shared
from checks.catalogue import RULE_OF_KIND, RULES
from pipeline.book import index
from pipeline.errors import CustdqError
from pipeline.book.database import IndexFile
from pipeline.book.digests import digest64, member
from pipeline.book.rows import empty, version_of
from pipeline.book.tonight import NightContacts
from pipeline.rules import Outcome, isolated, severity_of
from pipeline.settings import Settings

# what ends the night rather than the two rules: the index failed (tonight's rows cannot be written)
INDEX_FAILURES: tuple[type[BaseException], ...] = (duckdb.Error, CustdqError, MemoryError, OSError)
MAX_ROUNDS = 25  # cluster growth rounds (each adds customers two links further out)
# a night without shared findings
_NO_HITS = pd.DataFrame({"row": pd.Series(dtype="int64"), "cluster_id": pd.Series(dtype="str"),
                         "cluster_size": pd.Series(dtype="Int64")})


@dataclass
class BookResult:
    found: pd.DataFrame | None  # findings carrying their policy's columns (pipeline.night.items.build `book`)
    outcomes: list[Outcome]
    stats: dict = field(default_factory=dict)
    # those of the store's shared items' values (hex of their keyed hashes) judged tonight: an
    # open shared item on one of them that did not fire tonight is no longer shared
    judged: set[str] = field(default_factory=set)


def _crowded(v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The value digests (sorted) carried by two or more distinct customer digests; written to
    hold few copies of 25M-entry arrays at once."""
    order = np.lexsort((c, v))
    vs = v[order]
    cs = c[order]
    del order
    # distinct (value, customer) pairs, then values with two or more of them (vs is sorted)
    new_pair = np.ones(len(vs), dtype=bool)
    new_pair[1:] = (vs[1:] != vs[:-1]) | (cs[1:] != cs[:-1])
    del cs
    pairs = vs[new_pair]
    del vs, new_pair
    starts = np.flatnonzero(np.concatenate([[True], pairs[1:] != pairs[:-1]]))
    counts = np.diff(np.append(starts, len(pairs)))
    return pairs[starts[counts >= 2]]


def _narrow(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of `parts` whose value is carried by two or more distinct customers (only those
    can be shared), found on 64-bit digests with numpy: a digest collision keeps a few rows more,
    never fewer, and the exact judgement on full hashes follows (checks.shared)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    v = np.concatenate([digest64(p["value"], "value") for p in parts])
    c = np.concatenate([digest64(p["customer"], "customer") for p in parts])
    keep = member(v, _crowded(v, c))
    out, start = [], 0
    for p in parts:
        mine = keep[start: start + len(p)]
        start += len(p)
        if mine.any():
            out.append(p[mine])
    return pd.concat(out, ignore_index=True) if out else empty()


def crowded_here(tonight_v: np.ndarray, tonight_c: np.ndarray, stored_v: np.ndarray,
                 stored_c: np.ndarray) -> np.ndarray:
    """The shared-value group-by in this process (the local engine's, pipeline.rows.engine):
    the value digests two or more customer digests carry, over tonight's and the stored rows."""
    if len(stored_v):
        return _crowded(np.concatenate([tonight_v, stored_v]), np.concatenate([tonight_c, stored_c]))
    return _crowded(tonight_v, tonight_c)


Crowded = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def grow(book: index.ContactIndex, tonight: NightContacts, crowded: Crowded = crowded_here
         ) -> tuple[pd.DataFrame, dict, tuple | None]:
    """Tonight's rows that can be shared plus every stored row needed to judge them and
    complete their clusters, with their judgement (checks.shared.judge; None for no rows). Only
    those of tonight's rows become a frame: the others are weeded out on digests, straight from
    tonight's Arrow tables. `crowded` is the engine's shared-value group-by (Engine.crowded); it
    may return more than `_crowded` would (never fewer): the pool is narrowed exactly before
    anything is judged."""
    fetched: set[bytes] = set()  # values looked up beyond tonight's own
    chunks = list(tonight.values())  # each chunk's distinct values, looked up in one pass over the tiers
    stored = book.by_values(chunks).drop_duplicates("id") if chunks else empty()
    v, c = tonight.digests()
    many = crowded(v, c, digest64(stored["value"], "value"), digest64(stored["customer"], "customer"))
    pool = _narrow([tonight.frame(member(v, many)), stored])
    del v, c
    seen: set[bytes] = set()
    rounds, truncated = 0, False
    while True:
        judged = shared.judge(pool) if len(pool) else None
        frontier = shared.shared_customers(pool, judged) - seen if judged is not None else set()
        if not frontier:
            break
        if rounds == MAX_ROUNDS:
            truncated = True
            break
        rounds += 1
        seen |= frontier
        more = book.by_customers(frontier)
        new_values = set(more["value"]) - fetched - set(pool["value"])
        fetched |= new_values
        parts = [pool, more] + ([book.by_values(new_values)] if new_values else [])
        grown = _narrow([pd.concat(parts, ignore_index=True).drop_duplicates("id")])
        # the pool's own rows stay (their values only get more customers) and come first: no row
        # added means the same rows in the same order, judged already, their shared customers seen
        done = len(grown) == len(pool)
        pool = grown
        if done:
            break
    return pool.reset_index(drop=True), {"cluster_rounds": rounds, "cluster_growth_truncated": truncated}, judged


def _findings(hits: pd.DataFrame, frame: pd.DataFrame, sources: list[str], labels: dict) -> pd.DataFrame:
    tonight = hits["row"].to_numpy() >= 0
    rows = _rows_at(frame, hits["row"].where(tonight, frame.index[0] if len(frame) else 0).to_numpy())
    role = shared.role_of(hits["field"])
    label = hits["field"].map(labels).astype("str")
    earlier = ("（该保单见于" + hits["version"].astype("str").str[:10] + "的提取）").where(~tonight, "")
    detail = label + "与其他" + hits["others"].astype("str") + "名客户相同" + earlier.astype("str")
    receipt = pd.to_datetime(hits["receipt_date"], errors="coerce")
    return pd.DataFrame({
        "row": hits["row"].to_numpy(), "role": role.to_numpy(), "field": hits["field"].to_numpy(),
        "detail": detail.to_numpy(), "evidence": hits["evidence"].to_numpy(),
        "rule_code": hits["kind"].map(RULE_OF_KIND).to_numpy(),
        "policy_no": hits["policy_no"].to_numpy(), "branch": hits["branch"].to_numpy(),
        "channel": hits["channel"].to_numpy(), "agent_code": hits["agent_code"].to_numpy(),
        "receipt_date_dt": receipt.to_numpy(),
        "source_file": pd.Series(sources, dtype=object).reindex(rows["_file"].to_numpy()).where(tonight, "").to_numpy()
        if len(frame) else "",
        "source_line": rows["_line"].where(tonight).astype("Int64").to_numpy() if len(frame) else pd.NA,
        "cluster_id": hits["cluster_id"].to_numpy(), "cluster_size": hits["cluster_size"].to_numpy(),
        **suppression_keys(hits),
    })


def _rows_at(frame: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """frame.reindex(labels) for labels of its index; on tonight's rows (labels in order) by
    binary search, without the hash table pandas would build, and keep, over a 10M-row index."""
    index = frame.index.to_numpy()
    if not len(frame) or not frame.index.is_monotonic_increasing:
        return frame.reindex(labels)
    pos = np.minimum(np.searchsorted(index, labels), len(index) - 1)
    if not (index[pos] == labels).all():
        return frame.reindex(labels)
    return frame.iloc[pos]


def suppression_keys(hits: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a confirmation of legitimacy suppresses (SPEC 6): the value, the row's customer and
    every customer of the value's group, as hex of their keyed hashes (never plaintext)."""
    value = _hex(hits["value"])
    customer = _hex(hits["customer"])
    # each group's distinct customers, sorted, comma-joined: sorted pairs and Arrow's list join
    group = hits["group"].to_numpy()
    pairs = pd.DataFrame({"group": group, "customer": customer}).drop_duplicates()
    pairs = pairs.sort_values(["group", "customer"], kind="stable")
    groups, starts = np.unique(pairs["group"].to_numpy(), return_index=True)
    offsets = np.append(starts, len(pairs)).astype(np.int64)
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(
        pairs["customer"].to_numpy(dtype=object), pa.large_string())), pa.scalar(",", pa.large_string()))
    members = np.array(joined.to_pylist(), dtype=object)
    return {"value_key": value, "customer_key": customer, "group_keys": members[np.searchsorted(groups, group)]}


def _hex(values: pd.Series) -> np.ndarray:
    """Hex text of each keyed hash: one hex pass over their concatenation when all have one length
    (anything but bytes-like fails here as bytes(b) did)."""
    v = values.to_numpy(dtype=object)
    width = np.fromiter(map(len, v), dtype=np.int64, count=len(v))
    if not len(v) or not width[0] or (width != width[0]).any():
        return np.array([bytes(b).hex() for b in v], dtype=object)
    text = np.frombuffer(b"".join(v).hex().encode("ascii"), dtype=f"S{2 * width[0]}")
    return text.astype(f"U{2 * width[0]}").astype(object)


def shared_night(db: IndexFile, tonight: NightContacts, frame: pd.DataFrame, labels: dict,
                 business_date: dt.date, cfg: Settings, sources: list[str], built: float = 0.0,
                 recheck: Iterable[str] = (), crowded: Crowded = crowded_here) -> BookResult:
    """Judge tonight's contact rows (`tonight`, held by pipeline.book.tonight) against the book
    and write them into the index. `frame` holds tonight's in-scope rows (at least `policy_no`,
    `_file`, `_line`), indexed by their row; `built` is the seconds the contact rows took;
    `recheck` the values (hex keys) of the store's shared items, to say which were judged tonight;
    `crowded` the engine's shared-value group-by (see `grow`).

    The two rules are judged through the rule engine's wrapper (pipeline.rules.isolated), as the
    row rules are: a judgement that raises is both rules' `error` outcome and the night goes on
    without their findings (their open items are then left as they are). A failure of the
    index itself (DuckDB, its memory limit) ends the night, as it must: tonight's rows could not
    be written."""
    started = time.perf_counter()
    steps: dict[str, float] = {"contact_rows": round(built, 3)}

    def step(name: str, t0: list[float] = [started]) -> None:  # noqa: B006 - a clock shared by the calls
        now = time.perf_counter()
        steps[name] = round(now - t0[0], 3)
        t0[0] = now

    version = version_of(business_date.isoformat(), "night")
    book = index.ContactIndex(db)  # an earlier run of the night was taken back (pipeline.cases.nights)
    book.set_tonight(frame["policy_no"])
    disabled = set(cfg.rules.disabled)
    enabled = tuple(code for code in RULE_OF_KIND.values() if code not in disabled)

    def judge() -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
        pool, growth, judged = grow(book, tonight, crowded)
        step("lookup")
        hits = shared.involved(pool, judged) if len(pool) else pool.iloc[0:0]
        found = _findings(hits, frame, sources, labels) if len(hits) else None
        step("judge")
        return pool, growth, found

    looked, failures = isolated(enabled, cfg, tonight.num_rows, judge, passes=INDEX_FAILURES)
    pool, growth, found = looked if looked is not None else (
        empty(), {"cluster_rounds": 0, "cluster_growth_truncated": False}, None)
    written = book.write(tonight, frame["policy_no"], version)
    step("write")
    seconds = round(time.perf_counter() - started + built, 3)

    outcomes, parts = list(failures), []
    for kind, code in RULE_OF_KIND.items():
        severity = severity_of(code, cfg)
        if code in disabled:
            outcomes.append(Outcome(code, severity, "disabled"))
            continue
        if failures:
            continue
        mine = found[found["rule_code"] == code] if found is not None else _NO_HITS
        n = len(mine)
        failed = int(mine.loc[mine["row"] >= 0, "row"].nunique()) if n else 0
        extra = {"earlier_policies_items": int((mine["row"] < 0).sum()) if n else 0,
                 "clusters": int(mine["cluster_id"].nunique()) if n else 0,
                 "largest_cluster": int(mine["cluster_size"].max()) if n else 0}
        outcomes.append(Outcome.judged(code, severity, tonight.tested(kind), failed, n, seconds, book=extra))
        if n:
            parts.append(mine.assign(severity=severity, category=RULES[code].category))
    order = list(RULE_OF_KIND.values())
    outcomes.sort(key=lambda o: order.index(o.rule_code))
    result = pd.concat(parts, ignore_index=True) if parts else None
    stats = {"contact_rows_tonight": tonight.num_rows, "pool_rows": len(pool),
             **growth, **written, **book.size(), "seconds": steps}
    wanted = []
    for k in recheck:
        try:
            wanted.append(bytes.fromhex(k))
        except (TypeError, ValueError):
            continue  # not a key this program wrote: never judged
    judged = {k.hex() for k in tonight.carries(wanted) | ({bytes(v) for v in pool["value"]} & set(wanted))}
    return BookResult(result, outcomes, stats, judged)
