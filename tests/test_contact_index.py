"""The contact index's parts on their own (issue 16): per-policy fingerprints on Arrow data,
set membership hashed on the smaller side, tiers read a segment at a time and skipped on their
digests, and ContactIndex's writes and lookups against a real SQLite file."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline import store
from pipeline.book import index, segments, signature
from pipeline.book.digests import within
from pipeline.book.rows import CONTACT_COLUMNS, STORED
from pipeline.book.tonight import NightContacts


def key(text: str) -> bytes:
    """A stand-in for a keyed hash: 16 bytes, uniformly random looking."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def rows(policies: dict[str, list[tuple[str, str]]], version: str, branch: str = "广州分公司") -> pd.DataFrame:
    """Contact rows: per policy number, (phone, customer) pairs."""
    out = []
    for no, contacts in policies.items():
        for n, (phone, customer) in enumerate(contacts):
            out.append({"kind": "P", "value": key("P|" + phone), "customer": key(customer), "person": key("p" + customer),
                        "policy_no": no, "field": ["applicant_phone", "insured_phone"][n % 2],
                        "masked_value": phone[:3] + "****" + phone[-4:], "masked_name": "张*", "masked_id": None,
                        "branch": branch, "channel": "个险", "agent_code": "A001", "receipt_date": "2026-11-20",
                        "version": version, "row": len(out)})
    frame = pd.DataFrame(out)
    frame["id"] = -np.arange(1, len(frame) + 1, dtype=np.int64)
    frame["tonight"] = True
    return frame[CONTACT_COLUMNS]


# ---- fingerprints ----------------------------------------------------------------------------
def _fingerprints(*tables: pa.Table) -> dict:
    combined = signature.combine([signature.partial(t) for t in tables])
    return {r["policy_no"]: (r["n"], r["a"], r["b"]) for r in combined.to_pylist()}


def test_fingerprints_ignore_order_batching_encoding_and_source():
    frame = rows({"P1": [("13900000001", "c1"), ("13900000002", "c2")], "P2": [("13900000003", "c3")]}, "2026-11-20N")
    tier = segments.tier_table(frame)  # dictionary-encoded texts, as stored in a tier
    whole = _fingerprints(tier)
    assert set(whole) == {"P1", "P2"} and whole["P1"][0] == 2
    reversed_batches = [tier.slice(2, 1), tier.slice(0, 2).take(pa.array([1, 0]))]
    assert _fingerprints(*reversed_batches) == whole
    # the same rows as SQL returns them (plain texts, bytes), with another version
    sql = [tuple(r[c] if c != "version" else "2026-11-23N" for c in ["id", *STORED])
           for r in frame.assign(id=np.arange(1, 4)).to_dict("records")]
    assert _fingerprints(index._arrow_rows(sql, ["id", *STORED])) == whole
    # a missing text counts as the empty text, as in the earlier pandas fingerprint
    assert _fingerprints(segments.tier_table(frame.assign(masked_id=""))) == whole


@pytest.mark.parametrize("column,value", [("masked_name", "李*"), ("branch", "深圳分公司"), ("customer", key("other")),
                                          ("field", "bank_account"), ("receipt_date", "2026-11-21")])
def test_a_changed_column_changes_the_fingerprint(column, value):
    frame = rows({"P1": [("13900000001", "c1"), ("13900000002", "c2")]}, "2026-11-20N")
    changed = frame.copy()
    changed.loc[1, column] = value
    a, b = (signature.combine([signature.partial(segments.tier_table(f))]) for f in (frame, changed))
    assert signature.unchanged(a, a).to_pylist() == ["P1"]
    assert signature.unchanged(a, b).to_pylist() == []


def test_a_row_more_or_less_changes_the_fingerprint():
    two = rows({"P1": [("13900000001", "c1"), ("13900000002", "c2")]}, "V")
    one = two.iloc[:1]
    a, b = (signature.combine([signature.partial(segments.tier_table(f))]) for f in (two, one))
    assert signature.unchanged(a, b).to_pylist() == []


def test_odd_sized_and_missing_hashes_are_fingerprinted_alike_in_any_batch():
    values = pa.array([key("a"), b"short", None, key("b")], type=pa.binary())
    whole = signature._binary_hashes(values)
    parts = np.concatenate([signature._binary_hashes(values.slice(0, 1)), signature._binary_hashes(values.slice(1))])
    assert (whole == parts).all() and len(set(whole.tolist())) == 4


# ---- membership ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_values,n_among", [(10, 1000), (1000, 10), (50, 50), (0, 5), (5, 0)])
def test_within_equals_is_in_whichever_side_is_hashed(n_values, n_among):
    rng = np.random.default_rng(n_values + n_among)
    values = pa.array([f"P{i}" for i in rng.integers(0, 200, n_values)], type=pa.large_string())
    among = pa.array([f"P{i}" for i in rng.integers(0, 200, n_among)], type=pa.large_string())
    expected = pc.is_in(values, value_set=among).to_numpy(zero_copy_only=False) if n_among else np.zeros(n_values, bool)
    assert within(values, among).tolist() == list(expected)


