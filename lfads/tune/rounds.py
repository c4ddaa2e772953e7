r"""One trial of a population: ``lfads fit`` trained in rounds, each reported to Ray Tune with a checkpoint.

A round is one ``Trainer.fit`` from epoch :math:`e_0` to the next multiple of ``perturbation_interval``
(or ``max_epochs``), resumed from the trial's last checkpoint so that the optimizer, the epoch counter,
the KL/L2 ramps and the smoothed validation cost continue. When PBT hands a trial another trial's
checkpoint (an exploit), the trial

- keeps its own ``ModelCheckpoint`` state (its ``checkpoints/`` keeps tracking its own best), and
- scales every learning rate of the copied optimizer by ``lr_init(new) / lr_init(copied)``, which keeps
  the plateau schedule's decay so far.

Each trial's run folder (``{tune_dir}/trial_NN/``) is an ordinary lfads run: ``config.yaml`` of its
latest round, ``metrics.csv`` over all rounds, ``checkpoints/`` with the best by
``valid/recon_smth_ramped`` and ``last.ckpt``.

:func:`train_trial` is the Ray Tune trainable; Ray pickles it by reference, so it lives here, at
``lfads.tune.rounds.train_trial``, whatever module the command was started from.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from lfads.data.atomic import atomic_output, atomic_write_text
from lfads.errors import LFADSDataError
from lfads.tune.history import write_csv_rows

__all__ = ["CHECKPOINT_FILE", "META_FILE", "RoundStart", "TrialSetup", "build_trial_cli", "train_trial", "trial_name"]

CHECKPOINT_FILE = "lfads.ckpt"
"""Name of the checkpoint inside a checkpoint directory reported to Ray Tune."""
META_FILE = "meta.json"
"""Name of the file beside it: the reporting trial, its epoch, the checkpoint's SHA-1 and run folder."""
TRIAL_MONITOR = "valid/recon_smth_ramped"
"""Metric a trial's best checkpoint is chosen by: the reconstruction cost, which compares across rounds
although PBT changes the KL/L2 weights between them."""


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """What every trial shares (passed to :func:`train_trial` with ``ray.tune.with_parameters``)."""

    tune_dir: str
    base_config: str
    cli_overrides: tuple[str, ...]
    logger_template: tuple[dict, ...]
    perturbation_interval: int
    max_epochs: int
    metric: str
    seed: int
    threads: int


@dataclasses.dataclass(frozen=True)
class RoundStart:
    """Where a trial's next round starts.

    Attributes
    ----------
    epoch : int
        Epochs trained before the round.
    resume : Path or None
        Checkpoint the round resumes from (None: a fresh start).
    resumed_lr : float or None
        ``lr_init`` the resumed optimizer was trained with, when it may differ from this trial's
        (the learning rates are then rescaled); None to keep them.
    exploited_from : str
        Trial that wrote the resumed checkpoint when it is not this one, else ``""``.
    resumed_sha1 : str
        SHA-1 (first 12 hex digits) of the resumed checkpoint, else ``""``.
    """

    epoch: int = 0
    resume: Path | None = None
    resumed_lr: float | None = None
    exploited_from: str = ""
    resumed_sha1: str = ""


def build_trial_cli(args: Sequence[str], extra_callbacks: Sequence[Any] = ()):
    """The ``lfads fit`` LightningCLI (same class and defaults) for one round, parsed without running.

    A trial keeps the best checkpoint by ``valid/recon_smth_ramped`` and ``last.ckpt``; its ``config.yaml``
    describes its latest round.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    from lfads.callbacks import metric_callbacks
    from lfads.lightning_cli import build_lightning_cli

    callbacks = metric_callbacks() + [ModelCheckpoint(monitor=TRIAL_MONITOR, mode="min", save_last=True, save_top_k=1)]
    return build_lightning_cli(list(args), run=False, callbacks=callbacks + list(extra_callbacks),
                               overwrite_config=True)


def trial_index(trial_id: str) -> int:
    """The number at the end of a Ray trial id (``..._00003`` -> 3), else a hash of the id."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else int(hashlib.sha1(trial_id.encode()).hexdigest()[:6], 16)


def trial_name(trial) -> str:
    """``trial_NN``: the name and run folder of a Ray trial."""
    return f"trial_{trial_index(trial.trial_id):02d}"


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def _read_own_checkpoint(path: Path) -> dict:
    """A checkpoint this population wrote itself (a trial's ``last.ckpt`` or one it reported to Ray), so trusted."""
    from lfads.rundir import read_checkpoint

    return read_checkpoint(path, trust=True)


