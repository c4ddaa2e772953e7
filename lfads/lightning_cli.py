"""The Lightning CLI behind ``lfads fit|validate|test`` and every ``lfads tune`` trial.

:func:`build_lightning_cli` returns an :class:`LFADSCLI`: Lightning's CLI over
:class:`lfads.model.LFADS` and :class:`lfads.data.datamodule.LFADSDataModule`, with the data dimensions
linked from the data module into the model, and each fit writing into a run folder of its own (see
:mod:`lfads.rundir`).

A fit continues an interrupted one in place with ``--resume runs/NAME/version_N`` (the run's
``config.yaml`` is the config, later arguments override it; training restarts from
``checkpoints/last.ckpt``), with ``--ckpt_path last`` (the newest version of the run named by the config
that has a ``last.ckpt``), or with ``--ckpt_path`` naming a version's ``checkpoints/last.ckpt``. Continuing
in place keeps the version folder, appends to its ``metrics.csv`` (rows logged after the checkpoint, by
the part of the fit that was lost, are dropped), continues its TensorBoard events, and restores the
checkpoint callbacks' best-model tracking, the smoothed validation costs and the random number generators
(:class:`lfads.callbacks.ResumableState`). It writes nothing over the run's files but what training
itself updates (``metrics.csv``, ``last.ckpt``, a new best checkpoint). Any other ``--ckpt_path``
starts a new version from that checkpoint. Checkpoints load as data unless trusted (``--trust-checkpoint``
or ``LFADS_TRUST_CHECKPOINTS=1``, see :func:`lfads.rundir.checkpoint_loading`).
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities import rank_zero_only

from lfads.callbacks import PENDING_LOG_KEY
from lfads.data.atomic import atomic_output
from lfads.errors import LFADSConfigError
from lfads.rundir import (
    LAST_CHECKPOINT,
    checkpoints_trusted,
    claim_run_version,
    find_checkpoint,
    last_checkpoint_of,
    newest_last_checkpoint,
    read_checkpoint,
    safe_checkpoint_globals,
    version_number,
)

__all__ = ["LINKED_DATA_DIMS", "LFADSCLI", "build_lightning_cli", "continue_metrics_file", "default_fit_callbacks"]

RESUME_FLAG = "--resume"
TRUST_FLAG = "--trust-checkpoint"
LIGHTNING_CKPT_NAMES = ("best", "hpc", "registry")
"""``ckpt_path`` values Lightning resolves itself (``last`` is resolved here, to continue a run in place)."""

LINKED_DATA_DIMS = ("encod_data_dims", "recon_data_dims", "encod_seq_len", "recon_seq_len", "ext_input_dim")
"""Fields of the data module copied into the model's arguments when both are instantiated."""


def default_fit_callbacks() -> list:
    """The callbacks of ``lfads fit`` (see :func:`lfads.callbacks.default_callbacks`)."""
    from lfads.callbacks import default_callbacks

    return default_callbacks()


def _pop_option(args: list[str], flag: str) -> tuple[list[str], str | None]:
    """``args`` without ``flag VALUE`` (or ``flag=VALUE``), and the value (``None`` if absent)."""
    rest, value, i = [], None, 0
    while i < len(args):
        arg = args[i]
        if arg == flag:
            if i + 1 >= len(args):
                raise LFADSConfigError(
                    f"{flag} needs a value: the runs/<name>/version_N folder of the fit to continue."
                )
            value, i = args[i + 1], i + 2
            continue
        if arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
        else:
            rest.append(arg)
        i += 1
    return rest, value


