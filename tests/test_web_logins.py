"""Logins and credentials under hostile traffic (issue 27), against `custdq serve` as a real
process on loopback over a real store, SQLite and PostgreSQL: a flood of bad logins from many
addresses leaves a signed-in client's API calls fast (the checks' own threads, the bounded
queue's 503); the per-address and per-user rate limits (429 with Retry-After); the access-log
row of a failed login names the user it tried, masked; sessions end after
`web.session_max_hours` whatever the activity; API tokens expire, are listed and revoked one by
one; a schema-8 store migrated to schema 9 keeps its tokens working, with an expiry."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import multiprocessing
import os
import re
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from pipeline import store
from pipeline.store.schema import SCHEMA_VERSION, api_tokens
from tests.helpers import postgres_url
from tests.test_web import PASSWORDS, make_store
from tests.webserve import Client, Server, csrf_of, custdq

PHONE = "13812345678"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"logins-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{folder / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    return {"tokens": make_store(folder, db), "db": db, "folder": folder}


def serve(site, name: str, **web) -> Server:
    """`custdq serve` over the site's store with these `web:` settings."""
    config = site["folder"] / f"{name}.yaml"
    config.write_text("web:\n" + "".join(f"  {k}: {v}\n" for k, v in web.items()) if web else "{}\n", encoding="utf-8")
    return Server(site["db"], site["folder"], "--config", str(config))


class Browser:
    """A login form sent from a given loopback address (127.0.0.0/8 is all this machine's), one
    kept-alive connection, the session cookie carried along."""

    def __init__(self, port: int, address: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(address, 0))
        self.cookie = ""  # the session's
        self.device = ""  # the device cookie a login that succeeded set (logins.Devices)
        self.csrf = csrf_of(self.request("GET", "/login")[2])

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, str]:
        cookies = "; ".join(c for c in (self.cookie, self.device) if c)
        headers = {"Cookie": cookies} if cookies else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            answer = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # uvicorn closes a connection idle for 5 s before reading anything more from it:
            # open it again, as a browser does (the request never reached the app)
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            answer = self.conn.getresponse()
        text = answer.read().decode("utf-8", errors="replace")
        for sent in answer.msg.get_all("set-cookie") or []:
            found = re.match(r"(custdq_session|custdq_device)=([^;]*)", sent)
            if found and found.group(1) == "custdq_session":
                self.cookie = f"custdq_session={found.group(2)}"
            elif found:
                self.device = f"custdq_device={found.group(2)}"
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, text

    def login(self, name: str, password: str) -> tuple[int, dict, str]:
        form = urllib.parse.urlencode({"name": name, "password": password, "csrf": self.csrf}).encode()
        return self.request("POST", "/login", form)

    def close(self) -> None:
        self.conn.close()


def access_rows(site, **where) -> list[dict]:
    """The access log's rows (every page of them: a flood writes more than one page) with these values."""
    client, rows, offset = Client(site["server"].base, site["tokens"]["audit"]), [], 0
    while True:
        status, body = client.json("GET", f"/api/access-log?limit=10000&offset={offset}")
        assert status == 200, body
        rows += body["entries"]
        if len(body["entries"]) < 10000:
            return [e for e in rows if all(e[k] == v for k, v in where.items())]
        offset += 10000


def _flood(port: int, seconds: float, results) -> None:
    """80 attackers on 40 addresses for `seconds`, logins with wrong passwords back to back for
    an existing name and unknown ones; in a process of its own, so that its threads never hold
    the measuring client's interpreter lock. Puts (answers, the Retry-After values) on `results`."""
    answers: Counter = Counter()
    waits: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def attacker(i: int) -> None:
        browser = Browser(port, f"127.0.0.{2 + i % 40}")
        try:
            n = 0
            while time.monotonic() < until:
                status, headers, _ = browser.login("gd2" if i % 4 == 0 else f"nobody-{i}-{n % 7}", f"wrong-{n}")
                with lock:
                    answers[status] += 1
                    if status in (429, 503):
                        waits.append(headers.get("retry-after", ""))
                n += 1
        finally:
            browser.close()

    with ThreadPoolExecutor(80) as pool:
        for done in [pool.submit(attacker, i) for i in range(80)]:
            done.result()
    results.put((dict(answers), waits))


