"""The topology of a model's fixed points: which saddles lead to which attractors, as a labelled graph.

Nodes are the fixed points of :func:`lfads.analysis.find_fixed_points`, labelled by their *index*
(the number of unstable directions, :math:`|\\lambda| > 1 + \\tau` with :math:`\\tau` =
``unstable_tol``, 0 by default: see :func:`unstable_index`). From every point with index
:math:`\\ge 1` and each of its unstable directions :math:`v` (for a complex pair, its real and imaginary
parts), the map is iterated from :math:`h^* \\pm \\epsilon\\, s\\, v` (:math:`s` the state scale) until the
state

* **reaches** a listed fixed point (comes within ``match_rtol * s`` of it at a check, every
  ``check_every`` steps, or slows below ``settle_tol * s`` where a Newton polish lands on it, or enters a
  region where the map contracts from which pseudo-transient continuation follows the flow onto it): an edge joins
  the two points. Reaching a point, not settling there, ends the departure: in exact arithmetic a
  heteroclinic orbit from a point of index 2 ends at a saddle, while rounding errors would carry the
  state on along the saddle's own unstable manifold;
* settles at an unlisted fixed point (``new_point``);
* **leaves** (farther than ``leave_factor * s`` from the centre of the points);
* **cycles** (returns within ``match_rtol * s`` of a state it had at one of the last 20 checks, moving at
  the same speed, within 1%, after travelling at least ten times that distance), or is still moving
  after ``max_steps`` (``unsettled``).

Every outcome is recorded in :attr:`TopologyGraph.outcomes`. Two graphs are compared by

* :func:`graph_edit_distance`: the networkx graph edit distance with node labels (indices) that must
  match, under a time cap (the best edit path found by then), for graphs of at most ``max_nodes`` nodes;
  larger graphs (or a cap reached before any path) use
* :func:`wl_distance`: the distance :math:`\\sqrt{k(G,G) + k(H,H) - 2k(G,H)}` of the Weisfeiler-Lehman
  subtree kernel :math:`k` (counts of labelled rooted subtrees up to ``iterations`` hops), a metric on
  the feature vectors;
* :func:`count_distance`: the :math:`L_1` distance between the counts of fixed points by index.
"""

from __future__ import annotations

import time as _time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.fixed_points import FixedPoints
from lfads.analysis.jacobians import Dynamics, as_dynamics
from lfads.analysis.point_merging import polish_newton, pseudo_transient, spectral_radius

__all__ = [
    "OUTCOMES",
    "TopologyGraph",
    "build_topology",
    "count_distance",
    "graph_distance",
    "graph_edit_distance",
    "unstable_index",
    "wl_distance",
]

OUTCOMES: tuple[str, ...] = ("fixed_point", "new_point", "left", "cycle", "unsettled")


