"""The web app (`custdq serve`, SPEC 8): users and roles, the access log, the pages and the JSON
API over the case store.

    roles      the roles' names (SPEC 8)
    users      users, roles and their rights, API tokens (expiring), logins (Argon2id, locked out)
    logins     password checks on threads of their own, per-address and per-user rate limits
    audit      the access log: every request that shows or changes items, the report or users
    edge       the outermost layer: bodies read and capped, NUL/surrogates refused, headers, 500s
    security   who is asking (session, bearer token, trusted proxy header), CSRF, headers
    calls      one request's frame: authentication, the role's right, the access-log row
    params     the query parameters, declared once: read, checked (422) and documented
    queries    the store read within the caller's scope (404 outside it), an item's version
    dispose    a disposition from the web, through pipeline.cases.disposition
    app, api   the pages (Jinja2 templates/) and the JSON API under /api/
    openapi    the API's OpenAPI document (/api/openapi.json)
    commands   `custdq serve`, `custdq users ...`, `custdq audit list`
"""
