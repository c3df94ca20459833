"""The contact index's parts on their own (issue 29): ContactIndex's writes, lookups and
take-backs on a real DuckDB file beside a real SQLite case store; the agreement of the two
stores' commits; the refusals of a missing, foreign or stale index; set membership hashed on the
smaller side."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipeline import settings, store
from pipeline.book import database, index
from pipeline.book.digests import within
from pipeline.errors import InputError
from pipeline.book.rows import CONTACT_COLUMNS
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


# ---- the index on a real DuckDB file --------------------------------------------------------
FINGERPRINT = "f" * 16


@pytest.fixture
def engine(tmp_path):
    engine = store.open_store(f"sqlite:///{tmp_path / 'cases.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine, tmp_path):
    """The store's contact index, open; each test's writes commit as a command's do."""
    with engine.begin() as conn:
        opened = database.open_index(tmp_path / "cases.contacts.duckdb", settings.load(), conn, FINGERPRINT, create=True)
    yield opened
    opened.close()


def _write(db: database.IndexFile, engine, frame: pd.DataFrame, version: str) -> dict:
    night = NightContacts.of(frame, version)
    try:
        with engine.begin() as conn:
            db.begin()
            book = index.ContactIndex(db)
            policies = frame["policy_no"].drop_duplicates()
            book.set_tonight(policies)
            got = book.write(night, policies, version)
            db.commit(conn)
        return got
    finally:
        night.close()


def _undo(db: database.IndexFile, engine, version: str) -> int:
    with engine.begin() as conn:
        db.begin()
        gone = index.ContactIndex(db).undo(version)
        db.commit(conn)
    return gone


def _live(db: database.IndexFile) -> list[tuple]:
    return db.run("SELECT policy_no, version, masked_value FROM contacts ORDER BY policy_no, field")


def test_unchanged_policies_are_kept_changed_ones_replaced(db, engine):
    first = rows({f"P{i}": [(f"1390000{i:04d}", f"c{i}")] for i in range(20)}, "2026-11-20N")
    assert _write(db, engine, first, "2026-11-20N")["rows_written"] == 20
    again = rows({f"P{i}": [(f"1390000{i:04d}" if i % 4 else f"1380000{i:04d}", f"c{i}")] for i in range(20)},
                 "2026-11-23N")
    got = _write(db, engine, again, "2026-11-23N")
    assert got["policies_unchanged"] == 15 and got["rows_written"] == 5
    replaced = db.run("SELECT policy_no, version, by_version FROM replaced ORDER BY policy_no")
    assert sorted(p for p, _, _ in replaced) == sorted(f"P{i}" for i in range(0, 20, 4))
    assert {(v, b) for _, v, b in replaced} == {("2026-11-20N", "2026-11-23N")}
    assert db.one("SELECT count(*) FROM seen WHERE version = '2026-11-23N'") == 15
    # a third night looking for the old phone of P4 finds nothing (replaced); P5's is live
    book = index.ContactIndex(db)
    assert book.by_values([key("P|13900000004")]).empty
    found = book.by_values([key("P|13900000005")])
    assert found["policy_no"].tolist() == ["P5"] and (found["row"] == -1).all() and (found["id"] > 0).all()


def test_taking_a_night_back_restores_exactly_what_it_replaced(db, engine):
    _write(db, engine, rows({"P1": [("13900000001", "c1")], "P2": [("13900000002", "c2")]}, "2026-11-20N"), "2026-11-20N")
    before = _live(db)
    ids = db.run("SELECT id FROM contacts ORDER BY id")
    _write(db, engine, rows({"P1": [("13800000001", "c1")], "P3": [("13900000003", "c3")]}, "2026-11-23N"), "2026-11-23N")
    assert [v for _, v, _ in _live(db)] == ["2026-11-23N", "2026-11-20N", "2026-11-23N"]
    assert _undo(db, engine, "2026-11-23N") == 2
    assert _live(db) == before and db.run("SELECT id FROM contacts ORDER BY id") == ids
    assert db.one("SELECT count(*) FROM replaced") == 0 and db.one("SELECT count(*) FROM seen") == 0
    assert "2026-11-23N" not in db.versions()


def test_an_older_version_never_hides_a_newer_one(db, engine):
    """A book load dated after a night, then the night's re-run: the load's rows stay live, the
    night's wait under the load's version, and come back when the load is taken back."""
    _write(db, engine, rows({"P1": [("13900000001", "c1")]}, "2026-11-25B"), "2026-11-25B")
    got = _write(db, engine, rows({"P1": [("13700000001", "c1")]}, "2026-11-20N"), "2026-11-20N")
    assert got["policies_newer_kept"] == 1 and got["rows_written"] == 0
    assert _live(db) == [("P1", "2026-11-25B", "139****0001")]
    _undo(db, engine, "2026-11-25B")
    assert _live(db) == [("P1", "2026-11-20N", "137****0001")]


def test_lookups_leave_out_tonights_policies(db, engine):
    _write(db, engine, rows({"P1": [("13900000001", "c1")], "P2": [("13900000001", "c2")]}, "V1"), "V1")
    book = index.ContactIndex(db)
    book.set_tonight(pd.Series(["P1"]))
    assert book.by_values(pa.array([key("P|13900000001")], type=pa.binary()))["policy_no"].tolist() == ["P2"]
    assert book.by_customers([key("c1")]).empty and book.by_customers([key("c2")])["policy_no"].tolist() == ["P2"]


