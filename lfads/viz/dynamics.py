"""Linearised dynamics of the generator: eigenvalue spectra, fixed points on trajectories, JSLDS errors.

For a map :math:`h_t = F(h_{t-1}, u)` linearised at a fixed point :math:`h^*`
(:mod:`lfads.analysis.linearization`), mode :math:`k` grows when :math:`|\\lambda_k| > 1`, so the unit
circle separates decaying from growing modes. The fixed-point and spectrum drawings are those of
:mod:`lfads.analysis.plots` (stability colours, fixed/slow markers, unstable-mode segments); the
functions here add argument checks, condition-coloured trajectories and a returned Figure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lfads.analysis import plots as analysis_plots
from lfads.analysis.linearization import STABILITY_CLASSES, classify_stability
from lfads.analysis.projection import PCA, compute_pca
from lfads.errors import LFADSDataError
from lfads.viz._common import as_array, check_indices, make_axes, time_values
from lfads.viz.latents import _check_pca, plot_trajectories

__all__ = ["plot_eigenvalues", "plot_fixed_points", "plot_jslds_error"]


class _Spectra:
    """Eigenvalues and stability classes in the form :func:`lfads.analysis.plots.plot_eigenvalue_spectra` reads."""

    def __init__(self, eigenvalues: np.ndarray, stability: np.ndarray) -> None:
        self.eigenvalues = eigenvalues
        self.stability = stability

    def __len__(self) -> int:
        return int(self.eigenvalues.shape[0])


def _stability_array(stability: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(stability).astype(str)
    if arr.shape != (n,):
        raise LFADSDataError(f"{name} has shape {arr.shape} but there are {n} points; give one class per point.")
    unknown = sorted(set(arr.tolist()) - set(STABILITY_CLASSES))
    if unknown:
        raise LFADSDataError(f"{name} holds {unknown}; the classes are {list(STABILITY_CLASSES)}.")
    return arr


def plot_eigenvalues(
    eigenvalues: Any,
    stability: Sequence[str] | np.ndarray | None = None,
    *,
    points: Sequence[int] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Eigenvalues :math:`\\lambda` of linearisations in the complex plane, with the unit circle.

    Drawn by :func:`lfads.analysis.plots.plot_eigenvalue_spectra`: one scatter per point, coloured by its
    stability class (stable: every :math:`|\\lambda| < 1`; saddle: some; unstable: all :math:`> 1`).

    Parameters
    ----------
    eigenvalues : np.ndarray or FixedPoints
        ``(points, H)`` (or ``(H,)``) complex eigenvalues, or a
        :class:`lfads.analysis.fixed_points.FixedPoints` (its ``eigenvalues`` and ``stability``).
    stability : sequence of str, optional
        ``(points,)`` class per point; classified from the eigenvalues
        (:func:`lfads.analysis.linearization.classify_stability`) when not given.
    points : sequence of int, optional
        Points to draw (all by default).
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    if hasattr(eigenvalues, "eigenvalues"):
        if stability is None:
            stability = getattr(eigenvalues, "stability", None)
        eigenvalues = eigenvalues.eigenvalues
    lam = as_array(eigenvalues, "eigenvalues", (1, 2), "(points, H) or (H,) complex").astype(np.complex128)
    if lam.ndim == 1:
        lam = lam[None]
    stab = classify_stability(lam)[0] if stability is None else _stability_array(stability, lam.shape[0], "stability")
    sel = check_indices(points, lam.shape[0], "points", "point")
    fig, axes = make_axes(ax, 1, 1, figsize=(4.4, 4.2))
    analysis_plots.plot_eigenvalue_spectra(_Spectra(lam, stab), indices=[int(i) for i in sel], ax=axes[0, 0])
    return fig


def plot_fixed_points(
    fixed_points: Any,
    trajectories: np.ndarray | None = None,
    *,
    conditions: np.ndarray | None = None,
    pca: PCA | None = None,
    n_components: int = 2,
    trials: Sequence[int] | None = None,
    show_unstable_modes: bool = True,
    mode_scale: float = 0.25,
    ax: Axes | None = None,
) -> Figure:
    """Fixed points over state trajectories on the trajectories' principal components.

    Trajectories are drawn by :func:`lfads.viz.plot_trajectories` (coloured by condition), the points by
    :func:`lfads.analysis.plots.plot_fixed_points`: colour by stability class, circles for fixed and
    squares for slow points, and each unstable mode :math:`v_k` (:math:`|\\lambda_k| > 1`, real part, unit
    norm) as the segment :math:`h^* \\pm s\\, v_k` projected, :math:`s` = ``mode_scale``.

    Parameters
    ----------
    fixed_points : lfads.analysis.fixed_points.FixedPoints
        From :func:`lfads.analysis.fixed_points.find_fixed_points`.
    trajectories : np.ndarray, optional
        ``(trials, time, H)`` states, e.g. generator states.
    conditions : np.ndarray, optional
        ``(trials,)`` labels colouring the trajectories.
    pca : lfads.analysis.projection.PCA, optional
        Projection; fitted to the trajectories (or to the points without trajectories) by default.
    n_components : int
        2 or 3.
    trials : sequence of int, optional
        Trajectories to draw (all by default).
    show_unstable_modes : bool
        Draw the unstable eigenvectors.
    mode_scale : float
        Half length :math:`s` of the mode segments, in state units.
    ax : Axes, optional
        Where to draw (3-D for ``n_components=3``); a new figure by default.

    Returns
    -------
    Figure
    """
    for attr in ("states", "stability", "eigenvalues", "kind", "n_unstable", "unstable_modes"):
        if not hasattr(fixed_points, attr):
            raise LFADSDataError(f"fixed_points has no '{attr}'; pass a lfads.analysis.fixed_points.FixedPoints.")
    states = as_array(fixed_points.states, "fixed_points.states", 2, "(points, H)")
    n_points, hidden = states.shape
    _stability_array(fixed_points.stability, n_points, "fixed_points.stability")
    if n_components not in (2, 3):
        raise LFADSDataError(f"n_components must be 2 or 3; got {n_components}.")
    traj = None
    if trajectories is not None:
        traj = as_array(trajectories, "trajectories", 3, "(trials, time, H)")
        if traj.shape[2] != hidden:
            raise LFADSDataError(f"trajectories have {traj.shape[2]} units but fixed_points.states have {hidden}; "
                                 "both must live in the same state space.")
    if pca is None:
        if traj is None and n_points < 2:
            raise LFADSDataError("with fewer than two fixed points and no trajectories there is nothing to fit a "
                                 "projection to; pass trajectories or pca.")
        pca = compute_pca(traj if traj is not None else states, n_components)
    _check_pca(pca, hidden, n_components, "pca")
    if traj is not None:
        fig = plot_trajectories(traj, conditions, n_components=n_components, pca=pca, trials=trials, events={},
                                alpha=0.35, linewidth=0.8, ax=ax)
        axis = fig.axes[0] if ax is None else ax
    else:
        if ax is None:
            fig, axes = make_axes(None, 1, 1, figsize=(5.0, 4.4),
                                  **({"projection": "3d"} if n_components == 3 else {}))
            axis = axes[0, 0]
        else:
            axis, fig = ax, ax.figure
    analysis_plots.plot_fixed_points(fixed_points, None, pca=pca, n_components=n_components, ax=axis,
                                     mode_scale=mode_scale, show_unstable_modes=show_unstable_modes)
    return fig


def plot_jslds_error(
    errors: np.ndarray | Mapping[str, np.ndarray],
    *,
    bin_size: float | None = None,
    logy: bool = False,
    ylabel: str = "relative error",
    ax: Axes | None = None,
) -> Figure:
    """JSLDS approximation error over time: mean over trials with a band of one standard error.

    For errors :math:`e_{i,t}` of trials :math:`i = 1..n` the line is :math:`\\bar e_t = \\frac1n\\sum_i e_{i,t}`
    and the band :math:`\\bar e_t \\pm s_t / \\sqrt n` (:math:`s_t` the sample standard deviation).

    Parameters
    ----------
    errors : np.ndarray or mapping of str to np.ndarray
        ``(trials, time)`` or ``(time,)`` errors, or several such series by name (e.g. one-step and rollout).
    bin_size : float, optional
        Bin width in seconds (time in s).
    logy : bool
        Logarithmic vertical axis.
    ylabel : str
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    series = errors if isinstance(errors, Mapping) else {"error": errors}
    if not series:
        raise LFADSDataError("errors is an empty mapping; give at least one (trials, time) array.")
    arrays = {name: as_array(v, f"errors['{name}']" if isinstance(errors, Mapping) else "errors", (1, 2),
                             "(trials, time) or (time,)") for name, v in series.items()}
    lengths = {name: v.shape[-1] for name, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise LFADSDataError(f"the error series have different numbers of time bins {lengths}; they must match.")
    fig, axes = make_axes(ax, 1, 1, figsize=(5.0, 3.2))
    a = axes[0, 0]
    for c, (name, e) in enumerate(arrays.items()):
        e2 = e[None] if e.ndim == 1 else e
        t, t_label = time_values(e2.shape[1], bin_size)
        mean = np.nanmean(e2, axis=0)
        a.plot(t, mean, color=f"C{c}", lw=1.6, label=name)
        if e2.shape[0] > 1:
            sem = np.nanstd(e2, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(e2), axis=0))
            a.fill_between(t, mean - sem, mean + sem, color=f"C{c}", alpha=0.25, linewidth=0)
    if logy:
        a.set_yscale("log")
    a.set_xlabel(t_label)
    a.set_ylabel(ylabel)
    if isinstance(errors, Mapping):
        a.legend(fontsize="small", frameon=False)
    return fig
