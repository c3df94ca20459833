"""The web app's users, their roles and API tokens (SPEC 1 `custdq users`, SPEC 8 roles).

Passwords are hashed with Argon2id (argon2-cffi, its RFC 9106 defaults) and never logged;
API tokens are 256 random bits shown once, stored as their SHA-256 (a token is not a password
a person chose: a fast hash of 256 random bits cannot be guessed back). Logins are throttled:
`web.login_failures` failures in a row lock the user for `web.lockout_minutes`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import unicodedata
from dataclasses import dataclass

import argon2
import sqlalchemy as sa

from pipeline.errors import InputError
from pipeline.store.schema import api_tokens, users

ROLES = ("branch", "manager", "compliance", "admin")
# SPEC 8's table: what each role may do (a branch user within its own branches only)
RIGHTS: dict[str, frozenset[str]] = {
    "branch": frozenset({"items", "dispose", "dashboard"}),
    "manager": frozenset({"items", "dashboard", "report"}),
    "compliance": frozenset({"items", "dashboard", "report", "access_log"}),
    "admin": frozenset({"users"}),
}
MIN_PASSWORD = 10
MAX_NAME = 64
_HASHER = argon2.PasswordHasher()
# Argon2id takes 64 MiB per check (RFC 9106's second choice, argon2-cffi's default): a burst of
# logins on forty request threads would take 2.5 GiB; four at a time, the others wait their turn
_CHECKS = threading.BoundedSemaphore(4)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    branches: tuple[str, ...]  # a branch user's branches; empty for the other roles
    sessions: int = 0  # the number of the user's current sessions (users.sessions)

    def may(self, right: str) -> bool:
        return right in RIGHTS[self.role]

    @property
    def every_branch(self) -> bool:
        return self.role != "branch"

    def sees(self, branch: str | None) -> bool:
        return self.every_branch or branch in self.branches


def _user(row) -> User:
    return User(row.name, row.role, tuple(json.loads(row.branches or "[]")), int(row.sessions or 0))


def end_sessions(conn: sa.Connection, name: str) -> None:
    """End every session of the user (signing out: a copied cookie stops working too)."""
    conn.execute(users.update().where(users.c.name == name).values(sessions=users.c.sessions + 1))


def check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name.strip())
    if not name or len(name) > MAX_NAME or any(unicodedata.category(c)[0] in "CZ" and c != " " for c in name):
        raise InputError(f"user name must be 1-{MAX_NAME} printable characters")
    return name


def add_user(conn: sa.Connection, name: str, role: str, branches: list[str], password: str, at: str) -> User:
    name = check_name(name)
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}")
    branches = sorted({b.strip() for b in branches if b.strip()})
    if role == "branch" and not branches:
        raise InputError("a branch user needs at least one --branch")
    if role != "branch" and branches:
        raise InputError(f"--branch is for branch users only (a {role} user sees every branch or none)")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must be at least {MIN_PASSWORD} characters")
    if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
        raise InputError(f"user {name} already exists")
    conn.execute(users.insert().values(name=name, role=role, branches=json.dumps(branches, ensure_ascii=False),
                                       password_hash=_HASHER.hash(password), disabled=False, created_at=at,
                                       failed_logins=0, locked_until=None, sessions=0))
    return User(name, role, tuple(branches))


def new_token(conn: sa.Connection, name: str, at: str) -> str:
    """A new bearer token for an enabled user (returned once; stored as its SHA-256)."""
    if active(conn, name) is None:
        raise InputError(f"no enabled user {name}")
    token = secrets.token_urlsafe(32)
    conn.execute(api_tokens.insert().values(token_hash=_token_hash(token), user_name=name, created_at=at))
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def disable(conn: sa.Connection, name: str) -> None:
    """Disable a user: their sessions (checked on every request) and tokens stop working."""
    done = conn.execute(users.update().where(users.c.name == name).values(disabled=True,
                                                                           sessions=users.c.sessions + 1))
    if not done.rowcount:
        raise InputError(f"no user {name}")
    conn.execute(api_tokens.delete().where(api_tokens.c.user_name == name))


def listing(conn: sa.Connection) -> list[dict]:
    q = sa.select(users.c.name, users.c.role, users.c.branches, users.c.disabled, users.c.created_at,
                  sa.select(sa.func.count()).where(api_tokens.c.user_name == users.c.name).scalar_subquery()
                  .label("tokens")).order_by(users.c.name)
    return [{"name": r.name, "role": r.role, "branches": ", ".join(json.loads(r.branches or "[]")),
             "disabled": bool(r.disabled), "created_at": r.created_at, "tokens": int(r.tokens)}
            for r in conn.execute(q)]


def active(conn: sa.Connection, name: str | None) -> User | None:
    """The enabled user of that name, or None."""
    if not name:
        return None
    row = conn.execute(sa.select(users).where(users.c.name == name, users.c.disabled.is_(False))).first()
    return _user(row) if row is not None else None


def by_token(conn: sa.Connection, token: str) -> User | None:
    row = conn.execute(sa.select(users).join(api_tokens, api_tokens.c.user_name == users.c.name)
                       .where(api_tokens.c.token_hash == _token_hash(token), users.c.disabled.is_(False))).first()
    return _user(row) if row is not None else None


@dataclass
class Login:
    user: User | None
    locked_until: str | None = None  # set when the user is locked (now or by this failure)


def authenticate(conn: sa.Connection, name: str, password: str, now: dt.datetime, failures: int,
                 lockout: dt.timedelta) -> Login:
    """Check a password. `failures` wrong passwords in a row lock the user for `lockout`; a locked
    user is refused whatever the password. An unknown or disabled user is refused the same way,
    after the same hashing work (no timing difference tells names apart)."""
    row = conn.execute(sa.select(users).where(users.c.name == name.strip(), users.c.disabled.is_(False))).first()
    if row is None or (row.locked_until and dt.datetime.fromisoformat(row.locked_until) > now):
        _verify(_DUMMY, password)  # the same work as a real check
        return Login(None, row.locked_until if row is not None else None)
    # the attempt counts before the password is checked, in the database: attempts made at once
    # each count (the row, or SQLite's database, stays locked for writing until this commits)
    conn.execute(users.update().where(users.c.name == row.name).values(failed_logins=users.c.failed_logins + 1))
    if _verify(row.password_hash, password):
        conn.execute(users.update().where(users.c.name == row.name).values(failed_logins=0, locked_until=None))
        if _HASHER.check_needs_rehash(row.password_hash):
            conn.execute(users.update().where(users.c.name == row.name).values(password_hash=_HASHER.hash(password)))
        return Login(_user(row))
    failed = conn.execute(sa.select(users.c.failed_logins).where(users.c.name == row.name)).scalar_one()
    if failed >= failures:
        locked = (now + lockout).isoformat(timespec="seconds")
        conn.execute(users.update().where(users.c.name == row.name).values(failed_logins=0, locked_until=locked))
        return Login(None, locked)
    return Login(None)


def _verify(hashed: str, password: str) -> bool:
    with _CHECKS:
        try:
            return _HASHER.verify(hashed, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False


_DUMMY = _HASHER.hash(secrets.token_hex(16))
