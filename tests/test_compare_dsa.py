"""DSA: delay embedding, DMD against known operators, the orthogonal similarity distance, and the
systems of DSA's Figures 3 and 4 (identical condition averages; a deformed ring attractor)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import ortho_group, spearmanr
from sklearn.metrics import silhouette_score

from lfads.compare.dsa import (
    DSA,
    _EmbeddingSVD,
    delay_embed,
    eigenvalue_wasserstein,
    fit_dmd,
    select_delay_rank,
    similarity_transform_distance,
    subtract_condition_means,
    triangle_violation_rate,
)
from lfads.compare.geometry import ShapeMetric, pairwise_distances
from lfads.compare.systems import DECISION_FAMILIES, decision_system, ring_attractor
from lfads.errors import LFADSDataError


def test_delay_embedding_stacks_lagged_copies_within_each_trial():
    x = np.arange(2 * 5 * 2, dtype=float).reshape(2, 5, 2)
    e = delay_embed(x, 3)
    assert e.shape == (2, 3, 6)
    np.testing.assert_array_equal(e[1, 0], np.concatenate([x[1, 2], x[1, 1], x[1, 0]]))
    with pytest.raises(LFADSDataError, match="delays must be between 1 and"):
        delay_embed(x, 5)


def _linear_trials(a: np.ndarray, n_trials: int = 30, n_time: int = 60, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n_trials, n_time, a.shape[0]))
    h = rng.normal(size=(n_trials, a.shape[0]))
    for t in range(n_time):
        x[:, t] = h
        h = h @ a.T + noise * rng.normal(size=h.shape)
    return x


def test_dmd_recovers_the_eigenvalues_of_a_linear_system_seen_through_an_invertible_map():
    def rot(th):
        return np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])

    a = np.zeros((4, 4))
    a[:2, :2], a[2:, 2:] = 0.95 * rot(0.3), np.diag([0.8, 0.5])
    x = _linear_trials(a, noise=0.1)
    mixed = x @ (np.random.default_rng(1).normal(size=(4, 6)))  # 4 -> 6 units, invertible on the data
    dmd = fit_dmd(mixed, delays=1, rank=4, ridge=0.0)
    expected = np.sort_complex(np.linalg.eigvals(a))
    np.testing.assert_allclose(np.sort_complex(dmd.eigenvalues), expected, atol=0.02)
    assert eigenvalue_wasserstein(dmd.operator, a) < 0.02


def test_similarity_distance_recovers_a_reflected_copy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 20)) / np.sqrt(20)
    q = ortho_group.rvs(20, random_state=1)
    if np.linalg.det(q) > 0:
        q[:, 0] = -q[:, 0]
    fit = similarity_transform_distance(a, q @ a @ q.T, return_fit=True)
    assert fit.distance < 2e-2 * np.linalg.norm(a) and fit.distance < 1e-8
    assert fit.determinant == pytest.approx(-1.0)
    sign = np.sign(np.sum(fit.transform * q.T))  # C B C^T = A for C = +-Q^T
    np.testing.assert_allclose(sign * fit.transform, q.T, atol=1e-6)


def test_similarity_distance_of_2x2_operators_matches_a_brute_force_search_over_o2():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
        th = np.linspace(0, 2 * np.pi, 200001)
        c, s = np.cos(th), np.sin(th)
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (k, 2, 2)
        cands = np.concatenate([rot, rot @ np.diag([1.0, -1.0])])
        best = np.linalg.norm(a - cands @ b @ cands.transpose(0, 2, 1), axis=(1, 2)).min()
        d = similarity_transform_distance(a, b)
        assert best - 1e-6 <= d <= best + 1e-9


def test_eigenvalue_wasserstein_is_the_mean_distance_of_matched_eigenvalues():
    a, b = np.diag([0.9, 0.5, 0.1]), np.diag([0.1, 0.6, 0.9])  # optimal matching: 0.5 <-> 0.6 only moves
    assert eigenvalue_wasserstein(a, b) == pytest.approx(0.1 / 3)
    rot = np.array([[0.0, -0.5], [0.5, 0.0]])  # eigenvalues +-0.5i
    assert eigenvalue_wasserstein(rot, np.zeros((2, 2))) == pytest.approx(0.5)
    assert eigenvalue_wasserstein(np.array([1.0, 3.0]), np.array([2.0])) == pytest.approx(1.0)


@pytest.mark.parametrize("sizes", [(64, 64), (6, 4), (128, 64), (64, 63)])
def test_eigenvalue_wasserstein_equals_the_exact_transport_cost_of_pots_solver(sizes):
    # (64, 64), (6, 4) and (128, 64) are solved as assignments of lcm(n, m) points; (64, 63) by POT itself
    import ot

    rng = np.random.default_rng(sum(sizes))
    a, b = (rng.normal(size=k) + 1j * rng.normal(size=k) for k in sizes)
    points = [np.stack([z.real, z.imag], axis=1) for z in (a, b)]
    masses = [np.full(k, 1 / k) for k in sizes]
    exact = ot.emd2(*masses, ot.dist(*points, metric="euclidean"))
    assert eigenvalue_wasserstein(a, b) == pytest.approx(exact, rel=1e-12)
    assert eigenvalue_wasserstein(b, a) == pytest.approx(exact, rel=1e-12)


def test_delay_and_rank_selection_finds_the_order_of_an_autoregressive_process():
    # a scalar AR(2) process needs two delays and rank 2; one delay cannot predict it
    rng = np.random.default_rng(0)
    x = np.zeros((40, 80, 1))
    for t in range(2, 80):
        x[:, t, 0] = 1.6 * x[:, t - 1, 0] - 0.9 * x[:, t - 2, 0] + 0.3 * rng.normal(size=40)
    sel = select_delay_rank(x, delays=(1, 2, 3, 4), horizon=3)
    assert (sel.delays, sel.rank) == (2, 2)
    assert sel.errors[0, 0] > 2 * np.nanmin(sel.errors)


def _noisy_linear(n_units: int, seed: int = 0) -> np.ndarray:
    # x_{t+1} = A x_t + noise with 2 x n_units/2 rotating modes of distinct radii: every dimension predicts
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(n_units // 2):
        r, w = 0.97 - 0.02 * k, 0.1 + 0.07 * k
        blocks.append(r * np.array([[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]]))
    a = scipy.linalg.block_diag(*blocks)
    q = ortho_group.rvs(n_units, random_state=seed)
    a = q @ a @ q.T
    x = np.zeros((30, 60, n_units))
    x[:, 0] = rng.normal(size=(30, n_units))
    for t in range(1, 60):
        x[:, t] = x[:, t - 1] @ a.T + 0.05 * rng.normal(size=(30, n_units))
    return x


def test_a_rank_chosen_at_the_edge_of_the_grid_is_flagged_and_a_given_rank_is_not():
    wide = DSA().fit([_noisy_linear(20, seed=s) for s in (0, 1)])
    assert wide.rank == 10 and wide.settings["rank_at_grid_edge"]  # 20 dimensions, the grid stops at 10
    narrow = DSA().fit([_noisy_linear(4, seed=s) for s in (0, 1)])
    assert narrow.rank <= 4 and not narrow.settings["rank_at_grid_edge"]
    given = DSA(rank=10).fit([_noisy_linear(20, seed=s) for s in (0, 1)])
    assert given.rank == 10 and not given.settings["rank_at_grid_edge"] and given.selection is not None


def test_a_wider_rank_grid_lets_the_selection_find_the_full_rank_of_a_20_dimensional_linear_system():
    xs = [_noisy_linear(20, seed=s) for s in (0, 1)]
    default, wide = DSA().fit(xs), DSA(max_rank=20).fit(xs)
    assert default.rank == 10 and default.settings["rank_at_grid_edge"]
    # every one of the 20 dimensions predicts: one delay, rank 20, at half the held-out error of rank 10
    assert (wide.delays, wide.rank) == (1, 20) and not wide.settings["rank_at_grid_edge"]
    assert (wide.settings["max_rank"], wide.settings["state_dim"]) == (20, 20)
    assert np.nanmin(wide.selection.errors) < 0.6 * np.nanmin(default.selection.errors)


def test_dmds_of_every_rank_from_one_projection_match_ridge_regressions_fitted_rank_by_rank():
    x = _noisy_linear(12, seed=3)
    ridge, ranks = 1e-3, (2, 5, 9, 12)
    fits = [fit_dmd(x, 1, None, ridge)]  # all 12 components
    fits += list(_EmbeddingSVD.of(x, 1).nested_dmds(ranks, ridge))
    centred = x - x.reshape(-1, 12).mean(axis=0)
    lam, vec = np.linalg.eigh(np.cov(centred.reshape(-1, 12).T, bias=True))
    for fit in fits:
        r = fit.rank
        z = centred @ vec[:, ::-1][:, :r] / np.sqrt(lam[::-1][:r])
        z0, z1 = z[:, :-1].reshape(-1, r), z[:, 1:].reshape(-1, r)
        a = np.linalg.solve(z0.T @ z0 + ridge * len(z0) * np.eye(r), z0.T @ z1).T
        # eigenvalues: invariant to the sign of each principal direction
        assert np.sort_complex(np.linalg.eigvals(fit.operator)) == pytest.approx(
            np.sort_complex(np.linalg.eigvals(a)), abs=1e-10)


@pytest.mark.parametrize("setting", [{"max_rank": 0}, {"rank": 0}, {"delays": -2}, {"rank": 2.5}])
def test_dsa_refuses_a_delay_or_rank_below_one_naming_it(setting):
    name = next(iter(setting))
    with pytest.raises(LFADSDataError, match=f"DSA: {name} must be a whole number of at least 1"):
        DSA(**setting)


def test_trials_too_short_for_any_delay_and_the_horizon_are_refused_in_one_line():
    x = _noisy_linear(4, seed=0)[:, :6]
    too_short = r"trials of 6 time steps are too short .* longer than delays \+ horizon \(6\)"
    with pytest.raises(LFADSDataError, match=too_short):
        select_delay_rank([x, x])
    assert select_delay_rank([x, x], horizon=4).delays == 1  # 1 delay + 4 steps fit in 6


def test_condition_means_are_removed_per_condition_and_time():
    x, cond = decision_system("point", seed=0, n_trials=20)
    r = subtract_condition_means(x, cond)
    for c in (1.0, -1.0):
        np.testing.assert_allclose(r[cond == c].mean(0), 0.0, atol=1e-12)
    with pytest.raises(LFADSDataError, match="one label per trial"):
        subtract_condition_means(x, cond[:3])


def test_dsa_figure_3_families_with_identical_condition_averages_separate_by_dynamics_only():
    data, labels = [], []
    for fi, family in enumerate(DECISION_FAMILIES):
        for i in range(5):
            x, cond = decision_system(family, seed=100 * fi + i)
            data.append(x)
            labels.append(fi)
    averages = [np.stack([x[cond == c].mean(0) for c in (1.0, -1.0)]) for x in data]
    procrustes = pairwise_distances(averages, "procrustes")
    assert procrustes.max() <= 0.1
    dsa = DSA().fit(data, conditions=cond)
    d = dsa.distances()
    assert silhouette_score(d, labels, metric="precomputed") >= 0.5
    assert silhouette_score(procrustes, labels, metric="precomputed") < 0.2
    assert triangle_violation_rate(d) <= 0.01


def test_dsa_figure_4_ring_deformation_moves_geometry_but_not_dynamics_and_a_cut_ring_differs():
    levels = np.linspace(0.0, 1.0, 8)
    reference = ring_attractor(0.0, seed=0)
    deformed = [ring_attractor(b, seed=10 + i) for i, b in enumerate(levels)]
    undeformed_same_noise = [ring_attractor(0.0, seed=10 + i) for i in range(len(levels))]
    procrustes = [ShapeMetric(alpha=1.0)(u, x) for u, x in zip(undeformed_same_noise, deformed)]
    assert spearmanr(levels, procrustes)[0] >= 0.8
    line = ring_attractor(0.0, seed=99, cut=0.2 * np.pi)
    dsa = DSA().fit([reference, *deformed, line])
    d = dsa.distances()[0, 1:]
    ring_d, line_d = d[:-1], d[-1]
    assert abs(spearmanr(levels, ring_d)[0]) <= 0.5
    assert line_d > ring_d.max()
