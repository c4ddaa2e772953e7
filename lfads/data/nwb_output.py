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

:func:`write_nwb_outputs_for_samples` does this for every NWB-backed session of a data module: the sampled
splits of a session (``results[session][split][name]``) are concatenated and written into one copy of the
session's source NWB file (:func:`find_nwb_source`); :func:`resolve_nwb_output_paths` names and checks the
output files before any is written.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lfads.data.atomic import atomic_output
from lfads.data.nwb import check_nwb_file
from lfads.errors import LFADSDataError

__all__ = [
    "NWB_OUTPUTS",
    "check_output_targets",
    "find_nwb_source",
    "load_nwb_outputs",
    "resolve_nwb_output_paths",
    "write_nwb_outputs",
    "write_nwb_outputs_for_samples",
]

_NS_PER_S = 1_000_000_000
_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")

NWB_OUTPUTS: tuple[str, ...] = ("rates", "factors", "inferred_inputs", "gen_states")
"""Sampled outputs written into NWB files by default (each ``(trials, time, dim)``)."""

_OUTPUT_UNITS = {"rates": "spikes/bin"}


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


# ---------------------------------------------------------------------------------------------------------------------
# Sampled outputs of a data module's sessions -> one NWB copy per source file
# ---------------------------------------------------------------------------------------------------------------------


def check_output_targets(
    owners: Sequence[Path], targets: Sequence[Path], inputs: Sequence[Path], overwrite: bool, option: str
) -> None:
    """Raise unless every target is distinct, is none of ``inputs``, and does not exist (unless ``overwrite``).

    Parameters
    ----------
    owners : sequence of Path
        ``owners[i]`` is the file whose output ``targets[i]`` is (named in the messages).
    targets : sequence of Path
        The files about to be written.
    inputs : sequence of Path
        Files that must never be written to.
    overwrite : bool
        Allow existing targets.
    option : str
        The command-line option choosing the targets, named in the messages (e.g. ``"--out-dir"``).

    Raises
    ------
    LFADSDataError
        Two targets are the same file, a target is an input, or a target exists while ``overwrite`` is False.
    """
    resolved = [t.resolve() for t in targets]
    for i, target in enumerate(resolved):
        if target in resolved[:i]:
            j = resolved.index(target)
            raise LFADSDataError(f"{owners[j]} and {owners[i]} would both be written to {targets[i]}; give the "
                                 f"sessions distinct file names.")
    input_set = {Path(p).resolve() for p in inputs}
    clash = [str(t) for t, r in zip(targets, resolved) if r in input_set]
    if clash:
        raise LFADSDataError(f"{clash}: the output would replace an input file; choose another {option}.")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise LFADSDataError(f"{existing} already exist(s); pass --overwrite to replace, or choose another {option}. "
                             f"Nothing was written.")


def find_nwb_source(session: Any) -> Path | None:
    """The NWB file a session was binned from, or ``None`` for sessions that did not come from NWB.

    A session read from a ``.nwb`` file comes from that file; one read from an LFADS HDF5 file written by
    ``lfads convert`` (root attributes ``source_file`` and ``nwb_binning``) comes from ``source_file``.

    Parameters
    ----------
    session : lfads.data.batch.SessionData
        A session of a data module.
    """
    path = Path(session.path)
    if path.suffix.lower() == ".nwb":
        return path
    attrs = session.attrs or {}
    if "nwb_binning" in attrs and attrs.get("source_file"):
        return Path(str(attrs["source_file"]))
    return None


def resolve_nwb_output_paths(
    datamodule: Any,
    nwb_out: str | os.PathLike,
    overwrite: bool = False,
) -> dict[str, tuple[Path, Path]]:
    """Where :func:`write_nwb_outputs_for_samples` writes each NWB-backed session, checked before any writing.

    ``nwb_out`` itself when the data module has one session, else ``<stem>_<session name>.nwb`` next to it.

    Parameters
    ----------
    datamodule : lfads.data.datamodule.LFADSDataModule
        The data module the samples were drawn from.
    nwb_out : str or PathLike
        Output file name, ending in ``.nwb``.
    overwrite : bool
        Allow replacing existing files.

    Returns
    -------
    dict of str to (Path, Path)
        Session name -> (source NWB, output NWB), for the NWB-backed sessions in data-module order.

    Raises
    ------
    LFADSDataError
        No NWB-backed session; ``nwb_out`` not ending in ``.nwb``; a source file missing; an output that is an
        input file, is shared by two sessions, or exists while ``overwrite`` is False.
    """
    nwb_out = Path(nwb_out)
    if nwb_out.suffix.lower() != ".nwb":
        raise LFADSDataError(f"{nwb_out}: the NWB output file name must end in '.nwb'.")
    sessions = list(datamodule.sessions)
    plan: dict[str, tuple[Path, Path]] = {}
    for session in sessions:
        source = find_nwb_source(session)
        if source is None:
            continue
        if not source.is_file():
            raise LFADSDataError(f"{session.path}: session '{session.name}' was binned from {source}, which is not "
                                 f"found; the outputs are written into a copy of it. Restore the file or sample "
                                 f"with --data pointing at the NWB file.")
        target = nwb_out if len(sessions) == 1 else nwb_out.with_name(f"{nwb_out.stem}_{session.name}{nwb_out.suffix}")
        plan[session.name] = (source, target)
    if not plan:
        raise LFADSDataError(f"none of the sessions {[str(s.path) for s in sessions]} comes from an NWB file, so "
                             f"there is no NWB file to write outputs into; save them with save_samples instead.")
    sources = [source for source, _ in plan.values()]
    check_output_targets(sources, [target for _, target in plan.values()], sources + [Path(s.path) for s in sessions],
                   overwrite, option="--nwb-out")
    return plan


