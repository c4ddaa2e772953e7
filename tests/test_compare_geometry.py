"""Geometry metrics: invariances, metric axioms and closed forms (canonical correlations from scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import ortho_group

from lfads.compare.geometry import (
    LinearCKA,
    ShapeMetric,
    cross_validated_distance,
    geometry_metric,
    pairwise_cross_validated_distances,
    pairwise_distances,
)
from lfads.errors import LFADSDataError


def _latent(seed: int, trials: int = 20, time: int = 30, dim: int = 3) -> np.ndarray:
    """Smooth random trajectories ``(trials, time, dim)``."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, time)
    phase = rng.uniform(0, 2 * np.pi, size=(trials, 1, dim))
    freq = rng.uniform(0.5, 2.0, size=(1, 1, dim))
    return np.sin(freq * t[None, :, None] + phase) + 0.1 * rng.normal(size=(trials, time, dim))


def _embed(z: np.ndarray, units: int, seed: int, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(z.shape[-1], units))
    return np.tanh(z @ w) + noise * rng.normal(size=z.shape[:2] + (units,))


ALL = ["cca", "svcca", "shape", "procrustes", "procrustes_euclidean", "cka"]


@pytest.mark.parametrize("name", ALL)
def test_a_rotated_and_shifted_copy_is_at_distance_zero(name):
    x = _embed(_latent(0), 12, 1)
    q = ortho_group.rvs(12, random_state=3)
    y = x @ q + 5.0  # rotation (possibly a reflection) and translation
    assert geometry_metric(name)(x, y) < 1e-6


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_only_cca_is_invariant_to_invertible_linear_maps(alpha):
    x = _embed(_latent(0), 8, 1)
    a = np.random.default_rng(2).normal(size=(8, 8)) + 3 * np.eye(8)
    d = ShapeMetric(alpha=alpha)(x, x @ a)
    if alpha == 0.0:
        assert d < 1e-6
    else:
        assert d > 1e-2


def test_cca_distance_is_the_arccos_of_the_mean_canonical_correlation():
    x = _embed(_latent(0), 5, 1, noise=0.1).reshape(-1, 5)
    y = _embed(_latent(0), 4, 2, noise=0.3).reshape(-1, 4)
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    rho = scipy.linalg.svdvals(qx.T @ qy)  # canonical correlations
    expected = np.arccos(rho.sum() / np.sqrt(5 * 4))
    np.testing.assert_allclose(ShapeMetric(alpha=0.0)(x, y), expected, rtol=1e-10)


def test_correlation_form_is_one_minus_the_mean_of_the_smaller_models_canonical_correlations():
    x = _embed(_latent(0), 5, 1, noise=0.1).reshape(-1, 5)
    y = _embed(_latent(0), 4, 2, noise=0.3).reshape(-1, 4)
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    rho = scipy.linalg.svdvals(qx.T @ qy)  # 4 canonical correlations
    np.testing.assert_allclose(geometry_metric("cca_corr")(x, y), 1.0 - rho.mean(), rtol=1e-10)
    # svcca_corr: the same on the leading components of each model
    px, py = (ShapeMetric(alpha=0.0, variance=0.99).prepare(a) for a in (x, y))
    rho_sv = scipy.linalg.svdvals(np.linalg.qr(px.coords)[0].T @ np.linalg.qr(py.coords)[0])
    np.testing.assert_allclose(geometry_metric("svcca_corr")(x, y), 1.0 - rho_sv.mean(), rtol=1e-10)


@pytest.mark.parametrize("name", ["cca_corr", "svcca_corr"])
def test_correlation_form_is_zero_on_a_mapped_copy_and_symmetric(name):
    """CCA: any invertible linear map; SVCCA, whose truncation ranks components by variance: a scaled rotation."""
    x = _embed(_latent(0), 8, 1)
    rng = np.random.default_rng(2)
    a = rng.normal(size=(8, 8)) + 3 * np.eye(8) if name == "cca_corr" else 3.0 * ortho_group.rvs(8, random_state=2)
    m = geometry_metric(name)
    assert m(x, x @ a + 2.0) < 1e-6
    y = _embed(_latent(1), 6, 3, noise=0.1)
    assert m(x, y) > 1e-2
    np.testing.assert_allclose(m(x, y), m(y, x), rtol=1e-12)


def test_correlation_form_is_monotone_in_the_angular_form_for_models_of_one_width():
    models = [_embed(_latent(i % 3), 6, seed=100 + i, noise=0.05 * (i % 4)) for i in range(8)]
    ang = pairwise_distances(models, "cca")
    corr = pairwise_distances(models, "cca_corr")
    np.testing.assert_allclose(corr, 1.0 - np.cos(ang), atol=1e-12)


def test_correlation_form_held_out_equals_in_sample_on_the_training_trials_and_grows_with_noise():
    x = _embed(_latent(0, trials=40), 10, 1)
    m = geometry_metric("cca_corr")
    y = x @ ortho_group.rvs(10, random_state=1) + 0.3 * np.random.default_rng(4).normal(size=x.shape)
    np.testing.assert_allclose(m.score(m.fit(x, y), x, y), m(x, y), rtol=1e-9)
    b = np.random.default_rng(3).normal(size=(10, 10)) + 4 * np.eye(10)
    assert cross_validated_distance(x, x @ b, "cca_corr") < 1e-6
    noisy = [x @ b + s * np.random.default_rng(2).normal(size=x.shape) for s in (0.05, 0.2, 0.8)]
    d = [cross_validated_distance(x, n, "cca_corr", n_folds=4) for n in noisy]
    assert d[0] < d[1] < d[2]
    with pytest.raises(LFADSDataError, match="needs alpha 0"):
        ShapeMetric(alpha=0.5, kind="correlation")


