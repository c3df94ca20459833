"""The web app's users, their roles and API tokens (SPEC 1 `custdq users`, SPEC 8 roles).

Passwords are hashed with Argon2id (argon2-cffi, its RFC 9106 defaults) and never logged;
API tokens are 256 random bits shown once, stored as their SHA-256 (a token is not a password
a person chose: a fast hash of 256 random bits cannot be guessed back), named by a random
public id and ending at their expiry (`TOKEN_DAYS` unless `--days`). Logins are throttled:
`web.login_failures` failures in a row lock the user for `web.lockout_minutes`; the rate
limits and the password checks' own threads are pipeline.web.logins.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass

import argon2
import sqlalchemy as sa

from checks.masking import mask_text, numbers
from pipeline.errors import InputError
from pipeline import clock
from pipeline.store.schema import MAX_TOKEN_DAYS, TOKEN_DAYS, api_tokens, users
from pipeline.web.roles import BY_BRANCH, INVESTIGATORS, ROLES

# SPEC 8's table: what each role may do (a branch user and a reviewer within their own branches
# only). A reviewer (the branch's compliance or customer service, issue 32) approves or returns
# settled items and never disposes: one user holds one role, so nobody settles and reviews for
# the same branch under one name
RIGHTS: dict[str, frozenset[str]] = {
    "branch": frozenset({"items", "dispose", "dashboard"}),
    "lead": frozenset({"items", "dispose", "dashboard", "assign"}),  # a branch's team lead (issue 32)
    "reviewer": frozenset({"items", "review", "dashboard"}),
    "manager": frozenset({"items", "dashboard", "report"}),
    "compliance": frozenset({"items", "dashboard", "report", "access_log"}),
    "admin": frozenset({"users"}),
}
MIN_PASSWORD = 10
MAX_NAME = 64
# Argon2id takes 64 MiB and ~0.2 s of CPU per check (RFC 9106's second choice, argon2-cffi's
# default): the web app runs checks on a few threads of their own (pipeline.web.logins), never
# on the threads that serve pages
_HASHER = argon2.PasswordHasher()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    branches: tuple[str, ...]  # a branch user's or reviewer's branches; empty for the other roles
    sessions: int = 0  # the number of the user's current sessions (users.sessions)

    def may(self, right: str) -> bool:
        return right in RIGHTS[self.role]

    @property
    def every_branch(self) -> bool:
        return self.role not in BY_BRANCH

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


LONGEST_NUMBER = 10  # digits in a row a user name or branch may hold: every personal number has 11 or more
_NUMERALS = "〇一二三四五六七八九零壹贰叁肆伍陆柒捌玖两幺"
# eleven Chinese numerals in a row (separators between them allowed): a number typed in numerals
_NUMERAL_RUN = re.compile(f"[{_NUMERALS}](?:[^{_NUMERALS}\\w]{{0,4}}[{_NUMERALS}]){{10,}}")


def holds_long_number(text: str) -> bool:
    """Holds a number of 11 digits or more (the length of every identity number, mobile and card)
    as people type one: digits (full-width too) with any separators, or Chinese numerals alone.
    A numeral beside digits is read as part of a name (张三 1234567890 is a name and a staff
    number, not 31234567890).

    >>> [holds_long_number(t) for t in ("张三 1234567890", "wang13812345678", "一三八 一二三四 五六七八", "E20260001")]
    [False, True, True, False]
    """
    plain = text.translate({ord(c): "·" for c in _NUMERALS})
    return any(len(d.rstrip("X")) > LONGEST_NUMBER for d in numbers(plain)) or bool(_NUMERAL_RUN.search(text))


def _not_personal(text: str, what: str) -> None:
    """A user name or a branch is shown in pages, logs and the access log as it is: one that holds
    a number of 11 digits or more (a phone typed as a login name, an identity number after a
    name; however its digits are typed) is refused. A staff number of up to 10 digits is not."""
    if holds_long_number(text):
        raise InputError(f"{what} {mask_text(text)} holds a number of more than {LONGEST_NUMBER} digits, the length of "
                         "an identity number, mobile or bank card: user names and branches are shown and logged as "
                         "they are, so they must not hold one")


def seen_branches(conn: sa.Connection) -> set[str]:
    """The branches the store's nights have seen (their figures, their items)."""
    from pipeline.store.schema import items, night_dims

    dims = sa.select(night_dims.c.key).where(night_dims.c.dim == "branch")
    return set(conn.execute(sa.union(dims, sa.select(items.c.branch).distinct())).scalars()) - {None, ""}


