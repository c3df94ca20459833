"""custdq's exit statuses and the exceptions the CLI turns into them (README "Exit codes").

`InputError` is a problem with what the operator handed us (a missing column, an unreadable
file, a store that does not exist): exit 2 with one line naming the file, row or column. Bugs
stay ordinary exceptions so they surface.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `custdq`'s exit status means; the README's table is checked against this.

    OK (0): the command completed; findings are not failures.
    FAILED (1): a blocking expectation failed (outputs written), `cases import` rejected a row
        (the other rows applied), the Spark engine's tasks failed, or an internal error.
    INPUT (2): a usage or input error: one line naming the file, row or column; nothing changed.
    INTERRUPTED (130): interrupted (Ctrl-C); the night's outputs and the store were not changed.
    """

    OK = 0
    FAILED = 1
    INPUT = 2
    INTERRUPTED = 130


class CustdqError(Exception):
    """Base class of the errors custdq reports to the operator."""

    exit_code = ExitCode.FAILED


class InputError(CustdqError):
    """Bad input: usage, file or column problem. Exit status 2."""

    exit_code = ExitCode.INPUT


class ConfigError(InputError):
    """The configuration file is unreadable or holds an unknown setting."""


class EngineError(CustdqError):
    """The Spark engine's tasks failed (a cluster problem, not the input). Exit 1; nothing of the
    night is kept."""

    exit_code = ExitCode.FAILED
