"""`custdq serve` (issue 18, SPEC 8) as a real uvicorn process on a loopback port, against a real
store a real night wrote: who may see what (SPEC 8's role table, IDOR), dispositions through
the API and the pages (the same checks as `cases import`, stale versions, CSRF), the next night
honouring them, the access log, login throttling, hostile text, the security headers."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import policy, postgres_url, read_outputs, write_csv

GD, BJ = "广东分公司", "北京分公司"
PASSWORDS = {"gd": "gd-password-1", "bj": "bj-password-1", "boss": "boss-password", "audit": "audit-password",
             "root": "root-password"}
HOSTILE = '<script>alert("x")</script>'
CUSTDQ = str(Path(sys.executable).with_name("custdq"))


def rows() -> list[dict]:
    out = [policy(f"P{n}", n, applicant_sex="女", branch=GD) for n in (10, 11, 12, 13, 14)]  # ID_SEX_MISMATCH
    out.append(policy("P20", 20, applicant_sex="女", branch=BJ))
    out += [policy("P30", 30, applicant_phone="13912340000", branch=GD),  # one phone, two customers, two branches
            policy("P31", 31, applicant_phone="13912340000", branch=BJ)]
    return out


def custdq(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `custdq` command of this environment."""
    return subprocess.run([CUSTDQ, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str, folder: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([CUSTDQ, "serve", "--db", db,
                                      "--port", str(self.port)], cwd=folder, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/login", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stdout.read() if self.proc.stdout else "serve ended") from None
                time.sleep(0.2)
        raise RuntimeError("custdq serve did not answer within 30 s")

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        return out


class Client:
    """HTTP on loopback: a bearer token (the API) or a browser-like cookie jar (the pages)."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def call(self, method: str, path: str, body=None, form: dict | None = None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode("utf-8"), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode("utf-8")

    def json(self, method: str, path: str, body=None):
        status, _, text = self.call(method, path, body)
        return status, json.loads(text)

    def login(self, name: str, password: str) -> int:
        _, _, page = self.call("GET", "/login")
        status, _, _ = self.call("POST", "/login", form={"name": name, "password": password, "csrf": csrf_of(page)})
        return status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def make_store(folder: Path, db: str) -> dict[str, str]:
    """A night of rows() in `db`, the users of every role, their tokens."""
    extract = write_csv(folder / "n1.csv", rows())
    night = custdq("run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(folder / "o1"),
                   "--quiet", cwd=folder)
    assert night.returncode == 0, night.stderr
    roles = {"gd": ("branch", [GD]), "bj": ("branch", [BJ]), "boss": ("manager", []), "audit": ("compliance", []),
             "root": ("admin", [])}
    tokens = {}
    for name, (role, branches) in roles.items():
        added = custdq("users", "add", name, "--role", role, *[a for b in branches for a in ("--branch", b)],
                       "--db", db, stdin=f"{PASSWORDS[name]}\n{PASSWORDS[name]}\n", cwd=folder)
        assert added.returncode == 0, added.stderr
        token = custdq("users", "token", name, "--db", db, cwd=folder)
        assert token.returncode == 0, token.stderr
        tokens[name] = token.stdout.strip().splitlines()[-1]
    return tokens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"web-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{folder / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    tokens = make_store(folder, db)
    server = Server(db, folder)
    yield {"server": server, "tokens": tokens, "db": db, "folder": folder}
    server.stop()


def api(site, who: str | None) -> Client:
    return Client(site["server"].base, site["tokens"][who] if who else None)


def items_of(site, who: str, query: str = "") -> list[dict]:
    status, body = api(site, who).json("GET", "/api/items?limit=1000" + query)
    assert status == 200, body
    assert body["total"] == len(body["items"])
    return body["items"]


def test_each_role_sees_what_spec_8_allows(site):
    assert {i["branch"] for i in items_of(site, "gd")} == {GD}
    assert {i["branch"] for i in items_of(site, "bj")} == {BJ}
    every = items_of(site, "boss")
    assert {i["branch"] for i in every} == {GD, BJ} and items_of(site, "audit") == every
    assert len(every) == len(items_of(site, "gd")) + len(items_of(site, "bj"))
    assert all(isinstance(i["version"], int) and i["version"] > 0 for i in every)
    assert api(site, "root").json("GET", "/api/items")[0] == 403  # admin: users, no items
    assert api(site, None).json("GET", "/api/items")[0] == 401
    assert Client(site["server"].base, "not-a-token").json("GET", "/api/items")[0] == 401
    for who, allowed in {"gd": False, "boss": False, "audit": True, "root": False}.items():
        assert (api(site, who).json("GET", "/api/access-log")[0] == 200) is allowed, who


def test_another_branchs_item_reads_exactly_like_an_unknown_one(site):
    theirs = items_of(site, "bj")[0]["item_id"]
    other = api(site, "gd").call("GET", f"/api/items/{theirs}")
    unknown = api(site, "gd").call("GET", "/api/items/DQ0000000000000000")
    assert other[0] == unknown[0] == 404 and other[2] == unknown[2]
    assert api(site, "gd").json("POST", f"/api/items/{theirs}/disposition",
                                {"state": "处理中", "result": "", "note": "", "version": 1})[0] == 404
    assert api(site, "bj").json("GET", f"/api/items/{theirs}")[0] == 200


def test_the_shared_cluster_shows_another_branchs_item_masked(site):
    shared = [i for i in items_of(site, "gd") if i["rule_code"] == "PHONE_SHARED"]
    assert len(shared) == 1
    browser = Client(site["server"].base)
    assert browser.login("gd", PASSWORDS["gd"]) == 303
    status, _, page = browser.call("GET", f"/items/{shared[0]['item_id']}")
    other = re.findall(r'<tr class="other">(.*?)</tr>', page, re.S)
    assert status == 200 and len(other) == 1
    assert "P*1" in other[0] and BJ in other[0] and "P31" not in other[0]  # masked number and branch only
    theirs = [i["item_id"] for i in items_of(site, "bj") if i["rule_code"] == "PHONE_SHARED"]
    assert len(theirs) == 1 and theirs[0] not in page  # no id, no link to an item they may not see


def test_a_disposition_through_the_api_then_a_stale_one_and_a_refused_one(site):
    mine = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P10"][0]
    client = api(site, "gd")
    path = f"/api/items/{mine['item_id']}/disposition"
    status, body = client.json("POST", path, {"state": "处理中", "result": "无法联系", "note": "客户电话 13912345678 未接",
                                              "version": mine["version"]})
    assert status == 200, body
    assert (body["work_state"], body["result"], body["state"]) == ("处理中", "无法联系", "open")
    assert "13912345678" not in body["note"] and body["version"] > mine["version"]
    stale, why = client.json("POST", path, {"state": "已完成", "result": "已更正", "note": "", "version": mine["version"]})
    assert stale == 409 and "gd" in why["error"]
    refused, why = client.json("POST", path, {"state": "已完成", "result": "", "note": "", "version": body["version"]})
    assert refused == 422 and why["error"] == "处理状态为已完成，但未填写处理结果"
    assert api(site, "boss").json("POST", path, {"state": "处理中", "version": body["version"]})[0] == 403
    status, one = client.json("GET", f"/api/items/{mine['item_id']}")
    assert [e["action"] for e in one["events"]] == ["raised", "disposed"] and one["events"][-1]["who"] == "gd"


def test_the_next_night_honours_web_dispositions(site):
    folder, db = site["folder"], site["db"]
    gd = {i["policy_no"]: i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH")}
    client = api(site, "gd")
    for no, result in (("P11", "核实无误"), ("P12", "已更正")):
        status, body = client.json("POST", f"/api/items/{gd[no]['item_id']}/disposition",
                                   {"state": "已完成", "result": result, "note": "", "version": gd[no]["version"]})
        assert status == 200 and body["state"] == "closed", body
    again = custdq("run", str(folder / "n1.csv"), "--business-date", "2026-11-23", "--db", db,
                   "--out", str(folder / "o2"), "--quiet", cwd=folder)
    assert again.returncode == 0, again.stderr
    listed = read_outputs(folder / "o2")[0]
    assert gd["P11"]["item_id"] not in set(listed["item_id"])  # confirmed legitimate: suppressed
    reopened = listed[listed["item_id"] == gd["P12"]["item_id"]]
    assert len(reopened) == 1 and reopened["status"].iloc[0] == "open"  # corrected, yet fires: reopened
    status, body = client.json("GET", f"/api/items/{gd['P12']['item_id']}")
    assert body["state"] == "open" and body["events"][-1]["action"] == "reopened"


def test_pages_refuse_a_form_without_its_csrf_token(site):
    browser = Client(site["server"].base)
    assert browser.login("gd", PASSWORDS["gd"]) == 303
    item = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P13"][0]
    status, _, page = browser.call("POST", f"/items/{item['item_id']}/disposition",
                                   form={"state": "处理中", "result": "", "note": "", "version": item["version"]})
    assert status == 403 and "CSRF" in page
    assert api(site, "gd").json("GET", f"/api/items/{item['item_id']}")[1]["work_state"] == "未处理"
    assert Client(site["server"].base).call("POST", "/login", form={"name": "gd", "password": PASSWORDS["gd"]})[0] == 403


def test_hostile_notes_are_shown_escaped(site):
    item = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P14"][0]
    status, _ = api(site, "gd").json("POST", f"/api/items/{item['item_id']}/disposition",
                                     {"state": "处理中", "result": "", "note": HOSTILE, "version": item["version"]})
    assert status == 200
    browser = Client(site["server"].base)
    browser.login("gd", PASSWORDS["gd"])
    status, headers, page = browser.call("GET", f"/items/{item['item_id']}")
    assert status == 200 and HOSTILE not in page and "&lt;script&gt;" in page
    assert "script-src" not in headers["content-security-policy"] and "default-src 'none'" in \
        headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_the_access_log_holds_every_look(site):
    mine = items_of(site, "bj")
    api(site, "bj").json("GET", f"/api/items/{mine[0]['item_id']}")
    status, body = api(site, "audit").json("GET", "/api/access-log?user=bj")
    assert status == 200
    looks = [e for e in body["entries"] if e["path"] == f"/api/items/{mine[0]['item_id']}"]
    assert looks and looks[-1]["status"] == 200 and looks[-1]["item_ids"] == mine[0]["item_id"]
    assert looks[-1]["client"] == "127.0.0.1" and looks[-1]["method"] == "GET"
    listed = [e for e in body["entries"] if e["path"].startswith("/api/items?")]
    assert listed and set(listed[-1]["item_ids"].split(",")) == {i["item_id"] for i in mine}
    refused = api(site, "gd").call("GET", "/api/access-log")
    assert refused[0] == 403
    shown = custdq("audit", "list", "--user", "bj", "--db", site["db"], cwd=site["folder"])
    assert shown.returncode == 0 and mine[0]["item_id"] in shown.stdout


def test_five_wrong_passwords_lock_the_user_and_a_disabled_user_is_out(site):
    browser = Client(site["server"].base)
    for _ in range(5):
        assert browser.login("root", "wrong-password") in (401, 429)
    assert browser.login("root", PASSWORDS["root"]) == 429  # locked, even with the right password
    token = Client(site["server"].base, site["tokens"]["bj"])
    assert token.json("GET", "/api/items")[0] == 200
    off = custdq("users", "disable", "bj", "--db", site["db"], cwd=site["folder"])
    assert off.returncode == 0, off.stderr
    assert token.json("GET", "/api/items")[0] == 401
