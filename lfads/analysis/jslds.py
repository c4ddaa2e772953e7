"""Jacobian-switching linear dynamics (JSLDS) built post hoc from a trained cell.

The nonlinear map :math:`h_t = F(h_{t-1}, u_t)` is replaced, at every step, by its
linearisation around an expansion point :math:`e_t = e(h_{t-1})` chosen from the current state,
with the input expanded around :math:`u^*`:

.. math::

    \\hat h_t = F(e_t, u^*) + J_h(e_t, u^*)\\,(h_{t-1} - e_t) + J_u(e_t, u^*)\\,(u_t - u^*)

(:math:`F(e_t, u^*) = e_t` when :math:`e_t` is a fixed point; keeping :math:`F(e_t, u^*)` makes
the system exact for affine maps at any expansion point and correct to first order at slow
points). Two ways to choose :math:`e`:

* **nearest** -- the nearest (Euclidean) of a set of fixed/slow points (a :class:`FixedPoints`
  or an array), each with its own :math:`u^*`;
* **network** -- a small expansion-point network :math:`e(h) = h + \\mathrm{MLP}(h)`
  (:class:`ExpansionPointNetwork`) fitted by :func:`fit_expansion_point_network` to minimise

  .. math:: \\mathbb E_h\\big[\\|F(e(h), u^*) - e(h)\\|^2 + \\beta\\,\\|e(h) - h\\|^2\\big]

  over visited states :math:`h`: each state is mapped to an approximate fixed point close to it,
  :math:`\\beta` trading closeness against fixedness (for an affine map the minimiser is
  :math:`e(h) = (M^T M + \\beta I)^{-1}(\\beta h - M^T c)` with :math:`M = A - I`).

:func:`simulate_jslds` runs the switching system one step ahead (from the true state at every
step) and as a free rollout (from its own state), both from the same initial state and inputs
as the nonlinear rollout, and reports relative errors
:math:`\\|\\hat h_t - h_t\\| / \\|h_t\\|` per trial and time step, per time step
(:math:`\\sqrt{\\sum_{trials}\\|\\Delta\\|^2} / \\sqrt{\\sum_{trials}\\|h\\|^2}`), and overall,
optionally also for factors :math:`f = W_{fac} h` and rates :math:`\\exp(W f + b)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.fixed_points import FixedPoints
from lfads.analysis.jacobians import Dynamics, as_dynamics, broadcast_inputs
from lfads.analysis.projection import to_numpy
from lfads.analysis.records import H5Record
from lfads.errors import LFADSDataError, check_setting
from lfads.modules.jslds import ExpansionPointNetwork

__all__ = [
    "Readout",
    "ExpansionPointNetwork",
    "JSLDSResult",
    "fit_expansion_point_network",
    "simulate_jslds",
    "compute_relative_errors",
]

_FORMAT = "lfads.analysis.JSLDSResult/1"


@dataclass
class Readout:
    """Map from states to factors and rates: :math:`f = W_{fac} h + b_{fac}`, :math:`\\lambda = \\exp(W f + b)`.

    Attributes
    ----------
    factor_weight : np.ndarray
        ``(factors, H)``, e.g. LFADS ``W_fac``.
    factor_bias : np.ndarray, optional
        ``(factors,)``.
    readout_weight : np.ndarray, optional
        ``(neurons, factors)``; without it no rates are computed.
    readout_bias : np.ndarray, optional
        ``(neurons,)``.
    """

    factor_weight: np.ndarray
    factor_bias: np.ndarray | None = None
    readout_weight: np.ndarray | None = None
    readout_bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        # accept tensors (e.g. model parameters); keep float64 numpy copies
        for name in ("factor_weight", "factor_bias", "readout_weight", "readout_bias"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, to_numpy(value))

    def factors(self, states: np.ndarray) -> np.ndarray:
        """``(..., factors)`` from states ``(..., H)``."""
        f = to_numpy(states) @ self.factor_weight.T
        return f if self.factor_bias is None else f + self.factor_bias

    def rates(self, states: np.ndarray) -> np.ndarray | None:
        """``(..., neurons)`` rates :math:`\\exp(W f + b)`, or ``None`` without a readout weight."""
        if self.readout_weight is None:
            return None
        logr = self.factors(states) @ self.readout_weight.T
        if self.readout_bias is not None:
            logr = logr + self.readout_bias
        return np.exp(logr)


def _as_tensor(x: Tensor | np.ndarray, dyn: Dynamics) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(dtype=dyn.dtype, device=dyn.device)


def fit_expansion_point_network(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    states: Tensor | np.ndarray,
    input_star: Tensor | np.ndarray | None = None,
    *,
    beta: float = 1e-2,
    width: int = 64,
    depth: int = 2,
    n_steps: int = 2000,
    lr: float = 3e-3,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
    **dynamics_kwargs: Any,
) -> tuple[ExpansionPointNetwork, list[float]]:
    """Fit :math:`e(h)` to minimise :math:`\\|F(e(h), u^*) - e(h)\\|^2 + \\beta \\|e(h) - h\\|^2` (mean over states).

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        The map (see :func:`lfads.analysis.jacobians.as_dynamics`, which also takes ``dynamics_kwargs``).
        It is not modified; only the new network is trained.
    states : Tensor or np.ndarray
        ``(..., H)`` visited states, e.g. ``gen_states`` ``(trials, time, H)``.
    input_star : Tensor or np.ndarray, optional
        ``(I,)`` input held while expanding; zeros by default.
    beta : float
        Weight of the closeness term.
    width, depth : int
        Network size.
    n_steps, lr, batch_size : int, float, int
        Adam optimisation on minibatches of states (a cosine-decayed learning rate).
    seed : int
        Seeds the network initialisation and the minibatches.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    network : ExpansionPointNetwork
        In float64 (the dtype of the dynamics), evaluation mode.
    losses : list of float
        Loss per step.
    """
    where = "fit_expansion_point_network"
    for name, value in (("width", width), ("depth", depth), ("n_steps", n_steps), ("batch_size", batch_size)):
        check_setting(where, name, value, 1, integer=True)
    check_setting(where, "lr", lr, 0.0, strict=True)
    check_setting(where, "beta", beta, 0.0)
    dyn = as_dynamics(cell, **dynamics_kwargs)
    x = _as_tensor(states, dyn).reshape(-1, dyn.hidden_size)
    x = x[torch.isfinite(x).all(1)]
    if x.shape[0] == 0:
        raise LFADSDataError("fit_expansion_point_network: states hold no finite row.")
    u_star = broadcast_inputs(input_star, 1, dyn)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = ExpansionPointNetwork(dyn.hidden_size, width, depth).to(dtype=dyn.dtype, device=dyn.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_steps), eta_min=lr * 0.01)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc="expansion network", leave=False)
    losses = []
    batch = min(batch_size, x.shape[0])
    try:
        for _ in range(n_steps):
            rows = torch.randint(x.shape[0], (batch,), generator=gen).to(x.device)
            h = x[rows]
            with torch.enable_grad():
                e = net(h)
                speed = dyn.differentiable_step(e, u_star.expand(batch, -1)) - e
                loss = (speed * speed).sum(1).mean() + beta * ((e - h) ** 2).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=losses[-1])
    finally:
        if bar is not None:
            bar.close()
    net.eval().requires_grad_(False)
    return net, losses


def compute_relative_errors(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Relative errors of ``pred`` vs ``true``, both ``(trials, time, D)``.

    Returns
    -------
    per_point : np.ndarray
        ``(trials, time)`` :math:`\\|\\hat x - x\\| / \\|x\\|` (``inf`` where :math:`x = 0 \\ne \\hat x`, ``0``
        where both are 0).
    per_time : np.ndarray
        ``(time,)`` :math:`\\sqrt{\\sum_{trials} \\|\\hat x - x\\|^2} / \\sqrt{\\sum_{trials} \\|x\\|^2}`.
    overall : float
        The same ratio over all trials and times.
    """
    diff = np.linalg.norm(pred - true, axis=-1)
    norm = np.linalg.norm(true, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_point = np.where(diff == 0, 0.0, diff / norm)
        per_time = np.sqrt((diff**2).sum(0)) / np.sqrt((norm**2).sum(0))
        per_time = np.where(np.sqrt((diff**2).sum(0)) == 0, 0.0, per_time)
        total_d = math.sqrt(float((diff**2).sum()))
        overall = 0.0 if total_d == 0 else total_d / math.sqrt(float((norm**2).sum()))
    return per_point, per_time, overall


@dataclass
class JSLDSResult(H5Record):
    """The switching linear system next to the nonlinear one.

    Shapes: ``(trials, time, H)`` for states, ``(trials, time)`` for per-point errors, ``(time,)``
    for per-time errors. Factor and rate fields are ``None`` without a :class:`Readout`.

    Attributes
    ----------
    states : np.ndarray
        Nonlinear rollout :math:`h_t = F(h_{t-1}, u_t)` from the initial states.
    one_step : np.ndarray
        :math:`\\hat h_t` from the true :math:`h_{t-1}`.
    rollout : np.ndarray
        :math:`\\hat h_t` from the switching system's own :math:`\\hat h_{t-1}`.
    one_step_expansion, rollout_expansion : np.ndarray
        The expansion points :math:`e_t` used.
    one_step_index, rollout_index : np.ndarray
        ``(trials, time)`` int, index of the expansion point (nearest mode; ``-1`` in network mode).
    one_step_error, rollout_error : np.ndarray
        ``(trials, time)`` relative state errors.
    one_step_error_by_time, rollout_error_by_time : np.ndarray
        ``(time,)``.
    one_step_error_total, rollout_error_total : float
        Over everything.
    mode : str
        ``"nearest"`` or ``"network"``.
    factors, one_step_factors, rollout_factors : np.ndarray or None
        ``(trials, time, factors)``.
    rates, one_step_rates, rollout_rates : np.ndarray or None
        ``(trials, time, neurons)``.
    errors : dict
        Overall relative errors of factors and rates (``one_step_factors``, ``rollout_rates``, ...).

    Saved and loaded as an :class:`lfads.analysis.records.H5Record` (arrays as datasets, the totals and
    ``mode`` as attributes, ``errors`` as ``errors.*`` attributes).
    """

    FORMAT = _FORMAT

    states: np.ndarray
    one_step: np.ndarray
    rollout: np.ndarray
    one_step_expansion: np.ndarray
    rollout_expansion: np.ndarray
    one_step_index: np.ndarray
    rollout_index: np.ndarray
    one_step_error: np.ndarray
    rollout_error: np.ndarray
    one_step_error_by_time: np.ndarray
    rollout_error_by_time: np.ndarray
    one_step_error_total: float
    rollout_error_total: float
    mode: str
    factors: np.ndarray | None = None
    one_step_factors: np.ndarray | None = None
    rollout_factors: np.ndarray | None = None
    rates: np.ndarray | None = None
    one_step_rates: np.ndarray | None = None
    rollout_rates: np.ndarray | None = None
    errors: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """Overall errors as text."""
        lines = [
            f"JSLDS ({self.mode}), {self.states.shape[0]} trials x {self.states.shape[1]} steps, "
            f"{self.states.shape[2]} units",
            f"relative state error: one-step {self.one_step_error_total:.3e}, rollout {self.rollout_error_total:.3e}",
        ]
        for key, value in self.errors.items():
            lines.append(f"relative {key.replace('_', ' ')} error: {value:.3e}")
        return "\n".join(lines)


class _NearestExpansion:
    """Expansion at the nearest of a fixed set of points, with their Jacobians precomputed."""

    def __init__(self, dyn: Dynamics, points: Tensor, inputs: Tensor) -> None:
        self.points = points
        self.inputs = inputs
        with torch.no_grad():
            f, jh, ju = dyn.jacobians(points, inputs, wrt_input=True)
        self.f, self.jh, self.ju = f, jh, ju
        self._sq = (points * points).sum(1)

    def select(self, h: Tensor, dyn: Dynamics) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        d2 = (h * h).sum(1, keepdim=True) - 2.0 * h @ self.points.T + self._sq
        index = d2.argmin(1)
        return self.points[index], self.inputs[index], self.f[index], self.jh[index], self.ju[index], index


class _NetworkExpansion:
    """Expansion at ``e(h)`` from a network, with Jacobians computed at each step."""

    def __init__(self, dyn: Dynamics, network: nn.Module, input_star: Tensor) -> None:
        self.network = network
        self.input_star = input_star

    def select(self, h: Tensor, dyn: Dynamics) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        e = self.network(h)
        u = self.input_star.expand(h.shape[0], -1)
        f, jh, ju = dyn.jacobians(e, u, wrt_input=True)
        return e, u, f, jh, ju, torch.full((h.shape[0],), -1, dtype=torch.long, device=h.device)


def _linear_step(h: Tensor, u: Tensor, e: Tensor, u_star: Tensor, f: Tensor, jh: Tensor, ju: Tensor | None) -> Tensor:
    out = f + (jh @ (h - e).unsqueeze(2)).squeeze(2)
    if ju is not None and ju.shape[2]:
        out = out + (ju @ (u - u_star).unsqueeze(2)).squeeze(2)
    return out


def simulate_jslds(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    initial_states: Tensor | np.ndarray,
    inputs: Tensor | np.ndarray | None,
    expansion: FixedPoints | np.ndarray | Tensor | nn.Module,
    *,
    input_star: Tensor | np.ndarray | None = None,
    n_steps: int | None = None,
    readout: Readout | None = None,
    **dynamics_kwargs: Any,
) -> JSLDSResult:
    """Run the nonlinear map and its Jacobian-switching linearisation side by side.

    Time convention: ``initial_states`` is :math:`h_{-1}` and ``inputs[:, t]`` drives step ``t``, so
    output ``t`` is :math:`h_t = F(h_{t-1}, u_t)`. For LFADS outputs, pass
    ``initial_states = gen_states[:, 0]`` and ``inputs = gen_inputs[:, 1:]`` to reproduce
    ``gen_states[:, 1:]``.

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        The nonlinear map (not modified).
    initial_states : Tensor or np.ndarray
        ``(trials, H)``.
    inputs : Tensor or np.ndarray or None
        ``(trials, time, I)``; ``None`` for an autonomous map (then ``n_steps`` is required).
    expansion : FixedPoints, array ``(points, H)``, or nn.Module
        Nearest mode with the points of a :class:`FixedPoints` (each with its own :math:`u^*`) or of
        an array (with ``input_star``); network mode with an :class:`ExpansionPointNetwork` (or any
        module mapping ``(batch, H)`` states to expansion points).
    input_star : Tensor or np.ndarray, optional
        ``(I,)`` :math:`u^*` for array and network expansion (zeros by default).
    n_steps : int, optional
        Number of steps when ``inputs`` is None.
    readout : Readout, optional
        Also report factors and rates and their errors.

    Returns
    -------
    JSLDSResult
    """
    dyn = as_dynamics(cell, **dynamics_kwargs)
    h0 = _as_tensor(initial_states, dyn)
    if h0.ndim != 2 or h0.shape[1] != dyn.hidden_size:
        raise LFADSDataError(f"initial_states must be (trials, {dyn.hidden_size}); got {tuple(h0.shape)}.")
    trials = h0.shape[0]
    if inputs is None:
        if n_steps is None:
            raise LFADSDataError("simulate_jslds: pass inputs (trials, time, I) or, for an autonomous map, n_steps.")
        u_seq = torch.zeros(trials, int(n_steps), dyn.input_size, dtype=dyn.dtype, device=dyn.device)
    else:
        u_seq = _as_tensor(inputs, dyn)
        if u_seq.ndim != 3 or u_seq.shape[0] != trials or u_seq.shape[2] != dyn.input_size:
            raise LFADSDataError(
                f"inputs must be (trials={trials}, time, I={dyn.input_size}); got {tuple(u_seq.shape)}."
            )
    T = u_seq.shape[1]

    if isinstance(expansion, FixedPoints):
        mode = "nearest"
        if len(expansion) == 0:
            raise LFADSDataError("simulate_jslds: the FixedPoints hold no point to expand around.")
        pts = _as_tensor(expansion.states, dyn)
        pts_u = _as_tensor(expansion.inputs, dyn) if expansion.inputs.shape[1] == dyn.input_size else None
        if pts_u is None:
            raise LFADSDataError(
                f"simulate_jslds: the fixed points were found with {expansion.inputs.shape[1]} inputs but the cell "
                f"takes {dyn.input_size}; use fixed points of this cell."
            )
        expander: _NearestExpansion | _NetworkExpansion = _NearestExpansion(dyn, pts, pts_u)
    elif isinstance(expansion, nn.Module):
        mode = "network"
        net = expansion
        if next(iter(net.parameters()), torch.empty(0, dtype=dyn.dtype)).dtype != dyn.dtype:
            import copy

            net = copy.deepcopy(net).to(dtype=dyn.dtype)
        expander = _NetworkExpansion(dyn, net, broadcast_inputs(input_star, 1, dyn))
    else:
        mode = "nearest"
        pts = _as_tensor(expansion, dyn)
        if pts.ndim != 2 or pts.shape[1] != dyn.hidden_size or pts.shape[0] == 0:
            raise LFADSDataError(f"expansion points must be (points>0, {dyn.hidden_size}); got {tuple(pts.shape)}.")
        expander = _NearestExpansion(dyn, pts, broadcast_inputs(input_star, pts.shape[0], dyn))

    H = dyn.hidden_size
    states = h0.new_empty(trials, T, H)
    one_step = torch.empty_like(states)
    rollout = torch.empty_like(states)
    e_one = torch.empty_like(states)
    e_roll = torch.empty_like(states)
    i_one = torch.empty(trials, T, dtype=torch.long, device=h0.device)
    i_roll = torch.empty_like(i_one)
    with torch.no_grad():
        h_true, h_lin = h0, h0
        for t in range(T):
            u_t = u_seq[:, t]
            e, us, f, jh, ju, index = expander.select(h_true, dyn)
            one_step[:, t] = _linear_step(h_true, u_t, e, us, f, jh, ju)
            e_one[:, t], i_one[:, t] = e, index
            e, us, f, jh, ju, index = expander.select(h_lin, dyn)
            h_lin = _linear_step(h_lin, u_t, e, us, f, jh, ju)
            rollout[:, t], e_roll[:, t], i_roll[:, t] = h_lin, e, index
            h_true = dyn.step(h_true, u_t)
            states[:, t] = h_true

    np_states, np_one, np_roll = (x.cpu().numpy() for x in (states, one_step, rollout))
    one_pp, one_pt, one_tot = compute_relative_errors(np_one, np_states)
    roll_pp, roll_pt, roll_tot = compute_relative_errors(np_roll, np_states)
    result = JSLDSResult(
        states=np_states,
        one_step=np_one,
        rollout=np_roll,
        one_step_expansion=e_one.cpu().numpy(),
        rollout_expansion=e_roll.cpu().numpy(),
        one_step_index=i_one.cpu().numpy(),
        rollout_index=i_roll.cpu().numpy(),
        one_step_error=one_pp,
        rollout_error=roll_pp,
        one_step_error_by_time=one_pt,
        rollout_error_by_time=roll_pt,
        one_step_error_total=one_tot,
        rollout_error_total=roll_tot,
        mode=mode,
    )
    if readout is not None:
        result.factors = readout.factors(np_states)
        result.one_step_factors = readout.factors(np_one)
        result.rollout_factors = readout.factors(np_roll)
        result.errors["one_step_factors"] = compute_relative_errors(result.one_step_factors, result.factors)[2]
        result.errors["rollout_factors"] = compute_relative_errors(result.rollout_factors, result.factors)[2]
        rates = readout.rates(np_states)
        if rates is not None:
            result.rates = rates
            result.one_step_rates = readout.rates(np_one)
            result.rollout_rates = readout.rates(np_roll)
            result.errors["one_step_rates"] = compute_relative_errors(result.one_step_rates, rates)[2]
            result.errors["rollout_rates"] = compute_relative_errors(result.rollout_rates, rates)[2]
    return result
