"""Automatic compaction of the contact index (issue 16): a night whose tiers pass
`contact_index.recent_rows_warning` folds them into the main tier itself, and that changes no
answer: a sequence of generated nights (recurring customers, re-sent and corrected policies, a
re-run taken back after a compaction) gives the same items, files and case store, contact
index aside, with compaction after every night as with none."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline import store
from pipeline.book import index
from pipeline.cli import cli
from tests.storedump import dump

DATES = ["2026-11-20", "2026-11-23", "2026-11-24"]
CONTACT_TABLES = {"contacts", "contact_segments", "contact_superseded"}


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nights")
    runner = CliRunner()
    paths = []
    for n, date in enumerate(DATES):
        path = folder / f"n{n}.csv"
        args = ["sample", "--rows", "1500", "--seed", str(40 + n), "--out", str(path), "--business-date", date]
        for earlier in paths:
            args += ["--after", str(earlier)]
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        paths.append(path)
    return paths


def _sequence(folder, extracts, auto: bool):
    cfg = folder / "cfg.yaml"
    # every night's tier passes the threshold: one store compacts each night, the other only warns
    cfg.write_text(f"contact_index:\n  recent_rows_warning: 0\n  auto_compact: {str(auto).lower()}\n",
                   encoding="utf-8")
    db = f"sqlite:///{folder / 'cases.db'}"
    runner = CliRunner()
    manifests = []
    for path, date, out in [*zip(extracts, DATES, ["o0", "o1", "o2"]), (extracts[2], DATES[2], "o2b")]:
        result = runner.invoke(cli, ["run", str(path), "--business-date", date, "--db", db, "--out",
                                     str(folder / out), "--config", str(cfg), "--quiet"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        manifests.append(json.loads((folder / out / "manifest.json").read_text(encoding="utf-8")))
    return db, manifests


def test_automatic_compaction_changes_no_answer(tmp_path, extracts):
    (tmp_path / "auto").mkdir()
    (tmp_path / "none").mkdir()
    auto_db, auto = _sequence(tmp_path / "auto", extracts, auto=True)
    none_db, none = _sequence(tmp_path / "none", extracts, auto=False)

    # it did compact: every night folded its tier; the other store kept all its night tiers
    assert all(m["contact_index"]["rows_compacted"] > 0 for m in auto)
    assert all(m["contact_index"]["recent_rows"] == 0 and not m["contact_index"]["compact_due"] for m in auto)
    assert none[-1]["contact_index"]["night_tiers"] == 3 and none[-1]["contact_index"]["rows_compacted"] == 0
    assert none[-1]["contact_index"]["compact_due"] and any("index compact" in w for w in none[-1]["warnings"])
    with store.open_store(auto_db).connect() as conn:
        assert index.ContactIndex(conn).size()["night_tiers"] == 0

    for out in ["o0", "o1", "o2", "o2b"]:
        for name in ["items.csv", "quarantine.csv"]:
            assert (tmp_path / "auto" / out / name).read_bytes() == (tmp_path / "none" / out / name).read_bytes(), \
                (out, name)
    def answer(m):  # what the night found (less timings)
        return m["items"], m["findings_per_rule"], {c: {k: v for k, v in r.items() if k != "seconds"}
                                                    for c, r in m["rules"].items()}

    for a, b in zip(auto, none):
        assert answer(a) == answer(b)

    ours, theirs = dump(auto_db), dump(none_db)
    assert set(ours) == set(theirs)
    for table in sorted(set(ours) - CONTACT_TABLES - {"runs"}):
        left, right = ours[table], theirs[table]
        assert left.equals(right), table
    # the live contact rows are the same rows, whichever tier holds them
    with store.open_store(auto_db).connect() as c1, store.open_store(none_db).connect() as c2:
        live = [index.ContactIndex(c).size()["rows"] for c in (c1, c2)]
    assert live[0] == live[1]
