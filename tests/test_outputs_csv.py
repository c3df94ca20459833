"""items.csv and quarantine.csv are the bytes pandas' `to_csv(index=False, encoding="utf-8-sig")`
wrote before the Arrow writer (commit b023edb), for hostile values: commas, quotes, line breaks,
a lone '\\r', a leading '=', empty against missing, Int64's NA, CJK and emoji, object columns of
integers; frames the Arrow writer leaves to pandas too. items.parquet holds the same table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import outputs
from pipeline.cases.items import DATE_FIELDS, ITEM_COLUMNS

HOSTILE = ["plain", "a,b", 'say "hi"', '"', '""', "line\nbreak", "cr\ronly", "crlf\r\n", "\n", ",", "=1+1", "+86",
           "-1", "@SUM(1)", "\tlead", "\rlead", "'quoted", "", " ", "张三，李四", "emoji 😀", "\x00nul", "\x7f",
           "\u2028", "\x85", "é", "a" * 5000 + ",", "trailing,", None]


def reference_items_csv(items: pd.DataFrame) -> pd.DataFrame:
    """b023edb's items_for_csv."""
    def defuse(series):
        s = series.astype("str")
        return s.where(~s.str.startswith(outputs.FORMULA_START).fillna(False), "'" + s)

    out = items[ITEM_COLUMNS].copy()
    for col in DATE_FIELDS:
        out[col] = out[col].dt.strftime("%Y-%m-%d")
    for col in outputs.TEXT_FIELDS:
        out[col] = defuse(out[col])
    out["provisional"] = out["provisional"].map({True: "true", False: "false"})
    return out


def hostile_items(n: int = 300, dtype="str") -> pd.DataFrame:
    rng = np.random.default_rng(11)

    def pick(values=HOSTILE):
        return pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype=dtype)

    frame = {c: pick() for c in ITEM_COLUMNS}
    for c in DATE_FIELDS:
        days = pd.Series(pd.to_datetime("2026-11-20") + pd.to_timedelta(rng.integers(-800, 800, n), unit="D"))
        frame[c] = days.where(rng.random(n) > 0.3)
    frame["business_date"] = pd.Series(pd.to_datetime(["0999-01-02", "2026-11-20", "9999-12-31"] * (n // 3), format="%Y-%m-%d"))
    frame["provisional"] = pd.Series(rng.random(n) > 0.5)
    frame["source_line"] = pd.array([None if i % 4 == 0 else i * 7919 - 10**12 for i in range(n)], dtype="Int64")
    frame["cluster_size"] = pd.array([None if i % 3 else i for i in range(n)], dtype="Int64")
    return pd.DataFrame(frame).set_axis(range(500, 500 + n))  # labels that are not positions


@pytest.mark.parametrize("dtype", ["str", object])
@pytest.mark.parametrize("rows_a_slice", [100_000, 7])
def test_items_csv_is_the_bytes_pandas_wrote(tmp_path, monkeypatch, dtype, rows_a_slice):
    monkeypatch.setattr(outputs, "CSV_SLICE", rows_a_slice)
    items = hostile_items(dtype=dtype)
    outputs.write_items(items, tmp_path)
    reference_items_csv(items).to_csv(tmp_path / "reference.csv", index=False, encoding="utf-8-sig")
    got, want = (tmp_path / "items.csv").read_bytes(), (tmp_path / "reference.csv").read_bytes()
    assert got == want, next(i for i in range(len(got)) if got[i: i + 1] != want[i: i + 1])
    assert got.startswith(b"\xef\xbb\xbfitem_id,") and b'"a,b"' in got and b"cr\ronly" in got
    items[ITEM_COLUMNS].to_parquet(tmp_path / "reference.parquet", index=False)
    table, reference = pq.read_table(tmp_path / "items.parquet"), pq.read_table(tmp_path / "reference.parquet")
    assert table.equals(reference) and table.schema.metadata == reference.schema.metadata
    if dtype == "str":  # object text reads back as str, None as NaN
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "items.parquet"), items[ITEM_COLUMNS].reset_index(drop=True))


def test_defuse_is_what_it_was():
    values = pd.Series(HOSTILE * 3, dtype="str", name="policy_no")
    old = values.where(~values.str.startswith(outputs.FORMULA_START).fillna(False), "'" + values)
    pd.testing.assert_series_equal(outputs.defuse(values), old)
    pd.testing.assert_series_equal(outputs.defuse(pd.Series(["", None, "x"], dtype="str")),
                                   pd.Series(["", None, "x"], dtype="str"))


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"line": pd.Series([1, 2, None, 10**15], dtype=object), "text": pd.Series(HOSTILE[:4], dtype=object)}),
    pd.DataFrame({"mixed": pd.Series([1, "a", None, 2.5], dtype=object), "t": ["x", "y", "z", ","]}),  # pandas writes it
    pd.DataFrame({"big": pd.Series([2**70, 1, 2, 3], dtype=object), "t": ["x", "", None, '"']}),  # past 64 bits
    pd.DataFrame({"f": [1.5, np.nan, 1e20, -0.0], "b": [True, False, True, False]}),
    pd.DataFrame({"only": pd.Series(["", None, "a", ","], dtype="str")}),  # one column: "" alone on a line
    pd.DataFrame({"a,b": pd.Series(["1"], dtype="str"), 'q"': pd.Series([None], dtype="str")}),  # the header quoted
    pd.DataFrame({"a": pd.Series([], dtype="str"), "b": pd.Series([], dtype="Int64")}),
    pd.DataFrame({"all_missing": pd.Series([None, None], dtype=object), "n": pd.array([None, 3], dtype="Int64")}),
])
def test_any_frame_is_written_as_pandas_writes_it(tmp_path, frame):
    outputs.write_csv(frame, tmp_path / "got.csv")
    frame.to_csv(tmp_path / "want.csv", index=False, encoding="utf-8-sig")
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "want.csv").read_bytes()


def test_quarantine_csv_is_the_bytes_pandas_wrote(tmp_path):
    q = pd.DataFrame({"source_file": ["e.csv"] * 6, "line": pd.Series([2, 3, 4, 5, 6, 7], dtype=object),
                      "policy_no": pd.Series([None, "=1", "a,b", "", "P\n1", "P1"], dtype=object),
                      "reason": ["no policy number", 'bad "x"', "", "a", "b", "张"]})
    outputs.write_quarantine(q, tmp_path)
    reference = q.copy()
    s = reference["policy_no"].astype("str")
    reference["policy_no"] = s.where(~s.str.startswith(outputs.FORMULA_START).fillna(False), "'" + s)
    reference.to_csv(tmp_path / "want.csv", index=False, encoding="utf-8-sig")
    assert (tmp_path / "quarantine.csv").read_bytes() == (tmp_path / "want.csv").read_bytes()