# ---- the index on a real SQLite file ---------------------------------------------------------
@pytest.fixture
def conn(tmp_path):
    engine = store.open_store(f"sqlite:///{tmp_path / 'cases.db'}")
    with engine.begin() as c:
        yield c
    engine.dispose()


def _write(book: index.ContactIndex, frame: pd.DataFrame, version: str) -> dict:
    night = NightContacts.of(frame, version)
    try:
        policies = frame["policy_no"].drop_duplicates()
        book.tonight = pd.Index(policies.unique())
        return book.write(night, policies, version)
    finally:
        night.close()


def test_unchanged_policies_are_kept_changed_ones_superseded(conn):
    book = index.ContactIndex(conn)
    first = rows({f"P{i}": [(f"1390000{i:04d}", f"c{i}")] for i in range(20)}, "2026-11-20N")
    assert _write(book, first, "2026-11-20N")["rows_written"] == 20
    again = rows({f"P{i}": [(f"1390000{i:04d}" if i % 4 else f"1380000{i:04d}", f"c{i}")] for i in range(20)},
                 "2026-11-23N")
    got = _write(index.ContactIndex(conn), again, "2026-11-23N")
    assert got["policies_unchanged"] == 15 and got["rows_written"] == 5
    sup = index.ContactIndex(conn).superseded()
    assert sorted(sup["policy_no"]) == sorted(f"P{i}" for i in range(0, 20, 4))
    assert set(sup["version"]) == {"2026-11-20N"} and set(sup["by_version"]) == {"2026-11-23N"}
    # a third night looking for the old phone of P4 finds nothing (superseded); P5's is live
    book = index.ContactIndex(conn)
    assert book.by_values([key("P|13900000004")]).empty
    found = book.by_values([key("P|13900000005")])
    assert found["policy_no"].tolist() == ["P5"] and (found["row"] == -1).all()


def test_lookups_leave_out_tonights_policies(conn):
    _write(index.ContactIndex(conn), rows({"P1": [("13900000001", "c1")], "P2": [("13900000001", "c2")]}, "V1"), "V1")
    book = index.ContactIndex(conn)
    book.tonight = pd.Index(["P1"])
    assert book.by_values(pa.array([key("P|13900000001")], type=pa.binary()))["policy_no"].tolist() == ["P2"]
    assert book.by_customers([key("c1")]).empty and book.by_customers([key("c2")])["policy_no"].tolist() == ["P2"]


def test_segments_are_skipped_on_their_digests_and_old_segments_still_answer(conn, monkeypatch):
    for n in range(3):  # three tiers, one customer each
        _write(index.ContactIndex(conn), rows({f"P{n}": [(f"1390000000{n}", f"c{n}")]}, f"V{n}"), f"V{n}")
    decoded = []
    real = segments.Tiers.table
    monkeypatch.setattr(segments.Tiers, "table", lambda self, seg: decoded.append(seg.tier) or real(self, seg))
    book = index.ContactIndex(conn)
    assert book.by_customers([key("c1")])["policy_no"].tolist() == ["P1"]
    assert decoded == ["V1"], "only the segment holding the customer's digest is decoded"
    ids = book.by_customers([key("c2")])["id"].tolist()
    assert ids == [3 * segments.TIER_ID], "a tier row's id: its tier's number times TIER_ID plus its position"
    # a store written before segments had digests: they are computed from the rows when needed
    conn.exec_driver_sql("DELETE FROM contact_segments WHERE kind IN ('value', 'customer')")
    decoded.clear()
    book = index.ContactIndex(conn)
    assert book.by_customers([key("c1")])["policy_no"].tolist() == ["P1"]
    assert sorted(decoded) == ["V0", "V1", "V1", "V2"]


def test_compaction_moves_every_row_and_answers_alike(conn):
    for n in range(3):
        _write(index.ContactIndex(conn), rows({f"P{n}": [("13900000009", f"c{n}")], f"Q{n}": [(f"1370000000{n}", "cq")]},
                                               f"V{n}"), f"V{n}")
    before = index.ContactIndex(conn).by_values([key("P|13900000009")]).drop(columns="id")
    done = index.ContactIndex(conn).compact()
    assert done["rows_moved"] == 6 and done["main_rows"] == 6 and done["night_tiers"] == 0
    assert conn.exec_driver_sql("SELECT count(*) FROM contact_segments WHERE tier <> 'main'").scalar() == 0
    after = index.ContactIndex(conn).by_values([key("P|13900000009")]).drop(columns="id")
    def shown(frame):
        frame = frame.sort_values(["policy_no", "field"]).reset_index(drop=True)
        return frame.astype(object).map(lambda v: v.hex() if isinstance(v, bytes) else str(v))

    assert len(before) == 3
    pd.testing.assert_frame_equal(shown(before), shown(after))
