"""Statistics on distance matrices against closed forms and synthetic groups with known structure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lfads.compare.geometry import ShapeMetric
from lfads.compare.stats import (
    bootstrap_interval,
    embed_mds,
    group_separation,
    permutation_test,
    separation_auc,
    silhouette,
    silhouette_test,
    split_half_floor,
)
from lfads.errors import LFADSDataError


def _two_clusters(gap: float, n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = np.concatenate([rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + [gap, 0.0]])
    return cdist(pts, pts), np.repeat([0, 1], n), pts


def test_permutation_test_rejects_separated_groups_and_not_a_single_cloud():
    d, labels, _ = _two_clusters(6.0)
    res = permutation_test(d, labels, n_permutations=500)
    assert res.p_value == pytest.approx(1 / 501) and res.statistic > 3
    d0, labels0, _ = _two_clusters(0.0, seed=1)
    assert permutation_test(d0, labels0, n_permutations=500).p_value > 0.05
    # the statistic is between minus within, by hand on a 4-model matrix
    d4 = np.array([[0, 1, 5, 6], [1, 0, 7, 8], [5, 7, 0, 2], [6, 8, 2, 0]], dtype=float)
    assert permutation_test(d4, [0, 0, 1, 1], 10).statistic == pytest.approx((5 + 6 + 7 + 8) / 4 - 1.5)
    with pytest.raises(LFADSDataError, match="exactly two groups"):
        permutation_test(d4, [0, 1, 2, 2])


def test_silhouette_test_matches_the_exact_null_of_a_four_model_labelling():
    # models {0, 1} and {2, 3} are tight pairs: of the 6 equally likely arrangements of the labels [a, a, b, b],
    # 2 (the labelling and its swap) reach the observed silhouette, so the exact p is 1/3
    d4 = np.array([[0, 1, 5, 6], [1, 0, 7, 8], [5, 7, 0, 2], [6, 8, 2, 0]], dtype=float)
    res = silhouette_test(d4, ["a", "a", "b", "b"], n_permutations=4000, seed=3)
    assert res.statistic == pytest.approx(silhouette(d4, ["a", "a", "b", "b"]))
    assert res.p_value == pytest.approx(1 / 3, abs=0.025)  # Monte Carlo error about 0.0075
    # four separated clouds of 8: no shuffle comes close; one cloud: the silhouette is chance
    pts = np.random.default_rng(0).normal(size=(32, 2)) + np.repeat([[0, 0], [9, 0], [0, 9], [9, 9]], 8, axis=0)
    groups = np.repeat(np.arange(4), 8)
    assert silhouette_test(cdist(pts, pts), groups, n_permutations=200).p_value == pytest.approx(1 / 201)
    cloud = np.random.default_rng(1).normal(size=(32, 2))
    assert silhouette_test(cdist(cloud, cloud), groups, n_permutations=200).p_value > 0.05
    assert silhouette_test(np.zeros((4, 4)), [0, 0, 1, 1], n_permutations=50).p_value == 1.0
    with pytest.raises(LFADSDataError, match="2 to 3 groups"):
        silhouette_test(d4, [0, 0, 0, 0])


def test_group_separation_gathers_silhouette_p_and_auc_and_is_nan_where_they_are_undefined():
    d, labels, _ = _two_clusters(6.0)
    sc = group_separation(d, labels, n_permutations=100)
    assert sc.silhouette == silhouette(d, labels) and sc.auc == separation_auc(d, labels) == 1.0
    assert sc.p_value == silhouette_test(d, labels, 100).p_value == pytest.approx(1 / 101)
    one = group_separation(d, np.zeros(16), n_permutations=10)  # no between-group pair
    assert np.isnan(one.silhouette) and np.isnan(one.p_value) and np.isnan(one.auc)
    alone = group_separation(d, np.arange(16), n_permutations=10)  # no within-group pair
    assert np.isnan(alone.silhouette) and np.isnan(alone.auc)
    pairs = group_separation(d, np.repeat(np.arange(8), 2), n_permutations=10)  # 8 groups of 2: all defined
    assert np.isfinite([pairs.silhouette, pairs.p_value, pairs.auc]).all()
    bad = d.copy()
    bad[0, 1] = bad[1, 0] = np.nan
    assert np.isnan(list(vars(group_separation(bad, labels, n_permutations=10)).values())).all()


def test_mds_recovers_planar_configurations_and_silhouette_and_auc_follow_the_gap():
    d, labels, pts = _two_clusters(6.0)
    emb = embed_mds(d)
    np.testing.assert_allclose(cdist(emb, emb), d, atol=1e-3 * d.max())  # a planar configuration embeds exactly
    assert silhouette(d, labels) > 0.6 and separation_auc(d, labels) == 1.0
    d0, labels0, _ = _two_clusters(0.0, seed=1)
    assert abs(silhouette(d0, labels0)) < 0.15 and 0.3 < separation_auc(d0, labels0) < 0.7


def test_split_half_floor_and_bootstrap_interval_shrink_with_more_trials():
    rng = np.random.default_rng(0)
    signal = np.sin(np.linspace(0, 3, 20))[None, :, None] * rng.normal(size=(1, 1, 6))
    metric = ShapeMetric(alpha=1.0)

    def trials(n):
        return signal + 0.3 * rng.normal(size=(n, 20, 6))

    mean_of = lambda a, b: metric(a.mean(0), b.mean(0))  # noqa: E731  (condition averages of two halves)
    small, large = split_half_floor(trials(10), mean_of), split_half_floor(trials(200), mean_of)
    assert small.shape == (10,) and small.mean() > 2 * large.mean()
    x = trials(60)
    y = x @ np.linalg.qr(rng.normal(size=(6, 6)))[0] + 0.2 * rng.normal(size=x.shape)
    low, high, draws = bootstrap_interval(x, y, metric, n_boot=100)
    assert low < metric(x, y) < high and draws.shape == (100,)
    assert low > 0


def _bad(d, i, j, value):
    out = np.array(d, dtype=float)
    out[i, j] = out[j, i] = value
    return out


@pytest.mark.parametrize(("call", "says"), [
    (lambda d, lab: silhouette(_bad(d, 0, 1, np.nan), lab), "distances holds 2 NaN or inf entries"),
    (lambda d, lab: silhouette(_bad(d, 0, 1, -0.5), lab), "distances holds negative entries (down to -0.5)"),
    (lambda d, lab: silhouette(d, lab[:-1]), "silhouette needs one label per model (6)"),
    (lambda d, lab: silhouette(d, ["a"] * 6), "in 1 groups"),
    (lambda d, lab: embed_mds(_bad(d, 2, 3, np.inf)), "NaN or inf"),
    (lambda d, lab: embed_mds(d, n_components=0), "embed_mds: n_components must be a whole number of at least 1"),
    (lambda d, lab: permutation_test(d, ["a"] * 3 + ["b"] * 3, n_permutations=0), "n_permutations must be"),
])
def test_bad_distances_labels_or_counts_are_refused_in_one_line(call, says):
    x = np.random.default_rng(0).normal(size=(6, 3))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    with pytest.raises(LFADSDataError) as info:
        call(d, ["a", "a", "a", "b", "b", "b"])
    assert says in str(info.value)


def test_rounding_below_zero_is_read_as_zero_and_a_failed_metric_still_gives_nan_scores():
    x = np.random.default_rng(1).normal(size=(6, 3))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    labels = ["a", "a", "a", "b", "b", "b"]
    assert silhouette(_bad(d, 0, 0, -1e-15), labels) == pytest.approx(silhouette(d, labels), abs=1e-15)
    assert np.isnan(group_separation(_bad(d, 0, 1, np.nan), labels).silhouette)
