"""Tests for lfads.metrics against closed forms, scipy and synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lfads.errors import LFADSDataError
from lfads.metrics import (
    DEFAULT_RIDGE_ALPHAS,
    ScoringSlices,
    bits_per_spike,
    co_bps,
    fit_ridge,
    fit_ridge_cv,
    fp_bps,
    poisson_nll,
    psth_r2,
    r2_score,
    rate_r2,
    vel_r2_cv_grouped,
    vel_r2_train_test_grouped,
)


@pytest.fixture
def poisson_data() -> tuple[np.ndarray, np.ndarray]:
    """True rates (trials, time, neurons) with neuron-specific temporal modulation, and Poisson counts."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 50)
    phase = rng.uniform(0, 2 * np.pi, size=12)
    rates = 0.3 * np.exp(np.sin(t[None, :, None] + phase[None, None, :]))  # (1, time, neurons)
    rates = np.broadcast_to(rates, (80, 50, 12)).copy()
    return rates, rng.poisson(rates).astype(float)


def test_poisson_nll_matches_scipy_logpmf() -> None:
    rng = np.random.default_rng(1)
    rates = rng.uniform(0.05, 3.0, size=(4, 7, 3))
    counts = rng.poisson(rates).astype(float)
    expected = -stats.poisson.logpmf(counts, rates).sum()
    assert poisson_nll(rates, counts) == pytest.approx(expected, rel=1e-12)


def test_poisson_nll_ignores_nan_counts() -> None:
    rates = np.array([[0.5, 2.0, 1.0]])
    counts = np.array([[1.0, np.nan, 3.0]])
    expected = -(stats.poisson.logpmf(1, 0.5) + stats.poisson.logpmf(3, 1.0))
    assert poisson_nll(rates, counts) == pytest.approx(expected, rel=1e-12)


def test_poisson_nll_floors_zero_rates_at_1e_minus_9() -> None:
    # A zero rate with one spike: 1e-9 - log(1e-9) + log(1!) = 1e-9 + 9 ln 10.
    assert poisson_nll(np.array([0.0]), np.array([1.0])) == pytest.approx(1e-9 + 9 * np.log(10.0), rel=1e-12)


def test_bits_per_spike_hand_computed_value() -> None:
    # One neuron, counts (0, 2); model rates (0.5, 1.5); null rate = mean count = 1.
    counts = np.array([[0.0], [2.0]])
    rates = np.array([[0.5], [1.5]])
    nll_model = 0.5 + (1.5 - 2 * np.log(1.5) + np.log(2.0))
    nll_null = 1.0 + (1.0 - 0.0 + np.log(2.0))
    expected = (nll_null - nll_model) / 2.0 / np.log(2.0)
    assert bits_per_spike(rates, counts) == pytest.approx(expected, rel=1e-12)


def test_bits_per_spike_is_zero_for_null_model(poisson_data) -> None:
    _, counts = poisson_data
    null = np.broadcast_to(counts.mean(axis=(0, 1)), counts.shape)
    assert bits_per_spike(null, counts) == pytest.approx(0.0, abs=1e-12)


def test_bits_per_spike_is_positive_for_true_rates_and_negative_for_shuffled_ones(poisson_data) -> None:
    rates, counts = poisson_data
    assert bits_per_spike(rates, counts) > 0.1
    shuffled = rates[:, ::-1]  # right marginal rate, wrong time course
    assert bits_per_spike(shuffled, counts) < 0


def test_bits_per_spike_equals_the_difference_of_scipy_nlls_with_nan_counts_and_zero_rates() -> None:
    rng = np.random.default_rng(2)
    rates = rng.uniform(0.05, 2.0, size=(6, 9, 4))
    counts = rng.poisson(rates).astype(float)
    counts[0, :3, 1] = np.nan
    rates[1, 2, 2] = 0.0  # floored at 1e-9
    observed = ~np.isnan(counts)
    null = np.broadcast_to(np.nanmean(counts.reshape(-1, 4), axis=0), counts.shape)
    nll = -stats.poisson.logpmf(counts[observed], np.maximum(rates, 1e-9)[observed]).sum()
    nll_null = -stats.poisson.logpmf(counts[observed], null[observed]).sum()
    expected = (nll_null - nll) / np.nansum(counts) / np.log(2.0)
    assert bits_per_spike(rates, counts) == pytest.approx(expected, rel=1e-10)


def test_bits_per_spike_rejects_mismatched_shapes_and_silent_data() -> None:
    with pytest.raises(LFADSDataError, match="shape"):
        bits_per_spike(np.ones((2, 3, 4)), np.ones((2, 3, 5)))
    with pytest.raises(LFADSDataError, match="spike"):
        bits_per_spike(np.ones((2, 3, 4)), np.zeros((2, 3, 4)))


