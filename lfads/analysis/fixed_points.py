"""Fixed and slow points of a recurrent map by minimising its speed.

For the map :math:`h_t = F(h_{t-1}, u)` with the input held at :math:`u^*`, fixed points
solve :math:`F(h, u^*) = h`. They are found as minima of the speed

.. math::

    q(h) = \\tfrac12 \\|r(h)\\|^2,\\quad r(h) = F(h, u^*) - h,\\quad
    \\nabla q = J^T r,\\quad J = \\partial F / \\partial h - I,

from many initial states at once (rows of a batch), in float64, in two phases:

1. **Adam** on :math:`q` for ``adam_steps`` steps (a short first-order phase that moves
   noisy initial states off steep regions; for GRUs the gradient is the closed-form
   :math:`J^T r`, no Jacobian is formed).
2. **Levenberg-Marquardt** (damped Gauss-Newton) with one damping :math:`\\mu` per point:
   solve :math:`(J^T J + \\mu I)\\,\\Delta = -J^T r` (batched Cholesky; for a state with a block that
   couples only through the diagonal, such as the LSTM's cell state, on the Schur complement:
   :mod:`lfads.analysis.normal_equations`), accept the step where
   :math:`q` decreases, and update :math:`\\mu` from the ratio :math:`\\rho` of actual to
   predicted decrease (Nielsen's rule: :math:`\\mu \\leftarrow \\mu \\max(1/3, 1 - (2\\rho - 1)^3)`
   on success, :math:`\\mu \\leftarrow \\mu \\nu,\\ \\nu \\leftarrow 2\\nu` on failure). Near a regular
   fixed point this is Newton's method and converges quadratically. Points leave the active
   batch (so later iterations cost less) once :math:`q <` ``fixed_tol`` and ``polish_steps``
   further steps are done, once :math:`\\|\\nabla q\\| <` ``grad_tol`` (then the exact Hessian of
   :math:`q`, :math:`J^T J + \\sum_i r_i \\nabla^2 F_i`, in closed form for GRUs, decides whether
   the point is a local minimum, and two exact Newton steps polish it), once :math:`\\mu` exceeds
   its cap, or after ``max_iter`` iterations.

Each initial state ends as one *kind*:

* ``fixed``: :math:`q <` ``fixed_tol`` (1e-10 by default); with merging (:func:`find_fixed_points`'s
  default) only points that :func:`merge_same_points` resolves onto a root (:math:`q \\le 10^{-6}`
  ``fixed_tol``) stay ``fixed``, the others below ``fixed_tol`` become ``slow``;
* ``slow``: a certified local minimum with :math:`q \\ge` ``fixed_tol``:
  :math:`\\|\\nabla q\\| <` ``grad_tol`` (1e-9 by default; states of tanh/GRU networks are
  :math:`O(1)`, so this is an absolute tolerance) and the smallest Hessian eigenvalue
  :math:`\\ge -` ``hess_tol`` :math:`\\cdot \\max(1, \\|\\nabla^2 q\\|_2)`;
* ``unconverged``: anything else.

:func:`find_fixed_points` then removes distance outliers (a point farther from the centroid of
the initial states than ``outlier_scale`` times their RMS distance to it), merges duplicates
(greedily: the point with the lowest :math:`q` absorbs every point within ``dedup_tol`` in the
joint space of state and input), groups the remaining points that stand for one fixed point or
attractor (:func:`merge_same_points`: Newton polish onto the root, a distance tolerance relative to the
state scale, the flow of loosely converged stable points under the map, and slow manifolds joining
points that are not exact), and linearises the map at each unique point
(:mod:`lfads.analysis.linearization`).

In flat basins (spectral radius near 1) a point with :math:`q` below ``fixed_tol`` can still be far
from the root, :math:`\\|h - h^*\\| \\approx \\|r\\| / (1 - \\rho)`; without the grouping such points count
as separate attractors.

The caller's cell is never modified: GRU weights are copied, other modules deep-copied.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.jacobians import Dynamics, GRUDynamics, as_dynamics, broadcast_inputs
from lfads.analysis.linearization import classify_stability, compute_eigendecomposition
from lfads.analysis.normal_equations import gauss_newton_system
from lfads.analysis.projection import PCA, compute_pca, project_states, to_numpy
from lfads.analysis.records import H5Record
from lfads.errors import LFADSDataError

__all__ = [
    "KINDS",
    "FixedPoints",
    "InitialStates",
    "SpeedMinimization",
    "find_fixed_points",
    "minimize_speed",
    "sample_initial_states",
    "deduplicate_points",
    "find_distance_outliers",
    "merge_same_points",
    "polish_newton",
    "pseudo_transient",
    "spectral_radius",
    "build_fixed_points",
    "LINEARIZATION_FIELDS",
    "linearize_points",
]

KINDS: tuple[str, ...] = ("fixed", "slow", "unconverged")
_FIXED, _SLOW, _UNCONVERGED, _ACTIVE = 0, 1, 2, 3
_MU_INIT = 1e-6  # initial damping relative to the largest diagonal entry of J^T J
_MU_CAP = 1e16  # damping (relative) beyond which a point is given up
_FORMAT = "lfads.analysis.FixedPoints/1"


# ----------------------------------------------------------------------------------------------------------------------
# Initial states
# ----------------------------------------------------------------------------------------------------------------------


class InitialStates(NamedTuple):
    """States sampled from trajectories, with the inputs at the same time steps if given.

    ``states``: ``(n, H)``; ``inputs``: ``(n, I)`` or ``None``; ``indices``: ``(n,)`` flat index of
    each sample into the ``(trials * time)`` rows of the trajectories.
    """

    states: Tensor
    inputs: Tensor | None
    indices: Tensor


def sample_initial_states(
    trajectories: Tensor | np.ndarray,
    n_samples: int,
    noise_std: float = 0.0,
    *,
    inputs: Tensor | np.ndarray | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> InitialStates:
    """Draw initial states from visited states plus isotropic Gaussian noise.

    .. math:: h^{(0)}_k = h_{i_k} + \\sigma \\epsilon_k,\\qquad \\epsilon_k \\sim \\mathcal N(0, I)

    with :math:`i_k` uniform over the finite rows of the trajectories (without replacement
    when there are enough rows).

    Parameters
    ----------
    trajectories : Tensor or np.ndarray
        ``(trials, time, H)`` or ``(points, H)``, e.g. LFADS ``gen_states``.
    n_samples : int
        Number of initial states.
    noise_std : float
        :math:`\\sigma`.
    inputs : Tensor or np.ndarray, optional
        ``(trials, time, I)`` inputs aligned with ``trajectories`` (e.g. ``gen_inputs``); the
        inputs at the sampled rows are returned (without noise).
    seed : int
        Seed of the draw.
    dtype : torch.dtype
        Floating type of the result.

    Raises
    ------
    LFADSDataError
        If there are no finite states or the inputs do not align.
    """
    x = torch.as_tensor(np.asarray(trajectories) if not isinstance(trajectories, Tensor) else trajectories)
    x = x.detach().to(dtype).reshape(-1, x.shape[-1])
    finite = torch.isfinite(x).all(dim=1)
    rows = torch.nonzero(finite).squeeze(1)
    if rows.numel() == 0:
        raise LFADSDataError("sample_initial_states: the trajectories hold no finite state (all rows contain NaN/inf).")
    gen = torch.Generator().manual_seed(int(seed))
    if n_samples <= rows.numel():
        pick = rows[torch.randperm(rows.numel(), generator=gen)[:n_samples]]
    else:
        pick = rows[torch.randint(rows.numel(), (n_samples,), generator=gen)]
    states = x[pick].clone()
    if noise_std > 0:
        states += noise_std * torch.randn(states.shape, generator=gen, dtype=dtype)
    u = None
    if inputs is not None:
        ut = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs).detach().to(dtype)
        ut = ut.reshape(-1, ut.shape[-1])
        if ut.shape[0] != x.shape[0]:
            raise LFADSDataError(
                f"inputs hold {ut.shape[0]} (trials * time) rows but trajectories hold {x.shape[0]}; pass inputs "
                "with the same leading shape as the trajectories."
            )
        u = ut[pick].clone()
    return InitialStates(states, u, pick)


# ----------------------------------------------------------------------------------------------------------------------
# Speed minimisation (per initial state)
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class SpeedMinimization:
    """Where each initial state ended.

    Attributes
    ----------
    states : np.ndarray
        ``(n, H)`` final states.
    inputs : np.ndarray
        ``(n, I)`` the inputs :math:`u^*` held at each.
    q : np.ndarray
        ``(n,)`` final speed :math:`\\tfrac12\\|F(h, u^*) - h\\|^2`.
    grad_norm : np.ndarray
        ``(n,)`` :math:`\\|J^T r\\|`.
    iterations : np.ndarray
        ``(n,)`` Levenberg-Marquardt iterations spent on each point.
    kind : np.ndarray
        ``(n,)`` strings from :data:`KINDS`.
    adam_steps : int
        First-order steps taken (shared by all points).
    wall_time : float
        Seconds spent.
    """

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    grad_norm: np.ndarray
    iterations: np.ndarray
    kind: np.ndarray
    adam_steps: int
    wall_time: float

    @property
    def converged(self) -> np.ndarray:
        """``(n,)`` bool: ``kind`` is ``fixed`` or ``slow``."""
        return self.kind != "unconverged"


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _adam_phase(dyn: Dynamics, h: Tensor, u: Tensor, steps: int, lr: float, bar) -> Tensor:
    """``steps`` Adam steps on the summed speed; returns the new states (a new tensor)."""
    if steps <= 0:
        return h
    x = h.clone()
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        _, _, grad = dyn.speed_and_gradient(x, u)
        x.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()
        if bar is not None:
            bar.update(1)
    return x.detach()


def _speed(dyn: Dynamics, h: Tensor, u: Tensor) -> Tensor:
    r = dyn.step(h, u) - h
    q = 0.5 * (r * r).sum(1)
    return torch.where(torch.isfinite(q), q, torch.full_like(q, math.inf))


def _certify_slow_points(
    dyn: Dynamics, h: Tensor, u: Tensor, hess_tol: float, newton_steps: int = 2
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Polish stationary points of ``q`` with exact Newton steps and test that they are local minima.

    Each step solves :math:`\\nabla^2 q\\, \\Delta = -\\nabla q` and is kept only where it lowers ``q``;
    a point is a minimum when the smallest eigenvalue of :math:`\\nabla^2 q` is at least
    ``-hess_tol * max(1, ||Hess||_2)``. Returns ``(h, q, grad_norm, is_minimum)``.
    """
    h = h.clone()
    for k in range(newton_steps + 1):
        _, q, grad, hess = dyn.speed_hessian(h, u)
        lam, vec = torch.linalg.eigh(hess)
        scale = lam.abs().amax(1).clamp_min(1.0)
        is_min = lam[:, 0] >= -hess_tol * scale
        if k == newton_steps:
            break
        # Newton step in the eigenbasis, restricted to directions of clearly positive curvature
        coef = (vec.mT @ grad.unsqueeze(2)).squeeze(2)
        ok = lam > 1e-12 * scale.unsqueeze(1)
        coef = torch.where(ok, coef / torch.where(ok, lam, torch.ones_like(lam)), 0.0)
        step = -(vec @ coef.unsqueeze(2)).squeeze(2)
        q_new = _speed(dyn, h + step, u)
        better = is_min & (q_new < q)
        h = torch.where(better.unsqueeze(1), h + step, h)
    return h, q, grad.norm(dim=1), is_min


