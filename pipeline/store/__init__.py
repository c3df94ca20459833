"""The case store (SQLAlchemy): embedded SQLite by default, PostgreSQL by URL: which store a
command works on, creating it only for `run` and `index load`, the hash key's fingerprint,
schema migration, the run records. The tables themselves are pipeline.store.schema."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from pipeline import clock
from pipeline.errors import InputError
from pipeline.settings import Settings
from pipeline.store import files
from pipeline.store.schema import (REPLACED_INDEXES, SCHEMA_VERSION, TOKEN_DAYS, access_log, api_tokens, items, meta,
                                   metadata, night_dims, runs)

DEFAULT_URL = "sqlite:///.custdq/cases.db"

def record_agents(conn: sa.Connection, business_date: str, roster) -> int:
    """The night's roster's agent names, branches, teams and team leaders (masked as any text
    from a file), replacing what an earlier roster said of the same codes; agents the roster
    leaves out keep theirs."""
    from checks.masking import mask_text
    from pipeline.store.schema import agents

    frame = roster.assign(**{c: roster[c] if c in roster else None for c in ("branch", "team", "team_leader")})[
        ["agent_code", "agent_name", "branch", "team", "team_leader"]].drop_duplicates("agent_code", keep="last")

    def text(value):
        return mask_text(str(value)) if isinstance(value, str) else None

    rows = [dict(agent_code=str(r.agent_code), night=business_date, agent_name=text(r.agent_name),
                 branch=text(r.branch), team=text(r.team), team_leader=text(r.team_leader))
            for r in frame.itertuples(index=False)]
    codes = [r["agent_code"] for r in rows]
    for i in range(0, len(codes), 500):
        conn.execute(agents.delete().where(agents.c.agent_code.in_(codes[i:i + 500])))
    if rows:
        conn.execute(agents.insert(), rows)
    return len(rows)


def agent_names(conn: sa.Connection, codes: list[str]) -> dict[str, str]:
    """The roster's names of these agent codes (the latest roster that named each; masked)."""
    from pipeline.store.schema import agents

    out: dict[str, str] = {}
    for i in range(0, len(codes), 500):
        part = codes[i:i + 500]
        rows = conn.execute(sa.select(agents.c.agent_code, agents.c.agent_name).where(agents.c.agent_code.in_(part)))
        out.update({code: name for code, name in rows if name})
    return out


def record_dims(conn: sa.Connection, business_date: str, dims) -> None:
    """Replace the night's per-branch/channel/agent figures (a DataFrame: dim, key, policies,
    flagged, findings)."""
    conn.execute(night_dims.delete().where(night_dims.c.business_date == business_date))
    if len(dims):
        conn.execute(night_dims.insert(), [dict(business_date=business_date, dim=r.dim, key=r.key,
                                               policies=int(r.policies), flagged=int(r.flagged),
                                               findings=int(r.findings)) for r in dims.itertuples()])


ENV = "CUSTDQ_DB"
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


def resolve(db: str | None, cfg: Settings | None = None) -> str:
    """The store's URL: `--db`, else the environment's CUSTDQ_DB, else `store.url` in the config,
    else the default `sqlite:///.custdq/cases.db` (SPEC 1)."""
    url = db or os.environ.get(ENV) or (cfg.store.url if cfg is not None else None) or DEFAULT_URL
    return url.strip()  # a space pasted after a URL is no part of it


def engine_url(url: str | None) -> str:
    """The SQLAlchemy URL of a case-store URL, or one clear line for the mistakes people make."""
    url = (url or DEFAULT_URL).strip()
    if url.startswith("postgres://"):
        raise InputError(f"case store {safe_url(url)}: write postgresql://, not postgres:// "
                         "(postgresql://user@host:5432/dbname)")
    if "://" not in url:
        shown = re.sub(r":[^:@/]*@", ":***@", url[:200])  # a mistyped URL may still hold a password
        raise InputError(f"case store {shown}: not a database URL; for an SQLite file write sqlite:///{shown}")
    dialect = url.split("://", 1)[0].lower()
    if dialect == "sqlite" and not url[len("sqlite://"):].startswith("/"):
        rest = url[len("sqlite://"):]
        raise InputError(f"case store {url[:200]}: an SQLite URL has three slashes before a relative path "
                         f"(sqlite:///{rest}) and four before an absolute one (sqlite:////srv/custdq/cases.db)")
    if dialect not in DIALECTS:
        raise InputError(f"case store {safe_url(url)}: not a database URL custdq can open ('{dialect}'); custdq keeps "
                         "its store in SQLite (sqlite:///path/cases.db) or PostgreSQL (postgresql://user@host:5432/dbname)")
    return DIALECTS[dialect] + url[len(dialect):]


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url[len("sqlite:///"):].split("?", 1)[0])  # less any ?timeout=... options
    return None


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers (cases list, dashboard) never block the night's writer
    "PRAGMA synchronous=NORMAL",  # durable at each commit point in WAL mode
    "PRAGMA cache_size=-1048576",  # up to 1 GiB of pages: the contact index is large
    "PRAGMA temp_store=MEMORY",
    "PRAGMA threads=2",  # helper threads for the sorts that build indexes
    "PRAGMA busy_timeout=600000",  # another night writing: wait up to 10 minutes
)


