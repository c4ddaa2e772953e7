"""Posterior sampling: average many posterior samples per trial and save them.

For each trial, ``n_samples`` initial conditions and inferred-input sequences are
drawn from the posterior and run through the generator; the outputs are averaged:

.. math::

    \\hat r_{t} = \\frac{1}{S} \\sum_{s=1}^{S} r_t\\big(z^{(s)}, u^{(s)}_{1:t}\\big),\\quad
    z^{(s)} \\sim q(z \\mid x),\\ u^{(s)} \\sim q(u \\mid x)

The samples of a batch are stacked along the batch axis and run in one pass (no
Python loop over samples); batches are sized to bound memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lfads.data.hdf5 import save_h5_atomic
from lfads.evaluation import compute_split_metrics

AVERAGED = ("rates", "factors", "gen_states", "inferred_inputs", "co_means", "co_stds")
PER_TRIAL = ("ic_mean", "ic_std")


@torch.no_grad()
def sample_posteriors(
    model,
    datamodule,
    n_samples: int = 50,
    splits: tuple[str, ...] = ("train", "valid", "test"),
    max_rows: int = 4096,
    progress: bool = True,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Posterior-averaged outputs for every session and split.

    Returns ``{session_name: {split: {name: array}}}`` with ``rates``, ``factors``,
    ``gen_states``, ``inferred_inputs``, ``co_means``, ``co_stds`` ``(trials, time, dim)``
    and ``ic_mean``, ``ic_std`` ``(trials, ic_dim)``. The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = model.device
    rows = max(1, max_rows // n_samples)
    results: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    try:
        for s, session in enumerate(datamodule.sessions):
            results[session.name] = {}
            for split in splits:
                if split not in session.splits:
                    continue
                loader = datamodule.split_dataloader(s, split, batch_size=rows)
                chunks: dict[str, list] = {k: [] for k in AVERAGED + PER_TRIAL}
                for batch in tqdm(loader, desc=f"sampling {session.name}/{split}", disable=not progress, leave=False):
                    b = batch.encod_data.shape[0]
                    encod = batch.encod_data.to(device).repeat(n_samples, 1, 1)
                    ext = batch.ext_input.to(device).repeat(n_samples, 1, 1)
                    out = model({s: encod}, {s: ext}, sample=True)[s]
                    for k in AVERAGED:
                        v = getattr(out, k).float()
                        chunks[k].append(v.reshape(n_samples, b, *v.shape[1:]).mean(0).cpu())
                    for k in PER_TRIAL:
                        chunks[k].append(getattr(out, k)[:b].float().cpu())
                results[session.name][split] = {k: torch.cat(v).numpy() for k, v in chunks.items()}
    finally:
        model.train(was_training)
    return results


def score_samples(results: dict, datamodule) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of the sampled rates per session and split (see :mod:`lfads.evaluation`)."""
    scores: dict = {}
    for session in datamodule.sessions:
        t_enc = session.splits["train"].encod_data.shape[1]
        n_in = session.splits["train"].encod_data.shape[2]
        scores[session.name] = {}
        for split, out in results.get(session.name, {}).items():
            data = session.splits[split]
            scores[session.name][split] = compute_split_metrics(out["rates"], data.recon_data, data.truth, t_enc, n_in)
    return scores


def format_scores(scores: dict) -> str:
    """A plain-text table of :func:`score_samples` output."""
    cols = ["bps", "co_bps", "fp_bps", "rate_r2"]
    lines = [f"{'session':<24}{'split':<7}" + "".join(f"{c:>10}" for c in cols)]
    for name, by_split in scores.items():
        for split, m in by_split.items():
            cells = "".join(f"{m[c]:>10.4f}" if c in m else f"{'-':>10}" for c in cols)
            lines.append(f"{name:<24}{split:<7}{cells}")
    return "\n".join(lines)


def save_samples(path: str | os.PathLike, results: dict, scores: dict | None = None, attrs: dict | None = None) -> Path:
    """Write ``{session}/{split}/{name}`` datasets (and ``{session}/{split}`` metric attributes) atomically."""
    arrays = {
        f"{session}/{split}/{k}": v for session, by_split in results.items() for split, out in by_split.items() for k, v in out.items()
    }
    flat_attrs = dict(attrs or {})
    for session, by_split in (scores or {}).items():
        for split, m in by_split.items():
            for k, v in m.items():
                flat_attrs[f"{session}/{split}/{k}"] = v
    return save_h5_atomic(path, arrays, flat_attrs)


def load_samples(path: str | os.PathLike) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Read a file written by :func:`save_samples` back into the same nested dict."""
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:
        for session in f:
            out[session] = {split: {k: f[session][split][k][()] for k in f[session][split]} for split in f[session]}
    return out
