"""Builders of small NWB files for the NWB tests (written with pynwb, read back by the code under test)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

REAL_NWB = Path(__file__).resolve().parents[1] / "datasets" / "mc_maze_small" / \
    "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
"""The official NLB MC_Maze_Small test NWB file shipped with the repository."""


def write_nwb(
    path: Path,
    spike_times: Sequence[Sequence[float]] | None,
    trials: Mapping[str, Sequence] | None,
    unit_columns: Mapping[str, Sequence] | None = None,
    obs_intervals: Sequence[Sequence[Sequence[float]]] | None = None,
    behavior: Mapping[str, object] | None = None,
) -> Path:
    """Write an NWB file from plain Python data.

    Parameters
    ----------
    path : Path
        Output file.
    spike_times : list of list of float, optional
        One list of spike times (s) per unit, written as given (unsorted or NaN allowed); ``None``: no Units.
    trials : mapping, optional
        Column name -> one value per trial; must hold ``start_time`` and ``stop_time``; ``None``: no trials.
    unit_columns : mapping, optional
        Extra Units columns (e.g. ``{"heldout": [False, True]}``).
    obs_intervals : list, optional
        Per unit, a list of ``[start, stop]`` intervals.
    behavior : mapping, optional
        ``{"name": ..., "data": (time, B), "timestamps": ...}`` or with ``"rate"`` and ``"starting_time"``;
        written as a TimeSeries in the processing module ``behavior``.
    """
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.testing.mock.file import mock_NWBFile

    nwbfile = mock_NWBFile()
    if spike_times is not None:
        for name in unit_columns or {}:
            nwbfile.add_unit_column(name=name, description=f"test column {name}")
        for u, times in enumerate(spike_times):
            kwargs = {name: values[u] for name, values in (unit_columns or {}).items()}
            if obs_intervals is not None:
                kwargs["obs_intervals"] = obs_intervals[u]
            nwbfile.add_unit(spike_times=list(times), **kwargs)
    if trials is not None:
        extra = [name for name in trials if name not in ("start_time", "stop_time")]
        for name in extra:
            nwbfile.add_trial_column(name=name, description=f"test column {name}")
        for j in range(len(trials["start_time"])):
            nwbfile.add_trial(**{name: values[j] for name, values in trials.items()})
    if behavior is not None:
        module = nwbfile.create_processing_module("behavior", "test behaviour")
        kwargs = {key: behavior[key] for key in ("timestamps", "rate", "starting_time") if key in behavior}
        module.add(TimeSeries(name=str(behavior["name"]), data=np.asarray(behavior["data"]), unit="m/s", **kwargs))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def count_by_loop(times: np.ndarray, window_start: float, n_bins: int, bin_size: float) -> np.ndarray:
    """Reference counts of one unit in one window: a plain loop over bins with float edges.

    Only valid when no spike lies within float rounding of an edge (random spike times).
    """
    counts = np.zeros(n_bins)
    for k in range(n_bins):
        lo = window_start + k * bin_size
        hi = window_start + (k + 1) * bin_size
        counts[k] = np.sum((times >= lo) & (times < hi))
    return counts
