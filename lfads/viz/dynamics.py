"""Linearised dynamics of the generator: eigenvalue spectra, fixed points on trajectories, JSLDS errors.

For a map :math:`h_t = F(h_{t-1}, u)` linearised at a fixed point :math:`h^*`
(:mod:`lfads.analysis.linearization`), mode :math:`k` grows when :math:`|\\lambda_k| > 1`, so the unit
circle separates decaying from growing modes.

State space: trajectories and fixed points projected on the first principal components
:math:`y = (h - \\mu) V_{:, :k}` of the trajectories (:func:`lfads.analysis.projection.compute_pca`),
in 2-D or 3-D. Points are coloured by stability class (:data:`STABILITY_COLORS`: stable black, saddle
red, unstable orange), drawn as circles (fixed) or squares (slow); each unstable mode :math:`v_k`
(:math:`|\\lambda_k| > 1`, real part, unit norm) is drawn as the segment :math:`h^* \\pm s\\, v_k`
projected, with :math:`s` = ``mode_scale``.

Two levels: :func:`draw_fixed_points` and :func:`draw_eigenvalue_spectra` draw a
:class:`lfads.analysis.fixed_points.FixedPoints` into one Axes and return it;
:func:`plot_fixed_points` and :func:`plot_eigenvalues` check their arguments, colour trajectories by
condition and return the Figure, like the rest of :mod:`lfads.viz`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lfads.analysis.linearization import STABILITY_CLASSES, classify_stability
from lfads.analysis.projection import PCA, compute_pca, to_numpy
from lfads.errors import LFADSDataError
from lfads.viz._common import as_array, check_indices, make_axes, time_values
from lfads.viz.latents import _check_pca, plot_trajectories

__all__ = [
    "STABILITY_COLORS",
    "draw_eigenvalue_spectra",
    "draw_fixed_points",
    "plot_eigenvalues",
    "plot_fixed_points",
    "plot_jslds_error",
]

STABILITY_COLORS: dict[str, str] = {"stable": "black", "saddle": "tab:red", "unstable": "tab:orange"}
"""Colour of each stability class."""


def _stability_array(stability: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(stability).astype(str)
    if arr.shape != (n,):
        raise LFADSDataError(f"{name} has shape {arr.shape} but there are {n} points; give one class per point.")
    unknown = sorted(set(arr.tolist()) - set(STABILITY_CLASSES))
    if unknown:
        raise LFADSDataError(f"{name} holds {unknown}; the classes are {list(STABILITY_CLASSES)}.")
    return arr


def _new_axes(n_components: int = 2, figsize: tuple[float, float] = (5.5, 5.0)) -> Axes:
    subplot_kw = {"projection": "3d"} if n_components == 3 else {}
    return make_axes(None, 1, 1, figsize=figsize, **subplot_kw)[1][0, 0]


# --------------------------------------------------------------------------------------------- one Axes
def draw_fixed_points(
    fixed_points: Any,
    trajectories: np.ndarray | None = None,
    *,
    pca: PCA | None = None,
    n_components: int = 2,
    ax: Axes | None = None,
    mode_scale: float = 0.25,
    max_trajectories: int = 50,
    show_unstable_modes: bool = True,
) -> Axes:
    """Fixed points (and trajectories, in grey) on the first 2 or 3 principal components.

    Parameters
    ----------
    fixed_points : lfads.analysis.fixed_points.FixedPoints
        From :func:`lfads.analysis.fixed_points.find_fixed_points`.
    trajectories : np.ndarray, optional
        ``(trials, time, H)`` states drawn as grey lines (the first ``max_trajectories`` trials).
    pca : PCA, optional
        Projection to use; by default fitted on the trajectories (or on the points without them).
    n_components : int
        2 or 3.
    ax : Axes, optional
        Where to draw (a 3-D axes for ``n_components=3``); a new figure by default.
    mode_scale : float
        Half-length :math:`s` of the unstable-mode segments, in state units.
    max_trajectories : int
        Trials drawn at most.
    show_unstable_modes : bool
        Draw the unstable eigenvectors.

    Returns
    -------
    Axes
    """
    if n_components not in (2, 3):
        raise LFADSDataError(f"n_components must be 2 or 3; got {n_components}.")
    if pca is None:
        source = trajectories if trajectories is not None else fixed_points.states
        pca = compute_pca(source, n_components)
    if pca.components.shape[0] < n_components:
        raise LFADSDataError(f"the PCA has {pca.components.shape[0]} components; {n_components} are needed.")
    comps = slice(0, n_components)
    ax = _new_axes(n_components) if ax is None else ax

    if trajectories is not None:
        traj = to_numpy(trajectories)
        if traj.ndim == 2:
            traj = traj[None]
        for tr in traj[:max_trajectories]:
            y = pca.transform(tr)[:, comps]
            ax.plot(*y.T, color="0.75", lw=0.6, zorder=1)

    y = pca.transform(fixed_points.states)[:, comps] if len(fixed_points) else np.zeros((0, n_components))
    for stability, color in STABILITY_COLORS.items():
        for kind, marker in (("fixed", "o"), ("slow", "s"), ("unconverged", "x")):
            sel = (fixed_points.stability == stability) & (fixed_points.kind == kind)
            if not sel.any():
                continue
            face = color if stability == "stable" else "none"
            ax.scatter(
                *y[sel].T,
                marker=marker,
                s=40,
                facecolors=face if marker != "x" else color,
                edgecolors=color,
                label=f"{stability} ({kind})",
                zorder=3,
            )
    if show_unstable_modes:
        _draw_unstable_modes(ax, fixed_points, pca, comps, mode_scale)
    labels = [f"PC{k + 1} ({100 * pca.explained_variance_ratio[k]:.0f}%)" for k in range(n_components)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if n_components == 3:
        ax.set_zlabel(labels[2])
    if len(fixed_points):
        ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


def _draw_unstable_modes(ax: Axes, fixed_points: Any, pca: PCA, comps: slice, mode_scale: float) -> None:
    """Segments :math:`h^* \\pm s\\, v_k` of every unstable mode, projected, coloured by the point's class."""
    for i in np.nonzero(fixed_points.n_unstable > 0)[0]:
        _, vecs = fixed_points.unstable_modes(int(i))
        for v in vecs.T:
            d = np.real(v)
            norm = np.linalg.norm(d)
            if norm == 0:
                continue
            d = d / norm
            ends = np.stack([fixed_points.states[i] - mode_scale * d, fixed_points.states[i] + mode_scale * d])
            seg = pca.transform(ends)[:, comps]
            ax.plot(*seg.T, color=STABILITY_COLORS[fixed_points.stability[i]], lw=1.2, zorder=2)


