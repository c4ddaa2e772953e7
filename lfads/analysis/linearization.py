"""Linearization of a discrete-time map at its fixed points: eigenmodes and stability.

Near a fixed point :math:`h^* = F(h^*, u^*)`,

.. math::

    h_t - h^* \\approx J_h (h_{t-1} - h^*) + J_u (u_t - u^*),\\qquad
    J_h = \\sum_k \\lambda_k\\, v_k w_k^H

with right eigenvectors :math:`J_h v_k = \\lambda_k v_k`, left eigenvectors
:math:`w_k^H J_h = \\lambda_k w_k^H`, normalised so that :math:`\\|v_k\\| = 1` and
:math:`w_k^H v_k = 1` (so :math:`w_k^H x` is the coordinate of :math:`x` along mode
:math:`k`). For a map (not a flow) a mode grows when :math:`|\\lambda_k| > 1`:

* ``stable``: every :math:`|\\lambda_k| < 1`;
* ``saddle``: some but not all :math:`|\\lambda_k| > 1` (their number is ``n_unstable``);
* ``unstable``: every :math:`|\\lambda_k| > 1`.

Directions with :math:`\\big||\\lambda_k| - 1\\big| \\le` ``marginal_tol`` are counted as
*marginal* (``n_marginal``): they mark line or ring attractors and slow manifolds, and the
class of a point with marginal directions is not robust to small changes of the weights.
Eigenvalues with :math:`|\\lambda_k| = 1` exactly count as not unstable.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["STABILITY_CLASSES", "compute_eigendecomposition", "classify_stability"]

STABILITY_CLASSES: tuple[str, ...] = ("stable", "saddle", "unstable")


def compute_eigendecomposition(jacobians: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues with left and right eigenvectors of a batch of square matrices.

    .. math:: J v_k = \\lambda_k v_k,\\quad w_k^H J = \\lambda_k w_k^H,\\quad \\|v_k\\| = 1,\\quad w_k^H v_k = 1

    Modes are sorted by decreasing :math:`|\\lambda_k|` (ties by decreasing real part).

    Parameters
    ----------
    jacobians : np.ndarray
        ``(points, H, H)`` real matrices.

    Returns
    -------
    eigenvalues : np.ndarray
        ``(points, H)`` complex.
    left : np.ndarray
        ``(points, H, H)`` complex; column ``k`` is :math:`w_k`.
    right : np.ndarray
        ``(points, H, H)`` complex; column ``k`` is :math:`v_k`.
    """
    jac = np.asarray(jacobians, dtype=np.float64)
    if jac.ndim != 3 or jac.shape[1] != jac.shape[2]:
        raise ValueError(f"jacobians must be (points, H, H); got shape {jac.shape}.")
    n, h, _ = jac.shape
    if n == 0 or h == 0:
        empty = np.zeros((n, h, h), dtype=np.complex128)
        return np.zeros((n, h), dtype=np.complex128), empty, empty.copy()
    w, vl, vr = scipy.linalg.eig(jac, left=True, right=True)
    w = np.asarray(w, dtype=np.complex128).reshape(n, h)
    order = np.lexsort((-w.real, -np.abs(w)), axis=-1)
    w = np.take_along_axis(w, order, axis=1)
    vl = np.take_along_axis(vl, order[:, None, :], axis=2)
    vr = np.take_along_axis(vr, order[:, None, :], axis=2)
    vr = vr / np.linalg.norm(vr, axis=1, keepdims=True)
    overlap = np.einsum("nik,nik->nk", vl.conj(), vr)  # w_k^H v_k
    with np.errstate(divide="ignore", invalid="ignore"):
        vl = vl / overlap.conj()[:, None, :]
    return w, vl, vr


def classify_stability(
    eigenvalues: np.ndarray, marginal_tol: float = 1e-2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stability class of fixed points of a map from the eigenvalues of ``dF/dh``.

    Parameters
    ----------
    eigenvalues : np.ndarray
        ``(points, H)`` complex.
    marginal_tol : float
        A direction is marginal when :math:`\\big||\\lambda| - 1\\big| \\le` ``marginal_tol``.

    Returns
    -------
    stability : np.ndarray
        ``(points,)`` strings from :data:`STABILITY_CLASSES`.
    n_unstable : np.ndarray
        ``(points,)`` int, number of :math:`|\\lambda| > 1`.
    n_marginal : np.ndarray
        ``(points,)`` int, number of marginal directions.
    max_abs_eigenvalue : np.ndarray
        ``(points,)`` spectral radius.
    """
    mag = np.abs(np.asarray(eigenvalues))
    n_points, h = mag.shape
    n_unstable = (mag > 1.0).sum(axis=1).astype(np.int64)
    n_marginal = (np.abs(mag - 1.0) <= marginal_tol).sum(axis=1).astype(np.int64)
    stability = np.full(n_points, "saddle", dtype="<U8")
    stability[n_unstable == 0] = "stable"
    stability[(n_unstable == h) & (h > 0)] = "unstable"
    max_abs = mag.max(axis=1) if h else np.zeros(n_points)
    return stability, n_unstable, n_marginal, max_abs