def test_a_login_flood_leaves_a_signed_in_clients_calls_fast(site):
    server = serve(site, "flood")  # the packaged limits: 2 checks at once, 16 waiting, 30 per address
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    flood = spawn.Process(target=_flood, args=(server.port, 12.0, results))
    try:
        client = Client(server.base, site["tokens"]["gd"])
        assert client.json("GET", "/api/items?limit=50")[0] == 200
        flood.start()
        time.sleep(3)  # the flood under way (its process started): the checks' threads busy, their queue full
        took = []
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            start = time.perf_counter()
            status, body = client.json("GET", "/api/items?limit=50")
            took.append(time.perf_counter() - start)
            assert status == 200, body
        answers, waits = results.get(timeout=60)
        flood.join(timeout=30)
        assert answers.get(401) and answers.get(503) and answers.get(429), answers  # checked, queue full, limited
        assert set(answers) <= {401, 429, 503} and all(w.isdigit() and int(w) >= 1 for w in waits), answers
        assert len(took) >= 10 and max(took) < 2.0, (max(took), len(took), answers)
        assert Client(server.base).login("gd", PASSWORDS["gd"]) == 303  # people still sign in
    finally:
        if flood.is_alive():
            flood.kill()
        server.stop()


def test_too_many_logins_from_one_address_or_for_one_name_get_429(site):
    server = serve(site, "limits", login_per_address=4, login_per_user=3, login_window_seconds=60)
    site = dict(site, server=server)
    try:
        first, second, third = (Browser(server.port, f"127.0.1.{n}") for n in (2, 3, 4))
        assert [first.login("boss", "wrong-password")[0] for _ in range(3)] == [401, 401, 401]
        start = time.monotonic()
        status, headers, page = first.login("boss", "wrong-password")
        assert status == 429 and "登录尝试过于频繁" in page
        assert 1 <= int(headers["retry-after"]) <= 20 and time.monotonic() - start >= 0.9  # held a second
        assert second.login("boss", PASSWORDS["boss"])[0] == 429  # the name's limit, from any address
        assert first.login("nobody-1", "wrong-password")[0] == 401  # the address's fourth
        assert first.login("nobody-2", "wrong-password")[0] == 429  # the address's fifth
        for _ in range(3):  # an unknown name is limited exactly like a real one
            assert third.login("nobody-3", "wrong-password")[0] == 401
        assert third.login("nobody-3", "wrong-password")[0] == 429
        fourth = Browser(server.port, "127.0.1.5")
        for _ in range(6):  # logins that succeed do not count
            fourth.cookie = ""
            fourth.csrf = csrf_of(fourth.request("GET", "/login")[2])
            assert fourth.login("audit", PASSWORDS["audit"])[0] == 303
        limited = access_rows(site, path="/login", status=429, client="127.0.1.3")
        assert [(r["user_name"], r["target"]) for r in limited] == [(None, "boss")]
    finally:
        server.stop()


def test_a_browser_the_user_signed_in_with_is_not_kept_out_by_a_flood_for_their_name(site):
    """OWASP's device cookies: wrong passwords for one name (the name's limit reached, the account
    locked) from the office's own address keep out that address and new browsers, not the
    browser the user signed in with before; that browser's own wrong guesses are limited."""
    server = serve(site, "devices", login_per_address=3, login_per_user=3, login_window_seconds=60,
                   login_failures=3)
    password = "device-password-1"  # a user of its own: this test leaves it locked
    added = custdq("users", "add", "wu", "--role", "manager", "--db", site["db"], stdin=f"{password}\n{password}\n",
                   cwd=site["folder"])
    assert added.returncode == 0, added.stderr
    try:
        office = Browser(server.port, "127.0.3.2")
        assert office.login("wu", password)[0] == 303 and office.device  # the user's own browser
        attacker = Browser(server.port, "127.0.3.2")  # behind the same address
        assert [attacker.login("wu", f"guess-{n}")[0] for n in range(3)] == [401, 401, 401]  # locked now
        assert attacker.login("wu", password)[0] == 429  # the name's and the address's limits
        assert attacker.login("someone", "guess")[0] == 429  # the address's limit
        assert Browser(server.port, "127.0.3.3").login("wu", password)[0] == 429  # a new browser: limited
        office.csrf = csrf_of(office.request("GET", "/login")[2])
        assert office.login("wu", password)[0] == 303  # the user's browser: in, despite the lockout
        assert office.request("GET", "/items")[0] == 200
        engine = sa.create_engine(store.engine_url(site["db"]))
        with engine.connect() as conn:  # the lockout holds for the others
            assert conn.execute(sa.text("select locked_until from users where name = 'wu'")).scalar_one()
        engine.dispose()
        # a device cookie counts for its own user only, and its own wrong guesses are limited
        office.csrf = csrf_of(office.request("GET", "/login")[2])
        assert office.login("boss", PASSWORDS["boss"])[0] == 429  # not this device's user: the address's limit
        assert [office.login("wu", f"guess-{n}")[0] for n in range(3)] == [401, 401, 401]
        assert office.login("wu", password)[0] == 429  # the device's own bucket is empty
        forged = Browser(server.port, "127.0.3.5")
        forged.device = office.device[:-4] + ("AAAA" if not office.device.endswith("AAAA") else "BBBB")
        assert forged.login("wu", password)[0] == 429  # a cookie the server did not sign: untrusted
    finally:
        server.stop()


def test_one_name_has_at_most_two_logins_checked_at_once(site):
    """Right passwords give their token back, so they would never meet the name's limit: what
    bounds one account holder's logins (or a flood for one name) is two checked at once."""
    server = serve(site, "at-once", login_per_address=100, login_per_user=100)
    try:
        browsers = [Browser(server.port, f"127.0.4.{n}") for n in range(2, 10)]
        barrier = threading.Barrier(len(browsers))

        def one(browser: Browser) -> int:
            barrier.wait()
            return browser.login("boss", PASSWORDS["boss"])[0]

        with ThreadPoolExecutor(len(browsers)) as pool:
            answers = Counter(pool.map(one, browsers))
        assert set(answers) <= {303, 429} and answers[303] >= 2 and answers[429] >= 1, answers
    finally:
        server.stop()


def test_a_failed_login_names_the_user_it_tried_masked(site):
    server = serve(site, "targets")
    site = dict(site, server=server)
    try:
        browser = Browser(server.port, "127.0.2.6")
        assert browser.login("gd2", "wrong-password")[0] == 401
        assert browser.login(PHONE, "wrong-password")[0] == 401
        assert browser.login("gd", PASSWORDS["gd"])[0] == 303
        rows = access_rows(site, path="/login", client="127.0.2.6")
        assert [(r["user_name"], r["target"], r["status"]) for r in rows] == [
            (None, "gd2", 401), (None, "138****5678", 401), ("gd", "gd", 303)]
        listed = custdq("audit", "list", "--user", "gd2", "--db", site["db"], cwd=site["folder"])
        assert listed.returncode == 0, listed.stderr
        tried = [line for line in listed.stdout.splitlines() if "/login" in line and "127.0.2.6" in line]
        assert len(tried) == 1 and "401" in tried[0] and "gd2" in tried[0]
        phone = custdq("audit", "list", "--user", PHONE, "--db", site["db"], cwd=site["folder"])
        assert phone.returncode == 0 and "138****5678" in phone.stdout
        assert PHONE not in phone.stdout.replace(f"--user {PHONE}", "") and PHONE not in phone.stderr
        # no user has a phone for a name: the filter refuses one (it would be shown back in the
        # page's form); the masked name, as the log holds it, finds the logins that tried it
        auditor = Client(server.base, site["tokens"]["audit"])
        status, body = auditor.json("GET", f"/api/access-log?user={PHONE}")
        assert status == 422 and body["reason"].startswith("user"), body
        status, body = auditor.json("GET", "/api/access-log?user=" + urllib.parse.quote("138****5678"))
        assert status == 200 and [e["target"] for e in body["entries"]] == ["138****5678"]
        page = Client(server.base)
        assert page.login("audit", PASSWORDS["audit"]) == 303
        status, _, html = page.call("GET", "/access-log?user=gd2")
        assert status == 200 and "登录所用用户名" in html and re.search(r"<td>gd2</td><td>POST /login</td>", html)
    finally:
        server.stop()


