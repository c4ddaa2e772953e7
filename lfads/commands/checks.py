"""Argument checks shared by ``lfads sample`` and ``lfads analyze``, run before any expensive work.

Each check raises an :class:`lfads.errors.LFADSError` whose message names the option, the value or
path, and the fix; the command line prints it as one line (see :mod:`lfads.commands.report`).
"""

from __future__ import annotations

import argparse
import math
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lfads.errors import LFADSArgumentError

__all__ = [
    "MAX_INITIAL_STATES",
    "StoreOnce",
    "check_splits",
    "checkpoint_file",
    "data_files",
    "load_model_and_data",
    "output_file",
    "readable_hdf5",
    "require_at_least",
    "require_at_most",
    "require_initial_states",
    "run_checkpoint",
    "run_files",
    "session_index",
    "splits_present",
]

RUN_RECORDS = ("config.yaml", "hparams.yaml", "metrics.csv")
"""Files of a run's version folder that no output may replace."""


class StoreOnce(argparse.Action):
    """``store`` for an option whose repetition would silently drop work (a file, a split, an output): refused.

    argparse keeps only the last of ``--out a.h5 --out b.h5`` (or ``--data a.h5 --data b.h5``); this action
    raises a parser error naming both values instead.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        seen = namespace.__dict__.setdefault("_given_once", set())  # options already given in this command line
        if self.dest in seen:
            hint = f", listing every value after one {option_string}" if self.nargs in ("+", "*") else ""
            both = f"{_values_text(getattr(namespace, self.dest))}, then {_values_text(values)}"
            raise argparse.ArgumentError(self, f"given more than once ({both}), and only the last would be used; "
                                               f"give it once{hint}")
        seen.add(self.dest)
        setattr(namespace, self.dest, values)


def _values_text(values: Any) -> str:
    """An option's parsed value as written on the command line (a list space-separated)."""
    return " ".join(map(str, values)) if isinstance(values, list) else str(values)


def require_at_least(value: float, minimum: float, option: str) -> None:
    """Raise if ``value < minimum`` or ``value`` is not finite (NaN, infinite), naming ``option``."""
    if not value >= minimum:
        raise LFADSArgumentError(f"{option} {value}: must be at least {minimum}.")
    if not math.isfinite(value):
        raise LFADSArgumentError(f"{option} {value}: must be a finite number.")


MAX_INITIAL_STATES = 1_000_000
"""Most starts of a fixed-point search a command accepts (each start is one search; the defaults are 1024 and 256)."""


def require_at_most(value: float, maximum: float, option: str, reason: str = "") -> None:
    """Raise if ``value > maximum``, naming ``option``; ``reason`` says why the limit (appended in brackets)."""
    if value > maximum:
        raise LFADSArgumentError(f"{option} {value}: must be at most {maximum}" + (f" ({reason})." if reason else "."))


def require_initial_states(value: int, option: str = "--n-initial") -> None:
    """Raise unless ``value`` starts of a fixed-point search lie between 1 and :data:`MAX_INITIAL_STATES`."""
    require_at_least(value, 1, option)
    require_at_most(value, MAX_INITIAL_STATES, option, "each start is one fixed-point search")


def checkpoint_file(path: str | os.PathLike, option: str = "--ckpt") -> Path:
    """``path`` as a checkpoint file, after checking it exists and is a checkpoint archive (nothing is loaded).

    ``torch.save`` (and so Lightning) writes checkpoints as zip archives; anything else is refused here,
    before it reaches the unpickler.
    """
    path = Path(path)
    if not path.exists():
        raise LFADSArgumentError(
            f"{option} {path}: no such file (working folder {Path.cwd()}); pass a .ckpt file from "
            f"runs/<name>/version_N/checkpoints/, or --run runs/<name>."
        )
    if path.is_dir():
        raise LFADSArgumentError(f"{option} {path}: is a directory; pass a .ckpt file inside it, or --run {path}.")
    if not zipfile.is_zipfile(path):
        raise LFADSArgumentError(
            f"{option} {path}: not a checkpoint (a .ckpt file written by `lfads fit` is a zip archive); "
            f"pass a file from runs/<name>/version_N/checkpoints/."
        )
    return path


def run_checkpoint(run: str | os.PathLike, trust: bool | None = None) -> Path:
    """The best checkpoint of run folder ``run`` (see :func:`lfads.rundir.resolve_run_dir`), checked."""
    from lfads.rundir import resolve_run_dir

    try:
        _, ckpt = resolve_run_dir(run, trust=trust)
    except FileNotFoundError as err:
        raise LFADSArgumentError(f"--run {run}: {err}") from err
    return checkpoint_file(ckpt, option=f"--run {run}: checkpoint")


