"""Exceptions the CLI turns into exit codes (README "Exit codes").

`InputError` is a problem with what the operator handed us (a missing column, an unreadable
file): exit 2 with one line naming the file, row or column. Bugs stay ordinary exceptions so
they surface.
"""


class CustdqError(Exception):
    """Base class of the errors custdq reports to the operator."""

    exit_code = 1


class InputError(CustdqError):
    """Bad input: usage, file or column problem. Exit status 2."""

    exit_code = 2


class ConfigError(InputError):
    """The configuration file is unreadable or holds an unknown setting."""


class GateFailed(CustdqError):
    """A batch-level gate configured as blocking failed (outputs are still written). Exit 1."""

    exit_code = 1


class EngineError(CustdqError):
    """The Spark engine's tasks failed (a cluster problem, not the input). Exit 1; nothing of the
    night is kept."""

    exit_code = 1