@dataclass
class TopologyGraph:
    """Fixed points joined by the flow out of their unstable directions.

    Attributes
    ----------
    graph : networkx.Graph
        Nodes ``0 .. N-1`` (the fixed points, in the order of the :class:`FixedPoints`) with attributes
        ``index`` (unstable directions) and ``stability``; an edge ``(a, b)`` with attribute ``count`` (how
        many of the departures from ``a`` or ``b`` reached the other).
    outcomes : list of dict
        One entry per departure: ``source`` (point), ``mode`` (direction), ``sign`` (+1/-1), ``outcome`` (one
        of :data:`OUTCOMES`), ``target`` (point reached, or -1) and ``steps``.
    scale : float
        State scale :math:`s` used for the tolerances.
    """

    graph: nx.Graph
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    scale: float = 1.0

    @property
    def indices(self) -> np.ndarray:
        """``(N,)`` index of each node."""
        return np.array([self.graph.nodes[k]["index"] for k in sorted(self.graph.nodes)], dtype=np.int64)

    def count_vector(self, length: int | None = None) -> np.ndarray:
        """Number of fixed points with index ``0, 1, 2, ...`` (padded with zeros to ``length``)."""
        idx = self.indices
        n = max(int(idx.max()) + 1 if idx.size else 0, length or 0)
        return np.bincount(idx, minlength=n)[: max(n, 0)] if n else np.zeros(0, dtype=np.int64)

    def outcome_counts(self) -> dict[str, int]:
        """How many departures ended in each outcome."""
        counts = Counter(o["outcome"] for o in self.outcomes)
        return {k: int(counts.get(k, 0)) for k in OUTCOMES}

    def summary(self) -> str:
        """Counts by index, the edges, and the outcomes of the departures."""
        lines = [f"{self.graph.number_of_nodes()} fixed points, count by index {self.count_vector().tolist()}"]
        lines.append(f"{self.graph.number_of_edges()} edges: " + ", ".join(
            f"{a}-{b} (x{d['count']})" for a, b, d in sorted(self.graph.edges(data=True))
        ))
        lines.append("departures: " + ", ".join(f"{k}: {v}" for k, v in self.outcome_counts().items() if v))
        return "\n".join(lines)


def unstable_index(eigenvalues: np.ndarray, unstable_tol: float = 0.0) -> np.ndarray:
    """Index of each fixed point: the number of eigenvalues with :math:`|\\lambda| > 1 + \\tau`.

    With :math:`\\tau = 0` this is the plain count of unstable directions (``FixedPoints.n_unstable``).
    A map fitted to data often has many directions it never uses, each with :math:`|\\lambda|` close to 1;
    which side of 1 such a marginal mode falls on is set by noise in the fit, not by the dynamics. With
    :math:`\\tau` equal to the marginal band of the search (``marginal_tol``: directions with
    :math:`||\\lambda| - 1| \\le \\tau` are *marginal*), marginal modes count as neither stable nor unstable:
    the index counts only the directions that grow by more than a factor :math:`1 + \\tau` per step.

    Parameters
    ----------
    eigenvalues : np.ndarray
        ``(points, H)`` complex eigenvalues of :math:`\\partial F / \\partial h` at each point.
    unstable_tol : float
        :math:`\\tau \\ge 0`.

    Returns
    -------
    np.ndarray
        ``(points,)`` int64.
    """
    if unstable_tol < 0:
        raise ValueError(f"unstable_tol must be >= 0 (a margin above |lambda| = 1); got {unstable_tol}.")
    mag = np.abs(np.asarray(eigenvalues))
    return (mag > 1.0 + unstable_tol).sum(axis=-1).astype(np.int64)


def _unstable_directions(eigenvalues: np.ndarray, vectors: np.ndarray, unstable_tol: float = 0.0) -> list[np.ndarray]:
    """Real unit directions spanning the modes with :math:`|\\lambda| > 1 + \\tau` (real and imaginary parts of
    complex pairs, once)."""
    out: list[np.ndarray] = []
    seen_pair: list[complex] = []
    for lam, v in zip(eigenvalues, vectors.T):
        if abs(lam) <= 1.0 + unstable_tol:
            continue
        if abs(lam.imag) > 1e-12:
            if any(abs(lam - np.conj(s)) < 1e-9 for s in seen_pair):
                continue
            seen_pair.append(lam)
            parts = [v.real, v.imag]
        else:
            parts = [v.real]
        for p in parts:
            norm = np.linalg.norm(p)
            if norm > 1e-12:
                out.append(p / norm)
    return out


_REPEAT_STEPS = 50
"""Fewest consecutive states that must repeat those one period earlier for a return to count as a cycle."""