def _sqlite_setup(dbapi_conn, _record) -> None:
    for pragma in SQLITE_PRAGMAS:
        dbapi_conn.execute(pragma)


def open_store(url: str | None, create: bool = True, notify=None, cfg: Settings | None = None) -> sa.Engine:
    """The case store at `url` (resolved as `resolve` says). Only `create=True` (`custdq run`,
    `custdq index load`) may create one, and says so through `notify`; otherwise a store that does
    not exist is an input error and nothing is created. An SQLite store's files are its owner's
    only (pipeline.store.files)."""

    url = resolve(url, cfg)
    target = engine_url(url)
    path = _sqlite_path(url)
    shown = f"sqlite:///{path.resolve()}" if path is not None else safe_url(url)
    if path is not None and path.is_dir():
        raise InputError(f"case store {shown}: a folder, not a store file (write sqlite:///path/cases.db)")
    absent = f"no case store at {shown}; nothing was created (name the store with --db, CUSTDQ_DB or " \
             "store.url; only `custdq run` and `custdq index load` create one)"
    made = False  # the store file, created here 0600 before SQLite opens it (pipeline.store.files)
    if path is not None and not path.exists():
        if not create:
            raise InputError(absent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"case store {path}: cannot create its folder ({exc.strerror})") from None
        try:
            made = files.create(path)
        except OSError as exc:
            raise InputError(f"case store {path}: cannot create the file ({exc.strerror})") from None
    elif path is not None:
        files.tighten(path)
    try:
        return _open(url, target, path, absent, create, notify)
    except BaseException:
        if made and path is not None:  # nothing of a store that could not be opened stays behind
            for p in files.beside(path):
                p.unlink(missing_ok=True)
        raise


def _open(url: str, target: str, path: Path | None, absent: str, create: bool, notify) -> sa.Engine:
    try:
        # hide_parameters: a statement's values never reach a log line or an exception's text
        # (a filter or a note holds what people typed)
        engine = sa.create_engine(target, hide_parameters=True)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_setup)
        with engine.begin() as conn:
            new = not sa.inspect(conn).has_table(meta.name)
            if new and not create:
                raise InputError(absent if path is None or not path.stat().st_size else
                                 f"{path}: not a custdq case store (no custdq_meta table); nothing was changed")
            metadata.create_all(conn)
            have = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if have is None:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(have) > SCHEMA_VERSION:
                raise InputError(f"case store schema {have} is newer than this custdq ({SCHEMA_VERSION}); upgrade custdq")
            elif int(have) < SCHEMA_VERSION:
                migrate(conn, int(have))
    except (ArgumentError, NoSuchModuleError):
        raise InputError(f"case store {safe_url(url)}: not a database URL custdq can open") from None
    except sa.exc.DBAPIError as exc:
        raise InputError(f"case store {safe_url(url)}: cannot open it ({_reason(exc, url)})") from None
    if new and notify:
        notify(f"created a new case store at {safe_url(url)}")
    return engine


def sibling(engine: sa.Engine, connections: int) -> sa.Engine:
    """Another engine on the same store with a pool of its own, at most `connections` (the web
    app's dispositions: they never wait behind the readers for a connection)."""
    other = sa.create_engine(engine.url, pool_size=connections, max_overflow=0, hide_parameters=True)
    if other.dialect.name == "sqlite":
        sa.event.listen(other, "connect", _sqlite_setup)
    return other


def _reason(exc: sa.exc.DBAPIError, url: str) -> str:
    """The driver's reason on one line, never the password."""
    text = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    try:
        password = sa.engine.make_url(url).password
    except ArgumentError:
        password = None
    return (text.replace(password, "***") if password else text)[:300]


