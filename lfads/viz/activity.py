"""Spiking data against inferred rates: single-trial rasters and condition-averaged PSTHs.

Arrays are ``(trials, time, neurons)``; rates and true rates are expected counts per bin (as in
:mod:`lfads.metrics`) and are drawn in spikes/s when ``bin_size`` (s) is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lfads.errors import LFADSDataError, check_setting
from lfads.viz._common import (
    as_array,
    check_indices,
    check_leading,
    check_same_shape,
    condition_colors,
    make_axes,
    rate_scale,
    time_values,
)

__all__ = ["plot_psths", "plot_raster_and_rates"]

LAYOUT = "(trials, time, neurons)"


def plot_raster_and_rates(
    spikes: np.ndarray,
    rates: np.ndarray,
    trials: Sequence[int] = (0,),
    *,
    truth: np.ndarray | None = None,
    neurons: Sequence[int] | None = None,
    bin_size: float | None = None,
    start_time: float = 0.0,
    ax: Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Spike raster next to the inferred rates (and the true rates) of chosen trials.

    Row ``i`` shows trial ``trials[i]``: a raster with a tick at :math:`(t, n)` for every bin with
    :math:`x_{t,n} > 0` (tick size grows with the count), then the rates :math:`\\hat r_{t,n}` as an
    image (neurons down, time across), then the true rates on the same colour scale if given.

    Parameters
    ----------
    spikes : np.ndarray
        ``(trials, time, neurons)`` spike counts.
    rates : np.ndarray
        ``(trials, time, neurons)`` inferred rates (expected counts per bin).
    trials : sequence of int
        Trials to draw, one row each.
    truth : np.ndarray, optional
        ``(trials, time, neurons)`` true rates (expected counts per bin).
    neurons : sequence of int, optional
        Neurons to draw, top to bottom (all by default).
    bin_size : float, optional
        Bin width in seconds: time in s and rates in spikes/s (bins and counts per bin otherwise).
    start_time : float
        Time of bin 0 (s, or bins without ``bin_size``), e.g. the window start relative to an alignment event.
    ax : array of Axes, optional
        ``len(trials) x (2 or 3)`` axes to draw into (row by row); a new figure by default.

    Returns
    -------
    Figure

    Raises
    ------
    LFADSDataError
        (a ``ValueError``) if ``spikes``, ``rates`` and ``truth`` differ in shape or an index is out of range.
    """
    spikes = as_array(spikes, "spikes", 3, LAYOUT)
    rates = as_array(rates, "rates", 3, LAYOUT)
    truth = None if truth is None else as_array(truth, "truth", 3, LAYOUT)
    check_same_shape({"spikes": spikes, "rates": rates, "truth": truth}, LAYOUT)
    trial_idx = check_indices(trials, spikes.shape[0], "trials", "trial")
    neuron_idx = check_indices(neurons, spikes.shape[2], "neurons", "neuron")
    ncols = 2 if truth is None else 3
    fig, axes = make_axes(ax, trial_idx.size, ncols, figsize=(3.6 * ncols, 2.6 * trial_idx.size))
    scale, unit = rate_scale(bin_size)
    t, t_label = time_values(spikes.shape[1], bin_size, start_time)
    dt = t[1] - t[0] if t.size > 1 else 1.0
    extent = (t[0] - dt / 2, t[-1] + dt / 2, neuron_idx.size - 0.5, -0.5)
    for row, i in enumerate(trial_idx):
        counts = spikes[i][:, neuron_idx]  # (time, neurons)
        tt, nn = np.nonzero(counts > 0)
        ax_r = axes[row, 0]
        ax_r.scatter(t[tt], nn, marker="|", s=12.0 + 12.0 * (counts[tt, nn] - 1), c="k", linewidths=0.8)
        ax_r.set_xlim(extent[0], extent[1])
        ax_r.set_ylim(extent[2], extent[3])
        ax_r.set_ylabel("neuron")
        ax_r.set_title(f"trial {i}: spikes")
        images = [rates[i][:, neuron_idx] * scale]
        titles = ["inferred rates"]
        if truth is not None:
            images.append(truth[i][:, neuron_idx] * scale)
            titles.append("true rates")
        vmax = max(float(np.nanmax(img)) for img in images) or 1.0
        for col, (img, title) in enumerate(zip(images, titles), start=1):
            a = axes[row, col]
            im = a.imshow(img.T, aspect="auto", interpolation="nearest", extent=extent, vmin=0.0, vmax=vmax,
                          cmap="magma")
            a.set_title(title)
            a.set_ylabel("neuron")
        fig.colorbar(im, ax=list(axes[row, 1:]), label=unit, shrink=0.9)
        for a in axes[row]:
            a.set_xlabel(t_label)
    return fig


