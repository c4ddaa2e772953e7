"""Run folders: the one place that knows how a fit lays out its files and how to open them again.

A fit writes ``{save_dir}/{name}/version_{N}/`` holding

- ``config.yaml``: the resolved config of the fit;
- ``hparams.yaml``, ``metrics.csv`` and TensorBoard events;
- ``checkpoints/``: the best checkpoint by ``valid/loss_smth_ramped`` and ``last.ckpt``;
- once sampled, ``posterior_samples.h5`` (:data:`POSTERIOR_FILE`).

Every command and :func:`lfads.run.load_run` go through this module, so a run opens the same way from
the command line, from Python, and from any working folder:

- :func:`claim_run_version` creates a new ``version_N`` folder (never reusing one);
- :func:`version_dirs` lists versions in numeric order (``version_10`` after ``version_9``);
- :func:`find_checkpoint` picks the best checkpoint of a run;
- :func:`resolve_data_paths` applies one rule to the data paths a checkpoint records;
- :func:`load_model_and_data` rebuilds the model and its data module from a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lfads.data.metrics_csv import load_metrics
from lfads.errors import CheckpointError, CheckpointTrustError, LFADSDataError

__all__ = [
    "POSTERIOR_FILE",
    "claim_run_version",
    "find_checkpoint",
    "load_metrics",
    "load_model_and_data",
    "TRUST_ENV",
    "checkpoint_loading",
    "checkpoints_trusted",
    "read_checkpoint",
    "LAST_CHECKPOINT",
    "last_checkpoint_of",
    "newest_last_checkpoint",
    "safe_checkpoint_globals",
    "resolve_data_paths",
    "resolve_run_dir",
    "stored_data_paths",
    "version_dirs",
    "version_number",
]

POSTERIOR_FILE = "posterior_samples.h5"
"""Name of the posterior-samples file inside a run's version folder (as written by ``lfads sample --run``)."""

VERSION_PREFIX = "version_"


def version_number(path: str | os.PathLike) -> int:
    """``N`` of a ``version_N`` folder name; ``-1`` for any other name."""
    tail = Path(path).name[len(VERSION_PREFIX):] if Path(path).name.startswith(VERSION_PREFIX) else ""
    return int(tail) if tail.isdigit() else -1


def version_dirs(run: str | os.PathLike) -> list[Path]:
    """The ``version_N`` folders of a run, in increasing numeric order of ``N``."""
    found = [p for p in Path(run).glob(f"{VERSION_PREFIX}*") if p.is_dir() and version_number(p) >= 0]
    return sorted(found, key=version_number)


