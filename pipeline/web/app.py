"""`custdq serve`: the web app over the case store (SPEC 8). Starlette, Jinja2 pages rendered on
the server (no script of its own), run by uvicorn. Pages: /login, /items (the worklist),
/items/{id} (one item, its history and the disposition form), /access-log; the JSON API is
pipeline.web.api."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import tempfile
import time
import unicodedata
import urllib.parse
from pathlib import Path

import jinja2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from checks.catalogue import RULES
from checks.masking import mask_text
from pipeline import clock, logs
from pipeline.cases.quarterly import confirmed_false, quarter_bounds, write_report
from pipeline.errors import InputError
from pipeline.outputs.dashboard import charts
from pipeline.outputs.dashboard.page import ASSETS
from pipeline.outputs.dashboard.data import AGEING
from pipeline.outputs.dashboard.progress import PROGRESS
from pipeline.cases.labels import (ACTION_NAMES, CLOSE_NAMES, FIELD_NAMES, ROLE_NAMES, RULE_STATUS_NAMES,
                                     SEVERITY_NAMES, STATE_NAMES, STATUS_NAMES, changes, value_name)
from pipeline.cases.labels import RESULTS, REVIEW_STATE, STATES
from pipeline.outputs.worklists import COLUMNS, ROWS_PER_FILE, write_worklist
from pipeline import store
from pipeline.settings import Settings
from pipeline.web import api, audit, edge, logins, params, queries, security, users
from pipeline.web.calls import NOT_FOUND, UNRECORDED, Call, Refused, guarded
from pipeline.cases import evidence
from pipeline.web.dispose import assign_many, attach, bulk_dispose, dispose, review, version_of

HERE = Path(__file__).parent
HEADERS = {column: header for header, column, _ in COLUMNS if column}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROLE_TITLES = {"branch": "机构用户", "lead": "机构主管", "reviewer": "复核人员", "manager": "管理人员", "compliance": "合规人员",
               "admin": "系统管理员"}


def create_app(engine: sa.Engine, cfg: Settings, url: str) -> Starlette:
    web = cfg.web  # checked when the settings were loaded
    key_file = security.key_path(web.session_key_file, url)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.globals.update(HEADERS=HEADERS, ROLE_NAMES=ROLE_NAMES, SEVERITY_NAMES=SEVERITY_NAMES,
                       RULE_STATUS_NAMES=RULE_STATUS_NAMES, rule_label=charts.rule_label, STATUS_NAMES=STATUS_NAMES,
                       STATE_NAMES=STATE_NAMES, CLOSE_NAMES=CLOSE_NAMES, ACTION_NAMES=ACTION_NAMES,
                       FIELD_NAMES=FIELD_NAMES, ROLE_TITLES=ROLE_TITLES, RULES=RULES, STATES=STATES, RESULTS=RESULTS, REVIEW_STATE=REVIEW_STATE,
                       value_name=value_name, changes=changes, AGEING_LABELS=[label for label, _, _ in AGEING])
    secret = security.secret_key(key_file)
    routes = [
        Route("/", home), Route("/favicon.ico", no_icon), Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"]),
        Route("/items", worklist), Route("/items.xlsx", export), Route("/items/many", many_form, methods=["POST"]), Route("/items/{item_id}", item_page),
        Route("/items/{item_id}/disposition", disposition_form, methods=["POST"]),
        Route("/items/{item_id}/review", review_form, methods=["POST"]),
        Route("/items/{item_id}/attachments", attach_form, methods=["POST"]),
        Route("/items/{item_id}/attachments/{attachment_id}", attachment_file),
        Route("/dashboard", dashboard_page), Route("/report/quarterly", report_page), Route("/access-log", access_page), Route("/users", users_page),
        *api.ROUTES,
        # the dashboard's ECharts and drawing script, from the dashboard's own folder (before /static)
        Mount("/static/dashboard", StaticFiles(directory=ASSETS), name="dashboard-assets"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="custdq_session",
                   max_age=max(1, int(web.session_idle_seconds)), same_site="strict", https_only=web.https_only),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.recorder = audit.Recorder(store.sibling(engine, 1))  # the access log's one writer
        app.state.checks = logins.Checks(web.login_checks, web.login_queue)
        try:
            yield
        finally:
            app.state.checks.close()
            app.state.recorder.close()
            app.state.recorder.engine.dispose()
            app.state.writer.dispose()
            app.state.login_engine.dispose()

    app = App(routes=routes, middleware=middleware, lifespan=lifespan,
              exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.env = env
    app.upload_limit = cfg.evidence.max_bytes  # the edge lets an attachment's form be this large
    app.state.engine, app.state.cfg, app.state.web = engine, cfg, web
    # evidence is sealed with a key derived from the store's hash key (pipeline.cases.evidence)
    app.state.evidence_key = evidence.key_of(store.existing_key(engine, url, cfg))
    # dispositions, one at a time per process, write through their own two connections (the
    # lock's and the transaction's on PostgreSQL): never queued behind fifty readers for one
    app.state.writer = store.sibling(engine, 2)
    # logins count their attempts through connections of their own: a flood never takes the pages'
    app.state.login_engine = store.sibling(engine, web.login_checks)
    app.state.devices = logins.Devices(secret, web.login_failures, web.lockout_minutes * 60)
    app.state.limits = logins.Limits(web.login_per_address, web.login_per_user, web.login_window_seconds)
    app.state.templates = Jinja2Templates(env=env)
    return app


class App(Starlette):
    """The app with pipeline.web.edge outside everything Starlette adds (its 500 answer
    included): every answer gets the security headers, every request the edge's checks."""

    env: jinja2.Environment | None = None
    upload_limit: int = edge.MAX_BODY

    def build_middleware_stack(self) -> ASGIApp:
        return edge.Edge(super().build_middleware_stack(), self.env, self.upload_limit)


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route 404, a method not allowed 405, a form it cannot
    parse 400): JSON under /api/, the error page otherwise."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise RuntimeError(f"_http_error was handed {type(exc).__name__} (bug)")
    message = {404: "页面不存在", 405: "不支持此请求方法"}.get(exc.status_code, "请求无法处理")
    response = edge.answer(request.scope, edge.Bad(exc.status_code, message, str(exc.detail)),
                           request.app.env)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _server_error(request: Request, exc: Exception) -> Response:
    """A bug: the generic 500 (the edge logs the traceback, masked)."""
    return edge.answer(request.scope, edge.SERVER_ERROR, request.app.env)


