"""Dynamical similarity analysis: linear operators fitted to delay-embedded states, compared up to rotation.

For states :math:`x_t \\in \\mathbb R^p` of a model (``(trials, time, units)``):

1. **Delay embedding** with ``d`` delays: :math:`y_t = [x_t, x_{t-1}, \\dots, x_{t-d+1}] \\in \\mathbb R^{pd}`
   (within each trial).
2. **Reduced-rank DMD with ridge**: the centred embedding is projected on its ``r`` leading principal
   components and whitened, :math:`z_t = \\Sigma_r^{-1/2} V_r^T (y_t - \\bar y)`, and the operator
   :math:`A \\in \\mathbb R^{r \\times r}` solves the ridge regression
   :math:`\\min_A \\sum_t \\|z_{t+1} - A z_t\\|^2 + \\lambda\\, n \\|A\\|_F^2` over consecutive steps of
   every trial. Whitening makes :math:`A` of two systems related by an invertible linear map of their
   states agree up to an orthogonal change of basis.
3. **Similarity-transform distance** (Ostrow et al. 2023):

   .. math:: d(A, B) = \\min_{C \\in O(r)} \\|A - C B C^T\\|_F

   over the whole orthogonal group (both determinant signs). The minimum of this non-convex problem is
   searched from several starts in each component of :math:`O(r)`: random Haar rotations and a start
   that aligns the eigenvectors of the symmetric parts (with signs chosen by greedy flips); each is
   refined by L-BFGS on the Cayley chart :math:`C = C_0 (I + S)^{-1}(I - S)`, :math:`S = -S^T`,
   re-centred at the optimum until it stops improving. The result is an upper bound on the exact
   distance; :func:`triangle_violation_rate` measures how far that leaves it from a metric.
4. **Eigenvalue distance**: the 1-Wasserstein distance between the eigenvalues of :math:`A` and
   :math:`B` as uniform point clouds in the complex plane (POT's exact solver). It is a metric on
   spectra and ignores the eigenvectors.

When ``delays`` and ``rank`` are not given, :func:`select_delay_rank` picks them by the held-out error of
multi-step predictions.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize

from lfads.compare.geometry import _split_trials
from lfads.compare.pairs import model_pairs
from lfads.errors import LFADSDataError, check_setting

__all__ = [
    "DMD",
    "DSA",
    "DelayRankSelection",
    "assignment_wasserstein",
    "delay_embed",
    "eigenvalue_wasserstein",
    "fit_dmd",
    "select_delay_rank",
    "similarity_transform_distance",
    "subtract_condition_means",
    "triangle_violation_rate",
]


def _as_trials(x: Any, name: str = "trajectories") -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise LFADSDataError(f"{name} must be (trials, time, units) or (time, units); got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise LFADSDataError(f"{name} holds NaN or inf; drop padded steps before fitting dynamics.")
    return arr


def subtract_condition_means(x: Any, conditions: Any) -> np.ndarray:
    """Residuals :math:`x_{k,t} - \\bar x_{c(k),t}` of every trial ``k`` about the average of its condition.

    Fitting DMD to residuals (residual dynamics) compares how models respond to trial-to-trial
    fluctuations, which is where systems with the same condition averages differ.

    Parameters
    ----------
    x : array
        ``(trials, time, units)``.
    conditions : array
        ``(trials,)`` condition label of every trial.
    """
    arr = _as_trials(x).copy()
    labels = np.asarray(conditions)
    if labels.shape != (arr.shape[0],):
        raise LFADSDataError(f"conditions must hold one label per trial, shape ({arr.shape[0]},); got {labels.shape}.")
    for value in np.unique(labels):
        sel = labels == value
        arr[sel] -= arr[sel].mean(axis=0)
    return arr


def delay_embed(x: Any, delays: int) -> np.ndarray:
    """Delay embedding ``(trials, time - delays + 1, units * delays)``; block ``k`` holds :math:`x_{t-k}`.

    Raises
    ------
    LFADSDataError
        If the trials are not longer than ``delays``.
    """
    arr = _as_trials(x)
    t = arr.shape[1]
    if delays < 1 or t <= delays:
        raise LFADSDataError(f"delays must be between 1 and time - 1 = {t - 1}; got {delays}.")
    blocks = [arr[:, delays - 1 - k : t - k] for k in range(delays)]
    return np.concatenate(blocks, axis=2)


@dataclass(frozen=True)
class DMD:
    """A linear operator fitted to one model's delay-embedded states.

    Attributes
    ----------
    operator : np.ndarray
        ``(r, r)`` :math:`A` acting on whitened principal coordinates, :math:`z_{t+1} \\approx A z_t`.
    mean : np.ndarray
        ``(units * delays,)`` centre of the embedding.
    basis : np.ndarray
        ``(units * delays, r)`` principal directions.
    scale : np.ndarray
        ``(r,)`` standard deviations along them (:math:`z = V^T(y - \\bar y) / \\sigma`).
    delays, rank : int
    ridge : float
        :math:`\\lambda`.
    """

    operator: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    scale: np.ndarray
    delays: int
    rank: int
    ridge: float

    @property
    def eigenvalues(self) -> np.ndarray:
        """``(r,)`` complex eigenvalues of the operator."""
        return np.linalg.eigvals(self.operator)

    def encode(self, x: Any) -> np.ndarray:
        """Whitened coordinates ``(trials, time - delays + 1, r)`` of states ``(trials, time, units)``."""
        return ((delay_embed(x, self.delays) - self.mean) @ self.basis) / self.scale

    def decode(self, z: np.ndarray) -> np.ndarray:
        """States :math:`x_t` ``(..., units)`` from coordinates ``(..., r)`` (the first delay block)."""
        y = (z * self.scale) @ self.basis.T + self.mean
        return y[..., : self.mean.size // self.delays]

    def predict(self, x: Any, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Predictions ``horizon`` steps ahead from every embedded time step, with the states they predict.

        Returns ``(predicted, actual)``, both ``(trials, time - delays + 1 - horizon, units)``.
        """
        arr = _as_trials(x)
        z = self.encode(arr)
        if horizon < 1 or z.shape[1] <= horizon:
            raise LFADSDataError(f"horizon must be between 1 and {z.shape[1] - 1} for these trials; got {horizon}.")
        zk = z[:, :-horizon] @ np.linalg.matrix_power(self.operator, horizon).T
        return self.decode(zk), arr[:, self.delays - 1 + horizon :]


