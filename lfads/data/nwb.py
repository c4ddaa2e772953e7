r"""Read spike-sorted units and trials from an NWB file and bin them into the LFADS layout.

For trial :math:`j` with event time :math:`a_j` (a column of the trials table), window
:math:`[w_0, w_1)` (ms, relative to the event), bin width :math:`\Delta` and :math:`F` forward bins, the
count of unit :math:`u` in bin :math:`k` is

.. math::

    y_{j,k,u} = \#\{\, s \in S_u : e_{j,k} \le s < e_{j,k+1} \,\}, \qquad
    e_{j,k} = a_j + w_0 + k \Delta, \quad k = 0, \dots, T + F,

with :math:`T = (w_1 - w_0) / \Delta` bins inside the window and :math:`S_u` the spike times of unit
:math:`u`.

Bin convention
--------------
Bins are half-open, ``[start, end)``: a spike exactly on an edge counts in the bin that *starts* there;
a spike exactly at the end of the last bin is not counted. All times (spike times, event times, window
offsets, bin width) are rounded to integer nanoseconds before binning, and every edge is an exact integer
multiple of the bin width from the window start, so edges never drift with the trial's position in the
session and a spike written as ``0.805`` lands on the edge ``1.05 - 0.245`` exactly. Consequently the bin
width and the window offsets must be whole numbers of nanoseconds, and the window length must be a whole
number of bins (otherwise :class:`~lfads.errors.LFADSDataError`).

What is checked, and what happens
---------------------------------
Errors (:class:`~lfads.errors.LFADSDataError`, naming the file and the field):

- the file is missing, is not HDF5, or is HDF5 without the NWB root attribute ``nwb_version``;
- no Units table (``/units``) or no ``spike_times`` column; no trials table (``/intervals/trials``);
- an unknown column name (``align_event``, ``heldout_column``, ``split_column``, ``condition_columns``);
  the message lists the available columns;
- NaN/Inf spike times, or spike times of a unit not sorted in increasing order (the unit id is named);
- a window that is not a whole number of bins, a bin width that is not a whole number of nanoseconds;
- unknown split labels; no trials left, or an empty ``train`` or ``valid`` split after dropping;
- a behaviour TimeSeries that is missing, ambiguous (several with that name) or has unsorted timestamps.

Counted drops (one :class:`NWBDropWarning` per reason, giving the count):

- units with no spikes at all in the file are left out (their ids are listed in the warning);
- trials whose event time is NaN;
- trials whose split label is ``"none"`` (as in NLB files);
- trials whose window (including forward bins) does not lie inside the recording, taken as
  ``[min(0, first trial start, first spike), max(last trial stop, last spike)]``;
- with ``unobserved="drop_trials"`` (the default): trials whose window is not inside an ``obs_intervals``
  interval of *every* unit (when the Units table has ``obs_intervals``); a unit with an empty
  ``obs_intervals`` therefore removes every trial, which ends in the "no trials left" error naming the unit;
- with ``unobserved="mask"``: only trials in which no unit is observed in any bin (see below);
- with ``behavior`` set: trials whose window is not covered by the behaviour TimeSeries, or that have a bin
  whose samples are all NaN.

Pipeline
--------
:func:`bin_nwb` runs small steps, each testable alone: ``_bin_grid`` (options -> integer-ns :class:`BinGrid`)
-> ``_read_tables`` (file -> validated :class:`SessionTables`) -> ``_unit_order`` (drops units without spikes,
held-in then held-out) -> ``_trial_windows`` -> ``_observed_bins`` (``unobserved="mask"`` only) ->
``_kept_trials``, which applies :data:`TRIAL_DROP_RULES` in order (each rule returns a :class:`Drop`: a mask
and the reason for the warning) -> ``_assign_splits`` -> ``_count_spikes`` -> ``_pack``.

Unobserved bins (``unobserved="mask"``)
---------------------------------------
Unit :math:`u` is observed in bin :math:`k` of trial :math:`j` when the bin lies inside one of its
``obs_intervals`` (closed intervals, overlapping or touching ones merged):

.. math::

    m_{j,k,u} = \mathbb 1\big[\exists\, [o_0, o_1] \in O_u : o_0 \le e_{j,k} \text{ and } e_{j,k+1} \le o_1\big],

so a bin that only partly overlaps an interval is unobserved. Counts of unobserved bins are set to 0 and
the mask is returned as ``{split}_recon_mask`` ``(n, T + F, N_in + N_out)`` and ``{split}_encod_mask``
``(n, T, N_in)`` (bool, True = observed), only when some kept bin is unobserved; otherwise the output is
the same as with ``"drop_trials"``.

Behaviour (``{split}_behavior``, ``(n, T, B)`` over the ``T`` window bins, not the forward bins): a bin
holding one or more samples (``start <= t < end``) gets the mean of its finite samples; a bin holding no
sample (the series is sampled more coarsely than the bins) gets the linear interpolation of the finite
samples at the bin centre.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import h5py
import numpy as np

from lfads.data.hdf5 import open_hdf5
from lfads.data.nwb_options import UNOBSERVED_CHOICES, NWBBinning, NWBBinningError, check_choice
from lfads.errors import LFADSDataError

__all__ = [
    "NWBBinning",
    "NWBBinningError",
    "NWBDropWarning",
    "bin_nwb",
    "bin_spike_times",
    "check_nwb_file",
    "convert_nwb_to_lfads",
    "load_nwb_session",
]

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "valid",
    "valid": "valid",
    "validation": "valid",
    "test": "test",
    "testing": "test",
}
_SPLIT_DROP = {"none", ""}


class NWBDropWarning(UserWarning):
    """Units or trials were left out while binning an NWB file (the message gives the count and reason)."""


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------------


def _to_ns(seconds: np.ndarray | float) -> np.ndarray:
    """Seconds (float) -> integer nanoseconds, rounded to nearest."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * _NS_PER_S).astype(np.int64)