def _session_outputs(
    session: Any, by_split: dict[str, dict[str, np.ndarray]], names: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, float, float]:
    """Concatenate the sampled splits of one session; return outputs, trial ids, align times, bin size, w0."""
    attrs = session.attrs or {}
    missing = [key for key in ("bin_size", "window_start") if attrs.get(key) is None]
    if missing:
        raise LFADSDataError(f"{session.path}: session '{session.name}' has no attribute(s) {missing}; they are set "
                             f"when binning an NWB file (lfads.data.nwb) and are needed to place outputs in time.")
    if not by_split:
        raise LFADSDataError(f"session '{session.name}' has no sampled split; sample it with sample_posteriors first.")
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in names}
    trial_ids, align_times = [], []
    for split, out in by_split.items():
        if split not in session.splits:
            raise LFADSDataError(f"{session.path}: the samples hold split '{split}' but the session has only "
                                 f"{sorted(session.splits)}; were they drawn from another data module?")
        data = session.splits[split]
        for key in ("trial_ids", "align_times"):
            if key not in data.extras:
                raise LFADSDataError(f"{session.path}: split '{split}' has no '{split}_{key}'; NWB binning writes it, "
                                     f"and it is needed to map outputs back to NWB trials.")
        for name in names:
            if name not in out:
                raise LFADSDataError(f"the samples of '{session.name}/{split}' hold no '{name}' (they hold "
                                     f"{sorted(out)}).")
            value = np.asarray(out[name])
            if value.ndim != 3 or value.shape[0] != data.n_trials:
                raise LFADSDataError(f"the samples '{session.name}/{split}/{name}' have shape {value.shape}; expected "
                                     f"({data.n_trials}, time, dim), one row per trial of the split.")
            pieces[name].append(value)
        trial_ids.append(np.asarray(data.extras["trial_ids"], dtype=np.int64))
        align_times.append(np.asarray(data.extras["align_times"], dtype=np.float64))
    outputs = {name: np.concatenate(chunks) for name, chunks in pieces.items()}
    outputs = {name: value for name, value in outputs.items() if value.shape[2] > 0}  # e.g. no inferred inputs
    return (outputs, np.concatenate(trial_ids), np.concatenate(align_times), float(attrs["bin_size"]),
            float(attrs["window_start"]))


def write_nwb_outputs_for_samples(
    results: dict[str, dict[str, dict[str, np.ndarray]]],
    datamodule: Any,
    nwb_out: str | os.PathLike,
    outputs: Sequence[str] = NWB_OUTPUTS,
    overwrite: bool = False,
) -> list[Path]:
    r"""Write posterior-sampled outputs of every NWB-backed session into a copy of its source NWB file.

    For each session, the sampled splits are concatenated and written with
    :func:`lfads.data.nwb_output.write_nwb_outputs`: a ``lfads_trials`` table (one row per trial, referring to
    its row of ``/intervals/trials``) and one TimeSeries ``lfads_<name>`` ``(trials * T, dim)`` per output in
    the processing module ``misc``, bin :math:`k` of trial :math:`i` stamped at
    :math:`a_i + w_0 + (k + \tfrac12)\Delta`. Rates are expected spikes per bin (unit ``spikes/bin``); the
    columns of ``lfads_rates`` are the held-in then the held-out units (ids in the description). Outputs with
    0 dimensions (no inferred inputs) are left out. Sessions not binned from NWB are skipped.

    Parameters
    ----------
    results : dict
        ``results[session_name][split][name]`` arrays ``(trials, time, dim)`` from
        :func:`lfads.sampling.sample_posteriors` (or :func:`lfads.sampling.load_samples`).
    datamodule : lfads.data.datamodule.LFADSDataModule
        The data module the samples were drawn from; its sessions give ``trial_ids``, ``align_times`` (split
        extras) and ``bin_size``, ``window_start`` (attributes).
    nwb_out : str or PathLike
        Output ``.nwb`` file; with several sessions in the data module, ``<stem>_<session name>.nwb``.
    outputs : sequence of str
        Names of the sampled arrays to write.
    overwrite : bool
        Replace existing output files.

    Returns
    -------
    list of Path
        The written files, in data-module order. Source files are only read; each output is written atomically,
        and every check (see :func:`resolve_nwb_output_paths`) runs before the first file is written.
    """
    plan = resolve_nwb_output_paths(datamodule, nwb_out, overwrite=overwrite)
    by_name = {session.name: session for session in datamodule.sessions}
    prepared = []
    for name, (source, target) in plan.items():
        if name not in results:
            raise LFADSDataError(f"the samples hold no session '{name}' (they hold {sorted(results)}); sample every "
                                 f"session of the data module.")
        prepared.append((by_name[name], source, target, _session_outputs(by_name[name], results[name], outputs)))
    written = []
    for session, source, target, (arrays, trial_ids, align_times, bin_size, window_start) in prepared:
        columns = ""
        if "heldin_unit_ids" in session.extras and "heldout_unit_ids" in session.extras:
            heldin = np.asarray(session.extras["heldin_unit_ids"]).tolist()
            heldout = np.asarray(session.extras["heldout_unit_ids"]).tolist()
            columns = f" (rates columns: held-in Units ids {heldin}, then held-out Units ids {heldout})"
        written.append(write_nwb_outputs(
            source, target, arrays, trial_ids, align_times, bin_size, window_start, units=_OUTPUT_UNITS,
            description=f"LFADS posterior-averaged outputs of session '{session.name}'{columns}"))
    return written