@dataclass
class Created:
    """What opening a store for writing created: said once the command has succeeded, taken
    away again when it failed (a first night on a bad file leaves no store and no key behind)."""

    url: str
    store: bool = False
    folder: Path | None = None
    key: Path | None = None
    index: Path | None = None  # the contact index file, when this command created it

    def notes(self) -> list[str]:
        out = [f"created a new case store at {shown_url(self.url)}: its first night, every finding in it is new"]\
            if self.store else []
        if self.key is not None:
            from pipeline.store.hashkey import KEEP

            out.append(f"created the hash key {self.key.absolute()}: {KEEP}")
        return out

    def remove(self, engine: sa.Engine) -> None:
        engine.dispose()
        if self.key is not None:
            self.key.unlink(missing_ok=True)
        if self.index is not None and self.store:
            for p in (self.index, self.index.with_name(self.index.name + ".wal")):
                p.unlink(missing_ok=True)
        if self.store:
            path = _sqlite_path(self.url)
            if path is None:
                with engine.begin() as conn:
                    metadata.drop_all(conn)
            else:
                for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))):
                    p.unlink(missing_ok=True)
                if self.folder is not None:
                    try:
                        self.folder.rmdir()
                    except OSError:
                        pass  # not empty: somebody else's files


def existing(db: str | None, config_path: str | None) -> tuple[sa.Engine, Settings]:
    """(the case store, the settings) for a command that reads or changes an existing store: a
    store that does not exist is exit 2 and nothing is created (nor is it opened when the settings
    are wrong)."""
    from pipeline import settings

    cfg = settings.load(config_path)
    return open_store(db, create=False, cfg=cfg), cfg


def existing_key(engine: sa.Engine, db: str | None, cfg: Settings) -> bytes:
    """The hash key of an existing store (never created here), checked against its fingerprint."""
    from pipeline.store import hashkey

    key_file = hashkey.key_path(cfg.hash_key_file, resolve(db, cfg))
    key = hashkey.load_key(key_file, may_create=False)
    check_key(engine, hashkey.fingerprint(key), hashkey.source(key_file))
    return key


def open_with_key(db: str | None, cfg: Settings, new_store: bool = False,
                  night: dt.date | None = None) -> tuple[sa.Engine, bytes, Created]:
    """For the commands that write contact hashes (`run`, `index load`): the store (created when
    absent, unless that looks like a second history by mistake for a night of `night` and
    `new_store` is not given: pipeline.store.guard), its hash key (created only for a store that has none yet) and what
    was created."""
    from pipeline.store import guard, hashkey

    url = resolve(db, cfg)
    created = Created(url)
    path = _sqlite_path(url)
    if path is not None and not path.exists() and not new_store and night is not None:
        guard.refuse_second_history(path, url == DEFAULT_URL, night)
    if path is not None and not path.parent.exists():
        created.folder = path.parent
    engine = open_store(url, create=True, notify=lambda _line: setattr(created, "store", True))
    try:
        with engine.connect() as conn:
            known = conn.execute(sa.select(meta.c.value).where(meta.c.key == "hash_key_fingerprint")).scalar()
        key_file = hashkey.key_path(cfg.hash_key_file, url)
        key = hashkey.load_key(key_file, may_create=known is None,
                               notify=lambda _line: setattr(created, "key", Path(key_file)))
        check_key(engine, hashkey.fingerprint(key), hashkey.source(key_file))
    except BaseException:
        created.remove(engine)
        raise
    return engine, key, created


def migrate(conn: sa.Connection, have: int) -> None:
    """Bring an older store up to SCHEMA_VERSION (tables new in a version come from create_all)."""
    if have < 5 and "reopen_reason" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN reopen_reason TEXT")
    # schema 13's items.assignee, before any step below builds the items' indexes (one is on it)
    if have < 13 and "assignee" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN assignee TEXT")
    if have < 6:  # the items' indexes in deadline order (create_all makes new tables' indexes only)
        for name in REPLACED_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    if have < 7:  # schema 6's indexes of the open list, and schema 7's of a branch's counts
        for index in items.indexes:
            index.create(conn, checkfirst=True)
        refresh_statistics(conn)  # a new index without statistics misleads SQLite's planner
    if have < 9:
        _tokens_expire(conn)
    if have < 10:  # the 处理状态 index (the agents table is new: create_all made it)
        for index in items.indexes:
            index.create(conn, checkfirst=True)
        refresh_statistics(conn)
    if have < 11:  # the contact index moves to its own file; empty old tables simply go
        from pipeline.store.schema import contact_segments, contact_superseded, contacts

        names = sa.inspect(conn).get_table_names()
        old = [t for t in (contact_superseded, contact_segments, contacts) if t.name in names]
        if all(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0 for t in old):
            for t in old:
                conn.exec_driver_sql(f"DROP TABLE {t.name}")
        # (a non-empty one is moved by pipeline.book.legacy the first time the index is opened)
    if have < 13 and "email" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}:
        conn.exec_driver_sql("ALTER TABLE users ADD COLUMN email TEXT")
    if have < 13:
        have_agents = {c["name"] for c in sa.inspect(conn).get_columns("agents")}
        for name in ("team", "team_leader"):
            if name not in have_agents:
                conn.exec_driver_sql(f"ALTER TABLE agents ADD COLUMN {name} TEXT")
    if have < 13:  # items.assignee's index (issue 32; the column was added first, above)
        for index in items.indexes:
            index.create(conn, checkfirst=True)
        refresh_statistics(conn)
    conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))


