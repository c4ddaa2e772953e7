"""Reading Neural Latents Benchmark (NLB) tensor files into the LFADS layout.

nlb_tools writes, for ``n`` training and ``m`` evaluation trials, ``T`` bins and ``T_fp`` forward bins:
``train_spikes_heldin`` ``(n, T, N_in)``, ``train_spikes_heldout`` ``(n, T, N_out)``,
``train_spikes_heldin_forward`` ``(n, T_fp, N_in)``, ``train_spikes_heldout_forward`` ``(n, T_fp, N_out)``,
``train_behavior`` ``(n, T, B)``, ``eval_spikes_heldin`` ``(m, T, N_in)`` and ``eval_spikes_heldout``
``(m, T, N_out)``. In the LFADS layout

    encod = heldin                                                    (trials, T, N_in)
    recon = [[heldin, heldout] ; [heldin_forward, heldout_forward]]   (trials, T + T_fp, N_in + N_out)

(neurons concatenated along the last axis, forward bins appended along time), so co-bps is scored on the last
``N_out`` columns and fp-bps on the last ``T_fp`` bins.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lfads.data.batch import SessionData, SplitData, session_name_from_path
from lfads.data.hdf5 import check_count_array, check_h5_readable, read_h5_arrays, validate_session
from lfads.errors import LFADSDataError

NLB_DEFAULT_BIN_SIZE: float = 0.005
"""Bin width (seconds) assumed when an NLB file does not state one: the benchmark's standard 5 ms bins."""

_NLB_MARKER = "train_spikes_heldin"
_TRAIN_CONSUMED = ("train_spikes_heldin", "train_spikes_heldout", "train_spikes_heldin_forward",
                   "train_spikes_heldout_forward")


def is_nlb_file(path: str | os.PathLike) -> bool:
    """Return True if ``path`` is an HDF5 file in the NLB tensor layout (it holds ``train_spikes_heldin``)."""
    path = Path(path)
    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return _NLB_MARKER in f
    except OSError:  # truncated or unreadable: not a file of either layout (the loader names the problem)
        return False


def _bin_size_from_attrs(attrs: dict, path: Path) -> float | None:
    """Bin width in seconds from the file's attributes (``bin_size`` in s, or ``bin_width`` in ms), if stated."""
    if attrs.get("bin_size") is not None:
        value, scale, key = attrs["bin_size"], 1.0, "bin_size"
    elif attrs.get("bin_width") is not None:  # nlb_tools states bin widths in milliseconds
        value, scale, key = attrs["bin_width"], 1e-3, "bin_width"
    else:
        return None
    try:
        seconds = float(np.asarray(value).reshape(())) * scale
    except (TypeError, ValueError) as err:
        raise LFADSDataError(f"{path}: attribute '{key}' = {value!r} is not a number.") from err
    if not np.isfinite(seconds) or seconds <= 0:
        raise LFADSDataError(f"{path}: attribute '{key}' = {value!r} must be a positive number.")
    return seconds


def _check_shape(arrays: dict, key: str, expected: tuple, path: Path, what: str) -> np.ndarray:
    array = arrays[key]
    if array.ndim != len(expected) or any(e is not None and s != e for s, e in zip(array.shape, expected)):
        shown = tuple("?" if e is None else e for e in expected)
        raise LFADSDataError(f"{path}: '{key}' has shape {array.shape}; expected {shown} ({what}).")
    return np.ascontiguousarray(array, dtype=np.float32)


