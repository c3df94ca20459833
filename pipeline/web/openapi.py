"""The JSON API's OpenAPI 3.1 document, served at /api/openapi.json.

Its query parameters are pipeline.web.params' declarations, the very ones the handlers read and
check; its paths are pipeline.web.api.ROUTES' (tests/test_web_hostile.py holds the two equal:
every route and method documented, nothing documented that is not routed). The document is
public: it holds nothing that docs/web.md does not (no data, no names, no item id), and a client
generator or a test tool can read it before it has a token. GET routes answer HEAD as well
(Starlette's), which the document leaves out.
"""

from __future__ import annotations

from typing import Any

from pipeline.cases.disposition import MAX_NOTE
from pipeline.cases.items import ITEM_ID
from pipeline.cases.labels import RESULTS, STATES
from pipeline.web import params
from pipeline.web.edge import MAX_BODY

TEXT = {"type": ["string", "null"]}
ITEM_ID_PATTERN = "^" + ITEM_ID.pattern.replace(r"\b", "") + "$"  # pipeline.cases.items.ITEM_ID, the whole value
INT = {"type": ["integer", "null"]}
ITEM_FIELDS: dict[str, dict] = {
    "item_id": {"type": "string", "pattern": ITEM_ID_PATTERN}, "policy_no": {"type": "string"},
    "role": {"type": "string"}, "rule_code": {"type": "string"}, "severity": {"type": "string"},
    "category": {"type": "string"}, "field": TEXT, "detail": TEXT,
    "evidence": {**TEXT, "description": "masked; a branch user sees other branches' policy numbers masked"},
    "branch": TEXT, "channel": TEXT, "agent_code": TEXT, "first_seen": TEXT, "last_seen": TEXT, "list_due": TEXT,
    "channel_due": TEXT, "cooling_off_end": TEXT, "due_date": TEXT, "provisional": {"type": ["boolean", "null"]},
    "cluster_id": TEXT, "cluster_size": INT,
    "source_file": {**TEXT, "description": "the extract's file name (never its folders)"}, "source_line": INT,
    "state": {"type": "string", "enum": ["open", "closed"]}, "close_reason": TEXT, "closed_on": TEXT,
    "work_state": TEXT, "result": TEXT, "note": TEXT, "reopen_reason": TEXT, "assignee": TEXT, "team": TEXT, "team_leader": TEXT, "disposed_at": TEXT,
    "status": {"type": "string", "enum": ["new", "open", "reopened", "closed"]},
    "version": {"type": "integer", "description": "the id of the item's latest event (0: none yet)"},
}
EVENT = {"type": "object", "required": ["id", "at", "action"], "additionalProperties": False, "properties": {
    "id": {"type": "integer"}, "at": {"type": "string"}, "who": TEXT, "night": TEXT, "action": {"type": "string"},
    "what": {"description": "what changed: field -> [from, to]"}, "source": TEXT}}
ENTRY = {"type": "object", "required": ["id", "at", "method", "path", "status"], "additionalProperties": False,
         "properties": {
    "id": {"type": "integer"}, "at": {"type": "string"}, "user_name": TEXT, "method": {"type": "string"},
    "path": {"type": "string", "description": "decoded, personal numbers masked"}, "item_ids": TEXT,
    "client": {**TEXT, "description": "the client's address (the socket's peer, or X-Forwarded-For from a web.trusted_proxies)"},
    "status": {"type": "integer"},
    "target": {**TEXT, "description": "a login's or a refused login's: the user name it tried, masked"}}}
ROWS = {"type": "array", "items": {"type": "object"}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/{s}"} for s in statuses}


ERRORS = {400: "a NUL character, an unpaired surrogate or invalid UTF-8 in the request, or a body that is not JSON",
          401: "no valid bearer token", 403: "the role may not", 404: "no such item, or not the caller's branch",
          409: "the item changed since `version` was read", 413: f"a body over {MAX_BODY} bytes",
          422: "a parameter or field the API does not accept (with `reason`)",
          503: "a night holds the store, or the access log could not be written"}
ITEM_ID_PARAM = {"name": "item_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": ITEM_ID_PATTERN}}