def test_pruned_journals_forget_what_old_nights_replaced(db, engine):
    _write(db, engine, rows({"P1": [("13900000001", "c1")]}, "2026-11-20N"), "2026-11-20N")
    _write(db, engine, rows({"P1": [("13800000001", "c1")]}, "2026-11-23N"), "2026-11-23N")
    assert index.ContactIndex(db).prune("2026-11-23") == 0  # 11-23's journal is kept: what it replaced stays
    assert index.ContactIndex(db).prune("2026-11-24") == 1


# ---- two stores, one truth -------------------------------------------------------------------
def test_an_index_committed_without_its_store_is_taken_back(db, engine):
    """A command killed between the two commits: the index is one write ahead; the version it
    holds that the store does not know is taken back, by the re-run's own code."""
    from pipeline.cases.nights import recover

    _write(db, engine, rows({"P1": [("13900000001", "c1")]}, "2026-11-20N"), "2026-11-20N")
    before = _live(db)
    night = NightContacts.of(rows({"P1": [("13800000001", "c1")]}, "2026-11-23N"), "2026-11-23N")
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            db.begin()
            index.ContactIndex(db).write(night, pd.Series(["P1"]), "2026-11-23N")
            db.commit(conn)
            raise RuntimeError("killed between the commits")  # the store's transaction rolls back
    night.close()
    with engine.begin() as conn:
        assert db.mismatch(conn).index_only == ["2026-11-23N"]
        assert recover(conn, db) == ["2026-11-23"]
    with engine.begin() as conn:
        assert db.mismatch(conn) is None
    assert _live(db) == before


def test_a_missing_foreign_or_stale_index_is_refused(db, engine, tmp_path):
    _write(db, engine, rows({"P1": [("13900000001", "c1")]}, "2026-11-20N"), "2026-11-20N")
    saved = tmp_path / "saved.duckdb"
    database.copy_file(db, saved)
    _write(db, engine, rows({"P2": [("13900000002", "c2")]}, "2026-11-23N"), "2026-11-23N")
    db.close()
    cfg = settings.load()
    with engine.begin() as conn:
        with pytest.raises(InputError, match="older than its case store"):
            database.open_index(saved, cfg, conn, FINGERPRINT, create=True)
        with pytest.raises(InputError, match="missing"):
            database.open_index(tmp_path / "nowhere.duckdb", cfg, conn, FINGERPRINT, create=True)
        with pytest.raises(InputError, match="another hash key"):
            database.open_index(tmp_path / "cases.contacts.duckdb", cfg, conn, "0" * 16, create=False)
    other = store.open_store(f"sqlite:///{tmp_path / 'other.db'}")
    with other.begin() as conn:
        with pytest.raises(InputError, match="another case store"):
            database.open_index(tmp_path / "cases.contacts.duckdb", cfg, conn, FINGERPRINT, create=False)
    other.dispose()
    assert not (tmp_path / "nowhere.duckdb").exists()


def test_a_failure_with_arrow_rows_registered_is_the_one_raised(db):
    """A statement that fails inside the index's transaction aborts it, and unregistering the
    Arrow rows then fails too: the first failure is the one the command reports."""
    import duckdb

    db.begin()
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        with db.registered("rows_here", pa.table({"k": [1, 2]})):
            db.run("INSERT INTO no_such_table SELECT k FROM rows_here")
    db.rollback()
    with db.registered("rows_here", pa.table({"k": [1, 2]})):
        assert db.one("SELECT sum(k) FROM rows_here") == 3


class _Died(BaseException):
    """The process's death at that moment (nothing after it runs; the store rolls back)."""


def test_a_command_killed_while_it_makes_the_index_leaves_none_and_the_next_one_makes_it(tmp_path, monkeypatch):
    """A first night killed while it made its store's index: after the index's file was begun but
    before its tables were whole, and after the index was made but before the store committed.
    The next command makes or opens the index as if nothing had happened (it once refused it as
    "not a custdq contact index" or as "another case store's")."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    engine = store.open_store(url)
    cfg = settings.load()
    path = tmp_path / "cases.contacts.duckdb"
    real_connect, real_open = database._connect, database.open_index

    class HalfMade:  # a connection that dies before the index's meta rows are written
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO index_meta"):
                self.con.close()
                raise _Died
            return self.con.execute(sql, *args)

        def close(self):
            self.con.close()

    monkeypatch.setattr(database, "_connect", lambda *a, **k: HalfMade(real_connect(*a, **k)))
    with pytest.raises(_Died):
        database.open_for(engine, url, cfg, b"k" * 32, create=True)
    assert not path.exists()
    monkeypatch.setattr(database, "_connect", real_connect)

    def made_then_died(*args, **kwargs):
        real_open(*args, **kwargs).close()
        raise _Died

    monkeypatch.setattr(database, "open_index", made_then_died)
    with pytest.raises(_Died):
        database.open_for(engine, url, cfg, b"k" * 32, create=True)
    assert path.exists()
    monkeypatch.setattr(database, "open_index", real_open)
    opened = database.open_for(engine, url, cfg, b"k" * 32, create=True)
    with engine.connect() as conn:
        assert opened.meta("store_id") == database.store_id(conn)
    opened.close()
    engine.dispose()


# ---- membership ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_values,n_among", [(10, 1000), (1000, 10), (50, 50), (0, 5), (5, 0)])
def test_within_equals_is_in_whichever_side_is_hashed(n_values, n_among):
    rng = np.random.default_rng(n_values + n_among)
    values = pa.array([f"P{i}" for i in rng.integers(0, 200, n_values)], type=pa.large_string())
    among = pa.array([f"P{i}" for i in rng.integers(0, 200, n_among)], type=pa.large_string())
    expected = pc.is_in(values, value_set=among).to_numpy(zero_copy_only=False) if n_among else np.zeros(n_values, bool)
    assert within(values, among).tolist() == list(expected)
