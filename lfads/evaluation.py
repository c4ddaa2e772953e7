"""Metrics of a model's rates on one split: bits/spike per block and rate R2.

The reconstructed array ``(trials, time, neurons)`` is cut into the blocks the
Neural Latents Benchmark scores separately (:class:`lfads.metrics.ScoringSlices`); each score is
named for the neurons and bins it covers:

- ``heldin_bps``: held-in neurons (the first ``n_in``, the encoders' input) over the encoder bins,
- ``co_bps``: held-out neurons (columns past ``n_in``) over the encoder bins,
- ``fp_bps``: every neuron over the forward-prediction bins (past ``t_enc``),
- ``rate_r2``: every neuron and bin, against the true rates where they are known.

Bins a unit was not observed in (``recon_mask`` False, see :mod:`lfads.data.nwb`) are left out of every
score: their counts and true rates become NaN, which the metrics skip.

Bits/spike follow ``protocol`` (:data:`lfads.metrics.Protocol`): ``"lfads"`` floors every rate at 1e-9,
``"nlb"`` replaces exact zeros by 1e-9 and rejects negative rates, as the benchmark does.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from lfads import metrics

SCORE_COLUMNS: tuple[str, ...] = ("heldin_bps", "co_bps", "fp_bps", "rate_r2")
"""Score names in table order."""

SCORE_DESCRIPTIONS: dict[str, str] = {
    "heldin_bps": "bits/spike, held-in neurons, encoder bins",
    "co_bps": "bits/spike, held-out neurons, encoder bins",
    "fp_bps": "bits/spike, all neurons, forward-prediction bins",
    "rate_r2": "R2 against the true rates, all neurons and bins",
}
"""What each score covers."""

RENAMED_SCORES: dict[str, str] = {"bps": "heldin_bps"}
"""Score names used by files written before the scores were named for their blocks -> current names."""


def compute_split_metrics(
    rates: np.ndarray,
    counts: np.ndarray | None,
    truth: np.ndarray | None,
    t_enc: int,
    n_in: int,
    protocol: metrics.Protocol = "lfads",
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores of ``rates`` against ``counts`` and ``truth`` (all ``(trials, time, neurons)``, expected counts per bin).

    ``counts`` may cover fewer bins than ``rates`` (the encoder bins only): blocks it lacks are not scored.
    ``mask`` (bool, the shape of ``counts`` and ``truth``; True = observed) leaves the unobserved elements
    out of every score. Returns a subset of :data:`SCORE_COLUMNS`.
    """
    if mask is not None:
        counts = None if counts is None else _unobserved_as_nan(counts, mask, "counts")
        truth = None if truth is None else _unobserved_as_nan(truth, mask, "truth")
    out: dict[str, float] = {}
    blocks = metrics.ScoringSlices(t_enc, n_in)
    if counts is not None:
        out["heldin_bps"] = metrics.bits_per_spike(rates[blocks.heldin], counts[blocks.heldin], protocol)
        if blocks.has_heldout(counts.shape):
            out["co_bps"] = metrics.bits_per_spike(rates[blocks.heldout], counts[blocks.heldout], protocol)
        if blocks.has_forward(counts.shape):
            out["fp_bps"] = metrics.bits_per_spike(rates[blocks.forward], counts[blocks.forward], protocol)
    if truth is not None:
        out["rate_r2"] = metrics.rate_r2(rates, truth)
    return {k: float(v) for k, v in out.items()}


def _unobserved_as_nan(values: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """``values`` as float64 with NaN where ``mask`` (bool, True = observed) is False."""
    values, mask = np.asarray(values, dtype=np.float64), np.asarray(mask, dtype=bool)
    if mask.shape != values.shape:
        raise ValueError(f"the observation mask has shape {mask.shape} but {name} has shape {values.shape}; they "
                         f"must match (trials, time, neurons).")
    return np.where(mask, values, np.nan)


def validation_metrics(cache: list) -> dict[str, float]:
    """Average over sessions of :func:`compute_split_metrics` from ``(session, SessionBatch, rates)`` tuples."""
    grouped: dict[int, list] = defaultdict(list)
    for s, batch, rates in cache:
        grouped[s].append((batch, rates))
    per_session = []
    for items in grouped.values():
        rates = np.concatenate([r.float().cpu().numpy() for _, r in items])
        first = items[0][0]
        counts = None if first.recon_data is None else np.concatenate([b.recon_data.cpu().numpy() for b, _ in items])
        truth = None if first.truth is None else np.concatenate([b.truth.cpu().numpy() for b, _ in items])
        mask = (None if first.recon_mask is None
                else np.concatenate([b.recon_mask.cpu().numpy() for b, _ in items]))
        t_enc, n_in = first.encod_data.shape[1:]
        per_session.append(compute_split_metrics(rates, counts, truth, t_enc, n_in, mask=mask))
    keys = set().union(*per_session) if per_session else set()
    return {k: float(np.mean([m[k] for m in per_session if k in m])) for k in sorted(keys)}
