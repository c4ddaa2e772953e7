"""Neural Latents Benchmark submissions: write the benchmark's rate file from sampled rates, and score one.

A submission file holds, for each data set (e.g. ``mc_maze_small``), one group with rates in expected counts per
bin, for ``n`` training trials, ``m`` evaluation trials, ``T`` bins, ``T_fp`` forward bins, ``N_in`` held-in and
``N_out`` held-out neurons:

==============================  ========================  ==========================================
dataset                         shape                     rates of
==============================  ========================  ==========================================
``train_rates_heldin``          ``(n, T, N_in)``          held-in neurons of the training trials
``train_rates_heldout``         ``(n, T, N_out)``         held-out neurons of the training trials
``eval_rates_heldin``           ``(m, T, N_in)``          held-in neurons of the evaluation trials
``eval_rates_heldout``          ``(m, T, N_out)``         held-out neurons of the evaluation trials
``eval_rates_heldin_forward``   ``(m, T_fp, N_in)``       held-in neurons, the bins after the window
``eval_rates_heldout_forward``  ``(m, T_fp, N_out)``      held-out neurons, the bins after the window
==============================  ========================  ==========================================

Trials are in the order of the NLB tensor file (``train_spikes_*`` and ``eval_spikes_*``). An evaluation-target
file has one group per data set with ``eval_spikes_heldout``, ``train_behavior``, ``eval_behavior`` and, where
the benchmark defines them, ``eval_spikes_heldin_forward``, ``eval_spikes_heldout_forward``, ``psth``,
``eval_cond_idx``, ``eval_jitter``, ``train_decode_mask`` and ``eval_decode_mask``. :func:`score_submission`
scores what both files allow, as the benchmark does: co-bps on ``eval_spikes_heldout``, vel R2
(:func:`lfads.metrics.vel_r2`), PSTH R2 (:func:`lfads.metrics.psth_r2_nlb`) and fp-bps on the forward bins,
bits/spike with the benchmark's rate floor (``protocol="nlb"``). DMFC_RSG's speed-interval correlation is
not computed.

Round trip::

    results = sample_posteriors(model, datamodule, n_samples=50)           # train, valid and test splits
    write_submission(results, datamodule, "submission.h5", "mc_maze_small")
    print(format_submission_scores(score_submission("submission.h5", "eval_target.h5")))
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lfads.data.atomic import atomic_output
from lfads.data.hdf5 import check_h5_readable
from lfads.errors import LFADSDataError
from lfads.metrics import bits_per_spike, psth_r2_nlb, vel_r2

__all__ = [
    "NLB_DATASETS",
    "check_dataset_name",
    "SUBMISSION_KEYS",
    "format_submission_scores",
    "score_submission",
    "submission_arrays",
    "write_eval_target",
    "write_submission",
]

NLB_DATASETS: tuple[str, ...] = (
    "mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg", "mc_maze_large", "mc_maze_medium", "mc_maze_small",
)
"""Data sets the benchmark scores; each also at 20 ms bins with the suffix ``_20``."""

SUBMISSION_KEYS: tuple[str, ...] = (
    "train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
    "eval_rates_heldin_forward", "eval_rates_heldout_forward",
)
"""Datasets of one data set's submission group (the forward ones only where the data have forward bins)."""

_TARGET_KEYS = ("eval_spikes_heldout", "train_behavior", "eval_behavior", "eval_spikes_heldin_forward",
                "eval_spikes_heldout_forward", "psth", "eval_cond_idx", "eval_jitter", "train_decode_mask",
                "eval_decode_mask")


def check_dataset_name(name: str) -> str:
    """``name`` if the benchmark scores a data set of that name (:data:`NLB_DATASETS`, or with ``_20``)."""
    base = name.removesuffix("_20")
    if base not in NLB_DATASETS:
        raise LFADSDataError(
            f"dataset name '{name}' is not one the benchmark scores; use one of {list(NLB_DATASETS)} "
            "(with '_20' for 20 ms bins)."
        )
    return name