def _returns_within_window(window: Tensor, h: Tensor, speed: np.ndarray, tol: float) -> np.ndarray:
    """``(active,)`` bool: the state ``h`` ``(active, H)`` is on a cycle, judged from its earlier states
    ``window`` ``(W, active, H)`` (oldest first, ``window[-1]`` one step before ``h``).

    It is when ``h`` is back within :math:`\\max(\\text{tol}, v)` of a state :math:`k \\ge 3` steps and
    :math:`10\\,\\text{tol}` of travel earlier, moving at the same speed :math:`v` (within 2%), and each of the
    last :math:`m = \\max(k, 50)` states up to ``h`` is as close (within 1.5 times its own step's length, or
    ``tol``) to the state :math:`k` steps before it: the orbit repeats itself over a whole period and at least
    50 steps (:math:`k + m \\le W + 1`).

    On a cycle whose period is not a whole number of steps the states never repeat exactly, but the orbit
    passes within one step's length of its earlier states; a drift at a steady speed never comes back that
    close, a spiral onto a point slows down between its returns, and a chaotic orbit that passes near an
    earlier state did not follow it there.
    """
    n_window = window.shape[0]
    out = np.zeros(h.shape[0], dtype=bool)
    if n_window < 5:
        return out
    seq = torch.cat([window, h[None]])  # (W + 1, active, H); seq[-1 - i] is i steps old
    steps = (seq[1:] - seq[:-1]).norm(dim=2).cpu().numpy()  # (W, active): the step taken from each state
    back = (window[:-1] - h[None]).norm(dim=2).cpu().numpy()  # (W - 1, active)
    age = np.arange(n_window, 1, -1)[:, None]  # steps from each of window[:-1] to h
    ratio = steps[:-1] / np.maximum(speed[None], np.finfo(np.float64).tiny)
    near = back <= np.maximum(tol, speed)[None]
    candidate = near & (age >= 3) & (age * speed[None] > 10.0 * tol) & (np.abs(ratio - 1.0) <= 0.02)
    stretch = np.maximum(age, _REPEAT_STEPS)  # the states compared: one period, or _REPEAT_STEPS of short ones
    candidate &= age + stretch <= n_window + 1
    for row in np.nonzero(candidate.any(0))[0]:
        rows = np.nonzero(candidate[:, row])[0]
        best = rows[np.argmin(back[rows, row])]
        k, m = int(age[best, 0]), int(stretch[best, 0])
        recent, before = seq[-m:, row], seq[-m - k : -k, row]
        gap = (recent - before).norm(dim=1).cpu().numpy()
        local = np.append(steps[-m + 1 :, row], speed[row])
        out[row] = bool((gap <= 1.5 * np.maximum(tol, local)).all())
    return out


