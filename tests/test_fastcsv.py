"""The fast CSV path (pyarrow + byte scan) must give exactly what the line-by-line reader
gives, values and source lines alike, or step aside for it."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.ingest import read_extract
from tests.helpers import chinese_headers, row

MAPPING = alias_map(EXTRACT_COLUMNS)


def both(path):
    fast = read_extract([path], MAPPING, fast=True)
    exact = read_extract([path], MAPPING, fast=False)
    return fast, exact


def same(fast, exact):
    pd.testing.assert_frame_equal(fast.frame, exact.frame, check_dtype=False)
    assert fast.inputs[0].blank_rows == exact.inputs[0].blank_rows
    assert fast.inputs[0].rows == exact.inputs[0].rows


def lines_of(rows: list[dict], headers: dict | None = None) -> list[str]:
    names = list(rows[0])
    out = [",".join((headers or {}).get(n, n) for n in names)]
    for r in rows:
        out.append(",".join('"' + str(r[n]).replace('"', '""') + '"' if any(c in str(r[n]) for c in ',"\n')
                            else str(r[n]) for n in names))
    return out


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_messy_but_well_formed(tmp_path, encoding, newline):
    rows = [row(policy_no="A1", applicant_address='多行\n地址, 带"引号"'), row(policy_no="A2"),
            row(policy_no="A3", applicant_name=""), row(policy_no="A4", applicant_address="x\n\ny")]
    body = ["保单清单", ""] + lines_of(rows, chinese_headers())
    body.insert(4, "")                                 # a blank line between records
    body.insert(5, "," * (len(rows[0]) - 1))          # a line of empty fields
    path = tmp_path / "e.csv"
    path.write_bytes(newline.join(body).encode(encoding))  # no newline at the end
    fast, exact = both(path)
    assert fast.inputs[0].reader == "fast" and exact.inputs[0].reader == "exact"
    same(fast, exact)
    assert fast.frame["policy_no"].tolist() == ["A1", "A2", "A3", "A4"]
    assert fast.frame["_line"].tolist() == [4, 8, 9, 10]


@pytest.mark.parametrize("damage", [
    lambda b: b.replace(b"A2,", b"A2,extra,"),           # a line with one field too many
    lambda b: b.replace("张三".encode(), b"\xff\xfe", 1),  # undecodable bytes
    lambda b: b.replace(b"A3,", b'A3",', 1),             # a stray quote
    lambda b: b.replace(b"\n", b"\r"),                   # CR-only line ends
])
def test_damaged_files_fall_back_to_the_exact_reader(tmp_path, damage):
    rows = [row(policy_no=f"A{i}") for i in range(1, 6)]
    path = tmp_path / "e.csv"
    path.write_bytes(damage(("\n".join(lines_of(rows)) + "\n").encode("utf-8")))
    fast, exact = both(path)
    assert fast.inputs[0].reader == "exact"
    same(fast, exact)
    assert fast.quarantine.equals(exact.quarantine)


FIELD = st.text(alphabet=st.sampled_from(list('ab张三,"\n\r ') + ["\u3000"]), max_size=6)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_random_quoted_fields_agree(tmp_path_factory, values, newline):
    rows = [row(policy_no=f"R{i}", applicant_address=a, insured_name=b) for i, (a, b) in enumerate(values)]
    path = tmp_path_factory.mktemp("f") / "e.csv"
    path.write_bytes((newline.join(lines_of(rows)) + newline).encode("utf-8"))
    fast, exact = both(path)
    same(fast, exact)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_the_byte_scan_does_not_depend_on_its_block_size(tmp_path, monkeypatch, newline):
    """The scan reads the file a block at a time: quotes, CRLF pairs and embedded newlines cut
    by a block's edge give the same record ends at any block size, and the same rows."""
    import numpy as np

    from pipeline.ingest import fastcsv

    rows = [row(policy_no=f"B{i}", applicant_address='多行\n地址, 带"引号"' if i % 3 else "x\r\ny")
            for i in range(12)]
    path = tmp_path / "b.csv"
    path.write_bytes((newline.join(["", *lines_of(rows)]) + newline).encode("utf-8"))
    whole = fastcsv.record_ends(path)
    for size in (1, 2, 5, 64):
        monkeypatch.setattr(fastcsv, "BLOCK", size)
        ends, lines = fastcsv.record_ends(path)
        assert np.array_equal(ends, whole[0]) and np.array_equal(lines, whole[1]), size
    fast, exact = both(path)
    assert fast.inputs[0].reader == "fast"
    same(fast, exact)