def _nlb_session(datamodule, session: str | None):
    sessions = [s for s in datamodule.sessions if s.attrs.get("source_layout") == "nlb"]
    if session is not None:
        sessions = [s for s in sessions if s.name == session]
    if len(sessions) != 1:
        names = [s.name for s in datamodule.sessions if s.attrs.get("source_layout") == "nlb"]
        raise LFADSDataError(
            f"a submission needs exactly one NLB session{f' named {session!r}' if session else ''}; the data hold "
            f"{names or 'none'} (NLB tensor files: train_spikes_heldin, ...). Pass session= to choose one."
        )
    return sessions[0]


def _split_rates(results: dict, session, split: str) -> np.ndarray:
    try:
        return np.asarray(results[session.name][split]["rates"], dtype=np.float32)
    except KeyError:
        raise LFADSDataError(
            f"the sampled results lack session '{session.name}' split '{split}'; a submission needs the train, "
            "valid and test splits sampled (sample_posteriors(..., splits=('train', 'valid', 'test')))."
        ) from None


def submission_arrays(results: dict, datamodule, session: str | None = None) -> dict[str, np.ndarray]:
    """The submission's arrays for one NLB session, from :func:`lfads.sampling.sample_posteriors` results.

    The training trials are the session's ``train`` and ``valid`` splits put back in the tensor file's order
    (their ``inds``); the evaluation trials are its ``test`` split. Rates are cut at ``T`` (encoder bins) and
    ``N_in`` (held-in neurons) into the blocks of :data:`SUBMISSION_KEYS`.

    Returns
    -------
    dict of str to np.ndarray
        Float32 arrays keyed as in :data:`SUBMISSION_KEYS`.
    """
    session = _nlb_session(datamodule, session)
    t_enc, n_in = session.encod_seq_len, session.encod_data_dim
    train_parts = [(session.splits[s].extras["inds"], _split_rates(results, session, s)) for s in ("train", "valid")]
    n_train = sum(len(inds) for inds, _ in train_parts)
    train = np.empty((n_train,) + train_parts[0][1].shape[1:], dtype=np.float32)
    for inds, rates in train_parts:
        train[inds] = rates
    if "test" not in session.splits:
        raise LFADSDataError(f"{session.path}: no evaluation trials (eval_spikes_heldin); a submission needs them.")
    evaluation = np.empty_like(_split_rates(results, session, "test"))
    evaluation[session.splits["test"].extras["inds"]] = _split_rates(results, session, "test")
    arrays = {
        "train_rates_heldin": train[:, :t_enc, :n_in],
        "train_rates_heldout": train[:, :t_enc, n_in:],
        "eval_rates_heldin": evaluation[:, :t_enc, :n_in],
        "eval_rates_heldout": evaluation[:, :t_enc, n_in:],
    }
    if evaluation.shape[1] > t_enc:
        arrays["eval_rates_heldin_forward"] = evaluation[:, t_enc:, :n_in]
        arrays["eval_rates_heldout_forward"] = evaluation[:, t_enc:, n_in:]
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def write_submission(
    results: dict, datamodule, path: str | os.PathLike, dataset_name: str, session: str | None = None
) -> Path:
    """Write the benchmark's submission file for one NLB session (see the module docstring), atomically.

    Parameters
    ----------
    results : dict
        :func:`lfads.sampling.sample_posteriors` output with the ``train``, ``valid`` and ``test`` splits.
    datamodule : lfads.data.LFADSDataModule
        The data the model was fitted to, holding one NLB tensor file (or name it with ``session``).
    path : str or PathLike
        Output HDF5 file; replaced if it exists.
    dataset_name : str
        The benchmark's name of the data set (:data:`NLB_DATASETS`, ``_20`` for 20 ms bins).
    session : str, optional
        Session name (the tensor file's stem) when the data hold several NLB files.

    Returns
    -------
    Path
        ``path``.
    """
    check_dataset_name(dataset_name)
    arrays = submission_arrays(results, datamodule, session)
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group(dataset_name)
        for key, value in arrays.items():
            group.create_dataset(key, data=value, compression="gzip")
    return path