def build_topology(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    fixed_points: FixedPoints,
    *,
    scale: float | None = None,
    epsilon: float = 1e-3,
    max_steps: int = 20000,
    check_every: int = 50,
    settle_tol: float = 1e-7,
    match_rtol: float = 1e-2,
    leave_factor: float = 10.0,
    newton_steps: int = 8,
    ptc_steps: int = 100,
    unstable_tol: float = 0.0,
    cycle_window: int = 400,
    hidden_size: int | None = None,
    input_size: int | None = None,
) -> TopologyGraph:
    """Integrate the map out of every unstable direction of every fixed point and build the graph.

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        The map (as for :func:`lfads.analysis.find_fixed_points`).
    fixed_points : FixedPoints
        Its fixed points (each held at its own input).
    scale : float, optional
        State scale :math:`s`; by default the RMS distance of the fixed points to their centroid (1 for a
        single point).
    epsilon : float
        Departure step, relative to :math:`s`.
    max_steps, check_every : int
        Step cap, and how often settling, leaving and cycling are checked.
    settle_tol, match_rtol, leave_factor : float
        Speed (relative to :math:`s`) below which a state may have settled; matching distance (relative);
        escape radius (relative).
    ptc_steps : int
        Iterations of :func:`lfads.analysis.point_merging.pseudo_transient` that follow the flow of a departed
        state to its root once the map contracts there (every :math:`|\\lambda| < 1`): in a flat basin the
        map would take thousands of steps to come within the matching distance.
    unstable_tol : float
        A direction is unstable when :math:`|\\lambda| > 1 +` ``unstable_tol`` (:func:`unstable_index`): it
        sets each node's ``index`` and the directions departed along. The default 0 counts every
        :math:`|\\lambda| > 1`; ``fixed_points.settings["marginal_tol"]`` leaves marginal modes out.
    cycle_window : int
        Steps of each departure kept to recognise a cycle: at every check, a state back within
        :math:`\\max(0.01 s, v)` of one of its last ``cycle_window`` states (:math:`v` its speed, one step's
        length), at least 3 steps and :math:`10 \\cdot 0.01 s` of travel ago, moving at the same speed (within
        2%), after a stretch that repeats the one before it, is on a cycle of period at most half the window
        (:func:`_returns_within_window`); the states at the checks of the last 20 intervals catch longer
        periods when a check lands at the same phase.
    """
    dyn = as_dynamics(cell, hidden_size=hidden_size, input_size=input_size)
    pts = np.asarray(fixed_points.states, dtype=np.float64)
    n = pts.shape[0]
    if scale is None:
        scale = float(np.sqrt(((pts - pts.mean(0)) ** 2).sum(1).mean())) if n > 1 else 1.0
        scale = scale if scale > 0 else 1.0
    index = unstable_index(fixed_points.eigenvalues, unstable_tol) if n else np.zeros(0, dtype=np.int64)
    graph = nx.Graph()
    for k in range(n):
        graph.add_node(k, index=int(index[k]), stability=str(fixed_points.stability[k]))
    starts, inputs, meta = [], [], []
    for k in range(n):
        if index[k] < 1:
            continue
        directions = _unstable_directions(fixed_points.eigenvalues[k], fixed_points.right_eigenvectors[k], unstable_tol)
        for m, v in enumerate(directions):
            for sign in (1, -1):
                starts.append(pts[k] + sign * epsilon * scale * v)
                inputs.append(fixed_points.inputs[k])
                meta.append({"source": k, "mode": m, "sign": sign})
    result = TopologyGraph(graph, [], float(scale))
    if not starts:
        return result
    h = torch.as_tensor(np.array(starts), dtype=dyn.dtype, device=dyn.device)
    u = torch.as_tensor(np.array(inputs), dtype=dyn.dtype, device=dyn.device)
    center = pts.mean(0)
    active = np.arange(len(starts))
    sources = np.array([m["source"] for m in meta], dtype=np.int64)
    departed = np.zeros(len(starts), dtype=bool)
    tried = np.zeros(len(starts), dtype=bool)
    history: list[np.ndarray] = []
    speed_history: list[np.ndarray] = []
    outcome: dict[int, tuple[str, int, int]] = {}
    tol = match_rtol * scale
    steps = 0
    window = torch.zeros(0, len(starts), dyn.hidden_size, dtype=dyn.dtype, device=dyn.device)  # (W, active, H)
    while active.size and steps < max_steps:
        visited = []
        with torch.no_grad():
            for _ in range(check_every):
                visited.append(h)
                h = dyn.step(h, u)
        steps += check_every
        window = torch.cat([window, torch.stack(visited)])[-int(cycle_window):]
        with torch.no_grad():
            speed = (dyn.step(h, u) - h).norm(dim=1).cpu().numpy()
        x = h.cpu().numpy()
        dist = np.linalg.norm(x[:, None] - pts[None], axis=2)
        rows_all = np.arange(active.size)
        departed[active] |= dist[rows_all, sources[active]] > tol
        # the source counts only once the state has left its neighbourhood (a homoclinic return)
        dist[rows_all, sources[active]] = np.where(departed[active], dist[rows_all, sources[active]], np.inf)
        nearest, near_d = dist.argmin(1), dist.min(1)
        done = np.zeros(active.size, dtype=bool)
        slow = speed < settle_tol * scale
        # a state within the matching distance of a listed point has reached it (a heteroclinic orbit
        # ends there in exact arithmetic; rounding errors would carry it on along the unstable manifold
        # of a saddle); a slow state that Newton takes onto a listed point has too
        hit = near_d <= tol
        if (slow & ~hit).any():
            rows = np.nonzero(slow & ~hit)[0]
            pol, q_pol, _ = polish_newton(dyn, x[rows], u[rows].cpu().numpy(), newton_steps, max_step=0.1 * scale)
            d_pol = np.linalg.norm(pol[:, None] - pts[None], axis=2)
            for r, row in enumerate(rows):
                if d_pol[r].min() <= tol:
                    hit[row], nearest[row] = True, int(d_pol[r].argmin())
                elif q_pol[r] < 1e-20 * scale**2:
                    outcome[int(active[row])] = ("new_point", -1, steps)
                    done[row] = True
        # a departed state where the map is contracting (every |eigenvalue| < 1) is in a basin; in a flat
        # one (spectral radius near 1) the map creeps towards the attractor for thousands of steps, so the
        # flow is followed to its root by pseudo-transient continuation instead (once per departure), and
        # the departure has reached that root when it is a listed attractor
        trial = departed[active] & ~hit & ~done & ~tried[active]
        if trial.any():
            rows = np.nonzero(trial)[0]
            rows = rows[spectral_radius(dyn, h[rows], u[rows]) < 1.0]
            tried[active[rows]] = True
            if rows.size:
                end, q_end = pseudo_transient(dyn, x[rows], u[rows].cpu().numpy(), ptc_steps,
                                              target_q=1e-20 * scale**2)
                d_end = np.linalg.norm(end[:, None] - pts[None], axis=2)
                for r, row in enumerate(rows):
                    target = int(d_end[r].argmin())
                    # only an attractor: continuation can also converge to a root the map repels from
                    attractor = fixed_points.n_unstable[target] == 0
                    if q_end[r] <= 1e-20 * scale**2 and d_end[r, target] <= tol and attractor:
                        hit[row], nearest[row] = True, target
        for row in np.nonzero(hit)[0]:
            outcome[int(active[row])] = ("fixed_point", int(nearest[row]), steps)
            done[row] = True
        left = np.linalg.norm(x - center, axis=1) > leave_factor * scale
        for row in np.nonzero(left & ~done)[0]:
            outcome[int(active[row])] = ("left", -1, steps)
            done[row] = True
        cyc = _returns_within_window(window, h, speed, tol)
        if history:
            # a cycle returns near an earlier state with the same speed (a state converging slowly to a
            # point also stays near its earlier states, but its speed keeps falling)
            back = np.linalg.norm(np.stack(history) - x[None], axis=2)  # (checks, active)
            ratio = speed[None] / np.maximum(np.stack(speed_history), np.finfo(np.float64).tiny)
            # ... having travelled far further than the gap in between (a slow drift at a steady speed
            # moves about as far as it travels)
            age = np.arange(len(history), 0, -1)[:, None] * check_every
            travelled = speed[None] * age
            returns = (back <= tol) & (ratio > 0.99) & (ratio < 1.0 / 0.99) & (travelled > 10.0 * tol)
            cyc |= returns.any(0)
        for row in np.nonzero(cyc & ~slow & ~done)[0]:
            outcome[int(active[row])] = ("cycle", -1, steps)
            done[row] = True
        keep = ~done
        active = active[keep]
        h, u = h[torch.as_tensor(keep)], u[torch.as_tensor(keep)]
        window = window[:, torch.as_tensor(keep)]
        history = ([s[keep] for s in history] + [x[keep]])[-20:]
        speed_history = ([s[keep] for s in speed_history] + [speed[keep]])[-20:]
    for k in active:
        outcome[int(k)] = ("unsettled", -1, steps)
    for k, m in enumerate(meta):
        kind, target, n_steps = outcome[k]
        result.outcomes.append({**m, "outcome": kind, "target": target, "steps": n_steps})
        if kind == "fixed_point" and target != m["source"]:
            a, b = m["source"], target
            if graph.has_edge(a, b):
                graph.edges[a, b]["count"] += 1
            else:
                graph.add_edge(a, b, count=1)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Distances between graphs
