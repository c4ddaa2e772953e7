"""Exceptions raised by the ``lfads`` package.

Every error the package raises on purpose is an :class:`LFADSError`; its message names what is wrong,
where (file, key, field or option) and what would fix it. The command line reports any of them as one
line, ``lfads <command>: error: <message>``, with exit status 2 (see :mod:`lfads.commands.report`).

- :class:`LFADSDataError`: input data are missing, malformed or inconsistent;
- :class:`LFADSConfigError`: a config file or hyperparameter is invalid;
- :class:`LFADSArgumentError`: a command-line argument is invalid (out of range, unknown name);
- :class:`LFADSOutputError`: an output cannot or must not be written (exists, is a directory, ...);
- :class:`CheckpointError`: a checkpoint file is missing, unreadable, or not an ``lfads`` checkpoint;
  :class:`CheckpointTrustError` when it needs full unpickling, which was not allowed;
- :class:`TrainingDivergedError`: the training loss or its gradients became non-finite.

:func:`check_setting` raises :class:`LFADSDataError` for a number out of its range, naming the setting.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "CheckpointError",
    "CheckpointTrustError",
    "LFADSArgumentError",
    "LFADSConfigError",
    "LFADSDataError",
    "LFADSError",
    "LFADSOutputError",
    "TrainingDivergedError",
    "check_setting",
]


class LFADSError(Exception):
    """Base class of the errors ``lfads`` raises on purpose; the message says what, where and the fix."""


class LFADSDataError(LFADSError, ValueError):
    """Input data are missing, malformed or inconsistent.

    The message names the file and the key (dataset, column or field) at fault and says what would fix it.
    """


class LFADSConfigError(LFADSError, ValueError):
    """A config file or a hyperparameter is invalid; the message names the file or field and the valid range."""


class LFADSArgumentError(LFADSError, ValueError):
    """A command-line argument is invalid; the message names the option (``--samples``, ``--splits``, ...)."""


class LFADSOutputError(LFADSError):
    """An output file cannot or must not be written; the message names the path and what to pass instead."""


class CheckpointError(LFADSError, ValueError):
    """A checkpoint file is missing, unreadable, or not an ``lfads`` checkpoint."""


class CheckpointTrustError(CheckpointError):
    """A checkpoint holds objects that only full unpickling restores (which can run code stored in the file).

    Loading it needs an explicit ``--trust-checkpoint`` (or ``LFADS_TRUST_CHECKPOINTS=1``).
    """


class TrainingDivergedError(LFADSError, RuntimeError):
    """The training loss or its gradients became non-finite; the fit stopped at that step.

    The message names the epoch and step, and the last checkpoint written with finite weights.
    """


def check_setting(where: str, name: str, value: Any, minimum: float, *, integer: bool = False,
                  strict: bool = False, maximum: float | None = None) -> None:
    """Raise :class:`LFADSDataError` naming ``where`` and ``name`` unless ``value`` is a finite number (whole with
    ``integer``) of at least ``minimum`` (above it with ``strict``) and at most ``maximum``."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    fine = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    fine = fine and (value > minimum if strict else value >= minimum) and (maximum is None or value <= maximum)
    if not fine:
        bound = f"above {minimum:g}" if strict else f"of at least {minimum:g}"
        bound += "" if maximum is None else f" and at most {maximum:g}"
        raise LFADSDataError(f"{where}: {name} must be {'a whole number' if integer else 'a number'} {bound}; "
                             f"got {value!r}.")
