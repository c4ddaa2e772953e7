"""Fixed and slow points of a recurrent map by minimising its speed.

For the map :math:`h_t = F(h_{t-1}, u)` with the input held at :math:`u^*`, fixed points
solve :math:`F(h, u^*) = h`. They are found as minima of the speed

.. math::

    q(h) = \\tfrac12 \\|r(h)\\|^2,\\quad r(h) = F(h, u^*) - h,\\quad
    \\nabla q = J^T r,\\quad J = \\partial F / \\partial h - I,

from many initial states at once, in three steps:

1. **Speed minimisation** (:mod:`lfads.analysis.speed_minimization`): Adam, then Levenberg-Marquardt
   with one damping per point, in float64; each initial state ends ``fixed``, ``slow`` or ``unconverged``
   (:data:`KINDS`).
2. **Grouping** (:mod:`lfads.analysis.point_merging`): distance outliers removed, duplicates merged, and
   the points that stand for one fixed point or attractor grouped (Newton polish onto the root, a
   distance tolerance relative to the state scale, the flow of loosely converged stable points, slow
   manifolds). With merging (the default) only points resolved onto a root (:math:`q \\le 10^{-6}`
   ``fixed_tol``) stay ``fixed``; the others below ``fixed_tol`` become ``slow``.
3. **Linearisation** at each unique point (:mod:`lfads.analysis.linearization`).

The caller's cell is never modified: GRU weights are copied, other modules deep-copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.jacobians import Dynamics, GRUDynamics, as_dynamics
from lfads.analysis.linearization import classify_stability, compute_eigendecomposition
from lfads.analysis.point_merging import (
    deduplicate_points,
    find_distance_outliers,
    merge_same_points,
    polish_newton,
    pseudo_transient,
    spectral_radius,
)
from lfads.analysis.projection import PCA, compute_pca, project_states, to_numpy
from lfads.analysis.records import H5Record
from lfads.analysis.speed_minimization import KINDS, SpeedMinimization, minimize_speed
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
