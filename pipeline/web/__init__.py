"""The web app (`custdq serve`, SPEC 8): users and roles, the access log, the pages and the JSON
API over the case store.

    users      users, roles and their rights, API tokens (expiring), logins (Argon2id, locked out)
    logins     password checks on threads of their own, per-address and per-user rate limits
    audit      the access log: every request that shows or changes items, the report or users
    security   who is asking (session, bearer token, trusted proxy header), CSRF, headers
    calls      one request's frame: authentication, the role's right, the access-log row
    queries    the store read within the caller's scope (404 outside it), an item's version
    dispose    a disposition from the web, through pipeline.cases.disposition
    app, api   the pages (Jinja2 templates/) and the JSON API under /api/
    commands   `custdq serve`, `custdq users ...`, `custdq audit list`
"""
