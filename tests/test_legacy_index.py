"""A store of schema 10, whose contact index lived in the case store (a main tier, a night tier
of compressed segments, supersessions and `seen` notes), moves it into its DuckDB file the first
time a night opens it (pipeline.book.legacy), and that night's items are exactly those of the
same three nights run on a new store (tests/data/legacy_schema10/README.md)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.store.schema import SCHEMA_VERSION

DATA = Path(__file__).parent / "data" / "legacy_schema10"
DATES = ["2026-11-19", "2026-11-20", "2026-11-23"]


def _night(invoke, extract: Path, date: str, db: Path, out: Path) -> pd.DataFrame:
    result = invoke("run", str(extract), "--business-date", date, "--db", f"sqlite:///{db}", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "items.csv", dtype=str).drop(columns=["source_file"]).sort_values("item_id",
                                                                                              ignore_index=True)


def test_a_schema_10_store_moves_its_contact_index_and_runs_on_alike(invoke, tmp_path):
    old = tmp_path / "old" / "cases.db"
    old.parent.mkdir()
    shutil.copy2(DATA / "cases.db", old)
    with sqlite3.connect(old) as conn:
        assert conn.execute("select count(*) from contact_superseded").fetchone() == (47,)
    got = _night(invoke, DATA / "n3.csv", DATES[2], old, tmp_path / "o-old")
    with sqlite3.connect(old) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        version = conn.execute("select value from custdq_meta where key = 'schema_version'").fetchone()[0]
    assert not tables & {"contacts", "contact_segments", "contact_superseded"} and version == str(SCHEMA_VERSION)

    new = tmp_path / "new" / "cases.db"
    for i, date in enumerate(DATES):
        expected = _night(invoke, DATA / f"n{i + 1}.csv", date, new, tmp_path / f"o-new{i}")
    assert len(expected) > 20 and (expected["rule_code"] == "PHONE_SHARED").any()
    pd.testing.assert_frame_equal(got, expected)
    # and what custdq before issue 29 made of the same store and night (its items.csv, kept beside)
    before = pd.read_csv(DATA / "items-n3-before.csv", dtype=str).drop(columns=["source_file"])
    pd.testing.assert_frame_equal(got, before.sort_values("item_id", ignore_index=True))

    def index(db: Path) -> dict:
        con = duckdb.connect(str(db.with_name("cases.contacts.duckdb")), read_only=True)
        try:
            return {t: con.execute(f"select * exclude (id) from {t} order by all").fetchall()  # noqa: S608 - constant names, no values
                    for t in ("contacts", "replaced")} | {"seen": con.execute("select * from seen order by all").fetchall()}
        finally:
            con.close()

    assert index(old) == index(new)
