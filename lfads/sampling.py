"""Posterior sampling: average many posterior samples per trial, score and save them.

For each trial, ``n_samples`` initial conditions and inferred-input sequences are
drawn from the posterior and run through the generator; the outputs are averaged:

.. math::

    \\hat r_{t} = \\frac{1}{S} \\sum_{s=1}^{S} r_t\\big(z^{(s)}, u^{(s)}_{1:t}\\big),\\quad
    z^{(s)} \\sim q(z \\mid x),\\ u^{(s)} \\sim q(u \\mid x)

The encoders are deterministic at sampling time (evaluation mode: no dropout), so each trial is
encoded once (:meth:`lfads.model.LFADS.encode`) and only the generator runs per sample
(:meth:`lfads.model.LFADS.decode`). The samples of a batch of trials are decoded in chunks of whole
samples sized to a memory budget and summed into per-batch accumulators, so memory stays bounded
and the allocator reuses the same blocks from chunk to chunk.

Noise order: for a batch of ``b`` trials, the IC noise of all ``n_samples * b`` rows is drawn first,
then the inferred-input noise ``(time, n_samples * b, co_dim)``, rows ordered sample-major (row
``s * b + i`` is sample ``s`` of trial ``i``). Repeating the batch ``n_samples`` times and running the
model on it draws the same numbers in the same order, so the two give the same result for the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lfads.data.batch import SPLITS, check_split_name
from lfads.data.hdf5 import save_h5_atomic
from lfads.data.nlb import held_out_eval_counts
from lfads.errors import LFADSDataError, check_setting
from lfads.evaluation import (
    RENAMED_SCORES,
    SCORE_COLUMNS,
    SCORE_DESCRIPTIONS,
    compute_split_metrics,
)
from lfads.metrics import Protocol

AVERAGED = ("rates", "factors", "gen_states", "inferred_inputs", "co_means", "co_stds")
PER_TRIAL = ("ic_mean", "ic_std")

DEFAULT_MEMORY_MB: float = 128.0
"""Default memory budget of one decoding chunk (its outputs and the generator's buffers)."""


def _bytes_per_row(model, n_steps: int) -> int:
    """Bytes one decoded row (one sample of one trial) holds while its chunk runs, from the model's sizes.

    Counts the per-step outputs (generator and controller states, factors, inferred-input statistics, readout
    parameters and rates), the recurrent loops' gate buffers and a factor 2 for temporaries.
    """
    hp = model.hparams
    n_recon = max(hp.recon_data_dims)
    per_step = (
        4 * hp.gen_dim  # states, dropped states, gates
        + 4 * hp.con_dim
        + 2 * hp.fac_dim
        + 4 * hp.co_dim
        + (model.likelihood.n_params + 2) * n_recon
        + hp.ext_input_dim
        + 6 * hp.ci_enc_dim
    )
    return 2 * 4 * n_steps * per_step


def chunk_rows(model, n_steps: int, memory_mb: float = DEFAULT_MEMORY_MB) -> int:
    """Rows (samples x trials) decoded at once so that a chunk needs about ``memory_mb`` MB."""
    return max(1, int(memory_mb * 2**20) // _bytes_per_row(model, n_steps))


def _posterior_means(model, session: int, encod: torch.Tensor, ext: torch.Tensor, n_samples: int,
                     samples_per_chunk: int) -> dict[str, torch.Tensor]:
    """``AVERAGED`` outputs averaged over ``n_samples`` posterior samples and ``PER_TRIAL`` posteriors, one batch."""
    b = encod.shape[0]
    enc = model.encode({session: encod}, {session: ext})
    ic_dim = enc.ic_mean.shape[1]
    ic_noise = torch.randn(n_samples * b, ic_dim, device=encod.device, dtype=enc.ic_mean.dtype)
    decoder = model.decoder
    co_noise = None
    if decoder.use_con:
        n_steps = enc.ext.shape[1]
        co_noise = torch.randn(n_steps, n_samples * b, decoder.co_dim, device=encod.device, dtype=enc.ic_mean.dtype)
    # The encoding tiled once for a full chunk (sample-major rows); a shorter last chunk takes its first rows.
    reps = min(samples_per_chunk, n_samples)

    def tile(x: torch.Tensor | None) -> torch.Tensor | None:
        return x if x is None or reps == 1 else x.repeat(reps, *([1] * (x.dim() - 1)))

    tiled = enc._replace(ic_mean=tile(enc.ic_mean), ic_std=tile(enc.ic_std), ci=tile(enc.ci), ext=tile(enc.ext))
    sums: dict[str, torch.Tensor] = {}
    for first in range(0, n_samples, samples_per_chunk):
        k = min(samples_per_chunk, n_samples - first)
        rows = slice(first * b, (first + k) * b)
        chunk = tiled._replace(
            ic_mean=tiled.ic_mean[: k * b],
            ic_std=tiled.ic_std[: k * b],
            ci=None if tiled.ci is None else tiled.ci[: k * b],
            ext=tiled.ext[: k * b],
            sizes=(k * b,),
        )
        out = model.decode(chunk, sample=True, ic_noise=ic_noise[rows],
                           co_noise=None if co_noise is None else co_noise[:, rows])[session]
        for name in AVERAGED:
            value = getattr(out, name).float()
            part = value.view(k, b, *value.shape[1:]).sum(0)
            if name in sums:
                sums[name] += part
            else:
                sums[name] = part
        del out
    means = {name: total / n_samples for name, total in sums.items()}
    means["ic_mean"], means["ic_std"] = enc.ic_mean.float(), enc.ic_std.float()
    return means


def sampling_request(n_samples: int, splits: str | Sequence[str]) -> tuple[str, ...]:
    """``splits`` as a tuple (one name may be given as a string) after checking ``n_samples`` is a whole number
    of at least 1 and every split is one of ``train``, ``valid``, ``test``; raises :class:`LFADSDataError`."""
    check_setting("sampling", "n_samples", n_samples, 1, integer=True)
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    if not names:
        raise LFADSDataError(f"splits is empty; name one or more of {list(SPLITS)}.")
    for name in names:
        check_split_name(name, "splits", f"name one or more of {list(SPLITS)}")
    return names


@torch.no_grad()
def sample_posteriors(
    model,
    datamodule,
    n_samples: int = 50,
    splits: str | tuple[str, ...] = ("train", "valid", "test"),
    memory_mb: float = DEFAULT_MEMORY_MB,
    progress: bool = True,
    trials_per_batch: int | None = None,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Posterior-averaged outputs for every session and split.

    Parameters
    ----------
    model : lfads.model.LFADS
        The model; put in evaluation mode while sampling, its mode restored afterwards.
    datamodule : lfads.data.LFADSDataModule
        The data.
    n_samples : int
        Posterior samples averaged per trial.
    splits : str or tuple of str
        Splits to sample, of ``train``, ``valid``, ``test`` (those a session lacks are skipped).
    memory_mb : float
        Memory budget of one decoding chunk (see :func:`chunk_rows`); results do not depend on it.
    progress : bool
        Show a progress bar per split.
    trials_per_batch : int, optional
        Trials encoded together; default: as many as one chunk holds (at least 1). With the seed, it sets
        the noise each trial gets (see the module docstring).

    Returns
    -------
    dict
        ``{session_name: {split: {name: array}}}`` with ``rates``, ``factors``, ``gen_states``,
        ``inferred_inputs``, ``co_means``, ``co_stds`` ``(trials, time, dim)`` and ``ic_mean``, ``ic_std``
        ``(trials, ic_dim)``.
    """
    splits = sampling_request(n_samples, splits)
    was_training = model.training
    model.eval()
    device = model.device
    results: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    try:
        for s, session in enumerate(datamodule.sessions):
            results[session.name] = {}
            rows = chunk_rows(model, session.recon_seq_len, memory_mb)
            batch_trials = trials_per_batch or rows
            samples_per_chunk = max(1, min(n_samples, rows // batch_trials))
            for split in splits:
                if split not in session.splits:
                    continue
                loader = datamodule.split_dataloader(s, split, batch_size=batch_trials)
                chunks: dict[str, list] = {k: [] for k in AVERAGED + PER_TRIAL}
                for batch in tqdm(loader, desc=f"sampling {session.name}/{split}", disable=not progress, leave=False):
                    means = _posterior_means(model, s, batch.encod_data.to(device), batch.ext_input.to(device),
                                             n_samples, samples_per_chunk)
                    for k in AVERAGED + PER_TRIAL:
                        chunks[k].append(means[k].cpu())
                results[session.name][split] = {k: torch.cat(v).numpy() for k, v in chunks.items()}
    finally:
        model.train(was_training)
    return results


def scoring_counts(data) -> np.ndarray | None:
    """The counts a split is scored against: its ``recon_data``, else the NLB held-out evaluation spikes."""
    return data.recon_data if data.recon_data is not None else held_out_eval_counts(data)


def score_samples(results: dict, datamodule, protocol: Protocol = "lfads") -> dict[str, dict[str, dict[str, float]]]:
    """Scores of the sampled rates per session and split (names and blocks: :mod:`lfads.evaluation`).

    Splits without ``recon_data`` are scored against the held-out spikes their file holds, if any (the NLB
    evaluation trials against ``eval_spikes_heldout``: ``heldin_bps`` and ``co_bps`` over the encoder bins).
    """
    scores: dict = {}
    for session in datamodule.sessions:
        t_enc = session.splits["train"].encod_data.shape[1]
        n_in = session.splits["train"].encod_data.shape[2]
        scores[session.name] = {}
        for split, out in results.get(session.name, {}).items():
            data = session.splits[split]
            scores[session.name][split] = compute_split_metrics(
                out["rates"], scoring_counts(data), data.truth, t_enc, n_in, protocol, mask=data.recon_mask
            )
    return scores


def format_scores(scores: dict, protocol: Protocol = "lfads") -> str:
    """A plain-text table of :func:`score_samples` output, with a legend of what each column covers."""
    cols = list(SCORE_COLUMNS)
    lines = [f"{'session':<24}{'split':<7}" + "".join(f"{c:>12}" for c in cols)]
    for name, by_split in scores.items():
        for split, m in by_split.items():
            cells = "".join(f"{m[c]:>12.4f}" if c in m else f"{'-':>12}" for c in cols)
            lines.append(f"{name:<24}{split:<7}{cells}")
    floor = ("every rate floored at 1e-9" if protocol == "lfads"
             else "the benchmark's: exact zeros raised to 1e-9, negative rates rejected")
    lines += [f"  {c:<12}{SCORE_DESCRIPTIONS[c]}" for c in cols]
    lines.append(f"  bits/spike protocol '{protocol}': {floor}")
    return "\n".join(lines)


def save_samples(path: str | os.PathLike, results: dict, scores: dict | None = None, attrs: dict | None = None) -> Path:
    """Write ``{session}/{split}/{name}`` datasets (and ``{session}/{split}`` metric attributes) atomically."""
    arrays = {
        f"{session}/{split}/{k}": v
        for session, by_split in results.items()
        for split, out in by_split.items()
        for k, v in out.items()
    }
    flat_attrs = dict(attrs or {})
    for session, by_split in (scores or {}).items():
        for split, m in by_split.items():
            for k, v in m.items():
                flat_attrs[f"{session}/{split}/{k}"] = v
    return save_h5_atomic(path, arrays, flat_attrs)


def load_scores(path: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """Read the scores :func:`save_samples` stored as ``{session}/{split}/{name}`` attributes.

    Names from files written before the scores were named for their blocks are renamed
    (:data:`lfads.evaluation.RENAMED_SCORES`: ``bps`` -> ``heldin_bps``).
    """
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:
        for key, value in f.attrs.items():
            parts = key.split("/")
            if len(parts) != 3:
                continue
            session, split, name = parts
            out.setdefault(session, {}).setdefault(split, {})[RENAMED_SCORES.get(name, name)] = float(value)
    return out


def load_samples(path: str | os.PathLike) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Read a file written by :func:`save_samples` back into the same nested dict."""
    import h5py

    out: dict = {}
    with h5py.File(path, "r") as f:
        for session in f:
            out[session] = {split: {k: f[session][split][k][()] for k in f[session][split]} for split in f[session]}
    return out
