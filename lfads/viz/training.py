"""Training curves from a run's ``metrics.csv``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lfads.errors import LFADSDataError
from lfads.viz._common import make_axes

__all__ = ["plot_training_curves"]

DEFAULT_KEYS: tuple[str, ...] = ("train/loss", "valid/loss")


def plot_training_curves(
    metrics: Mapping[str, np.ndarray] | str | os.PathLike,
    keys: Sequence[str] | None = None,
    *,
    x: str = "epoch",
    logy: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """One line per metric against epochs (or steps), skipping rows where the metric is not logged.

    Lightning's CSV logger writes training and validation values on separate rows; for each key the
    rows with a finite value are drawn, :math:`\\{(x_r, y_r) : y_r \\text{ finite}\\}`.

    Parameters
    ----------
    metrics : mapping or path
        Column name -> ``(rows,)`` array (:func:`lfads.data.metrics_csv.load_metrics`, ``run.metrics``), or the
        path of a ``metrics.csv`` or of the version folder holding it.
    keys : sequence of str, optional
        Columns to draw; default those of ``("train/loss", "valid/loss")`` present.
    x : str
        Column for the horizontal axis (``"epoch"`` or ``"step"``).
    logy : bool
        Logarithmic vertical axis.
    ax : Axes, optional

    Returns
    -------
    Figure

    Raises
    ------
    LFADSDataError
        If a key or ``x`` is not a column (the message lists the columns), or a key has no finite value.
    """
    if isinstance(metrics, (str, os.PathLike)):
        from lfads.data.metrics_csv import load_metrics

        metrics = load_metrics(Path(metrics))
    columns = list(metrics)
    if x not in metrics:
        raise LFADSDataError(f"x='{x}' is not a metrics column; the columns are {columns}.")
    if keys is None:
        keys = [k for k in DEFAULT_KEYS if k in metrics]
        if not keys:
            raise LFADSDataError(f"none of the default keys {list(DEFAULT_KEYS)} is a metrics column; pass keys= "
                                 f"from {columns}.")
    elif isinstance(keys, str):
        keys = [keys]
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise LFADSDataError(f"keys {missing} are not metrics columns; the columns are {columns}.")
    xs = np.asarray(metrics[x], dtype=np.float64)
    fig, axes = make_axes(ax, 1, 1, figsize=(5.0, 3.4))
    a = axes[0, 0]
    for key in keys:
        ys = np.asarray(metrics[key], dtype=np.float64)
        if ys.shape != xs.shape:
            raise LFADSDataError(f"metrics column '{key}' has shape {ys.shape} but '{x}' has shape {xs.shape}.")
        ok = np.isfinite(ys) & np.isfinite(xs)
        if not ok.any():
            raise LFADSDataError(f"metrics column '{key}' has no finite value to draw.")
        a.plot(xs[ok], ys[ok], lw=1.4, label=key)
    if logy:
        a.set_yscale("log")
    a.set_xlabel(x)
    a.set_ylabel(keys[0] if len(keys) == 1 else "value")
    a.legend(fontsize="small", frameon=False)
    return fig
