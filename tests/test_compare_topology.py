"""Fixed-point topology graphs and linearization comparisons on maps with known fixed points.

The map :math:`y_d \\mapsto y_d + k_d (y_d - y_d^3)` per coordinate (rates :math:`k_d = k (1 + 0.3 d)`, distinct so
that no two unstable eigenvalues coincide) (in rotated coordinates :math:`h = Q y`) has the
fixed points :math:`\\{-1, 0, 1\\}^d`: the point with ``m`` zero coordinates has index ``m`` and its
unstable flow leads to the points where one of those zeros becomes :math:`\\pm 1` (a hypercube).
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from lfads.analysis import find_fixed_points
from lfads.compare.spectra import compare_linearizations, match_fixed_points
from lfads.compare.topology import (
    build_topology,
    count_distance,
    graph_distance,
    graph_edit_distance,
    unstable_index,
    wl_distance,
)

torch.set_num_threads(1)


def cube_map(dim: int, k: float = 0.2, seed: int | None = None):
    q = torch.eye(dim, dtype=torch.float64) if seed is None else torch.tensor(ortho_group.rvs(dim, random_state=seed))

    rates = torch.tensor([k * (1 + 0.3 * d) for d in range(dim)], dtype=torch.float64)

    def f(u, h):
        y = h @ q
        return (y + rates * (y - y**3)) @ q.T

    return f, q.numpy()


def cube_points(dim: int, k: float = 0.2, seed: int | None = None):
    f, q = cube_map(dim, k, seed)
    grid = np.linspace(-1.3, 1.3, 7)
    y0 = np.array(list(itertools.product(grid, repeat=dim)))
    fps = find_fixed_points(f, torch.tensor(y0 @ q.T), hidden_size=dim, input_size=0)
    return f, q, fps


def expected_edges(points_y: np.ndarray) -> set[tuple[int, int]]:
    """Each zero coordinate of a point, set to +-1, gives a neighbour: the hypercube's face lattice."""
    index = {tuple(np.round(p).astype(int)): i for i, p in enumerate(points_y)}
    edges = set()
    for p, i in index.items():
        for d in np.nonzero(np.array(p) == 0)[0]:
            for s in (-1, 1):
                n = list(p)
                n[d] = s
                edges.add(tuple(sorted((i, index[tuple(n)]))))
    return edges


@pytest.mark.parametrize("dim", [2, 3])
def test_graph_of_the_hypercube_map_has_the_face_lattice_edges_and_index_counts(dim):
    f, q, fps = cube_points(dim, seed=1)
    assert len(fps) == 3**dim
    topo = build_topology(f, fps, hidden_size=dim, input_size=0)
    y = fps.states @ q  # back to the coordinates where points are {-1, 0, 1}^d
    np.testing.assert_allclose(np.abs(y), np.round(np.abs(y)), atol=1e-8)
    np.testing.assert_array_equal(fps.n_unstable, (np.abs(np.round(y)) == 0).sum(1))
    assert set(topo.graph.edges) == expected_edges(y)
    from math import comb

    assert topo.count_vector().tolist() == [comb(dim, m) * 2 ** (dim - m) for m in range(dim + 1)]
    assert topo.outcome_counts()["fixed_point"] == len(topo.outcomes) == 2 * sum(fps.n_unstable)


def test_departures_that_escape_or_cycle_are_recorded_as_such():
    # 1-D: h -> 2h has one unstable point at 0; both departures leave
    f = lambda u, h: 2.0 * h  # noqa: E731
    fps = find_fixed_points(f, torch.randn(4, 1, dtype=torch.float64), hidden_size=1, input_size=0)
    topo = build_topology(f, fps, scale=1.0, hidden_size=1, input_size=0)
    assert [o["outcome"] for o in topo.outcomes] == ["left", "left"]
    # 2-D: an unstable focus whose orbits settle on a period-7 orbit on the unit circle (a limit cycle)
    def ring(u, h):
        r = h.norm(dim=1, keepdim=True)
        a = 2 * np.pi / 7
        rot = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=h.dtype)
        return (h @ rot.T) * (1 + 0.5 * (1 - r))

    fps = find_fixed_points(ring, 0.01 * torch.randn(8, 2, dtype=torch.float64), hidden_size=2, input_size=0)
    assert len(fps) == 1 and fps.n_unstable[0] == 2
    topo = build_topology(ring, fps, scale=1.0, hidden_size=2, input_size=0)
    assert {o["outcome"] for o in topo.outcomes} == {"cycle"} and topo.graph.number_of_edges() == 0


