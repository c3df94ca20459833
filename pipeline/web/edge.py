"""The request's edge (issue 27): the outermost layer of the web app, which every request passes
before any route, session or database sees it, and every answer passes on its way out.

- The body is read here, whatever the route or method, counted as it streams (Content-Length or
  chunked): more than MAX_BODY (64 KiB) answers 413 and closes the connection.
- NUL bytes, unpaired surrogates and invalid UTF-8 are refused with 400: in the path (raw or
  percent-encoded), the query string, the cookies and header values, the body's text, its
  form fields (percent-encoded) and JSON strings (`"\\u0000"`, `"\\ud800"` escapes). PostgreSQL
  stores no NUL in text and no surrogate in UTF-8: such a value would fail a statement (500) or
  the request's access-log row.
- Every answer carries the security headers (security.HEADERS), a 500 included: an exception
  anywhere below is answered with a generic 500 (no traceback; the traceback goes to the
  server's log, masked by pipeline.logs) if nothing was answered yet.

Refusals are `{"error": ..., "reason": ...}` under /api/, a Chinese page otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from typing import Any

import jinja2
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.web.security import HEADERS

MAX_BODY = 64 * 1024  # a disposition is a few fields (处理说明 at most 2000 characters), a login two
# the one route that takes a file (evidence on an item, a multipart form): its body may be as large
# as `evidence.max_bytes` and this much more, and is binary (its text fields are the route's to
# check: the CSRF token must match, the file's name is cleaned)
UPLOAD = re.compile(rb"/items/[A-Za-z0-9]{1,40}/attachments")
log = logging.getLogger("custdq.web")


class Bad(Exception):
    """A request refused at the edge: status, a Chinese message for people, a reason for the API."""

    def __init__(self, status: int, message: str, reason: str):
        super().__init__(reason)
        self.status, self.message, self.reason = status, message, reason


UNREADABLE = Bad(400, "请求中含有空字符、不成对的代理字符或无效的 UTF-8 编码，无法处理",
                 "the request holds a NUL character, an unpaired surrogate or invalid UTF-8")
TOO_LARGE = Bad(413, f"请求体超过 {MAX_BODY // 1024} KiB，无法处理", f"the body is larger than {MAX_BODY} bytes")
SERVER_ERROR = Bad(500, "服务器内部错误，请稍后重试；如仍出错请联系系统管理员", "internal error")


def is_api(scope: Scope) -> bool:
    return bytes(scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")).startswith(b"/api/")


def answer(scope: Scope, bad: Bad, templates: jinja2.Environment | None, close: bool = False) -> Response:
    headers = {"connection": "close"} if close else None
    if is_api(scope):
        return JSONResponse({"error": bad.message, "reason": bad.reason}, status_code=bad.status, headers=headers)
    if templates is None:
        return HTMLResponse(f"<!doctype html><title>{bad.status}</title><p>{bad.message}</p>", bad.status, headers)
    page = templates.get_template("error.html").render(user=None, status=bad.status, message=bad.message, csrf="")
    return HTMLResponse(page, status_code=bad.status, headers=headers)


def _clean(text: str) -> str:
    """The text, or Bad when it holds a NUL or a lone surrogate."""
    if "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text):
        raise UNREADABLE
    return text


def _utf8(raw: bytes) -> str:
    try:
        return _clean(raw.decode("utf-8"))  # strict: an encoded surrogate (ED A0 80) is invalid UTF-8 too
    except UnicodeDecodeError:
        raise UNREADABLE from None


def _form(raw: bytes) -> None:
    """Every name and value of an application/x-www-form-urlencoded text (the query string, a
    form body): percent-decoded bytes that must be clean UTF-8."""
    for pair in raw.split(b"&"):
        for part in pair.split(b"=", 1):
            _utf8(urllib.parse.unquote_to_bytes(part.replace(b"+", b" ")))


def _json(document: Any) -> None:
    """Every key and string of a parsed JSON document (iteratively: it may nest deep)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            _clean(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                _clean(k)
                pending.append(v)
        elif isinstance(value, list):
            pending.extend(value)


def check_head(scope: Scope) -> None:
    """The path, the query string and the headers (cookies decoded as Starlette decodes them)."""
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        _utf8(urllib.parse.unquote_to_bytes(bytes(raw_path)))
    _clean(scope.get("path", ""))
    _form(scope.get("query_string", b""))
    for name, value in scope.get("headers", []):
        if b"\x00" in name or b"\x00" in value:
            raise UNREADABLE
        if name == b"cookie":
            for k, v in cookie_parser(value.decode("latin-1")).items():
                _clean(k)
                _clean(v)


def check_body(scope: Scope, body: bytes) -> None:
    """The body: UTF-8 text without NUL (a form, a multipart form, JSON alike); a form's fields
    percent-decoded and a JSON document's strings parsed must be clean as well. A body that is
    not JSON is the route's to refuse (400)."""
    if not body:
        return
    text = _utf8(body)
    kind = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"").split(b";")[0].strip().lower()
    if kind == b"application/x-www-form-urlencoded":
        _form(body)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return
    _json(parsed)


def is_upload(scope: Scope) -> bool:
    return scope.get("method") == "POST" and bool(UPLOAD.fullmatch(bytes(scope.get("raw_path") or b"")))


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY) -> bytes | None:
    """The whole body, at most `limit` bytes (else Bad 413); None when the client went away."""
    length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise TOO_LARGE  # said before it is sent: not read at all
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Edge:
    """The outermost ASGI layer: headers on every answer, the body read and capped, hostile
    characters refused, a generic 500 for whatever escapes below."""

    def __init__(self, app: ASGIApp, templates: jinja2.Environment | None = None, upload_limit: int = MAX_BODY):
        self.app, self.templates, self.upload_limit = app, templates, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            try:
                check_head(scope)
                upload = is_upload(scope)
                body = await read_body(scope, receive, self.upload_limit + MAX_BODY if upload else MAX_BODY)
                if body is None:
                    return
                if not upload:
                    check_body(scope, body)
            except Bad as bad:
                await answer(scope, bad, self.templates, close=bad.status == 413)(scope, receive, send_with_headers)
                return
            await self.app(scope, _replay(body, receive), send_with_headers)
        except Exception:
            log.error("%s %s: internal error", scope.get("method"), "/api/..." if is_api(scope) else "page",
                      exc_info=True)
            if not started:
                await answer(scope, SERVER_ERROR, self.templates)(scope, receive, send_with_headers)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, as the app reads it, then the connection's own messages (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