def test_co_bps_scores_only_heldout_neurons_in_encoder_bins(poisson_data) -> None:
    rates, counts = poisson_data
    n_heldin, n_enc = 8, 40
    expected = bits_per_spike(rates[:, :n_enc, n_heldin:], counts[:, :n_enc, n_heldin:])
    corrupted = rates.copy()
    corrupted[:, :, :n_heldin] = 100.0  # held-in predictions must not matter
    corrupted[:, n_enc:] = 100.0  # nor forward bins
    assert co_bps(corrupted, counts, n_heldin, n_enc) == pytest.approx(expected, rel=1e-12)


def test_fp_bps_scores_only_forward_bins(poisson_data) -> None:
    rates, counts = poisson_data
    corrupted = rates.copy()
    corrupted[:, :40] = 100.0
    assert fp_bps(corrupted, counts, 40) == pytest.approx(bits_per_spike(rates[:, 40:], counts[:, 40:]), rel=1e-12)


def test_scoring_slices_cut_the_benchmark_blocks() -> None:
    x = np.arange(2 * 5 * 4).reshape(2, 5, 4)
    blocks = ScoringSlices.from_encod_shape((2, 3, 1))
    assert (blocks.n_enc_time, blocks.n_heldin) == (3, 1)
    np.testing.assert_array_equal(x[blocks.encoder], x[:, :3])
    np.testing.assert_array_equal(x[blocks.heldin], x[:, :3, :1])
    np.testing.assert_array_equal(x[blocks.heldout], x[:, :3, 1:])
    np.testing.assert_array_equal(x[blocks.forward], x[:, 3:])
    assert blocks.has_heldout(x.shape) and blocks.has_forward(x.shape)
    assert not ScoringSlices(5, 4).has_heldout(x.shape) and not ScoringSlices(5, 4).has_forward(x.shape)
    no_forward = ScoringSlices(None, 1)
    np.testing.assert_array_equal(x[no_forward.heldout], x[:, :, 1:])
    assert x[no_forward.forward].size == 0 and not no_forward.has_forward(x.shape)


def test_split_metrics_score_the_same_blocks_as_co_bps_and_fp_bps(poisson_data) -> None:
    from lfads.evaluation import compute_split_metrics

    rates, counts = poisson_data
    scores = compute_split_metrics(rates * 1.1, counts, rates, 40, 8)
    assert scores["heldin_bps"] == bits_per_spike(rates[:, :40, :8] * 1.1, counts[:, :40, :8])
    assert scores["co_bps"] == co_bps(rates * 1.1, counts, 8, 40)
    assert scores["fp_bps"] == fp_bps(rates * 1.1, counts, 40)
    assert scores["rate_r2"] == rate_r2(rates * 1.1, rates)
    assert set(compute_split_metrics(rates, counts[:, :40, :8], None, 40, 8)) == {"heldin_bps"}


def test_r2_score_hand_computed_and_constant_target_conventions() -> None:
    y_true = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    y_pred = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    # Column 0: 1 - 1 / 2 = 0.5; column 1 is constant and exactly predicted: 1.
    assert r2_score(y_true, y_pred) == pytest.approx(0.75)
    y_pred[0, 1] = 6.0  # constant target, imperfect prediction: 0
    assert r2_score(y_true, y_pred) == pytest.approx(0.25)
    assert r2_score(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 1.0


def test_rate_r2_is_one_for_identical_rates_and_known_for_constant_offset() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(10, 20, 3))
    assert rate_r2(truth, truth) == 1.0
    # pred = truth + c for neuron j: R2_j = 1 - c^2 / var_j (population variance over trials*time).
    offsets = np.array([0.1, 0.5, 1.0])
    flat = truth.reshape(-1, 3)
    expected = np.mean(1.0 - offsets**2 / flat.var(axis=0))
    assert rate_r2(truth + offsets, truth) == pytest.approx(expected, rel=1e-12)


def test_psth_r2_averages_out_trial_noise_within_conditions() -> None:
    rng = np.random.default_rng(3)
    psth = rng.normal(size=(4, 30, 5))
    conditions = np.repeat(np.arange(4), 6)
    noise = rng.normal(size=(24, 30, 5))
    noise -= noise.reshape(4, 6, 30, 5).mean(axis=1).repeat(6, axis=0)  # zero mean within each condition
    rates = psth[conditions] + noise
    assert psth_r2(rates, psth[conditions], conditions) == pytest.approx(1.0, abs=1e-12)
    # Scaling every PSTH by 1/2 around 0 leaves residual psth/2: R2_j = 1 - sum(p^2/4) / sum((p - mean)^2).
    flat = psth.reshape(-1, 5)
    expected = np.mean(1.0 - (flat**2).sum(0) / 4.0 / ((flat - flat.mean(0)) ** 2).sum(0))
    assert psth_r2(0.5 * rates, psth[conditions], conditions) == pytest.approx(expected, rel=1e-10)


