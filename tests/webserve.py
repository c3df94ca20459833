"""The web app's test harness (shared by tests/test_web*.py): the real `custdq` command, `custdq
serve` as a real process on a free loopback port, and an HTTP client with a bearer token or a
browser-like cookie jar."""

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

CUSTDQ = str(Path(sys.executable).with_name("custdq"))


def custdq(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `custdq` command of this environment."""
    return subprocess.run([CUSTDQ, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)


def prepare(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`custdq ARGS` through click in this process, for a fixture's preparations (a night, users,
    tokens) that are not what the test is about: the same code as the command after the
    interpreter has started, without a process's start and imports each time (a fixture's ten
    commands cost CI ~20 s as processes)."""
    import contextlib

    from click.testing import CliRunner

    from pipeline.cli import cli

    with contextlib.chdir(cwd or Path.cwd()):
        result = CliRunner().invoke(cli, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["custdq", *args], result.exit_code, result.stdout, result.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str, folder: Path, *extra: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([CUSTDQ, "serve", "--db", db,
                                      "--port", str(self.port), *extra], cwd=folder, stdout=subprocess.PIPE,
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

    def call(self, method: str, path: str, body=None, form: dict | list | None = None, headers: dict | None = None,
             raw: bytes | None = None):
        headers = dict(headers or {}, **({"Authorization": f"Bearer {self.token}"} if self.token else {}))
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode("utf-8"), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if raw is not None:
            data = raw
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8", errors="replace")
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


def raw(port: int, head: bytes, body: bytes = b"", read_first: bool = False) -> tuple[int, dict, bytes]:
    """One request as bytes on a new connection (what urllib refuses to send: NUL bytes, lone
    surrogates, chunked bodies, a declared length larger than what follows); `read_first`: send
    the head only and read the answer before sending `body`. Returns status, headers (lower-case
    names), body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        if not read_first and body:
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed before the whole body was sent
        data = b""
        while b"\r\n\r\n" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            more = s.recv(65536)
            if not more:
                break
            rest += more
        return status, headers, rest


def request_head(method: str, path: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [f"{k}: {v}".encode("utf-8") for k, v in (headers or {}).items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"
