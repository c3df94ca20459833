"""PHONE_SHARED and BANK_SHARED for one night, against the whole book (SPEC 3).

Inside the night's transactions: take back what an earlier run of the same night wrote; look up
the stored rows that share a value with tonight's rows (tonight's policies replace their own
stored rows); grow the pool customer by customer until the clusters are complete; find the
involved rows (checks.shared); then write tonight's rows into the index.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from checks import shared
from checks.catalogue import RULE_OF_KIND, RULES
from pipeline.book import index
from pipeline.book.database import IndexFile
from pipeline.book.digests import digest64, member
from pipeline.book.rows import empty, version_of
from pipeline.book.tonight import NightContacts
from pipeline.rows.engine import Outcome, severity_of

MAX_ROUNDS = 25  # cluster growth rounds (each adds customers two links further out)


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


def grow(book: index.ContactIndex, tonight: NightContacts, grouping=None) -> tuple[pd.DataFrame, dict, tuple | None]:
    """Tonight's rows that can be shared plus every stored row needed to judge them and
    complete their clusters, with their judgement (checks.shared.judge; None for no rows). Only
    those of tonight's rows become a frame: the others are weeded out on digests, straight from
    tonight's Arrow tables. `grouping(stored_v, stored_c)`, when given, finds the crowded digests
    over tonight's rows and the stored ones elsewhere (the Spark engine's group-by,
    pipeline.spark); it may return more than `_crowded` would (never fewer): the pool is narrowed
    exactly before anything is judged."""
    fetched = set()  # values looked up beyond tonight's own
    chunks = list(tonight.values())  # each chunk's distinct values, looked up in one pass over the tiers
    stored = book.by_values(chunks).drop_duplicates("id") if chunks else empty()
    v, c = tonight.digests()
    if grouping is not None:
        crowded = grouping(digest64(stored["value"], "value"), digest64(stored["customer"], "customer"))
    elif len(stored):
        crowded = _crowded(np.concatenate([v, digest64(stored["value"], "value")]),
                           np.concatenate([c, digest64(stored["customer"], "customer")]))
    else:
        crowded = _crowded(v, c)
    pool = _narrow([tonight.frame(member(v, crowded)), stored])
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
                 business_date: dt.date, cfg: dict, sources: list[str], built: float = 0.0,
                 recheck: list[str] = (), grouping=None) -> BookResult:
    """Judge tonight's contact rows (`tonight`, held by pipeline.book.tonight) against the book
    and write them into the index. `frame` holds tonight's in-scope rows (at least `policy_no`,
    `_file`, `_line`), indexed by their row; `built` is the seconds the contact rows took;
    `recheck` the values (hex keys) of the store's shared items, to say which were judged tonight;
    `grouping` finds the crowded values elsewhere (see `grow`)."""
    started = time.perf_counter()
    steps: dict[str, float] = {"contact_rows": round(built, 3)}

    def step(name: str, t0: list[float] = [started]) -> None:  # noqa: B006 - a clock shared by the calls
        now = time.perf_counter()
        steps[name] = round(now - t0[0], 3)
        t0[0] = now

    version = version_of(business_date.isoformat(), "night")
    book = index.ContactIndex(db)  # an earlier run of the night was taken back (pipeline.night.nights)
    book.set_tonight(frame["policy_no"])
    pool, growth, judged = grow(book, tonight, grouping)
    step("lookup")
    hits = shared.involved(pool, judged) if len(pool) else pool.iloc[0:0]
    found = _findings(hits, frame, sources, labels) if len(hits) else None
    step("judge")
    written = book.write(tonight, frame["policy_no"], version)
    step("write")
    seconds = round(time.perf_counter() - started + built, 3)

    disabled = set(cfg["rules"]["disabled"])
    outcomes, parts = [], []
    for kind, code in RULE_OF_KIND.items():
        severity = severity_of(code, cfg)
        if code in disabled:
            outcomes.append(Outcome(code, severity, "disabled"))
            continue
        mine = found[found["rule_code"] == code] if found is not None else None
        n = len(mine) if mine is not None else 0
        failed = int(mine.loc[mine["row"] >= 0, "row"].nunique()) if n else 0
        tested = tonight.tested(kind)
        extra = {"earlier_policies_items": int((mine["row"] < 0).sum()) if n else 0,
                 "clusters": int(mine["cluster_id"].nunique()) if n else 0,
                 "largest_cluster": int(mine["cluster_size"].max()) if n else 0}
        outcomes.append(Outcome.judged(code, severity, tested, failed, n, seconds, book=extra))
        if n:
            parts.append(mine.assign(severity=severity, category=RULES[code].category))
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
