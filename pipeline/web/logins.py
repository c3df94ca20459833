"""Logins under hostile traffic (issue 27): nobody needs an account to send a thousand logins, and
each costs an Argon2id check (64 MiB, ~0.2 s of CPU on two cores). Three things keep a flood of
them from slowing the people already signed in:

- `Checks`: password checks run on a few threads of their own (`web.login_checks` per process),
  awaited from the event loop, never on the threads that serve pages, and so do the logins'
  access-log rows (two threads of their own); the checks' threads run at a lower CPU priority (nice 10 on Linux: Argon2's own lane threads inherit it), so pages get the
  cores first. At most `web.login_queue` logins wait for a thread; one more is answered 503 at
  once with `Retry-After`.
- `Limits`: per client address and per user name typed (known or not, so a refusal tells no
  names apart), at most `web.login_per_address` / `web.login_per_user` logins that failed or are
  under way within `web.login_window_seconds` (a token bucket each: a burst of that many, then
  one per window/limit seconds); one more is answered 429 with `Retry-After`. A login that
  succeeds gives its token back, so a whole office behind one address signing in at nine is
  never refused. A 429 is held for `HOLD` seconds before it is sent (the event loop waits, no
  thread does), so a client that ignores `Retry-After` and asks again at once costs the server
  one answer a second per connection. The counts are in this process's memory: with `web.workers` > 1 each process
  counts on its own (an attacker spread over the processes gets up to `workers` times the limit),
  and so does each server behind a balancer. Kept in the store they would cost a write per
  attempt, which a flood would turn into the store's busiest work; the guesses against a real
  account stay bounded across processes by the lockout, which is in the store.

- `Devices` (OWASP's "device cookies"): a browser that signed in as a user gets a signed cookie
  naming that user. A login that presents one for the name it types is a trusted device's: it
  is counted in the name's trusted-device bucket (`web.login_per_user` per window, shared by
  all the name's device cookies) and not in the address's or the name's own, and the account's
  lockout in the store neither refuses nor counts it: a flood of wrong passwords for one name,
  or from the office's one address, cannot keep that user out of the browser they always use.
  A device cookie is itself locked out after `web.login_failures` wrong passwords in a row, for
  `web.lockout_minutes` (its logins are then an untrusted client's): a stolen cookie gives no
  more guesses than the lockout does (per process: memory).
- At most `AT_ONCE` logins per name are checked at once, trusted or not, whatever their
  outcome (a login that succeeds gives its bucket's token back, so this is what stops one
  account holder from filling the checks' queue with right passwords).

A limiter is not a library here: `limits`' in-memory storage rescans every key every 10 ms while
hits arrive, so an attacker who sends a new name with every login would make that scan the
server's work; a bucket per key forgotten once full again costs nothing while idle.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import itsdangerous


T = TypeVar("T")
NICE = 10  # the password checks' threads: below the pages' (0), above nothing else's
HOLD = 1.0  # seconds a 429 waits before it is sent
AT_ONCE = 2  # logins of one name checked at once


class Busy(Exception):
    """Every password-check thread is busy and the queue is full: answer 503 at once."""

    def __init__(self, retry_after: int):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class Checks:
    """The password checks' own threads, with a bounded queue."""

    def __init__(self, threads: int, queue: int):
        self.threads, self.limit = threads, threads + queue
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="custdq-login", initializer=_lower_priority)
        # the logins' access-log rows wait for their commit here, not on the pages' threads: a
        # flood's refusals, answered in a millisecond each, would otherwise hold all forty of
        # them waiting for the access log's group commits (an API call took 2-3 s under a flood)
        self.records = ThreadPoolExecutor(2, thread_name_prefix="custdq-login-log")
        self.lock = threading.Lock()
        self.pending = 0  # running and waiting
        self.seconds = 0.2  # a check's recent mean duration, for Retry-After

    async def run(self, fn: Callable[..., T], *args) -> T:
        """fn(*args) on a check thread; Busy when `threads + queue` are already under way. The
        count drops when fn ends, or when it is cancelled before it starts (a client gone)."""
        with self.lock:
            if self.pending >= self.limit:
                raise Busy(max(1, math.ceil(self.pending / self.threads * self.seconds)))
            self.pending += 1
        try:
            future = self.pool.submit(self._timed, fn, *args)
        except RuntimeError:  # shut down: the server is stopping
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _timed(self, fn: Callable[..., T], *args) -> T:
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            with self.lock:
                self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - start)

    async def record(self, fn: Callable[..., T], *args) -> T:
        """fn(*args) on the logins' access-log threads (a row handed to the access log's writer,
        waiting for its commit)."""
        return await asyncio.wrap_future(self.records.submit(fn, *args))

    def _release(self, _future) -> None:
        with self.lock:
            self.pending -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.records.shutdown(wait=True)  # every row handed over is written before the access log closes


