"""Exceptions raised by the ``lfads`` package."""

from __future__ import annotations


class LFADSDataError(ValueError):
    """Input data are missing, malformed or inconsistent.

    The message names the file and the key (dataset, column or field) at fault and says what would fix it.
    """
