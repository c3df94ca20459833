"""The `custdq` command (SPEC 1). Thin click commands: parse options, call one library
function, turn custdq's exceptions into exit codes (README "Exit codes")."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from pipeline import __version__, logs
from pipeline.errors import ExitCode
from pipeline.night import engines
from pipeline.options import (Commands, IsoDate, OneLineErrors, config_option, db_option, existing_store, reports_errors,
                              say)
from pipeline.retention.commands import retention
from pipeline.web.commands import audit, notify, serve, users


@click.group(cls=OneLineErrors)
@click.version_option(__version__, prog_name="custdq")
@click.option("-v", "--verbose", count=True,
              help="more detail on stderr: -v stage details and counts, -vv debug lines and SQL statements "
                   "(long digit runs are masked in every log line)")
def cli(verbose):
    """custdq: nightly data-quality checks of life-insurance customer information.

    Example: custdq run data/samples/policies_sample.csv --business-date 2026-11-20 --agents data/samples/agents_sample.csv
    """
    logs.configure(verbose)


@cli.command()
@click.argument("extracts", nargs=-1, required=True, metavar="EXTRACT...")
@click.option("--business-date", "business_date", type=IsoDate(), required=True, help="the business date T")
@click.option("--agents", metavar="FILE", help="agent roster (SPEC 2.2)")
@click.option("--out", "out_dir", metavar="DIR", help="output folder (default: out/<business-date>/)")
@db_option
@config_option
@click.option("--engine", type=click.Choice(engines.NAMES), default="local", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="no progress output")
@click.option("--rewind", is_flag=True,
              help="T is earlier than the store's latest night: take the later nights back first (newest first); "
                   "they must then be run again")
@click.option("--new-store", "new_store", is_flag=True,
              help="start a new case store even where another store with nights is near it (the same folder, "
                   "or the default store's in a folder above); without it such a store is refused as a mistyped "
                   "--db")
@click.option("--allow-future-date", "allow_future", is_flag=True,
              help="accept a business date after today (China time); without it such a date is refused, as it "
                   "would make every real night before it an older night")
@reports_errors
def run(extracts, business_date, agents, out_dir, db, config_path, engine, quiet, rewind, new_store, allow_future):
    """Run the nightly job for business date T over one or more policy extracts.

    Re-running T replaces everything an earlier run of T did (SPEC 7).

    Example: custdq run data/samples/policies_sample.csv --business-date 2026-11-20
    """
    from pipeline.night import gatehost

    host = gatehost.early()  # the expectations gate's process starts its slow import now, on the other core
    try:
        from pipeline.night.run import NightRequest, run_night

        result = run_night(NightRequest(list(extracts), business_date, out_dir, db, config_path, agents, engine,
                                        quiet, rewind, new_store, allow_future))
    finally:
        if host is not None:
            host.close()
    for line in result.summary():
        click.echo(line, err=True)
    if result.gate_failed:
        sys.exit(ExitCode.FAILED)


@cli.command()
@click.option("--rows", type=click.IntRange(min=0), required=True, help="number of policies")
@click.option("--seed", type=int, required=True, help="random seed (same seed, same file)")
@click.option("--out", "out_path", required=True, metavar="FILE", help=".csv, .xlsx or .parquet")
@click.option("--defect-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="share of (new) rows given an injected defect")
@click.option("--encoding", type=click.Choice(["utf-8", "utf-8-sig", "gbk", "gb18030"]), default="utf-8",
              show_default=True, help="text encoding for .csv")
@click.option("--business-date", "business_date", type=IsoDate(), default="2026-11-20", show_default=True,
              help="issue dates fall in the weeks before this date (required with --after)")
@click.option("--agents-out", metavar="FILE", help="also write the matching agent roster (CSV)")
@click.option("--complaints-out", metavar="FILE", help="also write complaints about those agents (CSV, SPEC 9)")
@click.option("--after", "after", multiple=True, metavar="EXTRACT",
              help="make a later night against this earlier extract; several: --after A --after B (oldest first)")
@click.option("--recurring", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="with --after: share of new policies whose applicant is an earlier customer")
@click.option("--resend", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="with --after: share of rows that are earlier policies sent again")
@click.option("--changed", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="with --after: share of re-sent policies with a new phone or bank account")
@click.option("--corrected", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="with --after: share of re-sent policies whose earlier defects are corrected")
@reports_errors
def sample(rows, seed, out_path, defect_rate, encoding, business_date, agents_out, complaints_out, after, recurring,
           resend, changed, corrected):
    """Write a realistic synthetic policy extract (no real personal data); with --after, the
    extract of a later night: new policies numbered after the earlier ones, recurring customers,
    and re-sent earlier policies, some changed, some corrected.

    Example: custdq sample --rows 2000 --seed 20261120 --out data/samples/policies_sample.csv

    Example: custdq sample --rows 2000 --seed 20261123 --after night1.csv --business-date 2026-11-23 --out night2.csv
    """
    from pipeline.sample import write_sample

    if after and click.get_current_context().get_parameter_source("business_date") == ParameterSource.DEFAULT:
        raise click.UsageError("--after needs --business-date (the later night's date)")
    if changed + corrected > 1:
        raise click.UsageError("--changed and --corrected are shares of the re-sent policies: together at most 1")
    info = write_sample(rows, seed, out_path, defect_rate=defect_rate, encoding=encoding,
                        business_date=business_date, agents_out=agents_out, complaints_out=complaints_out,
                        after=list(after), shares=dict(recurring=recurring, resend=resend, changed=changed,
                                                       corrected=corrected))
    detail = ""
    if after:
        detail = (f" ({info['new']} new, {info['recurring']} of them for earlier customers; {info['resent']} "
                  f"re-sent: {info['corrected']} corrected, {info['changed_phone']} with a new phone, "
                  f"{info['changed_account']} with a new account)")
    click.echo(f"custdq: wrote {info['rows']} rows to {out_path}{detail}", err=True)


@cli.group(cls=Commands)
def index():
    """The book-wide contact index (phones and accounts of every customer, keyed hashes only)."""


@index.command("load")
@click.argument("books", nargs=-1, required=True, metavar="BOOK...")
@click.option("--as-of", "as_of", type=IsoDate(), help="the date the book was extracted (default: today)")
@click.option("--out", "out_dir", metavar="DIR", help="quarantine and manifest (default: out/index-load-<as-of>/)")
@db_option
@config_option
@click.option("--engine", "engine", type=click.Choice(engines.NAMES), default="local", show_default=True,
              help="where the book's rows are read, checked and hashed (spark: settings under `spark`)")
@click.option("--new-store", "new_store", is_flag=True,
              help="start a new case store even where another store with nights is near it (as `custdq run`)")
@reports_errors
def index_load(books, as_of, out_dir, db, config_path, engine, new_store):
    """Seed the contact index from a full customer-book extract (policy-extract columns).

    Example: custdq index load book_2026-11.csv --as-of 2026-11-19

    Example: custdq index load book_part1.csv book_part2.csv --as-of 2026-11-19 --engine spark
    """
    from pipeline.bookload import load_book
    from pipeline.clock import now

    as_of = as_of or now().date()
    m = load_book(list(books), as_of, out_dir, db, config_path, progress=lambda s: click.echo(s, err=True),
                  engine_name=engine, new_store=new_store)
    click.echo(f"custdq: index load: {m['rows_read']} rows read, {m['contact_rows_written']} contact rows "
               f"written; the index holds {m['index']['rows']} rows; manifest in {m['out_dir']}",
               err=True)


@index.command("compact")
@db_option
@config_option
@reports_errors
def index_compact(db, config_path):
    """Nothing to do: kept for schedulers that call it (the contact index needs no compaction).

    Example: custdq index compact --db sqlite:///.custdq/cases.db
    """
    from pipeline.bookload import compact_index

    compact_index(db, config_path)
    click.echo("custdq: index compact: nothing to do: the contact index (an embedded DuckDB database since "
               "issue 29) needs no compaction; remove this step from the schedule", err=True)


@index.command("upgrade")
@db_option
@config_option
@reports_errors
def index_upgrade(db, config_path):
    """Copy a contact index written by another major version of DuckDB, or by an earlier custdq,
    into this version's format.

    Example: custdq index upgrade --db sqlite:///.custdq/cases.db
    """
    from pipeline.maintenance import upgrade

    done = upgrade(db, config_path, notify=say)
    if done["upgraded"]:
        say(f"index upgrade: {done['path']} now in DuckDB {done['to']}.x's format, custdq format {done['format']}; "
            f"the old file is kept as {done['kept']} (remove it once a night has run)")
    else:
        say(f"index upgrade: {done['path']} is in DuckDB {done['to']}.x's format, custdq format {done['format']}, "
            "already; nothing to do")


@cli.group(cls=Commands)
def store():
    """The case store as a whole: its backup."""


@store.command("backup")
@click.argument("dest", metavar="DEST")
@db_option
@config_option
@reports_errors
def store_backup(dest, db, config_path):
    """Copy the case store and its contact index, consistently, into the new folder DEST.

    Example: custdq store backup /backup/custdq/2026-11-20

    The hash key is not copied: back it up apart (docs/contact-index.md says how to restore).
    """
    from pathlib import Path

    from pipeline.maintenance import backup_store

    record = backup_store(db, config_path, Path(dest), notify=say)
    files = ", ".join(f"{name} ({facts['bytes']} bytes)" for name, facts in record["files"].items())
    say(f"store backup: {files} and backup.json in {Path(dest).absolute()}; the hash key (fingerprint "
        f"{record['hash_key_fingerprint']}) is not in it: keep its own backup")


@cli.group(cls=Commands)
def cases():
    """The case store's items: read worklists back, list what is open."""


