"""What every ``python -m fesr...`` entry point shares: user errors end in one line and exit 2.

A *user error* (bad or mismatched inputs, a missing device) is a ``UsageError``: the message
names the bad value and what was expected, and no traceback is printed. Check inputs before any
expensive work and before opening an output, so a refused run leaves no file behind.

Every output is written through ``atomic_output``: under a temporary name in its directory,
renamed into place only when complete, and removed on any exception, including one raised while
the caller closes the file. A write that fails on the file system (full, read-only, over quota,
not permitted) becomes an ``OutputError`` naming the output and the cause, ``cannot write P: No
space left on device``, one line (exit 1) without a chained traceback. The cause is read from the
file system itself where the library's error does not carry it: HDF5 reports a full disk as "HDF
error", and netCDF4 sometimes as "Permission denied".
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

USAGE_EXIT = 2
OUTPUT_EXIT = 1  # an output the file system refused (OutputError)
# What bad input raises in the modules whose inputs are files named on the command line.
USER_ERRORS = (ValueError, FileNotFoundError)


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit code 2."""


class MissingInputError(UsageError, FileNotFoundError):
    """An input file that does not exist (also a FileNotFoundError, for callers that catch it)."""


class OutputError(OSError):
    """An output that could not be written: its path and the file system's cause, one line."""

    def __init__(self, path, code: int):
        super().__init__(code, os.strerror(code), str(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


# Causes a write failure may name by itself; any other errno counts only when the error names the
# output (an input that fails to open inside the writer is not the output's fault).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _errors_in_chain(err: BaseException) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _file_system_state(path: Path) -> int | None:
    """EROFS or ENOSPC when the file system holding ``path`` is read-only or full, else None."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    free = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail
    if free * st.f_frsize < 2 * st.f_bsize:  # a failed write fills the disk to its last block
        return errno.ENOSPC
    return None


def write_failure(err: BaseException, path, tmp=None) -> OutputError | None:
    """The file-system cause of ``err``, raised while writing ``path`` (through ``tmp``), as an
    OutputError; None when ``err`` is no write failure (a solver error on a healthy disk)."""
    path = Path(path)
    names = {str(path), str(tmp)} if tmp is not None else {str(path)}
    chain = list(_errors_in_chain(err))
    codes = [e.errno for e in chain if isinstance(e, OSError) and e.errno]
    for code in codes:
        if code in _WRITE_ERRNOS:
            return OutputError(path, code)
    state = _file_system_state(path)
    if state is not None:
        return OutputError(path, state)
    for e in chain:
        if isinstance(e, OSError) and e.errno:
            filename = os.fsdecode(e.filename) if e.filename is not None else None
            if filename in names:
                return OutputError(path, e.errno)
    return None


def remove_quietly(path) -> None:
    """Remove a temporary file; a failure to remove it never hides the error being handled."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass


def close_quietly(handle) -> None:
    """Close an output handle after an error; its own close error would only repeat the cause."""
    try:
        handle.close()
    except Exception:
        pass


@contextmanager
def atomic_output(path, tmp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and rename it to ``path`` when the block succeeds;
    on any exception remove it, and raise a write failure as an OutputError (module docstring).

    ``tmp_name``: the temporary file's name (default ``.{name}.tmp{pid}``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        failure = write_failure(err, path) or OutputError(path, err.errno or errno.EIO)
        raise failure from None
    tmp = path.with_name(tmp_name or f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        failure = write_failure(err, path, tmp) if isinstance(err, Exception) else None
        remove_quietly(tmp)
        if failure is not None and not isinstance(err, OutputError):
            raise failure from None
        raise


def run_main(
    prog: str, main: Callable[..., int | None], argv=None, user_errors: tuple = (UsageError,)
) -> int:
    """Call ``main(argv)``; a ``UsageError`` becomes ``{prog}: error: {message}`` and exit 2.

    ``user_errors``: the exceptions that mean bad input for this entry point (the report modules,
    whose only inputs are files named on the command line, pass ValueError and FileNotFoundError).
    An ``OutputError`` is reported the same way, with exit code 1.
    """
    try:
        rc = main(argv)
    except user_errors as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        return USAGE_EXIT
    except OutputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        return OUTPUT_EXIT
    return 0 if rc is None else int(rc)


def check_match(what: str, left: tuple[str, object], right: tuple[str, object]) -> None:
    """Refuse two inputs that disagree on ``what``: each side is (source, value)."""
    (lsrc, lval), (rsrc, rval) = left, right
    if lval != rval:
        raise UsageError(f"{what} mismatch: {lsrc} has {lval!r} but {rsrc} has {rval!r}")
