"""The case store's bulk insert builds a table's secondary indexes after a large insert into a
small table (pipeline.store.sql.indexes_built_after), on a real SQLite file and the real
PostgreSQL server: the indexes are there and complete after it, a failure inside rolls the drop
back with the rows, and a small insert or a large table keeps them as they are."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipeline.store import sql
from tests.helpers import postgres_url

meta = sa.MetaData()
things = sa.Table("things", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Text),
                  sa.Column("b", sa.Integer), sa.Index("ix_things_a", "a"), sa.Index("ix_things_ab", "a", "b"))


def _engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    meta.create_all(engine)
    return engine


def _indexes(conn) -> set[str]:
    return {i["name"] for i in sa.inspect(conn).get_indexes("things")}


def _insert(conn, start: int, n: int) -> None:
    conn.execute(things.insert(), [{"id": i, "a": f"v{i % 97}", "b": i} for i in range(start, start + n)])


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setattr(sql, "REBUILD_ROWS", 100)


def test_a_large_insert_into_a_small_table_builds_the_indexes_after(tmp_path):
    engine = _engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as conn:
        _insert(conn, 0, 50)
        with sql.indexes_built_after(conn, things, 1000) as rebuilt:
            assert rebuilt
            assert _indexes(conn) == set()  # dropped while the rows go in
            _insert(conn, 50, 1000)
    with engine.connect() as conn:
        assert _indexes(conn) == {"ix_things_a", "ix_things_ab"}
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN SELECT b FROM things WHERE a = 'v3'"))
        assert "ix_things_a" in plan, plan
        assert conn.execute(sa.select(sa.func.count()).where(things.c.a == "v3")).scalar_one() == \
            sum(1 for i in range(1050) if i % 97 == 3)


def test_a_failure_inside_rolls_the_drop_back(tmp_path):
    engine = _engine(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        with sql.indexes_built_after(conn, things, 1000) as rebuilt:
            assert rebuilt
            _insert(conn, 0, 1000)
            raise RuntimeError("the night failed here")
    with engine.connect() as conn:
        assert _indexes(conn) == {"ix_things_a", "ix_things_ab"}
        assert conn.execute(sa.select(sa.func.count()).select_from(things)).scalar_one() == 0


def test_a_small_insert_or_a_large_table_keeps_the_indexes(tmp_path):
    engine = _engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as conn:
        with sql.indexes_built_after(conn, things, 99) as rebuilt:  # below REBUILD_ROWS
            assert not rebuilt and _indexes(conn) == {"ix_things_a", "ix_things_ab"}
        _insert(conn, 0, 3000)
        with sql.indexes_built_after(conn, things, 1000) as rebuilt:  # the table holds > 2x as many
            assert not rebuilt and _indexes(conn) == {"ix_things_a", "ix_things_ab"}
        with sql.indexes_built_after(conn, things, 1500) as rebuilt:  # exactly 2x: rebuilt
            assert rebuilt


def test_postgresql_keeps_its_indexes():
    engine = _engine(postgres_url())
    try:
        with engine.begin() as conn:
            with sql.indexes_built_after(conn, things, 10_000) as rebuilt:
                assert not rebuilt and _indexes(conn) == {"ix_things_a", "ix_things_ab"}
    finally:
        engine.dispose()
