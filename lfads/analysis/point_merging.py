"""After the speed minimisation: outliers, duplicates, and the points that stand for one fixed point.

:func:`lfads.analysis.fixed_points.find_fixed_points` removes distance outliers
(:func:`find_distance_outliers`: a point farther from the centroid of the initial states than
``outlier_scale`` times their RMS distance to it), merges duplicates (:func:`deduplicate_points`:
greedily, the point with the lowest :math:`q` absorbs every point within ``dedup_tol`` in the joint space
of state and input), and groups the remaining points that stand for one fixed point or attractor
(:func:`merge_same_points`: Newton polish onto the root (:func:`polish_newton`), a distance tolerance
relative to the state scale, the flow of loosely converged stable points under the map
(:func:`pseudo_transient`), and slow manifolds joining points that are not exact).

In flat basins (spectral radius near 1) a point with :math:`q` below ``fixed_tol`` can still be far
from the root, :math:`\\|h - h^*\\| \\approx \\|r\\| / (1 - \\rho)`; without the grouping such points count
as separate attractors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from lfads.analysis.jacobians import Dynamics, as_dynamics
from lfads.analysis.speed_minimization import minimize_speed

__all__ = [
    "MergedPoints",
    "deduplicate_points",
    "find_distance_outliers",
    "merge_same_points",
    "polish_newton",
    "pseudo_transient",
    "spectral_radius",
]


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


