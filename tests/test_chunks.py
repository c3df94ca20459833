"""A night is read and checked chunk by chunk (config `chunk_rows`, pipeline.rows.chunks); its
outputs must not depend on the chunk size: the same items, quarantine, manifest figures,
worklists and case store, night after night, whatever the size and wherever a policy number's
copies fall."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import VOLATILE, read_outputs, stable, store_items, worklist_cells


def _night(invoke, tmp_path: Path, name: str, extracts: list[Path], date: str, chunk_rows: int | None,
           agents: Path | None = None):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"chunk_rows: {chunk_rows}\n" if chunk_rows else "{}\n", encoding="utf-8")
    out = tmp_path / name / date
    db = f"sqlite:///{tmp_path / name / 'cases.db'}"
    args = ["run", *map(str, extracts), "--business-date", date, "--out", str(out), "--db", db, "--config", str(cfg)]
    if agents:
        args += ["--agents", str(agents)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return out, db, result.output


def _same_night(a: Path, b: Path) -> None:
    items_a, quarantine_a, manifest_a = read_outputs(a)
    items_b, quarantine_b, manifest_b = read_outputs(b)
    pd.testing.assert_frame_equal(items_a, items_b)
    pd.testing.assert_frame_equal(quarantine_a, quarantine_b)
    for key in manifest_a.keys() - VOLATILE:
        assert stable(manifest_a[key]) == stable(manifest_b[key]), key
    assert stable(manifest_a["expectations"]["results"]) == stable(manifest_b["expectations"]["results"])
    assert worklist_cells(a) == worklist_cells(b)


def test_two_nights_do_not_depend_on_the_chunk_size(invoke, tmp_path, extracts):
    outs = {}
    for size in (None, 211, 1000):
        name = f"size-{size}"
        out1, _, said = _night(invoke, tmp_path, name, [extracts / "n1.csv"], "2026-11-20", size,
                               extracts / "agents-n1.csv")
        out2, db, _ = _night(invoke, tmp_path, name, [extracts / "n2.csv"], "2026-11-23", size,
                             extracts / "agents-n1.csv")
        outs[size] = (out1, out2, db)
        manifest = json.loads((out1 / "manifest.json").read_text(encoding="utf-8"))
        if size == 211:
            assert manifest["chunks"]["chunks"] >= 5, manifest["chunks"]  # really in pieces
            assert "rows read and checked" in said
        else:
            assert manifest["chunks"]["rows_per_chunk"] == (size or 250_000)
    whole = outs[None]
    items, _, manifest = read_outputs(whole[0])
    assert manifest["findings_per_rule"].get("DUPLICATE_POLICY", 0) >= 3  # the copies across chunks were found
    dup = items[items["rule_code"] == "DUPLICATE_POLICY"]
    assert dup["detail"].str.contains("出现2次").sum() >= 3
    for size in (211, 1000):
        _same_night(whole[0], outs[size][0])
        _same_night(whole[1], outs[size][1])
        pd.testing.assert_frame_equal(store_items(whole[2]), store_items(outs[size][2]))


def test_open_items_read_a_slice_at_a_time_give_the_same_nights(invoke, tmp_path, extracts, monkeypatch):
    """The case store's open items are read READ_ROWS at a time (shrunk here to 7): the same
    lists, resolutions and store as when they are read at once."""
    from pipeline.cases import night

    outs = {}
    for rows in (1_000_000, 7):
        monkeypatch.setattr(night, "READ_ROWS", rows)
        name = f"read-{rows}"
        out1, _, _ = _night(invoke, tmp_path, name, [extracts / "n1.csv"], "2026-11-20", None)
        out2, db, _ = _night(invoke, tmp_path, name, [extracts / "n2.csv"], "2026-11-23", None)
        outs[rows] = (out1, out2, db)
    _, _, manifest = read_outputs(outs[7][1])
    assert manifest["items"]["resolved"] > 0 and manifest["items"]["carried"] > 0  # both paths ran
    for i in (0, 1):
        _same_night(outs[1_000_000][i], outs[7][i])
    pd.testing.assert_frame_equal(store_items(outs[1_000_000][2]), store_items(outs[7][2]))


def test_a_file_the_fast_reader_gives_up_on_late_is_read_again(invoke, tmp_path, extracts):
    """A line with too many fields near the end: the fast reader has handed on chunks before it
    meets it, so the night is read again with the exact reader; the outputs are those of a
    night read whole."""
    lines = (extracts / "n2.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(len(lines) - 5, lines[-5].rstrip("\n") + ",extra,fields\n")
    bad = tmp_path / "late-problem.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    whole, _, _ = _night(invoke, tmp_path, "whole", [bad], "2026-11-20", None)
    pieces, _, said = _night(invoke, tmp_path, "pieces", [bad], "2026-11-20", 150)
    assert "reading the night again" in said
    _, quarantine, manifest = read_outputs(pieces)
    assert manifest["inputs"][0]["reader"] == "exact" and manifest["inputs"][0]["malformed_rows"] == 1
    assert len(quarantine) >= 1
    _same_night(whole, pieces)


@pytest.mark.parametrize("value", ["0", "-5", "lots", "2.5", "true"])
def test_chunk_rows_must_be_a_positive_whole_number(invoke, tmp_path, extracts, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"chunk_rows: {value}\n", encoding="utf-8")
    result = invoke("run", str(extracts / "n2.csv"), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                    "--config", str(cfg))
    assert result.exit_code == 2
    assert "chunk_rows" in result.output and "Traceback" not in result.output
