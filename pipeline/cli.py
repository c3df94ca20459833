"""The `custdq` command (SPEC 1). Thin click commands: parse options, call one library
function, turn custdq's exceptions into exit codes (README "Exit codes")."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys

import click

from pipeline import __version__, logs
from pipeline.errors import CustdqError


class IsoDate(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"'{value}' is not a date in the form YYYY-MM-DD", param, ctx)


def reports_errors(fn):
    """Turn custdq errors into one line on stderr and the documented exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CustdqError as exc:
            click.echo(f"custdq: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("custdq: interrupted; outputs of this night were not replaced", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("CUSTDQ_DEBUG"):
                raise
            click.echo(f"custdq: internal error ({type(exc).__name__}); rerun with CUSTDQ_DEBUG=1 "
                       "for the traceback and report it", err=True)
            sys.exit(1)

    return wrapper


db_option = click.option("--db", metavar="URL", help="case store URL (default: sqlite:///.custdq/cases.db)")


@click.group()
@click.version_option(__version__, prog_name="custdq")
@click.option("-v", "--verbose", count=True,
              help="more detail on stderr: -v stage details and counts, -vv debug lines and SQL statements "
                   "(long digit runs are masked in every log line)")
def cli(verbose):
    """custdq: nightly data-quality checks of life-insurance customer information."""
    logs.configure(verbose)


@cli.command()
@click.argument("extracts", nargs=-1, required=True, metavar="EXTRACT...")
@click.option("--business-date", "business_date", type=IsoDate(), required=True, help="the business date T")
@click.option("--agents", metavar="FILE", help="agent roster (SPEC 2.2)")
@click.option("--out", "out_dir", metavar="DIR", help="output folder (default: out/<business-date>/)")
@db_option
@click.option("--config", "config_path", metavar="FILE", help="YAML settings merged over the defaults")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True)
@click.option("--quiet", is_flag=True, help="no progress output")
@reports_errors
def run(extracts, business_date, agents, out_dir, db, config_path, engine, quiet):
    """Run the nightly job for business date T over one or more policy extracts.

    Example: custdq run data/samples/policies_sample.csv --business-date 2026-11-20
    """
    from pipeline.run import run_night

    result = run_night(list(extracts), business_date, out_dir, db, config_path, agents, engine, quiet)
    m = result.manifest
    r = m["rows"]
    click.echo(
        f"custdq: {m['business_date']}: {r['rows_read']} rows read, {r['rows_in_scope']} checked, "
        f"{r['rows_out_of_scope']} out of scope, {r['rows_quarantined']} quarantined; "
        f"{m['items']['total']} items; list due {m['deadlines']['list_due']}; outputs in {result.out_dir}",
        err=True,
    )
    if result.gate_failed:
        click.echo(f"custdq: error: blocking expectations failed: "
                   f"{', '.join(m['expectations']['blocking_failed'])} (outputs written; see data_docs/index.html)",
                   err=True)
        sys.exit(1)


