"""PHONE_SHARED and BANK_SHARED over a pool of contact rows (SPEC 3), without any database.

A contact row is one phone or account of one policy and role, with its customer (a keyed hash
of the customer identity, checks.customers) and its value (a keyed hash of the E.164 phone or
the account digits). Rows with the same `value` form a group. Within a group the applicant and
the insured of one policy are not "different customers" (SPEC 3), so the group's customers are
first joined into parties: same customer, or applicant and insured of one policy. A group with
two or more parties is shared, and every row in it is involved.

Clusters are the connected components of customers linked by shared values (a customer is in
the cluster of every shared value it carries), labelled by the smallest customer hash in the
component, so the same component gets the same id on every run.

Columns of a pool (see pipeline.book.rows.CONTACT_COLUMNS): id, kind (P phone / B bank),
value, customer, person, policy_no, field, masked_value, masked_name, masked_id, branch, channel,
agent_code, receipt_date, version, row, tonight.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from checks.masking import mask_id

ROLE_NAMES = {"applicant": "投保人", "insured": "被保险人"}
EVIDENCE_LIMIT = 10  # other records listed in one item's evidence; the count is always complete


def role_of(field: pd.Series) -> pd.Series:
    return field.str.startswith("insured").map({True: "insured", False: "applicant"}).astype("str")


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def resolve(pool: pd.DataFrame) -> pd.DataFrame:
    """A record known only by name + birth date + sex (SPEC 2.4) is the customer of the records
    with an identity number and the same name, birth date and sex, when exactly one such
    customer is in the pool (two namesakes born the same day: it stays apart)."""
    by_person = pool["person"].notna().to_numpy() & (pool["customer"] == pool["person"]).to_numpy()
    if not by_person.any():
        return pool
    documented = pool.loc[pool["person"].notna().to_numpy() & ~by_person, ["person", "customer"]].drop_duplicates()
    unique = documented.groupby("person")["customer"].agg(["nunique", "first"])
    mapping = unique.loc[unique["nunique"] == 1, "first"]
    if mapping.empty:
        return pool
    pool = pool.copy()
    found = pool.loc[by_person, "person"].map(mapping)
    pool.loc[found.dropna().index, "customer"] = found.dropna()
    return pool


def parties(pool: pd.DataFrame) -> pd.DataFrame:
    """Per row: `group` (code of its value), `party` (code of its party within the group) and
    `parties` (how many parties the group has)."""
    group = pd.factorize(pool["value"])[0]
    customer = pd.factorize(pool["customer"])[0]
    node_key = group.astype(np.int64) * (customer.max(initial=0) + 1) + customer
    node, uniques = pd.factorize(node_key)
    # applicant and insured of one policy carrying the same value: one party
    pairs = pd.DataFrame({"group": group, "policy": pool["policy_no"].to_numpy(), "node": node})
    pairs = pairs.sort_values(["group", "policy"], kind="stable")
    same = (pairs["group"].to_numpy()[1:] == pairs["group"].to_numpy()[:-1]) & \
           (pairs["policy"].to_numpy()[1:] == pairs["policy"].to_numpy()[:-1])
    nodes = pairs["node"].to_numpy()
    label = _components(len(uniques), nodes[:-1][same], nodes[1:][same]) if len(uniques) else np.zeros(0, int)
    party = label[node]
    counts = pd.Series(party).groupby(group).nunique()
    return pd.DataFrame({"group": group, "party": party, "parties": counts.reindex(group).to_numpy()},
                        index=pool.index)


def clusters(pool: pd.DataFrame, shared: pd.Series) -> pd.DataFrame:
    """Cluster id and size (distinct customers) of each row of a shared group."""
    rows = pool[shared]
    out = pd.DataFrame({"cluster_id": pd.Series(dtype="str"), "cluster_size": pd.Series(dtype="Int64")},
                       index=pool.index)
    if rows.empty:
        return out
    # smallest hash first, so a component's first customer code is its smallest customer hash
    customer, names = pd.factorize(rows["customer"], sort=True)
    value = pd.factorize(rows["value"])[0] + len(names)
    label = _components(len(names) + value.max() + 1, customer, value)
    per_customer = pd.DataFrame({"label": label[: len(names)], "code": np.arange(len(names))})
    per_customer = per_customer[per_customer["code"].isin(np.unique(customer))]
    first = per_customer.groupby("label")["code"].min()
    size = per_customer.groupby("label").size()
    row_label = label[customer]
    # the id of each component once, then each row's by position
    ids = np.array(["CL" + bytes(names[c]).hex()[:12].upper() for c in first.to_numpy()], dtype=object)
    at = first.index.get_indexer(row_label)
    out.loc[rows.index, "cluster_id"] = ids[at]
    out.loc[rows.index, "cluster_size"] = size.to_numpy()[size.index.get_indexer(row_label)]
    return out


def _describe(rows: pd.DataFrame) -> pd.Series:
    """'保单 P2 投保人 李** 1****************X' for each row (masked, for the evidence)."""
    who = rows["masked_name"].fillna("姓名缺失")
    ident = (" " + rows["masked_id"]).fillna("")
    return ("保单" + rows["policy_no"] + " " + role_of(rows["field"]).map(ROLE_NAMES) + " " + who + ident).astype("str")


# a record _describe lists in an evidence text: 保单<policy no> <role> ...
LISTED = re.compile(r"保单(.+?) (?=(?:投保人|被保险人) )")


def foreign_masked(texts: list, mine: set[str]) -> list:
    """Evidence texts with every policy number they list that is not in `mine` masked as
    mask_id masks identity numbers (first and last character): what a branch sees of another
    branch's records sharing a value (the web app, the branch's worklist).

    >>> foreign_masked(["139****9999 同时出现在：保单P31 投保人 客** 4****************7", None], {"P30"})
    ['139****9999 同时出现在：保单P*1 投保人 客** 4****************7', None]
    """
    listed = {no for text in texts if isinstance(text, str) for no in LISTED.findall(text)}
    foreign = sorted(listed - set(mine))
    if not foreign:
        return list(texts)
    masked = dict(zip(foreign, mask_id(pd.Series(foreign, dtype="str")).tolist()))

    def hide(match: re.Match) -> str:
        return "保单" + masked.get(match.group(1), match.group(1)) + " "

    return [LISTED.sub(hide, text) if isinstance(text, str) else text for text in texts]


def judge(pool: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's customer after `resolve` and its `parties`: what `shared_customers` and
    `involved` start from (pipeline.book.detect.grow judges the pool it ends with, so `involved`
    need not judge it again)."""
    resolved = resolve(pool)
    return resolved["customer"].to_numpy(), parties(resolved)