@cases.command("import")
@click.argument("worklists", nargs=-1, required=True, metavar="WORKLIST.xlsx...")
@db_option
@click.option("--by", "who", metavar="NAME", help="who filled these in (default: your login name)")
@click.option("--rejects", "rejects_out", metavar="FILE", help="also write the rejected rows to this CSV")
@config_option
@reports_errors
def cases_import(worklists, db, who, rejects_out, config_path):
    """Read dispositions filled in by the teams back into the case store.

    Rejected rows are printed with their reason and change nothing; the other rows are applied.
    Exit status 1 when any row was rejected.

    Example: custdq cases import out/2026-11-20/worklists/广东分公司.xlsx --by 张三
    """
    from pipeline import outputs
    from pipeline.cases.imports import import_files, rejects_frame

    report = import_files(db, config_path, list(worklists), who, notify=say)
    if rejects_out:
        outputs.write_rejects(rejects_frame(report), rejects_out)
    for r in report.rejected:
        click.echo(f"rejected: {r['file']} row {r['row']}: {r['reason']}")
    click.echo(f"custdq: cases import: {sum(f['rows'] for f in report.files)} rows in {len(report.files)} "
               f"file(s): {report.applied} applied, {report.unchanged} unchanged, {report.untouched} not filled in, "
               f"{report.superseded} as issued but since changed by another (left as they are), "
               f"{len(report.rejected)} rejected", err=True)
    if report.rejected:
        sys.exit(ExitCode.FAILED)


