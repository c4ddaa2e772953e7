"""Metrics of a model's rates on one split: bits/spike, co-bps, fp-bps and rate R2.

The reconstructed array ``(trials, time, neurons)`` is cut into the blocks the
Neural Latents Benchmark scores separately (:class:`lfads.metrics.ScoringSlices`):

- held-in neurons over the encoder bins -> ``bps`` (bits/spike),
- held-out neurons (columns past ``n_in``) over the encoder bins -> ``co_bps``,
- every neuron over forward-prediction bins (past ``t_enc``) -> ``fp_bps``,
- and, where the true rates are known, ``rate_r2`` over the whole array.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from lfads import metrics


def compute_split_metrics(
    rates: np.ndarray, counts: np.ndarray | None, truth: np.ndarray | None, t_enc: int, n_in: int
) -> dict[str, float]:
    """Metrics of ``rates`` ``(trials, time, neurons)`` against ``counts`` and ``truth`` (expected counts per bin)."""
    out: dict[str, float] = {}
    blocks = metrics.ScoringSlices(t_enc, n_in)
    if counts is not None:
        out["bps"] = float(metrics.bits_per_spike(rates[blocks.heldin], counts[blocks.heldin]))
        if blocks.has_heldout(counts.shape):
            out["co_bps"] = float(metrics.bits_per_spike(rates[blocks.heldout], counts[blocks.heldout]))
        if blocks.has_forward(counts.shape):
            out["fp_bps"] = float(metrics.bits_per_spike(rates[blocks.forward], counts[blocks.forward]))
    if truth is not None:
        out["rate_r2"] = float(metrics.rate_r2(rates, truth))
    return out


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
        t_enc, n_in = first.encod_data.shape[1:]
        per_session.append(compute_split_metrics(rates, counts, truth, t_enc, n_in))
    keys = set().union(*per_session) if per_session else set()
    return {k: float(np.mean([m[k] for m in per_session if k in m])) for k in sorted(keys)}