@pytest.mark.parametrize("angle", [0.1, 0.37, 2 * np.pi / 7])
def test_a_limit_cycle_of_any_period_is_recognised_soon_after_the_orbit_reaches_it(angle):
    # an unstable focus inside an attracting circle, rotating by `angle` per step: a whole number of steps
    # per period (2 pi / 7) or not (0.1, 0.37 rad), so the states on the cycle repeat exactly or never
    def ring(u, h):
        r = h.norm(dim=1, keepdim=True)
        rot = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=h.dtype)
        return (h @ rot.T) * (1 + 0.1 * (1 - r))

    fps = find_fixed_points(ring, 0.01 * torch.randn(8, 2, dtype=torch.float64), hidden_size=2, input_size=0)
    assert len(fps) == 1 and fps.n_unstable[0] == 2
    topo = build_topology(ring, fps, scale=1.0, hidden_size=2, input_size=0)
    # from 1e-3, growth by 1.1 per step reaches the circle in about 100 steps
    assert [o["outcome"] for o in topo.outcomes] == ["cycle"] * 4
    assert max(o["steps"] for o in topo.outcomes) <= 500


def test_a_steady_drift_a_slow_spiral_onto_a_point_and_a_chaotic_orbit_are_not_cycles():
    # h -> h + c: a drift at a constant speed never returns; it leaves
    from lfads.compare.topology import _returns_within_window

    drift = torch.arange(400, dtype=torch.float64)[:, None, None] * torch.tensor([[[0.01, 0.0]]], dtype=torch.float64)
    now = torch.tensor([[4.0, 0.0]], dtype=torch.float64)
    assert not _returns_within_window(drift, now, np.array([0.01]), 0.01).any()
    # a spiral contracting by 0.99 per step: back near its earlier states, but slower each time round
    t = torch.arange(401, dtype=torch.float64)
    z = (0.99**t) * torch.exp(1j * 0.3 * t)
    states = torch.stack([z.real, z.imag], 1)[:, None, :]
    speed = (states[-1] - states[-2]).norm().item() * 0.99
    assert not _returns_within_window(states[:-1], states[-1], np.array([speed]), 1e-6).any()
    # a chaotic orbit (the Henon map) passes near its earlier states, but does not repeat the stretch before
    x, y, orbit = 0.1, 0.1, []
    for _ in range(3001):
        x, y = 1 - 1.4 * x * x + y, 0.3 * x
        orbit.append((x, y))
    orbit = torch.tensor(orbit, dtype=torch.float64)
    flagged = [bool(_returns_within_window(orbit[t - 400 : t, None], orbit[t][None],
                                           np.array([(orbit[t + 1] - orbit[t]).norm().item()]), 0.01)[0])
               for t in range(500, 3000, 10)]  # fmt: skip
    assert not any(flagged)
    # the same spiral at modulus 1 (a circle) does return
    z = torch.exp(1j * 0.3 * t)
    states = torch.stack([z.real, z.imag], 1)[:, None, :]
    speed = (states[-1] - states[-2]).norm().item()
    assert _returns_within_window(states[:-1], states[-1], np.array([speed]), 1e-6).all()


