r"""Write LFADS outputs (rates, factors, ...) back into a copy of the source NWB file.

For output trial :math:`i` with event time :math:`a_i`, window start :math:`w_0` and bin width
:math:`\Delta`, bin :math:`k` is stamped with its centre on the session clock,

.. math::

    \tau_{i,k} = a_i + w_0 + (k + \tfrac12)\Delta,

so a model sample lines up with the spikes it was fitted to (bins are ``[a_i + w_0 + k\Delta,
a_i + w_0 + (k+1)\Delta)``, as in :mod:`lfads.data.nwb`).

Layout of the written file: the source file is exported unchanged (pynwb writes it with the current NWB
schema) plus, in the processing module ``module_name`` (default ``"misc"``, one of the module names the NWB
best practices accept):

- ``{prefix}trials``: a TimeIntervals table with one row per output trial: ``start_time`` and
  ``stop_time`` (the window on the session clock), ``trial`` (a reference to the row of
  ``/intervals/trials``) and ``align_time`` (s). Rows are ordered by ``align_time`` (ties by trial row).
- ``{prefix}{name}`` for each output: a TimeSeries ``(trials * T, dim)``; rows ``i*T`` to ``(i+1)*T - 1``
  belong to row ``i`` of ``{prefix}trials``. Timestamps are the bin centres :math:`\tau_{i,k}`; when they
  are evenly spaced over the whole series (abutting windows) they are stored as ``starting_time`` and
  ``rate`` instead, as the NWB best practices ask.

:func:`load_nwb_outputs` reads the arrays back as ``(trials, T, dim)``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lfads.data.atomic import atomic_output
from lfads.data.nwb import check_nwb_file
from lfads.errors import LFADSDataError

__all__ = ["load_nwb_outputs", "write_nwb_outputs"]

_NS_PER_S = 1_000_000_000
_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")


def _bin_centres_ns(align_times: np.ndarray, window_start: float, bin_size: float, n_bins: int) -> np.ndarray:
    """``(trials, n_bins)`` int64 bin centres in ns (integer arithmetic, as in the binning)."""
    bin_ns = int(round(bin_size * _NS_PER_S))
    first = np.rint(align_times * _NS_PER_S).astype(np.int64) + int(round(window_start * _NS_PER_S))
    return first[:, None] + bin_ns * np.arange(n_bins, dtype=np.int64)[None, :] + bin_ns // 2


def _check_inputs(
    outputs: Mapping[str, np.ndarray],
    trial_ids: np.ndarray,
    align_times: np.ndarray,
    bin_size: float,
    window_start: float,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, int]:
    if not outputs:
        raise LFADSDataError("write_nwb_outputs: 'outputs' is empty; pass e.g. {'rates': (trials, time, neurons)}.")
    arrays = {}
    shape = None
    for name, value in outputs.items():
        if not _NAME.match(name):
            raise LFADSDataError(f"write_nwb_outputs: output name '{name}' may only hold letters, digits, '_', '-', "
                                 f"'.'.")
        value = np.asarray(value)
        if value.ndim != 3 or min(value.shape) == 0:
            raise LFADSDataError(f"write_nwb_outputs: output '{name}' has shape {value.shape}; expected a non-empty "
                                 f"(trials, time, dim) array.")
        if shape is not None and value.shape[:2] != shape:
            raise LFADSDataError(f"write_nwb_outputs: output '{name}' has (trials, time) = {value.shape[:2]} but the "
                                 f"others have {shape}; all outputs must cover the same trials and bins.")
        if not np.all(np.isfinite(value)):
            raise LFADSDataError(f"write_nwb_outputs: output '{name}' holds NaN or Inf.")
        shape = value.shape[:2]
        arrays[name] = value
    n_trials, n_bins = shape
    trial_ids = np.asarray(trial_ids)
    align_times = np.asarray(align_times, dtype=np.float64)
    if trial_ids.shape != (n_trials,) or not np.issubdtype(trial_ids.dtype, np.integer):
        raise LFADSDataError(f"write_nwb_outputs: trial_ids must be {n_trials} integers (one per output trial), got "
                             f"dtype {trial_ids.dtype}, shape {trial_ids.shape}.")
    if align_times.shape != (n_trials,) or not np.all(np.isfinite(align_times)):
        raise LFADSDataError(f"write_nwb_outputs: align_times must be {n_trials} finite times (s), got shape "
                             f"{align_times.shape}.")
    if not (np.isfinite(bin_size) and bin_size > 0) or not np.isfinite(window_start):
        raise LFADSDataError(f"write_nwb_outputs: bin_size={bin_size} must be positive and window_start="
                             f"{window_start} finite (both in s).")
    return arrays, trial_ids.astype(np.int64), align_times, n_bins


def write_nwb_outputs(
    source_nwb: str | os.PathLike,
    out_path: str | os.PathLike,
    outputs: Mapping[str, np.ndarray],
    trial_ids: np.ndarray,
    align_times: np.ndarray,
    bin_size: float,
    window_start: float,
    module_name: str = "misc",
    prefix: str = "lfads_",
    units: Mapping[str, str] | None = None,
    description: str = "LFADS model outputs",
) -> Path:
    r"""Copy ``source_nwb`` to ``out_path`` adding per-trial model outputs as TimeSeries (see module docstring).

    Parameters
    ----------
    source_nwb : str or PathLike
        The NWB file the data were binned from; only read.
    out_path : str or PathLike
        The new NWB file; written to a temporary file in the same folder and renamed onto ``out_path``.
    outputs : mapping of str to np.ndarray
        Name (``"rates"``, ``"factors"``, ``"gen_inputs"``, ``"gen_states"``, ...) -> ``(trials, T, dim)``.
    trial_ids : np.ndarray
        ``(trials,)`` row indices in the source's trials table (``{split}_trial_ids`` of
        :func:`lfads.data.nwb.bin_nwb`).
    align_times : np.ndarray
        ``(trials,)`` event times :math:`a_i` in s, session clock (``{split}_align_times``).
    bin_size : float
        Bin width :math:`\Delta` in s.
    window_start : float
        Window start :math:`w_0` in s relative to the event (negative before it).
    module_name : str
        Processing module to add the outputs to (created if absent).
    prefix : str
        Prefix of the names of the added objects.
    units : mapping of str to str, optional
        Physical unit per output name (e.g. ``{"rates": "spikes/s"}``); ``"a.u."`` where not given.
    description : str
        Start of each added object's description.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    LFADSDataError
        Bad shapes, NaN/Inf, trial ids outside the trials table, an existing object with the same name, a
        source that is not NWB, or ``out_path`` equal to the source.
    """
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import DynamicTableRegion
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.epoch import TimeIntervals

    source = Path(source_nwb)
    out = Path(out_path)
    check_nwb_file(source)
    if out.exists() and out.resolve() == source.resolve():
        raise LFADSDataError(f"{out}: the output path is the source NWB file; the source is never modified. Choose "
                             f"another path.")
    arrays, trial_ids, align_times, n_bins = _check_inputs(outputs, trial_ids, align_times, bin_size, window_start)
    order = np.lexsort((trial_ids, align_times))
    trial_ids, align_times = trial_ids[order], align_times[order]
    centres_ns = _bin_centres_ns(align_times, window_start, bin_size, n_bins)
    if np.any(np.diff(centres_ns.ravel()) <= 0):
        warnings.warn(f"{out}: some trial windows overlap, so the timestamps of the output TimeSeries are not "
                      f"increasing across trials; use the '{prefix}trials' table to split them.", UserWarning,
                      stacklevel=2)
    units = dict(units or {})
    half_ns = int(round(bin_size * _NS_PER_S)) // 2

    with atomic_output(out, suffix=".tmp.nwb") as tmp:
        with NWBHDF5IO(str(source), "r") as read_io:
            nwbfile = read_io.read()
            trials = nwbfile.trials
            if trials is None:
                raise LFADSDataError(f"{source}: no trials table (/intervals/trials) for trial_ids to refer to.")
            if trial_ids.min() < 0 or trial_ids.max() >= len(trials):
                raise LFADSDataError(f"{source}: trial_ids range from {trial_ids.min()} to {trial_ids.max()} but the "
                                     f"trials table has {len(trials)} rows.")
            if module_name in nwbfile.processing:
                module = nwbfile.processing[module_name]
            else:
                module = nwbfile.create_processing_module(module_name, f"{description}.")
            names = [f"{prefix}trials"] + [f"{prefix}{name}" for name in arrays]
            taken = [name for name in names if name in module.data_interfaces]
            if taken:
                raise LFADSDataError(f"{source}: processing module '{module_name}' already holds {taken}; pass another "
                                     f"prefix.")

            table = TimeIntervals(name=f"{prefix}trials",
                                  description=f"{description}: one row per output trial; the window on the session "
                                              f"clock and the row of /intervals/trials it came from.")
            table.add_column(name="trial", description="row of /intervals/trials", table=trials,
                             col_cls=DynamicTableRegion)
            table.add_column(name="align_time", description="event time the window is aligned to (s)")
            starts = (centres_ns[:, 0] - half_ns) / _NS_PER_S
            stops = (centres_ns[:, -1] + half_ns) / _NS_PER_S
            for i in range(trial_ids.size):
                table.add_interval(start_time=float(starts[i]), stop_time=float(stops[i]), trial=int(trial_ids[i]),
                                   align_time=float(align_times[i]))
            module.add(table)

            stamps = centres_ns.ravel()
            regular = stamps.size > 1 and np.all(np.diff(stamps) == 2 * half_ns) and 2 * half_ns == int(
                round(bin_size * _NS_PER_S))
            for name, value in arrays.items():
                data = value[order].reshape(-1, value.shape[2]).astype(np.float32)
                timing: dict[str, Any] = (
                    {"starting_time": stamps[0] / _NS_PER_S, "rate": 1.0 / bin_size} if regular
                    else {"timestamps": stamps / _NS_PER_S})
                module.add(TimeSeries(
                    name=f"{prefix}{name}", data=H5DataIO(data, compression="gzip"), unit=units.get(name, "a.u."),
                    description=(f"{description}: '{name}', {value.shape[2]} dims, {n_bins} bins of {bin_size:g} s "
                                 f"per trial; rows i*{n_bins}..(i+1)*{n_bins}-1 belong to row i of "
                                 f"'{prefix}trials'; times are bin centres."),
                    **timing))
            with NWBHDF5IO(tmp, "w") as write_io:
                write_io.export(src_io=read_io, nwbfile=nwbfile)
    return out


def load_nwb_outputs(
    path: str | os.PathLike,
    module_name: str = "misc",
    prefix: str = "lfads_",
) -> dict[str, np.ndarray]:
    """Read outputs written by :func:`write_nwb_outputs` back as arrays.

    Returns
    -------
    dict of str to np.ndarray
        Each output name -> ``(trials, T, dim)``; ``trial_ids`` ``(trials,)`` (rows of /intervals/trials),
        ``align_times`` ``(trials,)`` s and ``bin_centres`` ``(trials, T)`` s, in the stored order (by
        ``align_time``).
    """
    from pynwb import NWBHDF5IO, TimeSeries

    path = Path(path)
    check_nwb_file(path)
    with NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        if module_name not in nwbfile.processing:
            raise LFADSDataError(f"{path}: no processing module '{module_name}' (modules: {list(nwbfile.processing)}).")
        module = nwbfile.processing[module_name]
        if f"{prefix}trials" not in module.data_interfaces:
            raise LFADSDataError(f"{path}: processing module '{module_name}' has no '{prefix}trials' table.")
        table = module[f"{prefix}trials"]
        result: dict[str, np.ndarray] = {
            "trial_ids": np.asarray(table["trial"].data[:], dtype=np.int64),
            "align_times": np.asarray(table["align_time"].data[:], dtype=np.float64),
        }
        n_trials = result["trial_ids"].size
        for key, obj in module.data_interfaces.items():
            if isinstance(obj, TimeSeries) and key.startswith(prefix):
                data = np.asarray(obj.data[:])
                n_bins = data.shape[0] // n_trials
                result[key[len(prefix):]] = data.reshape(n_trials, n_bins, -1)
                if "bin_centres" not in result:
                    result["bin_centres"] = np.asarray(obj.get_timestamps(), dtype=np.float64).reshape(n_trials, n_bins)
    return result
