"""Dataset generators and converters that write the LFADS HDF5 layout.

Each module is runnable as ``python -m datasets.<name>`` (or ``python datasets/<name>.py``)
and exposes ``generate_<name>(...) -> dict[str, np.ndarray]`` plus ``write_<name>(path, ...)``.

This file also holds the helpers the synthetic generators share:

- :func:`split_trials_by_condition` assigns every trial to ``train`` / ``valid`` / ``test``,
  stratified by condition so each split sees every condition.
- :func:`assemble_layout` turns full-length trial arrays into the layout's
  ``{split}_encod_data`` / ``{split}_recon_data`` / ``{split}_truth`` / extras.
- :func:`rk4_step` is the fixed-step integrator of their dynamical systems.
- :func:`write_from_command` runs a generator's command line: an ``--out`` file that the same generator did not
  write is never replaced without ``--overwrite``, and bad settings end in one line.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SPLITS", "assemble_layout", "rk4_step", "split_trials_by_condition", "write_from_command"]

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def rk4_step(derivative: Callable[[Any], Any], state: Any, h: float) -> Any:
    r"""One classical Runge-Kutta step :math:`s + \tfrac{h}{6}(k_1 + 2k_2 + 2k_3 + k_4)` of :math:`\dot s = f(s)`.

    ``state`` may be a NumPy array or a torch tensor (``derivative`` must accept and return the same kind),
    so the same step serves the generators and differentiable fits of their initial states.
    """
    k1 = derivative(state)
    k2 = derivative(state + 0.5 * h * k1)
    k3 = derivative(state + 0.5 * h * k2)
    k4 = derivative(state + h * k3)
    return state + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def split_trials_by_condition(
    conditions: np.ndarray,
    valid_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    r"""Split trials into train / valid / test, stratified by condition.

    For a condition with :math:`m` trials, :math:`\mathrm{round}(m \cdot f_\text{valid})` random
    trials go to ``valid``, :math:`\mathrm{round}(m \cdot f_\text{test})` to ``test`` and the rest
    to ``train``. The trial order inside each split is shuffled.

    Parameters
    ----------
    conditions : np.ndarray
        ``(trials,)`` integer condition id per trial.
    valid_fraction, test_fraction : float
        Fractions of each condition's trials for the validation and test splits.
    rng : np.random.Generator
        Source of randomness.

    Returns
    -------
    dict[str, np.ndarray]
        Split name -> ``(n_split,)`` int64 trial indices into ``conditions``. ``test`` is present
        only when ``test_fraction > 0``.
    """
    if not (0.0 <= valid_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and valid_fraction + test_fraction < 1.0):
        raise ValueError(
            f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and sum to less than 1 so that some trials remain for training."
        )
    conditions = np.asarray(conditions)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for cond in np.unique(conditions):
        idx = rng.permutation(np.flatnonzero(conditions == cond))
        n_valid = int(round(len(idx) * valid_fraction))
        n_test = int(round(len(idx) * test_fraction))
        parts["valid"].append(idx[:n_valid])
        parts["test"].append(idx[n_valid : n_valid + n_test])
        parts["train"].append(idx[n_valid + n_test :])
    splits = {name: rng.permutation(np.concatenate(parts[name])).astype(np.int64) for name in SPLITS}
    if test_fraction <= 0:
        del splits["test"]
    requested = {"train": 1.0, "valid": valid_fraction, "test": test_fraction}
    for name, idx in splits.items():
        if requested[name] > 0 and len(idx) == 0:
            raise ValueError(
                f"split '{name}' received no trials: each condition's share rounds to zero. Increase "
                f"trials_per_condition or change valid_fraction (now {valid_fraction}) / test_fraction "
                f"(now {test_fraction})."
            )
    return splits


def assemble_layout(
    counts: np.ndarray,
    truth: np.ndarray,
    splits: Mapping[str, np.ndarray],
    n_heldin: int,
    n_enc_time: int,
    conversion_factor: float,
    extras: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Cut full trial arrays into the LFADS HDF5 layout.

    ``encod`` keeps the first ``n_enc_time`` bins of the first ``n_heldin`` neurons;
    ``recon`` and ``truth`` keep all bins and neurons.

    Parameters
    ----------
    counts : np.ndarray
        ``(trials, T_recon, N_recon)`` spike counts.
    truth : np.ndarray
        ``(trials, T_recon, N_recon)`` true rates in spikes/s.
    splits : Mapping[str, np.ndarray]
        Split name -> ``(n_split,)`` trial indices.
    n_heldin : int
        Number of held-in neurons (first columns).
    n_enc_time : int
        Number of bins the encoders see (the rest are forward-prediction bins).
    conversion_factor : float
        ``truth / conversion_factor`` is the expected count per bin.
    extras : Mapping[str, np.ndarray], optional
        Name -> ``(trials, ...)`` per-trial arrays written as ``{split}_{name}``.

    Returns
    -------
    dict[str, np.ndarray]
        Dataset name -> array, ready for :func:`lfads.data.hdf5.save_h5_atomic`.
    """
    out: dict[str, np.ndarray] = {}
    for split, idx in splits.items():
        out[f"{split}_encod_data"] = counts[idx, :n_enc_time, :n_heldin].astype(np.float32)
        out[f"{split}_recon_data"] = counts[idx].astype(np.float32)
        out[f"{split}_truth"] = truth[idx].astype(np.float32)
        out[f"{split}_inds"] = np.asarray(idx, dtype=np.int64)
        for name, values in (extras or {}).items():
            values = np.asarray(values)
            out[f"{split}_{name}"] = values[idx]
    out["conversion_factor"] = np.asarray(conversion_factor, dtype=np.float64)
    return out


def resolve_parameters(generator: Callable[..., Any], kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    """``generator``'s defaults updated with ``kwargs``; unknown names raise a ``TypeError`` naming ``what``."""
    signature = inspect.signature(generator)
    unknown = set(kwargs) - set(signature.parameters)
    if unknown:
        raise TypeError(f"unknown {what} parameter(s): {sorted(unknown)}; valid: {list(signature.parameters)}")
    params = {name: p.default for name, p in signature.parameters.items()}
    params.update(kwargs)
    return params


def _written_by(path: Path, marker: str) -> bool:
    """Whether ``path`` is an HDF5 (or NWB) file whose ``generator`` attribute, or NWB experiment description,
    names ``marker``."""
    import h5py

    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            if str(f.attrs.get("generator", "")) == marker:
                return True
            described = f.get("general/experiment_description")
            text = described[()] if described is not None else b""
            return marker in (text.decode() if isinstance(text, bytes) else str(text))
    except OSError:
        return False


def write_from_command(parser: argparse.ArgumentParser, out: Path, overwrite: bool, marker: str,
                       write: Callable[[], Path]) -> int:
    """Run ``write`` for a generator's command line and print the file written; returns 0.

    ``out`` may replace a file that this generator wrote (its ``generator`` attribute or NWB description names
    ``marker``), so a command can be run again; any other existing file needs ``overwrite``. A folder, a
    protected path or a bad setting (``ValueError``) ends the command with one line and exit status 2.
    """
    from lfads.data.atomic import check_output_path
    from lfads.errors import LFADSError

    try:
        check_output_path(out, overwrite=overwrite or _written_by(Path(out), marker), what="data file",
                          make_parents=True)
        path = write()
    except (ValueError, LFADSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"wrote {path}")
    return 0