@cli.command()
@click.option("--rows", type=click.IntRange(min=0), required=True, help="number of policies")
@click.option("--seed", type=int, required=True, help="random seed (same seed, same file)")
@click.option("--out", "out_path", required=True, metavar="FILE", help=".csv, .xlsx or .parquet")
@click.option("--defect-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="share of rows given an injected defect")
@click.option("--encoding", type=click.Choice(["utf-8", "utf-8-sig", "gbk", "gb18030"]), default="utf-8",
              show_default=True, help="text encoding for .csv")
@click.option("--business-date", "business_date", type=IsoDate(), default="2026-11-20", show_default=True,
              help="issue dates fall in the weeks before this date")
@click.option("--agents-out", metavar="FILE", help="also write the matching agent roster (CSV)")
@reports_errors
def sample(rows, seed, out_path, defect_rate, encoding, business_date, agents_out):
    """Write a realistic synthetic policy extract (no real personal data).

    Example: custdq sample --rows 2000 --seed 20261120 --out data/samples/policies_sample.csv
    """
    from pipeline.sample import write_sample

    info = write_sample(rows, seed, out_path, defect_rate=defect_rate, encoding=encoding,
                        business_date=business_date, agents_out=agents_out)
    click.echo(f"custdq: wrote {info['rows']} rows to {out_path}", err=True)


@cli.group()
def index():
    """The book-wide contact index (phones and accounts of every customer, keyed hashes only)."""


@index.command("load")
@click.argument("books", nargs=-1, required=True, metavar="BOOK...")
@click.option("--as-of", "as_of", type=IsoDate(), help="the date the book was extracted (default: today)")
@click.option("--out", "out_dir", metavar="DIR", help="quarantine and manifest (default: out/index-load-<as-of>/)")
@db_option
@click.option("--config", "config_path", metavar="FILE", help="YAML settings merged over the defaults")
@reports_errors
def index_load(books, as_of, out_dir, db, config_path):
    """Seed the contact index from a full customer-book extract (policy-extract columns).

    Example: custdq index load book_2026-11.csv --as-of 2026-11-19
    """
    from pipeline.book.load import load_book
    from pipeline.run import CHINA

    as_of = as_of or dt.datetime.now(CHINA).date()
    m = load_book(list(books), as_of, out_dir, db, config_path, progress=lambda s: click.echo(s, err=True))
    click.echo(f"custdq: index load: {m['rows_read']} rows read, {m['contact_rows_written']} contact rows "
               f"written; the index holds {m['index']['rows']} rows; manifest in {m['out_dir']}",
               err=True)


@index.command("compact")
@db_option
@reports_errors
def index_compact(db):
    """Fold the contact index's night tiers into its main tier (maintenance, a quiet hour).

    Example: custdq index compact --db sqlite:///.custdq/cases.db
    """
    from pipeline import store
    from pipeline.book import index as contact_index
    from pipeline.lock import store_lock

    engine = store.open_store(db)
    with store_lock(engine, "index compact", None, 3600, notify=lambda s: click.echo(f"custdq: {s}", err=True)), \
            engine.begin() as conn:
        m = contact_index.ContactIndex(conn).compact()
    click.echo(f"custdq: index compact: {m['rows_moved']} rows merged in {m['seconds']}s; "
               f"the index holds {m['rows']} rows", err=True)


@cli.group()
def cases():
    """The case store's items: read worklists back, list what is open."""


@cases.command("import")
@click.argument("worklists", nargs=-1, required=True, metavar="WORKLIST.xlsx...")
@db_option
@click.option("--by", "who", metavar="NAME", help="who filled these in (default: your login name)")
@click.option("--rejects", "rejects_out", metavar="FILE", help="also write the rejected rows to this CSV")
@click.option("--config", "config_path", metavar="FILE", help="YAML settings merged over the defaults")
@reports_errors
def cases_import(worklists, db, who, rejects_out, config_path):
    """Read dispositions filled in by the teams back into the case store.

    Example: custdq cases import out/2026-11-20/worklists/广东分公司.xlsx --by 张三
    """
    from pipeline import config, outputs, store
    from pipeline.cases.imports import import_worklists, rejects_frame
    from pipeline.lock import store_lock

    cfg = config.load(config_path)
    engine = store.open_store(db)
    with store_lock(engine, "cases import", None, float(cfg["store"]["lock_wait_seconds"]),
                    notify=lambda s: click.echo(f"custdq: {s}", err=True)):
        with engine.begin() as conn:
            report = import_worklists(conn, list(worklists), who)
    for r in report.rejected:
        click.echo(f"rejected: {r['file']} row {r['row']}: {r['reason']}")
    if rejects_out:
        from pathlib import Path
        frame = rejects_frame(report)
        frame["item_id"] = outputs.defuse(frame["item_id"].astype("str"))
        outputs.atomic_write(Path(rejects_out), lambda p: frame.to_csv(p, index=False, encoding="utf-8"))
    click.echo(f"custdq: cases import: {sum(f['rows'] for f in report.files)} rows in {len(report.files)} "
               f"file(s): {report.applied} applied, {report.unchanged} unchanged, {report.untouched} not filled in, "
               f"{len(report.rejected)} rejected", err=True)


@cases.command("list")
@click.option("--overdue", is_flag=True, help="only items past their due date")
@click.option("--branch", metavar="B", help="only this branch (机构)")
@click.option("--as-of", "as_of", type=IsoDate(), help="judge overdue on this date (default: today, China time)")
@click.option("--limit", type=click.IntRange(min=1), help="print at most this many rows")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table")
@db_option
@reports_errors
def cases_list(overdue, branch, as_of, limit, as_csv, db):
    """Print open items, deadline first.

    Example: custdq cases list --overdue --branch 广东分公司
    """
    from pipeline import outputs, store
    from pipeline.cases.listing import open_items, render
    from pipeline.run import CHINA

    as_of = as_of or dt.datetime.now(CHINA).date()
    with store.open_store(db).connect() as conn:
        t = open_items(conn, as_of, overdue, branch)
    if as_csv:
        out = t.head(limit) if limit else t
        for col in ("item_id", "branch", "channel", "policy_no"):
            out[col] = outputs.defuse(out[col].astype("str"))
        click.echo(out.to_csv(index=False), nl=False)
    else:
        click.echo(render(t, limit))
    late = int((t["days_overdue"] > 0).sum())
    click.echo(f"custdq: {len(t)} open item(s){' in ' + branch if branch else ''}, {late} overdue as of "
               f"{as_of.isoformat()}", err=True)


@cli.command()
@db_option
@click.option("--out", "out_path", required=True, metavar="FILE", help="the HTML file to write")
@click.option("--night", type=IsoDate(), help="the business date to show (default: the latest run)")
@reports_errors
def dashboard(db, out_path, night):
    """(Re)build the managers' dashboard from the case store's run history.

    Example: custdq dashboard --out dashboard.html
    """
    from pathlib import Path

    from pipeline import store
    from pipeline.dashboard.page import write_dashboard

    board = write_dashboard(store.open_store(db), Path(out_path), night.isoformat() if night else None)
    click.echo(f"custdq: dashboard for {board.night or 'no night yet'} written to {out_path}", err=True)


@cli.group()
def report():
    """Reports for the regulator."""


@report.command("quarterly")
@click.option("--quarter", required=True, metavar="YYYYQn", help="e.g. 2026Q3")
@db_option
@click.option("--out", "out_path", required=True, metavar="FILE", help="the .xlsx file to write")
@reports_errors
def report_quarterly(quarter, db, out_path):
    """The quarter's confirmed-false customer information per branch, channel and agent (xlsx).

    Example: custdq report quarterly --quarter 2026Q3 --out 2026Q3.xlsx
    """
    from pathlib import Path

    from pipeline import store
    from pipeline.cases.quarterly import quarter_bounds, write_report

    quarter_bounds(quarter)  # a malformed quarter is refused before the store is opened
    info = write_report(store.open_store(db), quarter, Path(out_path))
    click.echo(f"custdq: report {info['quarter']} ({info['from']} to {info['to']}): {info['items']} items on "
               f"{info['policies']} policies in {info['groups']} branch/channel/agent groups -> {out_path}", err=True)
