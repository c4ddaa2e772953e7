r"""Evaluation metrics for inferred firing rates (Neural Latents Benchmark definitions).

All functions take and return numpy arrays / floats; rates passed to the likelihood-based metrics are
*expected counts per bin* (multiply spikes/s by the bin width first), arrays are ordered
``(trials, time, neurons)`` and NaN counts (unobserved bins) are ignored.

- :class:`ScoringSlices`: the held-in, held-out and forward-prediction blocks the benchmark scores.
- :func:`poisson_nll`, :func:`bits_per_spike`, :func:`co_bps`, :func:`fp_bps`: Poisson likelihood scores.
- :func:`r2_score`, :func:`rate_r2`, :func:`psth_r2`, :func:`psth_r2_nlb`: coefficient of determination variants.
- :func:`vel_r2`: the benchmark's velocity decoding (scikit-learn ``Ridge`` on the raw rates, penalty by
  ``GridSearchCV`` over 5 contiguous folds, fitted on the training trials, scored on the evaluation trials).
- :func:`fit_ridge`, :func:`fit_ridge_cv`, :func:`vel_r2_cv_grouped`, :func:`vel_r2_train_test_grouped`: our
  ridge decoding of behaviour from standardized rates, with folds grouped by trial.

Two protocols
-------------
Functions named for the Neural Latents Benchmark (``protocol="nlb"``, :func:`vel_r2`, :func:`psth_r2_nlb`)
reproduce its evaluation code: rates that are exactly zero are raised to :data:`RATE_FLOOR` and negative rates
are an error. The default ``protocol="lfads"`` floors every rate at :data:`RATE_FLOOR`, so any rate below it
(e.g. 1e-12) scores as 1e-9; the two agree whenever every rate is 0 or at least 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg
from scipy.special import gammaln

from lfads.errors import LFADSDataError

__all__ = [
    "DEFAULT_RIDGE_ALPHAS",
    "RATE_FLOOR",
    "RidgeFit",
    "ScoringSlices",
    "bits_per_spike",
    "co_bps",
    "fit_ridge",
    "fit_ridge_cv",
    "fp_bps",
    "poisson_nll",
    "psth_r2",
    "psth_r2_nlb",
    "r2_score",
    "rate_r2",
    "vel_r2",
    "vel_r2_cv_grouped",
    "vel_r2_train_test_grouped",
]

RATE_FLOOR = 1e-9
"""Rates below this (``protocol="lfads"``), or exactly zero (``protocol="nlb"``), are raised to it before logs."""

Protocol = Literal["lfads", "nlb"]
"""How rates are floored: ``"lfads"`` floors every rate at :data:`RATE_FLOOR`; ``"nlb"`` (the benchmark's
evaluation code) replaces exact zeros by it and rejects negative rates."""

DEFAULT_RIDGE_ALPHAS: np.ndarray = np.logspace(-4, 0, 9)
"""Ridge penalties searched by cross-validation."""


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise LFADSDataError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; they must match "
            "(both (trials, time, neurons) or (samples, neurons))."
        )


# --------------------------------------------------------------------------------------------------
# Scoring blocks
# --------------------------------------------------------------------------------------------------

Index = tuple[slice, ...]


@dataclass(frozen=True)
class ScoringSlices:
    """The blocks of a ``(trials, time, neurons)`` reconstruction that the Neural Latents Benchmark scores.

    Columns ``:n_heldin`` are the held-in neurons (the encoders' input), the rest held out; bins
    ``:n_enc_time`` are the encoder bins, the rest forward-prediction bins. For an array ``x``:

    - ``x[s.encoder]`` = ``x[:, :n_enc_time]``: every neuron over the encoder bins,
    - ``x[s.heldin]`` = ``x[:, :n_enc_time, :n_heldin]``: scored as bits/spike,
    - ``x[s.heldout]`` = ``x[:, :n_enc_time, n_heldin:]``: scored as co-bps,
    - ``x[s.forward]`` = ``x[:, n_enc_time:]``: every neuron over the forward bins, scored as fp-bps.

    Attributes
    ----------
    n_enc_time : int or None
        Encoder bins; ``None`` makes every bin an encoder bin (no forward-prediction block).
    n_heldin : int
        Held-in neurons.
    """

    n_enc_time: int | None
    n_heldin: int

    @classmethod
    def from_encod_shape(cls, encod_shape: tuple[int, ...]) -> ScoringSlices:
        """Blocks for data whose encoder input has shape ``(trials, n_enc_time, n_heldin)``."""
        n_enc_time, n_heldin = encod_shape[1:]
        return cls(int(n_enc_time), int(n_heldin))

    @property
    def encoder(self) -> Index:
        return (slice(None), slice(None, self.n_enc_time))

    @property
    def heldin(self) -> Index:
        return (slice(None), slice(None, self.n_enc_time), slice(None, self.n_heldin))

    @property
    def heldout(self) -> Index:
        return (slice(None), slice(None, self.n_enc_time), slice(self.n_heldin, None))

    @property
    def forward(self) -> Index:
        start = self.n_enc_time
        return (slice(None), slice(start, None) if start is not None else slice(0, 0))

    def has_heldout(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` ``(trials, time, neurons)`` has held-out neurons."""
        return shape[2] > self.n_heldin

    def has_forward(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` ``(trials, time, neurons)`` has forward-prediction bins."""
        return self.n_enc_time is not None and shape[1] > self.n_enc_time


# --------------------------------------------------------------------------------------------------
# Poisson likelihood metrics
# --------------------------------------------------------------------------------------------------


def _require_rates_where_observed(rates: np.ndarray, observed: np.ndarray) -> None:
    """Raise if ``rates`` is NaN where ``observed`` (the non-NaN counts) is True."""
    if np.isnan(rates if observed.all() else rates[observed]).any():
        raise LFADSDataError("rates contain NaN where counts are observed; predict a rate for every observed bin.")


def _floor_rates(rates: np.ndarray, protocol: Protocol, observed: np.ndarray | None = None) -> np.ndarray:
    """Rates ready for a logarithm: every rate floored at 1e-9 (``"lfads"``), or exact zeros replaced by it (``"nlb"``).

    With ``"nlb"``, negative rates (where ``observed``, if given) raise :class:`LFADSDataError`.
    """
    if protocol == "lfads":
        return np.maximum(rates, RATE_FLOOR)
    if protocol != "nlb":
        raise LFADSDataError(f"protocol must be 'lfads' or 'nlb', got {protocol!r}.")
    checked = rates if observed is None or observed.all() else rates[observed]
    negative = checked < 0
    if negative.any():
        raise LFADSDataError(
            f"rates hold {int(negative.sum())} negative value(s) (smallest {checked[negative].min():.3g}); the "
            "benchmark rejects negative rates: predict non-negative expected counts per bin."
        )
    return np.where(rates == 0, RATE_FLOOR, rates)


def poisson_nll(rates: np.ndarray, counts: np.ndarray, protocol: Protocol = "lfads") -> float:
    r"""Summed Poisson negative log-likelihood.

    .. math::

        \mathrm{NLL} = \sum_{k} \lambda_k - n_k \log \lambda_k + \log \Gamma(n_k + 1),

    with the sum over all entries whose count is not NaN and :math:`\lambda_k = \max(\text{rate}_k, 10^{-9})`
    (``protocol="lfads"``), or :math:`\lambda_k = \text{rate}_k` with exact zeros replaced by :math:`10^{-9}`
    and negative rates an error (``protocol="nlb"``, the benchmark's).

    Parameters
    ----------
    rates : np.ndarray
        Expected counts per bin, any shape, e.g. ``(trials, time, neurons)``.
    counts : np.ndarray
        Observed counts, same shape; NaN marks entries to ignore.
    protocol : {"lfads", "nlb"}
        How rates are floored (see :data:`Protocol`).

    Returns
    -------
    float
        The negative log-likelihood in nats.
    """
    rates = np.asarray(rates, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    _check_same_shape(rates, counts, ("rates", "counts"))
    observed = ~np.isnan(counts)
    _require_rates_where_observed(rates, observed)
    lam = _floor_rates(rates[observed], protocol)
    n = counts[observed]
    return float(np.sum(lam - n * np.log(lam) + gammaln(n + 1.0)))


def bits_per_spike(rates: np.ndarray, counts: np.ndarray, protocol: Protocol = "lfads") -> float:
    r"""Log-likelihood improvement over a per-neuron constant-rate model, in bits per spike.

    .. math::

        \mathrm{bps} = \frac{\mathrm{NLL}(\bar\lambda, n) - \mathrm{NLL}(\lambda, n)}{\ln 2 \, \sum_k n_k},

    where the null rate :math:`\bar\lambda_i` of neuron :math:`i` is its mean count over all evaluated
    trials and bins (NaN ignored). 0 means no better than the null model; higher is better. Both rate
    arrays are floored as ``protocol`` says (:func:`poisson_nll`).

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, time, neurons)`` or ``(samples, neurons)`` expected counts per bin.
    counts : np.ndarray
        Same shape; observed counts, NaN where unobserved.
    protocol : {"lfads", "nlb"}
        How rates are floored: ``"nlb"`` reproduces the benchmark's ``bits_per_spike``.

    Returns
    -------
    float
        Bits per spike.

    Raises
    ------
    LFADSDataError
        If shapes differ or there are no spikes to normalise by.
    """
    rates = np.asarray(rates, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    _check_same_shape(rates, counts, ("rates", "counts"))
    if (counts < 0).any():
        raise LFADSDataError(f"counts hold negative values (down to {np.nanmin(counts):g}); pass spike counts, which "
                             "are >= 0.")
    total = np.nansum(counts)
    if total <= 0:
        raise LFADSDataError(
            f"bits_per_spike needs at least one spike, but the counts (shape {counts.shape}) sum to {total}; "
            "evaluate on more trials or neurons."
        )
    flat_counts = counts.reshape(-1, counts.shape[-1])
    flat_rates = rates.reshape(-1, rates.shape[-1])
    observed = ~np.isnan(flat_counts)
    all_observed = bool(observed.all())
    with np.errstate(invalid="ignore"):
        # (neurons,); all-NaN neurons give NaN but are never used
        null_rate = flat_counts.mean(axis=0) if all_observed else np.nanmean(flat_counts, axis=0)
    _require_rates_where_observed(flat_rates, observed)
    # NLL(null) - NLL(model) = sum_obs (lam0 - lam) + sum_obs n (log lam - log lam0); the log n! terms of
    # the two NLLs are equal and cancel, and the logarithms are only needed where there are spikes.
    lam = _floor_rates(flat_rates, protocol, observed)
    lam0 = _floor_rates(np.nan_to_num(null_rate, nan=1.0), protocol)
    rate_terms = observed.sum(axis=0) @ lam0 - (lam.sum() if all_observed else lam[observed].sum())
    rows, cols = np.nonzero(flat_counts > 0)  # NaN > 0 is False
    spike_terms = flat_counts[rows, cols] @ (np.log(lam[rows, cols]) - np.log(lam0[cols]))
    return float((rate_terms + spike_terms) / (total * np.log(2.0)))


def co_bps(
    rates: np.ndarray, counts: np.ndarray, n_heldin: int, n_enc_time: int | None = None, protocol: Protocol = "lfads"
) -> float:
    """Co-smoothing bits per spike: :func:`bits_per_spike` on the held-out neurons.

    Uses columns ``n_heldin:`` and the first ``n_enc_time`` bins (the bins the encoders saw;
    all bins if None), as in the Neural Latents Benchmark.

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, T_recon, N_recon)`` predicted expected counts per bin for all neurons.
    counts : np.ndarray
        ``(trials, T_recon, N_recon)`` observed counts (the layout's ``recon_data``).
    n_heldin : int
        Number of held-in neurons (the first columns).
    n_enc_time : int, optional
        Number of encoder bins; later bins are forward-prediction bins and are excluded.
    protocol : {"lfads", "nlb"}
        How rates are floored (:func:`bits_per_spike`).

    Returns
    -------
    float
        Held-out bits per spike.
    """
    rates, counts = np.asarray(rates), np.asarray(counts)
    if rates.ndim != 3 or not 0 <= n_heldin < rates.shape[-1]:
        raise LFADSDataError(
            f"co_bps needs (trials, time, neurons) arrays with more than n_heldin={n_heldin} neurons; "
            f"got rates of shape {rates.shape}."
        )
    block = ScoringSlices(n_enc_time, n_heldin).heldout
    return bits_per_spike(rates[block], counts[block], protocol)


def fp_bps(rates: np.ndarray, counts: np.ndarray, n_enc_time: int, protocol: Protocol = "lfads") -> float:
    """Forward-prediction bits per spike: :func:`bits_per_spike` on bins ``n_enc_time:`` for all neurons.

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, T_recon, N_recon)`` predicted expected counts per bin.
    counts : np.ndarray
        ``(trials, T_recon, N_recon)`` observed counts.
    n_enc_time : int
        Number of encoder bins; the remaining ``T_recon - n_enc_time`` bins are scored.
    protocol : {"lfads", "nlb"}
        How rates are floored (:func:`bits_per_spike`).

    Returns
    -------
    float
        Forward-prediction bits per spike.
    """
    rates, counts = np.asarray(rates), np.asarray(counts)
    if rates.ndim != 3 or not 0 <= n_enc_time < rates.shape[1]:
        raise LFADSDataError(
            f"fp_bps needs (trials, time, neurons) arrays with forward bins after n_enc_time={n_enc_time}; "
            f"got rates of shape {rates.shape}."
        )
    block = ScoringSlices(n_enc_time, n_heldin=rates.shape[-1]).forward
    return bits_per_spike(rates[block], counts[block], protocol)


# --------------------------------------------------------------------------------------------------
# R^2 metrics
# --------------------------------------------------------------------------------------------------


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    r"""Coefficient of determination averaged uniformly over outputs.

    .. math::

        R^2_j = 1 - \frac{\sum_s (y_{sj} - \hat y_{sj})^2}{\sum_s (y_{sj} - \bar y_j)^2},
        \qquad R^2 = \frac{1}{J} \sum_j R^2_j,

    with scikit-learn's conventions for a constant target: :math:`R^2_j = 1` if the prediction is exact
    and 0 otherwise.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        ``(samples,)`` or ``(samples, outputs)``.

    Returns
    -------
    float
        The averaged :math:`R^2` (can be negative).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    _check_same_shape(y_true, y_pred, ("y_true", "y_pred"))
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    if y_true.ndim != 2 or y_true.shape[0] < 2:
        raise LFADSDataError(f"r2_score needs (samples, outputs) arrays with at least 2 samples; got {y_true.shape}.")
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    scores = np.where(ss_res == 0, 1.0, 0.0)
    varying = ss_tot != 0
    scores[varying] = 1.0 - ss_res[varying] / ss_tot[varying]
    return float(np.mean(scores))


def rate_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    r"""Single-trial rate :math:`R^2`: per-neuron :math:`R^2` over all trials and bins, averaged over neurons.

    Both arrays are flattened to ``(trials * time, neurons)`` and passed to :func:`r2_score` with
    ``truth`` as the target. They must be in the same units (both spikes/s or both counts per bin).

    Parameters
    ----------
    pred : np.ndarray
        ``(trials, time, neurons)`` inferred rates.
    truth : np.ndarray
        ``(trials, time, neurons)`` true rates; NaN marks bins to leave out (unobserved), each neuron's
        :math:`R^2` then being over its other bins.

    Returns
    -------
    float
        Mean per-neuron :math:`R^2`.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_same_shape(pred, truth, ("pred", "truth"))
    y_true, y_pred = truth.reshape(-1, truth.shape[-1]), pred.reshape(-1, pred.shape[-1])
    observed = ~np.isnan(y_true)
    if observed.all():
        return r2_score(y_true, y_pred)
    # NaN truth marks unobserved bins: each neuron's R^2 over its observed bins (neurons with fewer than 2 left out)
    scores = [r2_score(y_true[observed[:, j], j], y_pred[observed[:, j], j])
              for j in range(y_true.shape[1]) if observed[:, j].sum() >= 2]
    if not scores:
        raise LFADSDataError(f"rate_r2: no neuron has 2 or more bins with a known true rate (truth shape "
                             f"{truth.shape}); score more trials.")
    return float(np.mean(scores))


def _condition_average(values: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """``(trials, time, neurons)`` -> ``(conditions, time, neurons)`` NaN-ignoring means, sorted by condition id."""
    labels = np.unique(conditions)
    with np.errstate(invalid="ignore"):
        return np.stack([np.nanmean(values[conditions == c], axis=0) for c in labels])


def psth_r2(rates: np.ndarray, target: np.ndarray, conditions: np.ndarray) -> float:
    r"""PSTH :math:`R^2`: how well condition-averaged rates match condition-averaged targets.

    For each condition :math:`c`, :math:`\mathrm{PSTH}_c = \text{mean over its trials}`, giving
    ``(conditions, time, neurons)`` for both inputs; each neuron's :math:`R^2` is computed over all
    conditions and bins (:func:`r2_score` on ``(conditions * time, neurons)``) and averaged over neurons.
    The target may be spike counts (their PSTHs estimate the true ones) or true rates.

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, time, neurons)`` inferred rates.
    target : np.ndarray
        ``(trials, time, neurons)`` counts or true rates, in the same units as ``rates``; NaN ignored.
    conditions : np.ndarray
        ``(trials,)`` condition id per trial.

    Returns
    -------
    float
        Mean per-neuron PSTH :math:`R^2`.
    """
    rates = np.asarray(rates, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    conditions = np.asarray(conditions)
    _check_same_shape(rates, target, ("rates", "target"))
    if conditions.shape != rates.shape[:1]:
        raise LFADSDataError(
            f"conditions has shape {conditions.shape} but there are {rates.shape[0]} trials; give one id per trial."
        )
    n_neurons = rates.shape[-1]
    pred_psth = _condition_average(rates, conditions).reshape(-1, n_neurons)
    true_psth = _condition_average(target, conditions).reshape(-1, n_neurons)
    keep = ~np.isnan(true_psth).any(axis=1)
    return r2_score(true_psth[keep], pred_psth[keep])


def _shift_trial(rates: np.ndarray, shift: int) -> np.ndarray:
    """``(time, neurons)`` rates moved ``shift`` bins later (earlier if negative), NaN-filled at the vacated end."""
    if shift == 0:
        return rates
    out = np.full_like(rates, np.nan)
    if shift > 0:
        out[shift:] = rates[:-shift]
    else:
        out[:shift] = rates[-shift:]
    return out


def psth_r2_nlb(
    psth: np.ndarray,
    eval_rates: np.ndarray,
    eval_cond_idx: list[np.ndarray] | np.ndarray,
    jitter: np.ndarray | None = None,
) -> float:
    r"""PSTH :math:`R^2` as the Neural Latents Benchmark scores it, against its true PSTHs.

    For condition :math:`c` with evaluation trials :math:`I_c`, the predicted PSTH is the mean of the trials'
    rates, each first shifted by its ``jitter`` (bins; NaN-filled):
    :math:`\hat P_c = rac{1}{|I_c|} \sum_{i \in I_c} \mathrm{shift}(r_i, j_i)`. Bins where the true PSTH
    ``psth[c, :, 0]`` is NaN are dropped; the kept ``(bins, neurons)`` blocks of all conditions (those with
    at least one trial) are stacked and scored with :func:`r2_score` (per neuron, then averaged), which
    follows scikit-learn's ``r2_score``.

    Parameters
    ----------
    psth : np.ndarray
        ``(conditions, time, neurons)`` true PSTHs (the evaluation-target file's ``psth``), NaN-padded.
    eval_rates : np.ndarray
        ``(trials, time, neurons)`` predicted rates of the evaluation trials (held-in then held-out neurons).
    eval_cond_idx : sequence of np.ndarray
        Per condition, the indices of its evaluation trials (the target file's ``eval_cond_idx``).
    jitter : np.ndarray, optional
        ``(trials,)`` integer shift of each trial in bins (the target's ``eval_jitter``); default none.

    Returns
    -------
    float
        Mean per-neuron PSTH :math:`R^2`.

    Raises
    ------
    LFADSDataError
        If the shapes disagree or a kept bin has a NaN predicted PSTH.
    """
    psth = np.asarray(psth, dtype=np.float64)
    eval_rates = np.asarray(eval_rates, dtype=np.float64)
    if psth.ndim != 3 or eval_rates.ndim != 3 or psth.shape[1:] != eval_rates.shape[1:]:
        raise LFADSDataError(
            f"psth {psth.shape} and eval_rates {eval_rates.shape} must be (conditions, time, neurons) and "
            "(trials, time, neurons) with the same bins and neurons."
        )
    if len(eval_cond_idx) != psth.shape[0]:
        raise LFADSDataError(
            f"eval_cond_idx lists {len(eval_cond_idx)} conditions but psth has {psth.shape[0]}; give one index "
            "array per condition."
        )
    shifts = np.zeros(eval_rates.shape[0], dtype=int) if jitter is None else np.asarray(jitter).astype(int)
    true_blocks, pred_blocks = [], []
    for c, trials in enumerate(eval_cond_idx):
        trials = np.asarray(trials, dtype=int)
        if trials.size == 0:
            continue
        predicted = np.mean([_shift_trial(eval_rates[i], int(shifts[i])) for i in trials], axis=0)
        keep = ~np.isnan(psth[c, :, 0])
        if np.isnan(predicted[keep]).any():
            raise LFADSDataError(
                f"condition {c}: the predicted PSTH is NaN in bins where the true PSTH is defined; predict "
                "every bin of every evaluation trial."
            )
        true_blocks.append(psth[c][keep])
        pred_blocks.append(predicted[keep])
    if not true_blocks:
        raise LFADSDataError("psth_r2_nlb: no condition has evaluation trials; check eval_cond_idx.")
    return r2_score(np.concatenate(true_blocks), np.concatenate(pred_blocks))


# --------------------------------------------------------------------------------------------------
# Ridge decoding
# --------------------------------------------------------------------------------------------------


@dataclass
class RidgeFit:
    r"""A fitted ridge regression :math:`\hat y = ((x - \mu) / s) W + b`.

    Attributes
    ----------
    mean, scale : np.ndarray
        ``(features,)`` input standardization (scale 1 for constant features).
    coef : np.ndarray
        ``(features, outputs)`` weights on the standardized inputs.
    intercept : np.ndarray
        ``(outputs,)`` output means on the training data.
    alpha : float
        The penalty used.
    cv_scores : np.ndarray
        ``(alphas,)`` mean cross-validated :math:`R^2` per candidate penalty (empty without CV).
    alphas : np.ndarray
        The candidate penalties (empty without CV).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: float
    cv_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    alphas: np.ndarray = field(default_factory=lambda: np.empty(0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict ``(samples, outputs)`` from ``(samples, features)``."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (x - mean) / scale, mean, scale


def _ridge_path(xs: np.ndarray, yc: np.ndarray, alphas: np.ndarray) -> list[np.ndarray]:
    """Weights for every alpha from one eigendecomposition of the Gram matrix."""
    n = xs.shape[0]
    eigval, eigvec = scipy.linalg.eigh(xs.T @ xs)
    projected = eigvec.T @ (xs.T @ yc)  # (features, outputs)
    return [eigvec @ (projected / (np.maximum(eigval, 0.0) + n * a)[:, None]) for a in alphas]


def _as_2d(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise LFADSDataError(f"{name} must be (samples, features); got shape {values.shape}.")
    return values


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> RidgeFit:
    r"""Ridge regression on standardized inputs, in closed form.

    With :math:`\tilde X` the z-scored inputs and :math:`\tilde Y` the centred outputs (:math:`n` samples),

    .. math::

        W = \arg\min_W \frac{1}{n} \|\tilde Y - \tilde X W\|_F^2 + \alpha \|W\|_F^2
          = (\tilde X^\top \tilde X + n \alpha I)^{-1} \tilde X^\top \tilde Y .

    The penalty is per sample, so :math:`\alpha` is comparable with the unit diagonal of the inputs'
    correlation matrix whatever :math:`n` is.

    Parameters
    ----------
    x : np.ndarray
        ``(samples, features)`` inputs.
    y : np.ndarray
        ``(samples, outputs)`` or ``(samples,)`` targets.
    alpha : float
        Non-negative penalty.

    Returns
    -------
    RidgeFit
        The fitted model.
    """
    x, y = _as_2d("x", x), _as_2d("y", y)
    if x.shape[0] != y.shape[0]:
        raise LFADSDataError(f"x has {x.shape[0]} samples but y has {y.shape[0]}; pair every input with a target.")
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise LFADSDataError("fit_ridge got NaN or infinite inputs or targets; drop those samples first.")
    xs, mean, scale = _standardize(x)
    y_mean = y.mean(axis=0)
    (coef,) = _ridge_path(xs, y - y_mean, np.array([alpha]))
    return RidgeFit(mean=mean, scale=scale, coef=coef, intercept=y_mean, alpha=float(alpha))


def _fold_labels(n_groups: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    if n_groups < n_folds:
        raise LFADSDataError(f"{n_folds}-fold cross-validation needs at least {n_folds} trials; got {n_groups}.")
    return rng.permutation(np.arange(n_groups) % n_folds)


def fit_ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    alphas: np.ndarray = DEFAULT_RIDGE_ALPHAS,
    n_folds: int = 5,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> RidgeFit:
    """Ridge regression (:func:`fit_ridge`) with the penalty chosen by k-fold cross-validation.

    Samples are split into ``n_folds`` folds at random (seeded), keeping samples with the same ``groups``
    label (e.g. the trial they come from) together. The chosen alpha maximizes the fold-averaged
    validation :func:`r2_score` (ties go to the larger alpha); the model is then refitted on all samples.
    Standardization is refitted inside every fold.

    Parameters
    ----------
    x : np.ndarray
        ``(samples, features)`` inputs.
    y : np.ndarray
        ``(samples, outputs)`` or ``(samples,)`` targets.
    alphas : np.ndarray
        Candidate penalties; default ``logspace(-4, 0, 9)``.
    n_folds : int
        Number of folds.
    groups : np.ndarray, optional
        ``(samples,)`` group label per sample; default: every sample is its own group.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    RidgeFit
        The refitted model, with ``alphas`` and ``cv_scores`` filled in.
    """
    x, y = _as_2d("x", x), _as_2d("y", y)
    alphas = np.asarray(alphas, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise LFADSDataError(f"x has {x.shape[0]} samples but y has {y.shape[0]}; pair every input with a target.")
    groups = np.arange(x.shape[0]) if groups is None else np.asarray(groups)
    labels, group_index = np.unique(groups, return_inverse=True)
    fold_of_sample = _fold_labels(len(labels), n_folds, np.random.default_rng(seed))[group_index]
    scores = np.zeros((n_folds, alphas.size))
    for fold in range(n_folds):
        train, valid = fold_of_sample != fold, fold_of_sample == fold
        xs, mean, scale = _standardize(x[train])
        y_mean = y[train].mean(axis=0)
        x_valid = (x[valid] - mean) / scale
        for j, coef in enumerate(_ridge_path(xs, y[train] - y_mean, alphas)):
            scores[fold, j] = r2_score(y[valid], x_valid @ coef + y_mean)
    mean_scores = scores.mean(axis=0)
    ties = np.flatnonzero(mean_scores == mean_scores.max())
    best = int(ties[np.argmax(alphas[ties])])
    model = fit_ridge(x, y, float(alphas[best]))
    model.alphas, model.cv_scores = alphas, mean_scores
    return model


def _lagged_pairs(rates: np.ndarray, behavior: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair ``rates[:, t]`` with ``behavior[:, t + lag]``; drop samples with NaN behaviour.

    Returns ``(samples, neurons)`` inputs, ``(samples, dims)`` targets and ``(samples,)`` trial ids.
    """
    rates, behavior = np.asarray(rates, dtype=np.float64), np.asarray(behavior, dtype=np.float64)
    if behavior.ndim == 2:
        behavior = behavior[..., None]
    if rates.ndim != 3 or behavior.ndim != 3 or rates.shape[:2] != behavior.shape[:2]:
        raise LFADSDataError(
            f"rates {rates.shape} and behavior {behavior.shape} must be (trials, time, neurons) and "
            "(trials, time, dims) with the same trials and time bins."
        )
    n_trials, n_time = rates.shape[:2]
    if not 0 <= lag < n_time:
        raise ValueError(f"lag must be in [0, {n_time}) bins, got {lag}.")
    x = rates[:, : n_time - lag].reshape(-1, rates.shape[-1])
    y = behavior[:, lag:].reshape(-1, behavior.shape[-1])
    trial = np.repeat(np.arange(n_trials), n_time - lag)
    keep = ~np.isnan(y).any(axis=1)
    if np.isnan(x[keep]).any():
        raise LFADSDataError("rates contain NaN in bins paired with observed behaviour; predict every bin.")
    return x[keep], y[keep], trial[keep]


def vel_r2_cv_grouped(
    rates: np.ndarray,
    behavior: np.ndarray,
    lag: int = 0,
    n_folds: int = 5,
    alphas: np.ndarray = DEFAULT_RIDGE_ALPHAS,
    seed: int = 0,
) -> float:
    r"""Cross-validated :math:`R^2` of a ridge decoder from rates to behaviour, folds grouped by trial (our protocol).

    Not the benchmark's protocol (that is :func:`vel_r2`): inputs are standardized, the penalty is per sample
    and folds are random and grouped by trial, so the two differ slightly on the same arrays.

    Behaviour at bin :math:`t + \text{lag}` is decoded from rates at bin :math:`t` (rates lead behaviour).
    Trials are split into ``n_folds`` folds (seeded); for each fold a decoder is fitted on the other
    trials with its penalty chosen by an inner :func:`fit_ridge_cv` (grouped by trial), and predicts the
    held-out trials. :func:`r2_score` (uniform over behaviour dimensions) is computed on the pooled
    out-of-fold predictions. Bins with NaN behaviour are ignored.

    Parameters
    ----------
    rates : np.ndarray
        ``(trials, time, neurons)`` inferred rates.
    behavior : np.ndarray
        ``(trials, time, dims)`` behaviour.
    lag : int
        Bins by which behaviour lags the rates.
    n_folds : int
        Outer and inner folds.
    alphas : np.ndarray
        Candidate ridge penalties.
    seed : int
        Seed of the fold assignments.

    Returns
    -------
    float
        Cross-validated decoding :math:`R^2`.
    """
    x, y, trial = _lagged_pairs(rates, behavior, lag)
    trial_ids = np.unique(trial)
    fold_of_trial = _fold_labels(len(trial_ids), n_folds, np.random.default_rng(seed))
    fold = fold_of_trial[np.searchsorted(trial_ids, trial)]
    prediction = np.empty_like(y)
    for k in range(n_folds):
        train, test = fold != k, fold == k
        model = fit_ridge_cv(x[train], y[train], alphas, n_folds, groups=trial[train], seed=seed + 1 + k)
        prediction[test] = model.predict(x[test])
    return r2_score(y, prediction)


def vel_r2_train_test_grouped(
    train_rates: np.ndarray,
    train_behavior: np.ndarray,
    eval_rates: np.ndarray,
    eval_behavior: np.ndarray,
    lag: int = 0,
    n_folds: int = 5,
    alphas: np.ndarray = DEFAULT_RIDGE_ALPHAS,
    seed: int = 0,
) -> float:
    r"""Decoding :math:`R^2` of our ridge decoder fitted on one set of trials and scored on another (our protocol).

    Like :func:`vel_r2` (the benchmark's) in splitting train and evaluation trials, but the decoder is
    :func:`fit_ridge_cv`'s: standardized inputs, per-sample penalty, folds grouped by trial.

    The decoder is fitted on ``train_*`` with its penalty chosen by :func:`fit_ridge_cv` (folds grouped
    by trial) and scored with :func:`r2_score` on ``eval_*``. Lag and NaN handling as in :func:`vel_r2_cv_grouped`.

    Parameters
    ----------
    train_rates, eval_rates : np.ndarray
        ``(trials, time, neurons)`` rates.
    train_behavior, eval_behavior : np.ndarray
        ``(trials, time, dims)`` behaviour.
    lag : int
        Bins by which behaviour lags the rates.
    n_folds : int
        Folds for choosing the penalty.
    alphas : np.ndarray
        Candidate ridge penalties.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    float
        Held-out decoding :math:`R^2`.
    """
    x_train, y_train, trial = _lagged_pairs(train_rates, train_behavior, lag)
    x_eval, y_eval, _ = _lagged_pairs(eval_rates, eval_behavior, lag)
    model = fit_ridge_cv(x_train, y_train, alphas, n_folds, groups=trial, seed=seed)
    return r2_score(y_eval, model.predict(x_eval))


def _decoding_r2(
    train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray, alphas: np.ndarray, n_folds: int
) -> float:
    """One ridge decoder fitted as the benchmark does, scored on the evaluation samples."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold

    train_keep = ~np.isnan(train_y).any(axis=1)
    eval_keep = ~np.isnan(eval_y).any(axis=1)
    train_x, train_y, eval_x, eval_y = train_x[train_keep], train_y[train_keep], eval_x[eval_keep], eval_y[eval_keep]
    if np.isnan(train_x).any() or np.isnan(eval_x).any():
        raise LFADSDataError("rates contain NaN in bins with observed behaviour; predict every such bin.")
    search = GridSearchCV(Ridge(), {"alpha": np.asarray(alphas, dtype=np.float64)}, cv=KFold(n_folds))
    search.fit(train_x, train_y)
    return float(search.score(eval_x, eval_y))


def vel_r2(
    train_rates: np.ndarray,
    train_behavior: np.ndarray,
    eval_rates: np.ndarray,
    eval_behavior: np.ndarray,
    train_decode_mask: np.ndarray | None = None,
    eval_decode_mask: np.ndarray | None = None,
    alphas: np.ndarray = DEFAULT_RIDGE_ALPHAS,
    n_folds: int = 5,
) -> float:
    r"""Velocity-decoding :math:`R^2` with the Neural Latents Benchmark's protocol.

    Trials and bins are flattened to samples; samples whose behaviour is NaN are dropped. A scikit-learn
    ``Ridge`` (intercept fitted, inputs not standardized, penalty :math:`lpha \|W\|^2` on the summed squared
    error) maps the raw rates to the behaviour, with :math:`lpha` chosen from ``alphas`` by ``GridSearchCV``
    over ``n_folds`` contiguous, unshuffled folds of the training samples (mean fold :math:`R^2`, the
    smallest of tied penalties), refitted on all training samples and scored (:math:`R^2` averaged over
    behaviour dimensions) on the evaluation samples. With decode masks, one decoder per mask column is fitted
    on the trials it selects and the scores are averaged. The behaviour is used as given: NLB tensors
    already lag it behind the rates.

    Parameters
    ----------
    train_rates, eval_rates : np.ndarray
        ``(trials, time, neurons)`` rates of the training and evaluation trials (same neurons).
    train_behavior, eval_behavior : np.ndarray
        ``(trials, time, dims)`` behaviour, NaN where undefined.
    train_decode_mask, eval_decode_mask : np.ndarray, optional
        ``(trials, masks)`` booleans: which trials each decoder uses (the target file's ``*_decode_mask``).
    alphas : np.ndarray
        Candidate penalties; the benchmark's ``logspace(-4, 0, 9)``.
    n_folds : int
        Folds of the penalty search.

    Returns
    -------
    float
        Evaluation :math:`R^2` (averaged over masks).

    See Also
    --------
    vel_r2_cv_grouped, vel_r2_train_test_grouped : our decoders (standardized inputs, folds grouped by trial).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (train_rates, train_behavior, eval_rates, eval_behavior)]
    for name, a in zip(("train_rates", "train_behavior", "eval_rates", "eval_behavior"), arrays):
        if a.ndim != 3:
            raise LFADSDataError(f"{name} must be (trials, time, dims); got shape {a.shape}.")
    train_rates, train_behavior, eval_rates, eval_behavior = arrays
    if train_rates.shape[:2] != train_behavior.shape[:2] or eval_rates.shape[:2] != eval_behavior.shape[:2]:
        raise LFADSDataError(
            f"rates and behaviour must share trials and bins: train {train_rates.shape} vs {train_behavior.shape}, "
            f"eval {eval_rates.shape} vs {eval_behavior.shape}."
        )
    if train_decode_mask is None:
        train_decode_mask = np.ones((train_rates.shape[0], 1), dtype=bool)
        eval_decode_mask = np.ones((eval_rates.shape[0], 1), dtype=bool)
    train_decode_mask = np.asarray(train_decode_mask, dtype=bool).reshape(train_rates.shape[0], -1)
    eval_decode_mask = np.asarray(eval_decode_mask, dtype=bool).reshape(eval_rates.shape[0], -1)

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, a.shape[-1])

    scores = [
        _decoding_r2(flat(train_rates[tm]), flat(train_behavior[tm]), flat(eval_rates[em]), flat(eval_behavior[em]),
                     alphas, n_folds)
        for tm, em in zip(train_decode_mask.T, eval_decode_mask.T)
    ]
    return float(np.mean(scores))