def unseen_branches(conn: sa.Connection, branches: list[str]) -> None:
    """Refuse branches no night has seen (a typo gives a user who sees nothing), naming the
    nearest known ones; a store with no night yet cannot tell, and takes any."""
    seen = seen_branches(conn)
    unknown = [b for b in branches if b not in seen]
    if not seen or not unknown:
        return
    hints = []
    for b in unknown:
        near = difflib.get_close_matches(b, sorted(seen), n=3, cutoff=0.4)
        hints.append(f"{b}" + (f" (did you mean {' or '.join(near)}?)" if near else ""))
    raise InputError(f"no night has seen the branch {'; '.join(hints)}: a user of it would see nothing. The store's "
                     f"branches: {', '.join(sorted(seen)[:20])}{' …' if len(seen) > 20 else ''}. Add --new-branch "
                     "if the branch is new and its first night is still to come")


EMAIL = re.compile(r"[^@\s,;<>\"']{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")


def check_email(email: str | None) -> str | None:
    """An address `custdq notify` can send to (one address, no display name), or InputError."""
    if email is None or not email.strip():
        return None
    email = email.strip()
    if not EMAIL.fullmatch(email):
        raise InputError(f"{mask_text(email)[:80]} is not one e-mail address (name@example.com)")
    return email


def set_email(conn: sa.Connection, name: str, email: str | None) -> None:
    email = check_email(email)
    if conn.execute(users.update().where(users.c.name == name).values(email=email)).rowcount != 1:
        raise InputError(f"no user {name}")


def add_user(conn: sa.Connection, name: str, role: str, branches: list[str], password: str, at: str,
             new_branch: bool = False, email: str | None = None) -> User:
    name = check_name(name)
    _not_personal(name, "the user name")
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}")
    branches = sorted({b.strip() for b in branches if b.strip()})
    for branch in branches:
        _not_personal(branch, "the branch")
    if role in BY_BRANCH and not branches:
        raise InputError(f"a {role} user needs at least one --branch")
    if role not in BY_BRANCH and branches:
        raise InputError(f"--branch is for branch users and reviewers only (a {role} user sees every branch or none)")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must be at least {MIN_PASSWORD} characters")
    if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
        raise InputError(f"user {name} already exists")
    if not new_branch:
        unseen_branches(conn, branches)
    conn.execute(users.insert().values(name=name, role=role, branches=json.dumps(branches, ensure_ascii=False),
                                       password_hash=_HASHER.hash(password), disabled=False, created_at=at,
                                       failed_logins=0, locked_until=None, sessions=0, email=check_email(email)))
    return User(name, role, tuple(branches))


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    token_id: str
    expires_at: str


def new_token(conn: sa.Connection, name: str, now: dt.datetime, days: int = TOKEN_DAYS) -> NewToken:
    """A new bearer token for an enabled user, working for `days` days (stored as its SHA-256)."""
    if active(conn, name) is None:
        raise InputError(f"no enabled user {name}")
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InputError(f"--days must be 1-{MAX_TOKEN_DAYS}")
    now = now.astimezone(clock.CHINA)
    made = NewToken(secrets.token_urlsafe(32), secrets.token_hex(6),
                    (now + dt.timedelta(days=days)).isoformat(timespec="seconds"))
    conn.execute(api_tokens.insert().values(token_hash=_token_hash(made.token), user_name=name,
                                            created_at=now.isoformat(timespec="seconds"), token_id=made.token_id,
                                            expires_at=made.expires_at))
    return made


def tokens(conn: sa.Connection, name: str, now: dt.datetime) -> list[dict]:
    """A user's tokens, oldest first: id, created, expires and whether it has (never the token
    or its hash)."""
    if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is None:
        raise InputError(f"no user {name}")
    stamp = _stamp(now)
    q = (sa.select(api_tokens.c.token_id, api_tokens.c.created_at, api_tokens.c.expires_at)
         .where(api_tokens.c.user_name == name).order_by(api_tokens.c.created_at, api_tokens.c.token_id))
    return [{"token_id": r.token_id, "created_at": r.created_at, "expires_at": r.expires_at,
             "expired": r.expires_at <= stamp} for r in conn.execute(q)]


def revoke(conn: sa.Connection, token_id: str) -> str:
    """Revoke one token (it answers 401 from now on); returns its user's name."""
    row = conn.execute(sa.select(api_tokens.c.user_name).where(api_tokens.c.token_id == token_id.strip())).first()
    if row is None:
        raise InputError(f"no API token {token_id.strip()} (custdq users tokens NAME lists a user's tokens)")
    conn.execute(api_tokens.delete().where(api_tokens.c.token_id == token_id.strip()))
    return row.user_name


def _stamp(now: dt.datetime) -> str:
    """`now` as the store's timestamps are written (China time, to the second), so they compare as text."""
    return now.astimezone(clock.CHINA).isoformat(timespec="seconds")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def disable(conn: sa.Connection, name: str) -> None:
    """Disable a user: their sessions (checked on every request) and tokens stop working."""
    done = conn.execute(users.update().where(users.c.name == name).values(disabled=True,
                                                                           sessions=users.c.sessions + 1))
    if not done.rowcount:
        raise InputError(f"no user {name}")
    conn.execute(api_tokens.delete().where(api_tokens.c.user_name == name))


