"""Exceptions raised by the ``lfads`` package.

Every error the project raises on purpose is an :class:`LFADSError`; its message names what is wrong, where
(file, key, field or argument) and what would fix it. The command line prints such an error as one line.
"""

from __future__ import annotations


class LFADSError(Exception):
    """Base class of the project's own errors (reported by ``lfads`` as one line, exit status 2)."""


class LFADSDataError(LFADSError, ValueError):
    """Input data are missing, malformed or inconsistent.

    The message names the file and the key (dataset, column or field) at fault and says what would fix it.
    """


class CheckpointError(LFADSError, ValueError):
    """A checkpoint file is missing, unreadable, or not an ``lfads`` checkpoint."""


class CheckpointTrustError(CheckpointError):
    """A checkpoint holds objects that only full unpickling restores (which can run code stored in the file).

    Loading it needs an explicit ``--trust-checkpoint`` (or ``LFADS_TRUST_CHECKPOINTS=1``).
    """


class LFADSConfigError(LFADSError, ValueError):
    """A config field or command-line argument is invalid, or names a run or file that cannot be used.

    The message names the field or argument (and the file it refers to) and says what would fix it.
    """


class TrainingDivergedError(LFADSError, RuntimeError):
    """The training loss or its gradients became non-finite; the fit stopped at that step.

    The message names the epoch and step, and the last checkpoint written with finite weights.
    """
