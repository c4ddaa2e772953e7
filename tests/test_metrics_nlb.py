"""The benchmark-protocol metrics of lfads.metrics against independent computations (numpy, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammaln
from sklearn.linear_model import Ridge

from lfads.errors import LFADSDataError
from lfads.metrics import (
    bits_per_spike,
    co_bps,
    fp_bps,
    poisson_nll,
    psth_r2_nlb,
    vel_r2,
)

ALPHAS = np.logspace(-4, 0, 9)


def _reference_bps(rates: np.ndarray, counts: np.ndarray) -> float:
    """Bits/spike written out term by term, floors as the benchmark: exact zeros -> 1e-9."""
    observed = ~np.isnan(counts)
    null = np.nanmean(counts.reshape(-1, counts.shape[-1]), axis=0)
    null_full = np.broadcast_to(null, counts.shape)

    def nll(lam: np.ndarray) -> float:
        lam = lam[observed].copy()
        lam[lam == 0] = 1e-9
        n = counts[observed]
        return float(np.sum(lam - n * np.log(lam) + gammaln(n + 1)))

    return (nll(null_full) - nll(rates)) / np.nansum(counts) / np.log(2)


def _random_counts(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rates = rng.gamma(2.0, 0.3, size=shape)
    counts = rng.poisson(rates).astype(float)
    counts[rng.random(shape) < 0.1] = np.nan
    return rates, counts


def test_nlb_bits_per_spike_matches_term_by_term_reference_with_nan_counts() -> None:
    rng = np.random.default_rng(0)
    rates, counts = _random_counts(rng, (12, 30, 7))
    rates[0, :3, 2] = 0.0  # exact zeros are replaced by 1e-9
    assert bits_per_spike(rates, counts, protocol="nlb") == pytest.approx(_reference_bps(rates, counts), abs=1e-10)


def test_nlb_co_bps_and_fp_bps_score_the_benchmark_blocks() -> None:
    rng = np.random.default_rng(1)
    rates, counts = _random_counts(rng, (10, 25, 9))
    expected_co = _reference_bps(rates[:, :20, 6:], counts[:, :20, 6:])
    expected_fp = _reference_bps(rates[:, 20:], counts[:, 20:])
    assert co_bps(rates, counts, n_heldin=6, n_enc_time=20, protocol="nlb") == pytest.approx(expected_co, abs=1e-10)
    assert fp_bps(rates, counts, n_enc_time=20, protocol="nlb") == pytest.approx(expected_fp, abs=1e-10)


def test_rate_floor_tiny_rates_kept_by_nlb_but_floored_by_lfads() -> None:
    rng = np.random.default_rng(2)
    rates, counts = _random_counts(rng, (8, 20, 5))
    rates[:, :5, 1] = 1e-12
    counts[:, :5, 1] = 1.0
    nlb, ours = bits_per_spike(rates, counts, protocol="nlb"), bits_per_spike(rates, counts)
    assert nlb == pytest.approx(_reference_bps(rates, counts), abs=1e-10)
    floored = np.maximum(rates, 1e-9)
    assert ours == pytest.approx(_reference_bps(floored, counts), abs=1e-10)
    assert nlb < ours  # log(1e-12) < log(1e-9) where there are spikes


def test_rate_floor_zero_rates_score_alike_under_both_protocols() -> None:
    rng = np.random.default_rng(3)
    rates, counts = _random_counts(rng, (8, 20, 5))
    rates[:, :4, 0] = 0.0
    assert bits_per_spike(rates, counts, protocol="nlb") == pytest.approx(bits_per_spike(rates, counts), abs=1e-12)
    assert poisson_nll(np.array([0.0]), np.array([1.0]), protocol="nlb") == pytest.approx(1e-9 + 9 * np.log(10.0))


def test_rate_floor_negative_rates_are_an_error_under_nlb_only() -> None:
    rng = np.random.default_rng(4)
    rates, counts = _random_counts(rng, (6, 10, 4))
    observed = np.argwhere(~np.isnan(counts))[0]
    rates[tuple(observed)] = -0.01
    with pytest.raises(LFADSDataError, match="negative"):
        bits_per_spike(rates, counts, protocol="nlb")
    with pytest.raises(LFADSDataError, match="negative"):
        poisson_nll(rates, counts, protocol="nlb")
    assert np.isfinite(bits_per_spike(rates, counts))


def test_rate_floor_ignores_negative_rates_in_unobserved_bins() -> None:
    rng = np.random.default_rng(5)
    rates, counts = _random_counts(rng, (6, 10, 4))
    hidden = np.argwhere(np.isnan(counts))[0]
    rates[tuple(hidden)] = -1.0
    assert bits_per_spike(rates, counts, protocol="nlb") == pytest.approx(_reference_bps(rates, counts), abs=1e-10)


def _reference_vel_r2(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray) -> float:
    """Ridge with the penalty chosen over 5 contiguous folds by hand, R2 in numpy."""
    keep = ~np.isnan(train_y).any(axis=1)
    train_x, train_y = train_x[keep], train_y[keep]
    keep = ~np.isnan(eval_y).any(axis=1)
    eval_x, eval_y = eval_x[keep], eval_y[keep]

    def r2(y: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean(1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)))

    folds = np.array_split(np.arange(len(train_x)), 5)
    mean_scores = []
    for alpha in ALPHAS:
        scores = []
        for valid in folds:
            train = np.setdiff1d(np.arange(len(train_x)), valid)
            model = Ridge(alpha=alpha).fit(train_x[train], train_y[train])
            scores.append(r2(train_y[valid], model.predict(train_x[valid])))
        mean_scores.append(np.mean(scores))
    best = ALPHAS[int(np.argmax(mean_scores))]
    return r2(eval_y, Ridge(alpha=best).fit(train_x, train_y).predict(eval_x))


def _decoding_data(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    rates = rng.gamma(2.0, 1.0, size=(50, 20, 8))
    behavior = rates @ rng.normal(size=(8, 2)) + 2.0 * rng.normal(size=(50, 20, 2))
    behavior[rng.random((50, 20)) < 0.15] = np.nan  # whole bins without behaviour
    return rates[:35], behavior[:35], rates[35:], behavior[35:]


def test_nlb_vel_r2_matches_hand_made_contiguous_fold_search() -> None:
    train_r, train_b, eval_r, eval_b = _decoding_data(np.random.default_rng(6))
    expected = _reference_vel_r2(train_r.reshape(-1, 8), train_b.reshape(-1, 2), eval_r.reshape(-1, 8),
                                 eval_b.reshape(-1, 2))
    assert vel_r2(train_r, train_b, eval_r, eval_b) == pytest.approx(expected, abs=1e-10)


def test_nlb_vel_r2_averages_one_decoder_per_mask() -> None:
    rng = np.random.default_rng(7)
    train_r, train_b, eval_r, eval_b = _decoding_data(rng)
    train_mask = np.stack([np.arange(35) % 2 == 0, np.arange(35) % 2 == 1], axis=1)
    eval_mask = np.stack([np.arange(15) < 8, np.arange(15) >= 8], axis=1)
    expected = np.mean([
        _reference_vel_r2(train_r[tm].reshape(-1, 8), train_b[tm].reshape(-1, 2), eval_r[em].reshape(-1, 8),
                          eval_b[em].reshape(-1, 2))
        for tm, em in zip(train_mask.T, eval_mask.T)
    ])
    assert vel_r2(train_r, train_b, eval_r, eval_b, train_mask, eval_mask) == pytest.approx(expected, abs=1e-10)


def test_nlb_vel_r2_rejects_nan_rates_in_scored_bins() -> None:
    train_r, train_b, eval_r, eval_b = _decoding_data(np.random.default_rng(8))
    scored = np.argwhere(~np.isnan(eval_b[..., 0]))[0]
    eval_r[scored[0], scored[1], 0] = np.nan
    with pytest.raises(LFADSDataError, match="NaN"):
        vel_r2(train_r, train_b, eval_r, eval_b)


def _reference_psth_r2(psth: np.ndarray, rates: np.ndarray, cond_idx: list, jitter: np.ndarray) -> float:
    """Shift each trial bin by bin, average, drop undefined bins, R2 per neuron in numpy."""
    n_time = rates.shape[1]
    trues, preds = [], []
    for c, trials in enumerate(cond_idx):
        if len(trials) == 0:
            continue
        shifted = np.full((len(trials),) + rates.shape[1:], np.nan)
        for k, i in enumerate(trials):
            for t in range(n_time):
                if 0 <= t - jitter[i] < n_time:
                    shifted[k, t] = rates[i, t - jitter[i]]
        defined = ~np.isnan(psth[c, :, 0])
        trues.append(psth[c][defined])
        preds.append(shifted.mean(0)[defined])
    y, p = np.concatenate(trues), np.concatenate(preds)
    return float(np.mean(1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)))


def test_nlb_psth_r2_matches_reference_with_jitter_and_nan_padded_psths() -> None:
    rng = np.random.default_rng(9)
    n_cond, n_time, n_neurons = 4, 30, 6
    psth = rng.gamma(2.0, 0.5, size=(n_cond, n_time, n_neurons))
    psth[1, -5:] = np.nan  # a shorter condition
    psth[2, :3] = np.nan
    cond_idx = [np.array([0, 3, 5]), np.array([1, 2]), np.array([4, 6, 7, 8]), np.array([], dtype=int)]
    conditions = np.zeros(9, dtype=int)
    for c, trials in enumerate(cond_idx):
        conditions[trials] = c
    rates = psth[np.minimum(conditions, n_cond - 1)] + rng.normal(scale=0.3, size=(9, n_time, n_neurons))
    rates = np.nan_to_num(rates, nan=0.5)
    jitter = np.array([0, 2, 0, -1, 0, 1, 0, 0, 0])
    psth[0, :2] = np.nan  # bins lost to the shifts of condition 0's trials are not scored
    psth[0, -1:] = np.nan
    psth[1, :2] = np.nan
    expected = _reference_psth_r2(psth, rates, cond_idx, jitter)
    assert psth_r2_nlb(psth, rates, cond_idx, jitter) == pytest.approx(expected, abs=1e-10)
    no_jitter = _reference_psth_r2(psth, rates, cond_idx, np.zeros(9, dtype=int))
    assert psth_r2_nlb(psth, rates, cond_idx) == pytest.approx(no_jitter, abs=1e-10)


def test_nlb_psth_r2_rejects_nan_predictions_where_psth_is_defined() -> None:
    psth = np.ones((1, 5, 2)) + np.arange(5)[None, :, None]
    rates = np.ones((2, 5, 2))
    with pytest.raises(LFADSDataError, match="condition 0"):
        psth_r2_nlb(psth, rates, [np.array([0, 1])], jitter=np.array([1, 0]))
