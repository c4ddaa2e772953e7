"""The ``lfads`` command line: picks the subcommand and runs it through the one error path.

``lfads fit|validate|test`` are the Lightning CLI (:mod:`lfads.commands.fit`); ``sample``, ``analyze``,
``convert``, ``tune``, ``nlb``, ``compare`` and ``population`` have a module each under
:mod:`lfads.commands`. Errors the user can fix end any of them with one line
``lfads <command>: error: ...`` and exit status 2; ``--debug`` or ``LFADS_DEBUG=1`` shows the traceback
instead (see :mod:`lfads.commands.report`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from lfads.commands.report import reported_errors, split_debug
from lfads.errors import LFADSArgumentError
from lfads.runtime import configure_progress, configure_threads

LIGHTNING_COMMANDS = ("fit", "validate", "test")

SUBCOMMANDS = {
    "sample": "lfads.commands.sample:main",
    "analyze": "lfads.commands.analyze:main",
    "convert": "lfads.commands.convert:convert_command",
    "tune": "lfads.commands.tune:main",
    "nlb": "lfads.commands.nlb:main",
    "compare": "lfads.commands.compare:main",
    "population": "lfads.commands.population:main",
}
"""Subcommand -> ``module:function`` taking the arguments after the subcommand (imported on use)."""


def _entry(target: str) -> Callable[[list[str]], int]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lfads`` and ``python -m lfads``: run the subcommand named by ``argv[0]``.

    Returns 0 on success; an error raises ``SystemExit`` with status 2 after printing one line on stderr.
    """
    argv, debug = split_debug(sys.argv[1:] if argv is None else argv)
    configure_progress()  # before anything imports tqdm (torch does)
    configure_threads()
    command = argv[0] if argv else ""
    if command in SUBCOMMANDS:
        with reported_errors(command, debug):
            return _entry(SUBCOMMANDS[command])(argv[1:])
    if command in LIGHTNING_COMMANDS or not argv or command.startswith("-"):
        if not argv or command in ("-h", "--help"):
            print("lfads commands: fit, validate, test (Lightning CLI); " + ", ".join(SUBCOMMANDS) + "\n")
        with reported_errors(command if command in LIGHTNING_COMMANDS else "", debug):
            return _entry("lfads.commands.fit:main")(argv)
    with reported_errors("", debug):
        raise LFADSArgumentError(
            f"unknown command {command!r}; choose one of {', '.join(LIGHTNING_COMMANDS + tuple(SUBCOMMANDS))}"
        )


if __name__ == "__main__":
    sys.exit(main())