SERVE_ENV = "CUSTDQ_SERVE"  # the store and config `custdq serve` hands its worker processes


def from_environment() -> Starlette:
    """uvicorn's app factory in each worker process (`web.workers` > 1)."""
    logs.configure(0)  # a spawned process: its log lines masked like the main process's
    settings = json.loads(os.environ[SERVE_ENV])
    engine, cfg = store.existing(settings["db"], settings["config"])
    return create_app(engine, cfg, store.resolve(settings["db"], cfg))


def _page(call: Call, name: str, context: dict, status: int = 200) -> Response:
    return call.request.app.state.templates.TemplateResponse(
        call.request, name, {"user": call.user, "csrf": security.csrf_token(call.request), **context},
        status_code=status)


async def no_icon(request: Request) -> Response:
    return Response(status_code=204)


async def home(request: Request) -> Response:
    return RedirectResponse("/items", status_code=303)


async def login(request: Request) -> Response:
    """Sign in. The password check runs on the checks' own threads (pipeline.web.logins), after
    the address's and the name's rate limits; every attempt is a row of the access log naming
    the user it tried (masked)."""
    state = request.app.state
    if request.method == "GET":
        return _login_page(request, None, 200)
    form = await request.form()
    name = users.login_name(form.get("name"))
    client = request.client.host if request.client else None
    if not security.csrf_ok(request, str(form.get("csrf") or "")):
        return await _login_refused(request, name, 403, "表单已过期，请重新登录")
    device = state.devices.device(request.cookies.get(logins.DEVICE_COOKIE), name)
    trusted = device is not None
    wait = state.limits.take(client, name, trusted)
    if wait:
        await asyncio.sleep(logins.HOLD)
        return await _login_refused(request, name, 429, f"登录尝试过于频繁，请 {wait} 秒后再试", wait)
    web = state.web
    state.limits.started(name)
    try:
        done = await state.checks.run(users.authenticate, state.login_engine, name, str(form.get("password", "")),
                                      clock.now(), web.login_failures, dt.timedelta(minutes=web.lockout_minutes),
                                      trusted)
    except logins.Busy as busy:
        state.limits.give_back(client, name, trusted)  # not checked: it does not count
        return await _login_refused(request, name, 503, "登录的人太多，请稍后再试", busy.retry_after)
    finally:
        state.limits.ended(name)
    if device is not None:
        state.devices.result(device, done.user is not None)
    if done.user is None:
        # one answer for an unknown user, a wrong password and a locked user: none tells names apart
        return await _login_refused(request, name, 401, f"用户名或密码错误（连续失败 {web.login_failures} 次后账号锁定 "
                                                        f"{web.lockout_minutes:g} 分钟）")
    state.limits.give_back(client, name, trusted)
    request.session.clear()
    request.session["user"] = done.user.name
    request.session["sessions"] = done.user.sessions
    request.session["since"] = int(time.time())  # the session ends web.session_max_hours after this
    security.csrf_token(request)  # a new token for the new session
    if not await state.checks.record(_log_login, request, done.user.name, 303, "/login", name):
        return _unrecorded(request)  # not signed in: the look could not be put on record
    response = RedirectResponse("/items" if done.user.may("items") else "/users", status_code=303)
    # this browser is the user's from now on: its logins count on their own (logins.Devices)
    response.set_cookie(logins.DEVICE_COOKIE, state.devices.issue(done.user.name), max_age=logins.DEVICE_DAYS * 86400,
                        path="/login", httponly=True, samesite="strict", secure=web.https_only)
    return response