def run_files(checkpoints: Iterable[Path]) -> set[Path]:
    """The files of the runs holding ``checkpoints`` that no output may replace (resolved paths).

    Every file in each checkpoint's folder, and the run records (:data:`RUN_RECORDS`) and TensorBoard
    event files of its version folder.
    """
    files: set[Path] = set()
    for ckpt in checkpoints:
        ckpt = Path(ckpt).resolve()
        version = ckpt.parent.parent
        files |= {p for p in ckpt.parent.iterdir() if p.is_file()} | {ckpt}
        files |= {version / name for name in RUN_RECORDS} | set(version.glob("events.out.tfevents.*"))
    return files


def output_file(
    out: str | os.PathLike, overwrite: bool, protected: Iterable[Path] = (), option: str = "--out", what: str = "a run"
) -> Path:
    """Check that ``out`` may be written, before any work (see :func:`lfads.data.atomic.check_output_path`).

    Refused with or without ``overwrite``: a directory, one of the ``protected`` files (compared after
    resolving links, and by inode), and any file of an existing run (a checkpoint, or a run folder's
    config, hyperparameters, metrics or event files). Refused without ``overwrite``: an existing file. The
    folder must exist and be writable.

    Parameters
    ----------
    out : str or PathLike
        The output file.
    overwrite : bool
        Whether an existing (unprotected) file may be replaced.
    protected : iterable of Path
        Files never replaced, with or without ``overwrite`` (input data, a run's checkpoints and records).
    option : str
        The option named in messages.
    what : str
        What the protected files belong to, named in messages (``"the input data"``, ``"a run"``).
    """
    from lfads.data.atomic import check_output_path

    return check_output_path(out, protected=protected, overwrite=overwrite, option=option, owner=what)


def splits_present(datamodule: Any) -> list[str]:
    """The splits any session of ``datamodule`` holds, in the order train, valid, test, then others."""
    order = {"train": 0, "valid": 1, "test": 2}
    names = {split for session in datamodule.sessions for split in session.splits}
    return sorted(names, key=lambda s: (order.get(s, len(order)), s))


def check_splits(requested: Sequence[str], present: Sequence[str], where: str, option: str = "--splits") -> None:
    """Raise if a name in ``requested`` is not among the splits ``present`` in ``where``, listing those present."""
    unknown = [s for s in requested if s not in present]
    if unknown:
        raise LFADSArgumentError(
            f"{option} {' '.join(unknown)}: no such split in {where}; the splits present are {', '.join(present)}."
        )


def session_index(index: int, datamodule: Any, option: str = "--session") -> int:
    """``index`` after checking it numbers a session of ``datamodule`` (0-based)."""
    n = len(datamodule.sessions)
    if not 0 <= index < n:
        names = ", ".join(f"{i}: {name}" for i, name in enumerate(datamodule.session_names))
        raise LFADSArgumentError(f"{option} {index}: out of range; the data hold {n} session(s) ({names}).")
    return index


def readable_hdf5(path: str | os.PathLike, source: str = "--data") -> Path:
    """``path``, given by ``source``, after opening it as HDF5 (nothing is read), so a missing, truncated or
    foreign file is named at once (:func:`lfads.data.hdf5.check_h5_readable`)."""
    from lfads.data.hdf5 import check_h5_readable

    return check_h5_readable(path, label=source, glob=source == "--data")


def data_files(patterns: Sequence[str]) -> list[Path]:
    """The files ``--data`` names (globs expanded), each checked to open as HDF5."""
    from lfads.data.datamodule import resolve_data_paths

    return [readable_hdf5(p) for p in resolve_data_paths(list(patterns))]


def load_model_and_data(ckpt: Path, data: Sequence[str] | None, **kwargs: Any) -> tuple[Any, Any]:
    """:func:`lfads.rundir.load_model_and_data`, naming the data file at fault when HDF5 cannot open one.

    h5py reports a truncated file as an ``OSError`` without its name; the files the checkpoint records (or
    ``data``) are then opened one by one to find it.
    """
    from lfads import rundir

    try:
        return rundir.load_model_and_data(ckpt, list(data) if data else None, **kwargs)
    except OSError as err:
        if err.filename is not None:
            raise
        if data:
            data_files(data)
        else:
            recorded = rundir.stored_data_paths(rundir.read_checkpoint(ckpt, **kwargs))
            for path in rundir.resolve_data_paths(recorded or [], ckpt.resolve().parent.parent):
                if Path(path).is_file():
                    readable_hdf5(path, source=f"data file recorded in {ckpt}:")
        raise


def add_common_options(parser: Any, *, progress: bool = True) -> None:
    """``--overwrite``, ``--trust-checkpoint`` and (with ``progress``) ``--no-progress``, as every command has them."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier output file (never an input, a run's file or a directory)")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load checkpoints with full unpickling, which can run code stored in the file: only for checkpoints "
        "from a source you trust (default: tensors and plain data only; also LFADS_TRUST_CHECKPOINTS=1)",
    )
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