def _query(declared: tuple[params.Param, ...]) -> list[dict]:
    return [{"name": p.name, "in": "query", "required": False, "description": p.description, "schema": p.schema()}
            for p in declared]


def _operation(summary: str, query: tuple[params.Param, ...], ok: dict, *errors: int, path_id: bool = False,
               body: dict | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary,
                          "parameters": ([ITEM_ID_PARAM] if path_id else []) + _query(query),
                          "responses": {"200": ok, **_errors(400, 401, 403, 413, 422, 503, *errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


STATE = {"type": ["string", "null"], "enum": ["", *STATES, None], "description": "处理状态 (empty: 未处理)"}
RESULT = {"type": ["string", "null"], "enum": ["", *RESULTS, None], "description": "处理结果"}
NOTE = {"type": ["string", "null"], "maxLength": MAX_NOTE, "pattern": params.NO_NUL, "description": "处理说明, stored masked"}
ATTACHMENT = {"type": "object", "additionalProperties": False,
              "required": ["attachment_id", "name", "kind", "size", "added_by", "added_at", "href"], "properties": {
                  "attachment_id": TEXT, "name": TEXT, "kind": {"type": "string", "enum": ["pdf", "jpeg", "png"]},
                  "size": {"type": "integer"}, "added_by": TEXT, "added_at": TEXT,
                  "href": {**TEXT, "description": "the file, for a signed-in browser (each download is logged)"}}}
DISPOSITION = {"type": "object", "required": ["version"], "additionalProperties": False, "properties": {
    "state": STATE, "result": RESULT, "note": NOTE,
    "version": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                "description": "the item's `version` as read: 409 when it changed since"}}}


REVIEW = {"type": "object", "required": ["decision", "version"], "additionalProperties": False, "properties": {
    "decision": {"type": "string", "enum": ["approve", "return"],
                 "description": "approve: the item closes as its result says; return: back to 处理中"},
    "reason": {"type": ["string", "null"], "maxLength": MAX_NOTE, "pattern": params.NO_NUL,
               "description": "why it is returned (required to return: some text besides spaces), stored masked"},
    "version": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                "description": "the item's `version` as read: 409 when it changed since"}},
    "oneOf": [{"properties": {"decision": {"const": "approve"}}},
              {"required": ["reason"], "properties": {"decision": {"const": "return"},
                                                      "reason": {"type": "string", "pattern": "\\S"}}}]}


ID = {"type": "string", "minLength": 1, "maxLength": 40, "pattern": params.NO_NUL}
ASSIGN = {"type": "object", "additionalProperties": False, "oneOf": [{"required": ["item_ids"]}, {"required": ["filter"]}],
          "properties": {
    "assignee": {"type": ["string", "null"], "minLength": 1, "maxLength": 64, "pattern": params.NO_NUL,
                 "description": "a branch user or lead of every item's branch; null: unassigned"},
    "item_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 1000},
    "filter": {"type": "object", "additionalProperties": False,
               "properties": {p.name: p.schema() for p in params.SELECTING},
               "description": "the list's filters (those of GET /api/items): every open item they match, up to 1,000"}}}
BULK = {"type": "object", "required": ["items"], "additionalProperties": False, "properties": {
    "items": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
        "type": "object", "required": ["item_id", "version"], "additionalProperties": False,
        "properties": {"item_id": ID, "version": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}}},
    "state": STATE, "result": RESULT, "note": NOTE}}
MANY = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": _ref("Item")}}}