@cli.group(cls=Commands)
def complaints():
    """Complaints against agents and agencies (SPEC 9): what triggers AGENT_COMPLAINT_RECHECK."""


@complaints.command("load")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@db_option
@config_option
@reports_errors
def complaints_load(files, db, config_path):
    """Load complaints (CSV or XLSX: 投诉编号, 业务员代码 or 代理机构代码, 投诉日期, 投诉类型, 是否查实)
    into the case store; the next night re-checks the policies of an agent or agency that
    reached rules.complaints.threshold substantiated complaints within a year.

    A reference loaded again with the same values changes nothing. Rejected rows are printed
    with their reason and change nothing; exit status 1 when any row was rejected.

    Example: custdq complaints load complaints-2026-11.xlsx
    """
    from pipeline.cases.complaints import load_files

    report = load_files(db, config_path, list(files), notify=say)
    for r in report.rejected:
        click.echo(f"rejected: {r['file']} row {r['row']}: {r['reason']}")
    click.echo(f"custdq: complaints load: {sum(f['rows'] for f in report.files)} rows in {len(report.files)} file(s): "
               f"{report.added} new, {report.updated} updated, {report.unchanged} unchanged, "
               f"{len(report.rejected)} rejected", err=True)
    if report.rejected:
        sys.exit(ExitCode.FAILED)