def involved(pool: pd.DataFrame, judged: tuple[np.ndarray, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The rows that get an item tonight: every row of a shared group that has a row of tonight's
    extract, with `others` (how many other customers share the value), `evidence`, `cluster_id`
    and `cluster_size`. `judged`: `judge` of these rows in this order, when the caller has it."""
    if judged is not None and len(judged[0]) == len(pool) and judged[1].index.equals(pool.index):
        pool, p = pool.assign(customer=judged[0]), judged[1]
    else:
        pool = resolve(pool)
        p = parties(pool)
    shared = pd.Series(p["parties"].to_numpy() >= 2, index=pool.index)
    group = p["group"].to_numpy()
    tonight_groups = np.zeros(group.max(initial=-1) + 1, dtype=bool)
    tonight_groups[group[pool["tonight"].to_numpy() & shared.to_numpy()]] = True
    hit = shared & tonight_groups[group]
    columns = list(pool.columns) + ["group", "party", "others", "evidence", "cluster_id", "cluster_size"]
    if not hit.any():
        return pd.DataFrame(columns=columns)
    cl = clusters(pool, shared)
    rows = pool[hit].assign(group=p.loc[hit, "group"], party=p.loc[hit, "party"], desc=_describe(pool[hit]))
    rows = rows.sort_values(["group", "policy_no", "field"], kind="stable")
    # other customers = the group's customers minus those of the row's own party
    per_group = rows.groupby("group")["customer"].transform("nunique")
    per_party = rows.groupby(["group", "party"])["customer"].transform("nunique")
    evidence = _evidence(rows["group"].to_numpy(), rows["party"].to_numpy(), rows["desc"].to_numpy(dtype=object),
                         rows["masked_value"].to_numpy(dtype=object))
    out = rows.drop(columns=["desc"])
    out["others"] = (per_group - per_party).astype("int64")
    out["evidence"] = pd.Series(evidence, dtype="str", index=out.index).to_numpy()
    out["cluster_id"] = cl.loc[out.index, "cluster_id"].to_numpy()
    out["cluster_size"] = cl.loc[out.index, "cluster_size"].to_numpy()
    return out


def _evidence(group: np.ndarray, party: np.ndarray, desc: np.ndarray, masked: np.ndarray) -> list[str]:
    """Per row (each group's rows together, in their order): '<masked value> 同时出现在：' and the
    descriptions of the first EVIDENCE_LIMIT rows of its group outside its own party, '；等共N条记录'
    when there are more. That listing depends on the row's (group, party) only: it is built once
    per pair, column-wise (numpy positions, Arrow's list join), not row by row."""
    n = len(group)
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    sizes = np.diff(np.append(starts, n))
    ordinal = np.repeat(np.arange(len(starts)), sizes)  # the row's group, 0..groups-1
    pair, firsts = _first_codes(ordinal.astype(np.int64) * (int(party.max(initial=0)) + 1) + party)
    pair_group, pair_party = ordinal[firsts], party[firsts]
    members = np.bincount(pair, minlength=len(firsts))  # rows of the pair's party in its group
    others = sizes[pair_group] - members
    # the first EVIDENCE_LIMIT others of a pair are among its group's first (limit + own rows) rows
    window = np.minimum(sizes[pair_group], EVIDENCE_LIMIT + members)
    seg = np.repeat(np.arange(len(firsts)), window)
    j = np.repeat(starts[pair_group], window) + (np.arange(len(seg)) - np.repeat(np.cumsum(window) - window, window))
    other = party[j] != pair_party[seg]
    seg, j = seg[other], j[other]
    counted = np.bincount(seg, minlength=len(firsts))
    rank = np.arange(len(seg)) - (np.cumsum(counted) - counted)[seg]
    seg, j = seg[rank < EVIDENCE_LIMIT], j[rank < EVIDENCE_LIMIT]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(seg, minlength=len(firsts)))])
    listed = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()),
                                                          pa.array(desc[j], pa.large_string())),
                            pa.scalar("；", pa.large_string()))
    more = [f"；等共{k}条记录" if k > EVIDENCE_LIMIT else "" for k in others.tolist()]
    tail = [a + b for a, b in zip(listed.to_pylist(), more)]
    return [f"{m} 同时出现在：{tail[k]}" for m, k in zip(masked, pair.tolist())]


def _first_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of `keys` in order of first appearance, and the position of each code's first row."""
    codes = pd.factorize(keys)[0]
    return codes, np.unique(codes, return_index=True)[1]


def shared_customers(pool: pd.DataFrame, judged: tuple[np.ndarray, pd.DataFrame] | None = None) -> set[bytes]:
    """Customers carrying at least one shared value of the pool (to grow clusters from)."""
    customer, p = judged if judged is not None else judge(pool)
    return set(customer[p["parties"].to_numpy() >= 2])