def _scale_learning_rate(lr_from: float):
    """A callback that, once the optimizer state is restored, scales every LR by ``lr_init(model) / lr_from``."""
    from pytorch_lightning.callbacks import Callback

    class ScaleLearningRate(Callback):
        def on_train_start(self, trainer, pl_module):
            factor = float(pl_module.hparams.lr_init) / float(lr_from)
            if factor != 1.0:
                for optimizer in trainer.optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] = group["lr"] * factor

    return ScaleLearningRate()


# ---------------------------------------------------------------------------------------------- metrics.csv
def _previous_metrics(run_dir: Path) -> list[dict]:
    """Rows logged by earlier rounds; sets ``metrics.csv`` aside as ``metrics.csv.prev`` for the round to come.

    A ``metrics.csv.prev`` left by an interrupted round holds the earlier rounds; the interrupted round's
    own partial ``metrics.csv`` is dropped (that round is trained again).
    """
    current, previous = run_dir / "metrics.csv", run_dir / "metrics.csv.prev"
    source = previous if previous.exists() else current
    rows = []
    if source.exists():
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
    if previous.exists():
        current.unlink(missing_ok=True)
    elif current.exists():
        os.replace(current, previous)
    return rows


def _merge_metrics(previous: list[dict], run_dir: Path) -> None:
    """Prepend the rows of earlier rounds to the ``metrics.csv`` a round's CSVLogger wrote (it starts afresh)."""
    path = run_dir / "metrics.csv"
    current = []
    if path.exists():
        with open(path, newline="") as f:
            current = list(csv.DictReader(f))
    write_csv_rows(path, previous + current)
    (run_dir / "metrics.csv.prev").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- checkpoints
def _keep_own_tracking(state: dict, run_dir: Path) -> None:
    """Give an exploited checkpoint this trial's ``ModelCheckpoint`` state (or none, before its first round)."""
    own_last = run_dir / "checkpoints" / "last.ckpt"
    own = _read_own_checkpoint(own_last).get("callbacks", {}) if own_last.exists() else {}
    callbacks = state.get("callbacks", {})
    for key in [k for k in callbacks if k.startswith("ModelCheckpoint")]:
        if key in own:
            callbacks[key] = own[key]
        else:
            del callbacks[key]


def _prepare_resume(checkpoint_dir: Path, trial: str, run_dir: Path, work: Path) -> RoundStart:
    """Copy a reported checkpoint into ``work`` for this trial to resume from.

    When it was written by another trial (an exploit), its ModelCheckpoint state is replaced by this trial's
    own (so ``checkpoints/`` keeps tracking this run directory's best) or dropped if the trial has none yet.
    """
    import torch

    meta = json.loads((checkpoint_dir / META_FILE).read_text())
    source = checkpoint_dir / CHECKPOINT_FILE
    exploited_from = "" if meta["trial"] == trial else meta["trial"]
    state = _read_own_checkpoint(source)
    if exploited_from:
        _keep_own_tracking(state, run_dir)
    resume = work / "resume.ckpt"
    with atomic_output(resume) as tmp:
        torch.save(state, tmp)
    return RoundStart(epoch=int(meta["epoch"]), resume=resume,
                      resumed_lr=state.get("hyper_parameters", {}).get("lr_init"),
                      exploited_from=exploited_from, resumed_sha1=_sha1(source))


def _save_last(trainer, last: Path) -> None:
    """``last.ckpt`` as the state at the end of the round (written by the global-zero process only).

    Lightning's ModelCheckpoint refreshes ``last.ckpt`` only when it also saves a best checkpoint, and a
    checkpoint written after ``fit`` resumes at the next epoch.
    """
    target = atomic_output(last) if trainer.is_global_zero else nullcontext(os.devnull)
    with target as path:
        trainer.save_checkpoint(path)  # collective: every process calls it


# ---------------------------------------------------------------------------------------------- one round
def _logger_override(template: Sequence[dict], tune_dir: str, trial: str) -> str:
    loggers = []
    for entry in template:
        entry = copy.deepcopy(entry)
        init = entry.setdefault("init_args", {})
        init.update(save_dir=tune_dir, name=trial, version="")  # run directory: {tune_dir}/{trial}/
        loggers.append(entry)
    return json.dumps(loggers)


def _round_args(setup: TrialSetup, config: dict, trial: str, index: int, start_epoch: int, target: int) -> list[str]:
    """The ``lfads fit`` arguments of a round from ``start_epoch`` to ``target`` with hyperparameters ``config``."""
    seed = (setup.seed * 1_000_003 + index * 10_007 + start_epoch) % 2**31
    args = ["--config", setup.base_config, *setup.cli_overrides,
            "--seed_everything", str(seed),
            "--trainer.max_epochs", str(target), "--trainer.max_time", "null",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", str(start_epoch == 0).lower(),
            "--trainer.num_sanity_val_steps", "2" if start_epoch == 0 else "0",
            "--trainer.logger", _logger_override(setup.logger_template, setup.tune_dir, trial)]
    for name, value in config.items():
        args += [f"--model.{name}", repr(float(value))]
    return args