def plot_psths(
    rates: np.ndarray,
    spikes: np.ndarray,
    conditions: np.ndarray,
    neurons: Sequence[int] = (0,),
    *,
    truth: np.ndarray | None = None,
    show_conditions: Sequence | None = None,
    bin_size: float | None = None,
    smooth_sigma: float = 0.0,
    start_time: float = 0.0,
    cmap: str | Colormap | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Single-neuron PSTHs by condition: model (solid), data (dashed) and truth (dotted).

    For condition :math:`c` with trials :math:`\\mathcal T_c`,
    :math:`\\mathrm{PSTH}_{c}(t) = \\frac{1}{|\\mathcal T_c|}\\sum_{i \\in \\mathcal T_c} y_{i,t,n}` for
    the model rates, the spike counts (optionally Gaussian-smoothed along time with ``smooth_sigma`` bins,
    :func:`lfads.baselines.smooth_spikes`) and the true rates.

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, time, neurons)`` inferred rates (expected counts per bin).
    spikes : np.ndarray
        ``(trials, time, neurons)`` spike counts.
    conditions : np.ndarray
        ``(trials,)`` condition label per trial.
    neurons : sequence of int
        Neurons to draw, one panel each.
    truth : np.ndarray, optional
        ``(trials, time, neurons)`` true rates.
    show_conditions : sequence, optional
        Condition labels to draw (all by default).
    bin_size : float, optional
        Bin width in seconds (time in s, rates in spikes/s).
    smooth_sigma : float
        Gaussian smoothing of the data PSTH, in bins (0: none).
    start_time : float
        Time of bin 0 (s, or bins without ``bin_size``).
    cmap : str or Colormap, optional
        Condition colours (see :func:`lfads.viz._common.condition_colors`).
    ax : Axes or array of Axes, optional
        One axes per neuron.

    Returns
    -------
    Figure
    """
    from lfads.baselines import smooth_spikes

    rates = as_array(rates, "rates", 3, LAYOUT)
    spikes = as_array(spikes, "spikes", 3, LAYOUT)
    truth = None if truth is None else as_array(truth, "truth", 3, LAYOUT)
    check_same_shape({"rates": rates, "spikes": spikes, "truth": truth}, LAYOUT)
    conditions = check_leading(conditions, "conditions", rates.shape[0], "rates")
    neuron_idx = check_indices(neurons, rates.shape[2], "neurons", "neuron")
    labels = np.unique(conditions)
    if show_conditions is not None:
        wanted = np.atleast_1d(np.asarray(show_conditions))
        missing = [c for c in wanted.tolist() if c not in set(labels.tolist())]
        if missing:
            raise LFADSDataError(f"show_conditions holds {missing}, not among the conditions {labels.tolist()}.")
        labels = wanted
    _, colors = condition_colors(labels, cmap)  # colours spread over the conditions drawn
    fig, axes = make_axes(ax, 1, neuron_idx.size, figsize=(3.8 * neuron_idx.size, 3.0))
    scale, unit = rate_scale(bin_size)
    t, t_label = time_values(rates.shape[1], bin_size, start_time)
    check_setting("plot_psths", "smooth_sigma", smooth_sigma, 0.0)
    data = smooth_spikes(spikes, smooth_sigma) if smooth_sigma > 0 else spikes
    for col, n in enumerate(neuron_idx):
        a = axes[0, col]
        for c in labels:
            sel = conditions == c
            a.plot(t, rates[sel, :, n].mean(0) * scale, color=colors[c], lw=1.8)
            a.plot(t, data[sel, :, n].mean(0) * scale, color=colors[c], lw=1.0, ls="--", alpha=0.8)
            if truth is not None:
                a.plot(t, truth[sel, :, n].mean(0) * scale, color=colors[c], lw=1.2, ls=":")
        a.set_title(f"neuron {n}")
        a.set_xlabel(t_label)
        a.set_ylabel(unit)
        handles = [Line2D([], [], color="0.3", lw=1.8, label="model"),
                   Line2D([], [], color="0.3", lw=1.0, ls="--", label="data" + (" (smoothed)" if smooth_sigma else ""))]
        if truth is not None:
            handles.append(Line2D([], [], color="0.3", lw=1.2, ls=":", label="truth"))
        if col == 0:
            a.legend(handles=handles, fontsize="small", frameon=False)
    return fig
