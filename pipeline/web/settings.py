"""The `web:` settings of a config (pipeline/default_config.yaml documents each), read once and
checked all together when `custdq serve` starts: a wrong one is exit 2 with one line naming it,
before any worker process starts, never a 500 on the first request that reads it.

>>> Web.of({"host": "127.0.0.1", "port": 0})
Traceback (most recent call last):
...
pipeline.errors.ConfigError: web.port: must be a whole number 1..65535 (got 0)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from pipeline.config import trusted_proxies  # the one check of that list (loading a config checks it too)
from pipeline.errors import ConfigError

_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")  # an HTTP header's name, as a proxy would set it
_HOST = re.compile(r"[A-Za-z0-9.:\-\[\]]{1,255}")  # a name or an address to listen on


def _whole(web: dict, key: str, low: int, high: int = 10**9) -> int:
    value = web.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"web.{key}: must be a whole number {low}..{high} (got {value!r})")
    return value


def _number(web: dict, key: str, low: float, high: float, above: bool = True) -> float:
    value = web.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            (low < value if above else low <= value) and value <= high):
        raise ConfigError(f"web.{key}: must be a number {'above' if above else 'at least'} {low:g}, "
                          f"at most {high:g} (got {value!r})")
    return float(value)


def _flag(web: dict, key: str) -> bool:
    value = web.get(key)
    if not isinstance(value, bool):
        raise ConfigError(f"web.{key}: must be true or false (got {value!r})")
    return value


def _text(web: dict, key: str, form: re.Pattern | None = None, optional: bool = True) -> str | None:
    value = web.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or (form is not None and not form.fullmatch(value)):
        raise ConfigError(f"web.{key}: must be {'null or ' if optional else ''}"
                          f"{'a header name' if form is _HEADER else 'an address' if form is _HOST else 'a path'}"
                          f" (got {value!r})")
    return value


# headers a client or the HTTP machinery sets: never the name a proxy gives the signed-in user in
_OWN_HEADERS = frozenset({"host", "cookie", "authorization", "content-length", "content-type", "transfer-encoding",
                          "connection", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded",
                          "user-agent", "referer", "origin", "accept", "upgrade", "te", "expect", "x-real-ip",
                          "x-forwarded-port", "x-forwarded-prefix"})


def _host(web: dict) -> str:
    host = str(_text(web, "host", _HOST, optional=False)).strip("[]")  # uvicorn binds ::1, not [::1]
    if re.fullmatch(r"[0-9.]+", host) or ":" in host:  # an address: one uvicorn can bind
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"web.host: {host!r} is not an IP address") from None
    return host


def _user_header(web: dict) -> str | None:
    header = _text(web, "trusted_user_header", _HEADER)
    if header is not None and (header.lower() in _OWN_HEADERS or header.lower().startswith(("proxy-", "sec-"))):
        raise ConfigError(f"web.trusted_user_header: {header} is a header clients and HTTP itself set, "
                          "not one a single-sign-on proxy adds (e.g. X-Remote-User)")
    return header


@dataclass(frozen=True)
class Web:
    host: str
    port: int
    workers: int
    session_idle_seconds: float
    session_max_seconds: float
    login_failures: int
    lockout_minutes: float
    login_checks: int  # password checks at once, per process
    login_queue: int  # logins that may wait for one
    login_per_address: int
    login_per_user: int
    login_window_seconds: float
    session_key_file: str | None
    https_only: bool
    trusted_user_header: str | None
    trusted_proxies: tuple[str, ...]
    lock_wait_seconds: float
    page_size: int
    count_limit: int

    @classmethod
    def of(cls, web: Any) -> Web:
        """Every `web:` setting, checked (a bad one is a ConfigError naming it)."""
        if not isinstance(web, dict):
            raise ConfigError("web: must be a section of settings")
        return cls(
            host=_host(web),
            port=_whole(web, "port", 1, 65535),
            workers=_whole(web, "workers", 1, 64),
            session_idle_seconds=_number(web, "session_idle_minutes", 0, 60 * 24 * 30) * 60,
            session_max_seconds=_number(web, "session_max_hours", 0, 24 * 365) * 3600,
            login_failures=_whole(web, "login_failures", 1, 1000),
            lockout_minutes=_number(web, "lockout_minutes", 0, 60 * 24 * 365, above=False),
            login_checks=_whole(web, "login_checks", 1, 16),  # 64 MiB each
            login_queue=_whole(web, "login_queue", 0, 10_000),
            login_per_address=_whole(web, "login_per_address", 1, 10**6),
            login_per_user=_whole(web, "login_per_user", 1, 10**6),
            login_window_seconds=_number(web, "login_window_seconds", 0, 10**6),
            session_key_file=_text(web, "session_key_file"),
            https_only=_flag(web, "https_only"),
            trusted_user_header=_user_header(web),
            trusted_proxies=tuple(trusted_proxies(web.get("trusted_proxies"))),
            lock_wait_seconds=_number(web, "lock_wait_seconds", 0, 3600, above=False),
            page_size=_whole(web, "page_size", 1, 1000),
            count_limit=_whole(web, "count_limit", 1, 10**9),
        )

