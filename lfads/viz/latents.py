"""Latent variables of a trained model: factor / generator trajectories, inferred inputs, IC posteriors.

Trajectories and IC means are drawn on their principal components (:mod:`lfads.analysis.projection`):
with the centred states :math:`X - \\mu = U S V^T`, a state :math:`h` is drawn at
:math:`(h - \\mu) V_{:, :k}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lfads.analysis.projection import PCA, compute_pca
from lfads.errors import LFADSDataError
from lfads.viz._common import (
    align_to_events,
    as_array,
    check_indices,
    check_leading,
    condition_colors,
    make_axes,
    time_values,
)

__all__ = ["EVENT_MARKERS", "plot_ic_embedding", "plot_inferred_inputs", "plot_trajectories"]

EVENT_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "*", "X")
"""Markers given to trial events in the order the events are listed."""


def _event_bins(events: Mapping[str, int | np.ndarray] | None, n_trials: int, n_time: int) -> dict[str, np.ndarray]:
    """Each event as ``(trials,)`` float bins (NaN where a trial lacks it); a scalar applies to every trial."""
    if events is None:
        events = {"start": 0}
    out = {}
    for name, value in events.items():
        arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full(n_trials, float(arr))
        if arr.shape != (n_trials,):
            raise LFADSDataError(f"events['{name}'] has shape {arr.shape}; give one bin for all trials or one per "
                                 f"trial, shape ({n_trials},).")
        inside = (arr >= 0) & (arr <= n_time - 1)
        if np.isfinite(arr).any() and not inside.any():
            raise LFADSDataError(f"events['{name}'] falls outside every trial (bins 0 to {n_time - 1}); give bins "
                                 "within the trials.")
        out[name] = np.where(inside, arr, np.nan)
    return out


def _check_pca(pca: PCA, dims: int, n_components: int, name: str) -> None:
    if pca.components.ndim != 2 or pca.components.shape[1] != dims:
        raise LFADSDataError(f"{name} was fitted to states of size {pca.components.shape[-1]} but states have size "
                             f"{dims}; fit it with lfads.analysis.projection.compute_pca on the same kind of states.")
    if pca.components.shape[0] < n_components:
        raise LFADSDataError(f"{name} has {pca.components.shape[0]} components; n_components={n_components} "
                             "needs at least that many.")


def _pc_labels(axis: Axes, pca: PCA, k: int, prefix: str = "PC") -> None:
    setters = [axis.set_xlabel, axis.set_ylabel] + ([axis.set_zlabel] if k == 3 else [])
    for j, setter in enumerate(setters):
        setter(f"{prefix}{j + 1} ({100 * pca.explained_variance_ratio[j]:.0f}% var.)")


def _point_at(traj: np.ndarray, bin_: float) -> np.ndarray:
    """Linear interpolation of a ``(time, k)`` trajectory at a fractional bin."""
    lo = int(np.floor(bin_))
    hi = min(lo + 1, traj.shape[0] - 1)
    w = bin_ - lo
    return (1 - w) * traj[lo] + w * traj[hi]


def plot_trajectories(
    states: np.ndarray,
    conditions: np.ndarray | None = None,
    *,
    n_components: int = 2,
    pca: PCA | None = None,
    trials: Sequence[int] | None = None,
    average_conditions: bool = False,
    events: Mapping[str, int | np.ndarray] | None = None,
    cmap: str | Colormap | None = None,
    linewidth: float = 1.0,
    alpha: float = 0.8,
    ax: Axes | None = None,
) -> Figure:
    """Factor or generator-state trajectories on their top principal components, coloured by condition.

    Each trial (or, with ``average_conditions``, each condition mean
    :math:`\\bar h_c(t) = \\frac{1}{|\\mathcal T_c|}\\sum_{i \\in \\mathcal T_c} h_i(t)`) is one line; a marker
    sits where each trajectory is at each event bin (interpolated for fractional bins).

    Parameters
    ----------
    states : np.ndarray
        ``(trials, time, dims)`` factors or generator states.
    conditions : np.ndarray, optional
        ``(trials,)`` condition labels (colours); one colour for all without.
    n_components : int
        2 or 3 (a 3-D axes).
    pca : lfads.analysis.projection.PCA, optional
        Projection to use (e.g. shared with :func:`lfads.viz.plot_fixed_points`); fitted to all ``states``
        by default.
    trials : sequence of int, optional
        Trials to draw (all by default); the projection is fitted to all trials either way.
    average_conditions : bool
        Draw condition means instead of single trials (needs ``conditions``).
    events : mapping of str to int or array, optional
        Event name -> bin (one for all trials, or ``(trials,)``, NaN or out of range where absent; may be
        fractional). Default ``{"start": 0}``; ``{}`` draws no markers.
    cmap : str or Colormap, optional
        Condition colours.
    linewidth, alpha : float
        Line style.
    ax : Axes, optional
        Axes to draw into (3-D for ``n_components=3``).

    Returns
    -------
    Figure
    """
    x = as_array(states, "states", 3, "(trials, time, dims)")
    n_trials, n_time, dims = x.shape
    if n_components not in (2, 3):
        raise LFADSDataError(f"n_components must be 2 or 3; got {n_components}.")
    if dims < n_components:
        raise LFADSDataError(f"states have {dims} dimensions; n_components={n_components} needs at least that many.")
    if conditions is not None:
        conditions = check_leading(conditions, "conditions", n_trials, "states")
    if average_conditions and conditions is None:
        raise LFADSDataError("average_conditions=True needs conditions (one label per trial).")
    if pca is None:
        pca = compute_pca(x, n_components)
    _check_pca(pca, dims, n_components, "pca")
    ev = _event_bins(events, n_trials, n_time)
    sel = check_indices(trials, n_trials, "trials", "trial")
    proj = pca.transform(x[sel])[..., :n_components]
    labels_sel = None if conditions is None else conditions[sel]
    ev = {k: v[sel] for k, v in ev.items()}
    if average_conditions:
        groups = np.unique(labels_sel)
        proj = np.stack([proj[labels_sel == c].mean(0) for c in groups])
        with np.errstate(invalid="ignore"):
            ev = {k: np.array([np.nanmean(v[labels_sel == c]) if np.isfinite(v[labels_sel == c]).any() else np.nan
                               for c in groups]) for k, v in ev.items()}
        labels_sel = groups
    if labels_sel is not None:
        _, colors = condition_colors(conditions, cmap)
        line_colors = [colors[c] for c in labels_sel]
    else:
        line_colors = ["C0"] * proj.shape[0]
    if ax is None:
        fig, axes = make_axes(None, 1, 1, figsize=(5.0, 4.4), **({"projection": "3d"} if n_components == 3 else {}))
        ax = axes[0, 0]
    elif n_components == 3 and getattr(ax, "name", "") != "3d":
        raise LFADSDataError("n_components=3 needs a 3-D axes (fig.add_subplot(projection='3d')) or ax=None.")
    fig = ax.figure
    for traj, color in zip(proj, line_colors):
        ax.plot(*traj.T, color=color, lw=linewidth, alpha=alpha)
    for m, (name, bins) in enumerate(ev.items()):
        pts, cols = [], []
        for traj, b, color in zip(proj, bins, line_colors):
            if np.isfinite(b):
                pts.append(_point_at(traj, b))
                cols.append(color)
        if pts:
            ax.scatter(*np.asarray(pts).T, marker=EVENT_MARKERS[m % len(EVENT_MARKERS)], c=cols, edgecolors="k",
                       linewidths=0.6, s=30, zorder=3, label=name)
    if ev:
        ax.legend(fontsize="small", frameon=False)
    _pc_labels(ax, pca, n_components)
    return fig


def plot_inferred_inputs(
    inputs: np.ndarray,
    *,
    event_bins: np.ndarray | None = None,
    window: tuple[int, int] = (10, 30),
    true_inputs: np.ndarray | None = None,
    tau: float | Sequence[float] | np.ndarray | None = None,
    bin_size: float | None = None,
    trials: Sequence[int] | None = None,
    max_traces: int = 20,
    event_label: str = "event",
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Inferred inputs, aligned to a trial event, with the timescale of their AR(1) prior.

    One panel per input dimension :math:`j`. With ``event_bins`` the inputs are cut around each trial's
    event (:func:`lfads.viz.align_to_events`): up to ``max_traces`` single trials (thin) and the mean over
    trials (thick); without, up to ``max_traces`` trials on the trial clock. The shaded band spans
    :math:`[0, \\tau_j]` after the event (after the trial start without events): the prior
    :math:`u_t = \\alpha u_{t-1} + \\epsilon_t`, :math:`\\alpha = e^{-1/\\tau_j}`, expects inputs to stay
    correlated for about :math:`\\tau_j` bins. True inputs, if given, are drawn (mean over the same trials)
    on a second y axis in their own units.

    Parameters
    ----------
    inputs : np.ndarray
        ``(trials, time, co_dim)`` inferred inputs (e.g. ``co_means`` or ``inferred_inputs``).
    event_bins : np.ndarray, optional
        ``(trials,)`` bin of the event per trial.
    window : tuple of int
        ``(before, after)`` bins around the event.
    true_inputs : np.ndarray, optional
        ``(trials, time, k)`` true inputs (same trials and bins; any ``k``).
    tau : float or array, optional
        AR(1) prior timescale(s) in bins, ``(co_dim,)`` or one for all (e.g. ``run.co_prior_tau()``).
    bin_size : float, optional
        Bin width in seconds (time in s).
    trials : sequence of int, optional
        Trials to use (all by default).
    max_traces : int
        Most single-trial lines per panel.
    event_label : str
        Name of the event on the time axis.
    ax : Axes or array of Axes, optional
        One axes per input dimension.

    Returns
    -------
    Figure
    """
    u = as_array(inputs, "inputs", 3, "(trials, time, co_dim)")
    n_trials, n_time, co_dim = u.shape
    if co_dim == 0:
        raise LFADSDataError("inputs has no input dimension (co_dim = 0): the model's generator is autonomous and "
                             "infers no inputs.")
    true = None
    if true_inputs is not None:
        true = as_array(true_inputs, "true_inputs", 3, "(trials, time, k)")
        if true.shape[:2] != (n_trials, n_time):
            raise LFADSDataError(f"true_inputs has shape {true.shape} but inputs has shape {u.shape}; they must share "
                                 "trials and time bins.")
    taus = None
    if tau is not None:
        taus = np.atleast_1d(np.asarray(tau, dtype=np.float64))
        if taus.size == 1:
            taus = np.repeat(taus, co_dim)
        if taus.shape != (co_dim,):
            raise LFADSDataError(f"tau has shape {taus.shape} but inputs has co_dim = {co_dim}; give one timescale "
                                 f"per input dimension or one for all.")
    sel = check_indices(trials, n_trials, "trials", "trial")
    unit = 1.0 if bin_size is None else float(bin_size)
    if event_bins is not None:
        events = check_leading(event_bins, "event_bins", n_trials, "inputs")[sel]
        u_sel, lags = align_to_events(u[sel], events, window)
        true_sel = None if true is None else align_to_events(true[sel], events, window)[0]
        x = lags * unit
        x_label = f"time from {event_label} ({'bins' if bin_size is None else 's'})"
    else:
        u_sel, true_sel = u[sel], None if true is None else true[sel]
        x, x_label = time_values(n_time, bin_size)
    fig, axes = make_axes(ax, co_dim, 1, figsize=(6.0, 2.6 * co_dim))
    for j in range(co_dim):
        a = axes[j, 0]
        for trace in u_sel[:max_traces, :, j]:
            a.plot(x, trace, color="0.6", lw=0.7, alpha=0.6)
        if event_bins is not None:
            with np.errstate(invalid="ignore"):
                a.plot(x, np.nanmean(u_sel[:, :, j], axis=0), color="C0", lw=2.0, label="inferred (mean)")
            a.axvline(0.0, color="k", lw=0.8, ls="--")
        if taus is not None:
            a.axvspan(0.0, taus[j] * unit, color="C1", alpha=0.2,
                      label=f"AR(1) prior $\\tau$ = {taus[j]:.3g} bins" + ("" if bin_size is None else
                                                                         f" ({1000 * taus[j] * unit:.0f} ms)"))
        a.set_ylabel(f"inferred input {j}")
        a.set_xlabel(x_label)
        handles, _ = a.get_legend_handles_labels()
        if true_sel is not None:
            twin = a.twinx()
            for k in range(true_sel.shape[2]):
                if event_bins is not None:
                    with np.errstate(invalid="ignore"):
                        twin.plot(x, np.nanmean(true_sel[:, :, k], axis=0), color="C3", lw=1.2, ls="-", alpha=0.8)
                else:
                    for trace in true_sel[:max_traces, :, k]:
                        twin.plot(x, trace, color="C3", lw=0.8, alpha=0.6)
            twin.set_ylabel("true input", color="C3")
            handles = handles + [Line2D([], [], color="C3", lw=1.2, label="true input" +
                                        (" (mean)" if event_bins is not None else ""))]
        if handles:
            a.legend(handles=handles, fontsize="small", frameon=False, loc="upper right")
    return fig


