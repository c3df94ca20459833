"""What every `custdq` command shares: the date type, the --db and --config options, the
store a command works on, and custdq's errors as one line and an exit code (README "Exit codes")."""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import sys
import textwrap

import click

from pipeline.errors import CustdqError, ExitCode


class IsoDate(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # 20261123 would be read, but the form is documented
                raise ValueError(text)
            return dt.date.fromisoformat(text)
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
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("custdq: interrupted; outputs of this night were not replaced", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except click.ClickException:  # a usage error raised by the command itself: click says it, exit 2
            raise
        except Exception as exc:
            if os.environ.get("CUSTDQ_DEBUG"):
                raise
            if type(exc).__name__ == "OutOfMemoryException" and type(exc).__module__.lstrip("_") == "duckdb":
                click.echo("custdq: error: the contact index needed more memory than contact_index.memory_limit "
                           "allows; nothing was committed: raise it in the --config file (or give "
                           "contact_index.temp_directory a disk with room) and run the command again", err=True)
                sys.exit(ExitCode.FAILED)
            click.echo(f"custdq: internal error ({type(exc).__name__}); rerun with CUSTDQ_DEBUG=1 "
                       "for the traceback and report it", err=True)
            sys.exit(ExitCode.FAILED)

    return wrapper


db_option = click.option("--db", metavar="URL", help="case store URL (default: CUSTDQ_DB, else store.url in "
                                                     "--config, else sqlite:///.custdq/cases.db)")
config_option = click.option("--config", "config_path", metavar="FILE", help="YAML settings merged over the defaults")


def existing_store(db, config_path):
    from pipeline import store

    return store.existing(db, config_path)


def say(line: str) -> None:
    click.echo(f"custdq: {line}", err=True)


class Commands(click.Group):
    """A group whose command list shows each command's first sentence whole (click cuts it at
    the terminal's width with "...")."""

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=1000)))
        if rows:  # click's own list breaks words at hyphens (re-/sent): wrapped here at spaces only
            with formatter.section("Commands"):
                left = max(len(name) for name, _ in rows) + 2
                room = max((formatter.width or 80) - formatter.current_indent - left, 20)
                for name, text in rows:
                    lines = textwrap.wrap(text, room, break_on_hyphens=False) or [""]
                    formatter.write(" " * formatter.current_indent + name.ljust(left) + lines[0] + "\n")
                    for line in lines[1:]:
                        formatter.write(" " * (formatter.current_indent + left) + line + "\n")


_VERBOSE = re.compile(r"-v+|--verbose")


def verbose_first(args: list[str]) -> list[str]:
    """`-v`, `-vv` and `--verbose` given after the subcommand moved before it, where click reads
    them (custdq's commands have no option of that name; `--` ends the options).

    >>> verbose_first(["run", "x.csv", "-vv", "--", "-v"])
    ['-vv', 'run', 'x.csv', '--', '-v']
    """
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if _VERBOSE.fullmatch(a)]
    return flags + [a for a in args[:end] if not _VERBOSE.fullmatch(a)] + args[end:]


class OneLineErrors(Commands):
    """click's usage errors as one line on stderr (exit 2), like every other custdq error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = verbose_first(list(sys.argv[1:] if args is None else args))
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "custdq --help", err=True)
            sys.exit(ExitCode.INPUT)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "custdq"
            message = " ".join(exc.format_message().split())
            click.echo(f"custdq: error: {message} (see '{where} --help')", err=True)
            sys.exit(ExitCode.INPUT)
        except click.ClickException as exc:  # a file option that cannot be opened, ...
            click.echo(f"custdq: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(ExitCode.INPUT)
        except click.exceptions.Abort:
            click.echo("custdq: interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)
