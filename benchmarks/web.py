"""python -m benchmarks.web [--items 1000000] [--sessions 50] [--seconds 60] [--think 0] [--workers 1]
[--settle 0.1] [--flood 0] [--flood-addresses 20] [--db URL] [--folder DIR] [--py-spy FILE]: the web
app under load (issue 18):
`custdq serve` as a real process on loopback, over a store of a real night plus N synthetic
open items (each with its raised event), and S concurrent sessions for T seconds, each signed
in as a branch user (4 in 5) or a manager, alternating the worklist page (no filter, a rule,
overdue, a later page, another order) and `GET /api/items` with its token; `--settle` of a
branch session's steps settle one of its items through the API (a disposition: it changes the
store under the readers); `--think` seconds between a session's steps (0: back to back, the
worst case); `--workers` server processes (`web.workers`). `--folder` keeps the built store for
the next run; `--py-spy` samples the server through the loaded phase.

`--flood N` (issue 27) adds N attackers beside the sessions, for the same seconds: each on its
own connection from one of `--flood-addresses` loopback addresses (127.0.0.2, ...: the per-address
limit would otherwise stop them all at once), sending logins back to back with wrong passwords,
half of them for the sessions' own user names, half for a new unknown name every time (which
no per-name limit stops), and ignoring `Retry-After` as an attacker does. The sessions' figures
are reported as without it; `logins` counts the attackers' answers (401 checked, 429 rate
limited, 503 the checks' queue full) and their latency.

Baseline measured in the same run: the same steps from one session on the idle server; the
figures are p50/p95/p99 under load and their ratio to that baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from benchmarks.__main__ import machine
from checks.catalogue import ROW_RULES, RULES
from pipeline import clock, store
from pipeline.store.schema import item_events, items
from pipeline.store.schema import users as user_table
from pipeline.store.sql import bulk_insert

CUSTDQ = str(Path(sys.executable).with_name("custdq"))
PASSWORD = "bench-password-1"


def custdq(*args: str, stdin: str | None = None, cwd: Path) -> None:
    done = subprocess.run([CUSTDQ, *args], input=stdin, capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        raise SystemExit(f"custdq {args[0]} failed: {done.stderr}")


def build(folder: Path, db: str, n_items: int) -> list[str]:
    """A store of one real night plus `n_items` synthetic open items; returns the branches."""
    custdq("sample", "--rows", "2000", "--seed", "7", "--out", str(folder / "n.csv"), cwd=folder)
    custdq("run", str(folder / "n.csv"), "--business-date", "2026-11-20", "--db", db, "--out", str(folder / "o"),
           "--quiet", cwd=folder)
    engine = store.open_store(db, create=False)
    with engine.connect() as conn:
        branches = sorted(b for b in conn.execute(sa.select(items.c.branch).distinct()).scalars() if b)
    rng = np.random.default_rng(18)
    rules = [c for c in ROW_RULES if c in RULES]
    at = "2026-11-20T23:00:00+08:00"
    step = 100_000
    with engine.begin() as conn:
        for start in range(0, n_items, step):
            n = min(step, n_items - start)
            ids = [f"DQB{i:015X}" for i in range(start, start + n)]
            rule = np.asarray(rules, dtype=object)[rng.integers(0, len(rules), n)]
            due = pd.to_datetime("2026-11-01") + pd.to_timedelta(rng.integers(0, 45, n), unit="D")
            frame = pd.DataFrame({
                "item_id": ids, "rule_code": rule, "policy_no": [f"PB{i:012d}" for i in range(start, start + n)],
                "role": np.where(rng.random(n) < 0.6, "applicant", "insured"), "field": "applicant_id_no",
                "severity": [RULES[r].severity for r in rule], "category": [RULES[r].category for r in rule],
                "detail": [RULES[r].title for r in rule], "evidence": "4****************0",
                "branch": np.asarray(branches, dtype=object)[rng.integers(0, len(branches), n)],
                "channel": "个险", "agent_code": [f"A{int(a):07d}" for a in rng.integers(0, 2000, n)],
                "source_file": "bench.csv", "source_line": np.arange(start, start + n) + 2,
                "first_seen": "2026-11-20", "list_due": "2026-11-23", "channel_due": "2026-11-26",
                "due_date": due.strftime("%Y-%m-%d"), "provisional": False, "last_seen": "2026-11-20",
                "state": "open", "work_state": "未处理"})
            bulk_insert(conn, "items", list(frame.columns), frame.itertuples(index=False, name=None))
            bulk_insert(conn, item_events.name, ["item_id"], ((i,) for i in ids),
                        {"at": at, "who": "custdq run", "night": "2026-11-20", "action": "raised",
                         "what": "{}", "before": None, "source": None})
        store.refresh_statistics(conn)  # as the night does after changing the items
    engine.dispose()
    return branches


def make_users(db: str, n: int, branches: list[str]) -> list[tuple[str, str, str]]:
    """n users, 4 in 5 of a branch and 1 in 5 managers, each with a token: (name, role, token)."""
    from pipeline.web import users

    engine = store.open_store(db, create=False)
    made = []
    with engine.begin() as conn:
        for i in range(n):
            name = f"u{i:02d}"
            role, mine = ("manager", []) if i % 5 == 4 else ("branch", [branches[i % len(branches)]])
            if users.active(conn, name) is None:  # a store kept from an earlier run (--folder) has them
                users.add_user(conn, name, role, mine, PASSWORD, "2026-11-20T23:00:00+08:00")
            made.append((name, role, users.new_token(conn, name, clock.now()).token))
        # an earlier run's flood (--flood, a kept --folder) locked the names it tried: unlock them
        conn.execute(user_table.update().values(failed_logins=0, locked_until=None))
    engine.dispose()
    return made


def kept(db: str) -> list[str]:
    engine = store.open_store(db, create=False)
    with engine.connect() as conn:
        branches = sorted(b for b in conn.execute(sa.select(items.c.branch).distinct()).scalars() if b)
    engine.dispose()
    return branches


@contextlib.contextmanager
def _py_spy(pid: int, seconds: float, out: str):
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--subprocesses",
                            "--duration", str(int(seconds)), "--output", out, "--nonblocking",
                            "--format", "raw" if out.endswith(".txt") else "flamegraph"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.wait(timeout=seconds + 60)


def _wait_for(port: int, server: subprocess.Popen, seconds: float = 120) -> None:
    """Until the server answers (a busy machine starts it in seconds or in a minute)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"custdq serve ended with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"custdq serve did not answer within {seconds:g} s")


