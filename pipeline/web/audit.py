"""The access log (SPEC 8): every request that shows or changes items, the report or users, one
row each: who, when, method and path, the item ids shown or changed, the client's address and
the status code. The app only ever appends to it; `compliance` reads it (web, API and
`custdq audit list`). A path's query string is kept as sent: no query parameter carries
personal data (filters are rule codes, branches, states and dates)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from pipeline.store.schema import access_log

def record(conn: sa.Connection, at: str, user: str | None, method: str, path: str, item_ids: list[str],
           client: str | None, status: int) -> None:
    ids = ",".join(item_ids)  # all of them, an export's too: who looked at which record
    conn.execute(access_log.insert().values(at=at, user_name=user, method=method, path=path[:2000],
                                            item_ids=ids or None, client=client, status=status))


COLUMNS = ["id", "at", "user_name", "method", "path", "item_ids", "client", "status"]


def entries(conn: sa.Connection, user: str | None = None, since: dt.date | None = None,
            limit: int | None = None, offset: int = 0) -> pd.DataFrame:
    """The access log, oldest first; `since`: from that day (China time) on."""
    q = sa.select(*[access_log.c[c] for c in COLUMNS]).order_by(access_log.c.id)
    if user:
        q = q.where(access_log.c.user_name == user)
    if since:
        q = q.where(access_log.c.at >= since.isoformat())
    if limit is not None:
        q = q.limit(limit).offset(offset)
    result = conn.execute(q)
    return pd.DataFrame(result.fetchall(), columns=COLUMNS)