def write_eval_target(tensor_path: str | os.PathLike, target_path: str | os.PathLike, dataset_name: str) -> Path:
    """Write an evaluation-target file from an NLB tensor file whose evaluation trials have held-out spikes.

    Copies the tensor file's ``eval_*`` and ``train_*`` datasets that a target file holds (at least
    ``eval_spikes_heldout`` and ``train_behavior``) into the group ``dataset_name``. Suits files made for the
    benchmark's validation phase, whose evaluation trials come with their held-out spikes.

    Raises
    ------
    LFADSDataError
        If the tensor file lacks ``eval_spikes_heldout``.
    """
    tensor_path = check_h5_readable(tensor_path)
    check_dataset_name(dataset_name)
    with h5py.File(tensor_path, "r") as src:
        if "eval_spikes_heldout" not in src:
            raise LFADSDataError(
                f"{tensor_path}: no 'eval_spikes_heldout'; an evaluation target needs the held-out spikes of the "
                "evaluation trials (the benchmark keeps them for its test phase)."
            )
        arrays = {key: src[key][()] for key in _TARGET_KEYS if key in src and key != "eval_cond_idx"}
        cond_idx = [np.asarray(v, dtype=np.int64) for v in src["eval_cond_idx"][()]] if "eval_cond_idx" in src else None
    return _write_target(target_path, dataset_name, arrays, cond_idx)


def _write_target(path: str | os.PathLike, dataset_name: str, arrays: dict, cond_idx: list | None) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group(dataset_name)
        for key, value in arrays.items():
            group.create_dataset(key, data=value)
        if cond_idx is not None:
            data = np.empty(len(cond_idx), dtype=object)
            data[:] = [np.asarray(c, dtype=np.int64) for c in cond_idx]
            group.create_dataset("eval_cond_idx", data=data, dtype=h5py.vlen_dtype(np.int64))
    return path


# --------------------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------------------


class _Group:
    """Reads one data set's group of a submission or target file, with errors naming the file and key."""

    def __init__(self, file: h5py.File, path: Path, name: str) -> None:
        if name not in file or not isinstance(file[name], h5py.Group):
            raise LFADSDataError(f"{path}: no group '{name}' (found {sorted(file)}); the data set is missing.")
        self.group, self.path, self.name = file[name], path, name

    def __contains__(self, key: str) -> bool:
        return key in self.group

    def get(self, key: str, ndim: int | None = 3) -> np.ndarray:
        if key not in self.group:
            raise LFADSDataError(f"{self.path}: '{self.name}/{key}' is missing (found {sorted(self.group)}).")
        node = self.group[key]
        if not isinstance(node, h5py.Dataset):
            raise LFADSDataError(f"{self.path}: '{self.name}/{key}' is a group, not an array.")
        value = node[()]
        if ndim is not None and (not isinstance(value, np.ndarray) or value.ndim != ndim
                                 or not np.issubdtype(value.dtype, np.number)):
            shape = getattr(value, "shape", "a scalar")
            raise LFADSDataError(f"{self.path}: '{self.name}/{key}' has shape {shape} and dtype "
                                 f"{getattr(value, 'dtype', type(value).__name__)}; expected a numeric array with "
                                 f"{ndim} axes.")
        return value.astype(np.float64) if ndim is not None else value


def _same_shape(rates: np.ndarray, target: np.ndarray, what: str, sub: _Group, tgt: _Group) -> None:
    if rates.shape != target.shape:
        raise LFADSDataError(
            f"{sub.path}: '{sub.name}/{what[0]}' has shape {rates.shape} but {tgt.path}: '{tgt.name}/{what[1]}' "
            f"has shape {target.shape}; the submission must have one rate per trial, bin and neuron of the target."
        )


def _scored(fn, where: str, *args, **kwargs) -> float:
    try:
        return float(fn(*args, **kwargs))
    except LFADSDataError as err:
        raise LFADSDataError(f"{where}: {err}") from None