def _login_page(request: Request, message: str | None, status: int, headers: dict | None = None) -> Response:
    return request.app.state.templates.TemplateResponse(request, "login.html", {
        "user": None, "message": message, "csrf": security.csrf_token(request)}, status_code=status, headers=headers)


async def _login_refused(request: Request, name: str, status: int, message: str,
                         retry_after: int | None = None) -> Response:
    if not await request.app.state.checks.record(_log_login, request, None, status, "/login", name):
        return _unrecorded(request)
    return _login_page(request, message, status, {"retry-after": str(retry_after)} if retry_after else None)


def _sign_out(request: Request, who: str | None) -> bool:
    if who:
        with request.app.state.engine.begin() as conn:
            users.end_sessions(conn, who)
    return _log_login(request, who, 303, "/logout")


def _log_login(request: Request, who: str | None, status: int, path: str, target: str | None = None) -> bool:
    """A login's row of the access log; `target`: the name typed (masked: people type phones).
    False when the row could not be written."""
    return request.app.state.recorder.record(audit.row(clock.stamp(), who, "POST", path, [],
                                                       request.client.host if request.client else None, status,
                                                       target=_target(target)))


def _target(name: str | None) -> str | None:
    """The name a login typed, as the access log keeps it: control characters dropped first (no
    NUL reaches the store, and none splits a number's digits away from the masking), then masked."""
    return mask_text("".join(c for c in name or "" if unicodedata.category(c) != "Cc")) or None


def _unrecorded(request: Request) -> Response:
    """A login or logout whose access-log row could not be written: refused, signed out."""
    request.session.clear()
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"user": None, "message": UNRECORDED.message, "status": UNRECORDED.status, "csrf": ""},
        status_code=UNRECORDED.status)


async def logout(request: Request) -> Response:
    form = await request.form()
    if security.csrf_ok(request, str(form.get("csrf", ""))):
        who = request.session.get("user")
        request.session.clear()
        if not await run_in_threadpool(_sign_out, request, who):
            return _unrecorded(request)  # signed out all the same
    return RedirectResponse("/login", status_code=303)


@guarded("items", api=False)
def worklist(call: Call) -> Response:
    web = call.request.app.state.web
    f = api.filters(call.request, web.page_size, user=call.user)
    today = clock.now().date()
    rows, total, more = queries.open_page(call.conn, call.user, f, today, web.count_limit)
    call.shown.extend(r["item_id"] for r in rows)
    query = {k: v for k, v in call.request.query_params.items() if k != "offset"}
    by_state = queries.state_counts(call.conn, call.user, f, today, web.count_limit)
    return _page(call, "items.html", {
        "items": rows, "total": total, "more": more, "f": f, "today": today.isoformat(), "by_state": by_state,
        "state_query": {k: v for k, v in query.items() if k != "work_state"},
        "branches": queries.branches(call.conn, call.user), "query": query,
        "categories": sorted({r.category for r in RULES.values()}), "sizes": queries.PAGE_SIZES,
        "may_assign": call.user.may("assign"), "may_dispose": call.user.may("dispose"),
        "assignable": users.assignable(call.conn, call.user) if call.user.may("assign") else [],
        "saved": call.request.query_params.get("saved")})


