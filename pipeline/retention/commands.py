"""`custdq retention plan | purge | log` (issue 19, docs/retention.md): thin click commands over
pipeline.retention."""

from __future__ import annotations

import getpass
import json

import click

from pipeline import clock
from pipeline.settings import Settings
from pipeline.options import Commands, IsoDate, config_option, db_option, existing_store, reports_errors, say


@click.group(cls=Commands)
def retention():
    """What the case store keeps, for how long, and what was destroyed."""


def _policy_and_dates(cfg: Settings, as_of, future: bool = False):
    from pipeline.retention.policy import cutoffs, from_config

    policy = from_config(cfg)
    return policy, cutoffs(policy, as_of or clock.now().date(), future)


def _render(rows: list[dict]) -> str:
    from pipeline.cases.listing import render_frame
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["table", "reason", "rows", "oldest", "newest"])
    return render_frame(frame)


@retention.command("plan")
@click.option("--as-of", "as_of", type=IsoDate(),
              help="the day the periods are counted back from (default: today; a later day shows what a purge then would destroy)")
@db_option
@config_option
@reports_errors
def plan_command(as_of, db, config_path):
    """What a purge as of the date would destroy, per table and reason, changing nothing.

    Example: custdq retention plan --as-of 2026-12-31
    """
    from pipeline import store
    from pipeline.book import database
    from pipeline.retention.plan import figures

    engine, cfg = existing_store(db, config_path)
    policy, dates = _policy_and_dates(cfg, as_of, future=True)  # a plan changes nothing: any day may be asked
    index = database.open_existing(engine, store.resolve(db, cfg), cfg, store.existing_key(engine, db, cfg),
                                   read_only=True)
    try:
        with engine.connect() as conn:
            rows = figures(conn, dates, index)
    finally:
        if index is not None:
            index.close()
    click.echo(_render(rows))
    say(f"as of {dates.as_of} under policy {policy.version}: {sum(r['rows'] for r in rows)} row(s) would be "
        f"destroyed; nothing was changed (`custdq retention purge --as-of {dates.as_of}` destroys them)")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): the record says so
        return "unknown"


@retention.command("purge")
@click.option("--as-of", "as_of", type=IsoDate(), required=True, help="the day the periods are counted back from")
@click.option("--by", "by", metavar="NAME", help="who orders the destruction (default: the login name)")
@db_option
@config_option
@reports_errors
def purge_command(as_of, by, db, config_path):
    """Destroy what `retention plan` lists, in one transaction, and record the destruction.

    Example: custdq retention purge --as-of 2026-12-31 --by 合规部张三
    """
    from pipeline import store
    from pipeline.book import database
    from pipeline.retention.purge import purge

    engine, cfg = existing_store(db, config_path)
    policy, dates = _policy_and_dates(cfg, as_of)
    key = store.existing_key(engine, db, cfg)
    record = purge(engine, policy, dates, (by or _login_name()).strip()[:64] or "unknown", key,
                   cfg.lock_wait,
                   lambda: database.open_existing(engine, store.resolve(db, cfg), cfg, key))
    counts = json.loads(record["counts"])
    click.echo(_render(counts))
    say(f"destruction {record['id']} recorded: {sum(r['rows'] for r in counts)} row(s) destroyed as of "
        f"{record['as_of']} under policy {record['policy_version']} by {record['by']} (digest "
        f"{record['digest'][:16]}...); back-ups made before today still hold them (docs/retention.md)")
    if not record["reclaimed"]:
        say("warning: the store's file could not be rewritten (VACUUM) because another process held it; the "
            "rows are destroyed and their cells zeroed: run `custdq retention purge` again in a quiet hour "
            "to shrink the file")


@retention.command("log")
@db_option
@config_option
@reports_errors
def log_command(db, config_path):
    """Every destruction on record: when, by whom, as of which date, under which policy, what.

    Example: custdq retention log
    """
    from pipeline.retention.purge import records

    with existing_store(db, config_path)[0].connect() as conn:
        done = records(conn)
    for r in done:
        counts = json.loads(r["counts"])
        per_table: dict[str, int] = {}
        for c in counts:
            per_table[c["table"]] = per_table.get(c["table"], 0) + int(c["rows"])
        what = ", ".join(f"{t} {n}" for t, n in per_table.items()) or "nothing"
        click.echo(f"{r['id']}\t{r['at']}\t{r['by']}\tas of {r['as_of']}\tpolicy {r['policy_version']}\t{what}\t"
                   f"digest {r['digest']}")
    say(f"{len(done)} destruction(s) on record")
