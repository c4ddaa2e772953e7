"""Local linear dynamics along the same trials compared: the matrices of a Jacobian-switching linear system.

Along trial :math:`i`, at step :math:`t`, a model :math:`h_t = F(h_{t-1}, u_t)` moves, to first order, by

.. math::

    A_{it} = \\frac{\\partial F}{\\partial h}(x_{it}, w_{it}),

the matrix a Jacobian-switching linear system (JSLDS; Smith, Linderman & Sussillo 2021) uses at that step.
It is evaluated at

* ``"states"``: the state the model visits and the input that drives it,
  :math:`x_{it} = h_{i,t-1}`, :math:`w_{it} = u_{it}` (:math:`h_{i,-1}` the initial state);
* ``"expansion"``: the JSLDS expansion point of that state, :math:`x_{it} = E(h_{i,t-1})`,
  :math:`w_{it} = u^* = 0`, for a model with an expansion-point network :math:`E` (co-trained with LFADS,
  :class:`lfads.modules.jslds.JSLDS`, or fitted post hoc, :func:`lfads.analysis.fit_expansion_point_network`).

The distance between models :math:`a` and :math:`b` run on the same trials is the mean, over a set
:math:`P` of (trial, step) pairs shared by both, of the 1-Wasserstein distance between the eigenvalues of
their matrices (uniform weights, points in :math:`\\mathbb C`; the value of
:func:`lfads.compare.dsa.eigenvalue_wasserstein`, computed as an assignment, :func:`spectral_distances`):

.. math::

    d(a, b) = \\frac{1}{|P|} \\sum_{(i, t) \\in P} W_1\\big(\\lambda(A^a_{it}),\\ \\lambda(A^b_{it})\\big).

* :math:`P`: every (trial, step) at which every model's previous state is known (step 0 needs the initial
  states), or ``max_points`` of them drawn uniformly without replacement with a fixed ``seed``.
* ``n_modes``: only the leading eigenvalues (largest :math:`|\\lambda|`) of each matrix.
* Models of different widths: the shorter spectrum is padded with zeros to the length of the longer one,
  i.e. the smaller model is compared as if embedded in the larger space with extra units that are reset
  to zero at every step (:math:`A \\mapsto \\mathrm{blockdiag}(A, 0)`).

Eigenvalues make the distance blind to any invertible linear change of coordinates
:math:`h \\mapsto Qh` (the map :math:`F'(h', u) = Q F(Q^{-1} h', u)` visits :math:`Q h_t` and has
:math:`A' = Q A Q^{-1}`; an expansion network transformed the same way, :math:`E' = Q E Q^{-1}`, keeps it so).
It is not blind to nonlinear changes of coordinates (:math:`A' = D\\phi(h_t) A D\\phi(h_{t-1})^{-1}` is not
a similarity transform) nor to a change of time step. It is symmetric, zero for a model and itself, and for
models of one width a mean of metrics, so it obeys the triangle inequality.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lfads.analysis.jacobians import Dynamics, as_dynamics, compute_jacobians
from lfads.compare.dsa import assignment_wasserstein
from lfads.errors import LFADSDataError

__all__ = [
    "AT_CHOICES",
    "JSLDSComparison",
    "TrialPath",
    "jslds_spectra",
    "linearization_points",
    "pairwise_jslds_distances",
    "shared_points",
    "spectral_distances",
]

AT_CHOICES: tuple[str, ...] = ("auto", "states", "expansion")


@dataclass(frozen=True)
class TrialPath:
    """One model on the shared trials: its map, the states it visits and what drove them.

    Attributes
    ----------
    cell : module or callable
        The map :math:`F(h, u)` (``nn.GRUCell``, ``ClippedGRUCell``, any module or ``f(u, h)``).
    states : np.ndarray
        ``(trials, time, H)``: ``states[:, t]`` is :math:`h_t = F(h_{t-1}, u_t)`.
    inputs : np.ndarray, optional
        ``(trials, time, I)`` inputs :math:`u_t`; needed at visited states when the cell takes inputs.
    initial_states : np.ndarray, optional
        ``(trials, H)`` :math:`h_{-1}`; without it step 0 has no previous state and is left out.
    expansion : module or callable, optional
        Expansion-point network :math:`E`, ``(batch, H) -> (batch, H)``.
    hidden_size, input_size : int, optional
        Sizes of a plain function ``f(u, h)``.
    name : str
    """

    cell: Any
    states: np.ndarray
    inputs: np.ndarray | None = None
    initial_states: np.ndarray | None = None
    expansion: Any = None
    hidden_size: int | None = None
    input_size: int | None = None
    name: str = "model"


@dataclass(frozen=True)
class JSLDSComparison:
    """Result of :func:`pairwise_jslds_distances`.

    Attributes
    ----------
    distances : np.ndarray
        ``(N, N)`` mean eigenvalue Wasserstein distances.
    points : np.ndarray
        ``(P, 2)`` the (trial, step) pairs compared, shared by all models.
    linearized_at : list of str
        Per model, ``"states"`` or ``"expansion"``.
    """

    distances: np.ndarray
    points: np.ndarray
    linearized_at: list[str]


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64)
    return np.asarray(x, dtype=np.float64)


def shared_points(paths: Sequence[TrialPath], max_points: int | None = 2000, seed: int = 0) -> np.ndarray:
    """(trial, step) pairs ``(P, 2)`` at which every model's previous state is known, subsampled to ``max_points``.

    Raises
    ------
    LFADSDataError
        If the models were not run on the same trials (their states differ in trials or steps).
    """
    shapes = [np.shape(p.states) for p in paths]
    bad = [p.name for p, s in zip(paths, shapes) if len(s) != 3]
    if bad:
        raise LFADSDataError(
            f"The jslds metric needs states (trials, time, H) for every model; {bad} have other shapes.")
    if len({s[:2] for s in shapes}) != 1:
        listed = ", ".join(f"{p.name!r} {s[:2]}" for p, s in zip(paths, shapes))
        raise LFADSDataError(
            f"The jslds metric compares models on the same trials and steps, but the (trials, time) of their states "
            f"differ: {listed}. Run every model on the same inputs (compare_models(inputs=..., initial_states=...)) "
            "or pass states of the same trials."
        )
    trials, steps = shapes[0][:2]
    first = 0 if all(p.initial_states is not None for p in paths) else 1
    if steps - first <= 0 or trials == 0:
        raise LFADSDataError(
            f"The jslds metric has no step to compare: {trials} trials of {steps} steps, and step 0 needs the initial "
            "states of every model (initial_states)."
        )
    n = trials * (steps - first)
    flat = np.arange(n)
    if max_points is not None and n > max_points:
        if max_points < 1:
            raise LFADSDataError(f"max_points must be at least 1; got {max_points}.")
        flat = np.sort(np.random.default_rng(seed).choice(n, size=int(max_points), replace=False))
    return np.stack([flat // (steps - first), flat % (steps - first) + first], axis=1).astype(np.int64)


def _expansion_module(expansion: Any, dyn: Dynamics) -> Any:
    if isinstance(expansion, nn.Module):
        return copy.deepcopy(expansion).to(dtype=dyn.dtype, device=dyn.device).eval().requires_grad_(False)
    return expansion


def _resolve_at(path: TrialPath, at: str) -> str:
    if at not in AT_CHOICES:
        raise LFADSDataError(f"at must be one of {list(AT_CHOICES)}; got {at!r}.")
    if at == "expansion" and path.expansion is None:
        raise LFADSDataError(
            f"Model {path.name!r} has no expansion-point network, so it cannot be linearized at JSLDS expansion "
            "points (at='expansion'); give one (Model(expansion=...)) or use at='states' or 'auto'."
        )
    if at == "auto":
        return "expansion" if path.expansion is not None else "states"
    return at


def linearization_points(
    path: TrialPath, points: np.ndarray, at: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor | None, str, Dynamics]:
    """Where each matrix is evaluated: ``(x (P, H), w (P, I) or None for u* = 0, "states"/"expansion", dynamics)``.

    ``x`` is the previous state :math:`h_{i,t-1}` (with its input :math:`u_{it}`) or its expansion point
    :math:`E(h_{i,t-1})` (with :math:`u^* = 0`); see the module docstring.
    """
    where = _resolve_at(path, at)
    dyn = as_dynamics(path.cell, hidden_size=path.hidden_size, input_size=path.input_size)
    states = _as_array(path.states)
    trials, steps, width = states.shape
    if width != dyn.hidden_size:
        raise LFADSDataError(
            f"Model {path.name!r}: its states have {width} units but its cell has {dyn.hidden_size}; pass the states "
            "this cell visits."
        )
    ti, tt = points[:, 0], points[:, 1]
    prev = np.empty((len(points), width))
    later = tt > 0
    prev[later] = states[ti[later], tt[later] - 1]
    if (~later).any():
        h0 = _as_array(path.initial_states)
        if h0.shape != (trials, width):
            raise LFADSDataError(
                f"Model {path.name!r}: initial_states must be (trials={trials}, H={width}); got {h0.shape}.")
        prev[~later] = h0[ti[~later]]
    x = torch.as_tensor(prev, dtype=dyn.dtype, device=dyn.device)
    if where == "expansion":
        with torch.no_grad():
            x = _expansion_module(path.expansion, dyn)(x)
        return x, None, where, dyn
    if dyn.input_size == 0:
        return x, None, where, dyn
    if path.inputs is None:
        raise LFADSDataError(
            f"Model {path.name!r}: its cell takes {dyn.input_size} inputs, so the matrices at its visited states need "
            "the inputs (trials, time, I) that drove them; pass inputs to compare_models or Model(inputs=...)."
        )
    u = _as_array(path.inputs)
    if u.shape != (trials, steps, dyn.input_size):
        raise LFADSDataError(
            f"Model {path.name!r}: inputs must be (trials={trials}, time={steps}, I={dyn.input_size}); got {u.shape}.")
    return x, torch.as_tensor(u[ti, tt], dtype=dyn.dtype, device=dyn.device), where, dyn


def jslds_spectra(
    path: TrialPath,
    points: np.ndarray,
    *,
    at: str = "auto",
    n_modes: int | None = None,
    chunk_size: int = 512,
) -> tuple[np.ndarray, str]:
    """Eigenvalues ``(P, k)`` of :math:`A_{it}` at the given (trial, step) pairs, by decreasing :math:`|\\lambda|`.

    The matrices come from :func:`lfads.analysis.jacobians.compute_jacobians` (closed form for GRUs,
    ``torch.func`` otherwise), ``chunk_size`` points at a time; ``k = min(n_modes, H)``.

    Returns
    -------
    eigenvalues : np.ndarray
        ``(P, k)`` complex.
    linearized_at : str
        ``"states"`` or ``"expansion"``.
    """
    x, w, where, dyn = linearization_points(path, points, at)
    out = []
    for start in range(0, x.shape[0], chunk_size):
        stop = start + chunk_size
        jh, _ = compute_jacobians(dyn, x[start:stop], None if w is None else w[start:stop])
        ev = np.linalg.eigvals(jh.cpu().numpy())
        order = np.argsort(-np.abs(ev), axis=1, kind="stable")
        out.append(np.take_along_axis(ev, order, axis=1))
    ev = np.concatenate(out) if out else np.zeros((0, dyn.hidden_size), dtype=np.complex128)
    return (ev[:, :n_modes] if n_modes else ev), where


def spectral_distances(ev_a: np.ndarray, ev_b: np.ndarray) -> np.ndarray:
    """Per point, the eigenvalue 1-Wasserstein distance ``(P,)`` of two ``(P, k)`` spectra (shorter zero-padded).

    After padding both spectra hold ``k`` points of mass ``1/k``, so the optimal transport plan is a
    permutation (Birkhoff--von Neumann) and

    .. math:: W_1 = \\min_\\sigma \\frac1k \\sum_m |\\lambda_m - \\mu_{\\sigma(m)}|,

    solved exactly as an assignment (:func:`lfads.compare.dsa.assignment_wasserstein`).
    """
    width = max(ev_a.shape[1], ev_b.shape[1])
    pad_a = np.pad(ev_a, ((0, 0), (0, width - ev_a.shape[1])))
    pad_b = np.pad(ev_b, ((0, 0), (0, width - ev_b.shape[1])))
    return np.array([assignment_wasserstein(a, b) for a, b in zip(pad_a, pad_b)])


def pairwise_jslds_distances(
    paths: Sequence[TrialPath],
    *,
    max_points: int | None = 2000,
    n_modes: int | None = None,
    at: str = "auto",
    seed: int = 0,
) -> JSLDSComparison:
    """All-pairs mean eigenvalue distance of the JSLDS matrices of ``N`` models on the same trials (module docstring).

    Parameters
    ----------
    paths : sequence of TrialPath
        The models, every one on the same trials and steps.
    max_points : int, optional
        Compare at most this many (trial, step) pairs, drawn with ``seed`` (all of them when ``None``).
    n_modes : int, optional
        Compare only the leading eigenvalues of each matrix.
    at : {"auto", "states", "expansion"}
        Where the matrices are evaluated: expansion points for models with an expansion network and visited
        states otherwise (``"auto"``), or the one rule for every model.
    seed : int
        Seeds the choice of points.
    """
    if n_modes is not None and n_modes < 1:
        raise LFADSDataError(f"n_modes must be at least 1 (or None for all eigenvalues); got {n_modes}.")
    points = shared_points(paths, max_points, seed)
    spectra, where = zip(*(jslds_spectra(p, points, at=at, n_modes=n_modes) for p in paths))
    n = len(paths)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = float(spectral_distances(spectra[i], spectra[j]).mean())
    return JSLDSComparison(d, points, list(where))
