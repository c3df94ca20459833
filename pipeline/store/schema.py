"""Every table of the case store, on one MetaData (schema version SCHEMA_VERSION).

Versions: 1 runs; 2 adds the contact index and the hash-key fingerprint; 3 adds items,
item_events and suppressions; 4 adds night_dims (the dashboard's per-branch, channel and agent
figures of each night); 5 adds `items.reopen_reason`, `night_undo` (each night's changes, for
exact re-runs) and `rewinds`; 6 adds the web app's `users`, `api_tokens` and
`access_log`, and the items' indexes in deadline order; 7 the branch-scope index of the open
list; 8 `destructions` (retention); 9 the API tokens' public id and expiry and the access log's
`target` (the user name a login tried); 10 the agents' names and the 处理状态 index; 11 moves
the contact index into its own DuckDB file (pipeline.book.database). An older store is migrated on open
(pipeline.store.migrate, in pipeline/store/__init__.py), a newer one refused.

Personal data: keyed hashes and masked forms only, never a plaintext identity number, phone or
account. An item holds what the worklist shows (masked evidence, policy number, branch,
channel, agent code) and keyed hashes (`value_key`, `customer_key`, `group_keys`). Dates are
ISO text (YYYY-MM-DD), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 13  # 12: complaints (SPEC 9); 13: items.assignee, users.email, agents.team(_leader), attachments (issue 32)

metadata = sa.MetaData()
meta = sa.Table("custdq_meta", metadata,
                sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("value", sa.String(256), nullable=False))
runs = sa.Table(
    "runs", metadata,
    sa.Column("business_date", sa.String(10), primary_key=True),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("finished_at", sa.String(32), nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("rows_in_scope", sa.Integer, nullable=False),
    sa.Column("rows_quarantined", sa.Integer, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("list_due", sa.String(10), nullable=False),
    sa.Column("list_due_met", sa.Boolean, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
)

night_dims = sa.Table(
    "night_dims", metadata,
    sa.Column("business_date", sa.String(10), primary_key=True),
    sa.Column("dim", sa.String(10), primary_key=True),  # branch / channel / agent
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("policies", sa.Integer, nullable=False),  # in-scope policies checked tonight
    sa.Column("flagged", sa.Integer, nullable=False),  # of them, policies with a finding tonight
    sa.Column("findings", sa.Integer, nullable=False),  # tonight's findings on those policies
)


# Until schema 11 the contact index lived here (issue 29 moved it into its own DuckDB file,
# pipeline.book.database): these tables are kept only to move an older store's index out of them
# (pipeline.book.legacy); they are not part of `metadata`.
legacy = sa.MetaData()


def contact_table(name: str, meta_data: sa.MetaData = legacy) -> sa.Table:
    """The old main tier of the contact index."""
    return sa.Table(
        name, meta_data,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(1), nullable=False),  # P phone, B bank account
        sa.Column("value", sa.LargeBinary(16), nullable=False),  # HMAC of the E.164 phone / account digits
        sa.Column("customer", sa.LargeBinary(16), nullable=False),  # HMAC of the customer identity (SPEC 2.4)
        sa.Column("person", sa.LargeBinary(16)),  # HMAC of name + birth date + sex, when all are known
        sa.Column("policy_no", sa.Text, nullable=False),
        sa.Column("field", sa.String(20), nullable=False),  # applicant_phone / insured_phone / bank_account
        sa.Column("masked_value", sa.Text),
        sa.Column("masked_name", sa.Text),
        sa.Column("masked_id", sa.Text),
        sa.Column("branch", sa.Text),
        sa.Column("channel", sa.Text),
        sa.Column("agent_code", sa.Text),
        sa.Column("receipt_date", sa.String(10)),
        sa.Column("version", sa.String(11), nullable=False),  # business date + N (night) / B (book load)
        sa.Index(f"ix_{name}_value", "value"),
        sa.Index(f"ix_{name}_customer", "customer"),
        sa.Index(f"ix_{name}_policy", "policy_no"),
        sa.Index(f"ix_{name}_version", "version"),
    )


# the old index: the bulk-built main tier `contacts`; each night's rows as compressed Arrow
# segments in `contact_segments`; which (policy, version) rows a later version replaced in
# `contact_superseded`
contacts = contact_table("contacts")
contact_segments = sa.Table(
    "contact_segments", legacy,
    sa.Column("tier", sa.String(16), primary_key=True),  # a version (2026-11-20N) or "main"
    sa.Column("kind", sa.String(16), primary_key=True),  # rows | value | customer | policy
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
contact_superseded = sa.Table(
    "contact_superseded", legacy,
    sa.Column("policy_no", sa.Text, primary_key=True),
    sa.Column("version", sa.String(11), primary_key=True),  # this version of the policy ...
    sa.Column("by_version", sa.String(11), nullable=False, index=True),  # ... was replaced by this one
)


# --- the case lifecycle (pipeline.cases) --------------------------------------------------

D = sa.String(10)  # an ISO date
STAMP = sa.String(32)  # an ISO timestamp with its offset

items = sa.Table(
    "items", metadata,
    sa.Column("item_id", sa.String(18), primary_key=True),
    sa.Column("rule_code", sa.String(32), nullable=False),
    sa.Column("policy_no", sa.Text, nullable=False),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("field", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("evidence", sa.Text),  # masked (SPEC 5)
    sa.Column("branch", sa.Text),
    sa.Column("channel", sa.Text),
    sa.Column("agent_code", sa.Text),
    sa.Column("source_file", sa.Text),
    sa.Column("source_line", sa.BigInteger),
    sa.Column("cluster_id", sa.String(16)),
    sa.Column("cluster_size", sa.Integer),
    # the deadlines of the night the item was (last) raised: SPEC 4 "keeps the deadlines"
    sa.Column("first_seen", D, nullable=False),
    sa.Column("list_due", D, nullable=False),
    sa.Column("channel_due", D, nullable=False),
    sa.Column("cooling_off_end", D),
    sa.Column("due_date", D, nullable=False),
    sa.Column("provisional", sa.Boolean, nullable=False),
    sa.Column("last_seen", D, nullable=False),  # the last night the finding fired
    # lifecycle: state open/closed; how it was closed; the teams' disposition from the worklists
    sa.Column("state", sa.String(6), nullable=False),
    sa.Column("close_reason", sa.String(12)),  # corrected / legitimate / false / resolved
    sa.Column("closed_on", D),
    sa.Column("work_state", sa.String(8), nullable=False),  # 未处理 / 处理中 / 已完成
    sa.Column("result", sa.String(8)),  # 已更正 / 核实无误 / 虚假资料 / 无法联系
    sa.Column("note", sa.Text),  # 处理说明, digit runs masked before storing
    sa.Column("disposed_at", STAMP),
    sa.Column("disposed_by", sa.Text),
    # what a confirmation of legitimacy suppresses (keyed hashes, hex)
    sa.Column("value_key", sa.String(32)),  # HMAC of the value the finding is about
    sa.Column("customer_key", sa.String(32)),  # HMAC of the customer (shared-contact rules)
    sa.Column("group_keys", sa.Text),  # the customers sharing the value, comma-separated
    # why an item is open again after 已更正 (Chinese, for the teams), until it is raised anew
    sa.Column("reopen_reason", sa.Text),
    # the user of the item's branch a lead assigned it to (issue 32); None: unassigned
    sa.Column("assignee", sa.Text),
    # the open list in the orders the web app and `cases list` show it (deadline, branch, rule,
    # agent, policy), each with the item id last so a page ends at the same place every time (schema 6;
    # schema 5 had (state, due_date), (branch) and (policy_no))
    sa.Index("ix_items_open_due", "state", "due_date", "item_id"),
    sa.Index("ix_items_open_branch", "state", "branch", "due_date", "item_id"),
    sa.Index("ix_items_open_rule", "state", "rule_code", "due_date", "item_id"),
    sa.Index("ix_items_open_agent", "state", "agent_code", "due_date", "item_id"),
    sa.Index("ix_items_policy_item", "policy_no", "item_id"),
    sa.Index("ix_items_open_assignee", "state", "assignee", "due_date", "item_id"),  # 我的, 未分配 (schema 13)
    # a branch's open list by rule in deadline order, and every count the worklist shows within a
    # branch read from the index alone: rule or category (a category is a set of rules),
    # deadline, 处理状态, new tonight (schema 7)
    sa.Index("ix_items_open_scope", "state", "branch", "rule_code", "due_date", "work_state", "first_seen",
             "item_id"),
    # the worklist's counts by 处理状态 and a list of one 处理状态: 处理中 and 已完成 are rare, and a
    # capped count of them in ix_items_open_scope (where work_state is fifth) read the whole open
    # list (schema 10)
    sa.Index("ix_items_open_work", "state", "work_state", "branch", "rule_code", "due_date", "item_id"),
    # the dashboard's 处理进度 of the quarter's items and the quarterly report's items raised: a
    # range of first_seen read from the index alone, never the rows' evidence (schema 10)
    sa.Index("ix_items_seen", "first_seen", "branch", "state", "work_state", "result", "close_reason", "due_date",
             "disposed_at"),
)
# the agents' names as the latest roster gave them (masked like any text from a file), so the
# dashboard names agents, not only codes (schema 10)
agents = sa.Table(
    "agents", metadata,
    sa.Column("agent_code", sa.Text, primary_key=True),
    sa.Column("agent_name", sa.Text),
    sa.Column("branch", sa.Text),
    sa.Column("night", D, nullable=False),  # the night whose roster named the agent last
    # the roster's optional 团队 and 团队主管 (schema 13): shown on items, a filter of the list
    sa.Column("team", sa.Text),
    sa.Column("team_leader", sa.Text),
)
# complaints against agents and agencies (SPEC 9, `custdq complaints load`): the data of the
# complaint only, no customer's; one row a reference (loading it again changes nothing)
complaints = sa.Table(
    "complaints", metadata,
    sa.Column("complaint_ref", sa.Text, primary_key=True),
    sa.Column("agent_code", sa.Text, nullable=False, index=True),  # an agent's or an agency's code
    sa.Column("complaint_date", D, nullable=False),
    sa.Column("complaint_type", sa.Text, nullable=False),
    sa.Column("substantiated", sa.Boolean, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # the file (name only) and its line
    sa.Column("loaded_at", sa.String(32), nullable=False),
)
# evidence attached to an item (issue 32): the file itself, in the store with its item (destroyed
# with it by the retention purge); `attachment_id` random, never a guessable sequence
attachments = sa.Table(
    "attachments", metadata,
    sa.Column("attachment_id", sa.String(32), primary_key=True),
    sa.Column("item_id", sa.String(18), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),  # the file's name as uploaded, cleaned and masked
    sa.Column("kind", sa.String(8), nullable=False),  # pdf / jpeg / png, from the content
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("added_by", sa.Text, nullable=False),
    sa.Column("added_at", STAMP, nullable=False),
)
REPLACED_INDEXES = ("ix_items_open", "ix_items_branch", "ix_items_policy")  # dropped by the migration to schema 6

item_events = sa.Table(
    "item_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.String(18), nullable=False, index=True),
    sa.Column("at", STAMP, nullable=False),  # when (China time)
    sa.Column("who", sa.Text, nullable=False),  # "custdq run" or the importing person
    sa.Column("night", D),  # the business date of a run's event (re-runs take these back)
    sa.Column("action", sa.String(16), nullable=False),  # raised / reopened / resolved / disposed ...
    sa.Column("what", sa.Text, nullable=False),  # JSON: the fields changed, from -> to
    sa.Column("before", sa.Text),  # JSON: the item's fields before a run's change (for take-back)
    sa.Column("source", sa.Text),  # worklist file, its sha256 and row, for an import
    sa.Index("ix_item_events_night", "night"),
)

suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("rule_code", sa.String(32), primary_key=True),
    sa.Column("value_key", sa.String(32), primary_key=True),
    # the customer confirmed on that value (shared-contact rules), or the item id (other rules)
    sa.Column("subject_key", sa.String(32), primary_key=True),
    sa.Column("item_id", sa.String(18), nullable=False),  # the confirmation that created it
    sa.Column("at", STAMP, nullable=False),
    sa.Column("who", sa.Text, nullable=False),
)

# What each night changed in `items`, so that a re-run (or a rewind) can take the night back
# exactly (pipeline.cases.undo): one row per item the night raised (`before` NULL) or changed
# (`before`: JSON of the changed columns' earlier values), and one marker row per night
# (`item_id` "", `before` {"event_mark": the last event id before the night}). Kept for the
# latest `store.undo_nights` nights.
night_undo = sa.Table(
    "night_undo", metadata,
    sa.Column("night", D, primary_key=True),
    sa.Column("item_id", sa.String(18), primary_key=True),
    sa.Column("before", sa.Text),
)

# Nights taken back by `custdq run --rewind` (shown by `custdq runs list`): not part of the
# store's answer, a record of what the operator did.
rewinds = sa.Table(
    "rewinds", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("business_date", D, nullable=False),
    sa.Column("rewound_at", STAMP, nullable=False),
    sa.Column("by_night", D, nullable=False),  # the older night whose run rewound it
    sa.Column("manifest", sa.Text),  # the rewound night's run record, as it was
)


# --- the web app (pipeline.web, SPEC 8) ----------------------------------------------------

users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(12), nullable=False),  # branch / manager / compliance / admin
    sa.Column("branches", sa.Text, nullable=False),  # JSON list: a branch user's branches
    sa.Column("password_hash", sa.Text, nullable=False),  # Argon2id (argon2-cffi's encoded form)
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", STAMP, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False),  # wrong passwords in a row
    sa.Column("locked_until", STAMP),
    # a session belongs to the user's sessions of this number: signing out, or being disabled,
    # adds one, which ends every session cookie issued before (copies included)
    sa.Column("sessions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("email", sa.Text),  # where `custdq notify` sends the user's reminders (schema 13); None: none
)
TOKEN_DAYS = 90  # an API token's life unless `custdq users token --days` says otherwise
MAX_TOKEN_DAYS = 3650
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 of the token, hex
    sa.Column("user_name", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", STAMP, nullable=False),
    # schema 9: the id people name a token by (`custdq users tokens` / `revoke`; random, never
    # derived from the token) and when it stops working. Nullable only in a store migrated from
    # schema 8, where the migration fills both in (pipeline.store.migrate, in __init__.py)
    sa.Column("token_id", sa.String(16), nullable=False),
    sa.Column("expires_at", STAMP, nullable=False),
    sa.Index("ix_api_tokens_token_id", "token_id", unique=True),
)
# every request that showed or changed items, the report or users; the app only appends
access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", STAMP, nullable=False),
    sa.Column("user_name", sa.String(64)),  # None: nobody signed in (a refused request)
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),  # with its query string
    sa.Column("item_ids", sa.Text),  # the item ids shown or changed, comma-separated
    sa.Column("client", sa.Text),
    sa.Column("status", sa.Integer, nullable=False),
    # schema 9: the user name a login tried (masked by checks.masking.mask_text: people type
    # phones into login boxes), for the attempts that failed too; None for other requests
    sa.Column("target", sa.Text),
    sa.Index("ix_access_log_user", "user_name", "at"),
    sa.Index("ix_access_log_target", "target", "at"),
)


# --- retention (pipeline.retention, issue 19) -----------------------------------------------

# one row per purge: who destroyed what, when, under which policy; never purged itself
destructions = sa.Table(
    "destructions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", STAMP, nullable=False),
    sa.Column("by", sa.Text, nullable=False),
    sa.Column("as_of", D, nullable=False),
    sa.Column("policy_version", sa.String(16), nullable=False),  # a digest of the policy below
    sa.Column("policy", sa.Text, nullable=False),  # JSON: the retention settings applied
    sa.Column("counts", sa.Text, nullable=False),  # JSON: per table and reason, rows and oldest/newest dates
    sa.Column("digest", sa.String(64), nullable=False),  # HMAC-SHA-256 (the hash key) of the destroyed ids
    sa.Column("key_fingerprint", sa.String(16), nullable=False),
)