@dataclass(frozen=True)
class _EmbeddingSVD:
    """Delay embedding of one model with its principal components (shared by the DMDs of every rank)."""

    embedding: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    vt: np.ndarray
    delays: int

    @classmethod
    def of(cls, x: Any, delays: int) -> _EmbeddingSVD:
        emb = delay_embed(x, delays)
        flat = emb.reshape(-1, emb.shape[-1])
        mean = flat.mean(axis=0)
        centred = flat - mean
        # eigendecomposition of the (small) covariance instead of an SVD of the (long) data matrix
        lam, vec = np.linalg.eigh(centred.T @ centred / flat.shape[0])
        order = np.argsort(lam)[::-1]
        sd = np.sqrt(np.clip(lam[order], 0.0, None))
        return cls(emb, mean, sd, vec[:, order].T, int(delays))

    @property
    def max_rank(self) -> int:
        return int((self.sd > 1e-7 * self.sd[0]).sum()) if self.sd.size and self.sd[0] > 0 else 0

    def dmd(self, rank: int | None, ridge: float) -> DMD:
        n_ok = self.max_rank
        r = n_ok if rank is None else int(rank)
        if not 1 <= r <= n_ok:
            raise LFADSDataError(
                f"rank must be between 1 and {n_ok} (the components of the delay embedding with non-zero "
                f"variance); got {rank}."
            )
        return next(self.nested_dmds([r], ridge))

    def nested_dmds(self, ranks: Sequence[int], ridge: float) -> Iterator[DMD]:
        """The DMD of every rank in ``ranks`` (each at most :attr:`max_rank`), from one projection.

        The whitened coordinates of rank :math:`r` are the first :math:`r` of those of the largest rank, so
        :math:`Z_0^T Z_0` and :math:`Z_0^T Z_1` are formed once and each rank solves their leading block.
        """
        k = max(int(r) for r in ranks)
        z = ((self.embedding - self.mean) @ self.vt[:k].T) / self.sd[:k]
        z0 = z[:, :-1].reshape(-1, k)
        z1 = z[:, 1:].reshape(-1, k)
        if z0.shape[0] == 0:
            raise LFADSDataError("fit_dmd: the delay-embedded trials have a single time step; pass longer trials.")
        g00, g01 = z0.T @ z0, z0.T @ z1
        for r in ranks:
            r = int(r)
            gram = g00[:r, :r] + ridge * z0.shape[0] * np.eye(r)
            a = np.linalg.solve(gram, g01[:r, :r]).T
            yield DMD(a, self.mean, self.vt[:r].T, self.sd[:r], self.delays, r, float(ridge))