@guarded("items", api=False)
def many_form(call: Call) -> Response:
    """The list's selection: assigned (a lead) or settled at once (a branch user or lead), then
    the list again (`back`: its query string), or the refusal with its reasons."""
    form = call.request.state.form
    chosen = [str(v) for v in form.getlist("item")]
    action = str(form.get("action", ""))
    if not chosen:
        raise Refused(422, "请先勾选问题件", {"reason": "no item chosen"})
    if action == "assign" and call.user.may("assign"):
        to = str(form.get("assignee", ""))
        if not to:
            raise Refused(422, "请选择分派给谁（或“取消分派”）", {"reason": "no assignee chosen"})
        assign_many(call, {"item_ids": chosen, "assignee": None if to == "-" else to}, status=303)
        done = "assigned"
    elif action == "dispose" and call.user.may("dispose"):
        bulk_dispose(call, {"items": [{"item_id": i, "version": version_of(form.get(f"version-{i}"), True)}
                                      for i in chosen], "state": str(form.get("state", "")),
                            "result": str(form.get("result", "")), "note": str(form.get("note", ""))}, status=303)
        done = "disposed"
    else:
        raise Refused(403, "无权执行此操作", {"reason": "the role may not do this"})
    back = [(k, v) for k, v in urllib.parse.parse_qsl(str(form.get("back", ""))) if k != "saved"]
    return RedirectResponse("/items?" + urllib.parse.urlencode([*back, ("saved", done)]), status_code=303)


@guarded("items", api=False)
def item_page(call: Call) -> Response:
    return _item(call, None, 200)