def _levenberg_marquardt(
    dyn: Dynamics,
    h: Tensor,
    u: Tensor,
    *,
    fixed_tol: float,
    grad_tol: float,
    hess_tol: float,
    max_iter: int,
    polish_steps: int,
    bar,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batched Levenberg-Marquardt with per-point damping and an active set.

    Returns ``(h, q, grad_norm, iterations, status)``.
    """
    n = h.shape[0]
    dev = h.device
    h = h.clone()
    status = torch.full((n,), _ACTIVE, dtype=torch.long, device=dev)
    iters = torch.zeros(n, dtype=torch.long, device=dev)

    idx = torch.arange(n, device=dev)
    q_a, g_a, a0 = gauss_newton_system(dyn, h, u)
    q = q_a.clone()
    gnorm = g_a.norm(dim=1)
    bad = ~(torch.isfinite(q_a) & a0.finite())
    status[bad] = _UNCONVERGED
    keep = ~bad
    idx, q_a, g_a, a0 = idx[keep], q_a[keep], g_a[keep], a0.rows(keep)
    diag_scale = a0.diagonal_max().clamp_min(1e-12) if idx.numel() else q_a
    mu = _MU_INIT * diag_scale
    nu = torch.full_like(mu, 2.0)
    polish = torch.zeros_like(idx)
    tiny = torch.finfo(h.dtype).tiny

    for _ in range(max_iter):
        if idx.numel() == 0:
            break
        ha, ua = h[idx], u[idx]
        dx, pd = a0.solve(mu, g_a)
        h_new = ha + dx
        q_new = _speed(dyn, h_new, ua)
        pred = 0.5 * (dx * (mu.unsqueeze(1) * dx - g_a)).sum(1)
        rho = (q_a - q_new) / pred.clamp_min(tiny)
        accept = pd & (q_new < q_a) & torch.isfinite(dx).all(1)
        # Nielsen's damping update (a numerically indefinite system counts as a rejection)
        factor = torch.clamp(1.0 - (2.0 * rho - 1.0) ** 3, min=1.0 / 3.0)
        mu = torch.where(accept, mu * factor, mu * nu)
        nu = torch.where(accept, torch.full_like(nu, 2.0), nu * 2.0)
        iters[idx] += 1

        if bool(accept.any()):
            rows = torch.nonzero(accept).squeeze(1)
            h_rows = h_new[rows]
            h[idx[rows]] = h_rows
            q_a[rows], g_a[rows], system = gauss_newton_system(dyn, h_rows, ua[rows])
            a0.assign(rows, system)
        q[idx] = q_a
        gn_a = g_a.norm(dim=1)
        gnorm[idx] = gn_a

        # termination
        reached = q_a < fixed_tol
        polish = torch.where(reached, polish + 1, polish)
        done_fixed = reached & ((polish > polish_steps) | (q_a == 0) | (~accept & (polish > 1)))
        stationary = ~reached & (gn_a < grad_tol)
        if bool(stationary.any()):
            rows = torch.nonzero(stationary).squeeze(1)
            pts = idx[rows]
            h[pts], q[pts], gnorm[pts], is_min = _certify_slow_points(dyn, h[pts], ua[rows], hess_tol)
            status[pts] = torch.where(is_min, torch.where(q[pts] < fixed_tol, _FIXED, _SLOW), _UNCONVERGED)
        blown = ~reached & ~stationary & (mu > _MU_CAP * diag_scale)
        status[idx[done_fixed]] = _FIXED
        status[idx[blown]] = _UNCONVERGED
        leave = done_fixed | stationary | blown
        if bool(leave.any()):
            stay = ~leave
            idx, q_a, g_a, a0 = idx[stay], q_a[stay], g_a[stay], a0.rows(stay)
            mu, nu, polish, diag_scale = mu[stay], nu[stay], polish[stay], diag_scale[stay]
        if bar is not None:
            bar.update(1)
            bar.set_postfix(active=int(idx.numel()))
    # points still active ran out of iterations; those polishing below the tolerance count as fixed
    status[idx] = torch.where(q[idx] < fixed_tol, _FIXED, _UNCONVERGED)
    return h, q, gnorm, iters, status


def minimize_speed(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    initial_states: Tensor | np.ndarray,
    inputs: Tensor | np.ndarray | None = None,
    *,
    fixed_tol: float = 1e-10,
    grad_tol: float = 1e-9,
    hess_tol: float = 1e-8,
    adam_steps: int = 50,
    adam_lr: float = 1e-2,
    max_iter: int = 200,
    polish_steps: int = 2,
    progress: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    hidden_size: int | None = None,
    input_size: int | None = None,
) -> SpeedMinimization:
    """Minimise :math:`q(h) = \\tfrac12\\|F(h, u^*) - h\\|^2` from each initial state (module docstring).

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        ``nn.GRUCell``, ``ClippedGRUCell``, single-layer ``nn.GRU`` (closed-form Jacobians), or any
        callable ``f(u, h) -> h_next`` (pass ``hidden_size``/``input_size`` if it has no such attributes).
    initial_states : Tensor or np.ndarray
        ``(n, H)``.
    inputs : Tensor or np.ndarray, optional
        :math:`u^*`: ``None`` (zeros), ``(I,)`` for all points, or ``(n, I)`` one per point.
    fixed_tol, grad_tol, hess_tol : float
        Classification thresholds (module docstring).
    adam_steps, adam_lr : int, float
        First phase.
    max_iter : int
        Cap on second-order iterations per point.
    polish_steps : int
        Extra iterations after :math:`q <` ``fixed_tol`` (each squares the error near a regular root).
    progress : bool
        Show a tqdm progress bar.
    dtype, device
        Computation type (float64 by default) and device (that of the cell by default).
    """
    start = time.perf_counter()
    dyn = as_dynamics(cell, hidden_size=hidden_size, input_size=input_size, dtype=dtype, device=device)
    h0 = torch.as_tensor(np.asarray(initial_states) if not isinstance(initial_states, Tensor) else initial_states)
    h0 = h0.detach().to(dtype=dyn.dtype, device=dyn.device)
    if h0.ndim != 2 or h0.shape[1] != dyn.hidden_size:
        raise LFADSDataError(
            f"initial_states must be (n, {dyn.hidden_size}) for a cell with {dyn.hidden_size} units; got "
            f"{tuple(h0.shape)}. Use sample_initial_states(trajectories, n) to draw them from trajectories."
        )
    if not torch.isfinite(h0).all():
        bad = int((~torch.isfinite(h0)).any(dim=1).sum())
        raise LFADSDataError(f"initial_states: {bad} of {h0.shape[0]} states hold NaN or inf; start from finite "
                             "states (e.g. drop padded time steps before sample_initial_states).")
    u = broadcast_inputs(inputs, h0.shape[0], dyn)
    bar = _progress_bar(progress, adam_steps + max_iter, "fixed points")
    try:
        with torch.no_grad():
            h = _adam_phase(dyn, h0, u, adam_steps, adam_lr, bar)
            h, q, gnorm, iters, status = _levenberg_marquardt(
                dyn,
                h,
                u,
                fixed_tol=fixed_tol,
                grad_tol=grad_tol,
                hess_tol=hess_tol,
                max_iter=max_iter,
                polish_steps=polish_steps,
                bar=bar,
            )
    finally:
        if bar is not None:
            bar.close()
    kind = np.asarray(KINDS, dtype="<U11")[status.clamp(max=_UNCONVERGED).cpu().numpy()]
    return SpeedMinimization(
        states=h.cpu().numpy(),
        inputs=u.cpu().numpy(),
        q=q.cpu().numpy(),
        grad_norm=gnorm.cpu().numpy(),
        iterations=iters.cpu().numpy(),
        kind=kind,
        adam_steps=int(adam_steps),
        wall_time=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Post-processing
# ----------------------------------------------------------------------------------------------------------------------


def find_distance_outliers(points: np.ndarray, reference: np.ndarray, outlier_scale: float = 10.0) -> np.ndarray:
    """Points far from a reference cloud.

    .. math:: \\|p - \\bar x\\| > s \\cdot \\sqrt{\\operatorname{mean}_j \\|x_j - \\bar x\\|^2}

    with :math:`\\bar x` the centroid of the reference states :math:`x_j` (e.g. the initial states)
    and :math:`s` = ``outlier_scale``.

    Returns
    -------
    np.ndarray
        ``(points,)`` bool, True for outliers.
    """
    ref = np.asarray(reference, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    center = ref.mean(axis=0)
    rms = np.sqrt(((ref - center) ** 2).sum(axis=1).mean())
    dist = np.linalg.norm(pts - center, axis=1)
    return dist > outlier_scale * max(rms, np.finfo(np.float64).tiny)


def deduplicate_points(points: np.ndarray, q: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy merge of points closer than ``tol``, keeping the one with the lowest ``q``.

    Repeatedly, the remaining point with the lowest ``q`` becomes a representative and absorbs all
    remaining points within Euclidean distance ``tol`` of it.

    Parameters
    ----------
    points : np.ndarray
        ``(n, D)``.
    q : np.ndarray
        ``(n,)``.
    tol : float
        Merge distance.

    Returns
    -------
    representatives : np.ndarray
        ``(k,)`` indices of the kept points, by increasing ``q``.
    assignment : np.ndarray
        ``(n,)`` index into ``representatives`` for every point.
    """
    pts = np.asarray(points, dtype=np.float64)
    remaining = np.argsort(np.asarray(q), kind="stable")
    assignment = np.full(pts.shape[0], -1, dtype=np.int64)
    reps: list[int] = []
    while remaining.size:
        best = remaining[0]
        close = np.linalg.norm(pts[remaining] - pts[best], axis=1) <= tol
        close[0] = True
        assignment[remaining[close]] = len(reps)
        reps.append(int(best))
        remaining = remaining[~close]
    return np.asarray(reps, dtype=np.int64), assignment


class MergedPoints(NamedTuple):
    """Distinct points grouped into the attractors (or fixed points) they stand for.

    ``states`` ``(k, H)`` polished representatives, ``q`` ``(k,)`` their speed, ``group`` ``(n,)`` the
    representative of each input point, ``source`` ``(k,)`` the input point each representative came
    from, ``reasons`` the number of merges made by each rule, ``atol`` the distance tolerance used,
    ``exact`` ``(k,)`` whether the representative is a root resolved to rounding error.
    """

    states: np.ndarray
    q: np.ndarray
    group: np.ndarray
    source: np.ndarray
    reasons: dict[str, int]
    atol: float
    exact: np.ndarray


def _speed_of(dyn: Dynamics, h: Tensor, u: Tensor) -> Tensor:
    r = dyn.step(h, u) - h
    return 0.5 * (r * r).sum(1)


def spectral_radius(dyn: Dynamics, h: Tensor | np.ndarray, u: Tensor | np.ndarray) -> np.ndarray:
    """:math:`\\max_i |\\lambda_i(\\partial F / \\partial h)|` at each state, ``(n,)``; below 1 the map contracts there.

    ``h`` ``(n, H)`` and ``u`` ``(n, I)``.
    """
    h = torch.as_tensor(h, dtype=dyn.dtype, device=dyn.device)
    u = torch.as_tensor(u, dtype=dyn.dtype, device=dyn.device)
    if h.shape[0] == 0:
        return np.zeros(0)
    with torch.no_grad():
        _, jac, _ = dyn.jacobians(h, u, wrt_input=False)
    return torch.linalg.eigvals(jac).abs().amax(1).cpu().numpy()


def polish_newton(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    states: np.ndarray,
    inputs: np.ndarray,
    steps: int = 8,
    max_step: float = np.inf,
    rcond: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Damped Newton steps on :math:`F(h, u) - h = 0`, kept where they lower :math:`q` and are under ``max_step``.

    .. math:: \\delta = -(J_h - I)^{+} r,\\qquad r = F(h, u) - h

    (pseudo-inverse with relative cutoff ``rcond``, so marginal directions take no step), halved up to three
    times until :math:`q` decreases; a point whose step cannot lower :math:`q` stops. Near a regular
    root the error squares at every step, which takes points that stopped just below ``fixed_tol`` in a
    flat basin (spectral radius near 1, where the root can be far from a point of small :math:`q`) onto
    the root itself.

    Returns
    -------
    states : np.ndarray
        ``(n, H)`` polished.
    q : np.ndarray
        ``(n,)`` speed there.
    step : np.ndarray
        ``(n,)`` length of the last proposed Newton step (an estimate of the distance to a root).
    """
    dyn = as_dynamics(cell)
    h = torch.as_tensor(states, dtype=dyn.dtype, device=dyn.device).clone()
    u = torch.as_tensor(inputs, dtype=dyn.dtype, device=dyn.device)
    step_len = torch.zeros(h.shape[0], dtype=dyn.dtype, device=dyn.device)
    if h.shape[0] == 0:
        return h.cpu().numpy(), step_len.cpu().numpy(), step_len.cpu().numpy()
    eye = torch.eye(dyn.hidden_size, dtype=dyn.dtype, device=dyn.device)
    with torch.no_grad():
        q = _speed_of(dyn, h, u)
        active = torch.ones(h.shape[0], dtype=torch.bool, device=dyn.device)
        for _ in range(steps):
            idx = torch.nonzero(active).squeeze(1)
            if idx.numel() == 0:
                break
            f, jac, _ = dyn.jacobians(h[idx], u[idx], wrt_input=False)
            delta = -(torch.linalg.pinv(jac - eye, rtol=rcond) @ (f - h[idx]).unsqueeze(2)).squeeze(2)
            step_len[idx] = delta.norm(dim=1)
            # backtracking: the longest of delta, delta/2, delta/4, delta/8 that lowers q
            best_q, best_t = q[idx].clone(), torch.zeros_like(q[idx])
            for t in (1.0, 0.5, 0.25, 0.125):
                q_new = _speed_of(dyn, h[idx] + t * delta, u[idx])
                take = (q_new < best_q) & (best_t == 0) & torch.isfinite(q_new) & (t * step_len[idx] <= max_step)
                best_q = torch.where(take, q_new, best_q)
                best_t = torch.where(take, torch.full_like(best_t, t), best_t)
            ok = best_t > 0
            h[idx[ok]] += best_t[ok].unsqueeze(1) * delta[ok]
            q[idx[ok]] = best_q[ok]
            active[idx[~ok]] = False
    return h.cpu().numpy(), q.cpu().numpy(), step_len.cpu().numpy()


def pseudo_transient(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    states: np.ndarray,
    inputs: np.ndarray,
    steps: int = 200,
    growth: float = 2.0,
    target_q: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Follow the flow :math:`\\dot h = F(h, u) - h` to its root by pseudo-transient continuation.

    Backward-Euler steps of growing pseudo-time step :math:`k` (Kelley & Keyes 1998):

    .. math:: \\big(k^{-1} I - (J_h - I)\\big)\\,\\delta = r,\\qquad h \\leftarrow h + \\delta,\\qquad
              r = F(h, u) - h,

    starting at :math:`k = 1` (about one step of the map) and multiplying :math:`k` by ``growth`` after every
    accepted step (a step is refused, and :math:`k` divided by ``growth**2``, when it is not finite or raises
    :math:`q = \\tfrac12\\|r\\|^2` more than a hundredfold). Small :math:`k` follows the flow; as :math:`k`
    grows the step becomes Newton's, which converges quadratically at a regular root. Near a stable point
    of the map (:math:`|\\lambda(J_h)| < 1`, so :math:`\\operatorname{Re}(1 - \\lambda) > 0`) the system is never
    singular, and a state on a slow manifold travels along it to the root in tens of steps, where
    iterating the map would take :math:`\\sim 1/(1 - |\\lambda|)` steps per e-fold.

    Parameters
    ----------
    states, inputs : np.ndarray
        ``(n, H)`` and ``(n, I)``.
    steps : int
        Iterations (points whose :math:`q` falls to ``target_q`` or below stop early).

    Returns
    -------
    states : np.ndarray
        ``(n, H)`` end states.
    q : np.ndarray
        ``(n,)`` speed there.
    """
    dyn = as_dynamics(cell)
    h = torch.as_tensor(states, dtype=dyn.dtype, device=dyn.device).clone()
    u = torch.as_tensor(inputs, dtype=dyn.dtype, device=dyn.device)
    n = h.shape[0]
    if n == 0:
        return h.cpu().numpy(), np.zeros(0)
    eye = torch.eye(dyn.hidden_size, dtype=dyn.dtype, device=dyn.device)
    k = torch.ones(n, dtype=dyn.dtype, device=dyn.device)
    with torch.no_grad():
        f, jac, _ = dyn.jacobians(h, u, wrt_input=False)
        r = f - h
        q = 0.5 * (r * r).sum(1)
        active = torch.nonzero(q > target_q).squeeze(1)
        for _ in range(steps):
            if active.numel() == 0:
                break
            system = eye / k[active, None, None] + eye - jac[active]
            delta, info = torch.linalg.solve_ex(system, r[active].unsqueeze(2))
            h_new = h[active] + torch.where((info == 0)[:, None], delta.squeeze(2), torch.zeros_like(r[active]))
            f_new, jac_new, _ = dyn.jacobians(h_new, u[active], wrt_input=False)
            r_new = f_new - h_new
            q_new = 0.5 * (r_new * r_new).sum(1)
            ok = (info == 0) & torch.isfinite(q_new) & (q_new <= 100.0 * q[active])
            rows = active[ok]
            h[rows], jac[rows], r[rows], q[rows] = h_new[ok], jac_new[ok], r_new[ok], q_new[ok]
            k[active] = torch.where(ok, k[active] * growth, k[active] / growth**2)
            active = active[q[active] > target_q]
    return h.cpu().numpy(), q.cpu().numpy()


def _components(n: int, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Connected-component label ``(n,)`` of the graph with the given edges."""
    import scipy.sparse
    import scipy.sparse.csgraph

    r = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
    c = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    graph = scipy.sparse.coo_matrix((np.ones(r.size), (r, c)), shape=(n, n))
    return scipy.sparse.csgraph.connected_components(graph, directed=False)[1]


def merge_same_points(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    states: np.ndarray,
    inputs: np.ndarray,
    q: np.ndarray,
    *,
    scale: float,
    fixed_tol: float = 1e-10,
    merge_rtol: float = 1e-3,
    atol: float = 1e-4,
    newton_steps: int = 8,
    ptc_steps: int = 200,
    flow_steps: int = 100000,
    lm_steps: int = 200,
    segment_points: int = 16,
) -> MergedPoints:
    """Group distinct points that stand for the same fixed point or attractor.

    1. **Polish** every point with :func:`polish_newton` (steps no longer than ``0.1 * scale``). A point is
       *exact* when its speed is then below ``1e-6 * fixed_tol``.
    2. **Distance**: points (held at the same input) closer than
       :math:`\\max(\\text{atol}, \\text{merge\\_rtol} \\cdot \\text{scale})` are one point; ``scale`` is the
       RMS spread of the states the search started from, so the tolerance follows the size of the state
       space.
    3. **Flow**: each group of the previous step without an exact member whose best point is stable
       follows the flow :math:`\\dot h = F(h, u) - h` by :func:`pseudo_transient` (``ptc_steps``
       iterations); where that ends at a stable root, the group joins the exact point within the tolerance
       of it, or, if the root is new (the search missed it), moves onto it (later groups reaching the same
       root then join it). Groups it does not settle are iterated under the map in chunks of 200, 400,
       800, ... steps (at most ``flow_steps`` in all), polished after each, until they come within the
       tolerance of an exact point or reach a root (or, after :math:`10^4` steps, their speed stops
       falling: a slow point or a cycle), and join it in the same way.
    4. **Root**: from the best point of each group still without an exact member (saddles included),
       Levenberg-Marquardt on :math:`q` (:func:`minimize_speed`, ``lm_steps`` iterations, no Adam phase);
       where it reaches a root within ``0.1 * scale`` the group joins that root as in 3.
    5. **Slow manifold**: two groups without an exact member join when the speed stays below ``fixed_tol``
       along the segment between their best points (``segment_points`` samples): they lie on one slow
       manifold, not at two fixed points.

    Exact points are merged only by distance, so distinct exact points on a line attractor stay apart.
    Each final group is represented by its member of lowest speed (exact members first). A group left
    without an exact member is not at a root that these steps can resolve: a slow point (``exact`` False).

    Parameters
    ----------
    states, inputs, q : np.ndarray
        ``(n, H)``, ``(n, I)``, ``(n,)`` distinct points, e.g. after :func:`deduplicate_points`.
    scale : float
        State scale (RMS distance of the initial states to their centroid).
    """
    dyn = as_dynamics(cell)
    n = states.shape[0]
    tol = max(float(atol), float(merge_rtol) * float(scale))
    reasons = {"distance": 0, "flow": 0, "root": 0, "slow_manifold": 0}
    if n == 0:
        empty = np.zeros(0, np.int64)
        return MergedPoints(states, q, empty, empty, reasons, tol, np.zeros(0, dtype=bool))
    h, qp, _ = polish_newton(dyn, states, inputs, newton_steps, max_step=0.1 * scale)
    exact = qp <= 1e-6 * fixed_tol
    same_input = np.linalg.norm(inputs[:, None] - inputs[None], axis=2) <= atol
    edges: list[tuple[np.ndarray, np.ndarray]] = []

    def link(i: np.ndarray, j: np.ndarray, reason: str) -> None:
        keep = same_input[i, j] & (i != j)
        reasons[reason] += int(keep.sum())
        edges.append((i[keep], j[keep]))

    def best_of_groups(labels: np.ndarray) -> np.ndarray:
        """Index of the best member (exact first, then lowest speed) of every group, ordered by group label."""
        order = np.lexsort((qp, ~exact, labels))
        first = np.ones(order.size, dtype=bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        return order[first]

    # 2. distance
    i, j = np.nonzero(np.triu(np.linalg.norm(h[:, None] - h[None], axis=2) <= tol, 1))
    link(i, j, "distance")
    labels = _components(n, edges)
    best = best_of_groups(labels)
    loose_groups = best[~exact[best]]

    # 3. flow of loose groups whose best point is stable
    ht = torch.as_tensor(h, dtype=dyn.dtype, device=dyn.device)
    ut = torch.as_tensor(inputs, dtype=dyn.dtype, device=dyn.device)
    if loose_groups.size and dyn.hidden_size:
        pending = loose_groups[spectral_radius(dyn, ht[loose_groups], ut[loose_groups]) < 1.0]
    else:
        pending = np.zeros(0, np.int64)
    exact_idx = np.nonzero(exact)[0]

    def join_root(p: int, target: np.ndarray, is_root: bool, reason: str = "flow") -> bool:
        """Link point ``p`` to the exact points near ``target``; or, if ``target`` is a root none of them is,
        move ``p`` onto it (a root the search missed). True when ``p`` is settled."""
        nonlocal exact_idx
        near = exact_idx[np.linalg.norm(h[exact_idx] - target, axis=1) <= tol] if exact_idx.size else exact_idx
        if near.size:
            link(np.full(near.size, p), near, reason)
            return True
        if is_root:  # polished to rounding error first: in a flat basin q <= 1e-6 fixed_tol is still far off
            root, q_root, _ = polish_newton(dyn, target[None], inputs[p : p + 1], newton_steps)
            h[p], qp[p], exact[p] = root[0], float(q_root[0]), True
            exact_idx = np.append(exact_idx, p)  # later groups reaching the same root join it
            return True
        return False

    # 3a. pseudo-transient continuation along the flow; kept where it ends at a stable root
    if pending.size:
        end_ptc, q_ptc = pseudo_transient(dyn, h[pending], inputs[pending], ptc_steps, target_q=1e-6 * fixed_tol)
        at_root = q_ptc <= 1e-6 * fixed_tol
        at_root[at_root] = spectral_radius(dyn, end_ptc[at_root], ut[pending[at_root]]) < 1.0
        settled = np.array([bool(at_root[k]) and join_root(p, end_ptc[k], True) for k, p in enumerate(pending)],
                           dtype=bool)
        pending = pending[~settled]

    # 3b. the remaining ones iterated under the map
    chunk, taken = 100, 0
    end = ht[pending].clone()
    with torch.no_grad():
        speed = _speed_of(dyn, end, ut[pending]).cpu().numpy()
    while pending.size and taken < flow_steps:
        chunk = min(2 * chunk, flow_steps - taken)
        taken += chunk
        with torch.no_grad():
            for _ in range(chunk):
                end = dyn.step(end, ut[pending])
            new_speed = _speed_of(dyn, end, ut[pending]).cpu().numpy()
        pol, q_end, _ = polish_newton(dyn, end.cpu().numpy(), inputs[pending], newton_steps, max_step=0.1 * scale)
        reached = q_end <= 1e-6 * fixed_tol
        # a state whose speed no longer falls after 10^4 steps is at a slow point or on a cycle, not
        # approaching a root (earlier, speeds may rise while a state leaves a plateau)
        done = reached | ((new_speed >= 0.999 * speed) & (taken >= 10000))
        speed = new_speed
        for k, p in enumerate(pending):
            target = pol[k] if reached[k] else end[k].cpu().numpy()
            done[k] = join_root(p, target, bool(reached[k])) or done[k]
        pending, end = pending[~done], end[torch.as_tensor(~done, device=end.device)]
        speed = speed[~done]

    # 4. Levenberg-Marquardt from the best point of every group still without an exact member (saddles too)
    labels = _components(n, edges)
    best = best_of_groups(labels)
    loose = best[~exact[best]]
    if loose.size and lm_steps > 0:
        lm = minimize_speed(dyn, h[loose], inputs[loose], fixed_tol=1e-6 * fixed_tol, adam_steps=0,
                            max_iter=lm_steps, polish_steps=2, dtype=dyn.dtype, device=dyn.device)
        near_root = (lm.q <= 1e-6 * fixed_tol) & (np.linalg.norm(lm.states - h[loose], axis=1) <= 0.1 * scale)
        for k, p in enumerate(loose):
            if near_root[k]:
                join_root(p, lm.states[k], True, "root")

    # 5. slow manifolds between the best points of the groups still without an exact member
    labels = _components(n, edges)
    best = best_of_groups(labels)
    loose = best[~exact[best]]
    if loose.size > 1:
        i, j = np.triu_indices(loose.size, 1)
        a, b = loose[i], loose[j]
        keep = same_input[a, b]
        a, b = a[keep], b[keep]
        if a.size:
            ht = torch.as_tensor(h, dtype=dyn.dtype, device=dyn.device)
            t = torch.linspace(0.0, 1.0, segment_points + 2, dtype=dyn.dtype, device=dyn.device)[1:-1]
            pts = ht[a, None] + t[None, :, None] * (ht[b] - ht[a])[:, None]
            us = ut[a, None].expand(-1, t.numel(), -1)
            with torch.no_grad():
                m = pts.shape[0] * pts.shape[1]
                qs = _speed_of(dyn, pts.reshape(m, dyn.hidden_size), us.reshape(m, dyn.input_size))
            slow = (qs.reshape(a.size, -1).amax(1) < fixed_tol).cpu().numpy()
            link(a[slow], b[slow], "slow_manifold")

    labels = _components(n, edges)
    best = best_of_groups(labels)
    source = best[np.lexsort((qp[best], ~exact[best]))]
    position = np.empty(labels.max() + 1, dtype=np.int64)
    position[labels[source]] = np.arange(source.size)
    return MergedPoints(h[source], qp[source], position[labels], source, reasons, tol, exact[source])


# ----------------------------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FixedPoints(H5Record):
    """Unique fixed and slow points of a map with their linearisation.

    ``N`` points, ``H`` units, ``I`` inputs, ``M`` initial states. Eigenmodes are sorted by
    decreasing :math:`|\\lambda|`; see :mod:`lfads.analysis.linearization` for the conventions.

    Attributes
    ----------
    states : np.ndarray
        ``(N, H)`` the points :math:`h^*`.
    inputs : np.ndarray
        ``(N, I)`` the inputs :math:`u^*` held there.
    q : np.ndarray
        ``(N,)`` speed :math:`\\tfrac12\\|F(h^*, u^*) - h^*\\|^2`.
    grad_norm : np.ndarray
        ``(N,)`` :math:`\\|\\nabla q\\|`.
    iterations : np.ndarray
        ``(N,)`` second-order iterations of the representative initial state.
    kind : np.ndarray
        ``(N,)`` ``"fixed"`` or ``"slow"`` (``"unconverged"`` only with ``keep_unconverged``).
    count : np.ndarray
        ``(N,)`` number of initial states merged into each point.
    jac_state : np.ndarray
        ``(N, H, H)`` :math:`J_h = \\partial F / \\partial h`.
    jac_input : np.ndarray
        ``(N, H, I)`` :math:`J_u = \\partial F / \\partial u`.
    eigenvalues : np.ndarray
        ``(N, H)`` complex.
    left_eigenvectors, right_eigenvectors : np.ndarray
        ``(N, H, H)`` complex, modes in columns, :math:`w_k^H v_k = 1`.
    stability : np.ndarray
        ``(N,)`` ``"stable"``, ``"saddle"`` or ``"unstable"``.
    n_unstable, n_marginal : np.ndarray
        ``(N,)`` int: directions with :math:`|\\lambda| > 1`, and with :math:`||\\lambda| - 1| \\le` ``marginal_tol``.
    candidate_states : np.ndarray
        ``(M, H)`` where every initial state ended.
    candidate_q, candidate_grad_norm : np.ndarray
        ``(M,)``.
    candidate_iterations : np.ndarray
        ``(M,)`` int.
    candidate_kind : np.ndarray
        ``(M,)`` strings from :data:`KINDS`.
    candidate_index : np.ndarray
        ``(M,)`` int: the unique point each initial state joined, ``-1`` if unconverged, ``-2`` if
        excluded as a distance outlier.
    settings : dict
        Tolerances and run statistics (``fixed_tol``, ``grad_tol``, ``marginal_tol``, ``dedup_tol``,
        ``outlier_scale``, ``adam_steps``, ``wall_time``, ...).

    Saved and loaded as an :class:`lfads.analysis.records.H5Record` (one dataset per array, settings as
    ``settings.*`` attributes).
    """

    FORMAT = _FORMAT

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    grad_norm: np.ndarray
    iterations: np.ndarray
    kind: np.ndarray
    count: np.ndarray
    jac_state: np.ndarray
    jac_input: np.ndarray
    eigenvalues: np.ndarray
    left_eigenvectors: np.ndarray
    right_eigenvectors: np.ndarray
    stability: np.ndarray
    n_unstable: np.ndarray
    n_marginal: np.ndarray
    candidate_states: np.ndarray
    candidate_q: np.ndarray
    candidate_grad_norm: np.ndarray
    candidate_iterations: np.ndarray
    candidate_kind: np.ndarray
    candidate_index: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    _POINT_FIELDS = (
        "states",
        "inputs",
        "q",
        "grad_norm",
        "iterations",
        "kind",
        "count",
        "jac_state",
        "jac_input",
        "eigenvalues",
        "left_eigenvectors",
        "right_eigenvectors",
        "stability",
        "n_unstable",
        "n_marginal",
    )

    # -- basic views ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def hidden_size(self) -> int:
        """``H``."""
        return int(self.states.shape[1])

    @property
    def speed(self) -> np.ndarray:
        """``(N,)`` :math:`\\|F(h^*, u^*) - h^*\\| = \\sqrt{2q}`."""
        return np.sqrt(2.0 * self.q)

    @property
    def max_abs_eigenvalue(self) -> np.ndarray:
        """``(N,)`` spectral radius of :math:`J_h`."""
        if self.eigenvalues.shape[1] == 0:
            return np.zeros(len(self))
        return np.abs(self.eigenvalues).max(axis=1)

    @property
    def converged(self) -> np.ndarray:
        """``(N,)`` bool: the point is a fixed point or a certified slow point."""
        return self.kind != "unconverged"

    @property
    def converged_fraction(self) -> float:
        """Fraction of initial states that ended as a fixed or certified slow point."""
        if self.candidate_kind.size == 0:
            return float("nan")
        return float(np.mean(self.candidate_kind != "unconverged"))

    def select(self, mask: np.ndarray) -> FixedPoints:
        """A new result with only the points where ``mask`` ``(N,)`` (bool or indices) holds.

        ``candidate_index`` is remapped; initial states of dropped points get ``-3``.
        """
        sel = np.arange(len(self))[mask]
        new_index = np.full(len(self), -3, dtype=np.int64)
        new_index[sel] = np.arange(sel.size)
        cand = self.candidate_index.copy()
        ok = cand >= 0
        cand[ok] = new_index[cand[ok]]
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._POINT_FIELDS:
            kwargs[name] = getattr(self, name)[sel]
        kwargs["candidate_index"] = cand
        kwargs["settings"] = dict(self.settings)
        return FixedPoints(**kwargs)

    def fixed(self) -> FixedPoints:
        """Only the points with :math:`q <` ``fixed_tol``."""
        return self.select(self.kind == "fixed")

    def slow(self) -> FixedPoints:
        """Only the certified slow points."""
        return self.select(self.kind == "slow")

    def relinearized(self, dyn: Dynamics) -> FixedPoints:
        """The same points with their Jacobians and eigendecompositions computed again from ``dyn``
        (:func:`linearize_points`), e.g. after reading a file that stored the points without them."""
        return replace(self, **linearize_points(dyn, self.states, self.inputs), settings=dict(self.settings))

    def unstable_modes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues ``(k,)`` and unit right eigenvectors ``(H, k)`` of the modes with :math:`|\\lambda| > 1`.

        Parameters
        ----------
        index : int
            Which point.
        """
        sel = np.abs(self.eigenvalues[index]) > 1.0
        return self.eigenvalues[index][sel], self.right_eigenvectors[index][:, sel]

    # -- projections ---------------------------------------------------------------------------------------------
    def project(self, basis: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
        """Coordinates ``(N, k)`` of the points in a basis ``(k, H)``, e.g. factor weights (:func:`project_states`)."""
        return project_states(self.states, basis, center)

    def project_pca(self, pca_or_trajectories: PCA | np.ndarray, n_components: int = 3) -> np.ndarray:
        """Coordinates ``(N, k)`` on the principal components of trajectories.

        Parameters
        ----------
        pca_or_trajectories : PCA or np.ndarray
            A fitted :class:`PCA`, or states ``(..., H)`` to fit one on.
        n_components : int
            ``k`` when fitting.
        """
        if isinstance(pca_or_trajectories, PCA):
            pca = pca_or_trajectories
        else:
            pca = compute_pca(pca_or_trajectories, n_components)
        return pca.transform(self.states)

    # -- text ----------------------------------------------------------------------------------------------------
    def summary(self, max_rows: int = 50) -> str:
        """A table with one row per point (at most ``max_rows``) and counts by kind and stability class."""
        lines = []
        n_cand = self.candidate_kind.size
        if n_cand:
            conv = int((self.candidate_kind != "unconverged").sum())
            outl = int((self.candidate_index == -2).sum())
            lines.append(
                f"{n_cand} initial states: {conv} converged ({100.0 * conv / n_cand:.1f}%), "
                f"{outl} outliers excluded -> {len(self)} unique points"
            )
        by_kind = ", ".join(f"{k}: {int((self.kind == k).sum())}" for k in KINDS if (self.kind == k).any())
        by_stab = ", ".join(
            f"{s}: {int((self.stability == s).sum())}"
            for s in ("stable", "saddle", "unstable")
            if (self.stability == s).any()
        )
        st = self.settings
        if st.get("merge") and "n_distinct" in st:
            lines.append(
                f"merged {int(st['n_distinct'])} distinct points into {len(self)} "
                f"(links by distance <= {float(st['merge_atol']):.1e}: {int(st.get('merged_by_distance', 0))}, "
                f"by flow: {int(st.get('merged_by_flow', 0))}, by root: {int(st.get('merged_by_root', 0))}, "
                f"by slow manifold: {int(st.get('merged_by_slow_manifold', 0))}); "
                f"'count' is the number of initial states in each"
            )
        lines.append(f"by kind: {by_kind or 'none'}; by stability: {by_stab or 'none'}")
        header = (
            f"{'#':>4} {'kind':<6} {'stability':<9} {'n_unst':>6} {'n_marg':>6} {'max|lam|':>9} {'q':>9} "
            f"{'|grad q|':>9} {'iters':>5} {'count':>6}"
        )
        lines.append(header)
        lines.append("-" * len(header))
        mx = self.max_abs_eigenvalue
        for i in range(min(len(self), max_rows)):
            lines.append(
                f"{i:>4} {self.kind[i]:<6} {self.stability[i]:<9} {self.n_unstable[i]:>6d} {self.n_marginal[i]:>6d} "
                f"{mx[i]:>9.5f} {self.q[i]:>9.2e} {self.grad_norm[i]:>9.2e} {self.iterations[i]:>5d} "
                f"{self.count[i]:>6d}"
            )
        if len(self) > max_rows:
            lines.append(f"... {len(self) - max_rows} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


LINEARIZATION_FIELDS = ("jac_state", "jac_input", "eigenvalues", "left_eigenvectors", "right_eigenvectors")
"""The fields of :class:`FixedPoints` that :func:`linearize_points` computes from the dynamics and the points."""


def linearize_points(dyn: Dynamics, states: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The linearization of :math:`F` at points :math:`(h^*, u^*)`, keyed by :class:`FixedPoints` field.

    .. math:: F(h^* + \\delta h, u^* + \\delta u) \\approx h^* + J_h \\delta h + J_u \\delta u,
              \\qquad J_h v_k = \\lambda_k v_k,\\quad w_k^H J_h = \\lambda_k w_k^H

    Parameters
    ----------
    dyn : Dynamics
        The map (:func:`lfads.analysis.jacobians.as_dynamics`).
    states : np.ndarray
        ``(N, H)`` points.
    inputs : np.ndarray
        ``(N, I)`` inputs held there.

    Returns
    -------
    dict
        ``jac_state`` ``(N, H, H)``, ``jac_input`` ``(N, H, I)``, ``eigenvalues`` ``(N, H)`` and
        ``left_eigenvectors``, ``right_eigenvectors`` ``(N, H, H)``
        (:func:`lfads.analysis.linearization.compute_eigendecomposition`).
    """
    n = int(np.shape(states)[0])
    if n:
        h = torch.as_tensor(states, dtype=dyn.dtype, device=dyn.device)
        u = torch.as_tensor(inputs, dtype=dyn.dtype, device=dyn.device)
        with torch.no_grad():
            _, jh, ju = dyn.jacobians(h, u, wrt_input=True)
        jh_np = jh.cpu().numpy()
        ju_np = ju.cpu().numpy() if ju is not None else np.zeros((n, dyn.hidden_size, dyn.input_size))
    else:
        jh_np = np.zeros((0, dyn.hidden_size, dyn.hidden_size))
        ju_np = np.zeros((0, dyn.hidden_size, dyn.input_size))
    eigvals, left, right = compute_eigendecomposition(jh_np)
    return {"jac_state": jh_np, "jac_input": ju_np, "eigenvalues": eigvals, "left_eigenvectors": left,
            "right_eigenvectors": right}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# Main entry point
# ----------------------------------------------------------------------------------------------------------------------


def find_fixed_points(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    initial_states: Tensor | np.ndarray,
    inputs: Tensor | np.ndarray | None = None,
    *,
    fixed_tol: float = 1e-10,
    grad_tol: float = 1e-9,
    hess_tol: float = 1e-8,
    dedup_tol: float = 1e-4,
    merge: bool = True,
    merge_rtol: float = 1e-3,
    newton_steps: int = 8,
    ptc_steps: int = 200,
    flow_steps: int = 100000,
    outlier_scale: float | None = 10.0,
    marginal_tol: float = 1e-2,
    keep_unconverged: bool = False,
    adam_steps: int = 50,
    adam_lr: float = 1e-2,
    max_iter: int = 200,
    polish_steps: int = 2,
    progress: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    hidden_size: int | None = None,
    input_size: int | None = None,
) -> FixedPoints:
    """Find, deduplicate and linearise the fixed and slow points of ``h_t = F(h_{t-1}, u^*)``.

    Pipeline: :func:`minimize_speed` from every initial state, drop unconverged states (unless
    ``keep_unconverged``) and distance outliers (:func:`find_distance_outliers` relative to the
    initial states; ``outlier_scale=None`` keeps all), merge duplicates within ``dedup_tol``
    (:func:`deduplicate_points` on the concatenated ``[h, u]``), then compute :math:`J_h`,
    :math:`J_u`, eigenvalues, left/right eigenvectors and the stability class at each unique point.

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        See :func:`minimize_speed`.
    initial_states : Tensor or np.ndarray
        ``(M, H)``, e.g. from :func:`sample_initial_states`.
    inputs : Tensor or np.ndarray, optional
        :math:`u^*`: ``None`` (zeros), ``(I,)``, or ``(M, I)``.
    dedup_tol : float
        Distance below which two end states are the same.
    merge : bool
        Group distinct points that stand for one fixed point or attractor (:func:`merge_same_points`:
        Newton polish, distance within ``max(dedup_tol, merge_rtol * scale)``, the flow of loose stable points
        by pseudo-transient continuation (``ptc_steps``) and under the map (``flow_steps``), slow
        manifolds, Levenberg-Marquardt onto roots); ``scale`` is the RMS spread of the initial states. The
        merges made by each rule are in ``settings`` and in :meth:`FixedPoints.summary`.
    merge_rtol, newton_steps, ptc_steps, flow_steps
        See ``merge``.
    outlier_scale : float or None
        Outlier rule scale (``None`` disables it).
    marginal_tol : float
        Marginal directions: :math:`||\\lambda| - 1| \\le` ``marginal_tol``.
    keep_unconverged : bool
        Keep unconverged end states as points (kind ``"unconverged"``).

    Other Parameters
    ----------------
    fixed_tol, grad_tol, hess_tol, adam_steps, adam_lr, max_iter, polish_steps
        As in :func:`minimize_speed`.
    progress, dtype, device, hidden_size, input_size
        As in :func:`minimize_speed`.

    Returns
    -------
    FixedPoints
        Sorted by kind (fixed first), then by increasing ``q``.

    Notes
    -----
    The work is a few batched products and Cholesky factorisations of ``(M, H, H)`` matrices per
    iteration. On a small or shared CPU one thread (``torch.set_num_threads(1)``) is often the
    fastest; ``benchmarks/fixed_points.py --threads`` measures it.

    Examples
    --------
    >>> init = sample_initial_states(out.gen_states, 1024, noise_std=0.05)  # doctest: +SKIP
    >>> fps = find_fixed_points(model.decoder.generator, init.states)       # doctest: +SKIP
    >>> print(fps.summary())                                                # doctest: +SKIP
    """
    dyn = as_dynamics(cell, hidden_size=hidden_size, input_size=input_size, dtype=dtype, device=device)
    result = minimize_speed(
        dyn,
        initial_states,
        inputs,
        fixed_tol=fixed_tol,
        grad_tol=grad_tol,
        hess_tol=hess_tol,
        adam_steps=adam_steps,
        adam_lr=adam_lr,
        max_iter=max_iter,
        polish_steps=polish_steps,
        progress=progress,
    )
    h0 = to_numpy(initial_states)
    return build_fixed_points(
        dyn,
        result,
        reference_states=h0,
        dedup_tol=dedup_tol,
        outlier_scale=outlier_scale,
        marginal_tol=marginal_tol,
        keep_unconverged=keep_unconverged,
        merge=merge,
        merge_rtol=merge_rtol,
        newton_steps=newton_steps,
        ptc_steps=ptc_steps,
        flow_steps=flow_steps,
        fixed_tol=fixed_tol,
        settings={
            "fixed_tol": fixed_tol,
            "grad_tol": grad_tol,
            "hess_tol": hess_tol,
            "adam_lr": adam_lr,
            "max_iter": max_iter,
        },
    )


def build_fixed_points(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    result: SpeedMinimization,
    *,
    reference_states: np.ndarray | None = None,
    dedup_tol: float = 1e-4,
    outlier_scale: float | None = 10.0,
    marginal_tol: float = 1e-2,
    keep_unconverged: bool = False,
    settings: dict[str, Any] | None = None,
    merge: bool = True,
    merge_rtol: float = 1e-3,
    newton_steps: int = 8,
    ptc_steps: int = 200,
    flow_steps: int = 100000,
    fixed_tol: float | None = None,
) -> FixedPoints:
    """Turn per-initial-state results into a :class:`FixedPoints` (see :func:`find_fixed_points`).

    ``reference_states`` ``(M, H)`` defines the outlier rule and the state scale of the merge (the initial
    states; by default the end states themselves). With ``merge`` the distinct points are grouped by
    :func:`merge_same_points` (``merge_rtol``, ``newton_steps``, ``ptc_steps``, ``flow_steps`` go there; ``fixed_tol``
    defaults to ``settings["fixed_tol"]`` or 1e-10).
    """
    dyn = as_dynamics(cell)
    if fixed_tol is None:
        fixed_tol = float((settings or {}).get("fixed_tol", 1e-10))
    m = result.states.shape[0]
    candidate_index = np.full(m, -1, dtype=np.int64)
    usable = np.ones(m, bool) if keep_unconverged else result.converged.copy()
    usable &= np.isfinite(result.states).all(axis=1)
    if outlier_scale is not None and m:
        ref = result.states if reference_states is None else reference_states
        outlier = find_distance_outliers(result.states, ref, outlier_scale)
        candidate_index[usable & outlier] = -2
        usable &= ~outlier
    cand = np.nonzero(usable)[0]
    # fixed points first, then slow, then unconverged; lowest q first within a kind
    kind_rank = np.array([KINDS.index(k) for k in result.kind[cand]], dtype=np.int64)
    order = np.lexsort((np.nan_to_num(result.q[cand], nan=np.inf), kind_rank))
    rank = np.empty(cand.size, dtype=np.int64)
    rank[order] = np.arange(cand.size)
    joint = np.concatenate([result.states[cand], result.inputs[cand]], axis=1)
    reps_local, assign = deduplicate_points(joint, rank, dedup_tol)
    reps = cand[reps_local]
    n_distinct = int(reps.size)
    kind = result.kind[reps]
    q = result.q[reps]
    states = result.states[reps]
    inputs = result.inputs[reps]
    merge_settings: dict[str, Any] = {"merge": bool(merge)}
    if merge and reps.size:
        ref = result.states[cand] if reference_states is None else np.asarray(reference_states, dtype=np.float64)
        scale = float(np.sqrt(((ref - ref.mean(axis=0)) ** 2).sum(axis=1).mean())) if ref.size else 1.0
        merged = merge_same_points(
            dyn, states, inputs, q, scale=scale, fixed_tol=fixed_tol, merge_rtol=merge_rtol, atol=dedup_tol,
            newton_steps=newton_steps, ptc_steps=ptc_steps, flow_steps=flow_steps,
        )
        # order: kind (fixed first), then speed, as without merging
        # a point is fixed when it is a root resolved to rounding error; one below fixed_tol that no merge
        # step could take onto a root is a slow point (on a slow manifold or near a ghost), not a fixed point
        below = np.where(merged.q < fixed_tol, "slow", kind[merged.source])
        kind = np.where(merged.exact, "fixed", below).astype(kind.dtype)
        kind_rank = np.array([KINDS.index(k) for k in kind], dtype=np.int64)
        order = np.lexsort((merged.q, kind_rank))
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        reps = reps[merged.source][order]
        kind, q, states = kind[order], merged.q[order], merged.states[order]
        inputs = inputs[merged.source][order]
        assign = position[merged.group[assign]]
        merge_settings.update(
            {
                "merge_rtol": merge_rtol,
                "merge_atol": merged.atol,
                "state_scale": scale,
                "newton_steps": newton_steps,
                "ptc_steps": ptc_steps,
                "flow_steps": flow_steps,
                "n_distinct": n_distinct,
                **{f"merged_by_{k}": v for k, v in merged.reasons.items()},
            }
        )
    candidate_index[cand] = assign
    count = np.bincount(assign, minlength=reps.size).astype(np.int64)

    linear = linearize_points(dyn, states, inputs)
    stability, n_unstable, n_marginal, _ = classify_stability(linear["eigenvalues"], marginal_tol)
    all_settings = {
        **(settings or {}),
        "dedup_tol": dedup_tol,
        "outlier_scale": float("nan") if outlier_scale is None else float(outlier_scale),
        "marginal_tol": marginal_tol,
        "adam_steps": result.adam_steps,
        "wall_time": result.wall_time,
        "n_initial_states": m,
        "closed_form": isinstance(dyn, GRUDynamics),
        **merge_settings,
    }
    grad_norm = result.grad_norm[reps]
    if merge and reps.size:
        h = torch.as_tensor(states, dtype=dyn.dtype, device=dyn.device)
        u = torch.as_tensor(inputs, dtype=dyn.dtype, device=dyn.device)
        with torch.no_grad():
            grad_norm = dyn.speed_and_gradient(h, u)[2].norm(dim=1).cpu().numpy()
    return FixedPoints(
        states=states,
        inputs=inputs,
        q=q,
        grad_norm=grad_norm,
        iterations=result.iterations[reps].astype(np.int64),
        kind=kind,
        count=count,
        **linear,
        stability=stability,
        n_unstable=n_unstable,
        n_marginal=n_marginal,
        candidate_states=result.states,
        candidate_q=result.q,
        candidate_grad_norm=result.grad_norm,
        candidate_iterations=result.iterations.astype(np.int64),
        candidate_kind=result.kind,
        candidate_index=candidate_index,
        settings=all_settings,
    )
