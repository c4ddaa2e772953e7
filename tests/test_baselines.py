"""Tests for lfads.baselines: smoothing, the Poisson GLM and the smoothing co-bps baseline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import check_grad

from lfads.baselines import _poisson_glm_loss_and_grad, fit_poisson_glm, smooth_spikes, smoothing_baseline
from lfads.errors import LFADSDataError
from lfads.metrics import bits_per_spike


def test_smooth_spikes_is_gaussian_filter_along_time_and_keeps_counts_per_bin() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.5, size=(3, 200, 4)).astype(float)
    smoothed = smooth_spikes(counts, 3.0)
    np.testing.assert_allclose(smoothed[1, :, 2], gaussian_filter1d(counts[1, :, 2], 3.0, mode="reflect"))
    # A unit-mass kernel preserves the total away from the edges.
    impulse = np.zeros((1, 101, 1))
    impulse[0, 50, 0] = 7.0
    assert smooth_spikes(impulse, 4.0).sum() == pytest.approx(7.0, rel=1e-6)
    np.testing.assert_array_equal(smooth_spikes(counts, 0.0), counts)


def test_poisson_glm_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = rng.poisson(1.0, size=(200, 3)).astype(float)
    params = 0.1 * rng.normal(size=4 * 3 + 3)
    err = check_grad(lambda p: _poisson_glm_loss_and_grad(p, x, y, 0.1)[0],
                     lambda p: _poisson_glm_loss_and_grad(p, x, y, 0.1)[1], params)
    assert err < 1e-5


def test_fit_poisson_glm_recovers_known_weights() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(loc=[0.0, 2.0, -1.0], scale=[1.0, 0.5, 2.0], size=(40000, 3))
    weights = np.array([[0.4, -0.3], [0.6, 0.2], [-0.1, 0.25]])
    bias = np.array([-1.0, 0.3])
    y = rng.poisson(np.exp(x @ weights + bias)).astype(float)
    model = fit_poisson_glm(x, y, l2=1e-8)
    assert model.converged
    np.testing.assert_allclose(model.coef, weights, atol=0.02)
    np.testing.assert_allclose(model.intercept, bias, atol=0.05)


def test_fit_poisson_glm_l2_shrinks_weights_towards_zero() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 2))
    y = rng.poisson(np.exp(x @ np.array([0.8, -0.5]))).astype(float)
    weak, strong = fit_poisson_glm(x, y, l2=1e-6), fit_poisson_glm(x, y, l2=10.0)
    assert np.abs(strong.coef).sum() < 0.2 * np.abs(weak.coef).sum()


def test_fit_poisson_glm_rejects_negative_or_nan_counts() -> None:
    x = np.zeros((3, 1))
    with pytest.raises(LFADSDataError, match="negative"):
        fit_poisson_glm(x, np.array([1.0, -1.0, 0.0]))
    with pytest.raises(LFADSDataError, match="NaN"):
        fit_poisson_glm(x, np.array([1.0, np.nan, 0.0]))


def _latent_population(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts of 16 neurons driven by two slow latents (random phase per trial)."""
    rng = np.random.default_rng(seed)
    t = np.arange(60)[None, :, None] / 60.0
    phase = rng.uniform(0, 2 * np.pi, size=(80, 1, 1))
    latents = np.concatenate([np.sin(2 * np.pi * t + phase), np.cos(2 * np.pi * t + phase)], axis=-1)
    log_rates = np.log(0.3) + latents @ rng.normal(scale=0.8, size=(2, 16))
    rates = np.exp(log_rates)
    return rates, rng.poisson(rates).astype(float)


def test_smoothing_baseline_picks_grid_width_and_predicts_heldout_neurons() -> None:
    rates, counts = _latent_population(4)
    train, test = slice(0, 60), slice(60, 80)
    sigmas = (0.5, 2.0, 6.0)
    result = smoothing_baseline(counts[train, :, :12], counts[train, :, 12:], counts[test, :, :12], sigmas=sigmas)
    assert result.sigma in sigmas
    assert result.sigma == sigmas[int(np.argmax(result.cv_co_bps))]
    assert result.eval_heldin_rates.shape == (20, 60, 12)
    assert result.eval_heldout_rates.shape == (20, 60, 4)
    np.testing.assert_allclose(result.eval_heldin_rates, smooth_spikes(counts[test, :, :12], result.sigma))
    # Slow latents: heavy smoothing must beat (almost) unsmoothed counts in cross-validation.
    assert result.cv_co_bps[-1] > result.cv_co_bps[0]
    score = bits_per_spike(result.eval_heldout_rates, counts[test, :, 12:])
    truth_score = bits_per_spike(rates[test, :, 12:], counts[test, :, 12:])
    assert 0.0 < score <= truth_score


def test_a_negative_glm_penalty_is_refused_rather_than_diverging():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.poisson(1.0, size=(50, 2))
    with pytest.raises(LFADSDataError, match="fit_poisson_glm: l2 must be a number of at least 0; got -1"):
        fit_poisson_glm(x, y, l2=-1)