def test_graph_distances_are_zero_for_the_same_topology_in_other_coordinates_and_grow_with_differences():
    f2, _, p2 = cube_points(2, k=0.2, seed=1)
    g2 = build_topology(f2, p2, hidden_size=2, input_size=0)
    f2b, _, p2b = cube_points(2, k=0.35, seed=5)  # other rates and rotation, same topology
    g2b = build_topology(f2b, p2b, hidden_size=2, input_size=0)
    f3, _, p3 = cube_points(3, seed=2)
    g3 = build_topology(f3, p3, hidden_size=3, input_size=0)
    assert graph_distance(g2, g2b) == (0.0, "ged")
    assert wl_distance(g2, g2b) == 0.0 and count_distance(g2, g2b) == 0.0
    assert count_distance(g2, g3) == (8 - 4) + (12 - 4) + (6 - 1) + 1
    assert wl_distance(g2, g3) > 0
    # relabelled copy: same WL features; a removed edge: GED 1
    perm = nx.relabel_nodes(g3.graph, {n: (n * 7) % 27 for n in g3.graph.nodes})
    assert wl_distance(g3, perm) == 0.0
    cut = g2.graph.copy()
    cut.remove_edge(*next(iter(cut.edges)))
    assert graph_edit_distance(g2, cut) == 1.0
    d, method = graph_distance(g2, g3, max_nodes=10)
    assert method == "wl" and d == wl_distance(g2, g3)


def test_linearizations_match_through_readout_spectra_or_graph_and_recover_rate_differences():
    f_a, q_a, a = cube_points(2, k=0.2, seed=1)
    f_b, q_b, b = cube_points(2, k=0.2, seed=4)
    f_c, q_c, c = cube_points(2, k=0.3, seed=4)
    # readouts that undo each rotation map both models to the same output space: the pairs are the
    # same points, and with equal rates their spectra agree exactly
    res = compare_linearizations(a, b, by="readout", readout_a=q_a.T, readout_b=q_b.T)
    assert len(res.pairs) == 9 and res.same_index.all() and res.distance < 1e-8
    np.testing.assert_allclose(a.states[res.pairs[:, 0]] @ q_a, b.states[res.pairs[:, 1]] @ q_b, atol=1e-8)
    # a faster rate moves every eigenvalue: 1 - 2 k_d at stable directions, 1 + k_d at unstable ones;
    # rates 0.2 (1, 1.3) -> 0.3 (1, 1.3): shifts 0.2 and 0.26 (stable), 0.1 and 0.13 (unstable)
    res = compare_linearizations(a, c, by="spectra")
    assert res.same_index.all() and len(res.unmatched_a) == 0
    expected = {0: (0.2 + 0.26) / 2, 2: (0.1 + 0.13) / 2}
    index = a.n_unstable[res.pairs[:, 0]]
    for k, d in zip(index, res.pair_distances):
        if int(k) in expected:
            assert d == pytest.approx(expected[int(k)], abs=1e-8)
    # index 1: one stable and one unstable direction, shifts 0.2/0.13 or 0.26/0.1 for the points on either
    # axis; matched crosswise instead, two pairs cost 0.21 + 0.135, the same total, so either matching is optimal
    assert res.pair_distances[index == 1].mean() == pytest.approx((0.165 + 0.18) / 2, abs=1e-8)
    g_a = build_topology(f_a, a, hidden_size=2, input_size=0)
    g_c = build_topology(f_c, c, hidden_size=2, input_size=0)
    pairs = match_fixed_points(a, c, by="graph", graph_a=g_a, graph_b=g_c)
    assert len(pairs) == 9 and (a.n_unstable[pairs[:, 0]] == c.n_unstable[pairs[:, 1]]).all()