@cases.command("list")
@click.option("--overdue", is_flag=True, help="only items past their due date")
@click.option("--branch", metavar="B", help="only this branch (机构)")
@click.option("--as-of", "as_of", type=IsoDate(), help="judge overdue on this date (default: today, China time)")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="print at most this many rows (0: all)")
@click.option("--csv", "csv", is_flag=True, help="CSV on stdout instead of a table (every row unless --limit)")
@db_option
@config_option
@reports_errors
def cases_list(overdue, branch, as_of, limit, csv, db, config_path):
    """Print open items, deadline first, with the total.

    Example: custdq cases list --overdue --branch 广东分公司
    """
    from pipeline.cases.listing import open_items, render
    from pipeline.outputs import open_items_csv
    from pipeline.clock import now

    as_of = as_of or now().date()
    with existing_store(db, config_path)[0].connect() as conn:
        t = open_items(conn, as_of, overdue, branch)
    explicit = click.get_current_context().get_parameter_source("limit") != click.core.ParameterSource.DEFAULT
    if csv:
        click.echo(open_items_csv(t, limit if explicit else None), nl=False)
    else:
        click.echo(render(t, limit or None))
    late = int((t["days_overdue"] > 0).sum())
    shown = "" if csv or not limit or len(t) <= limit else f" ({limit} shown; --limit 0 shows all)"
    click.echo(f"custdq: {len(t)} open item(s){' in ' + branch if branch else ''}, {late} overdue as of "
               f"{as_of.isoformat()}{shown}", err=True)


@cases.command("show")
@click.argument("item_id", metavar="ITEM_ID")
@db_option
@config_option
@reports_errors
def cases_show(item_id, db, config_path):
    """Show one item (masked) and its whole history: every event with who, when, what changed,
    from which worklist file or night.

    Example: custdq cases show DQ0123456789ABCDEF
    """
    from pipeline.cases.listing import show

    with existing_store(db, config_path)[0].connect() as conn:
        click.echo(show(conn, item_id))


@cli.group(cls=Commands)
def runs():
    """The nights in the case store."""


@runs.command("list")
@db_option
@config_option
@reports_errors
def runs_list(db, config_path):
    """List the nights in the store (date, rows, items, list on time, inputs with sha256, engine,
    version) and the nights taken back by --rewind.

    Example: custdq runs list
    """
    from pipeline.cases.listing import render_frame
    from pipeline.cases.nights import listing

    with existing_store(db, config_path)[0].connect() as conn:
        t = listing(conn)
    click.echo(render_frame(t))
    click.echo(f"custdq: {int((t['note'] == '').sum())} night(s) in the store, {int((t['note'] != '').sum())} "
               "rewound", err=True)


@cli.command()
@db_option
@click.option("--out", "out_path", required=True, metavar="FILE", help="the HTML file to write")
@click.option("--night", type=IsoDate(), help="the business date to show (default: the latest run)")
@config_option
@reports_errors
def dashboard(db, out_path, night, config_path):
    """(Re)build the managers' dashboard from the case store's run history.

    Example: custdq dashboard --out dashboard.html
    """
    from pathlib import Path

    from pipeline.outputs.dashboard.page import rebuild

    board = rebuild(db, config_path, Path(out_path), night.isoformat() if night else None)
    click.echo(f"custdq: dashboard for {board.night or 'no night yet'} written to {out_path}", err=True)


@cli.group(cls=Commands)
def report():
    """Reports for the regulator."""


@report.command("quarterly")
@click.option("--quarter", required=True, metavar="YYYYQn", help="e.g. 2026Q3")
@db_option
@click.option("--out", "out_path", required=True, metavar="FILE", help="the .xlsx file to write")
@config_option
@reports_errors
def report_quarterly(quarter, db, out_path, config_path):
    """The quarter's confirmed-false customer information per branch, channel and agent (xlsx).

    Example: custdq report quarterly --quarter 2026Q3 --out 2026Q3.xlsx
    """
    from pathlib import Path

    from pipeline.cases.quarterly import quarterly_report

    info = quarterly_report(db, config_path, quarter, Path(out_path))
    n, p, g = info["items"], info["policies"], info["groups"]
    click.echo(f"custdq: report {info['quarter']} ({info['from']} to {info['to']}): {n} item{'s' if n != 1 else ''} on "
               f"{p} polic{'ies' if p != 1 else 'y'} in {g} branch/channel/agent group{'s' if g != 1 else ''} -> "
               f"{Path(out_path).absolute()}", err=True)


cli.add_command(serve)
cli.add_command(users)
cli.add_command(audit)
cli.add_command(notify)
cli.add_command(retention)