def claim_run_version(root: str | os.PathLike) -> int:
    """Create ``root/version_N`` for the first ``N`` above every existing version and return ``N``.

    ``mkdir`` either creates the folder or fails, so fits started at the same moment under the same run
    name (the members of an ensemble, say) each get a folder of their own instead of writing into one.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    version = max((version_number(p) for p in version_dirs(root)), default=-1) + 1
    while True:
        try:
            (root / f"{VERSION_PREFIX}{version}").mkdir()
            return version
        except FileExistsError:
            version += 1


TRUST_ENV = "LFADS_TRUST_CHECKPOINTS"
"""Environment variable that, set to ``1``, loads checkpoints with full unpickling (``--trust-checkpoint``)."""


def checkpoints_trusted(trust: bool | None = None) -> bool:
    """``trust`` if given, else whether ``LFADS_TRUST_CHECKPOINTS`` is set to 1/true/yes."""
    if trust is not None:
        return bool(trust)
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _allowed_globals() -> list:
    """Types an ``lfads`` checkpoint may hold besides tensors and plain Python data."""
    import collections
    import pathlib

    from lightning_fabric.utilities.data import AttributeDict

    from lfads.data.nwb import NWBBinning

    return [pathlib.PosixPath, pathlib.WindowsPath, collections.OrderedDict, collections.defaultdict, AttributeDict,
            NWBBinning]


@contextlib.contextmanager
def safe_checkpoint_globals() -> Iterator[None]:
    """Context in which ``torch.load(weights_only=True)`` accepts the types ``lfads`` checkpoints hold.

    For loaders that call ``torch.load`` themselves (Lightning's ``trainer.fit(ckpt_path=...)``); check the
    file first with :func:`read_checkpoint`, which turns a refused or unreadable file into a clear error.
    """
    import torch

    with torch.serialization.safe_globals(_allowed_globals()):
        yield


_UNREADABLE_WORDS = ("zip", "pickle", "archive", "inline_container")
"""Words of the ``RuntimeError`` messages torch gives for a file that is not a readable checkpoint archive."""


@contextlib.contextmanager
def checkpoint_loading(path: str | os.PathLike, trust: bool | None = None) -> Iterator[bool]:
    """Context in which ``torch.load`` of checkpoint ``path`` is safe; yields ``weights_only``.

    Checkpoints are data, not code: unless trusted, they load with ``torch.load(weights_only=True)``
    and an allow-list of the types ``lfads`` writes (:func:`_allowed_globals`). A checkpoint that needs
    anything else is refused with :class:`CheckpointTrustError`, and unreadable files with
    :class:`CheckpointError`, both naming the file.
    """
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory, not a checkpoint; pass a .ckpt file, or the run folder as --run."
        )
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path (runs/<name>/version_N/checkpoints/*.ckpt)."
        )
    weights_only = not checkpoints_trusted(trust)
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            yield weights_only
    except pickle.UnpicklingError as err:
        if weights_only and "Weights only load failed" in str(err) and "GLOBAL" in str(err).upper():
            raise CheckpointTrustError(
                f"{path}: the checkpoint holds objects beyond tensors and plain data, and unpickling them can run "
                f"code stored in the file; if you trust its source, pass --trust-checkpoint (or set {TRUST_ENV}=1)."
            ) from err
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}); pass a .ckpt file written "
                              "by `lfads fit`.") from err
    except (RuntimeError, EOFError, OSError) as err:
        # torch reports a damaged or foreign archive as a RuntimeError from its zip reader (inline_container.cc)
        if isinstance(err, RuntimeError) and not any(word in str(err).lower() for word in _UNREADABLE_WORDS):
            raise
        raise CheckpointError(f"{path} is not a readable checkpoint ({err}); pass a .ckpt file written by "
                              "`lfads fit`.") from err


def read_checkpoint(path: str | os.PathLike, *, trust: bool | None = None) -> dict:
    """The saved state of a checkpoint file, on the CPU (see :func:`checkpoint_loading` for the trust rule)."""
    import torch

    with checkpoint_loading(path, trust) as weights_only:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint; pass a .ckpt file written by "
                              "`lfads fit`.")
    return state


LAST_CHECKPOINT = "last.ckpt"
"""File name of the checkpoint a fit rewrites at the end of every training epoch (``checkpoints/last.ckpt``)."""


def last_checkpoint_of(version_dir: str | os.PathLike) -> Path:
    """``version_dir/checkpoints/last.ckpt``, the checkpoint ``lfads fit --resume version_dir`` continues from.

    Raises
    ------
    CheckpointError
        If ``version_dir`` is not a folder, or holds no ``checkpoints/last.ckpt``.
    """
    version_dir = Path(version_dir)
    last = version_dir / "checkpoints" / LAST_CHECKPOINT
    if not version_dir.is_dir():
        raise CheckpointError(f"run folder {version_dir} does not exist (working folder {Path.cwd()}); pass a "
                              "runs/<name>/version_N folder written by `lfads fit`.")
    if not last.is_file():
        raise CheckpointError(f"run folder {version_dir} has no checkpoints/{LAST_CHECKPOINT} to resume from; pass "
                              "the runs/<name>/version_N folder of a fit that finished at least one epoch.")
    return last


def newest_last_checkpoint(root: str | os.PathLike) -> Path | None:
    """``checkpoints/last.ckpt`` of the newest ``root/version_N`` that has one (``None`` if none has)."""
    for version_dir in version_dirs(root)[::-1]:
        last = version_dir / "checkpoints" / LAST_CHECKPOINT
        if last.is_file():
            return last
    return None


def _checkpoint_dirs(run: Path) -> list[Path]:
    """``checkpoints/`` folders holding a ``.ckpt``: the run's own first, then its versions, newest first."""
    candidates = [run] + version_dirs(run)[::-1]
    return [d / "checkpoints" for d in candidates if any((d / "checkpoints").glob("*.ckpt"))]


def _best_from_last(ckpt_dir: Path, last: Path, trust: bool | None) -> Path | None:
    """The checkpoint ``last.ckpt`` records as best, looked up by name in ``ckpt_dir``; ``last`` if none scored."""
    for key, cb in read_checkpoint(last, trust=trust).get("callbacks", {}).items():
        if not key.startswith("ModelCheckpoint") or not isinstance(cb, dict):
            continue
        best, score = cb.get("best_model_path"), cb.get("best_model_score")
        if score is not None and not math.isfinite(float(score)):
            return last  # the run ended before its ramps did: no scored checkpoint, the newest is best
        # Look the file name up in this run's own folder: a copied or moved run stays self-contained.
        if best and (ckpt_dir / Path(best).name).exists():
            return ckpt_dir / Path(best).name
    return None


def find_checkpoint(run: str | os.PathLike, *, trust: bool | None = None) -> Path:
    """The best checkpoint of a run directory (or of its newest ``version_*`` folder that has one).

    The best is the one ``last.ckpt`` records as best (by file name inside this run's ``checkpoints/``),
    else the newest other ``.ckpt`` by modification time, else ``last.ckpt``.

    Raises
    ------
    FileNotFoundError
        If neither ``run/checkpoints`` nor any ``run/version_*/checkpoints`` holds a ``.ckpt`` file.
    """
    run = Path(run)
    dirs = _checkpoint_dirs(run)
    if not dirs:
        raise FileNotFoundError(f"No checkpoints in {run}/checkpoints or in any {run}/version_*/checkpoints; pass the "
                                "runs/<name> or runs/<name>/version_N folder of a fit that finished at least one "
                                "epoch.")
    ckpt_dir = dirs[0]
    last = ckpt_dir / "last.ckpt"
    if last.exists():
        best = _best_from_last(ckpt_dir, last, trust)
        if best is not None:
            return best
    others = sorted((p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"), key=lambda p: p.stat().st_mtime)
    if others:
        return others[-1]
    return last


def resolve_run_dir(run_dir: str | os.PathLike, *, trust: bool | None = None) -> tuple[Path, Path]:
    """The version folder of a run and its best checkpoint.

    ``run_dir`` may be a version folder (``runs/lorenz/version_3``) or the folder above the versions
    (``runs/lorenz``: the newest ``version_*`` with checkpoints is used), as in ``lfads sample --run``.

    Returns
    -------
    version_dir, checkpoint : Path

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` does not exist, is a file, or has no checkpoint.
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise FileNotFoundError(
            f"{run_dir} is a file, not a run directory; pass the runs/<name> or runs/<name>/version_N folder "
            f"(a checkpoint file goes to --ckpt)."
        )
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} does not exist (working folder {Path.cwd()}); train one with "
            f"`lfads fit --config ...` or pass the path of an existing runs/<name> folder."
        )
    checkpoint = find_checkpoint(run_dir, trust=trust)
    return checkpoint.parent.parent, checkpoint


def resolve_data_paths(data_paths: Any, version_dir: str | os.PathLike) -> list[str]:
    """Relative data paths recorded at fit time, resolved against the run's ancestors, else the working folder.

    A fit records ``data_paths`` as given on its command line, relative to the folder it ran in: usually the
    repository root, an ancestor of the run folder (``runs/<name>/version_N``). A relative path is looked up
    from each ancestor of the version folder, nearest first; if none has it, it is left relative to the
    working folder (where the data module reports it missing if it is not there either). Absolute paths and
    glob patterns are kept as they are.
    """
    items = [data_paths] if isinstance(data_paths, (str, os.PathLike)) else list(data_paths)
    parents = Path(version_dir).resolve().parents
    resolved = []
    for item in items:
        text = os.fspath(item)
        p = Path(os.path.expanduser(text))
        if p.is_absolute() or set(text) & set("*?["):
            resolved.append(text)
            continue
        hit = next((anc / p for anc in parents if (anc / p).exists()), None)
        resolved.append(os.fspath(hit) if hit is not None else text)
    return resolved


def stored_data_paths(state: dict) -> Any:
    """The ``data_paths`` a checkpoint's saved state records (``None`` if it records none)."""
    return state.get("datamodule_hyper_parameters", {}).get("data_paths")


def load_model_and_data(
    ckpt: str | os.PathLike, data_paths: list[str] | None = None, *, trust: bool | None = None
) -> tuple[Any, Any]:
    """Load a trained model and rebuild its data module from a checkpoint.

    Parameters
    ----------
    ckpt : str or PathLike
        The checkpoint file.
    data_paths : list of str, optional
        Data files to use instead of those recorded in the checkpoint. Recorded relative paths are resolved
        by :func:`resolve_data_paths` against the checkpoint's version folder (``.../version_N/checkpoints/``),
        so a run opens the same from any working folder.
    trust : bool, optional
        Load with full unpickling (see :func:`checkpoint_loading`); default from ``LFADS_TRUST_CHECKPOINTS``.

    Returns
    -------
    model : lfads.model.LFADS
        On the CPU.
    datamodule : lfads.data.datamodule.LFADSDataModule

    Raises
    ------
    CheckpointError
        If the file is not a readable checkpoint, or needs trust it was not given (:class:`CheckpointTrustError`).
    LFADSDataError
        If the checkpoint records no data and none is given, or the data do not match the model's dimensions.
    """
    from lfads.data.datamodule import LFADSDataModule
    from lfads.model import LFADS

    ckpt = Path(ckpt)
    state = read_checkpoint(ckpt, trust=trust)
    with checkpoint_loading(ckpt, trust) as weights_only:
        model = LFADS.load_from_checkpoint(ckpt, map_location="cpu", weights_only=weights_only)
    dm_hparams = {k: v for k, v in state.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    if data_paths:
        dm_hparams["data_paths"] = data_paths if len(data_paths) > 1 else data_paths[0]
    elif "data_paths" in dm_hparams:
        resolved = resolve_data_paths(dm_hparams["data_paths"], ckpt.resolve().parent.parent)
        recorded = dm_hparams["data_paths"]
        dm_hparams["data_paths"] = resolved[0] if isinstance(recorded, (str, os.PathLike)) else resolved
    if "data_paths" not in dm_hparams:
        raise LFADSDataError(f"{ckpt} does not record its data; pass --data FILE [FILE ...].")
    datamodule = LFADSDataModule(**dm_hparams)
    hp = model.hparams
    if list(datamodule.encod_data_dims) != list(hp.encod_data_dims) or list(datamodule.recon_data_dims) != list(
        hp.recon_data_dims
    ):
        files = ", ".join(str(s.path) for s in datamodule.sessions)
        raise LFADSDataError(
            f"{files}: the data ({datamodule.encod_data_dims} encoder / {datamodule.recon_data_dims} recon neurons "
            f"per session) do not match the model in {ckpt} ({list(hp.encod_data_dims)} / "
            f"{list(hp.recon_data_dims)}); pass the files the run was fitted to, or others with the same neurons."
        )
    return model, datamodule