def draw_eigenvalue_spectra(
    fixed_points: Any, indices: Sequence[int] | None = None, *, ax: Axes | None = None
) -> Axes:
    """Eigenvalues of :math:`J_h` at the selected points, with the unit circle.

    Parameters
    ----------
    fixed_points : lfads.analysis.fixed_points.FixedPoints
        Points with their ``eigenvalues`` ``(points, H)`` and ``stability`` ``(points,)``.
    indices : sequence of int, optional
        Points to draw (all by default); each is coloured by its stability class.
    ax : Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    Axes
    """
    ax = _new_axes(figsize=(5.0, 5.0)) if ax is None else ax
    idx = range(len(fixed_points)) if indices is None else indices
    return _draw_spectra(ax, fixed_points.eigenvalues, fixed_points.stability, idx)


def _draw_spectra(ax: Axes, eigenvalues: np.ndarray, stability: np.ndarray, indices: Sequence[int]) -> Axes:
    """One scatter of ``eigenvalues[i]`` per point ``i`` in ``indices``, coloured by ``stability[i]``."""
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, ls="--", label="|λ| = 1")
    seen: set[str] = set()
    for i in indices:
        lam = eigenvalues[i]
        cls = str(stability[i])
        ax.scatter(lam.real, lam.imag, s=12, color=STABILITY_COLORS[cls], alpha=0.7,
                   label=None if cls in seen else cls)
        seen.add(cls)
    ax.axhline(0.0, color="0.85", lw=0.5)
    ax.axvline(0.0, color="0.85", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


# --------------------------------------------------------------------------------------------- Figures
def plot_eigenvalues(
    eigenvalues: Any,
    stability: Sequence[str] | np.ndarray | None = None,
    *,
    points: Sequence[int] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Eigenvalues :math:`\\lambda` of linearisations in the complex plane, with the unit circle.

    Drawn as by :func:`draw_eigenvalue_spectra`: one scatter per point, coloured by its
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
    _draw_spectra(axes[0, 0], lam, stab, [int(i) for i in sel])
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
    :func:`draw_fixed_points`: colour by stability class, circles for fixed and
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
    draw_fixed_points(fixed_points, None, pca=pca, n_components=n_components, ax=axis,
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