# ----------------------------------------------------------------------------------------------------------------------


def _as_graph(g: TopologyGraph | nx.Graph) -> nx.Graph:
    return g.graph if isinstance(g, TopologyGraph) else g


def count_distance(a: TopologyGraph | nx.Graph, b: TopologyGraph | nx.Graph) -> float:
    """:math:`\\sum_k |n_k(A) - n_k(B)|` over the counts :math:`n_k` of fixed points with index ``k``."""
    ia = [d["index"] for _, d in _as_graph(a).nodes(data=True)]
    ib = [d["index"] for _, d in _as_graph(b).nodes(data=True)]
    length = max(ia + ib + [0]) + 1
    return float(np.abs(np.bincount(ia, minlength=length) - np.bincount(ib, minlength=length)).sum())


def _wl_features(g: nx.Graph, iterations: int) -> Counter:
    h = g.copy()
    for k in h.nodes:
        h.nodes[k]["wl_label"] = str(h.nodes[k]["index"])
    feats = Counter(h.nodes[k]["wl_label"] for k in h.nodes)
    if iterations > 0 and h.number_of_nodes():
        hashes = nx.weisfeiler_lehman_subgraph_hashes(h, node_attr="wl_label", iterations=iterations)
        for values in hashes.values():
            feats.update(f"{i}:{v}" for i, v in enumerate(values))
    return feats