def _lower_priority() -> None:
    if sys.platform.startswith("linux"):  # per thread on Linux only (elsewhere it would be the whole process)
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError:
            pass  # a priority the process may not lower further: the threads run at the pages' priority


DEVICE_COOKIE = "custdq_device"
DEVICE_DAYS = 180  # a device cookie's life; signing in again makes a new one


class Devices:
    """Device cookies: signed (itsdangerous, with the session key and a salt of their own), holding
    a random id and the user's name; never a secret in themselves (the password is still checked).
    Used in the event loop's thread only."""

    MAX_KEYS = 100_000  # devices with failures remembered; beyond it the oldest are forgotten

    def __init__(self, secret: str, failures: int, lockout_seconds: float):
        self.signer = itsdangerous.URLSafeTimedSerializer(secret, salt="custdq-device")
        self.failures, self.lockout = failures, lockout_seconds
        self.failed: dict[str, tuple[int, float]] = {}  # device id -> (wrong passwords in a row, locked until)

    def issue(self, name: str) -> str:
        return self.signer.dumps([secrets.token_hex(12), name])

    def device(self, cookie: str | None, name: str) -> str | None:
        """The device id of a cookie signed for `name`, not older than DEVICE_DAYS and not locked
        out, else None (an untrusted client)."""
        if not cookie or len(cookie) > 1000:
            return None
        try:
            device, owner = self.signer.loads(cookie, max_age=DEVICE_DAYS * 86400)
        except (itsdangerous.BadData, TypeError, ValueError):
            return None
        if not isinstance(device, str) or owner != name:
            return None
        return None if self.failed.get(device, (0, 0.0))[1] > time.monotonic() else device

    def result(self, device: str, succeeded: bool) -> None:
        """A trusted device's login ended: a success clears its count; `failures` wrong passwords
        in a row lock it out for the lockout's time."""
        if succeeded:
            self.failed.pop(device, None)
            return
        count = self.failed.pop(device, (0, 0.0))[0] + 1
        self.failed[device] = (0, time.monotonic() + self.lockout) if count >= self.failures else (count, 0.0)
        if len(self.failed) > self.MAX_KEYS:
            for key in list(self.failed)[:self.MAX_KEYS // 10]:
                del self.failed[key]


class Limits:
    """Token buckets per client address and per user name, in the event loop's thread only."""

    MAX_KEYS = 100_000  # beyond it, the buckets idle longest are forgotten first

    def __init__(self, per_address: int, per_user: int, window: float):
        self.sizes = {"address": per_address, "user": per_user, "device": per_user}
        self.window = window
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, when)
        self.running: dict[str, int] = {}  # name -> its logins under way

    def _level(self, key: tuple[str, str], now: float) -> float:
        size = self.sizes[key[0]]
        tokens, when = self.buckets.get(key, (size, now))
        return min(size, tokens + (now - when) * size / self.window)

    @staticmethod
    def _keys(address: str | None, user: str, trusted: bool) -> list[tuple[str, str]]:
        return [("device", user)] if trusted else [("address", address or ""), ("user", user)]

    def take(self, address: str | None, user: str, trusted: bool = False) -> int:
        """Take one attempt from the address's and the user's buckets (a trusted device's: the
        name's trusted bucket only): 0, or the seconds (at least 1) until each has one again,
        when one is empty or AT_ONCE logins of the name are under way (then nothing is taken)."""
        now = time.monotonic()
        if self.running.get(user, 0) >= AT_ONCE:
            return 1
        keys = self._keys(address, user, trusted)
        levels = [self._level(k, now) for k in keys]
        if min(levels) < 1:
            return max(math.ceil((1 - level) * self.window / self.sizes[k[0]]) for k, level in zip(keys, levels))
        for key, level in zip(keys, levels):
            self.buckets.pop(key, None)  # (re)inserted last: the dict's order is the order of use
            self.buckets[key] = (level - 1, now)
        if len(self.buckets) > self.MAX_KEYS:
            self._forget(now)
        return 0

    def started(self, user: str) -> None:
        self.running[user] = self.running.get(user, 0) + 1

    def ended(self, user: str) -> None:
        left = self.running.pop(user, 1) - 1
        if left > 0:
            self.running[user] = left

    def give_back(self, address: str | None, user: str, trusted: bool = False) -> None:
        """A login that succeeded, or was not checked (the queue full): its attempt does not count."""
        now = time.monotonic()
        for key in self._keys(address, user, trusted):
            if key in self.buckets:
                self.buckets[key] = (min(self.sizes[key[0]], self._level(key, now) + 1), now)

    def _forget(self, now: float) -> None:
        for key in [k for k in self.buckets if self._level(k, now) >= self.sizes[k[0]]]:
            del self.buckets[key]  # full again: the same as never seen
        for key in list(self.buckets)[:max(0, len(self.buckets) - self.MAX_KEYS * 9 // 10)]:
            del self.buckets[key]  # to 90 %: the next sweep is 10,000 new keys away