def _round_metrics(trainer, metric: str, target: int) -> dict:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    if metric not in metrics:
        raise LFADSDataError(f"tune.metric '{metric}' was not logged by the trial (logged: {sorted(metrics)}); "
                             "choose one of those, e.g. valid/recon_smth.")
    metrics["epoch"] = int(trainer.current_epoch)
    metrics["stopped_early"] = bool(trainer.current_epoch < target)
    return metrics


def _train_round(setup: TrialSetup, config: dict, trial: str, index: int, start: RoundStart, target: int) -> dict:
    """Train one round up to epoch ``target``; return the scalar metrics it logged, its epoch and early stop."""
    run_dir = Path(setup.tune_dir) / trial
    callbacks = [] if start.resumed_lr is None else [_scale_learning_rate(start.resumed_lr)]
    cli = build_trial_cli(_round_args(setup, config, trial, index, start.epoch, target), callbacks)
    trainer = cli.trainer
    previous = _previous_metrics(run_dir)
    cli.before_fit()
    trainer.fit(cli.model, cli.datamodule, ckpt_path=None if start.resume is None else str(start.resume))
    _save_last(trainer, run_dir / "checkpoints" / "last.ckpt")
    if trainer.is_global_zero:
        _merge_metrics(previous, run_dir)
    return _round_metrics(trainer, setup.metric, target)


def _report_round(metrics: dict, start: RoundStart, trial: str, run_dir: Path, work: Path) -> str:
    """Report a round's metrics and a copy of its ``last.ckpt`` to Ray Tune; return the copy's SHA-1."""
    from ray import tune

    out = work / f"report_{metrics['epoch']}"
    out.mkdir()
    with atomic_output(out / CHECKPOINT_FILE) as tmp:
        shutil.copy2(run_dir / "checkpoints" / "last.ckpt", tmp)
    sha = _sha1(out / CHECKPOINT_FILE)
    atomic_write_text(out / META_FILE, json.dumps({"trial": trial, "epoch": metrics["epoch"], "sha1": sha,
                                                   "run_dir": str(run_dir)}))
    metrics.update(start_epoch=start.epoch, checkpoint_sha1=sha, exploited_from=start.exploited_from,
                   resumed_sha1=start.resumed_sha1)
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(out)))
    shutil.rmtree(out, ignore_errors=True)
    return sha


def _quiet_lightning() -> None:
    import lightning_fabric  # noqa: F401  (importing them sets their loggers to INFO; quieten them after)
    import pytorch_lightning  # noqa: F401

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (".*exists and is not empty.*", ".*smaller than the logging interval.*",
                    ".*does not have many workers.*"):
        warnings.filterwarnings("ignore", message=message)


def _round_end(epoch: int, interval: int, max_epochs: int) -> int:
    """The epoch a round started at ``epoch`` trains to: the next multiple of ``interval``, at most ``max_epochs``."""
    return min((epoch // interval + 1) * interval, max_epochs)


def train_trial(config: dict, setup: TrialSetup) -> None:
    """Ray Tune function trainable: train one LFADS trial in rounds, reporting the metric and a checkpoint.

    Parameters
    ----------
    config : dict
        The trial's current searched hyperparameters (``name -> value``), set as ``--model.<name>``.
    setup : TrialSetup
        Shared settings (results directory, base config, round length, metric).
    """
    from ray import tune

    from lfads.runtime import configure_threads

    configure_threads(setup.threads)
    _quiet_lightning()
    context = tune.get_context()
    trial = context.get_trial_name()
    index = trial_index(context.get_trial_id())
    run_dir = Path(setup.tune_dir) / trial
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lfads_tune_") as work:
        work = Path(work)
        start = RoundStart()
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt_dir:
                start = _prepare_resume(Path(ckpt_dir), trial, run_dir, work)
        while start.epoch < setup.max_epochs:
            target = _round_end(start.epoch, setup.perturbation_interval, setup.max_epochs)
            metrics = _train_round(setup, config, trial, index, start, target)
            sha = _report_round(metrics, start, trial, run_dir, work)
            if metrics["stopped_early"] or metrics["epoch"] >= setup.max_epochs:
                return
            start = RoundStart(epoch=metrics["epoch"], resume=run_dir / "checkpoints" / "last.ckpt",
                               resumed_sha1=sha)