def test_a_session_ends_after_session_max_hours_whatever_the_activity(site):
    server = serve(site, "max", session_max_hours=0.003)  # 10.8 seconds; idle: the packaged 30 minutes
    try:
        browser = Client(server.base)
        asked = time.monotonic()
        assert browser.login("boss", PASSWORDS["boss"]) == 303
        signed_in = time.monotonic()  # the session's sign-in time is between these two
        while time.monotonic() - asked < 4:  # in use every second: alive
            assert browser.call("GET", "/items")[0] == 200
            time.sleep(1)
        time.sleep(max(0.0, 11.5 - (time.monotonic() - signed_in)))
        status, headers, _ = browser.call("GET", "/items")
        assert status == 303 and headers["location"] == "/login"
        assert browser.login("boss", PASSWORDS["boss"]) == 303 and browser.call("GET", "/items")[0] == 200
    finally:
        server.stop()


def _token_id(stderr: str) -> str:
    return re.search(r"id ([0-9a-f]{12}), expires (\S+)", stderr).group(1)


def test_api_tokens_expire_and_are_listed_and_revoked_one_by_one(site):
    db, folder = site["db"], site["folder"]
    made = custdq("users", "token", "boss", "--days", "1", "--db", db, cwd=folder)
    assert made.returncode == 0, made.stderr
    token, token_id = made.stdout.strip().splitlines()[-1], _token_id(made.stderr)
    expires = dt.datetime.fromisoformat(re.search(r"expires (\S+)", made.stderr).group(1))
    assert abs((expires - dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=1)) < dt.timedelta(minutes=5)
    other = custdq("users", "token", "boss", "--db", db, cwd=folder)  # the default: 90 days
    other_token, other_id = other.stdout.strip().splitlines()[-1], _token_id(other.stderr)
    assert "expires" in other.stderr and (dt.datetime.fromisoformat(re.search(r"expires (\S+)", other.stderr).group(1))
                                          - expires).days in (88, 89)
    listed = custdq("users", "tokens", "boss", "--db", db, cwd=folder)
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout and other_id in listed.stdout and len(
        [line for line in listed.stdout.splitlines() if re.search(r"[0-9a-f]{12}", line)]) == 3  # make_store's too
    for secret in (token, other_token, hashlib.sha256(token.encode()).hexdigest()):
        assert secret not in listed.stdout + listed.stderr
    server = serve(site, "tokens")
    try:
        assert Client(server.base, token).json("GET", "/api/items")[0] == 200
        revoked = custdq("users", "revoke", token_id, "--db", db, cwd=folder)
        assert revoked.returncode == 0 and "revoked" in revoked.stderr
        assert Client(server.base, token).json("GET", "/api/items")[0] == 401  # at once, the same server
        assert Client(server.base, other_token).json("GET", "/api/items")[0] == 200
        unknown = custdq("users", "revoke", "000000000000", "--db", db, cwd=folder)
        assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
        assert "000000000000" in unknown.stderr and "Traceback" not in unknown.stderr
        assert custdq("users", "tokens", "nobody", "--db", db, cwd=folder).returncode == 2
        assert custdq("users", "token", "boss", "--days", "0", "--db", db, cwd=folder).returncode == 2
        engine = store.open_store(db, create=False)  # a day later than it was made for: expired
        with engine.begin() as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.token_id == other_id)
                         .values(expires_at="2026-01-01T00:00:00+08:00"))
        engine.dispose()
        assert Client(server.base, other_token).json("GET", "/api/items")[0] == 401
        after = custdq("users", "tokens", "boss", "--db", db, cwd=folder)
        assert token_id not in after.stdout and re.search(rf"{other_id}.*True", after.stdout)
        users = custdq("users", "list", "--db", db, cwd=folder)
        boss = [line for line in users.stdout.splitlines() if line.startswith("boss")]
        assert len(boss) == 1 and "token_expires" in users.stdout
        admin = Client(server.base)
        assert admin.login("root", PASSWORDS["root"]) == 303
        status, _, page = admin.call("GET", "/users")
        row = re.search(r"<tr><td>boss</td>(.*?)</tr>", page, re.S).group(1)
        assert status == 200 and "有效 API 令牌" in page and re.search(r"<td>1</td><td>\d{4}-\d\d-\d\dT", row), row
    finally:
        server.stop()