def plot_ic_embedding(
    ic_mean: np.ndarray,
    conditions: np.ndarray | None = None,
    *,
    cmap: str | Colormap | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Posterior means of the initial conditions on their first two principal components, coloured by condition.

    Parameters
    ----------
    ic_mean : np.ndarray
        ``(trials, ic_dim)`` IC posterior means.
    conditions : np.ndarray, optional
        ``(trials,)`` labels: a legend for up to 10 conditions, a colour bar for more.
    cmap : str or Colormap, optional
        Condition colours.
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    z = as_array(ic_mean, "ic_mean", 2, "(trials, ic_dim)")
    if z.shape[1] < 2:
        raise LFADSDataError(f"ic_mean has {z.shape[1]} dimension(s); a 2-D embedding needs at least 2.")
    pca = compute_pca(z, 2)
    xy = pca.transform(z)
    fig, axes = make_axes(ax, 1, 1, figsize=(4.6, 4.0))
    a = axes[0, 0]
    if conditions is None:
        a.scatter(xy[:, 0], xy[:, 1], s=14, c="C0", edgecolors="none")
    else:
        conditions = check_leading(conditions, "conditions", z.shape[0], "ic_mean")
        labels, colors = condition_colors(conditions, cmap)
        a.scatter(xy[:, 0], xy[:, 1], s=14, c=[colors[c] for c in conditions], edgecolors="none")
        if labels.size <= 10:
            a.legend(handles=[Line2D([], [], ls="", marker="o", color=colors[c], label=str(c)) for c in labels],
                     title="condition", fontsize="small", frameon=False)
        else:
            cm = plt.get_cmap(cmap if cmap is not None else "viridis")
            mappable = ScalarMappable(norm=Normalize(0, labels.size - 1), cmap=cm)
            fig.colorbar(mappable, ax=a, label="condition (rank)")
    _pc_labels(a, pca, 2, prefix="IC PC")
    a.set_title("IC posterior means")
    return fig