def _score_group(sub: _Group, tgt: _Group) -> dict[str, float]:
    scores: dict[str, float] = {}
    heldout, spikes = sub.get("eval_rates_heldout"), tgt.get("eval_spikes_heldout")
    _same_shape(heldout, spikes, ("eval_rates_heldout", "eval_spikes_heldout"), sub, tgt)
    where = f"{sub.path}: '{sub.name}/eval_rates_heldout'"
    scores["co_bps"] = _scored(bits_per_spike, where, heldout, spikes, "nlb")
    eval_rates = None
    if "eval_rates_heldin" in sub:
        eval_rates = np.concatenate([sub.get("eval_rates_heldin"), heldout], axis=-1)
    # dmfc_rsg is scored by a speed-interval correlation instead, which is not computed here
    decodable = not sub.name.startswith("dmfc_rsg") and {"train_behavior", "eval_behavior"} <= set(tgt.group)
    if eval_rates is not None and decodable:
        train_rates = np.concatenate([sub.get("train_rates_heldin"), sub.get("train_rates_heldout")], axis=-1)
        masks = {}
        if "train_decode_mask" in tgt and "eval_decode_mask" in tgt:
            masks = {"train_decode_mask": tgt.get("train_decode_mask", None),
                     "eval_decode_mask": tgt.get("eval_decode_mask", None)}
        scores["vel_r2"] = _scored(vel_r2, f"{sub.path}: '{sub.name}' train/eval rates", train_rates,
                                   tgt.get("train_behavior"), eval_rates, tgt.get("eval_behavior"), **masks)
    if eval_rates is not None and "psth" in tgt and "eval_cond_idx" in tgt:
        cond_idx = [np.asarray(c, dtype=np.int64) for c in tgt.get("eval_cond_idx", None)]
        jitter = tgt.get("eval_jitter", None).astype(int) if "eval_jitter" in tgt else None
        scores["psth_r2"] = _scored(psth_r2_nlb, f"{sub.path}: '{sub.name}' eval rates", tgt.get("psth"),
                                    eval_rates, cond_idx, jitter)
    forward = ("eval_rates_heldin_forward", "eval_rates_heldout_forward")
    if all(k in sub for k in forward) and "eval_spikes_heldin_forward" in tgt:
        rates = np.concatenate([sub.get(k) for k in forward], axis=-1)
        spikes = np.concatenate([tgt.get("eval_spikes_heldin_forward"), tgt.get("eval_spikes_heldout_forward")], -1)
        _same_shape(rates, spikes, ("eval_rates_*_forward", "eval_spikes_*_forward"), sub, tgt)
        scores["fp_bps"] = _scored(bits_per_spike, f"{sub.path}: '{sub.name}' forward rates", rates, spikes, "nlb")
    return scores


def score_submission(
    submission_path: str | os.PathLike, target_path: str | os.PathLike, dataset_name: str | None = None
) -> dict[str, dict[str, float]]:
    """Score a submission file against an evaluation-target file, as the benchmark does.

    Parameters
    ----------
    submission_path : str or PathLike
        File written by :func:`write_submission` (or any file in the benchmark's submission layout).
    target_path : str or PathLike
        Evaluation-target file (e.g. from :func:`write_eval_target` or the benchmark's own).
    dataset_name : str, optional
        Score only this data set; default: every data set in both files.

    Returns
    -------
    dict
        ``{dataset: {"co_bps", "vel_r2", "psth_r2", "fp_bps"}}`` with the scores the target allows.

    Raises
    ------
    LFADSDataError
        Naming the file and key, if a file is missing or not HDF5, a data set or dataset is missing, shapes do
        not match, or rates are NaN where scored or negative.
    """
    submission_path, target_path = check_h5_readable(submission_path), check_h5_readable(target_path)
    with h5py.File(submission_path, "r") as sub, h5py.File(target_path, "r") as tgt:
        if dataset_name is not None:
            names = [dataset_name]
        else:
            names = [n for n in sub if n in tgt]
            if not names:
                raise LFADSDataError(
                    f"{submission_path} (data sets {sorted(sub)}) and {target_path} (data sets {sorted(tgt)}) share "
                    "no data set; a submission holds one group per data set, named as in the target."
                )
        return {name: _score_group(_Group(sub, submission_path, name), _Group(tgt, target_path, name))
                for name in names}


def format_submission_scores(scores: dict[str, dict[str, float]]) -> str:
    """A plain-text table of :func:`score_submission` output (the benchmark's protocol)."""
    cols = [("co_bps", "co-bps"), ("vel_r2", "vel R2"), ("psth_r2", "PSTH R2"), ("fp_bps", "fp-bps")]
    lines = [f"{'dataset':<20}" + "".join(f"{label:>10}" for _, label in cols)]
    for name, by_metric in scores.items():
        lines.append(f"{name:<20}" + "".join(f"{by_metric[k]:>10.4f}" if k in by_metric else f"{'-':>10}"
                                            for k, _ in cols))
    lines.append("scored with the Neural Latents Benchmark's protocol (lfads.metrics: protocol='nlb', vel_r2, "
                 "psth_r2_nlb)")
    return "\n".join(lines)
