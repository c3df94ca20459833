"""The case store (SQLAlchemy): embedded SQLite by default, PostgreSQL by URL.

This release keeps the run history: one row per business date, replaced when the night is
re-run, written in one transaction. Items, events and suppressions join it with the case
lifecycle. No personal data is stored here.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from pipeline.errors import InputError

SCHEMA_VERSION = 1
DEFAULT_URL = "sqlite:///.custdq/cases.db"

metadata = sa.MetaData()
meta = sa.Table("custdq_meta", metadata,
                sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("value", sa.String(256), nullable=False))
runs = sa.Table(
    "runs", metadata,
    sa.Column("business_date", sa.String(10), primary_key=True),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32), nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_in_scope", sa.Integer, nullable=False),
    sa.Column("rows_quarantined", sa.Integer, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("list_due", sa.String(10), nullable=False),
    sa.Column("list_due_met", sa.Boolean, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
)


def engine_url(url: str | None) -> str:
    url = url or DEFAULT_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return url


def open_store(url: str | None) -> sa.Engine:
    try:
        engine = sa.create_engine(engine_url(url))
        with engine.begin() as conn:
            metadata.create_all(conn)
            have = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if have is None:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(have) > SCHEMA_VERSION:
                raise InputError(f"case store schema {have} is newer than this custdq ({SCHEMA_VERSION}); upgrade custdq")
    except (ArgumentError, NoSuchModuleError):
        raise InputError(f"--db: not a database URL custdq can open: {safe_url(url)}") from None
    except OperationalError as exc:
        raise InputError(f"--db: cannot open the case store {safe_url(url)} ({type(exc.orig).__name__})") from None
    return engine


def safe_url(url: str | None) -> str:
    try:
        return sa.engine.make_url(url or DEFAULT_URL).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def record_run(engine: sa.Engine, manifest: dict) -> None:
    """Replace the night's run row (a re-run of the same date never duplicates it)."""
    rc = manifest["rows"]
    row = dict(
        business_date=manifest["business_date"], started_at=manifest["started_at"],
        finished_at=manifest["finished_at"], rows_read=rc["rows_read"], rows_in_scope=rc["rows_in_scope"],
        rows_quarantined=rc["rows_quarantined"], items=manifest["items"]["total"],
        list_due=manifest["deadlines"]["list_due"], list_due_met=manifest["deadlines"]["list_due_met"],
        manifest=json.dumps(manifest, ensure_ascii=False, default=str),
    )
    with engine.begin() as conn:
        conn.execute(runs.delete().where(runs.c.business_date == row["business_date"]))
        conn.execute(runs.insert().values(**row))


def run_history(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(runs).order_by(runs.c.business_date))]