def test_a_schema_8_store_is_migrated_to_schema_9(site, tmp_path):
    """Tokens made before the migration keep working and expire 90 days after it; failed logins
    gain their target."""
    db = f"sqlite:///{tmp_path / 'eight.db'}" if site["db"].startswith("sqlite") else postgres_url()
    made = {"folder": tmp_path, "db": db, "tokens": make_store(tmp_path, db)}
    engine = store.open_store(db, create=False)
    with engine.begin() as conn:  # as schema 8 left it
        for index in ("ix_api_tokens_token_id", "ix_access_log_target"):
            conn.exec_driver_sql(f"DROP INDEX {index}")
        for table, column in (("api_tokens", "token_id"), ("api_tokens", "expires_at"), ("access_log", "target")):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.exec_driver_sql("UPDATE custdq_meta SET value = '8' WHERE key = 'schema_version'")
    engine.dispose()
    listed = custdq("users", "tokens", "gd", "--db", db, cwd=tmp_path)  # any command opening the store migrates it
    assert listed.returncode == 0, listed.stderr
    engine = store.open_store(db, create=False)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT value FROM custdq_meta WHERE key = 'schema_version'").scalar()
        rows = conn.execute(sa.select(api_tokens.c.token_id, api_tokens.c.expires_at)).all()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("access_log")}
    engine.dispose()
    assert version == str(SCHEMA_VERSION) and "target" in columns  # through 9 (tokens, the log's target) to the latest and len(rows) == len(PASSWORDS)
    assert len({r.token_id for r in rows}) == len(rows) and all(re.fullmatch(r"[0-9a-f]{12}", r.token_id) for r in rows)
    in_90_days = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90))
    assert all(abs(dt.datetime.fromisoformat(r.expires_at) - in_90_days) < dt.timedelta(minutes=10) for r in rows)
    assert any(r.expires_at[:10] in listed.stdout for r in rows)  # gd's token, with its expiry
    server = Server(db, tmp_path)
    try:
        assert Client(server.base, made["tokens"]["gd"]).json("GET", "/api/items")[0] == 200  # still works
        assert Client(server.base).login("gd2", "wrong-password") == 401
        status, body = Client(server.base, made["tokens"]["audit"]).json("GET", "/api/access-log?user=gd2")
        assert status == 200 and [(e["target"], e["status"]) for e in body["entries"]] == [("gd2", 401)]
    finally:
        server.stop()


@pytest.mark.parametrize("setting", ["login_checks: 0", "login_queue: -1", "login_per_user: 2.5",
                                     "login_window_seconds: 0", "session_max_hours: never"])
def test_a_bad_login_setting_is_refused_before_serving(site, setting):
    config = site["folder"] / "bad.yaml"
    config.write_text(f"web:\n  {setting}\n", encoding="utf-8")
    done = custdq("serve", "--db", site["db"], "--config", str(config), "--port", "1", cwd=site["folder"])
    key = setting.split(":")[0]
    assert done.returncode == 2 and f"web.{key}" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_users_add_refuses_a_personal_number_as_a_name_or_a_branch(site):
    """Names and branches are shown and logged as they are: one with the form of an identity
    number, a mobile or a card (however typed) is refused, and the refusal shows it masked."""
    password = "a-long-password\na-long-password\n"
    for args in (["１３８ 1234 5678", "--role", "manager"], ["11010519491231002X", "--role", "compliance"],
                 ["wang13812345678", "--role", "manager"], ["张三13812345678", "--role", "manager"],
                 ["zhao", "--role", "branch", "--branch", "6222021234567890128"],
                 ["qian", "--role", "branch", "--branch", "一三八一二三四五六七八"]):
        refused = custdq("users", "add", *args, "--db", site["db"], stdin=password, cwd=site["folder"])
        assert refused.returncode == 2 and "holds a number of more than 10 digits" in refused.stderr, refused.stderr
        assert not any(d in refused.stderr for d in ("12345678", "49123100", "21234567", "一二三四")), refused.stderr
    for name in ("E20260001", "张三 1234567890"):  # a staff number of up to 10 digits is a name like any other
        staff = custdq("users", "add", name, "--role", "manager", "--db", site["db"], stdin=password,
                       cwd=site["folder"])
        assert staff.returncode == 0, staff.stderr
    listed = custdq("users", "list", "--db", site["db"], cwd=site["folder"])
    assert listed.returncode == 0 and "zhao" not in listed.stdout and "qian" not in listed.stdout
    assert "E20260001" in listed.stdout
