"""Linearizations compared: fixed points of two models matched, then their Jacobian spectra compared.

Two models that compute the same way have corresponding fixed points with similar local dynamics, even
when their states live in different coordinates (Maheswaranathan et al. 2019). The points of models
:math:`A` and :math:`B` are matched one to one (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``)
by one of

* ``"readout"``: distance between the points' images in a shared output space
  :math:`\\|R_A h^A_i - R_B h^B_j\\|` (e.g. the task readout or LFADS factors mapped to the same
  neurons);
* ``"graph"``: the node map of the graph edit distance between their topology graphs
  (:mod:`lfads.compare.topology`);
* ``"spectra"``: the spectral distance itself (the best one-to-one correspondence of local dynamics);

always among points with the same index (number of unstable directions) first. For every matched pair
the distance is the 1-Wasserstein distance between the eigenvalues of :math:`J_h` at the two points
(:func:`lfads.compare.dsa.eigenvalue_wasserstein`); the overall distance is the mean over pairs, and the
points left unmatched are reported.

Only the leading ``n_modes`` eigenvalues (largest :math:`|\\lambda|`) are compared when given, which
makes models of different sizes comparable by their slow modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize

from lfads.analysis.fixed_points import FixedPoints
from lfads.compare.dsa import eigenvalue_wasserstein
from lfads.errors import LFADSDataError

__all__ = ["LinearizationComparison", "compare_linearizations", "match_fixed_points"]

_MISMATCH = 1e6  # cost added to a pair of points of different index


@dataclass(frozen=True)
class LinearizationComparison:
    """Result of :func:`compare_linearizations`.

    Attributes
    ----------
    pairs : np.ndarray
        ``(k, 2)`` matched point indices ``(i in A, j in B)``.
    pair_distances : np.ndarray
        ``(k,)`` eigenvalue Wasserstein distance of each pair.
    distance : float
        Mean of ``pair_distances`` (NaN if nothing matched).
    unmatched_a, unmatched_b : np.ndarray
        Points of each model without a partner.
    same_index : np.ndarray
        ``(k,)`` bool: the pair has the same number of unstable directions.
    """

    pairs: np.ndarray
    pair_distances: np.ndarray
    distance: float
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray
    same_index: np.ndarray


def _spectrum(fps: FixedPoints, i: int, n_modes: int | None) -> np.ndarray:
    ev = fps.eigenvalues[i]
    ev = ev[np.argsort(-np.abs(ev), kind="stable")]
    return ev[:n_modes] if n_modes else ev


def _apply_readout(readout: Any, states: np.ndarray) -> np.ndarray:
    if callable(readout) and not isinstance(readout, np.ndarray):
        import torch

        with torch.no_grad():
            out = readout(torch.as_tensor(states, dtype=torch.float32))
        return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float64)
    w = np.asarray(readout.detach().cpu().numpy() if hasattr(readout, "detach") else readout, dtype=np.float64)
    return states @ w.T


def match_fixed_points(
    a: FixedPoints,
    b: FixedPoints,
    *,
    by: str = "spectra",
    readout_a: Any = None,
    readout_b: Any = None,
    graph_a: Any = None,
    graph_b: Any = None,
    n_modes: int | None = None,
    timeout: float = 5.0,
) -> np.ndarray:
    """One-to-one matching ``(k, 2)`` of the points of two models (module docstring), same index first.

    Parameters
    ----------
    by : {"spectra", "readout", "graph"}
        What the matching minimises.
    readout_a, readout_b : array ``(outputs, H)`` or callable, optional
        For ``by="readout"``: maps from each model's states to the shared output space (a weight matrix,
        or a module/function applied to states ``(N, H)``).
    graph_a, graph_b : TopologyGraph, optional
        For ``by="graph"``.
    """
    ia, ib = np.asarray(a.n_unstable), np.asarray(b.n_unstable)
    penalty = _MISMATCH * (ia[:, None] != ib[None, :])
    if by == "readout":
        if readout_a is None or readout_b is None:
            raise LFADSDataError("match_fixed_points(by='readout') needs readout_a and readout_b.")
        ya, yb = _apply_readout(readout_a, a.states), _apply_readout(readout_b, b.states)
        if ya.shape[1] != yb.shape[1]:
            raise LFADSDataError(
                f"The readouts map to {ya.shape[1]} and {yb.shape[1]} outputs; they must share one space.")
        cost = np.linalg.norm(ya[:, None] - yb[None], axis=2)
    elif by == "spectra":
        sa = [_spectrum(a, i, n_modes) for i in range(len(a))]
        sb = [_spectrum(b, j, n_modes) for j in range(len(b))]
        cost = np.array([[eigenvalue_wasserstein(x, y) for y in sb] for x in sa]).reshape(len(a), len(b))
    elif by == "graph":
        import networkx as nx

        if graph_a is None or graph_b is None:
            raise LFADSDataError(
                "match_fixed_points(by='graph') needs graph_a and graph_b (lfads.compare.build_topology).")
        best = None  # the last (cheapest) node map found within the time cap
        for node_map, _, _ in nx.optimize_edit_paths(
            graph_a.graph, graph_b.graph, node_match=lambda x, y: x["index"] == y["index"], timeout=timeout
        ):
            best = node_map
        pairs = [(u, v) for u, v in (best or []) if u is not None and v is not None]
        return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    else:
        raise LFADSDataError(f"match_fixed_points: by must be 'spectra', 'readout' or 'graph'; got {by!r}.")
    if cost.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    rows, cols = scipy.optimize.linear_sum_assignment(cost + penalty)
    return np.stack([rows, cols], axis=1).astype(np.int64)


def compare_linearizations(
    a: FixedPoints,
    b: FixedPoints,
    *,
    by: str = "spectra",
    n_modes: int | None = None,
    stable_only: bool = False,
    **match_kwargs: Any,
) -> LinearizationComparison:
    """Match the fixed points of two models and compare their Jacobian spectra (module docstring).

    Parameters
    ----------
    a, b : FixedPoints
        The two models' points (:func:`lfads.analysis.find_fixed_points`).
    by : str
        Matching rule (:func:`match_fixed_points`, whose keyword arguments ``match_kwargs`` pass through).
    n_modes : int, optional
        Compare only the leading eigenvalues of each point.
    stable_only : bool
        Compare only the stable points.
    """
    sel_a = np.nonzero(a.stability == "stable")[0] if stable_only else np.arange(len(a))
    sel_b = np.nonzero(b.stability == "stable")[0] if stable_only else np.arange(len(b))
    aa, bb = a.select(sel_a), b.select(sel_b)
    pairs = match_fixed_points(aa, bb, by=by, n_modes=n_modes, **match_kwargs)
    d = np.array([eigenvalue_wasserstein(_spectrum(aa, i, n_modes), _spectrum(bb, j, n_modes)) for i, j in pairs])
    same = (aa.n_unstable[pairs[:, 0]] == bb.n_unstable[pairs[:, 1]]) if pairs.size else np.zeros(0, bool)
    full_pairs = np.stack([sel_a[pairs[:, 0]], sel_b[pairs[:, 1]]], axis=1) if pairs.size else pairs
    return LinearizationComparison(
        pairs=full_pairs,
        pair_distances=d,
        distance=float(d.mean()) if d.size else float("nan"),
        unmatched_a=np.setdiff1d(sel_a, full_pairs[:, 0] if pairs.size else []),
        unmatched_b=np.setdiff1d(sel_b, full_pairs[:, 1] if pairs.size else []),
        same_index=same,
    )