def listing(conn: sa.Connection, now: dt.datetime) -> list[dict]:
    """The users, with how many tokens each has that still work and when the first of them expires."""
    live = sa.and_(api_tokens.c.user_name == users.c.name, api_tokens.c.expires_at > _stamp(now))
    q = sa.select(users.c.name, users.c.role, users.c.branches, users.c.disabled, users.c.created_at,
                  sa.select(sa.func.count()).where(live).scalar_subquery().label("tokens"),
                  sa.select(sa.func.min(api_tokens.c.expires_at)).where(live).scalar_subquery()
                  .label("token_expires")).order_by(users.c.name)
    return [{"name": r.name, "role": r.role, "branches": ", ".join(json.loads(r.branches or "[]")),
             "disabled": bool(r.disabled), "created_at": r.created_at, "tokens": int(r.tokens),
             "token_expires": r.token_expires} for r in conn.execute(q)]


def active(conn: sa.Connection, name: str | None) -> User | None:
    """The enabled user of that name, or None."""
    if not name:
        return None
    row = conn.execute(sa.select(users).where(users.c.name == name, users.c.disabled.is_(False))).first()
    return _user(row) if row is not None else None


def by_token(conn: sa.Connection, token: str, now: dt.datetime) -> User | None:
    """The enabled user of a token that has not expired (nor been revoked: deleted), or None."""
    row = conn.execute(sa.select(users).join(api_tokens, api_tokens.c.user_name == users.c.name)
                       .where(api_tokens.c.token_hash == _token_hash(token), users.c.disabled.is_(False),
                              api_tokens.c.expires_at > _stamp(now))).first()
    return _user(row) if row is not None else None


@dataclass
class Login:
    user: User | None
    locked_until: str | None = None  # set when the user is locked (now or by this failure)


def login_name(raw: object) -> str:
    """The name typed into the login form as the users table holds names (`check_name`'s form)."""
    return unicodedata.normalize("NFC", str(raw or "").strip())[:MAX_NAME]


def authenticate(engine: sa.Engine, name: str, password: str, now: dt.datetime, failures: int,
                 lockout: dt.timedelta, trusted: bool = False) -> Login:
    """Check a password. `failures` wrong passwords in a row lock the user for `lockout`; a locked
    user is refused whatever the password. An unknown or disabled user is refused the same way,
    after the same hashing work (no timing difference tells names apart). `trusted`: a login
    from a browser the user signed in with before (pipeline.web.logins.Devices), which the lockout
    neither stops nor counts (its guesses are bounded by the device's own rate limit), so other
    people's wrong guesses cannot lock the user out of it.

    The attempt is counted in the store before the password is checked, in a transaction of its
    own that ends before the check (no lock on the store is held through Argon2's ~0.1 s):
    attempts made at once each count, and those beyond `failures` are refused unchecked, so a
    burst of guesses at once tries no more passwords than guesses one by one."""
    name = login_name(name)
    attempt, row, locked = 0, None, None
    if name and not any(unicodedata.category(c)[0] == "C" for c in name):  # such a name is never a user's
        with engine.begin() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name, users.c.disabled.is_(False))).first()
            if row is None or trusted:
                pass
            elif row.locked_until and dt.datetime.fromisoformat(row.locked_until) > now:
                locked = row.locked_until
            else:
                conn.execute(users.update().where(users.c.name == row.name)
                             .values(failed_logins=users.c.failed_logins + 1))
                attempt = conn.execute(sa.select(users.c.failed_logins).where(users.c.name == row.name)).scalar_one()
    if row is None or locked or attempt > failures:  # unknown, locked, or a guess beyond the limit made at once
        _verify(_DUMMY, password)  # the same work as a real check
        return Login(None, locked)
    if _verify(row.password_hash, password):
        # a trusted device's success leaves a lockout others caused in place (for the others)
        changes: dict = {} if trusted else {"failed_logins": 0, "locked_until": None}
        if _HASHER.check_needs_rehash(row.password_hash):
            changes["password_hash"] = _HASHER.hash(password)
        if changes:
            with engine.begin() as conn:
                conn.execute(users.update().where(users.c.name == row.name).values(**changes))
        return Login(_user(row))
    if attempt >= failures:
        locked = (now + lockout).isoformat(timespec="seconds")
        with engine.begin() as conn:
            conn.execute(users.update().where(users.c.name == row.name).values(failed_logins=0, locked_until=locked))
        return Login(None, locked)
    return Login(None)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


_DUMMY = _HASHER.hash(secrets.token_hex(16))


def assignable(conn: sa.Connection, lead: User) -> list[str]:
    """The enabled branch users and leads who share a branch with `lead`: whom a lead may assign to."""
    rows = conn.execute(sa.select(users.c.name, users.c.branches).where(
        users.c.role.in_(INVESTIGATORS), users.c.disabled.is_(False)).order_by(users.c.name))
    return [r.name for r in rows if set(json.loads(r.branches or "[]")) & set(lead.branches)]
