"""The command line's single error path: one line on stderr, exit status 2, no traceback.

An error the user can fix (an :class:`lfads.errors.LFADSError`, an argument the parser rejects, a file
that is missing, unreadable or a directory) ends a command with

    lfads <command>: error: <what is wrong, where, and the fix>

on stderr and exit status :data:`EXIT_ERROR`. ``--debug`` anywhere on the command line, or the
environment variable ``LFADS_DEBUG=1``, lets the original exception through with its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from lfads.errors import LFADSArgumentError, LFADSError

__all__ = [
    "DEBUG_ENV",
    "DEBUG_FLAG",
    "EXIT_ERROR",
    "ArgumentParser",
    "CommandFailed",
    "describe_error",
    "reported_errors",
    "split_debug",
]

EXIT_ERROR = 2
"""Exit status of a command stopped by an error (as argparse uses for usage errors)."""

DEBUG_FLAG = "--debug"
DEBUG_ENV = "LFADS_DEBUG"

_REPORTED = (LFADSError, argparse.ArgumentError, OSError)
"""Exceptions reported as one line: the project's own, parser errors, and file-system errors."""


class CommandFailed(SystemExit):
    """A command stopped on an error already printed as one line on stderr; ``code`` is :data:`EXIT_ERROR`.

    ``str()`` gives the printed line, so a caller of :func:`lfads.cli.main` can read what went wrong.
    """

    def __init__(self, line: str) -> None:
        super().__init__(EXIT_ERROR)
        self.line = line

    def __str__(self) -> str:
        return self.line


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors raise :class:`lfads.errors.LFADSArgumentError`.

    The error path then prints them as one line; ``--help`` still prints the help and exits 0.
    """

    def error(self, message: str) -> NoReturn:
        raise LFADSArgumentError(f"{message} (see `{self.prog} --help`)")


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether tracebacks were asked for (the flag or ``LFADS_DEBUG``)."""
    rest = [a for a in argv if a != DEBUG_FLAG]
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return rest, len(rest) < len(argv) or env not in ("", "0", "false", "no")


def describe_error(err: BaseException) -> str:
    """One line saying what went wrong in ``err`` (a file-system error names its path)."""
    if isinstance(err, OSError) and not isinstance(err, LFADSError) and err.filename is not None:
        what = err.strerror or str(err)
        path = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
        text = f"{path}: {what}" + _OS_FIXES.get(type(err), "")
    elif isinstance(err, SystemExit):
        text = re.sub(r"^lfads( \w+)?: (error: )?", "", str(err.code))
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


_OS_FIXES = {
    FileNotFoundError: "; check the path (relative paths start from the working folder)",
    IsADirectoryError: "; a file is needed here, not a directory",
    NotADirectoryError: "; a directory is needed here",
    PermissionError: "; choose a path you may read and write, or change its permissions",
}


@contextmanager
def reported_errors(command: str, debug: bool = False) -> Iterator[None]:
    """Turn the errors a user can fix, raised inside the block, into one line on stderr and exit status 2.

    Parameters
    ----------
    command : str
        The subcommand, named in the line (``lfads sample: error: ...``); ``""`` for ``lfads`` itself.
    debug : bool
        Let the original exception through with its traceback instead.

    Raises
    ------
    CommandFailed
        After printing the line, for an :class:`lfads.errors.LFADSError`, an ``argparse.ArgumentError``, an
        ``OSError``, or a ``SystemExit`` that carries a message instead of a status.
    """
    try:
        yield
    except CommandFailed:
        raise
    except SystemExit as stop:
        if debug or stop.code is None or isinstance(stop.code, int):
            raise
        _fail(command, stop)
    except _REPORTED as err:
        if debug:
            raise
        _fail(command, err)


def _fail(command: str, err: BaseException) -> NoReturn:
    prog = f"lfads {command}" if command else "lfads"
    line = f"{prog}: error: {describe_error(err)}"
    print(line, file=sys.stderr, flush=True)
    raise CommandFailed(line) from err