def fit_dmd(x: Any, delays: int = 1, rank: int | None = None, ridge: float = 1e-4) -> DMD:
    """Fit the reduced-rank DMD operator of a model (module docstring, step 2).

    Parameters
    ----------
    x : array
        ``(trials, time, units)`` states.
    delays : int
        Delays ``d`` (1: no embedding).
    rank : int, optional
        ``r``; all components with non-negligible variance by default.
    ridge : float
        :math:`\\lambda`, relative to the unit variance of the whitened coordinates.
    """
    return _EmbeddingSVD.of(x, delays).dmd(rank, ridge)


# ----------------------------------------------------------------------------------------------------------------------
# Delay and rank by held-out prediction
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelayRankSelection:
    """Held-out prediction errors over a grid; ``errors[i, j]`` for ``delays[i]``, ``ranks[j]`` (NaN: not fitted)."""

    delays: int
    rank: int
    grid_delays: np.ndarray
    grid_ranks: np.ndarray
    errors: np.ndarray


def _prediction_error(model: DMD, x: np.ndarray, horizon: int) -> float:
    pred, actual = model.predict(x, horizon)
    var = np.var(actual.reshape(-1, actual.shape[-1]), axis=0).sum()
    return float(np.mean(np.sum((pred - actual) ** 2, axis=-1)) / max(var, np.finfo(np.float64).tiny))


