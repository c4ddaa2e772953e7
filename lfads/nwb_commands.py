r"""NWB commands of the ``lfads`` command line: convert NWB sessions, write sampled outputs back into NWB.

``lfads convert`` bins NWB files (:mod:`lfads.data.nwb`) into the LFADS HDF5 layout, one file per session;
loading the written file gives the same session as binning the NWB file with the same options. Options
come from :class:`lfads.data.nwb.NWBBinning`'s defaults, then the ``data.nwb`` section of a YAML config
(the one given to ``lfads fit``), then the binning flags, later ones winning.

:func:`write_nwb_outputs_for_samples` puts the posterior-sampled outputs of a data module's NWB-backed
sessions back on the session clock of their source files: output trial :math:`i` of a split (trials-table
row ``trial_ids[i]``, event time :math:`a_i`) has bin :math:`k` centred at
:math:`a_i + w_0 + (k + \tfrac12)\Delta` (window start :math:`w_0`, bin width :math:`\Delta`), and every
sampled split is written into one copy of the source NWB (see :func:`lfads.data.nwb_output.write_nwb_outputs`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lfads.data.nwb import NWBBinning
from lfads.errors import LFADSDataError

__all__ = [
    "NWB_OUTPUTS",
    "convert_command",
    "find_nwb_source",
    "load_nwb_binning_config",
    "resolve_nwb_output_paths",
    "write_nwb_outputs_for_samples",
]

NWB_OUTPUTS: tuple[str, ...] = ("rates", "factors", "inferred_inputs", "gen_states")
"""Sampled outputs written into NWB files by default (each ``(trials, time, dim)``)."""

_OUTPUT_UNITS = {"rates": "spikes/bin"}
_NONE_WORDS = {"none", "null"}


# ---------------------------------------------------------------------------------------------------------------------
# lfads convert
# ---------------------------------------------------------------------------------------------------------------------


def load_nwb_binning_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``data.nwb`` section of a YAML config (as given to ``lfads fit``) as a dict of NWBBinning fields.

    Parameters
    ----------
    path : str or PathLike
        YAML file with a mapping ``data: {nwb: {...}}`` (``data: {init_args: {nwb: ...}}`` is read too).

    Returns
    -------
    dict
        Field name -> value; ``window_ms`` as a tuple of floats, whole numbers of float fields as floats.

    Raises
    ------
    LFADSDataError
        If the file is missing or not YAML, has no ``data.nwb`` mapping, or names an unknown option.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LFADSDataError(f"{path}: config file not found (relative paths are taken from {Path.cwd()}).")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LFADSDataError(f"{path}: not a valid YAML file ({err}).") from err
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict) and "nwb" not in data and isinstance(data.get("init_args"), dict):
        data = data["init_args"]
    section = data.get("nwb") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise LFADSDataError(f"{path}: no 'data.nwb' section (a mapping of NWB binning options such as align_event, "
                             f"window_ms, bin_ms). Add one, or give the options as flags (see lfads convert --help).")
    known = [f.name for f in fields(NWBBinning)]
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise LFADSDataError(f"{path}: 'data.nwb' holds unknown option(s) {unknown}; the options are {known}.")
    options = dict(section)
    for f in fields(NWBBinning):  # YAML reads 20 as an int; store floats as jsonargparse would
        value = options.get(f.name)
        if str(f.type) == "float" and isinstance(value, int) and not isinstance(value, bool):
            options[f.name] = float(value)
    if options.get("window_ms") is not None:
        options["window_ms"] = tuple(float(v) for v in options["window_ms"])
    return options


def _optional_name(text: str) -> str | None:
    return None if text.strip().lower() in _NONE_WORDS else text


def _build_convert_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lfads convert",
        description="Bin NWB sessions into LFADS HDF5 files (one per session, named after the NWB file). Binning "
                    "options: NWBBinning defaults, then the config's data.nwb section, then the flags below.")
    parser.add_argument("--nwb", nargs="+", required=True, metavar="FILE", help="NWB file(s), one per session")
    parser.add_argument("--out-dir", required=True, type=Path, help="folder for the .h5 files (created if missing)")
    parser.add_argument("--config", type=Path, help="YAML config with a data.nwb section (e.g. configs/reach_nwb.yaml)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    group = parser.add_argument_group("binning (fields of lfads.data.nwb.NWBBinning; 'none' means null)")
    group.add_argument("--align-event", help="trials column with the event time each window is aligned to")
    group.add_argument("--window-ms", nargs=2, type=float, metavar=("START", "END"),
                       help="window in ms relative to the event")
    group.add_argument("--bin-ms", type=float, help="bin width in ms")
    group.add_argument("--forward-bins", type=int, help="extra bins after the window (forward prediction)")
    group.add_argument("--heldout-column", type=_optional_name, help="boolean Units column of held-out units")
    group.add_argument("--heldout-fraction", type=float, help="fraction of units held out at random")
    group.add_argument("--split-column", type=_optional_name, help="trials column with train/val/test labels")
    group.add_argument("--valid-fraction", type=float, help="validation fraction of a random split")
    group.add_argument("--test-fraction", type=float, help="test fraction of a random split")
    group.add_argument("--behavior", type=_optional_name, help="TimeSeries to bin into {split}_behavior")
    group.add_argument("--condition-columns", nargs="+", metavar="COLUMN",
                       help="trials columns defining conditions ('none' for no conditions)")
    group.add_argument("--seed", type=int, help="seed of random held-out units and random splits")
    return parser


def _binning_from_args(args: argparse.Namespace) -> NWBBinning:
    binning = NWBBinning()
    if args.config is not None:
        binning = replace(binning, **load_nwb_binning_config(args.config))
    flags = {f.name: getattr(args, f.name) for f in fields(NWBBinning) if getattr(args, f.name, None) is not None}
    if "window_ms" in flags:
        flags["window_ms"] = tuple(flags["window_ms"])
    if "condition_columns" in flags:
        columns = list(flags["condition_columns"])
        flags["condition_columns"] = None if [c.lower() for c in columns] in (["none"], ["null"]) else columns
    return replace(binning, **flags)


def convert_command(argv: list[str]) -> int:
    """``lfads convert --nwb FILE [FILE ...] --out-dir DIR [--config YAML] [binning flags] [--overwrite]``.

    Writes ``DIR/<NWB file stem>.h5`` per NWB file with :func:`lfads.data.nwb.convert_nwb_to_lfads`. All or
    nothing: the arguments, the inputs (NWB files with distinct names) and the outputs (none may exist unless
    ``--overwrite`` is given) are checked first; every session is then written to a temporary file in ``DIR``,
    and only when all have been binned are they renamed onto their names. The NWB files are only read.

    Parameters
    ----------
    argv : list of str
        The arguments after ``convert``.

    Returns
    -------
    int
        0 on success. Bad arguments or data end the command with :class:`SystemExit` and a message naming the
        file and option at fault.
    """
    from lfads.data.nwb import check_nwb_file

    args = _build_convert_parser().parse_args(argv)
    try:
        binning = _binning_from_args(args)
        sources = [Path(p) for p in args.nwb]
        for source in sources:
            check_nwb_file(source)
        targets = [args.out_dir / f"{source.stem}.h5" for source in sources]
        _check_targets(sources, targets, sources, args.overwrite, option="--out-dir")
        print(f"binning: {binning}")
        _convert_all_or_nothing(sources, targets, binning)
    except LFADSDataError as err:
        raise SystemExit(f"lfads convert: {err}") from err
    for source, target in zip(sources, targets):
        print(f"{source} -> {target}: {_describe_h5(target)}")
    return 0


def _convert_all_or_nothing(sources: Sequence[Path], targets: Sequence[Path], binning: NWBBinning) -> None:
    """Bin every source into a temporary file next to its target; rename them all only if all succeed."""
    import tempfile

    from lfads.data.nwb import convert_nwb_to_lfads

    partial: list[Path] = []
    try:
        for source, target in zip(sources, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".partial.h5", dir=target.parent)
            os.close(fd)
            partial.append(Path(tmp))
            convert_nwb_to_lfads(source.resolve(), tmp, binning)  # absolute source_file attribute
        for tmp, target in zip(partial, targets):
            os.replace(tmp, target)
    finally:
        for tmp in partial:
            tmp.unlink(missing_ok=True)


def _describe_h5(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        trials = ", ".join(f"{split} {f[f'{split}_encod_data'].shape[0]}" for split in ("train", "valid", "test")
                           if f"{split}_encod_data" in f)
        _, t_enc, n_in = f["train_encod_data"].shape
        _, t_recon, n_recon = f["train_recon_data"].shape
        bin_ms = 1000.0 * float(f.attrs["bin_size"])
    forward = f" + {t_recon - t_enc} forward" if t_recon > t_enc else ""
    return (f"trials {trials}; {n_in} held-in + {n_recon - n_in} held-out units; {t_enc}{forward} bins of "
            f"{bin_ms:g} ms")


def _check_targets(
    owners: Sequence[Path], targets: Sequence[Path], inputs: Sequence[Path], overwrite: bool, option: str
) -> None:
    """Raise unless every target is distinct, is none of ``inputs``, and does not exist (unless ``overwrite``).

    ``owners[i]`` is the file whose output ``targets[i]`` is (named in the messages).
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


# ---------------------------------------------------------------------------------------------------------------------
# Sampled outputs -> NWB
# ---------------------------------------------------------------------------------------------------------------------


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
    _check_targets(sources, [target for _, target in plan.values()], sources + [Path(s.path) for s in sessions],
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
    from lfads.data.nwb_output import write_nwb_outputs

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
