"""Lightning's ``metrics.csv`` (written into every run folder by the CSV logger) as arrays."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from lfads.errors import LFADSDataError

__all__ = ["load_metrics"]


def load_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a Lightning ``metrics.csv`` into one float64 array per column.

    Lightning writes one row per logging call, so training and validation values of an epoch sit on
    different rows; cells without a value become NaN. Select a curve with
    ``ok = np.isfinite(m[key]); m["epoch"][ok], m[key][ok]``.

    Parameters
    ----------
    path : str or PathLike
        The CSV file (or a run's version folder holding ``metrics.csv``).

    Returns
    -------
    dict of str to np.ndarray
        Column name -> ``(rows,)`` float64 array, in file column order.

    Raises
    ------
    LFADSDataError
        If the file is missing, empty, or holds a cell that is not a number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.exists():
        raise LFADSDataError(f"{path}: metrics file not found; the CSV logger writes it during `lfads fit`.")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise LFADSDataError(f"{path}: empty metrics file (no header row).")
    header, body = rows[0], rows[1:]
    table = np.full((len(body), len(header)), np.nan)
    for i, row in enumerate(body):
        for j, cell in enumerate(row[: len(header)]):
            if cell.strip() == "":
                continue
            try:
                table[i, j] = float(cell)
            except ValueError as err:
                raise LFADSDataError(
                    f"{path}: row {i + 2}, column '{header[j]}' holds {cell!r}, not a number."
                ) from err
    return {name: table[:, j].copy() for j, name in enumerate(header)}