def test_procrustes_euclidean_matches_scipy_orthogonal_procrustes():
    x = _embed(_latent(0), 6, 1).reshape(-1, 6)
    y = _embed(_latent(1), 6, 2).reshape(-1, 6)
    xc, yc = x - x.mean(0), y - y.mean(0)
    r, _ = scipy.linalg.orthogonal_procrustes(yc, xc)
    expected = np.linalg.norm(xc - yc @ r) / np.sqrt(x.shape[0])
    np.testing.assert_allclose(ShapeMetric(alpha=1.0, kind="euclidean")(x, y), expected, rtol=1e-10)


def test_cka_matches_its_definition_on_gram_matrices():
    x = _embed(_latent(0), 6, 1).reshape(-1, 6)
    y = _embed(_latent(1), 9, 2).reshape(-1, 9)
    xc, yc = x - x.mean(0), y - y.mean(0)
    kx, ky = xc @ xc.T, yc @ yc.T
    cka = np.sum(kx * ky) / (np.linalg.norm(kx) * np.linalg.norm(ky))
    np.testing.assert_allclose(LinearCKA().similarity(x, y), cka, rtol=1e-10)
    np.testing.assert_allclose(LinearCKA()(x, y), np.arccos(cka), rtol=1e-10)
    assert LinearCKA()(x, 3.0 * x @ ortho_group.rvs(6, random_state=0)) < 1e-6


def _models(n: int) -> list[np.ndarray]:
    """Models of mixed widths built from three latent systems, some near-identical (small distances too)."""
    out = []
    for i in range(n):
        z = _latent(i % 3)
        out.append(_embed(z, 4 + (i % 5) * 2, seed=100 + i, noise=0.02 * (i % 4)))
    return out


@pytest.mark.parametrize("name", ALL)
def test_pairwise_matrix_is_symmetric_with_zero_diagonal_and_obeys_the_triangle_inequality(name):
    models = _models(14)
    d = pairwise_distances(models, name)
    assert d.shape == (14, 14)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert (d[~np.eye(14, dtype=bool)] > 0).all()
    # the batched cross-products give the same numbers as one pair at a time
    m = geometry_metric(name)
    np.testing.assert_allclose(d[2, 7], m(models[2], models[7]), rtol=1e-9, atol=1e-12)
    rng = np.random.default_rng(0)
    i, j, k = rng.integers(0, 14, size=(3, 1000))
    violation = d[i, k] - (d[i, j] + d[j, k])
    assert violation.max() <= 1e-10, f"{int((violation > 1e-10).sum())} of 1000 triples violate it"


def test_cross_validated_distance_is_near_zero_for_a_linear_copy_and_grows_with_noise():
    x = _embed(_latent(0, trials=40), 10, 1)
    a = ortho_group.rvs(10, random_state=1)
    assert cross_validated_distance(x, x @ a, "procrustes") < 1e-6
    b = np.random.default_rng(3).normal(size=(10, 10)) + 4 * np.eye(10)  # invertible
    assert cross_validated_distance(x, x @ b, "cca") < 1e-6
    noisy = [x @ a + s * np.random.default_rng(2).normal(size=x.shape) for s in (0.05, 0.2, 0.8)]
    d = [cross_validated_distance(x, y, "cca", n_folds=4) for y in noisy]
    assert d[0] < d[1] < d[2]
    # held-out CCA is not fooled by many noise dimensions the way in-sample CCA is
    pure = np.random.default_rng(5).normal(size=(40, 30, 30))
    assert ShapeMetric(alpha=0.0)(x, pure) < cross_validated_distance(x, pure, "cca")


def test_svcca_keeps_the_components_that_explain_the_variance():
    x = _embed(_latent(0), 10, 1)
    p = ShapeMetric(alpha=0.0, variance=0.9).prepare(x)
    lam = np.linalg.eigvalsh(np.cov(x.reshape(-1, 10).T, bias=True))[::-1]
    k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), 0.9) + 1)
    assert p.coords.shape[1] == k
    np.testing.assert_allclose(p.coords.T @ p.coords / p.coords.shape[0], np.eye(k), atol=1e-9)


def test_bad_inputs_raise_errors_that_name_the_problem():
    with pytest.raises(LFADSDataError, match="alpha must lie"):
        ShapeMetric(alpha=1.5)
    with pytest.raises(LFADSDataError, match="Unknown geometry metric"):
        geometry_metric("nope")
    with pytest.raises(LFADSDataError, match="same trials"):
        ShapeMetric()(np.ones((3, 4, 2)) + np.arange(2), np.random.default_rng(0).normal(size=(4, 4, 2)))
    with pytest.raises(LFADSDataError, match="NaN"):
        ShapeMetric()(np.full((2, 3, 2), np.nan), np.ones((2, 3, 2)))


@pytest.mark.parametrize("name", ["cca", "cca_corr", "procrustes", "procrustes_euclidean", "cka"])
def test_pairwise_cross_validated_matrix_matches_pair_by_pair_scores(name):
    models = [_embed(_latent(i % 2, trials=12), 5 + i, seed=i, noise=0.05) for i in range(4)]
    d = pairwise_cross_validated_distances(models, name, n_folds=3, seed=1)
    np.testing.assert_array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    np.testing.assert_allclose(d[1, 3], cross_validated_distance(models[1], models[3], name, n_folds=3, seed=1),
                               rtol=1e-10)


def test_pairwise_distances_of_no_models_is_refused_in_one_line():
    with pytest.raises(LFADSDataError, match="no models given"):
        pairwise_distances([], "procrustes")