class Session:
    """One signed-in browser (cookie, CSRF) and one API client (token), HTTP/1.1 keep-alive."""

    def __init__(self, port: int, name: str, role: str, token: str, address: str | None = None):
        self.port, self.name, self.role, self.token, self.cookie = port, name, role, token, ""
        self.address = address  # the local address to connect from (None: the system's choice)
        self.conns: dict[str, tuple] = {}

    async def open(self) -> None:
        status, head, body = await self.request("page", "GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
        form = urllib.parse.urlencode({"name": self.name, "password": PASSWORD, "csrf": csrf})
        status, head, _ = await self.request("page", "POST", "/login", form.encode(),
                                             "application/x-www-form-urlencoded")
        if status != 303:
            raise SystemExit(f"login of {self.name} answered {status}")

    async def request(self, which: str, method: str, path: str, body: bytes = b"", kind: str = "",
                      bearer: bool = False) -> tuple[int, dict, str]:
        """One request on the session's `which` connection (opened again when the server closed
        an idle one: uvicorn keeps a connection 5 s without a request)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        if kind:
            lines.append(f"Content-Type: {kind}")
        if bearer:
            lines.append(f"Authorization: Bearer {self.token}")
        elif self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        for _attempt in range(2):
            if which not in self.conns:
                self.conns[which] = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(self.address, 0) if self.address else None)
            reader, writer = self.conns[which]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            first = await reader.readline()
            if first:
                break
            writer.close()
            del self.conns[which]
        else:
            raise ConnectionError(f"{path}: the server closed the connection twice")
        status = int(first.split()[1])
        head: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            head[k.strip().lower()] = v.strip()
            if k.strip().lower() == "set-cookie" and not bearer:
                self.cookie = v.strip().split(";", 1)[0]
        data = await reader.readexactly(int(head.get("content-length", 0)))
        return status, head, data.decode("utf-8", errors="replace")


PAGES = ["/items", "/items?rule=ID_CHECKSUM", "/items?overdue=1", "/items?offset=200", "/items?sort=policy_no"]
CALLS = ["/api/items?limit=50", "/api/items?rule=MISSING_FIELD&limit=50", "/api/items?overdue=1&limit=50"]


async def settle(s: Session, out: dict, errors: list) -> None:
    """A branch user settles one of their items through the API: reads a page of their list,
    takes one, and marks it 处理中 with a note (it stays open; every disposition is an event, so
    the counts the workers remember are stale after it)."""
    status, _, body = await s.request("api", "GET", f"/api/items?limit=20&offset={random.randrange(200)}", bearer=True)
    listed = json.loads(body).get("items", []) if status == 200 else []
    if not listed:
        errors.append(("settle: no item", status))
        return
    chosen = random.choice(listed)
    form = json.dumps({"state": "处理中", "note": f"bench {time.monotonic_ns()}", "version": chosen["version"]})
    t0 = time.perf_counter()
    status, _, _ = await s.request("api", "POST", f"/api/items/{chosen['item_id']}/disposition",
                                   form.encode(), "application/json", bearer=True)
    out["settle"].append(time.perf_counter() - t0)
    if status not in (200, 409):  # 409: another session settled it first (what the app must answer)
        errors.append(("settle", status))


async def run_session(s: Session, until: float, think: float, settling: float, out: dict, errors: list) -> None:
    n = 0
    while time.monotonic() < until:
        if s.role == "branch" and random.random() < settling:
            await settle(s, out, errors)
        else:
            page = n % 2 == 0
            path = random.choice(PAGES if page else CALLS)
            t0 = time.perf_counter()
            status, _, _ = await s.request("page" if page else "api", "GET", path, bearer=not page)
            out["page" if page else "api"].append(time.perf_counter() - t0)
            if status != 200:
                errors.append((path, status))
        n += 1
        if think:
            await asyncio.sleep(think * random.uniform(0.5, 1.5))


async def attack(a: Session, names: list[str], until: float, out: dict, answers: dict) -> None:
    """One attacker: logins with wrong passwords back to back, never waiting for Retry-After."""
    status, _, body = await a.request("page", "GET", "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    n = 0
    while time.monotonic() < until:
        name = random.choice(names) if n % 2 == 0 else f"x{a.name}-{n}"
        form = urllib.parse.urlencode({"name": name, "password": f"wrong-{n}", "csrf": csrf}).encode()
        t0 = time.perf_counter()
        status, _, _ = await a.request("page", "POST", "/login", form, "application/x-www-form-urlencoded")
        out["login"].append(time.perf_counter() - t0)
        answers[status] = answers.get(status, 0) + 1
        n += 1


async def load(port: int, users: list[tuple[str, str, str]], seconds: float, think: float,
               settling: float, flood: int = 0, addresses: int = 20) -> tuple[dict, list, dict]:
    sessions = [Session(port, name, role, token) for name, role, token in users]
    for s in sessions:
        await s.open()
    out: dict[str, list[float]] = {"page": [], "api": [], "settle": [], "login": []}
    errors: list = []
    answers: dict[int, int] = {}
    attackers = [Session(port, f"a{i}", "attacker", "", f"127.0.0.{2 + i % addresses}") for i in range(flood)]
    until = time.monotonic() + seconds
    await asyncio.gather(*(run_session(s, until, think, settling, out, errors) for s in sessions),
                         *(attack(a, [name for name, _, _ in users], until, out, answers) for a in attackers))
    return out, errors, answers


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think", type=float, default=0.0, help="mean seconds between a session's requests")
    ap.add_argument("--db", default=None, help="default: an SQLite store in a temporary folder")
    ap.add_argument("--workers", type=int, default=1, help="the server's worker processes (web.workers)")
    ap.add_argument("--folder", default=None, help="build the store here and keep it; reuse it when it is there")
    ap.add_argument("--py-spy", default=None, help="record the server with py-spy: a flame graph (.svg) or collapsed stacks (.txt)")
    ap.add_argument("--settle", type=float, default=0.1,
                    help="the share of a branch session's steps that settle an item (a disposition)")
    ap.add_argument("--flood", type=int, default=0, help="attackers sending bogus logins back to back beside the sessions")
    ap.add_argument("--flood-addresses", type=int, default=20, choices=range(1, 254), metavar="1..253",
                    help="the loopback addresses the attackers connect from")
    args = ap.parse_args()
    os.environ.setdefault("CUSTDQ_HASH_KEY", "custdq-benchmark-key-0123456789abcdef0123")
    with contextlib.ExitStack() as stack:
        folder = Path(args.folder) if args.folder else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="custdq-web-bench-")))
        folder.mkdir(parents=True, exist_ok=True)
        db = args.db or f"sqlite:///{folder / 'cases.db'}"
        t0 = time.perf_counter()
        if args.folder and (folder / "cases.db").exists():  # kept from an earlier run with these --items
            branches = kept(db)
        else:
            branches = build(folder, db, args.items)
        built = time.perf_counter() - t0
        users = make_users(db, args.sessions, branches)
        port = 18900 + os.getpid() % 500
        config = folder / "web.yaml"
        config.write_text(f"web:\n  workers: {args.workers}\n", encoding="utf-8")
        log = stack.enter_context(open(folder / "serve.log", "w", encoding="utf-8"))  # the server's own lines, kept
        server = subprocess.Popen([CUSTDQ, "serve", "--db", db, "--port", str(port), "--config", str(config)], cwd=folder,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(port, server)
            time.sleep(2 * args.workers)  # every worker process up, not just the first to answer
            idle, _, _ = asyncio.run(load(port, users[:1], 10, 0, 0.1))
            if args.py_spy:  # the server's processes sampled through the loaded phase
                stack.enter_context(_py_spy(server.pid, args.seconds, args.py_spy))
            loaded, errors, answers = asyncio.run(load(port, users, args.seconds, args.think, args.settle,
                                                       args.flood, args.flood_addresses))
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {"machine": machine(), "items": args.items, "branches": len(branches), "sessions": args.sessions,
              "workers": args.workers,
              "seconds": args.seconds, "think": args.think, "flood": args.flood,
              "flood_addresses": args.flood_addresses if args.flood else None,
              "store": "sqlite" if args.db is None else "given",
              "build_seconds": round(built, 1), "errors": len(errors), "error_samples": errors[:5]}
    for kind in ("page", "api", "settle"):
        if not loaded[kind]:
            continue
        base = statistics.median(idle[kind]) * 1000
        result[kind] = {"requests": len(loaded[kind]), "per_second": round(len(loaded[kind]) / args.seconds, 1),
                        "idle_p50_ms": round(base, 1), "p50_ms": round(pct(loaded[kind], 50), 1),
                        "p95_ms": round(pct(loaded[kind], 95), 1), "p99_ms": round(pct(loaded[kind], 99), 1),
                        "p95_vs_idle": round(pct(loaded[kind], 95) / base, 2)}
    if args.flood:  # the attackers' answers: 401 checked, 429 rate limited, 503 the checks' queue full
        result["logins"] = {"attempts": len(loaded["login"]), "per_second": round(len(loaded["login"]) / args.seconds, 1),
                            "answers": {str(k): v for k, v in sorted(answers.items())},
                            "p50_ms": round(pct(loaded["login"], 50), 1), "p95_ms": round(pct(loaded["login"], 95), 1)}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"web-{args.items}-{args.sessions}-{args.think:g}-{args.workers}{f'-flood{args.flood}' if args.flood else ''}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
