"""What every ``python -m fesr...`` entry point shares: user errors end in one line and exit 2.

A *user error* (bad or mismatched inputs, a missing device) is a ``UsageError``: the message
names the bad value and what was expected, and no traceback is printed. Check inputs before any
expensive work and before opening an output, so a refused run leaves no file behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USAGE_EXIT = 2
# What bad input raises in the modules whose inputs are files named on the command line.
USER_ERRORS = (ValueError, FileNotFoundError)


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit code 2."""


class MissingInputError(UsageError, FileNotFoundError):
    """An input file that does not exist (also a FileNotFoundError, for callers that catch it)."""


def run_main(
    prog: str, main: Callable[..., int | None], argv=None, user_errors: tuple = (UsageError,)
) -> int:
    """Call ``main(argv)``; a ``UsageError`` becomes ``{prog}: error: {message}`` and exit 2.

    ``user_errors``: the exceptions that mean bad input for this entry point (the report modules,
    whose only inputs are files named on the command line, pass ValueError and FileNotFoundError).
    """
    try:
        rc = main(argv)
    except user_errors as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        return USAGE_EXIT
    return 0 if rc is None else int(rc)


def check_match(what: str, left: tuple[str, object], right: tuple[str, object]) -> None:
    """Refuse two inputs that disagree on ``what``: each side is (source, value)."""
    (lsrc, lval), (rsrc, rval) = left, right
    if lval != rval:
        raise UsageError(f"{what} mismatch: {lsrc} has {lval!r} but {rsrc} has {rval!r}")