def _resume_args(args: list[str], run_dir: Path) -> list[str]:
    """``args`` with the run's ``config.yaml`` as the first config and its ``last.ckpt`` as ``--ckpt_path``."""
    if any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in args):
        raise LFADSConfigError(f"{RESUME_FLAG} {run_dir} and --ckpt_path both name a checkpoint; pass one of them.")
    last = last_checkpoint_of(run_dir)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise LFADSConfigError(f"{RESUME_FLAG} {run_dir}: the run folder has no config.yaml; continue it with "
                               f"`lfads fit --config <its config> --ckpt_path {last}` instead.")
    at = 1 if args and not args[0].startswith("-") else 0  # after the subcommand
    if at and args[0] != "fit":
        raise LFADSConfigError(f"{RESUME_FLAG} continues a fit; use it with `lfads fit`, not `lfads {args[0]}`.")
    return args[:at] + ["--config", str(config)] + args[at:] + ["--ckpt_path", str(last)]


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def continue_metrics_file(path: str | os.PathLike, epoch: int, step: int, pending: dict | None = None) -> list[str]:
    """Cut ``metrics.csv`` back to a checkpoint written at the end of ``epoch`` (after ``step`` optimizer steps).

    Rows of later epochs (rows without an epoch: of step ``step`` or later) were logged by the part of the
    fit that the resumed one repeats, and are dropped. ``pending`` (the checkpoint's
    :data:`lfads.callbacks.PENDING_LOG_KEY`: ``{"epoch", "step", "metrics"}``) is the epoch's training row
    that Lightning logs just after writing the checkpoint; it is added if the file lacks it. The file is
    rewritten atomically, and only if anything changes.

    Returns
    -------
    list of str
        The file's columns (empty if there is no file yet), for the CSV writer that continues it.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header, rows = list(reader.fieldnames or []), list(reader)

    def keep(row: dict) -> bool:
        row_epoch, row_step = _number(row.get("epoch")), _number(row.get("step"))
        return row_epoch <= epoch if row_epoch is not None else row_step is None or row_step < step

    kept = [row for row in rows if keep(row)]
    changed = len(kept) != len(rows)
    if pending and int(pending.get("epoch", -1)) == epoch:
        names = list(pending["metrics"])
        logged = any(_number(r.get("epoch")) == epoch and any(r.get(n) not in (None, "") for n in names) for r in kept)
        if not logged:
            kept.append({**pending["metrics"], "epoch": epoch, "step": int(pending["step"])})
            if set(kept[-1]) - set(header):
                header = sorted(set(header) | set(kept[-1]))
            changed = True
    if changed:
        with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
    return header


def _drop_checkpoints_after(ckpt_dir: Path, epoch: int) -> None:
    """Remove ``epoch=E-*.ckpt`` files with ``E > epoch``: written by the lost part of a fit that is continued.

    The continued fit trains those epochs again and keeps its own best checkpoint; a file left from the lost
    part would stand beside it as a second, untracked candidate.
    """
    for path in ckpt_dir.glob("epoch=*.ckpt"):
        match = re.match(r"epoch=(\d+)-", path.name)
        if match and int(match.group(1)) > epoch:
            print(f"Removing {path}: written after the checkpoint being continued (epoch {epoch})")
            path.unlink()


class ContinuedWriter(ExperimentWriter):
    """CSV writer that appends to an existing ``metrics.csv`` and keeps an existing ``hparams.yaml``."""

    def __init__(self, log_dir: str, header: list[str]) -> None:
        super().__init__(log_dir)
        self.metrics_keys = list(header)  # known columns: new rows append instead of rewriting the file

    def _check_log_dir_exists(self) -> None:
        """The run's files stay (Lightning's writer would delete ``metrics.csv`` here)."""

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        if not os.path.isfile(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)):
            super().log_hparams(params)

class LFADSCLI(LightningCLI):
    """LightningCLI with the data dimensions linked from the data module into the model.

    ``resume_dir`` is the run folder to continue in place (``--resume``), ``trust`` whether checkpoints load
    with full unpickling (``None``: ``LFADS_TRUST_CHECKPOINTS`` decides).
    """

    def __init__(self, *args: Any, resume_dir: Path | None = None, trust: bool | None = None, **kwargs: Any):
        self.resume_dir, self.trust = resume_dir, trust  # set first: LightningCLI runs everything in __init__
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands that ``lfads`` runs: fit, validate and test (``lfads sample`` predicts)."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "validate", "test")}

    def add_arguments_to_parser(self, parser) -> None:
        for name in LINKED_DATA_DIMS:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

    def fit(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs) -> None:
        """``trainer.fit``, loading a checkpoint as data unless checkpoints are trusted."""
        if ckpt_path is None or ckpt_path in LIGHTNING_CKPT_NAMES:
            self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kwargs)
            return
        with safe_checkpoint_globals():
            self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                             weights_only=not checkpoints_trusted(self.trust), **kwargs)

    def before_fit(self) -> None:
        """Continue a run in place, or claim a new run folder; point every logger (and a CSV one) at it."""
        trainer = self.trainer
        loggers = list(trainer.loggers)
        first = loggers[0] if loggers else None
        continued = self._run_to_continue(first)
        if continued is not None:
            self._continue_in_place(*continued)
            return
        if (
            isinstance(first, (CSVLogger, TensorBoardLogger))
            and first._version is None
            and rank_zero_only.rank == 0
        ):
            first._version = claim_run_version(Path(first.root_dir))
            # the folder this fit created: the only one a failed fit may remove (lfads.commands.fit)
            trainer.lfads_claimed_run_dir = Path(first.root_dir) / f"version_{first._version}"
        self._point_loggers_at_first(loggers)

    def _point_loggers_at_first(self, loggers: list) -> None:
        """Add a CSV logger if there is none, and set every logger's version to the first logger's."""
        trainer, first = self.trainer, loggers[0] if loggers else None
        if loggers and not any(isinstance(lg, CSVLogger) for lg in loggers):
            loggers.append(CSVLogger(first.save_dir, name=first.name or "", version=first.version))
            trainer.loggers = loggers
        # All loggers write into the first logger's version folder (the run directory).
        if len(loggers) > 1:
            version = loggers[0].version
            for lg in loggers[1:]:
                if hasattr(lg, "_version"):
                    lg._version = version

    def _run_to_continue(self, first) -> tuple[Path, Path] | None:
        """``(version_dir, last.ckpt)`` of the run this fit continues in place, or ``None`` for a new run.

        Also checks that any other ``--ckpt_path`` is a readable checkpoint (and trusted if it must be).
        """
        if self.subcommand is None:  # parsed without a subcommand (a tune round): its caller passes ckpt_path
            return None
        ckpt = self.config_init[self.subcommand].get("ckpt_path")
        if self.resume_dir is not None:
            return self.resume_dir, last_checkpoint_of(self.resume_dir)
        if ckpt is None or ckpt in LIGHTNING_CKPT_NAMES:
            return None
        root = Path(first.root_dir) if isinstance(first, (CSVLogger, TensorBoardLogger)) else None
        if ckpt == "last":
            last = newest_last_checkpoint(root) if root is not None else None
            if last is None:
                where = f"any version folder of {root}" if root is not None else "a run folder (no logger is set)"
                raise LFADSConfigError(
                    f"--ckpt_path last: there is no checkpoints/{LAST_CHECKPOINT} in {where}; start a new fit "
                    f"without --ckpt_path, or continue a given run with {RESUME_FLAG} runs/<name>/version_N.")
            return last.parent.parent, last
        path = Path(ckpt)
        read_checkpoint(path, trust=self.trust)  # a clear error for a missing, unreadable or untrusted file
        version_dir = path.parent.parent
        is_last_of_run = (path.name == LAST_CHECKPOINT and path.parent.name == "checkpoints"
                          and root is not None and version_dir.parent.resolve() == root.resolve()
                          and version_number(version_dir) >= 0)
        return (version_dir, path) if is_last_of_run else None

    def _continue_in_place(self, version_dir: Path, last: Path) -> None:
        """Pin every logger to ``version_dir`` and prepare its files to continue from ``last``."""
        trainer = self.trainer
        loggers = list(trainer.loggers)
        first = loggers[0] if loggers else None
        version = version_number(version_dir)
        if not isinstance(first, (CSVLogger, TensorBoardLogger)) or version < 0:
            raise LFADSConfigError(
                f"cannot continue {version_dir} in place: it is not a runs/<name>/version_N folder written by a "
                "CSV or TensorBoard logger; start a new fit from the checkpoint with --ckpt_path <file>.")
        first._version = version
        self._point_loggers_at_first(loggers)
        loggers = list(trainer.loggers)
        if Path(first.log_dir).resolve() != version_dir.resolve():
            raise LFADSConfigError(
                f"cannot continue {version_dir} in place: its config's loggers write to {first.log_dir} from this "
                f"working folder ({Path.cwd()}); run `lfads fit` from the folder the fit ran in.")
        state = read_checkpoint(last, trust=self.trust)
        epoch, step = int(state.get("epoch", 0)), int(state.get("global_step", 0))
        if rank_zero_only.rank == 0:
            _drop_checkpoints_after(last.parent, epoch)
            for lg in loggers:
                if isinstance(lg, CSVLogger):
                    metrics = Path(lg.log_dir) / ExperimentWriter.NAME_METRICS_FILE
                    header = continue_metrics_file(metrics, epoch, step, state.get(PENDING_LOG_KEY))
                    lg._experiment = ContinuedWriter(lg.log_dir, header)
                elif isinstance(lg, TensorBoardLogger):
                    lg._kwargs["purge_step"] = step  # hide events the lost part of the fit logged
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, SaveConfigCallback)]
        self.config_init[self.subcommand]["ckpt_path"] = str(last)
        print(f"Continuing {version_dir} from {last} (epoch {epoch} finished, step {step})")

    def after_fit(self) -> None:
        """Name the run folder and the checkpoint ``lfads sample --run`` will use."""
        ckpt = next((c for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
        log_dir = self.trainer.log_dir  # collective under DDP: every process must ask
        if not self.trainer.is_global_zero:
            return
        print(f"\nRun directory: {log_dir}")
        if ckpt is None or not ckpt.best_model_path:
            return
        path, score = find_checkpoint(Path(ckpt.dirpath).parent), float(ckpt.best_model_score)
        if math.isfinite(score):
            print(f"Best checkpoint ({ckpt.monitor} = {score:.5f}): {path}")
        else:
            print(f"No checkpoint was scored (the run ended before its KL/L2 ramps did); newest: {path}")
        print(f"Next: lfads sample --ckpt {path} --out <file.h5>")


def build_lightning_cli(
    args: Sequence[str],
    *,
    run: bool = True,
    callbacks: Sequence[Any] | None = None,
    overwrite_config: bool = False,
    parser_kwargs: dict[str, Any] | None = None,
):
    """Parse ``args`` as ``lfads fit|validate|test`` does and build (and, with ``run``, run) the CLI.

    Parameters
    ----------
    args : sequence of str
        The command line after ``lfads`` (with ``run``: starting with the subcommand, e.g. ``["fit",
        "--config", "configs/lorenz.yaml"]``; without: the arguments of one fit). Two arguments are
        taken out before Lightning parses the rest: ``--resume runs/NAME/version_N`` continues that run in
        place (its ``config.yaml`` becomes the first config and its ``checkpoints/last.ckpt`` the
        ``--ckpt_path``), and ``--trust-checkpoint`` loads ``--ckpt_path`` with full unpickling.
    run : bool
        Run the subcommand (``True``) or only parse and instantiate the trainer, model and data.
    callbacks : sequence of Callback, optional
        Default trainer callbacks (default: :func:`default_fit_callbacks`).
    overwrite_config : bool
        Replace an existing ``config.yaml`` in the run folder (a tune trial rewrites it every round).
    parser_kwargs : dict, optional
        Keyword arguments of the parsers, as Lightning's ``LightningCLI(parser_kwargs=...)`` takes them
        (``lfads fit`` passes ``exit_on_error=False`` so that parse errors reach its one-line error path).

    Returns
    -------
    LFADSCLI

    Raises
    ------
    LFADSConfigError
        If ``--resume`` names a folder without ``config.yaml`` or comes with ``--ckpt_path``, if
        ``--ckpt_path last`` finds no ``last.ckpt``, or if a run cannot be continued in place.
    CheckpointError
        If the checkpoint to resume from is missing or unreadable, or needs trust it was not given.
    """
    from lfads.data.datamodule import LFADSDataModule
    from lfads.model import LFADS

    args, resume = _pop_option(list(args), RESUME_FLAG)
    trust = True if TRUST_FLAG in args else None
    args = [a for a in args if a != TRUST_FLAG]
    resume_dir = Path(resume) if resume is not None else None
    if resume_dir is not None:
        args = _resume_args(args, resume_dir)
    defaults = {
        "callbacks": list(default_fit_callbacks() if callbacks is None else callbacks),
        "default_root_dir": "runs",
        # Every metric LFADS logs is an epoch value, so the step interval writes nothing and costs nothing;
        # 1 keeps Lightning from warning when an epoch has fewer batches than the interval.
        "log_every_n_steps": 1,
    }
    with warnings.catch_warnings():  # `args` is the whole command line here; sys.argv is the caller's
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
        return LFADSCLI(
            LFADS,
            LFADSDataModule,
            args=args,
            run=run,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": overwrite_config},
            trainer_defaults=defaults,
            parser_kwargs=parser_kwargs,
            resume_dir=resume_dir,
            trust=trust,
        )