def wl_distance(a: TopologyGraph | nx.Graph, b: TopologyGraph | nx.Graph, iterations: int = 3) -> float:
    """Weisfeiler-Lehman subtree kernel distance :math:`\\sqrt{k(A,A) + k(B,B) - 2k(A,B)}` (module docstring)."""
    fa, fb = _wl_features(_as_graph(a), iterations), _wl_features(_as_graph(b), iterations)
    kab = sum(v * fb.get(key, 0) for key, v in fa.items())
    kaa = sum(v * v for v in fa.values())
    kbb = sum(v * v for v in fb.values())
    return float(np.sqrt(max(kaa + kbb - 2 * kab, 0)))


def graph_edit_distance(
    a: TopologyGraph | nx.Graph, b: TopologyGraph | nx.Graph, timeout: float = 5.0
) -> float | None:
    """Graph edit distance with index labels that must match (unit costs), or ``None`` if the cap ends the search
    before any edit path; within the cap it is the best path found, an upper bound on the exact distance."""
    return nx.graph_edit_distance(
        _as_graph(a),
        _as_graph(b),
        node_match=lambda x, y: x["index"] == y["index"],
        timeout=timeout,
    )


def graph_distance(
    a: TopologyGraph | nx.Graph,
    b: TopologyGraph | nx.Graph,
    *,
    max_nodes: int = 12,
    timeout: float = 5.0,
    iterations: int = 3,
) -> tuple[float, str]:
    """Graph edit distance for graphs of at most ``max_nodes`` nodes (capped at ``timeout`` seconds), else the
    Weisfeiler-Lehman distance. Returns ``(distance, method)`` with method ``"ged"`` or ``"wl"``."""
    ga, gb = _as_graph(a), _as_graph(b)
    if max(ga.number_of_nodes(), gb.number_of_nodes()) <= max_nodes:
        start = _time.perf_counter()
        d = graph_edit_distance(ga, gb, timeout=timeout)
        if d is not None and _time.perf_counter() - start <= timeout * 1.5:
            return float(d), "ged"
    return wl_distance(ga, gb, iterations), "wl"