def load_nlb_h5(
    path: str | os.PathLike,
    valid_fraction: float = 0.2,
    seed: int = 0,
    bin_size: float | None = None,
) -> SessionData:
    """Read an NLB tensor file as one LFADS session.

    The NLB training trials are split at random (``numpy.random.default_rng(seed)``) into train and valid,
    ``round(valid_fraction * n)`` trials (at least 1, at most ``n - 1``) going to valid; both keep their original
    order. ``encod = heldin`` ``(trials, T, N_in)``; ``recon`` concatenates heldin and heldout along neurons, then
    appends the forward bins along time: ``(trials, T + T_fp, N_in + N_out)``. The NLB evaluation trials form the
    test split, with ``encod = eval heldin`` and no recon data.

    Extras: ``{split}_inds`` the trial's index in the NLB train tensors (test: in the eval tensors),
    ``{split}_behavior`` from ``train_behavior``, every other ``train_<name>`` / ``eval_<name>`` per-trial tensor as
    ``{split}_<name>`` (so ``eval_spikes_heldout`` becomes ``test_spikes_heldout``).

    Parameters
    ----------
    path : str or PathLike
        HDF5 file written by nlb_tools (``train_spikes_heldin``, ... ; see module docstring).
    valid_fraction : float
        Fraction of the NLB training trials used for validation, in (0, 1).
    seed : int
        Seed of the train/valid split.
    bin_size : float, optional
        Bin width in seconds. Default: the file's ``bin_size`` (s) or ``bin_width`` (ms) attribute, else
        :data:`NLB_DEFAULT_BIN_SIZE` (5 ms, the benchmark's standard).

    Raises
    ------
    LFADSDataError
        If the file is missing, not HDF5, not in the NLB layout, or its tensors disagree in shape.
    """
    path = check_h5_readable(path)
    if not 0.0 < valid_fraction < 1.0:
        raise LFADSDataError(f"valid_fraction must lie in (0, 1), got {valid_fraction}.")
    arrays, attrs = read_h5_arrays(path)
    if _NLB_MARKER not in arrays:
        raise LFADSDataError(f"{path}: not an NLB tensor file: dataset '{_NLB_MARKER}' is missing "
                             f"(found {sorted(arrays)}).")

    for key in sorted(k for k in arrays if k.startswith(("train_spikes_", "eval_spikes_"))):
        check_count_array(arrays[key], path, key, "NLB tensors hold spike counts per bin; write the file again.",
                          finite=False)
    heldin = arrays[_NLB_MARKER]
    if heldin.ndim != 3 or heldin.shape[0] < 2:
        raise LFADSDataError(f"{path}: '{_NLB_MARKER}' has shape {heldin.shape}; expected (trials, time, neurons) "
                             f"with at least 2 trials (to split into train and valid).")
    n, t_enc, n_in = heldin.shape
    heldin = np.ascontiguousarray(heldin, dtype=np.float32)
    recon_parts = [heldin]
    n_out = 0
    if "train_spikes_heldout" in arrays:
        heldout = _check_shape(arrays, "train_spikes_heldout", (n, t_enc, None), path,
                               "trials and bins as train_spikes_heldin")
        n_out = heldout.shape[2]
        recon_parts.append(heldout)
    recon = np.concatenate(recon_parts, axis=2)

    if "train_spikes_heldin_forward" in arrays:
        fwd_in = _check_shape(arrays, "train_spikes_heldin_forward", (n, None, n_in), path,
                              "trials and neurons as train_spikes_heldin")
        t_fp = fwd_in.shape[1]
        fwd_parts = [fwd_in]
        if n_out:
            if "train_spikes_heldout_forward" not in arrays:
                raise LFADSDataError(f"{path}: 'train_spikes_heldin_forward' is present but "
                                     f"'train_spikes_heldout_forward' is missing; forward bins need both.")
            fwd_parts.append(_check_shape(arrays, "train_spikes_heldout_forward", (n, t_fp, n_out), path,
                                          "trials as train_spikes_heldin, bins as heldin_forward, "
                                          "neurons as train_spikes_heldout"))
        recon = np.concatenate([recon, np.concatenate(fwd_parts, axis=2)], axis=1)
    elif "train_spikes_heldout_forward" in arrays:
        raise LFADSDataError(f"{path}: 'train_spikes_heldout_forward' is present but 'train_spikes_heldin_forward' "
                             f"is missing; forward bins need both.")
    t_recon = recon.shape[1]

    n_valid = min(max(int(round(valid_fraction * n)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    split_inds = {"train": np.sort(order[n_valid:]), "valid": np.sort(order[:n_valid])}

    train_extras = {}
    for key, value in arrays.items():
        if key.startswith("train_") and key not in _TRAIN_CONSUMED:
            if value.ndim == 0 or value.shape[0] != n:
                raise LFADSDataError(f"{path}: '{key}' has shape {value.shape}; per-trial NLB tensors need {n} "
                                     f"trials along the first axis, like '{_NLB_MARKER}'.")
            train_extras[key[len("train_"):]] = value

    splits: dict[str, SplitData] = {}
    for split, inds in split_inds.items():
        extras = {name: value[inds] for name, value in train_extras.items()}
        extras["inds"] = inds.astype(np.int64)
        splits[split] = SplitData(encod_data=heldin[inds], recon_data=recon[inds],
                                  ext_input=np.zeros((len(inds), t_recon, 0), dtype=np.float32), truth=None,
                                  extras=extras)

    if "eval_spikes_heldin" in arrays:
        eval_in = _check_shape(arrays, "eval_spikes_heldin", (None, t_enc, n_in), path,
                               "bins and neurons as train_spikes_heldin")
        m = eval_in.shape[0]
        extras = {}
        for key, value in arrays.items():
            if key.startswith("eval_") and key != "eval_spikes_heldin":
                if value.ndim == 0 or value.shape[0] != m:
                    raise LFADSDataError(f"{path}: '{key}' has shape {value.shape}; per-trial NLB tensors need {m} "
                                         f"trials along the first axis, like 'eval_spikes_heldin'.")
                extras[key[len("eval_"):]] = value
        extras["inds"] = np.arange(m, dtype=np.int64)
        splits["test"] = SplitData(encod_data=eval_in, recon_data=None,
                                   ext_input=np.zeros((m, t_recon, 0), dtype=np.float32), truth=None, extras=extras)

    if bin_size is None:
        bin_size = _bin_size_from_attrs(attrs, path)
    if bin_size is None:
        bin_size = NLB_DEFAULT_BIN_SIZE
    out_attrs = {key: value for key, value in attrs.items() if key not in ("bin_size",)}
    out_attrs.update({"source_layout": "nlb", "valid_fraction": float(valid_fraction), "split_seed": int(seed),
                      "bin_size": float(bin_size)})
    session = SessionData(name=session_name_from_path(path), path=path, splits=splits, attrs=out_attrs, bin_size=float(bin_size),
                          extras={k: v for k, v in arrays.items() if not k.startswith(("train_", "eval_"))})
    validate_session(session)
    return session


def held_out_eval_counts(split: SplitData) -> np.ndarray | None:
    """Counts to score an NLB evaluation split against, from the held-out spikes its file holds.

    The NLB evaluation trials (the ``test`` split of :func:`load_nlb_h5`) have no ``recon_data``; when the file
    holds ``eval_spikes_heldout`` they are scored against

        [eval_spikes_heldin, eval_spikes_heldout]                       (trials, T, N_in + N_out)

    with ``[eval_spikes_heldin_forward, eval_spikes_heldout_forward]`` appended along time when the file holds
    both (as evaluation-target files do), i.e. the same layout as ``recon_data``.

    Returns
    -------
    np.ndarray or None
        ``(trials, T[ + T_fp], N_in + N_out)`` float32 counts, or None when the split has no held-out spikes.
    """
    heldout = split.extras.get("spikes_heldout")
    if heldout is None:
        return None
    heldin = split.encod_data
    if heldout.ndim != 3 or heldout.shape[:2] != heldin.shape[:2]:
        raise LFADSDataError(f"'eval_spikes_heldout' has shape {heldout.shape}; expected {heldin.shape[:2] + ('?',)} "
                             "(trials and bins as eval_spikes_heldin).")
    counts = np.concatenate([heldin, np.asarray(heldout, dtype=np.float32)], axis=2)
    fwd_in, fwd_out = split.extras.get("spikes_heldin_forward"), split.extras.get("spikes_heldout_forward")
    if fwd_in is not None and fwd_out is not None:
        forward = np.concatenate([np.asarray(fwd_in, np.float32), np.asarray(fwd_out, np.float32)], axis=2)
        if forward.shape[0] != counts.shape[0] or forward.shape[2] != counts.shape[2]:
            raise LFADSDataError(f"eval forward spikes have shape {forward.shape} (held-in and held-out joined); "
                                 f"expected ({counts.shape[0]}, ?, {counts.shape[2]}).")
        counts = np.concatenate([counts, forward], axis=1)
    return counts
