"""Who is asking, and the headers every answer carries (SPEC 8, issue 18).

- The browser: a session in a signed cookie (Starlette's SessionMiddleware: HttpOnly,
  SameSite=Strict, re-signed on every answer, so it expires after `web.session_idle_minutes`
  without a request), holding the user's name, the number of their sessions and when they
  signed in: it ends `web.session_max_hours` after that whatever the activity. The user is
  looked up on every request, so a disabled user is out at once. Every form carries the
  session's CSRF token.
- Other systems: `Authorization: Bearer TOKEN` (`custdq users token`), on /api/ only, until the
  token expires or is revoked.
- Behind a single-sign-on proxy: with `web.trusted_user_header` set, the proxy's header names
  the user (the proxy must set it on every request and strip it from the client's).
- Every answer: a Content-Security-Policy with no inline script or style (scripts only from the
  app itself: the dashboard's ECharts and its drawing script under /static/), frames refused,
  no MIME sniffing, no referrer, nothing cached (HEADERS, set by pipeline.web.edge, the
  outermost layer, so a 500 carries them too).
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import time
from pathlib import Path

from starlette.requests import Request

from pipeline import clock
from pipeline.errors import ConfigError
from pipeline.store import hashkey
from pipeline.web import users

HEADERS = {
    "content-security-policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def key_path(session_key_file: str | None, url: str) -> Path:
    """Where the session key is: web.session_key_file, or web.key beside the store's hash key."""
    return Path(session_key_file).expanduser() if session_key_file else hashkey.key_path(None, url).with_name("web.key")


MIN_KEY = 32  # characters of a session key (a new one: 43, 256 random bits)


def secret_key(path: Path) -> str:
    """The key that signs session and device cookies: a file of 0600 beside the store's other
    secrets, created with 256 random bits on first use. A key file that others may read, or
    shorter than MIN_KEY characters (an empty file would let anyone sign an admin's session),
    or that cannot be read or created, is a ConfigError (exit 2 before the server starts)."""
    where = f"web.session_key_file ({path})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang the start
    except FileNotFoundError:
        return _new_key(path, where)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the web app's session key ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigError(f"{where}: not a file (a directory, a device or a pipe)")
    with os.fdopen(fd, "rb") as fh:
        try:
            key = fh.read(10_000).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"{where}: not a key file (unreadable text)") from None
    if mode & 0o077:
        raise ConfigError(f"{where}: others may read it (mode {mode & 0o777:o}); chmod 600 it and start again")
    if len(key) < MIN_KEY:
        raise ConfigError(f"{where}: the key is {len(key)} characters, at least {MIN_KEY} are needed "
                          "(delete the file to have a new one made)")
    return key


def _new_key(path: Path, where: str) -> str:
    key = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return secret_key(path)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot create the web app's session key ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, sent: str | None) -> bool:
    token = request.session.get("csrf")
    return bool(token and sent and hmac.compare_digest(str(token), str(sent)))


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def browser_user(conn, request: Request, trusted_header: str | None) -> users.User | None:
    if trusted_header:
        return users.active(conn, request.headers.get(trusted_header))
    since = request.session.get("since")
    if not isinstance(since, int) or time.time() - since > request.app.state.web.session_max_seconds:
        return None  # signed in more than web.session_max_hours ago (or before sessions had an age)
    user = users.active(conn, request.session.get("user"))
    if user is None or request.session.get("sessions") != user.sessions:
        return None  # a session from before the user signed out (a copy of its cookie)
    return user


def api_user(conn, request: Request) -> users.User | None:
    token = bearer(request)
    return users.by_token(conn, token, clock.now()) if token else None
