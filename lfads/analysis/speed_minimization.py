"""Speed minimisation: where each initial state of the fixed-point search ends.

For the map :math:`h_t = F(h_{t-1}, u)` with the input held at :math:`u^*`, the speed

.. math::

    q(h) = \\tfrac12 \\|r(h)\\|^2,\\quad r(h) = F(h, u^*) - h,\\quad
    \\nabla q = J^T r,\\quad J = \\partial F / \\partial h - I,

is minimised from many initial states at once (rows of a batch), in float64, in two phases:

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

* ``fixed``: :math:`q <` ``fixed_tol`` (1e-10 by default); with merging
  (:func:`lfads.analysis.fixed_points.find_fixed_points`'s default) only points that
  :func:`lfads.analysis.point_merging.merge_same_points` resolves onto a root (:math:`q \\le 10^{-6}`
  ``fixed_tol``) stay ``fixed``, the others below ``fixed_tol`` become ``slow``;
* ``slow``: a certified local minimum with :math:`q \\ge` ``fixed_tol``:
  :math:`\\|\\nabla q\\| <` ``grad_tol`` (1e-9 by default; states of tanh/GRU networks are
  :math:`O(1)`, so this is an absolute tolerance) and the smallest Hessian eigenvalue
  :math:`\\ge -` ``hess_tol`` :math:`\\cdot \\max(1, \\|\\nabla^2 q\\|_2)`;
* ``unconverged``: anything else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.jacobians import Dynamics, as_dynamics, broadcast_inputs
from lfads.analysis.normal_equations import gauss_newton_system
from lfads.errors import LFADSDataError

__all__ = ["KINDS", "SpeedMinimization", "minimize_speed"]

KINDS: tuple[str, ...] = ("fixed", "slow", "unconverged")
_FIXED, _SLOW, _UNCONVERGED, _ACTIVE = 0, 1, 2, 3
_MU_INIT = 1e-6  # initial damping relative to the largest diagonal entry of J^T J
_MU_CAP = 1e16  # damping (relative) beyond which a point is given up


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


