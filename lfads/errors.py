"""Exceptions raised by the ``lfads`` package."""

from __future__ import annotations


class LFADSError(Exception):
    """Base of the errors the ``lfads`` package raises about its users' inputs, settings and outputs."""


class LFADSDataError(LFADSError, ValueError):
    """Input data are missing, malformed or inconsistent.

    The message names the file and the key (dataset, column or field) at fault and says what would fix it.
    """


class LFADSConfigError(LFADSError, ValueError):
    """A setting (hyperparameter or option) is out of range or contradicts another.

    The message names the setting as written in a config (``model.<name>``) and says what would fix it.
    """


class LFADSOutputError(LFADSError):
    """An output path cannot or must not be written.

    Raised before any work is done: the target is a folder, an input data file or a file of an existing run,
    exists without ``overwrite``, or lies in a folder that is missing or not writable. The message names the path.
    """
