"""Representational geometry: generalized shape metrics (CCA to Procrustes) and linear CKA.

A model is represented by its states on a shared set of trials, ``(trials, time, units)``, flattened
to :math:`X \\in \\mathbb R^{n \\times p}` (``n = trials * time`` samples) and centred. All arithmetic is
float64.

**Generalized shape metrics** (Williams, Kunz, Kornblith & Linderman 2021). With
:math:`C_X = X^T X / n = V \\Lambda V^T`, the partially whitened representation is

.. math:: \\tilde X = X V\\, \\mathrm{diag}\\big(\\alpha + (1 - \\alpha)\\, \\lambda_i^{-1/2}\\big),
          \\qquad \\alpha \\in [0, 1]

(:math:`\\alpha = 0`: fully whitened, CCA; :math:`\\alpha = 1`: principal coordinates, Procrustes). The
best orthogonal alignment of :math:`\\tilde X` and :math:`\\tilde Y` (zero-padded to a common width) has
:math:`\\max_Q \\langle \\tilde X, \\tilde Y Q \\rangle = \\|\\tilde X^T \\tilde Y\\|_*` (nuclear norm), so

.. math:: d_\\angle = \\arccos \\frac{\\|\\tilde X^T \\tilde Y\\|_*}{\\|\\tilde X\\|_F \\|\\tilde Y\\|_F},\\qquad
          d_E = \\sqrt{\\big(\\|\\tilde X\\|_F^2 + \\|\\tilde Y\\|_F^2 - 2 \\|\\tilde X^T \\tilde Y\\|_*\\big) / n}.

Both are metrics (symmetric, zero on a model and its rotated copy, triangle inequality): they are
quotient distances of the sphere / Euclidean space under the orthogonal group. At :math:`\\alpha = 0` the
angular form is :math:`\\arccos(\\bar\\rho)` with :math:`\\bar\\rho` the mean canonical correlation (zero
for missing dimensions) and is invariant to every invertible linear map; for :math:`\\alpha > 0` only
rotations, reflections and translations leave it unchanged (the angular form also scaling). SVCCA keeps
the leading principal components that explain ``variance`` of the variance before CCA.

**Mean canonical correlation** (``kind="correlation"``, CCA only): :math:`d = 1 - \\bar\\rho` with
:math:`\\bar\\rho` the mean of the :math:`\\min(k_x, k_y)` canonical correlations, the distance of Raghu et al.
(2017) and of Maheswaranathan et al. (2019). It is zero on a model and any invertible linear map of it and
symmetric, but not a metric (no triangle inequality: it is half a squared chord, not a chord), and it
averages over the smaller model's dimensions only, where the angular form counts the missing ones as zero
correlations. For models of one width :math:`1 - \\bar\\rho = 1 - \\cos d_\\angle`, a monotone rescaling that
spreads large distances apart relative to small ones.

**Linear CKA** (Kornblith et al. 2019):
:math:`\\mathrm{CKA} = \\|X^T Y\\|_F^2 / (\\|X^T X\\|_F \\|Y^T Y\\|_F)`, the cosine between the centred
Gram matrices :math:`XX^T` and :math:`YY^T`; its angle :math:`\\arccos(\\mathrm{CKA})` is a metric,
invariant to rotations and isotropic scaling.

Each model is *prepared* once (:meth:`ShapeMetric.prepare`: centring, eigendecomposition, whitening),
so all pairs of ``N`` models cost ``N`` whitenings and ``N(N-1)/2`` small cross-products
(:func:`pairwise_distances`). With cross-validation the whitening and the alignment are fitted on
training trials and the distance is scored on held-out trials (:func:`cross_validated_distance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lfads.errors import LFADSDataError

__all__ = [
    "Alignment",
    "LinearCKA",
    "Prepared",
    "ShapeMetric",
    "cross_validated_distance",
    "flatten_trajectories",
    "geometry_metric",
    "pairwise_cross_validated_distances",
    "pairwise_distances",
]

# below this angle (or relative squared Euclidean distance) the distance is recomputed from the aligned
# residual, which is accurate where the closed form loses digits to cancellation
_SMALL = 1e-3


def flatten_trajectories(x: Any, name: str = "trajectories") -> np.ndarray:
    """``(trials, time, units)`` or ``(samples, units)`` as a float64 ``(samples, units)`` array.

    Raises
    ------
    LFADSDataError
        If the array has another number of dimensions or holds NaN/inf.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[-1])
    elif arr.ndim != 2:
        raise LFADSDataError(f"{name} must be (trials, time, units) or (samples, units); got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise LFADSDataError(f"{name} holds NaN or inf; drop padded steps before comparing models.")
    return arr


@dataclass(frozen=True)
class Prepared:
    """A model's states, centred and (partially) whitened once for all comparisons.

    Attributes
    ----------
    coords : np.ndarray
        ``(samples, k)`` :math:`\\tilde X` in principal coordinates.
    mean : np.ndarray
        ``(units,)`` the centre that was subtracted.
    basis : np.ndarray
        ``(units, k)`` principal directions :math:`V` kept.
    scale : np.ndarray
        ``(k,)`` the factors :math:`\\alpha + (1-\\alpha)\\lambda_i^{-1/2}`.
    """

    coords: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    scale: np.ndarray
    sq_norm: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sq_norm", float(np.sum(self.coords * self.coords)))

    def transform(self, x: Any) -> np.ndarray:
        """Coordinates ``(samples, k)`` of other states of the same model with this centre and whitening."""
        return ((flatten_trajectories(x) - self.mean) @ self.basis) * self.scale


@dataclass(frozen=True)
class Alignment:
    """A fitted comparison of two models: their preparations and the orthogonal map between them.

    ``rotation`` ``(k_y, k_x)`` maps the coordinates of ``y`` onto those of ``x`` (a partial isometry);
    ``directions`` ``(k_x, min(k_x, k_y))`` are the aligned directions in the coordinates of ``x`` (the
    canonical directions when whitened), in which held-out correlations are scored.
    """

    x: Prepared
    y: Prepared
    rotation: np.ndarray
    directions: np.ndarray


def _align(px: Prepared, py: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``(k_y, k_x)`` that best aligns ``py`` onto ``px``, and the aligned directions of ``px``."""
    u, _, vt = np.linalg.svd(px.coords.T @ py.coords, full_matrices=False)
    return (u @ vt).T, u


def _angle(cos: float) -> float:
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _one_minus_mean_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """:math:`1 - \\frac1k \\sum_i \\cos(a_i, b_i)` over the ``k`` columns of ``a`` and ``b`` ``(samples, k)``."""
    norms = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0))
    cos = np.sum(a * b, axis=0) / np.where(norms > 0, norms, 1.0)
    return float(np.clip(1.0 - cos.mean(), 0.0, 2.0))


@dataclass(frozen=True)
class ShapeMetric:
    """Generalized shape metric between two sets of states (module docstring).

    Parameters
    ----------
    alpha : float
        Whitening :math:`\\alpha \\in [0, 1]`: 0 is CCA, 1 is Procrustes.
    kind : {"angular", "euclidean", "correlation"}
        :math:`d_\\angle` (radians, in :math:`[0, \\pi/2]`), :math:`d_E` (RMS distance per sample) or
        :math:`1 - \\bar\\rho` (``alpha`` 0 only; not a metric, see the module docstring).
    n_components : int, optional
        Keep at most this many principal components of each model.
    variance : float, optional
        Keep the fewest leading components that explain this fraction of the variance (SVCCA).
    rtol : float
        Components with variance below ``rtol`` times the largest are dropped (rank deficiency).
    """

    alpha: float = 1.0
    kind: str = "angular"
    n_components: int | None = None
    variance: float | None = None
    rtol: float = 1e-10

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise LFADSDataError(f"ShapeMetric: alpha must lie in [0, 1]; got {self.alpha}.")
        if self.kind not in ("angular", "euclidean", "correlation"):
            raise LFADSDataError(
                f"ShapeMetric: kind must be 'angular', 'euclidean' or 'correlation'; got {self.kind!r}."
            )
        if self.kind == "correlation" and self.alpha != 0.0:
            raise LFADSDataError(
                f"ShapeMetric: kind 'correlation' (1 - mean canonical correlation) needs alpha 0 (CCA); got "
                f"alpha {self.alpha}. Use the angular or Euclidean form for alpha > 0."
            )
        if self.variance is not None and not 0.0 < self.variance <= 1.0:
            raise LFADSDataError(f"ShapeMetric: variance must lie in (0, 1]; got {self.variance}.")

    @property
    def settings(self) -> dict[str, Any]:
        """The parameters, for storage next to a distance matrix."""
        return {
            "alpha": self.alpha,
            "kind": self.kind,
            "n_components": -1 if self.n_components is None else self.n_components,
            "variance": -1.0 if self.variance is None else self.variance,
            "rtol": self.rtol,
        }

    # -- preparation -----------------------------------------------------------------------------------------
    def prepare(self, x: Any) -> Prepared:
        """Centre, rotate to principal coordinates and whiten ``x`` ``(trials, time, units)``."""
        arr = flatten_trajectories(x)
        mean = arr.mean(axis=0)
        xc = arr - mean
        lam, vec = np.linalg.eigh(xc.T @ xc / xc.shape[0])
        order = np.argsort(lam)[::-1]
        lam, vec = np.clip(lam[order], 0.0, None), vec[:, order]
        keep = lam > self.rtol * max(float(lam[0]), np.finfo(np.float64).tiny)
        if self.variance is not None:
            frac = np.cumsum(lam) / lam.sum()
            keep &= np.arange(lam.size) <= np.searchsorted(frac, self.variance - 1e-12)
        if self.n_components is not None:
            keep &= np.arange(lam.size) < self.n_components
        lam, vec = lam[keep], vec[:, keep]
        scale = self.alpha + (1.0 - self.alpha) / np.sqrt(lam)
        return Prepared((xc @ vec) * scale, mean, vec, scale)

    # -- distances -------------------------------------------------------------------------------------------
    def _from_inner(self, inner: float, sx: float, sy: float, n: int) -> float:
        if self.kind == "angular":
            return _angle(inner / np.sqrt(sx * sy))
        return float(np.sqrt(max(sx + sy - 2.0 * inner, 0.0) / n))

    def _is_small(self, d: float, sx: float, sy: float, n: int) -> bool:
        if self.kind == "angular":
            return d < _SMALL
        return d * d * n < _SMALL * (sx + sy)

    def _residual_distance(self, x: np.ndarray, y: np.ndarray, rotation: np.ndarray, directions: np.ndarray) -> float:
        """Distance of ``x`` to ``y @ rotation`` counting the part of ``y`` that ``rotation`` drops; for the
        correlation form, one minus the mean correlation of ``x`` and ``y @ rotation`` along ``directions``."""
        yr = y @ rotation
        if self.kind == "correlation":
            return _one_minus_mean_correlation(x @ directions, yr @ directions)
        sx, sy, syr = float(np.sum(x * x)), float(np.sum(y * y)), float(np.sum(yr * yr))
        if self.kind == "angular":
            d = _angle(float(np.sum(x * yr)) / np.sqrt(sx * sy))
            if d < _SMALL:  # then |y @ rotation| = |y| to within d^2: use the chord, free of cancellation
                chord = np.linalg.norm(x / np.sqrt(sx) - yr / np.sqrt(sy))
                d = float(2.0 * np.arcsin(min(chord / 2.0, 1.0)))
            return d
        resid = float(np.sum((x - yr) ** 2)) + max(sy - syr, 0.0)
        return float(np.sqrt(resid / x.shape[0]))

    def distance_prepared(self, px: Prepared, py: Prepared, cross: np.ndarray | None = None) -> float:
        """Distance between two prepared models (``cross`` = :math:`\\tilde X^T \\tilde Y` if already known)."""
        if px.coords.shape[0] != py.coords.shape[0]:
            raise LFADSDataError(
                f"The two models have {px.coords.shape[0]} and {py.coords.shape[0]} samples; geometry metrics "
                "compare states on the same trials and time steps."
            )
        m = px.coords.T @ py.coords if cross is None else cross
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        n = px.coords.shape[0]
        if self.kind == "correlation":  # whitened: the singular values are n times the canonical correlations
            return float(np.clip(1.0 - s.sum() / (n * s.size), 0.0, 1.0))
        d = self._from_inner(float(s.sum()), px.sq_norm, py.sq_norm, n)
        if self._is_small(d, px.sq_norm, py.sq_norm, n):
            d = self._residual_distance(px.coords, py.coords, (u @ vt).T, u)
        return d

    def __call__(self, x: Any, y: Any) -> float:
        """Distance between states ``x`` and ``y`` (each ``(trials, time, units)``, the same trials)."""
        return self.distance_prepared(self.prepare(x), self.prepare(y))

    # -- fit / score (cross-validation) -------------------------------------------------------------------------
    def fit(self, x: Any, y: Any) -> Alignment:
        """Fit the whitening of each model and the orthogonal alignment of ``y`` onto ``x`` on these trials."""
        px, py = self.prepare(x), self.prepare(y)
        return Alignment(px, py, *_align(px, py))

    def score(self, alignment: Alignment, x: Any, y: Any) -> float:
        """Distance on other trials ``x``, ``y`` with the whitening and alignment fitted by :meth:`fit`.

        .. math:: d_\\angle = \\arccos \\frac{\\langle X', Y' Q\\rangle}{\\|X'\\|\\|Y'\\|},\\qquad
                  d_E = \\|X' - Y' Q\\|_F / \\sqrt{n'}

        with :math:`X', Y'` the held-out states in the fitted coordinates; the correlation form is one minus
        the mean held-out correlation along the fitted canonical directions.
        """
        xt, yt = alignment.x.transform(x), alignment.y.transform(y)
        if xt.shape[0] != yt.shape[0]:
            raise LFADSDataError(f"score: x has {xt.shape[0]} samples but y has {yt.shape[0]}; pass the same trials.")
        return self._residual_distance(xt, yt, alignment.rotation, alignment.directions)


@dataclass(frozen=True)
class LinearCKA:
    """Angular linear CKA distance :math:`\\arccos \\mathrm{CKA}(X, Y)` (module docstring).

    :meth:`prepare` centres a model and keeps its principal coordinates (exact, fewer columns when rank
    deficient); :meth:`similarity` gives CKA itself.
    """

    rtol: float = 1e-12

    @property
    def settings(self) -> dict[str, Any]:
        """The parameters, for storage next to a distance matrix."""
        return {"rtol": self.rtol}

    def prepare(self, x: Any) -> Prepared:
        """Centred principal coordinates of ``x`` (``scale`` ones); ``sq_norm`` is replaced by :math:`\\|X^TX\\|_F`."""
        metric = ShapeMetric(alpha=1.0, rtol=self.rtol)
        return metric.prepare(x)

    @staticmethod
    def _gram_norm(p: Prepared) -> float:
        lam = np.sum(p.coords * p.coords, axis=0)  # principal coordinates: X^T X is diagonal
        return float(np.sqrt(np.sum(lam * lam)))

    def similarity_prepared(self, px: Prepared, py: Prepared, cross: np.ndarray | None = None) -> float:
        """CKA of two prepared models."""
        m = px.coords.T @ py.coords if cross is None else cross
        return float(np.sum(m * m) / (self._gram_norm(px) * self._gram_norm(py)))

    def distance_prepared(self, px: Prepared, py: Prepared, cross: np.ndarray | None = None) -> float:
        """:math:`\\arccos \\mathrm{CKA}`.

        Small angles are recomputed as :math:`2\\arcsin(\\|\\hat K_X - \\hat K_Y\\|_F / 2)`.
        """
        d = _angle(self.similarity_prepared(px, py, cross))
        if d < _SMALL:
            # ||K_x/|K_x| - K_y/|K_y|||_F^2 through the sample-space Gram matrices, without forming them:
            # |K_x - K_y|^2 = |X^TX|^2 + |Y^TY|^2 - 2|X^TY|^2 loses digits, so build the normalized
            # difference in the joint column space of X and Y instead
            q, _ = np.linalg.qr(np.concatenate([px.coords, py.coords], axis=1))
            a, b = q.T @ px.coords, q.T @ py.coords
            kx, ky = a @ a.T, b @ b.T
            chord = np.linalg.norm(kx / np.linalg.norm(kx) - ky / np.linalg.norm(ky))
            d = float(2.0 * np.arcsin(min(chord / 2.0, 1.0)))
        return d

    def similarity(self, x: Any, y: Any) -> float:
        """CKA in :math:`[0, 1]`."""
        return self.similarity_prepared(self.prepare(x), self.prepare(y))

    def __call__(self, x: Any, y: Any) -> float:
        """:math:`\\arccos \\mathrm{CKA}(X, Y)`."""
        return self.distance_prepared(self.prepare(x), self.prepare(y))


GEOMETRY_METRICS: dict[str, Any] = {
    "cca": ShapeMetric(alpha=0.0),
    "svcca": ShapeMetric(alpha=0.0, variance=0.99),
    "cca_corr": ShapeMetric(alpha=0.0, kind="correlation"),
    "svcca_corr": ShapeMetric(alpha=0.0, kind="correlation", variance=0.99),
    "shape": ShapeMetric(alpha=0.5),
    "procrustes": ShapeMetric(alpha=1.0),
    "procrustes_euclidean": ShapeMetric(alpha=1.0, kind="euclidean"),
    "cka": LinearCKA(),
}


def geometry_metric(name: str | ShapeMetric | LinearCKA) -> ShapeMetric | LinearCKA:
    """A metric object from its name (``cca``, ``svcca``, ``cca_corr``, ``svcca_corr``, ``shape``, ``procrustes``,
    ``procrustes_euclidean``, ``cka``) or the object itself."""
    if isinstance(name, (ShapeMetric, LinearCKA)):
        return name
    try:
        return GEOMETRY_METRICS[name]
    except KeyError:
        raise LFADSDataError(
            f"Unknown geometry metric {name!r}; choose one of {sorted(GEOMETRY_METRICS)} or pass a ShapeMetric."
        ) from None


def pairwise_distances(
    trajectories: Sequence[Any] | Sequence[Prepared], metric: str | ShapeMetric | LinearCKA = "procrustes"
) -> np.ndarray:
    """All-pairs distance matrix ``(N, N)`` of ``N`` models, preparing (whitening) each model once.

    Parameters
    ----------
    trajectories : sequence
        ``N`` arrays ``(trials, time, units_i)`` of the same trials (units may differ), or models
        already prepared with the same metric.
    metric : str, ShapeMetric or LinearCKA
        See :func:`geometry_metric`.

    Notes
    -----
    The cross-products :math:`\\tilde X_i^T \\tilde X_j` of all pairs come from one matrix product of the
    concatenated coordinates, so the cost is one BLAS call of size ``samples x sum(k_i)^2`` plus an SVD
    of each ``k_i x k_j`` block.
    """
    m = geometry_metric(metric)
    if len(trajectories) == 0:
        raise LFADSDataError("pairwise_distances: no models given; pass a sequence of (trials, time, units) arrays.")
    preps = [t if isinstance(t, Prepared) else m.prepare(t) for t in trajectories]
    n_models = len(preps)
    if len({p.coords.shape[0] for p in preps}) > 1:
        raise LFADSDataError(
            "pairwise_distances: the models have different numbers of samples "
            f"{[p.coords.shape[0] for p in preps]}; pass states on the same trials and time steps."
        )
    edges = np.cumsum([0] + [p.coords.shape[1] for p in preps])
    stacked = np.concatenate([p.coords for p in preps], axis=1)
    gram = stacked.T @ stacked
    out = np.zeros((n_models, n_models))
    for i in range(n_models):
        for j in range(i + 1, n_models):
            block = gram[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
            out[i, j] = out[j, i] = m.distance_prepared(preps[i], preps[j], cross=block)
    return out


def pairwise_cross_validated_distances(
    trajectories: Sequence[Any], metric: str | ShapeMetric | LinearCKA = "procrustes", n_folds: int = 2, seed: int = 0
) -> np.ndarray:
    """All-pairs held-out distances ``(N, N)``: per fold, each model is whitened once on the training trials,
    each pair's rotation is fitted there, and the distance is scored on the fold; folds are averaged.

    Parameters
    ----------
    trajectories : sequence of arrays
        ``N`` arrays ``(trials, time, units_i)`` of the same trials.
    """
    m = geometry_metric(metric)
    arrays = [np.asarray(t, dtype=np.float64) for t in trajectories]
    shapes = {a.shape[:2] for a in arrays}
    if any(a.ndim != 3 for a in arrays) or len(shapes) != 1:
        raise LFADSDataError(
            "pairwise_cross_validated_distances needs (trials, time, units) states of the same trials for every "
            f"model; got shapes {[a.shape for a in arrays]}."
        )
    n_trials = arrays[0].shape[0]
    if n_folds < 2 or n_folds > n_trials:
        raise LFADSDataError(f"n_folds must be between 2 and the number of trials ({n_trials}); got {n_folds}.")
    n = len(arrays)
    total = np.zeros((n, n))
    for fold in _split_trials(n_trials, n_folds, seed):
        train = np.setdiff1d(np.arange(n_trials), fold)
        if isinstance(m, LinearCKA):
            total += pairwise_distances([a[fold] for a in arrays], m)
            continue
        preps = [m.prepare(a[train]) for a in arrays]
        tests = [p.transform(a[fold]) for p, a in zip(preps, arrays)]
        for i in range(n):
            for j in range(i + 1, n):
                d = m._residual_distance(tests[i], tests[j], *_align(preps[i], preps[j]))
                total[i, j] += d
                total[j, i] += d
    return total / n_folds


def _split_trials(n_trials: int, n_folds: int, seed: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n_trials)
    return [np.sort(f) for f in np.array_split(perm, n_folds)]


def cross_validated_distance(
    x: Any, y: Any, metric: str | ShapeMetric | LinearCKA = "procrustes", n_folds: int = 2, seed: int = 0
) -> float:
    """Distance scored on held-out trials, averaged over ``n_folds`` folds.

    For each fold the whitening and alignment are fitted on the other trials (:meth:`ShapeMetric.fit`) and
    the distance is scored on the fold (:meth:`ShapeMetric.score`). CKA has nothing to fit and is scored on
    each fold directly.

    Parameters
    ----------
    x, y : array
        ``(trials, time, units)`` states of two models on the same trials.
    """
    m = geometry_metric(metric)
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 3 or ya.ndim != 3 or xa.shape[:2] != ya.shape[:2]:
        raise LFADSDataError(
            f"cross_validated_distance needs (trials, time, units) states of the same trials; got {xa.shape} "
            f"and {ya.shape}."
        )
    if n_folds < 2 or n_folds > xa.shape[0]:
        raise LFADSDataError(f"n_folds must be between 2 and the number of trials ({xa.shape[0]}); got {n_folds}.")
    scores = []
    for fold in _split_trials(xa.shape[0], n_folds, seed):
        train = np.setdiff1d(np.arange(xa.shape[0]), fold)
        if isinstance(m, LinearCKA):
            scores.append(m(xa[fold], ya[fold]))
        else:
            scores.append(m.score(m.fit(xa[train], ya[train]), xa[fold], ya[fold]))
    return float(np.mean(scores))