def select_delay_rank(
    trajectories: Sequence[Any] | Any,
    delays: Sequence[int] = (1, 2, 3, 5, 8),
    ranks: Sequence[int] | None = None,
    *,
    horizon: int = 5,
    test_fraction: float = 0.3,
    ridge: float = 1e-4,
    tolerance: float = 0.05,
    seed: int = 0,
) -> DelayRankSelection:
    """Choose delays and rank by the error of ``horizon``-step predictions on held-out trials.

    Each model's trials are split (``test_fraction`` held out); for every ``(delays, rank)`` on the grid the
    DMD is fitted on the training trials and scored by the normalised mean squared error of
    ``horizon``-step predictions of :math:`x_t` on the held-out trials, averaged over the models. The choice
    is the simplest setting (smallest rank, then fewest delays) whose error is within ``1 + tolerance``
    of the best.

    Parameters
    ----------
    trajectories : array or sequence of arrays
        One model ``(trials, time, units)`` or several (one setting for all, so their operators compare).
    ranks : sequence of int, optional
        ``1 .. min(10, units * max(delays))`` by default.
    """
    models = [trajectories] if not isinstance(trajectories, (list, tuple)) else list(trajectories)
    models = [_as_trials(m) for m in models]
    n_trials = min(m.shape[0] for m in models)
    if n_trials < 2:
        raise LFADSDataError("select_delay_rank needs at least 2 trials per model to hold some out.")
    n_test = min(max(1, int(round(test_fraction * n_trials))), n_trials - 1)
    test = _split_trials(n_trials, n_trials, seed)[:n_test]
    test = np.concatenate(test)
    grid_d = np.asarray(sorted(set(int(d) for d in delays)))
    max_t = min(m.shape[1] for m in models)
    grid_d = grid_d[grid_d + horizon < max_t]
    if grid_d.size == 0:
        raise LFADSDataError(
            f"select_delay_rank: trials of {max_t} time steps are too short for {min(delays)} delays and "
            f"{horizon}-step predictions; pass trials longer than delays + horizon ({min(delays) + horizon}), or "
            "give the delays and rank."
        )
    if ranks is None:
        ranks = range(1, min(10, min(m.shape[2] for m in models) * int(grid_d.max())) + 1)
    grid_r = np.asarray(sorted(set(int(r) for r in ranks)))
    errors = np.full((grid_d.size, grid_r.size), np.nan)
    sums = np.zeros_like(errors)
    counts = np.zeros(errors.shape, dtype=np.int64)
    r_max = int(grid_r.max())
    for m in models:
        train = np.setdiff1d(np.arange(m.shape[0]), test)
        for i, d in enumerate(grid_d):
            svd = _EmbeddingSVD.of(m[train], int(d))
            k = min(r_max, svd.max_rank)
            # held-out coordinates on the leading k components, computed once for every rank <= k
            z_all = (delay_embed(m[test], int(d)) - svd.mean) @ svd.vt[:k].T
            actual = m[test][:, int(d) - 1 + horizon :]
            var = np.var(actual.reshape(-1, actual.shape[-1]), axis=0).sum()
            units = m.shape[2]
            fitted = [(j, int(r)) for j, r in enumerate(grid_r) if r <= k]
            if not fitted:
                continue
            for (j, r), model in zip(fitted, svd.nested_dmds([r for _, r in fitted], ridge)):
                z = z_all[..., :r] / svd.sd[:r]
                zk = z[:, :-horizon] @ np.linalg.matrix_power(model.operator, horizon).T
                pred = (zk * svd.sd[:r]) @ svd.vt[:r, :units] + svd.mean[:units]
                err = np.mean(np.sum((pred - actual) ** 2, axis=-1)) / max(var, np.finfo(np.float64).tiny)
                sums[i, j] += err
                counts[i, j] += 1
    full = counts == len(models)
    errors[full] = sums[full] / len(models)
    if not np.isfinite(errors).any():
        raise LFADSDataError("select_delay_rank: no (delays, rank) on the grid could be fitted; pass smaller ones.")
    best = np.nanmin(errors)
    ok = np.argwhere(errors <= best * (1.0 + tolerance) + 1e-15)
    i, j = min(ok, key=lambda ij: (grid_r[ij[1]], grid_d[ij[0]]))
    return DelayRankSelection(int(grid_d[i]), int(grid_r[j]), grid_d, grid_r, errors)


# ----------------------------------------------------------------------------------------------------------------------
# Orthogonal similarity-transform distance
# ----------------------------------------------------------------------------------------------------------------------


