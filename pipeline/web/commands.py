"""`custdq serve`, `custdq users ...` and `custdq audit list` (SPEC 1, 8): thin click commands over
pipeline.web. The web stack (Starlette, uvicorn, argon2) is imported only by these commands."""

from __future__ import annotations

import json
import os
import sys

import click

from pipeline import clock
from pipeline.errors import InputError
from pipeline.options import Commands, IsoDate, config_option, db_option, existing_store, reports_errors, say
from pipeline.store.schema import MAX_TOKEN_DAYS, TOKEN_DAYS
from pipeline.web.roles import ROLES


@click.command()
@db_option
@click.option("--host", default=None, help="address to listen on (default: web.host, 127.0.0.1)")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="port (default: web.port, 8080)")
@config_option
@reports_errors
def serve(db, host, port, config_path):
    """The teams' and managers' web app and JSON API over the case store (docs/web.md).

    Example: custdq serve --db sqlite:///.custdq/cases.db --port 8080
    """
    from pipeline import store
    from pipeline.web import security, serving
    from pipeline.web.app import SERVE_ENV, create_app

    engine, cfg = existing_store(db, config_path)
    web = cfg.web  # every setting was checked as the settings loaded: exit 2 before any worker starts
    security.secret_key(security.key_path(web.session_key_file, store.resolve(db, cfg)))  # made, or checked
    store.existing_key(engine, db, cfg)  # the store's hash key, which evidence is sealed with: here, and its own
    host = host or web.host
    port = port or web.port
    workers = web.workers
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    say(f"serving the case store {store.shown_url(store.resolve(db, cfg))} on http://{shown}:{port}/ "
        f"({workers} worker process{'es' if workers > 1 else ''}; Ctrl-C stops)")
    # X-Forwarded-For only from the proxies listed (uvicorn's own default believes 127.0.0.1)
    proxies = list(web.trusted_proxies)
    options = {"host": host, "port": port, "log_level": "warning", "access_log": False, "server_header": False,
               "proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or None}
    if workers > 1:  # each worker process opens the store itself
        engine.dispose()
        os.environ[SERVE_ENV] = json.dumps({"db": db, "config": config_path})
        serving.run("pipeline.web.app:from_environment", workers, **options)
    else:
        serving.run(create_app(engine, cfg, store.resolve(db, cfg)), 1, **options)


@click.group(cls=Commands)
def users():
    """The web app's users and API tokens."""


def _password() -> str:
    """The new password, twice: prompted on a terminal, else two lines of standard input."""
    if sys.stdin.isatty():
        return click.prompt("password", hide_input=True, confirmation_prompt=True)
    first, second = sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
    if first != second:
        raise InputError("the two passwords read from standard input differ")
    return first


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--branch", "branches", multiple=True, metavar="B",
              help="a branch user's or reviewer's branch (repeatable), as the extracts write it; one no night has "
                   "seen is refused")
@click.option("--new-branch", "new_branch", is_flag=True,
              help="accept a --branch no night has seen yet (a new branch whose first night is to come)")
@click.option("--email", default=None, metavar="ADDRESS", help="where `custdq notify` sends the user's reminders")
@db_option
@config_option
@reports_errors
def users_add(name, role, branches, new_branch, email, db, config_path):
    """Create a user; the password (at least 10 characters) is read twice from standard input (or
    prompted on a terminal).

    Example: custdq users add 张三 --role branch --branch 广东分公司 (the password twice on standard input)
    """
    from pipeline.web.users import add_user

    password = _password()
    engine = existing_store(db, config_path)[0]
    with engine.begin() as conn:
        user = add_user(conn, name, role, list(branches), password, clock.stamp(), new_branch, email)
    say(f"user {user.name} added ({user.role}{': ' + ', '.join(user.branches) if user.branches else ''})")


@users.command("email")
@click.argument("name")
@click.argument("address", required=False)
@db_option
@config_option
@reports_errors
def users_email(name, address, db, config_path):
    """Set (or, without ADDRESS, remove) the e-mail address `custdq notify` sends the user's
    reminders to.

    Example: custdq users email 张三 zhangsan@example.com
    """
    from pipeline.web.users import set_email

    engine = existing_store(db, config_path)[0]
    with engine.begin() as conn:
        set_email(conn, name, address)
    say(f"user {name}: {'reminders to ' + address if address else 'no reminders by e-mail'}")


@users.command("token")
@click.argument("name")
@click.option("--days", type=click.IntRange(1, MAX_TOKEN_DAYS), default=TOKEN_DAYS, show_default=True,
              help="days until the token stops working")
@db_option
@config_option
@reports_errors
def users_token(name, days, db, config_path):
    """Print a new API bearer token for the user as the last line (stored hashed: shown once),
    after its id and expiry.

    Example: custdq users token 张三 --days 30
    """
    from pipeline.web.users import new_token

    with existing_store(db, config_path)[0].begin() as conn:
        made = new_token(conn, name, clock.now(), days)
    say(f"a new API token for {name}, id {made.token_id}, expires {made.expires_at} "
        "(shown once; send it as 'Authorization: Bearer <token>'):")
    click.echo(made.token)