def _ms_to_ns(value: float, path: Path, name: str) -> int:
    ns = float(value) * _NS_PER_MS
    if not np.isfinite(ns) or abs(ns - round(ns)) > 1e-3:
        raise LFADSDataError(f"{path}: binning option {name}={value} ms is not a whole number of nanoseconds; "
                             f"round it to at most 6 decimals.")
    return int(round(ns))


def _decode(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _column_values(table: Any, name: str) -> Any:
    """All values of a (possibly ragged) column: an array for plain columns, a list for ragged ones."""
    return table[name][:]


def _check_column(table: Any, name: str, path: Path, where: str, option: str) -> None:
    available = list(table.colnames)
    if name not in available:
        raise LFADSDataError(
            f"{path}: the {where} has no column '{name}' (binning option {option}). Available columns: "
            f"{available}. Pass one of these, or change the option.")


def _segments(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the index ranges ``[lo[i], hi[i])``; return (indices, owner i of each index)."""
    lengths = hi - lo
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(lo)), lengths)
    starts = np.cumsum(lengths) - lengths
    indices = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lengths)
    return indices, owner


def bin_spike_times(
    spike_times_ns: np.ndarray,
    window_starts_ns: np.ndarray,
    n_bins: int,
    bin_ns: int,
) -> np.ndarray:
    r"""Count one unit's spikes in consecutive half-open bins after each window start.

    .. math::

        c_{j,k} = \#\{ s : w_j + k\Delta \le s < w_j + (k+1)\Delta \}

    Parameters
    ----------
    spike_times_ns : np.ndarray
        ``(spikes,)`` int64 sorted spike times in ns.
    window_starts_ns : np.ndarray
        ``(trials,)`` int64 window starts :math:`w_j` in ns (windows may overlap).
    n_bins : int
        Bins per window.
    bin_ns : int
        Bin width :math:`\Delta` in ns.

    Returns
    -------
    np.ndarray
        ``(trials, n_bins)`` int64 counts.
    """
    n_trials = len(window_starts_ns)
    lo = np.searchsorted(spike_times_ns, window_starts_ns, side="left")
    hi = np.searchsorted(spike_times_ns, window_starts_ns + n_bins * bin_ns, side="left")
    idx, trial = _segments(lo, hi)
    if idx.size == 0:
        return np.zeros((n_trials, n_bins), dtype=np.int64)
    k = (spike_times_ns[idx] - window_starts_ns[trial]) // bin_ns
    return np.bincount(trial * n_bins + k, minlength=n_trials * n_bins).reshape(n_trials, n_bins)


def _windows_inside_intervals(intervals: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(trials,)`` mask: window ``[starts[j], ends[j])`` lies inside one of the closed ``(m, 2)`` intervals.

    Overlapping or touching intervals are merged first, so a window spanning two abutting intervals counts
    as inside.
    """
    if len(intervals) == 0:
        return np.zeros(len(starts), dtype=bool)
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    run_hi = np.maximum.accumulate(intervals[:, 1])
    new_group = np.ones(len(intervals), dtype=bool)
    new_group[1:] = intervals[1:, 0] > run_hi[:-1]
    group_lo = intervals[new_group, 0]
    group_hi = run_hi[np.r_[np.flatnonzero(new_group)[1:] - 1, len(intervals) - 1]]
    j = np.searchsorted(group_lo, starts, side="right") - 1
    return (j >= 0) & (group_hi[np.clip(j, 0, None)] >= ends)


def _warn_drop(count: int, total: int, what: str, path: Path, reason: str) -> None:
    """Warn that ``count`` of ``total`` units or trials were dropped, pointing at the caller of :func:`bin_nwb`."""
    if count:
        warnings.warn(f"{path}: dropped {count} of {total} {what}: {reason}", NWBDropWarning, stacklevel=4)


# ---------------------------------------------------------------------------------------------------------------------
# File access
# ---------------------------------------------------------------------------------------------------------------------


def check_nwb_file(path: str | os.PathLike) -> None:
    """Raise :class:`LFADSDataError` unless ``path`` is an existing HDF5 file with the NWB root attribute."""
    path = Path(path)
    if not path.exists():
        raise LFADSDataError(f"{path}: file not found. Check the path (relative paths are taken from {Path.cwd()}).")
    if not path.is_file():
        raise LFADSDataError(f"{path}: is a folder, not an NWB file.")
    if not h5py.is_hdf5(path):
        raise LFADSDataError(f"{path}: not an HDF5 file, so not an NWB file (NWB 2 files are HDF5). Give the path "
                             f"of a .nwb file.")
    with open_hdf5(path) as f:
        if "nwb_version" not in f.attrs:
            raise LFADSDataError(f"{path}: an HDF5 file but not an NWB file (no root attribute 'nwb_version'). "
                                 f"For files in the LFADS layout use lfads.data.hdf5.load_lfads_h5.")


def _read_units(nwbfile: Any, path: Path) -> dict[str, Any]:
    """Flat spike times, per-unit bounds, ids, and obs_intervals of the Units table (validated)."""
    units = nwbfile.units
    if units is None:
        raise LFADSDataError(f"{path}: no Units table (/units). Spike-sorted units with spike_times are needed; "
                             f"add them with nwbfile.add_unit(spike_times=...).")
    if "spike_times" not in units.colnames:
        raise LFADSDataError(f"{path}: the Units table has no 'spike_times' column (columns: {list(units.colnames)}).")
    column = units["spike_times"]
    if hasattr(column, "target"):  # ragged: VectorIndex over a flat VectorData
        flat = np.asarray(column.target.data[:], dtype=np.float64)
        ends = np.asarray(column.data[:], dtype=np.int64)
    else:
        raise LFADSDataError(f"{path}: Units column 'spike_times' is not a ragged column with an index "
                             f"('spike_times_index'); the file does not follow the NWB schema.")
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    ids = np.asarray(units.id.data[:], dtype=np.int64)

    bad = ~np.isfinite(flat)
    if bad.any():
        positions = np.flatnonzero(bad)
        unit_rows = np.unique(np.searchsorted(ends, positions, side="right"))
        raise LFADSDataError(
            f"{path}: Units 'spike_times' holds {positions.size} NaN/Inf value(s) in unit id(s) "
            f"{ids[unit_rows].tolist()}. Remove them from the file before binning.")
    decreasing = np.flatnonzero(np.diff(flat) < 0) + 1  # position of the later, smaller spike
    if decreasing.size:
        # a decrease exactly at the start of a unit is a unit boundary, not a problem
        inside = decreasing[~np.isin(decreasing, starts)]
        if inside.size:
            unit_rows = np.unique(np.searchsorted(ends, inside, side="right"))
            raise LFADSDataError(
                f"{path}: Units 'spike_times' of unit id(s) {ids[unit_rows].tolist()} are not sorted in increasing "
                f"order. Sort each unit's spike times (np.sort) when writing the file.")

    obs = None
    if "obs_intervals" in units.colnames:
        obs_column = units["obs_intervals"]
        obs_flat = np.asarray(obs_column.target.data[:], dtype=np.float64).reshape(-1, 2)
        obs_ends = np.asarray(obs_column.data[:], dtype=np.int64)
        obs = (obs_flat, np.concatenate([[0], obs_ends[:-1]]).astype(np.int64), obs_ends)
    return {"flat": flat, "starts": starts, "ends": ends, "ids": ids, "obs": obs, "table": units}


def _find_timeseries(nwbfile: Any, name: str, path: Path) -> Any:
    from pynwb import TimeSeries

    found = [obj for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries) and obj.name == name]
    if not found:
        names = sorted({obj.name for obj in nwbfile.objects.values() if isinstance(obj, TimeSeries)})
        raise LFADSDataError(f"{path}: no TimeSeries named '{name}' (binning option behavior) in acquisition or the "
                             f"processing modules. TimeSeries in the file: {names}.")
    if len(found) > 1:
        where = [getattr(obj.parent, "name", "?") for obj in found]
        raise LFADSDataError(f"{path}: {len(found)} TimeSeries are named '{name}' (in {where}); the behavior option "
                             f"must pick one. Rename one of them.")
    return found[0]


# ---------------------------------------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------------------------------------


def _read_behavior(nwbfile: Any, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    series = _find_timeseries(nwbfile, name, path)
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    data = data.reshape(data.shape[0], -1)
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
    else:
        start = float(series.starting_time or 0.0)
        times = start + np.arange(data.shape[0]) / float(series.rate)
    if times.shape[0] != data.shape[0]:
        raise LFADSDataError(f"{path}: TimeSeries '{name}' has {data.shape[0]} samples but {times.shape[0]} "
                             f"timestamps.")
    if times.size < 2 or not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise LFADSDataError(f"{path}: TimeSeries '{name}' needs at least 2 samples with finite, strictly increasing "
                             f"timestamps.")
    return _to_ns(times), data


def _bin_behavior(
    times_ns: np.ndarray, data: np.ndarray, window_starts_ns: np.ndarray, n_bins: int, bin_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bin a sampled signal per trial; return ``(trials, n_bins, B)`` values and a ``(trials,)`` ok mask."""
    edges = window_starts_ns[:, None] + bin_ns * np.arange(n_bins + 1, dtype=np.int64)[None, :]
    step = int(np.median(np.diff(times_ns)))
    covered = (edges[:, 0] >= times_ns[0]) & (edges[:, -1] <= times_ns[-1] + step)

    finite = np.isfinite(data)
    cum_sum = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(np.where(finite, data, 0.0), axis=0)])
    cum_n = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(finite, axis=0)])
    idx = np.searchsorted(times_ns, edges, side="left")  # (trials, n_bins + 1)
    n_samples = idx[:, 1:] - idx[:, :-1]  # (trials, n_bins)
    sums = cum_sum[idx[:, 1:]] - cum_sum[idx[:, :-1]]  # (trials, n_bins, B)
    counts = cum_n[idx[:, 1:]] - cum_n[idx[:, :-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = sums / counts
    all_nan = (n_samples[:, :, None] > 0) & (counts == 0)
    ok = covered & ~all_nan.any(axis=(1, 2))

    empty = n_samples == 0
    if empty.any():
        centres = (edges[:, :-1] + bin_ns // 2).astype(np.float64)
        for b in range(data.shape[1]):
            keep = finite[:, b]
            interp = np.interp(centres[empty], times_ns[keep].astype(np.float64), data[keep, b])
            values[:, :, b][empty] = interp
    values[~ok] = 0.0
    return values, ok


# ---------------------------------------------------------------------------------------------------------------------
# Step 1: options -> bin grid
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinGrid:
    """The bins of every trial, in integer ns: window start relative to the event, bin width, bin counts."""

    start_ns: int
    bin_ns: int
    n_bins: int
    n_forward: int

    @property
    def total_bins(self) -> int:
        """Window bins plus forward bins, :math:`T + F`."""
        return self.n_bins + self.n_forward


def _bin_grid(binning: NWBBinning, path: Path) -> BinGrid:
    """Check the numeric options and turn the window and bin width into integer nanoseconds."""
    bin_ns = _ms_to_ns(binning.bin_ms, path, "bin_ms")
    if bin_ns <= 0:
        raise LFADSDataError(f"{path}: bin_ms={binning.bin_ms} must be positive.")
    if len(binning.window_ms) != 2:
        raise LFADSDataError(f"{path}: window_ms={binning.window_ms} must be (start, end) in ms.")
    w0 = _ms_to_ns(binning.window_ms[0], path, "window_ms[0]")
    w1 = _ms_to_ns(binning.window_ms[1], path, "window_ms[1]")
    if w1 <= w0:
        raise LFADSDataError(f"{path}: window_ms={tuple(binning.window_ms)} must have end > start.")
    if (w1 - w0) % bin_ns:
        raise LFADSDataError(
            f"{path}: the window {tuple(binning.window_ms)} ms is {(w1 - w0) / _NS_PER_MS:g} ms long, which is "
            f"{(w1 - w0) / bin_ns:g} bins of {binning.bin_ms:g} ms; it must be a whole number of bins. Change "
            f"window_ms or bin_ms.")
    if int(binning.forward_bins) != binning.forward_bins or binning.forward_bins < 0:
        raise LFADSDataError(f"{path}: forward_bins={binning.forward_bins} must be a non-negative integer.")
    for name in ("heldout_fraction", "valid_fraction", "test_fraction"):
        value = getattr(binning, name)
        if not 0.0 <= value < 1.0:
            raise LFADSDataError(f"{path}: {name}={value} must be in [0, 1).")
    check_choice(binning.unobserved, UNOBSERVED_CHOICES, f"{path}: binning option unobserved", LFADSDataError)
    if binning.split_column is None and binning.valid_fraction + binning.test_fraction >= 1.0:
        raise LFADSDataError(f"{path}: valid_fraction + test_fraction = "
                             f"{binning.valid_fraction + binning.test_fraction} leaves no training trials.")
    return BinGrid(start_ns=w0, bin_ns=bin_ns, n_bins=(w1 - w0) // bin_ns, n_forward=int(binning.forward_bins))


# ---------------------------------------------------------------------------------------------------------------------
# Step 2: read the tables
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class SessionTables:
    """What binning needs from an NWB file, validated.

    Attributes
    ----------
    unit_ids : np.ndarray
        ``(units,)`` int64 Units ``id``.
    spike_ns : np.ndarray
        ``(spikes,)`` int64 spike times of all units in ns; unit ``u`` owns ``spike_ns[unit_starts[u]:unit_ends[u]]``
        (sorted).
    unit_starts, unit_ends : np.ndarray
        ``(units,)`` int64 bounds of each unit's spikes in ``spike_ns``.
    heldout : np.ndarray
        ``(units,)`` bool, held-out units.
    align : np.ndarray
        ``(trials,)`` float64 event times (s), NaN where missing.
    trial_start, trial_stop : np.ndarray
        ``(trials,)`` float64 trials-table ``start_time`` and ``stop_time`` (s).
    obs_intervals : list of np.ndarray or None
        Per unit, ``(m, 2)`` int64 observation intervals in ns; ``None`` when the Units table has none.
    split_labels : np.ndarray or None
        ``(trials,)`` object ``"train"``/``"valid"``/``"test"``/``"none"``, or ``None`` for a random split.
    conditions : np.ndarray or None
        ``(trials,)`` int64 condition ids.
    behavior : tuple of np.ndarray or None
        ``(samples,)`` int64 timestamps in ns and ``(samples, B)`` float64 values.
    """

    unit_ids: np.ndarray
    spike_ns: np.ndarray
    unit_starts: np.ndarray
    unit_ends: np.ndarray
    heldout: np.ndarray
    align: np.ndarray
    trial_start: np.ndarray
    trial_stop: np.ndarray
    obs_intervals: list[np.ndarray] | None = None
    split_labels: np.ndarray | None = None
    conditions: np.ndarray | None = None
    behavior: tuple[np.ndarray, np.ndarray] | None = None


def _read_tables(path: Path, binning: NWBBinning, rng_units: np.random.Generator) -> SessionTables:
    """Read and validate the Units table, the trials table and the behaviour TimeSeries of an NWB file."""
    from pynwb import NWBHDF5IO

    try:
        io = NWBHDF5IO(str(path), "r")
        nwbfile = io.read()
    except Exception as err:  # pynwb raises many types for malformed files
        raise LFADSDataError(f"{path}: pynwb cannot read the file as NWB ({type(err).__name__}: {err}).") from err
    try:
        units = _read_units(nwbfile, path)
        trials = nwbfile.trials
        if trials is None:
            raise LFADSDataError(f"{path}: no trials table (/intervals/trials). Trial-aligned binning needs one; add "
                                 f"trials with nwbfile.add_trial(start_time=..., stop_time=...).")
        align = _align_times(trials, binning.align_event, path)
        labels = _split_labels(trials, binning.split_column, path) if binning.split_column is not None else None
        conditions = (_condition_ids(trials, list(binning.condition_columns), path)
                      if binning.condition_columns else None)
        heldout = _choose_heldout(units, binning, path, rng_units)
        trial_start = np.asarray(trials["start_time"].data[:], dtype=np.float64)
        trial_stop = np.asarray(trials["stop_time"].data[:], dtype=np.float64)
        behavior = _read_behavior(nwbfile, binning.behavior, path) if binning.behavior is not None else None
    finally:
        io.close()
    obs = None
    if units["obs"] is not None:
        obs_flat, obs_starts, obs_ends = units["obs"]
        obs_ns = _to_ns(obs_flat)
        obs = [obs_ns[lo:hi] for lo, hi in zip(obs_starts, obs_ends)]
    return SessionTables(unit_ids=units["ids"], spike_ns=_to_ns(units["flat"]), unit_starts=units["starts"],
                         unit_ends=units["ends"], heldout=heldout, align=align, trial_start=trial_start,
                         trial_stop=trial_stop, obs_intervals=obs, split_labels=labels, conditions=conditions,
                         behavior=behavior)


def _align_times(trials: Any, column: str, path: Path) -> np.ndarray:
    """``(trials,)`` float64 event times (s) from the trials column ``column``."""
    _check_column(trials, column, path, "trials table", "align_event")
    try:
        align = np.asarray(_column_values(trials, column), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise LFADSDataError(f"{path}: trials column '{column}' (binning option align_event) must hold one time in "
                             f"seconds per trial ({err}).") from err
    if align.shape != (len(trials),):
        raise LFADSDataError(f"{path}: trials column '{column}' (binning option align_event) must hold one time in "
                             f"seconds per trial; it has shape {align.shape}.")
    return align


def _choose_heldout(units: dict[str, Any], binning: NWBBinning, path: Path, rng: np.random.Generator) -> np.ndarray:
    table = units["table"]
    n_units = len(units["ids"])
    if binning.heldout_column is not None and binning.heldout_column in table.colnames:
        values = np.asarray(_column_values(table, binning.heldout_column))
        if values.shape != (n_units,) or not (values.dtype == np.bool_ or np.isin(values, [0, 1]).all()):
            raise LFADSDataError(f"{path}: Units column '{binning.heldout_column}' (binning option heldout_column) "
                                 f"must hold one boolean per unit; got dtype {values.dtype}, shape {values.shape}.")
        return values.astype(bool)
    if binning.heldout_column is not None and binning.heldout_fraction == 0.0:
        _check_column(table, binning.heldout_column, path, "Units table", "heldout_column")
    heldout = np.zeros(n_units, dtype=bool)
    n_out = int(round(binning.heldout_fraction * n_units))
    heldout[rng.choice(n_units, size=n_out, replace=False)] = True
    return heldout


def _condition_ids(trials: Any, columns: list[str], path: Path) -> np.ndarray:
    codes = []
    for name in columns:
        _check_column(trials, name, path, "trials table", "condition_columns")
        values = _column_values(trials, name)
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            flat = values.reshape(len(values), -1)
            _, inverse = np.unique(flat, axis=0, return_inverse=True)
        else:
            keys = [repr(tuple(_decode(v) for v in np.ravel(np.asarray(item, dtype=object))))
                    if np.ndim(item) else _decode(item) for item in values]
            _, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
        codes.append(np.asarray(inverse).reshape(-1))
    _, ids = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _split_labels(trials: Any, column: str, path: Path) -> np.ndarray:
    _check_column(trials, column, path, "trials table", "split_column")
    raw = [_decode(v).strip().lower() for v in _column_values(trials, column)]
    unknown = sorted({v for v in raw if v not in _SPLIT_ALIASES and v not in _SPLIT_DROP})
    if unknown:
        raise LFADSDataError(
            f"{path}: trials column '{column}' (binning option split_column) holds unknown label(s) {unknown}. "
            f"Known labels: {sorted(_SPLIT_ALIASES)} ('none' drops the trial). Use split_column=None for a random "
            f"split.")
    return np.asarray([_SPLIT_ALIASES.get(v, "none") for v in raw], dtype=object)


# ---------------------------------------------------------------------------------------------------------------------
# Step 3: drop rules (units without spikes; trials, one rule per reason)
# ---------------------------------------------------------------------------------------------------------------------


class Drop(NamedTuple):
    """The outcome of a drop rule.

    Attributes
    ----------
    mask : np.ndarray
        ``(units,)`` or ``(trials,)`` bool, True for what the rule removes.
    reason : str
        Why, for the :class:`NWBDropWarning` (``"dropped {count} of {total} trials: {reason}"``).
    if_none_left : str
        Error message when this rule removes the last trials (``""``: the generic "no trials left" error).
    """

    mask: np.ndarray
    reason: str
    if_none_left: str = ""


@dataclass
class TrialContext:
    """What the trial drop rules look at: the tables and every trial's window (``(trials,)`` int64 ns).

    ``window_end`` includes the forward bins; ``unit_order`` holds the kept units (rows of the Units table) in
    output order; ``behavior_ok`` is ``(trials,)`` bool from :func:`_bin_behavior`, ``None`` without behaviour;
    ``observed`` is the ``(trials, T + F, units)`` bool mask of :func:`_observed_bins` with
    ``unobserved="mask"``, ``None`` otherwise.
    """

    path: Path
    binning: NWBBinning
    tables: SessionTables
    grid: BinGrid
    window_start: np.ndarray
    window_end: np.ndarray
    unit_order: np.ndarray
    behavior_ok: np.ndarray | None = None
    observed: np.ndarray | None = None


def _drop_silent_units(tables: SessionTables) -> Drop:
    """Units with no spike in the file."""
    silent = tables.unit_ends == tables.unit_starts
    return Drop(silent, f"they have no spikes (unit ids {tables.unit_ids[silent].tolist()}).")


def _unit_order(tables: SessionTables, binning: NWBBinning, path: Path) -> tuple[np.ndarray, int]:
    """Rows of the Units table in output order (held-in, then held-out; silent units left out) and the held-in count."""
    silent = _drop_silent_units(tables)
    _warn_drop(int(silent.mask.sum()), len(tables.unit_ids), "units", path, silent.reason)
    heldin, heldout = ~tables.heldout & ~silent.mask, tables.heldout & ~silent.mask
    if not heldin.any():
        raise LFADSDataError(f"{path}: no held-in unit with spikes is left (Units column "
                             f"'{binning.heldout_column}' / heldout_fraction={binning.heldout_fraction}).")
    return np.concatenate([np.flatnonzero(heldin), np.flatnonzero(heldout)]), int(heldin.sum())


def _trial_windows(align: np.ndarray, grid: BinGrid) -> tuple[np.ndarray, np.ndarray]:
    r"""``(trials,)`` int64 window start :math:`a_j + w_0` and end :math:`a_j + w_0 + (T + F)\Delta` in ns.

    A NaN event time gives the window of an event at 0 (such trials are dropped by :func:`_drop_nan_event`).
    """
    finite = np.isfinite(align)
    align_ns = np.where(finite, _to_ns(np.where(finite, align, 0.0)), 0)
    start = align_ns + grid.start_ns
    return start, start + grid.total_bins * grid.bin_ns


def _drop_nan_event(ctx: TrialContext, keep: np.ndarray) -> Drop:
    """Trials whose event time is NaN."""
    return Drop(~np.isfinite(ctx.tables.align), f"their '{ctx.binning.align_event}' is NaN.")


def _drop_split_none(ctx: TrialContext, keep: np.ndarray) -> Drop:
    """Trials labelled ``none`` in the split column."""
    labels = ctx.tables.split_labels
    mask = np.zeros_like(keep) if labels is None else labels == "none"
    return Drop(mask, f"their '{ctx.binning.split_column}' label is 'none'.")


def _drop_outside_recording(ctx: TrialContext, keep: np.ndarray) -> Drop:
    """Trials whose window leaves ``[min(0, first trial start, first spike), max(last trial stop, last spike)]``."""
    tables, spikes = ctx.tables, ctx.tables.spike_ns
    lo = min(0, int(_to_ns(np.nanmin(tables.trial_start))), int(spikes.min()) if spikes.size else 0)
    hi = max(int(_to_ns(np.nanmax(tables.trial_stop))), int(spikes.max()) if spikes.size else 0)
    mask = (ctx.window_start < lo) | (ctx.window_end > hi)
    return Drop(mask, f"their window (incl. {ctx.grid.n_forward} forward bins) extends outside the recording "
                      f"[{lo / _NS_PER_S:g}, {hi / _NS_PER_S:g}] s.")


def _drop_unobserved(ctx: TrialContext, keep: np.ndarray) -> Drop:
    """Kept trials whose window is not inside an ``obs_intervals`` interval of every kept unit.

    With ``unobserved="mask"``: only the trials in which no kept unit is observed in any bin.
    """
    mask = np.zeros_like(keep)
    if ctx.tables.obs_intervals is None:
        return Drop(mask, "")
    if ctx.binning.unobserved == "mask":
        return Drop(~ctx.observed.any(axis=(1, 2)), "no unit's 'obs_intervals' cover any bin of their window.")
    culprits: dict[int, int] = {}
    for u in ctx.unit_order:
        outside = keep & ~_windows_inside_intervals(ctx.tables.obs_intervals[u], ctx.window_start, ctx.window_end)
        if outside.any():
            culprits[int(ctx.tables.unit_ids[u])] = int(outside.sum())
        mask |= outside
    worst = dict(sorted(culprits.items(), key=lambda kv: -kv[1])[:5])
    return Drop(mask, f"their window is not inside the 'obs_intervals' of every unit (unit id: trials outside, "
                      f"worst first: {worst}).",
                if_none_left=f"no trial window lies inside the Units 'obs_intervals' of every unit (unit id: trials "
                             f"outside: {worst}). Shorten the window or forward_bins, or remove those units.")


def _drop_behavior_gaps(ctx: TrialContext, keep: np.ndarray) -> Drop:
    """Trials whose window the behaviour TimeSeries does not cover, or with a bin of only NaN samples."""
    mask = np.zeros_like(keep) if ctx.behavior_ok is None else ~ctx.behavior_ok
    return Drop(mask, f"the TimeSeries '{ctx.binning.behavior}' does not cover their window or has a bin of only "
                      f"NaN.")


TrialDropRule = Callable[[TrialContext, np.ndarray], Drop]
"""A trial drop rule: ``(context, trials kept so far) -> Drop``."""

TRIAL_DROP_RULES: tuple[TrialDropRule, ...] = (
    _drop_nan_event,
    _drop_split_none,
    _drop_outside_recording,
    _drop_unobserved,
    _drop_behavior_gaps,
)
"""The trial drop rules, applied in this order; each warning counts the trials kept until then that it drops."""


def _kept_trials(ctx: TrialContext, rules: Sequence[TrialDropRule] = TRIAL_DROP_RULES) -> np.ndarray:
    """Apply the drop rules in order, one :class:`NWBDropWarning` per rule that drops trials; kept rows, increasing."""
    n_trials = len(ctx.tables.align)
    keep = np.ones(n_trials, dtype=bool)
    for rule in rules:
        drop = rule(ctx, keep)
        dropped = drop.mask & keep
        _warn_drop(int(dropped.sum()), n_trials, "trials", ctx.path, drop.reason)
        keep &= ~drop.mask
        if drop.if_none_left and dropped.any() and not keep.any():
            raise LFADSDataError(f"{ctx.path}: {drop.if_none_left}")
    if not keep.any():
        raise LFADSDataError(f"{ctx.path}: no trials left after the drops reported in the warnings; check align_event "
                             f"'{ctx.binning.align_event}' and window_ms={tuple(ctx.binning.window_ms)}.")
    return np.flatnonzero(keep)


# ---------------------------------------------------------------------------------------------------------------------
# Steps 4-6: splits, counts, output arrays
# ---------------------------------------------------------------------------------------------------------------------


def _assign_splits(
    n_kept: int, labels: np.ndarray | None, binning: NWBBinning, rng: np.random.Generator, path: Path
) -> np.ndarray:
    """``(n_kept,)`` object split name of each kept trial: the labels of the kept trials, or a seeded random split.

    Raises :class:`LFADSDataError` when the ``train`` or ``valid`` split would be empty.
    """
    if labels is not None:
        split_of = labels
    else:
        perm = rng.permutation(n_kept)
        n_valid = int(round(binning.valid_fraction * n_kept))
        n_test = int(round(binning.test_fraction * n_kept))
        split_of = np.full(n_kept, "train", dtype=object)
        split_of[perm[:n_valid]] = "valid"
        split_of[perm[n_valid:n_valid + n_test]] = "test"
    sizes = {name: int((split_of == name).sum()) for name in ("train", "valid", "test")}
    for name in ("train", "valid"):
        if sizes[name] == 0:
            how = (f"trials column '{binning.split_column}' gives split sizes {sizes} for the {n_kept} kept trials; "
                   f"pass split_column=None to split them at random with valid_fraction/test_fraction"
                   if labels is not None else
                   f"{n_kept} kept trials with valid_fraction={binning.valid_fraction}, test_fraction="
                   f"{binning.test_fraction} give split sizes {sizes}; change the fractions")
            raise LFADSDataError(f"{path}: the '{name}' split would be empty: {how}.")
    return split_of


def _observed_bins(
    obs_intervals: list[np.ndarray], unit_order: np.ndarray, window_starts: np.ndarray, grid: BinGrid
) -> np.ndarray:
    r"""``(trials, T + F, units)`` bool :math:`m_{j,k,u}`: bin ``k`` of trial ``j`` lies in an interval of unit ``u``.

    Bin :math:`[e_{j,k}, e_{j,k+1})` is observed when one of the unit's closed, merged ``obs_intervals``
    :math:`[o_0, o_1]` has :math:`o_0 \le e_{j,k}` and :math:`e_{j,k+1} \le o_1` (as for whole windows in
    :func:`_windows_inside_intervals`); ``unit_order`` lists the units' rows in output order.
    """
    bin_starts = (window_starts[:, None] + grid.bin_ns * np.arange(grid.total_bins, dtype=np.int64)).ravel()
    observed = np.empty((window_starts.size, grid.total_bins, unit_order.size), dtype=bool)
    for col, u in enumerate(unit_order):
        inside = _windows_inside_intervals(obs_intervals[u], bin_starts, bin_starts + grid.bin_ns)
        observed[:, :, col] = inside.reshape(window_starts.size, grid.total_bins)
    return observed


def _count_spikes(
    tables: SessionTables, unit_order: np.ndarray, window_starts: np.ndarray, grid: BinGrid
) -> np.ndarray:
    """``(trials, T + F, units)`` float32 counts of the units ``unit_order`` after each window start (ns)."""
    counts = np.empty((window_starts.size, grid.total_bins, unit_order.size), dtype=np.float32)
    for col, u in enumerate(unit_order):
        spikes = tables.spike_ns[tables.unit_starts[u]:tables.unit_ends[u]]
        counts[:, :, col] = bin_spike_times(spikes, window_starts, grid.total_bins, grid.bin_ns)
    return counts


def _pack(
    recon: np.ndarray,
    split_of: np.ndarray,
    kept: np.ndarray,
    tables: SessionTables,
    unit_order: np.ndarray,
    n_in: int,
    grid: BinGrid,
    behavior: np.ndarray | None,
    observed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The arrays :func:`bin_nwb` returns, from the counts ``recon`` ``(kept, T + F, units)`` of the kept trials.

    ``observed`` ``(kept, T + F, units)`` bool, when given, becomes ``{split}_recon_mask`` and its encoder
    block ``{split}_encod_mask``.
    """
    out: dict[str, np.ndarray] = {}
    for name in ("train", "valid", "test"):
        rows = np.flatnonzero(split_of == name)
        if rows.size == 0:
            continue
        trials = kept[rows]
        out[f"{name}_encod_data"] = np.ascontiguousarray(recon[rows, :grid.n_bins, :n_in])
        out[f"{name}_recon_data"] = recon[rows]
        out[f"{name}_trial_ids"] = trials.astype(np.int64)
        out[f"{name}_align_times"] = tables.align[trials]
        if behavior is not None:
            out[f"{name}_behavior"] = behavior[trials].astype(np.float32)
        if tables.conditions is not None:
            out[f"{name}_conditions"] = tables.conditions[trials]
        if observed is not None:
            out[f"{name}_recon_mask"] = observed[rows]
            out[f"{name}_encod_mask"] = np.ascontiguousarray(observed[rows, :grid.n_bins, :n_in])
    out["heldin_unit_ids"] = tables.unit_ids[unit_order[:n_in]]
    out["heldout_unit_ids"] = tables.unit_ids[unit_order[n_in:]]
    out["bin_size"] = np.asarray(grid.bin_ns / _NS_PER_S, dtype=np.float64)
    out["window_start"] = np.asarray(grid.start_ns / _NS_PER_S, dtype=np.float64)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------------


def bin_nwb(path: str | os.PathLike, binning: NWBBinning | None = None) -> dict[str, np.ndarray]:
    r"""Bin the spikes of an NWB file into trial-aligned counts in the LFADS layout.

    Counts follow :math:`y_{j,k,u} = \#\{s \in S_u : e_{j,k} \le s < e_{j,k+1}\}` (see the module
    docstring for the bin convention, the checks and the drop rules).

    Parameters
    ----------
    path : str or PathLike
        NWB file with a Units table (``spike_times``) and a trials table.
    binning : NWBBinning, optional
        Options; defaults to ``NWBBinning()``.

    Returns
    -------
    dict of str to np.ndarray
        For each non-empty split ``s`` in (``train``, ``valid``, ``test``):

        - ``s_encod_data`` ``(n, T, N_in)`` float32 counts of the held-in units over the window;
        - ``s_recon_data`` ``(n, T + F, N_in + N_out)`` float32 counts of held-in then held-out units over the
          window and ``F`` forward bins;
        - ``s_trial_ids`` ``(n,)`` int64 row index in the NWB trials table (increasing);
        - ``s_align_times`` ``(n,)`` float64 event time in s (session clock);
        - ``s_behavior`` ``(n, T, B)`` float32 when ``binning.behavior`` is set;
        - ``s_conditions`` ``(n,)`` int64 when ``binning.condition_columns`` is set;
        - ``s_recon_mask`` ``(n, T + F, N_in + N_out)`` and ``s_encod_mask`` ``(n, T, N_in)`` bool (True =
          observed) with ``binning.unobserved == "mask"`` when some bin of a kept trial is unobserved; the
          counts of unobserved bins are 0.

        Plus ``heldin_unit_ids`` ``(N_in,)`` and ``heldout_unit_ids`` ``(N_out,)`` int64 (Units ``id``, in
        column order), and 0-d float64 ``bin_size`` (s) and ``window_start`` (s relative to the event).

    Raises
    ------
    LFADSDataError
        See the module docstring. Dropped units or trials raise :class:`NWBDropWarning` instead.
    """
    binning = NWBBinning() if binning is None else binning
    path = Path(path)
    grid = _bin_grid(binning, path)
    check_nwb_file(path)
    rng_units, rng_split = map(np.random.default_rng, np.random.SeedSequence(int(binning.seed)).spawn(2))
    tables = _read_tables(path, binning, rng_units)
    unit_order, n_in = _unit_order(tables, binning, path)
    window_start, window_end = _trial_windows(tables.align, grid)
    behavior, behavior_ok = (None, None) if tables.behavior is None else _bin_behavior(
        *tables.behavior, window_start, grid.n_bins, grid.bin_ns)
    observed = None
    if binning.unobserved == "mask" and tables.obs_intervals is not None:
        observed = _observed_bins(tables.obs_intervals, unit_order, window_start, grid)
    kept = _kept_trials(TrialContext(path, binning, tables, grid, window_start, window_end, unit_order, behavior_ok,
                                     observed))
    labels = None if tables.split_labels is None else tables.split_labels[kept]
    split_of = _assign_splits(kept.size, labels, binning, rng_split, path)
    recon = _count_spikes(tables, unit_order, window_start[kept], grid)
    observed = None if observed is None else observed[kept]
    if observed is not None and observed.all():
        observed = None  # every kept bin observed: the same output as dropping trials
    if observed is not None:
        recon[~observed] = 0.0
    return _pack(recon, split_of, kept, tables, unit_order, n_in, grid, behavior, observed)


_SCALAR_KEYS = ("bin_size", "window_start")


def _split_scalars(path: Path, arrays: dict[str, np.ndarray], binning: NWBBinning) -> tuple[dict, dict]:
    arrays = dict(arrays)
    attrs: dict[str, Any] = {key: float(arrays.pop(key)) for key in _SCALAR_KEYS}
    attrs["source_file"] = str(path)
    attrs["nwb_binning"] = json.dumps(asdict(binning))
    attrs["description"] = (f"Spike counts binned from {path.name}: {binning.bin_ms:g} ms bins over "
                            f"{tuple(binning.window_ms)} ms around '{binning.align_event}'.")
    return arrays, attrs


def load_nwb_session(path: str | os.PathLike, binning: NWBBinning | None = None, **options: Any) -> Any:
    """Bin an NWB file (:func:`bin_nwb`) and return it as a validated :class:`lfads.data.batch.SessionData`.

    Parameters
    ----------
    path : str or PathLike
        NWB file.
    binning : NWBBinning, optional
        Base options (default ``NWBBinning()``).
    **options
        Fields of :class:`NWBBinning` overriding ``binning`` (e.g. ``bin_ms=10``, ``split_column=None``).

    Returns
    -------
    SessionData
        Named after the file's stem; ``attrs`` hold ``bin_size`` and ``window_start`` (s), the binning
        options as JSON (``nwb_binning``) and the source path; ``extras`` hold ``heldin_unit_ids`` and
        ``heldout_unit_ids``; each split's extras hold ``trial_ids``, ``align_times`` and, when requested,
        ``behavior`` and ``conditions``. With ``unobserved="mask"`` and unobserved bins, each split's
        ``recon_mask`` and ``encod_mask`` mark the observed bins.
    """
    from lfads.data.hdf5 import build_session

    path = Path(path)
    binning = NWBBinning.from_mapping(options, source=f"load_nwb_session({path}) keyword arguments", base=binning)
    arrays, attrs = _split_scalars(path, bin_nwb(path, binning), binning)
    return build_session(arrays, attrs, path=path)


def convert_nwb_to_lfads(
    nwb_path: str | os.PathLike,
    out_path: str | os.PathLike,
    binning: NWBBinning | None = None,
) -> Path:
    """Bin an NWB file and write the result as an LFADS-layout HDF5 file, atomically.

    The datasets are those of :func:`bin_nwb` except the scalars ``bin_size`` and ``window_start``, which
    become root attributes (s) next to ``source_file``, ``description`` and ``nwb_binning`` (the options as
    JSON). ``heldin_unit_ids`` and ``heldout_unit_ids`` are root datasets.

    Returns
    -------
    Path
        ``out_path``. The NWB file is only read.
    """
    from lfads.data.hdf5 import save_lfads_h5

    binning = NWBBinning() if binning is None else binning
    nwb_path = Path(nwb_path)
    if Path(out_path).resolve() == nwb_path.resolve():
        raise LFADSDataError(f"{out_path}: the output path is the input NWB file; choose another path.")
    arrays, attrs = _split_scalars(nwb_path, bin_nwb(nwb_path, binning), binning)
    return save_lfads_h5(out_path, arrays, attrs)