def _refine(
    a: np.ndarray, b: np.ndarray, c0: np.ndarray, max_iter: int, max_charts: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise :math:`\\langle A, C B C^T \\rangle` from each start ``c0`` ``(k, n, n)`` at once.

    The objectives of the ``k`` starts are independent, so their sum is minimised by one L-BFGS run on
    the stacked Cayley parameters (one vectorised evaluation per step for all starts). Each chart is
    re-centred at its optimum until no start improves. Returns ``(values (k,), C (k, n, n))``.
    """
    k, n, _ = c0.shape
    iu = np.triu_indices(n, 1)
    m = iu[0].size
    eye = np.eye(n)

    def unpack(p: np.ndarray) -> np.ndarray:
        s = np.zeros((k, n, n))
        s[:, iu[0], iu[1]] = p.reshape(k, m)
        return s - s.transpose(0, 2, 1)

    def cayley(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inv = np.linalg.inv(eye + s)
        return inv @ (eye - s), inv

    def values(c: np.ndarray) -> np.ndarray:
        return np.einsum("ij,kij->k", a, c @ b @ c.transpose(0, 2, 1))

    c = c0.copy()
    best = values(c)
    for _ in range(max_charts):
        base = c

        def fun(p: np.ndarray, base: np.ndarray = base) -> tuple[float, np.ndarray]:
            r, inv = cayley(unpack(p))
            cc = base @ r
            cb = cc @ b
            f = -float(np.einsum("ij,kij->", a, cb @ cc.transpose(0, 2, 1)))
            g_c = -(a @ cc @ b.T + a.T @ cb)  # d f / d C
            # dC = -base K dS (I + R), K = (I + S)^{-1}: d f / d S = -K^T base^T G (I + R)^T
            g_s = -inv.transpose(0, 2, 1) @ base.transpose(0, 2, 1) @ g_c @ (eye + r).transpose(0, 2, 1)
            g = g_s - g_s.transpose(0, 2, 1)
            return f, g[:, iu[0], iu[1]].ravel()

        res = scipy.optimize.minimize(
            fun, np.zeros(k * m), jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-14},
        )
        cand = base @ cayley(unpack(res.x))[0]
        val = values(cand)
        better = val > best
        c = np.where(better[:, None, None], cand, c)
        gain = float(np.max(val - best))
        best = np.maximum(val, best)
        if gain <= 1e-12 * max(1.0, float(np.max(np.abs(best)))):
            break
    return best, c


def _spectral_start(a: np.ndarray, b: np.ndarray, det_sign: int) -> np.ndarray:
    """Align the eigenvectors of the symmetric parts, choosing their signs by greedy flips (within ``det_sign``)."""
    _, ua = np.linalg.eigh(a + a.T)
    _, ub = np.linalg.eigh(b + b.T)
    at, bt = ua.T @ a @ ua, ub.T @ b @ ub
    w = at * bt  # objective d^T W d over sign vectors d
    w = w + w.T
    d = np.ones(a.shape[0])
    for _ in range(4 * a.shape[0]):
        gain = -2.0 * d * (w @ d - np.diag(w) * d)  # change of d^T W d from flipping each sign
        i = int(np.argmax(gain))
        if gain[i] <= 1e-14:
            break
        d[i] = -d[i]
    c = ua @ np.diag(d) @ ub.T
    if np.sign(np.linalg.det(c)) != det_sign:
        gain = -2.0 * d * (w @ d - np.diag(w) * d)
        i = int(np.argmax(gain))
        d[i] = -d[i]
        c = ua @ np.diag(d) @ ub.T
    return c


@dataclass(frozen=True)
class SimilarityFit:
    """Result of :func:`similarity_transform_distance`: the distance, the best ``C`` and its determinant."""

    distance: float
    transform: np.ndarray
    determinant: float
    restarts: int


def similarity_transform_distance(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_restarts: int = 2,
    max_iter: int = 200,
    seed: int = 0,
    return_fit: bool = False,
) -> float | SimilarityFit:
    """:math:`\\min_{C \\in O(n)} \\|A - C B C^T\\|_F` searched in both components of :math:`O(n)`.

    Parameters
    ----------
    a, b : np.ndarray
        ``(n, n)`` operators.
    n_restarts : int
        Random starts per determinant sign (besides the spectral start of each sign, tried first).
    max_iter : int
        L-BFGS iterations per chart.
    seed : int
        Seed of the random starts.
    return_fit : bool
        Return a :class:`SimilarityFit` with the best transform instead of the distance.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise LFADSDataError(
            f"similarity_transform_distance needs two square operators of the same size; got {a.shape} and "
            f"{b.shape}. Fit the models with the same rank."
        )
    n = a.shape[0]
    rng = np.random.default_rng(seed)
    # the two spectral starts first: when they reach distance 0 (B is an orthogonal similarity of A up to
    # rounding) no other start can do better
    vals, cs = _refine(a, b, np.stack([_spectral_start(a, b, 1), _spectral_start(a, b, -1)]), max_iter)
    total = float(np.sum(a * a) + np.sum(b * b))  # |A - C B C^T|^2 = total - 2 <A, C B C^T>
    used = 2
    if total - 2.0 * float(vals.max()) > 1e-20 * total and n_restarts > 0:
        starts = []
        for k in range(2 * n_restarts):
            q, r = np.linalg.qr(rng.normal(size=(n, n)))
            q = q * np.sign(np.diag(r))
            if np.sign(np.linalg.det(q)) != (1 if k % 2 == 0 else -1):
                q[:, 0] = -q[:, 0]
            starts.append(q)
        more_vals, more_cs = _refine(a, b, np.stack(starts), max_iter)
        vals, cs = np.concatenate([vals, more_vals]), np.concatenate([cs, more_cs])
        used += len(starts)
    best_c = cs[int(np.argmax(vals))]
    resid = a - best_c @ b @ best_c.T
    dist = float(np.linalg.norm(resid))
    if return_fit:
        return SimilarityFit(dist, best_c, float(np.linalg.det(best_c)), used)
    return dist


_ASSIGNMENT_SIZE = 512
"""Largest common multiple of the two spectra's sizes that :func:`eigenvalue_wasserstein` solves as an assignment."""


def eigenvalue_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between the eigenvalues of ``a`` and ``b``.

    Uniform weights, points in :math:`\\mathbb C`.

    ``a`` and ``b`` may be square matrices or 1-D arrays of eigenvalues; their sizes may differ. With
    :math:`n` and :math:`m` eigenvalues and :math:`L = \\operatorname{lcm}(n, m)`, each eigenvalue repeated
    :math:`L/n` (or :math:`L/m`) times gives two sets of :math:`L` points of mass :math:`1/L`, whose optimal
    plan is a permutation (Birkhoff--von Neumann):
    :math:`W_1 = \\min_\\sigma \\frac1L \\sum_l |\\lambda_l - \\mu_{\\sigma(l)}|`, solved exactly by
    ``scipy.optimize.linear_sum_assignment`` up to :math:`L` = 512 and by POT's network simplex beyond.
    """
    ea = np.linalg.eigvals(a) if np.ndim(a) == 2 else np.asarray(a)
    eb = np.linalg.eigvals(b) if np.ndim(b) == 2 else np.asarray(b)
    if ea.size == 0 or eb.size == 0:
        raise LFADSDataError("eigenvalue_wasserstein: an empty spectrum; pass at least one eigenvalue on each side.")
    size = int(np.lcm(ea.size, eb.size))
    if size <= _ASSIGNMENT_SIZE:
        return assignment_wasserstein(np.repeat(ea, size // ea.size), np.repeat(eb, size // eb.size))
    import ot

    pa = np.stack([ea.real, ea.imag], axis=1)
    pb = np.stack([eb.real, eb.imag], axis=1)
    cost = ot.dist(pa, pb, metric="euclidean")
    wa = np.full(pa.shape[0], 1.0 / pa.shape[0])
    wb = np.full(pb.shape[0], 1.0 / pb.shape[0])
    return float(ot.emd2(wa, wb, cost))


def assignment_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """:math:`\\min_\\sigma \\frac1k \\sum_m |a_m - b_{\\sigma(m)}|` for two sets of ``k`` complex numbers: the
    1-Wasserstein distance between them with equal masses."""
    cost = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def triangle_violation_rate(d: np.ndarray, n_triples: int = 1000, seed: int = 0, tol: float = 1e-9) -> float:
    """Fraction of random triples ``(i, j, k)`` of a distance matrix with :math:`d_{ik} > d_{ij} + d_{jk} + tol`."""
    rng = np.random.default_rng(seed)
    i, j, k = rng.integers(0, d.shape[0], size=(3, n_triples))
    return float(np.mean(d[i, k] > d[i, j] + d[j, k] + tol))


# ----------------------------------------------------------------------------------------------------------------------
# Many models
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class DSA:
    """DSA for many models: one delay/rank for all, one DMD per model, all pairwise distances.

    Parameters
    ----------
    delays, rank : int, optional
        Chosen by :func:`select_delay_rank` on all models when ``None``.
    max_rank : int, optional
        The largest rank the selection tries (its default grid stops at 10); e.g. the state dimension, when
        the held-out error may still fall past rank 10.
    ridge : float
        DMD ridge :math:`\\lambda`.
    n_restarts, max_iter, seed
        As in :func:`similarity_transform_distance`.

    Examples
    --------
    >>> dsa = DSA().fit([x1, x2, x3])        # doctest: +SKIP
    >>> d = dsa.distances()                  # (3, 3) similarity-transform distances
    >>> e = dsa.eigenvalue_distances()       # (3, 3) eigenvalue Wasserstein distances
    """

    delays: int | None = None
    rank: int | None = None
    max_rank: int | None = None
    ridge: float = 1e-4
    n_restarts: int = 2
    max_iter: int = 200
    seed: int = 0
    models: list[DMD] = field(default_factory=list)
    selection: DelayRankSelection | None = None

    def __post_init__(self) -> None:
        for name in ("delays", "rank", "max_rank"):
            if getattr(self, name) is not None:
                check_setting("DSA", name, getattr(self, name), 1, integer=True)

    @property
    def settings(self) -> dict[str, Any]:
        """Parameters as used (after selection), for storage next to a distance matrix."""
        return {
            "delays": -1 if self.delays is None else int(self.delays),
            "rank": -1 if self.rank is None else int(self.rank),
            "max_rank": -1 if self.max_rank is None else int(self.max_rank),
            "ridge": self.ridge,
            "n_restarts": self.n_restarts,
            "max_iter": self.max_iter,
            "seed": self.seed,
            "selected": self.selection is not None,
            "residuals": bool(getattr(self, "residuals", False)),
            "rank_at_grid_edge": bool(getattr(self, "rank_at_grid_edge", False)),
            "state_dim": int(getattr(self, "state_dim", -1)),
        }

    def fit(self, trajectories: Sequence[Any], conditions: Any | None = None) -> DSA:
        """Fit one DMD per model ``(trials, time, units_i)``, selecting delays/rank first if needed.

        With ``conditions`` (``(trials,)`` labels shared by all models, or one array per model) the DMD is
        fitted to the residuals about the condition averages (:func:`subtract_condition_means`). When the rank
        is selected and the choice is the largest rank of the grid, below the delay embedding's dimension,
        ``rank_at_grid_edge`` is set (in :attr:`settings` too): the held-out error may fall further at higher
        ranks, which a larger ``max_rank`` (or ``rank=``) would try.
        """
        trajectories = [_as_trials(t, f"trajectories[{i}]") for i, t in enumerate(trajectories)]
        self.residuals = conditions is not None
        self.state_dim = min(t.shape[2] for t in trajectories)
        if conditions is not None:
            per_model = conditions if isinstance(conditions, (list, tuple)) else [conditions] * len(trajectories)
            trajectories = [subtract_condition_means(t, c) for t, c in zip(trajectories, per_model)]
        if self.delays is None or self.rank is None:
            kwargs: dict[str, Any] = {"ridge": self.ridge, "seed": self.seed}
            if self.delays is not None:
                kwargs["delays"] = (self.delays,)
            if self.rank is not None:
                kwargs["ranks"] = (self.rank,)
            elif self.max_rank is not None:
                kwargs["ranks"] = range(1, int(self.max_rank) + 1)
            rank_selected = self.rank is None
            self.selection = select_delay_rank(trajectories, **kwargs)
            self.delays, self.rank = self.selection.delays, self.selection.rank
            if rank_selected:
                fitted = self.selection.grid_ranks[np.isfinite(self.selection.errors).any(axis=0)]
                possible = self.state_dim * self.delays
                self.rank_at_grid_edge = bool(self.rank == fitted.max() < possible)
        self.models = [fit_dmd(t, self.delays, self.rank, self.ridge) for t in trajectories]
        return self

    def _pairwise(self, fn, desc: str, progress: bool) -> np.ndarray:
        n = len(self.models)
        if n == 0:
            raise LFADSDataError("DSA: no models fitted; call fit(trajectories) first.")
        out = np.zeros((n, n))
        for i, j in model_pairs(n, desc, progress):
            out[i, j] = out[j, i] = fn(self.models[i].operator, self.models[j].operator)
        return out

    def distances(self, progress: bool = False) -> np.ndarray:
        """``(N, N)`` similarity-transform distances between the fitted operators (``progress``: a bar over pairs)."""
        start = _time.perf_counter()
        out = self._pairwise(
            lambda a, b: similarity_transform_distance(
                a, b, n_restarts=self.n_restarts, max_iter=self.max_iter, seed=self.seed
            ),
            "dsa", progress,
        )
        self.wall_time = _time.perf_counter() - start
        return out

    def eigenvalue_distances(self, progress: bool = False) -> np.ndarray:
        """``(N, N)`` Wasserstein distances between the operators' eigenvalues (``progress``: a bar over pairs)."""
        return self._pairwise(eigenvalue_wasserstein, "dsa_eigenvalues", progress)
