"""The fixtures the test modules share: the CLI runner and `invoke`, a fixed test hash key,
tracebacks for bugs, the PostgreSQL test databases dropped at the end, two generated nights
(`extracts`). Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from tests.helpers import PG_CREATED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner, tmp_path):
    """Run `custdq ARGS...` in tmp_path with a private SQLite store; returns the click Result."""

    def _invoke(*args: str):
        db = f"sqlite:///{tmp_path / 'cases.db'}"
        full = list(args)
        command = next((a for a in full if not a.startswith("-")), None)  # (after options such as -v)
        if command == "run" and "--db" not in full:
            full += ["--db", db]
        return runner.invoke(cli, full, catch_exceptions=False)

    return _invoke


@pytest.fixture(autouse=True)
def _debug_internal_errors(monkeypatch):
    """Bugs surface as tracebacks in tests; operator-facing errors still exit with one line."""
    monkeypatch.setenv("CUSTDQ_DEBUG", "1")


@pytest.fixture(autouse=True)
def _test_hash_key(monkeypatch):
    """A fixed synthetic hash key, so tests never create key files in the working directory
    (tests of the key file itself remove it)."""
    monkeypatch.setenv("CUSTDQ_HASH_KEY", "custdq-test-key-0123456789abcdef0123456789")


@pytest.fixture(autouse=True, scope="session")
def _drop_test_databases():
    """Drop the session's PostgreSQL test databases at the end (WITH FORCE: pooled connections),
    and their contact indexes (beside the default key file, ~/.custdq/contacts-<store id>.duckdb)."""
    yield
    if not PG_CREATED:
        return
    from pathlib import Path

    import sqlalchemy as sa
    for name in PG_CREATED:
        engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        try:
            with engine.connect() as conn:
                identity = conn.execute(sa.text("select value from custdq_meta where key = 'store_id'")).scalar()
        except sa.exc.DBAPIError:
            identity = None  # no store was made in it
        engine.dispose()
        if identity:
            for p in (Path.home() / ".custdq").glob(f"contacts-{identity}.duckdb*"):
                p.unlink(missing_ok=True)
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in PG_CREATED:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    """Two nights of a generated extract; night 1 has copies of policy numbers far apart (they
    land in different chunks) and a few blank lines."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    folder = tmp_path_factory.mktemp("chunk-extracts")
    runner = CliRunner()
    for seed, name in ((11, "n1.csv"), (12, "n2.csv")):
        result = runner.invoke(cli, ["sample", "--rows", "1500", "--seed", str(seed), "--out", str(folder / name),
                                     "--agents-out", str(folder / f"agents-{name}")])
        assert result.exit_code == 0, result.output
    lines = (folder / "n1.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # rows 2, 3 and 700 again at the end; a blank line in the middle
    lines = lines[:900] + ["\n"] + lines[900:] + [lines[2], lines[3], lines[700]]
    (folder / "n1.csv").write_text("".join(lines), encoding="utf-8")
    # the second night meets some of the first night's policies again (lifecycle across chunks)
    n2 = (folder / "n2.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "n2.csv").write_text("".join(n2 + lines[1:300]), encoding="utf-8")
    return folder
