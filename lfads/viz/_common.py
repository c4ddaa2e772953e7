"""Shared helpers of :mod:`lfads.viz`: argument checks, axes creation, condition colours, event alignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from lfads.errors import LFADSDataError, check_setting

__all__ = ["align_to_events"]


def as_array(value: Any, name: str, ndim: int | Sequence[int], layout: str) -> np.ndarray:
    """``value`` (numpy array, torch tensor or nested sequence) as a float64 array with ``ndim`` dimensions.

    Raises
    ------
    LFADSDataError
        Naming ``name`` and its expected ``layout`` when the number of dimensions is wrong.
    """
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if np.iscomplexobj(arr):
        arr = arr.astype(np.complex128)
    else:
        arr = arr.astype(np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        raise LFADSDataError(f"{name} must be {layout}; got an array of shape {arr.shape}.")
    return arr


def check_same_shape(arrays: Mapping[str, np.ndarray | None], layout: str) -> None:
    """Raise unless every non-``None`` array has the shape of the first one, naming the arguments that differ."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.shape != first.shape:
            raise LFADSDataError(
                f"{name} has shape {arr.shape} but {first_name} has shape {first.shape}; both must be {layout} "
                "with the same sizes."
            )


def check_leading(value: Any, name: str, n: int, what: str) -> np.ndarray:
    """``value`` as a 1-D array of length ``n`` (one entry per trial), else a clear error."""
    arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    if arr.shape != (n,):
        raise LFADSDataError(f"{name} has shape {arr.shape} but {what} has {n} trials; give one value per trial, "
                             f"shape ({n},).")
    return arr


def check_indices(indices: Sequence[int] | np.ndarray | None, size: int, name: str, axis_name: str) -> np.ndarray:
    """Integer indices into an axis of length ``size`` (all of it for ``None``)."""
    if indices is None:
        return np.arange(size)
    idx = np.atleast_1d(np.asarray(indices))
    if idx.size == 0:
        raise LFADSDataError(f"{name} is empty; choose at least one {axis_name} index.")
    if not np.issubdtype(idx.dtype, np.integer):
        raise LFADSDataError(f"{name} must hold integer {axis_name} indices; got dtype {idx.dtype}.")
    bad = idx[(idx < -size) | (idx >= size)]
    if bad.size:
        raise LFADSDataError(f"{name} holds {bad.tolist()}, out of range for {size} {axis_name}s.")
    return idx % size


def make_axes(ax: Axes | Sequence[Axes] | np.ndarray | None, nrows: int, ncols: int, name: str = "ax",
              figsize: tuple[float, float] | None = None, **subplot_kw: Any) -> tuple[Figure, np.ndarray]:
    """A ``(nrows, ncols)`` array of axes: new ones in a new figure, or those given in ``ax`` (any shape, same count).

    Raises
    ------
    LFADSDataError
        If ``ax`` holds a different number of axes.
    """
    if ax is None:
        if figsize is None:
            figsize = (4.0 * ncols, 3.0 * nrows)
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False,
                                 subplot_kw=subplot_kw or None, layout="constrained")
        return fig, axes
    axes = np.array(ax, dtype=object).reshape(-1) if not isinstance(ax, Axes) else np.array([ax], dtype=object)
    if axes.size != nrows * ncols:
        raise LFADSDataError(f"{name} holds {axes.size} axes but this plot needs {nrows * ncols} "
                             f"({nrows} rows x {ncols} columns); pass that many or leave {name}=None.")
    return axes[0].figure, axes.reshape(nrows, ncols)


def condition_colors(conditions: np.ndarray, cmap: str | Colormap | None = None) -> tuple[np.ndarray, dict]:
    """Unique condition labels (sorted) and a colour for each.

    With ``cmap=None``: ``tab10`` for at most 10 conditions, else ``viridis`` spread over the labels.
    """
    labels = np.unique(conditions)
    if cmap is None:
        cmap = "tab10" if labels.size <= 10 else "viridis"
    cm = plt.get_cmap(cmap)
    if getattr(cm, "N", 256) <= 20 and labels.size <= cm.N:  # qualitative map: one entry per label
        colors = {lab: cm(i) for i, lab in enumerate(labels)}
    else:
        pos = np.linspace(0.0, 1.0, labels.size, endpoint=not _is_cyclic(cm)) if labels.size > 1 else [0.5]
        colors = {lab: cm(p) for lab, p in zip(labels, pos)}
    return labels, colors


def _is_cyclic(cm: Colormap) -> bool:
    return cm.name in ("hsv", "twilight", "twilight_shifted")


def time_values(n_time: int, bin_size: float | None, start_time: float = 0.0) -> tuple[np.ndarray, str]:
    """Times of the bins, ``start_time + k * bin_size`` in seconds (``start_time + k`` in bins without ``bin_size``),
    and an axis label."""
    k = np.arange(n_time, dtype=np.float64)
    if bin_size is None:
        return start_time + k, "time (bins)"
    check_setting("plot", "bin_size", bin_size, 0.0, strict=True)
    return start_time + k * float(bin_size), "time (s)"


def rate_scale(bin_size: float | None) -> tuple[float, str]:
    """Factor turning expected counts per bin into the plotted unit, and that unit's label."""
    if bin_size is None:
        return 1.0, "rate (spikes / bin)"
    check_setting("plot", "bin_size", bin_size, 0.0, strict=True)
    return 1.0 / float(bin_size), "rate (spikes / s)"


def align_to_events(
    values: np.ndarray,
    event_bins: Sequence[int] | np.ndarray,
    window: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a window around one event per trial.

    .. math::

        a_{i,k} = x_{i,\\, e_i + \\ell_k},\\qquad
        \\ell_k = -\\text{before} + k,\\ k = 0..\\text{before}+\\text{after}-1

    with NaN where :math:`e_i + \\ell_k` falls outside the trial.

    Parameters
    ----------
    values : np.ndarray
        ``(trials, time, dims)`` (or ``(trials, time)``).
    event_bins : array-like of int
        ``(trials,)`` bin of the event in each trial.
    window : tuple of int
        ``(before, after)``: bins kept before the event bin and from it on.

    Returns
    -------
    aligned : np.ndarray
        ``(trials, before + after, dims)`` (or ``(trials, before + after)``), float64.
    lags : np.ndarray
        ``(before + after,)`` int, bins relative to the event.
    """
    x = as_array(values, "values", (2, 3), "(trials, time, dims) or (trials, time)")
    squeeze = x.ndim == 2
    if squeeze:
        x = x[..., None]
    events = np.asarray(event_bins)
    if events.shape != (x.shape[0],):
        raise LFADSDataError(f"event_bins has shape {events.shape} but values has {x.shape[0]} trials; give one "
                             f"event bin per trial, shape ({x.shape[0]},).")
    if not np.issubdtype(events.dtype, np.integer):
        if not np.all(np.isfinite(events)) or not np.allclose(events, np.round(events)):
            raise LFADSDataError("event_bins must be whole bin indices.")
        events = np.round(events).astype(np.int64)
    before, after = (int(w) for w in window)
    if before < 0 or after < 1:
        raise LFADSDataError(f"window must be (before >= 0, after >= 1) bins; got {window}.")
    lags = np.arange(-before, after)
    idx = events[:, None] + lags[None, :]
    inside = (idx >= 0) & (idx < x.shape[1])
    aligned = np.full((x.shape[0], lags.size, x.shape[2]), np.nan)
    rows = np.broadcast_to(np.arange(x.shape[0])[:, None], idx.shape)
    aligned[inside] = x[rows[inside], idx[inside]]
    return (aligned[..., 0] if squeeze else aligned), lags