def _item(call: Call, message: str | None, status: int) -> Response:
    item_id = call.request.path_params["item_id"]
    found = queries.item(call.conn, call.user, item_id)
    if found is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)
    cluster = queries.cluster(call.conn, call.user, found)
    call.shown.extend(c["item_id"] for c in cluster if c["visible"])
    return _page(call, "item.html", {"item": found, "events": queries.events(call.conn, item_id),
                                     "cluster": cluster, "message": message,
                                     "saved": call.request.query_params.get("saved") == "1",
                                     "may_dispose": call.user.may("dispose"), "may_review": call.user.may("review"),
                                     "attachments": evidence.listed(call.conn, item_id),
                                     "max_kib": call.request.app.state.cfg.evidence.max_bytes // 1024},
                 status)


def _item_form(call: Call, change) -> Response:
    """A form posted from an item's page: `change(item_id)`, then the page again (saved), or the
    page with why it was refused (409, 422)."""
    item_id = call.request.path_params["item_id"]
    try:
        change(item_id)
    except Refused as exc:
        if exc.status in (409, 422):
            return _item(call, exc.message, exc.status)
        raise
    return RedirectResponse(f"/items/{item_id}?saved=1", status_code=303)


@guarded("dispose", api=False)
def disposition_form(call: Call) -> Response:
    return _item_form(call, lambda item_id: dispose(call, item_id, call.request.state.form, form=True, status=303))


@guarded("review", api=False)
def review_form(call: Call) -> Response:
    return _item_form(call, lambda item_id: review(call, item_id, call.request.state.form, form=True, status=303))


@guarded("dispose", api=False)
def attach_form(call: Call) -> Response:
    def upload(item_id: str) -> None:
        sent = call.request.state.form.get("file")
        if not isinstance(sent, UploadFile):
            raise Refused(422, "请选择要上传的文件", {"reason": "no file"})
        content = sent.file.read(call.request.app.state.cfg.evidence.max_bytes + 1)
        attach(call, item_id, content, sent.filename, status=303)

    return _item_form(call, upload)


@guarded("items", api=False)
def attachment_file(call: Call) -> Response:
    """One attachment, as a download (never shown inline), for whoever may see its item; the
    download is a row of the access log naming the item."""
    item_id, attachment_id = call.request.path_params["item_id"], call.request.path_params["attachment_id"]
    if queries.item(call.conn, call.user, item_id) is None:
        raise Refused(404, NOT_FOUND)
    found = evidence.content(call.conn, item_id, attachment_id, call.request.app.state.evidence_key)
    if found is None:
        raise Refused(404, "附件不存在")
    call.shown.append(item_id)
    name = urllib.parse.quote(found["name"])
    return Response(bytes(found["content"]), media_type=evidence.MEDIA[found["kind"]], headers={
        "content-disposition": f"attachment; filename=evidence.{found['kind']}; filename*=UTF-8''{name}",
        "cache-control": "no-store"})


@guarded("access_log", api=False)
def access_page(call: Call) -> Response:
    who, since = params.USER.read(call.request), params.SINCE.read(call.request)
    total = audit.count(call.conn, who, since)
    rows = audit.entries(call.conn, who, since, limit=500, newest_first=True).to_dict("records")
    return _page(call, "access.html", {"rows": rows, "total": total, "who": who or "",
                                       "since": since.isoformat() if since else ""})


@guarded("users", api=False)
def users_page(call: Call) -> Response:
    return _page(call, "users.html", {"users": users.listing(call.conn, clock.now())})


@guarded("dashboard", api=False)
def dashboard_page(call: Call) -> Response:
    """The managers' figures live from the store, each row linking to the items behind it; a
    branch user sees their own branches' rows only."""
    board = api.board_of(call.conn, call.user, params.NIGHT.read(call.request))
    shown = None if call.user.every_branch else ("chart-progress", "chart-false")
    options = charts.options(board, shown) if board.night else {}
    return _page(call, "dashboard.html", {
        "d": api.figures_of(board, call.user), "PROGRESS": PROGRESS,
        "charts": charts.as_json(options), "drawn": set(options),
        "heights": {key: charts.height(key, board) for key in charts.CHARTS} if board.night else {}})


@guarded("items", api=False)
def export(call: Call) -> Response:
    """Every item the list's filters match, in its order, as the worklist xlsx the night writes."""
    f = api.filters(call.request, 50, user=call.user)
    f.limit, f.offset = ROWS_PER_FILE, 0
    page = queries.open_frame(call.conn, call.user, f, clock.now().date())
    call.shown.extend(page["item_id"].tolist())
    night = queries.latest_night(call.conn) or ""
    with tempfile.TemporaryDirectory(prefix="custdq-export-") as folder:
        path = Path(folder) / "worklist.xlsx"
        write_worklist(page, path, f.branch or "、".join(call.user.branches) or "全部机构", night)
        data = path.read_bytes()
    name = f"问题件清单-{night or clock.now().date().isoformat()}.xlsx"
    return Response(data, media_type=XLSX, headers={
        "content-disposition": f"attachment; filename=worklist.xlsx; filename*=UTF-8''{urllib.parse.quote(name)}"})


@guarded("report", api=False)
def report_page(call: Call) -> Response:
    """The quarterly report for the regulator (`custdq report quarterly`), as its xlsx."""
    quarter = (params.QUARTER.read(call.request) or "").strip().upper()
    this = clock.now().date()
    choices = [f"{y}Q{q}" for y in (this.year, this.year - 1) for q in (4, 3, 2, 1)
               if (y, q) <= (this.year, (this.month - 1) // 3 + 1)]
    if not quarter:
        return _page(call, "report.html", {"choices": choices, "message": None})
    try:
        start, end = quarter_bounds(quarter)
    except InputError:
        return _page(call, "report.html", {"choices": choices, "message": "季度应写作 YYYYQn，例如 2026Q3"}, 422)
    call.shown.extend(confirmed_false(call.conn, start, end)["item_id"].tolist())
    with tempfile.TemporaryDirectory(prefix="custdq-report-") as folder:
        path = Path(folder) / "report.xlsx"
        write_report(call.request.app.state.engine, quarter, path)
        data = path.read_bytes()
    name = urllib.parse.quote(f"虚假客户信息季度报告-{quarter}.xlsx")
    return Response(data, media_type=XLSX, headers={
        "content-disposition": f"attachment; filename=report-{quarter}.xlsx; filename*=UTF-8''{name}"})
