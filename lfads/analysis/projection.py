"""Low-dimensional views of states: principal components of trajectories.

With trajectory states :math:`X` ``(points, H)``, mean :math:`\\mu` and the SVD
:math:`X - \\mu = U S V^T`, the projection onto the first :math:`k` components is
:math:`y = (h - \\mu) V_{:, :k}`; component :math:`j` explains variance
:math:`S_j^2 / (\\text{points} - 1)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lfads.errors import LFADSDataError

__all__ = ["PCA", "compute_pca", "project_states", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array or tensor (detached from autograd, moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_complex():
            return x.numpy().astype(np.complex128)
        x = x.to(torch.float64)
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class PCA:
    """Principal axes of a set of states.

    Attributes
    ----------
    mean : np.ndarray
        ``(H,)``.
    components : np.ndarray
        ``(k, H)``, orthonormal rows, by decreasing variance.
    explained_variance : np.ndarray
        ``(k,)``.
    explained_variance_ratio : np.ndarray
        ``(k,)``, fraction of the total variance.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray

    def transform(self, states: np.ndarray) -> np.ndarray:
        """Project ``(..., H)`` states to ``(..., k)`` coordinates."""
        return (to_numpy(states) - self.mean) @ self.components.T

    def transform_directions(self, vectors: np.ndarray) -> np.ndarray:
        """Project ``(..., H)`` direction vectors (no centering) to ``(..., k)``."""
        v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
        return v @ self.components.T


def _as_points(states: np.ndarray, name: str) -> np.ndarray:
    x = to_numpy(states)
    if x.ndim < 2:
        raise LFADSDataError(f"{name} must be (..., H) with at least two dimensions; got shape {x.shape}.")
    x = x.reshape(-1, x.shape[-1])
    return x[np.isfinite(x).all(axis=1)]


def compute_pca(states: np.ndarray, n_components: int = 3) -> PCA:
    """Principal components of states ``(..., H)`` (rows with NaN are skipped).

    Parameters
    ----------
    states : np.ndarray
        For example generator states ``(trials, time, H)``.
    n_components : int
        ``k``, at most ``H``.

    Raises
    ------
    LFADSDataError
        With fewer than two finite states.
    """
    x = _as_points(states, "states")
    if x.shape[0] < 2:
        raise LFADSDataError(f"compute_pca needs at least two finite states; got {x.shape[0]}.")
    k = int(min(n_components, x.shape[1]))
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2 / (x.shape[0] - 1)
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    return PCA(
        mean=mean,
        components=vt[:k].copy(),
        explained_variance=var[:k].copy(),
        explained_variance_ratio=ratio[:k].copy(),
    )


def project_states(states: np.ndarray, basis: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Coordinates :math:`(h - c) B^T` of states ``(..., H)`` in a basis ``(k, H)`` (e.g. factor weights).

    Parameters
    ----------
    states : np.ndarray
        ``(..., H)``.
    basis : np.ndarray
        ``(k, H)``; for LFADS factors, the factor weight ``W_fac`` ``(factors, H)``.
    center : np.ndarray, optional
        ``(H,)`` subtracted first (none by default, so factors come out as ``W_fac h``).
    """
    x = to_numpy(states)
    b = to_numpy(basis)
    if b.ndim != 2 or b.shape[1] != x.shape[-1]:
        raise LFADSDataError(
            f"basis must be (k, {x.shape[-1]}) to project states of size {x.shape[-1]}; got {b.shape}."
        )
    if center is not None:
        x = x - to_numpy(center)
    return x @ b.T
