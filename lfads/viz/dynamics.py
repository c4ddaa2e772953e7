"""Linearised dynamics of the generator: eigenvalue spectra, fixed points on trajectories, JSLDS errors.

For a map :math:`h_t = F(h_{t-1}, u)` linearised at a fixed point :math:`h^*`
(:mod:`lfads.analysis.linearization`), mode :math:`k` grows when :math:`|\\lambda_k| > 1`, so the unit
circle separates decaying from growing modes. Points are marked by stability class: ``stable`` (every
:math:`|\\lambda| < 1`), ``saddle`` (some :math:`|\\lambda| > 1`) and ``unstable`` (all).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lfads.analysis.projection import PCA, compute_pca
from lfads.errors import LFADSDataError
from lfads.viz._common import as_array, check_indices, make_axes, time_values
from lfads.viz.latents import _check_pca, _pc_labels, plot_trajectories

__all__ = ["STABILITY_STYLES", "plot_eigenvalues", "plot_fixed_points", "plot_jslds_error"]

STABILITY_STYLES: dict[str, dict[str, Any]] = {
    "stable": {"marker": "o", "facecolors": "k", "edgecolors": "k", "color": "k"},
    "saddle": {"marker": "X", "facecolors": "C1", "edgecolors": "k", "color": "C1"},
    "unstable": {"marker": "o", "facecolors": "none", "edgecolors": "C3", "color": "C3"},
}
"""Marker style of each stability class (``color`` is the class colour used for eigenvalues)."""


def _stability_array(stability: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(stability).astype(str)
    if arr.shape != (n,):
        raise LFADSDataError(f"{name} has shape {arr.shape} but there are {n} points; give one class per point.")
    unknown = sorted(set(arr.tolist()) - set(STABILITY_STYLES))
    if unknown:
        raise LFADSDataError(f"{name} holds {unknown}; the classes are {list(STABILITY_STYLES)}.")
    return arr


def plot_eigenvalues(
    eigenvalues: Any,
    stability: Sequence[str] | np.ndarray | None = None,
    *,
    points: Sequence[int] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Eigenvalues :math:`\\lambda` of linearisations in the complex plane, with the unit circle.

    Parameters
    ----------
    eigenvalues : np.ndarray or FixedPoints
        ``(points, H)`` (or ``(H,)``) complex eigenvalues, or a
        :class:`lfads.analysis.fixed_points.FixedPoints` (its ``eigenvalues`` and ``stability`` are used).
    stability : sequence of str, optional
        ``(points,)`` class per point (colours: stable black, saddle orange, unstable red).
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
    lam = as_array(eigenvalues, "eigenvalues", (1, 2), "(points, H) or (H,) complex")
    if lam.ndim == 1:
        lam = lam[None]
    sel = check_indices(points, lam.shape[0], "points", "point")
    fig, axes = make_axes(ax, 1, 1, figsize=(4.2, 4.0))
    a = axes[0, 0]
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    a.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, ls="--")
    if stability is None:
        vals = lam[sel].ravel()
        a.scatter(vals.real, vals.imag, s=14, color="C0", alpha=0.8, edgecolors="none")
    else:
        stab = _stability_array(stability, lam.shape[0], "stability")[sel]
        for cls, style in STABILITY_STYLES.items():
            mask = stab == cls
            if mask.any():
                vals = lam[sel][mask].ravel()
                a.scatter(vals.real, vals.imag, s=14, color=style["color"], alpha=0.8, edgecolors="none",
                          label=f"{cls} ({int(mask.sum())} pt)")
        a.legend(fontsize="small", frameon=False)
    a.set_aspect("equal", adjustable="datalim")
    a.axhline(0.0, color="0.8", lw=0.5)
    a.axvline(0.0, color="0.8", lw=0.5)
    a.set_xlabel("Re $\\lambda$")
    a.set_ylabel("Im $\\lambda$")
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
    mode_length: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Fixed points over state trajectories on their principal components, marked by stability.

    Each unstable mode (:math:`|\\lambda_k| > 1`, one per complex-conjugate pair) is drawn as a segment
    through its point along the projection of :math:`\\mathrm{Re}\\, v_k` (the right eigenvector), of half
    length ``mode_length`` (default 10% of the largest extent of the drawn states).

    Parameters
    ----------
    fixed_points : FixedPoints
        :class:`lfads.analysis.fixed_points.FixedPoints` (``states`` ``(N, H)``, ``stability``,
        ``eigenvalues``, ``right_eigenvectors``).
    trajectories : np.ndarray, optional
        ``(trials, time, H)`` states (e.g. generator states) drawn as thin lines.
    conditions : np.ndarray, optional
        ``(trials,)`` labels colouring the trajectories.
    pca : lfads.analysis.projection.PCA, optional
        Projection; fitted to the trajectories (or to the points without trajectories) by default.
    n_components : int
        2 or 3.
    trials : sequence of int, optional
        Trajectories to draw.
    show_unstable_modes : bool
        Draw the unstable eigenvectors.
    mode_length : float, optional
        Half length of the eigenvector segments in PC units.
    ax : Axes, optional

    Returns
    -------
    Figure
    """
    for attr in ("states", "stability", "eigenvalues", "right_eigenvectors"):
        if not hasattr(fixed_points, attr):
            raise LFADSDataError(f"fixed_points has no '{attr}'; pass a lfads.analysis.fixed_points.FixedPoints.")
    states = as_array(fixed_points.states, "fixed_points.states", 2, "(points, H)")
    n_points, hidden = states.shape
    stab = _stability_array(fixed_points.stability, n_points, "fixed_points.stability")
    traj = None
    if trajectories is not None:
        traj = as_array(trajectories, "trajectories", 3, "(trials, time, H)")
        if traj.shape[2] != hidden:
            raise LFADSDataError(f"trajectories have {traj.shape[2]} units but fixed_points.states have {hidden}; "
                                 "both must live in the same state space.")
    if pca is None:
        source = traj if traj is not None else states
        if traj is None and n_points < 2:
            raise LFADSDataError("with one fixed point and no trajectories there is nothing to fit a projection to; "
                                 "pass trajectories or pca.")
        pca = compute_pca(source, n_components)
    _check_pca(pca, hidden, n_components, "pca")
    if traj is not None:
        fig = plot_trajectories(traj, conditions, n_components=n_components, pca=pca, trials=trials, events={},
                                alpha=0.35, linewidth=0.8, ax=ax)
        a = fig.axes[0] if ax is None else ax
    else:
        if ax is None:
            fig, axes = make_axes(None, 1, 1, figsize=(5.0, 4.4),
                                  **({"projection": "3d"} if n_components == 3 else {}))
            a = axes[0, 0]
        else:
            a, fig = ax, ax.figure
        _pc_labels(a, pca, n_components)
    proj = pca.transform(states)[:, :n_components]
    if mode_length is None:
        drawn = pca.transform(traj)[..., :n_components].reshape(-1, n_components) if traj is not None else proj
        extent = float(np.max(np.ptp(drawn, axis=0))) if drawn.shape[0] > 1 else 1.0
        mode_length = 0.1 * (extent if extent > 0 else 1.0)
    for cls, style in STABILITY_STYLES.items():
        mask = stab == cls
        if mask.any():
            a.scatter(*proj[mask].T, marker=style["marker"], facecolors=style["facecolors"],
                      edgecolors=style["edgecolors"], s=60, linewidths=1.2, zorder=4, label=f"{cls} ({int(mask.sum())})")
    if show_unstable_modes:
        lam = np.asarray(fixed_points.eigenvalues)
        vec = np.asarray(fixed_points.right_eigenvectors)
        for i in range(n_points):
            for k in np.flatnonzero((np.abs(lam[i]) > 1.0) & (lam[i].imag >= 0)):
                d = pca.transform_directions(np.real(vec[i][:, k]))[:n_components]
                norm = np.linalg.norm(d)
                if norm == 0:
                    continue
                d = d / norm * mode_length
                seg = np.stack([proj[i] - d, proj[i] + d])
                a.plot(*seg.T, color="C3", lw=2.0, zorder=3)
    handles, _ = a.get_legend_handles_labels()
    if show_unstable_modes:
        handles.append(Line2D([], [], color="C3", lw=2.0, label="unstable mode"))
    a.legend(handles=handles, fontsize="small", frameon=False)
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