def test_unstable_tol_leaves_a_marginal_direction_out_of_the_index_and_the_graph():
    # y1 -> y1 + 0.2 (y1 - y1^3) (|lambda| 1.2 at 0, 0.6 at +-1) and a marginal y2 -> y2 + 0.004 (y2 - y2^3)
    # (|lambda| 1.004 at 0, 0.992 at +-1): 9 points {-1, 0, 1}^2. Counting every |lambda| > 1 the
    # indices are the square's ([4, 4, 1]); with tol 0.01 only y1 counts: the 3 points with y1 = 0 have
    # index 1, the 6 others index 0, and each index-1 point (0, s) joins (+-1, s) along y1 only.
    rates = torch.tensor([0.2, 0.004], dtype=torch.float64)

    def f(u, h):
        return h + rates * (h - h**3)

    grid = torch.tensor(list(itertools.product(np.linspace(-1.3, 1.3, 7), repeat=2)), dtype=torch.float64)
    fps = find_fixed_points(f, grid, hidden_size=2, input_size=0, progress=False)
    assert len(fps) == 9
    np.testing.assert_array_equal(unstable_index(fps.eigenvalues), fps.n_unstable)
    plain = build_topology(f, fps, hidden_size=2, input_size=0)
    assert plain.count_vector().tolist() == [4, 4, 1]
    topo = build_topology(f, fps, unstable_tol=0.01, hidden_size=2, input_size=0)
    y = np.round(fps.states).astype(int)
    np.testing.assert_array_equal(topo.indices, (y[:, 0] == 0).astype(int))
    assert topo.count_vector().tolist() == [6, 3]
    at = {tuple(p): k for k, p in enumerate(y.tolist())}
    expected = {tuple(sorted((at[(0, s)], at[(e, s)]))) for s in (-1, 0, 1) for e in (-1, 1)}
    assert set(topo.graph.edges) == expected
    assert len(topo.outcomes) == 6 and topo.outcome_counts()["fixed_point"] == 6
    assert count_distance(plain, topo) == abs(4 - 6) + abs(4 - 3) + 1


def test_unstable_index_counts_moduli_above_one_plus_the_tolerance():
    lam = np.array([[1.5, 0.3 + 1.0j, 0.3 - 1.0j, 1.005, 0.2], [0.99, -1.02, 0.5j, -0.5j, 0.0]])
    # moduli: [1.5, 1.044, 1.044, 1.005, 0.2] and [0.99, 1.02, 0.5, 0.5, 0]
    assert unstable_index(lam).tolist() == [4, 1]
    assert unstable_index(lam, 0.01).tolist() == [3, 1]
    assert unstable_index(lam, 0.03).tolist() == [3, 0]
    assert unstable_index(lam, 0.1).tolist() == [1, 0]
    with pytest.raises(ValueError, match="unstable_tol"):
        unstable_index(lam, -0.1)


def test_compare_models_with_unstable_tol_sees_maps_that_differ_only_in_a_marginal_direction_as_equal():
    # the same y1 flow; y2 -> y2 +- 0.004 (y2 - y2^3) flips which side of |lambda| = 1 each point's marginal
    # mode falls on: indices [4, 4, 1] against [2, 5, 2] (count distance 2 + 1 + 1), equal once it is left out
    from lfads.compare import Model, compare_models

    grid = torch.tensor(list(itertools.product(np.linspace(-1.3, 1.3, 7), repeat=2)), dtype=torch.float64)
    models = []
    for sign in (1, -1):
        rates = torch.tensor([0.2, sign * 0.004], dtype=torch.float64)

        def f(u, h, rates=rates):
            return h + rates * (h - h**3)

        fps = find_fixed_points(f, grid, hidden_size=2, input_size=0)
        models.append(Model(f"m{sign}", cell=f, fixed_points=fps, hidden_size=2, input_size=0))
    plain = compare_models(models, ("topology_counts",))
    assert plain.distances["topology_counts"][0, 1] == 4.0
    res = compare_models(models, ("topology_counts", "topology"), unstable_tol=0.01)
    assert res.distances["topology_counts"][0, 1] == 0.0 and res.distances["topology"][0, 1] == 0.0
    assert res.settings["topology"]["unstable_tol"] == res.settings["topology_counts"]["unstable_tol"] == 0.01
    assert [m.topology.count_vector().tolist() for m in models] == [[6, 3], [6, 3]]