@users.command("tokens")
@click.argument("name")
@db_option
@config_option
@reports_errors
def users_tokens(name, db, config_path):
    """A user's API tokens: id, created, expires (never the token or its hash).

    Example: custdq users tokens 张三
    """
    import pandas as pd

    from pipeline.cases.listing import render_frame
    from pipeline.web.users import tokens

    with existing_store(db, config_path)[0].connect() as conn:
        rows = tokens(conn, name, clock.now())
    click.echo(render_frame(pd.DataFrame(rows, columns=["token_id", "created_at", "expires_at", "expired"])))
    say(f"{len(rows)} token(s) of {name}; `custdq users revoke TOKEN_ID` revokes one")


@users.command("revoke")
@click.argument("token_id")
@db_option
@config_option
@reports_errors
def users_revoke(token_id, db, config_path):
    """Revoke one API token: it answers 401 from now on.

    Example: custdq users revoke 3f9a1c0b7d2e
    """
    from pipeline.web.users import revoke

    with existing_store(db, config_path)[0].begin() as conn:
        name = revoke(conn, token_id)
    say(f"token {token_id.strip()} of {name} revoked")


@users.command("list")
@db_option
@config_option
@reports_errors
def users_list(db, config_path):
    """The users, their roles, branches, whether they are disabled, their working API tokens and
    when the first of those expires.

    Example: custdq users list
    """
    import pandas as pd

    from pipeline.cases.listing import render_frame
    from pipeline.web.users import listing

    with existing_store(db, config_path)[0].connect() as conn:
        rows = listing(conn, clock.now())
    click.echo(render_frame(pd.DataFrame(rows, columns=["name", "role", "branches", "disabled", "created_at",
                                                        "tokens", "token_expires"])))


@users.command("disable")
@click.argument("name")
@db_option
@config_option
@reports_errors
def users_disable(name, db, config_path):
    """Disable a user: their sessions and API tokens stop working at once.

    Example: custdq users disable 张三
    """
    from pipeline.web.users import disable

    with existing_store(db, config_path)[0].begin() as conn:
        disable(conn, name)
    say(f"user {name} disabled; their sessions and tokens no longer work")


@click.group(cls=Commands)
def audit():
    """The web app's access log."""


PATH_SHOWN = 80  # characters of a path `audit list` shows (the API and the page show it whole)


@audit.command("list")
@click.option("--user", "who", metavar="NAME", help="only this user's requests and the logins that tried the name")
@click.option("--since", type=IsoDate(), help="from this day on (China time)")
@db_option
@config_option
@reports_errors
def audit_list(who, since, db, config_path):
    """Every request that showed or changed items, the report or users: who, when, what, from where;
    with --user, also the logins that tried that name (the `target` column).

    Example: custdq audit list --user 张三 --since 2026-11-01
    """
    from checks.masking import mask_text
    from pipeline.cases.listing import render_frame
    from pipeline.web.audit import entries

    with existing_store(db, config_path)[0].connect() as conn:
        log = entries(conn, who, since)
    # readable in a terminal: the short columns first, the path cut at PATH_SHOWN characters, the
    # item ids (a page's fifty) last, where they pad nothing
    shown = log[["id", "at", "user_name", "method", "status", "client", "target", "path", "item_ids"]].copy()
    shown["path"] = shown["path"].map(lambda p: p if len(p) <= PATH_SHOWN else p[:PATH_SHOWN - 1] + "…")
    click.echo(render_frame(shown))
    whose = f" by or against {mask_text(who)}" if who else ""  # masked like the log's targets: a phone typed as a name
    say(f"{len(log)} request(s) on record{whose}{' since ' + since.isoformat() if since else ''}")


@click.command()
@click.option("--as-of", "as_of", type=IsoDate(), default=None,
              help="the day the reminders are of (default: today, China time)")
@click.option("--dry-run", "dry_run", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="write each message to DIR as an .eml file instead of sending it")
@db_option
@config_option
@reports_errors
def notify(as_of, dry_run, db, config_path):
    """Send each user one message of their new, soon-due and overdue items, and each branch's
    reviewers the items waiting for them (SMTP relay: notify.smtp); run by the scheduler after
    the night or each morning. Exit 1 when the relay refused a message.

    Example: custdq notify --dry-run out/notify
    """
    from pathlib import Path

    from pipeline.web.notify import notify as send

    engine, cfg = existing_store(db, config_path)
    day = as_of or clock.now().date()
    report = send(engine, cfg, day, Path(dry_run) if dry_run else None)
    verb = "written to " + dry_run if dry_run else "sent"
    say(f"notify {day.isoformat()}: {len(report.sent)} message(s) {verb}, {len(report.failed)} refused by the relay")
    for user, why in report.failed:
        say(f"warning: the message to {user} was refused: {why}")
    if report.without_email:
        say(f"warning: {len(report.without_email)} user(s) with items to do have no e-mail address "
            f"(custdq users email NAME ADDRESS): {', '.join(report.without_email[:20])}")
    if report.failed:
        sys.exit(1)