def _tokens_expire(conn: sa.Connection) -> None:
    """Schema 9: every API token gains a random public id and an expiry; a token made before
    expires TOKEN_DAYS (90) days after this migration, as a new one would (it keeps working until
    then, so no other system breaks the morning after an upgrade). The access log gains `target`."""

    def add(table: sa.Table, *names: str) -> None:
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for name in names:
            if name not in have:  # a table create_all has just made has them already
                column = table.c[name]
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} "
                                     f"{column.type.compile(dialect=conn.dialect)}")

    add(api_tokens, "token_id", "expires_at")
    expires = (clock.now() + dt.timedelta(days=TOKEN_DAYS)).isoformat(timespec="seconds")
    for token_hash in conn.execute(sa.select(api_tokens.c.token_hash).where(api_tokens.c.token_id.is_(None))).scalars().all():
        conn.execute(api_tokens.update().where(api_tokens.c.token_hash == token_hash)
                     .values(token_id=secrets.token_hex(6), expires_at=expires))
    add(access_log, "target")
    for index in (*api_tokens.indexes, *access_log.indexes):
        index.create(conn, checkfirst=True)


def refresh_statistics(conn: sa.Connection) -> None:
    """The planner's statistics of `items`, after a night changed it: without them SQLite reads a
    page of the web app's worklist by the state index and sorts a million rows instead of reading
    the index of its order (ANALYZE takes ~0.6 s at a million items; PostgreSQL samples)."""
    conn.exec_driver_sql("ANALYZE items")


def check_key(engine: sa.Engine, fingerprint: str, source: str = "the hash key") -> None:
    """Remember the hash key's fingerprint; refuse a different key (its hashes would match nothing)."""
    with engine.begin() as conn:
        have = conn.execute(sa.select(meta.c.value).where(meta.c.key == "hash_key_fingerprint")).scalar()
        if have is None:
            conn.execute(meta.insert().values(key="hash_key_fingerprint", value=fingerprint))
        elif have != fingerprint:
            raise InputError(f"{source} is not the key this case store was built with: restore the original "
                             "key, or start a new store")


def shown_url(url: str) -> str:
    """The store's URL as people should read it: an SQLite file by its absolute path, a server's
    URL without its password."""
    path = _sqlite_path(url)
    return f"sqlite:///{path.absolute()}" if path is not None else safe_url(url)


def safe_url(url: str | None) -> str:
    try:
        return sa.engine.make_url(url or DEFAULT_URL).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def record_run(conn: sa.Connection, manifest: dict) -> None:
    """Replace the night's run row (a re-run of the same date never duplicates it)."""
    rc = manifest["rows"]
    row = dict(
        business_date=manifest["business_date"], started_at=manifest["started_at"],
        finished_at=manifest["finished_at"], rows_read=rc["rows_read"], rows_in_scope=rc["rows_in_scope"],
        rows_quarantined=rc["rows_quarantined"], items=manifest["items"]["total"],
        list_due=manifest["deadlines"]["list_due"], list_due_met=manifest["deadlines"]["list_due_met"],
        manifest=json.dumps(manifest, ensure_ascii=False, default=str),
    )
    conn.execute(runs.delete().where(runs.c.business_date == row["business_date"]))
    conn.execute(runs.insert().values(**row))


def read_frame(conn: sa.Connection, query) -> pd.DataFrame:
    """A query's rows as a DataFrame with the query's column names (also when it returns none)."""
    result = conn.execute(query)
    return pd.DataFrame([tuple(r) for r in result], columns=list(result.keys()))  # tuples: see cases.night.batches


def run_history(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(runs).order_by(runs.c.business_date))]