def test_psth_r2_rejects_one_condition_per_wrong_number_of_trials() -> None:
    with pytest.raises(LFADSDataError, match="conditions"):
        psth_r2(np.ones((5, 3, 2)), np.ones((5, 3, 2)), np.arange(4))


def test_fit_ridge_recovers_known_linear_map() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(loc=3.0, scale=[1.0, 5.0, 0.2, 2.0], size=(2000, 4))
    weights = rng.normal(size=(4, 2))
    y = x @ weights + np.array([1.0, -2.0]) + 0.01 * rng.normal(size=(2000, 2))
    model = fit_ridge(x, y, alpha=1e-8)
    np.testing.assert_allclose(model.coef / model.scale[:, None], weights, atol=5e-3)
    np.testing.assert_allclose(model.predict(x[:5]), (x @ weights + [1.0, -2.0])[:5], atol=0.05)


def test_fit_ridge_matches_normal_equations_with_per_sample_penalty() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 1))
    alpha = 0.3
    xs = (x - x.mean(0)) / x.std(0)
    expected = np.linalg.solve(xs.T @ xs + 50 * alpha * np.eye(3), xs.T @ (y - y.mean(0)))
    np.testing.assert_allclose(fit_ridge(x, y, alpha).coef, expected, rtol=1e-10)


def test_fit_ridge_cv_picks_alpha_from_grid_small_for_clean_large_for_noise() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 20))
    clean = fit_ridge_cv(x, x @ rng.normal(size=(20, 1)))
    noise = fit_ridge_cv(x, rng.normal(size=(300, 1)))
    assert clean.alpha in DEFAULT_RIDGE_ALPHAS and noise.alpha in DEFAULT_RIDGE_ALPHAS
    assert clean.alpha == DEFAULT_RIDGE_ALPHAS.min()
    assert noise.alpha == DEFAULT_RIDGE_ALPHAS.max()
    assert clean.cv_scores.shape == DEFAULT_RIDGE_ALPHAS.shape and clean.cv_scores.max() > 0.999


def _behaviour_from_rates(rng: np.random.Generator, lag: int) -> tuple[np.ndarray, np.ndarray]:
    rates = rng.gamma(2.0, 1.0, size=(60, 40, 6))
    mixing = rng.normal(size=(6, 2))
    behavior = np.full((60, 40, 2), np.nan)
    behavior[:, lag:] = rates[:, : 40 - lag] @ mixing + 0.05 * rng.normal(size=(60, 40 - lag, 2))
    return rates, behavior


def test_vel_r2_cv_grouped_is_near_one_at_the_true_lag_and_low_otherwise() -> None:
    rates, behavior = _behaviour_from_rates(np.random.default_rng(7), lag=3)
    assert vel_r2_cv_grouped(rates, behavior, lag=3) > 0.99
    assert vel_r2_cv_grouped(rates, behavior, lag=0) < 0.2


def test_vel_r2_cv_grouped_is_not_positive_for_unrelated_behaviour() -> None:
    rng = np.random.default_rng(8)
    rates = rng.gamma(2.0, 1.0, size=(60, 40, 6))
    assert vel_r2_cv_grouped(rates, rng.normal(size=(60, 40, 2))) < 0.02


def test_vel_r2_train_test_grouped_scores_the_other_set() -> None:
    rng = np.random.default_rng(9)
    rates, behavior = _behaviour_from_rates(rng, lag=2)
    assert vel_r2_train_test_grouped(rates[:40], behavior[:40], rates[40:], behavior[40:], lag=2) > 0.99
    shuffled = rng.permutation(behavior[40:].reshape(-1, 2)).reshape(behavior[40:].shape)
    assert vel_r2_train_test_grouped(rates[:40], behavior[:40], rates[40:], shuffled, lag=2) < 0.05


def test_negative_counts_an_unknown_protocol_and_nan_ridge_inputs_are_refused_saying_why():
    counts = np.ones((4, 5, 3))
    counts[1, 2, 0] = -2.0
    with pytest.raises(LFADSDataError, match=r"counts hold negative values \(down to -2\)"):
        bits_per_spike(np.ones((4, 5, 3)), counts)
    with pytest.raises(LFADSDataError, match="protocol must be 'lfads' or 'nlb'"):
        bits_per_spike(np.ones((4, 5, 3)), np.ones((4, 5, 3)), protocol="tf")
    x = np.random.default_rng(0).normal(size=(20, 3))
    x[4, 1] = np.nan
    with pytest.raises(LFADSDataError, match="fit_ridge got NaN or infinite inputs"):
        fit_ridge(x, np.ones((20, 2)), alpha=1.0)