def document() -> dict:
    """The OpenAPI document of pipeline.web.api.ROUTES."""
    paths = {
        "/api/items": {"get": _operation(
            "the open items the caller may see, filtered, sorted and paged", params.ITEM_FILTERS,
            _json({"type": "object", "required": ["items", "total", "total_more", "next"], "properties": {
                "items": {"type": "array", "items": _ref("Item")},
                "total": {"type": "integer", "description": "exact up to web.count_limit"},
                "total_more": {"type": "boolean", "description": "more match than web.count_limit"},
                "next": {"type": "boolean", "description": "another page follows"}}}, "a page of items"))},
        "/api/items/{item_id}": {"get": _operation(
            "one item with its events", (), _json(_ref("ItemWithEvents"), "the item"),
            404, path_id=True)},
        "/api/items/{item_id}/disposition": {"post": _operation(
            "settle an item (branch users, their branches): the checks of `cases import`", (),
            _json(_ref("Item"), "the item after"), 404, 409, path_id=True, body=DISPOSITION)},
        "/api/items/assign": {"post": _operation(
            "assign items to a user of their branch (leads; one transaction, refused whole)", (),
            _json(MANY, "the items after"), 404, body=ASSIGN)},
        "/api/items/disposition": {"post": _operation(
            "one disposition for many items (branch users and leads; one transaction, each item its own event, "
            "version-checked, refused whole with each refused item's reason)", (),
            _json(MANY, "the items after"), 404, 409, body=BULK)},
        "/api/items/{item_id}/review": {"post": _operation(
            "approve or return a settled item waiting in 待复核 (reviewers, their branches; never the settler)", (),
            _json(_ref("Item"), "the item after"), 404, 409, path_id=True, body=REVIEW)},
        "/api/dashboard": {"get": _operation(
            "the dashboard's figures within the caller's scope", (params.NIGHT,),
            _json({"type": "object", "required": ["night", "branches", "ageing"], "properties": {
                "night": TEXT, "as_of": {**TEXT, "description": "the day ageing and overdue are counted as of (today)"},
                "quarter": {**TEXT, "description": "the quarter of as_of (YYYYQn)"},
                "nights": {"type": "integer", "description": "the nights of the trend window (up to 30)"},
                "branches": ROWS, "ageing": ROWS, "tonight": {"type": "object"}, "rules": ROWS,
                "agents": ROWS, "rule_trend": ROWS,
                "progress": {**ROWS, "description": "per branch, the quarter's items by where they stand, a 合计 last"},
                "false_by_branch": ROWS, "false_by_agent": ROWS}}, "the figures"))},
        "/api/access-log": {"get": _operation(
            "the access log (compliance)", params.ACCESS_FILTERS,
            _json({"type": "object", "required": ["entries"],
                   "properties": {"entries": {"type": "array", "items": _ref("Entry")}}}, "the rows, oldest first"))},
        "/api/openapi.json": {"get": {"summary": "this document (public)", "security": [],
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"),
                                                    **_errors(400, 413)}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "custdq JSON API", "version": "1",
                 "description": "The case store's items, dispositions, dashboard and access log (docs/web.md). "
                                "A NUL character, an unpaired surrogate or invalid UTF-8 anywhere in a request "
                                f"answers 400, a body over {MAX_BODY} bytes 413."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from `custdq users token NAME`"}},
            # every property an answer holds is here, and no other (tests/test_web_hostile.py)
            "schemas": {"Item": {"type": "object", "required": list(ITEM_FIELDS), "additionalProperties": False,
                                 "properties": ITEM_FIELDS},
                        "ItemWithEvents": {"type": "object", "required": [*ITEM_FIELDS, "events", "attachments"],
                                           "additionalProperties": False, "properties": {
                                               **ITEM_FIELDS, "events": {"type": "array", "items": _ref("Event")},
                                               "attachments": {"type": "array", "items": ATTACHMENT}}},
                        "Event": EVENT, "Entry": ENTRY,
                        "Error": {"type": "object", "required": ["error"], "properties": {
                            "error": {"type": "string", "description": "for people, in Chinese"},
                            "reason": TEXT, "version": {"type": "integer"}}}},
            "responses": {str(s): _json(_ref("Error"), why) for s, why in ERRORS.items()},
        },
    }
