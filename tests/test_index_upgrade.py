"""`custdq index upgrade` on a real index of an earlier layout (format 1, written by custdq at
commit caaaa1e, tests/data/index_format1/README.md): refused until upgraded, with one line;
upgraded into a new file (the old one kept), whose rows are the old ones and whose next night
writes exactly what the same three nights make on a new store."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd

DATA = Path(__file__).parent / "data"
DATES = ["2026-11-19", "2026-11-20", "2026-11-23"]


def _night(invoke, n: int, db: Path, out: Path):
    return invoke("run", str(DATA / "legacy_schema10" / f"n{n}.csv"), "--business-date", DATES[n - 1],
                  "--db", f"sqlite:///{db}", "--out", str(out), "--quiet")


def _items(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "items.csv", dtype=str).drop(columns=["source_file"]).sort_values("item_id",
                                                                                              ignore_index=True)


def _tables(path: Path, exclude: str = "", tables=("contacts", "replaced", "seen", "versions")) -> dict:
    """The index's tables' rows (`exclude`: columns of contacts and replaced left out)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"select * {exclude if t in ('contacts', 'replaced') else ''} from {t} "  # noqa: S608 - constant names, no values
                               "order by all").fetchall() for t in tables}
    finally:
        con.close()


def test_a_format_1_index_is_refused_then_upgraded_and_runs_on_alike(invoke, tmp_path):
    old = tmp_path / "old" / "cases.db"
    old.parent.mkdir()
    for name in ("cases.db", "cases.contacts.duckdb"):
        shutil.copy2(DATA / "index_format1" / name, old.parent / name)
    index = old.with_name("cases.contacts.duckdb")
    rows_before = _tables(index)

    refused = _night(invoke, 3, old, tmp_path / "refused")
    assert refused.exit_code == 2, refused.output
    assert "format 1" in refused.output and "custdq index upgrade" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "refused" / "items.csv").exists()

    done = invoke("index", "upgrade", "--db", f"sqlite:///{old}")
    assert done.exit_code == 0, done.output
    kept = index.with_name(index.name + ".f1")
    assert kept.exists() and (kept.stat().st_mode & 0o077) == 0 and (index.stat().st_mode & 0o077) == 0
    # the same rows, now with their search keys; the kept file is the old one, untouched
    assert _tables(index, "exclude (v64, c64, p64)") == rows_before == _tables(kept)
    again = invoke("index", "upgrade", "--db", f"sqlite:///{old}")
    assert again.exit_code == 0 and "already" in again.output, again.output

    got = _night(invoke, 3, old, tmp_path / "o-old")
    assert got.exit_code == 0, got.output
    new = tmp_path / "new" / "cases.db"
    for n in (1, 2, 3):
        made = _night(invoke, n, new, tmp_path / f"o-new{n}")
        assert made.exit_code == 0, made.output
    expected = _items(tmp_path / "o-new3")
    assert len(expected) > 20 and (expected["rule_code"] == "PHONE_SHARED").any()
    pd.testing.assert_frame_equal(_items(tmp_path / "o-old"), expected)
    both = dict(exclude="exclude (id)", tables=("contacts", "replaced", "seen"))
    assert _tables(index, **both) == _tables(new.with_name("cases.contacts.duckdb"), **both)
