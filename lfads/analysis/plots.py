"""Figures of fixed points: state-space projections and eigenvalue spectra.

State space: trajectories and fixed points projected on the first principal components
:math:`y = (h - \\mu) V_{:, :k}` of the trajectories (:func:`lfads.analysis.projection.compute_pca`),
in 2-D or 3-D. Points are coloured by stability class (stable black, saddle red, unstable
orange), drawn as circles (fixed) or squares (slow); each unstable mode :math:`v_k`
(:math:`|\\lambda_k| > 1`, real part, unit norm) is drawn as the segment
:math:`h^* \\pm s\\, v_k` projected, with :math:`s` = ``mode_scale``.

Spectra: eigenvalues :math:`\\lambda_k` of :math:`J_h` in the complex plane with the unit
circle, the stability boundary of a discrete-time map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from lfads.analysis.fixed_points import FixedPoints
from lfads.analysis.projection import PCA, compute_pca, to_numpy

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["STABILITY_COLORS", "plot_fixed_points", "plot_eigenvalue_spectra"]

STABILITY_COLORS: dict[str, str] = {"stable": "black", "saddle": "tab:red", "unstable": "tab:orange"}


def _new_axes(n_components: int) -> "Axes":
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5.5, 5))
    if n_components == 3:
        return fig.add_subplot(projection="3d")
    return fig.add_subplot()


def plot_fixed_points(
    fixed_points: FixedPoints,
    trajectories: np.ndarray | None = None,
    *,
    pca: PCA | None = None,
    n_components: int = 2,
    ax: "Axes | None" = None,
    mode_scale: float = 0.25,
    max_trajectories: int = 50,
    show_unstable_modes: bool = True,
) -> "Axes":
    """Fixed points (and trajectories) on the first 2 or 3 principal components.

    Parameters
    ----------
    fixed_points : FixedPoints
        From :func:`lfads.analysis.fixed_points.find_fixed_points`.
    trajectories : np.ndarray, optional
        ``(trials, time, H)`` states drawn as grey lines (the first ``max_trajectories`` trials).
    pca : PCA, optional
        Projection to use; by default fitted on the trajectories (or on the points without them).
    n_components : int
        2 or 3.
    ax : matplotlib Axes, optional
        Where to draw (a 3-D axes for ``n_components=3``); a new figure by default.
    mode_scale : float
        Half-length :math:`s` of the unstable-mode segments, in state units.
    max_trajectories : int
        Trials drawn at most.
    show_unstable_modes : bool
        Draw the unstable eigenvectors.

    Returns
    -------
    matplotlib Axes
    """
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3; got {n_components}.")
    if pca is None:
        source = trajectories if trajectories is not None else fixed_points.states
        pca = compute_pca(source, n_components)
    if pca.components.shape[0] < n_components:
        raise ValueError(f"the PCA has {pca.components.shape[0]} components; {n_components} are needed.")
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
    labels = [f"PC{k + 1} ({100 * pca.explained_variance_ratio[k]:.0f}%)" for k in range(n_components)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if n_components == 3:
        ax.set_zlabel(labels[2])
    if len(fixed_points):
        ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


def plot_eigenvalue_spectra(
    fixed_points: FixedPoints, indices: Sequence[int] | None = None, *, ax: "Axes | None" = None
) -> "Axes":
    """Eigenvalues of :math:`J_h` at the selected points with the unit circle.

    Parameters
    ----------
    fixed_points : FixedPoints
        Points with their eigenvalues.
    indices : sequence of int, optional
        Points to draw (all by default); each is coloured by its stability class.
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.figure(figsize=(5, 5)).add_subplot()
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, ls="--", label="|λ| = 1")
    idx = range(len(fixed_points)) if indices is None else indices
    seen: set[str] = set()
    for i in idx:
        lam = fixed_points.eigenvalues[i]
        stability = str(fixed_points.stability[i])
        ax.scatter(
            lam.real,
            lam.imag,
            s=12,
            color=STABILITY_COLORS[stability],
            alpha=0.7,
            label=None if stability in seen else stability,
        )
        seen.add(stability)
    ax.axhline(0.0, color="0.85", lw=0.5)
    ax.axvline(0.0, color="0.85", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax
