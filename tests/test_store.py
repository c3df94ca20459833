"""The run history in a real SQLite file and on the real PostgreSQL server (127.0.0.1:5432)."""

from __future__ import annotations


import pytest
import sqlalchemy as sa

from pipeline import store
from tests.helpers import postgres_url, row, write_csv


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    return postgres_url()


def test_runs_are_recorded_once_per_night(invoke, tmp_path, db_url):
    path = write_csv(tmp_path / "e.csv", [row(), row(policy_no="P2", applicant_phone="")])
    for date in ("2026-11-20", "2026-11-20", "2026-11-23"):
        result = invoke("run", str(path), "--business-date", date, "--db", db_url, "--out", str(tmp_path / date),
                        "--quiet")
        assert result.exit_code == 0, result.output
    history = store.run_history(store.open_store(db_url))
    assert [h["business_date"] for h in history] == ["2026-11-20", "2026-11-23"]
    assert history[0]["rows_read"] == 2 and history[0]["items"] == 1
    assert "13912345678" not in history[0]["manifest"]


def test_a_newer_store_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = store.open_store(url)
    with engine.begin() as conn:
        conn.execute(store.meta.update().values(value="99"))
    with pytest.raises(store.InputError, match="newer than this custdq"):
        store.open_store(url)


def test_unreachable_postgres_is_a_clear_error(invoke, tmp_path):
    path = write_csv(tmp_path / "e.csv", [row()])
    result = invoke("run", str(path), "--business-date", "2026-11-20", "--db",
                    "postgresql://nobody:secret@127.0.0.1:1/none", "--out", str(tmp_path / "o"), "--quiet")
    assert result.exit_code == 2 and "cannot open it (connection failed" in result.output  # the driver's reason
    assert "Connection refused" in result.output and len(result.output.strip().splitlines()) == 1
    assert "secret" not in result.output


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_refused_lock_leaves_no_descriptor_behind_and_the_holder_noted(kind, tmp_path):
    """A writer refused the store's lock must not leave its descriptor in the set a forked chunk
    worker closes: the number is reused (a worker pool's pipe, in a long-lived process) and a
    later night's workers died on it. The holder's note stays the holder's."""
    from pipeline.store import lock
    from pipeline.errors import InputError

    url = f"sqlite:///{tmp_path / 'cases.db'}" if kind == "sqlite" else postgres_url()
    engine = store.open_store(url)
    try:
        with lock.store_lock(engine, "run", "2026-11-20"):
            held = set(lock._HELD)
            assert held
            with pytest.raises(InputError, match="already being run"):
                with lock.store_lock(engine, "run", "2026-11-20", wait_seconds=0):
                    pass
            assert lock._HELD == held
            if kind == "postgresql":
                with engine.connect() as conn:
                    note = conn.execute(sa.select(store.meta.c.value).where(store.meta.c.key == "writer")).scalar()
                assert note and '"night": "2026-11-20"' in note
        assert lock._HELD == set()
    finally:
        engine.dispose()
