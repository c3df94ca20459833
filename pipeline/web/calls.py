"""One request's frame, for every page and API call: who is asking (or 401), whether their role
may (or 403), the store connection, and the access-log row written after the answer, whatever
the answer was (SPEC 8)."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa
from starlette.requests import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from pipeline import clock
from pipeline.web import audit, security
from pipeline.web.users import User


class Refused(Exception):
    """An answer other than the page: status, a Chinese message for people, one for the API."""

    def __init__(self, status: int, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail or {}


NOT_FOUND = "问题件不存在"  # an item of another branch reads exactly like an unknown one
UNRECORDED = Refused(503, "访问记录暂时无法写入，为保证每次查看都有记录，本次请求未予处理，请稍后重试",
                     {"reason": "the access log could not be written: nothing is shown unrecorded"})


@dataclass
class Call:
    request: Request
    conn: sa.Connection
    user: User
    shown: list[str] = field(default_factory=list)  # item ids shown or changed, for the access log
    # the request's access-log row is already written, in the transaction of the change it made
    # (a disposition: pipeline.web.dispose), so the change is never saved without its row
    recorded: bool = False


def guarded(right: str | None, api: bool, logged: bool = True):
    """Wrap a handler `fn(call) -> Response` with authentication, the role's right and the
    access log. API calls authenticate with a bearer token, pages with the session (or the
    trusted proxy header)."""

    def wrap(fn: Callable[[Call], Response]):
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            if request.method == "POST":  # read here, in the event loop (capped at the edge); the handler runs on a thread
                request.state.body = await request.body()
                request.state.form = await request.form() if not api else None
            return await run_in_threadpool(_answer, fn, request)

        def _answer(fn, request: Request) -> Response:
            app = request.app.state
            shown: list[str] = []
            user: User | None = None
            call: Call | None = None
            try:
                with app.engine.begin() as conn:
                    user = (security.api_user(conn, request) if api
                            else security.browser_user(conn, request, app.web.trusted_user_header))
                    if user is None:
                        raise Refused(401, "请先登录")
                    if not api:  # a changed session is signed anew: the idle time starts again
                        request.session["seen"] = int(time.time())
                    if right is not None and not user.may(right):
                        raise Refused(403, "您的角色无权访问此页面")
                    if request.method == "POST" and not api and not security.csrf_ok(
                            request, request.state.form.get("csrf")):
                        raise Refused(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
                    call = Call(request, conn, user, shown)
                    response = fn(call)
            except Refused as exc:
                response = refusal(request, exc, api, user)
            except Exception:  # a bug: the edge answers 500; the look is on record all the same
                if logged and not (call and call.recorded):
                    _log(request, user, shown, 500)
                raise
            if call is not None and call.recorded:
                return response
            if logged and not _log(request, user, shown, response.status_code):
                return refusal(request, UNRECORDED, api, user)  # what it would have shown is not sent
            return response

        return handler

    return wrap


def refusal(request: Request, exc: Refused, api: bool, user: User | None) -> Response:
    if api:
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": exc.message, **exc.detail}, status_code=exc.status, headers=headers)
    if exc.status == 401:
        return RedirectResponse("/login", status_code=303)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"user": user, "message": exc.message, "status": exc.status,
                                "csrf": security.csrf_token(request)}, status_code=exc.status)


def log_row(request: Request, user: User | None, shown: list[str], status: int) -> dict:
    """The request's access-log row: its path and query masked (audit.masked_path), but for the
    item ids it shows."""
    client = request.client.host if request.client else None
    return audit.row(clock.stamp(), user.name if user else None, request.method,
                     audit.masked_path(request.url.path, request.url.query, shown), shown, client, status)


def _log(request: Request, user: User | None, shown: list[str], status: int) -> bool:
    """Write the request's access-log row; False when it could not be written."""
    return request.app.state.recorder.record(log_row(request, user, shown, status))


def json_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise Refused(400, "请求体不是 JSON", {"reason": "the body is not JSON"}) from None
    except ValueError:  # JSON, but a number Python will not read (an integer of more than 4,300 digits)
        raise Refused(422, "请求体中的数值过大", {"reason": "a number in the body is too large"}) from None
    if not isinstance(body, dict):
        raise Refused(400, "请求体不是 JSON 对象", {"reason": "the body is not a JSON object"})
    return body
