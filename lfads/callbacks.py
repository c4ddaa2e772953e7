r"""Validation bookkeeping and checkpoint selection of an LFADS fit, as Lightning callbacks.

The model computes and logs the ELBO terms (``valid/loss``, ``valid/recon``, ...); these callbacks
turn them into the values that steer a fit:

- :class:`SmoothedValidation`: exponential averages of the validation costs,

  .. math::

      \bar m_e = a\, m_e + (1 - a)\, \bar m_{e-1},

  with ``a`` the model's ``smoothing``, logged as ``valid/recon_smth`` (monitored by the plateau LR
  schedule) and ``valid/loss_smth``, and their ramp-aware versions ``valid/..._smth_ramped`` (``inf``
  until the KL/L2/JSLDS ramps are complete). The averages restart at the first full-weight epoch.
- :class:`ValidationMetrics`: the Neural Latents Benchmark metrics of the posterior-mean rates
  (``valid/heldin_bps``, ``valid/co_bps``, ``valid/fp_bps``, ``valid/rate_r2``) over the whole validation
  split, gathered from every process under DDP.
- :class:`ResumableState`: what a fit resumed from ``last.ckpt`` needs to continue exactly as if it had
  never stopped (the random number generators, and the epoch's training metrics that are logged after
  the checkpoint is written).
- :class:`DivergenceGuard`: stops the fit at the first training step whose loss or gradient norm is not
  finite, before the optimizer applies it, and never lets a checkpoint with non-finite weights be written.
- :func:`default_callbacks`: the callbacks ``lfads fit`` trains with, including the two checkpoints
  (the best by :data:`BEST_CHECKPOINT_MONITOR` and ``last.ckpt``).

A model trained without these callbacks logs the ELBO terms only; the plateau LR schedule then has no
``valid/recon_smth`` to monitor.
"""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from lfads.data.batch import SessionBatch
from lfads.errors import TrainingDivergedError

BEST_CHECKPOINT_MONITOR = "valid/loss_smth_ramped"
"""Metric that selects the best checkpoint of ``lfads fit`` (lower is better)."""

# Keys under which the model itself stored the smoothed state in checkpoints written before this callback.
LEGACY_CHECKPOINT_KEYS = {
    "recon": "valid_recon_smoothed",
    "loss": "valid_loss_smoothed",
    "ramped": "valid_recon_smoothed_ramped",
}


class SmoothedValidation(Callback):
    """Exponential averages of ``valid/recon`` and ``valid/loss``, restarted when the ramps complete.

    At the end of each validation epoch (not the sanity check) with ``a`` = ``pl_module.hparams.smoothing``:

    - the first epoch, and the first epoch with ``pl_module.ramps_complete()``, set the averages to the
      epoch's costs (ramp-time costs do not linger in the values that select checkpoints);
    - later epochs update them as ``a * cost + (1 - a) * average``.

    Logs ``valid/recon_smth``, ``valid/loss_smth`` (``inf`` before the first average) and the
    ``..._ramped`` versions, equal to them on full-weight epochs and ``inf`` otherwise. The averages
    travel in checkpoints (:meth:`state_dict`), so a resumed fit continues them; checkpoints that
    predate this callback keep them under :data:`LEGACY_CHECKPOINT_KEYS`, which are read as well.
    """

    def __init__(self) -> None:
        self.recon: float | None = None
        self.loss: float | None = None
        self.ramped = False  # whether the averages hold only full-weight epochs

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ramped_epoch = bool(pl_module.ramps_complete())
        metrics = trainer.callback_metrics
        if "valid/recon" in metrics and not trainer.sanity_checking:
            self.update(float(metrics["valid/recon"]), float(metrics["valid/loss"]),
                        float(pl_module.hparams.smoothing), ramped_epoch)
        for name, value in (("recon", self.recon), ("loss", self.loss)):
            value = float("inf") if value is None else value
            ramped = value if ramped_epoch else float("inf")
            pl_module.log(f"valid/{name}_smth", torch.tensor(value, device=pl_module.device), sync_dist=True)
            pl_module.log(f"valid/{name}_smth_ramped", torch.tensor(ramped, device=pl_module.device), sync_dist=True)

    def update(self, recon: float, loss: float, smoothing: float, ramped_epoch: bool) -> None:
        """Fold one epoch's validation costs into the averages (``smoothing`` weighs the new epoch)."""
        restart = self.recon is None or (ramped_epoch and not self.ramped)

        def average(current: float, previous: float | None) -> float:
            return current if restart or previous is None else smoothing * current + (1 - smoothing) * previous

        self.recon = average(recon, self.recon)
        self.loss = average(loss, self.loss)
        self.ramped = ramped_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"recon": self.recon, "loss": self.loss, "ramped": self.ramped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.recon = state_dict.get("recon")
        self.loss = state_dict.get("loss")
        self.ramped = bool(state_dict.get("ramped", False))

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Read the averages from a checkpoint written before this callback.

        Lightning calls this before :meth:`load_state_dict`, which then sets this callback's own state
        where the checkpoint has it.
        """
        if LEGACY_CHECKPOINT_KEYS["recon"] in checkpoint:
            self.load_state_dict({name: checkpoint.get(key) for name, key in LEGACY_CHECKPOINT_KEYS.items()})


class ValidationMetrics(Callback):
    """NLB metrics of the posterior-mean validation rates, logged as ``valid/<metric>``.

    Collects ``pl_module.posterior_mean_rates(batch)`` for every validation batch, and at the end of the
    epoch scores the whole split with :func:`lfads.evaluation.validation_metrics` (per session, then
    averaged). Under DDP each process validated a shard of the trials; the shards are gathered so that
    every process scores their union (R2 and bits/spike of a split are not the mean of its shards').
    """

    def __init__(self) -> None:
        self._cache: list[tuple[int, SessionBatch, torch.Tensor]] = []

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._cache = []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: dict[int, SessionBatch | None], batch_idx: int, dataloader_idx: int = 0) -> None:
        batch = {s: b for s, b in batch.items() if b is not None}
        rates = pl_module.posterior_mean_rates(batch)
        self._cache.extend((s, b, rates[s].detach()) for s, b in batch.items())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lfads.evaluation import validation_metrics

        cache, self._cache = _gather(trainer, self._cache), []
        if not cache:
            return
        for name, value in validation_metrics(cache).items():
            tensor = torch.tensor(value, dtype=torch.float32, device=pl_module.device)
            pl_module.log(f"valid/{name}", tensor, sync_dist=True)


def _gather(trainer: pl.Trainer, cache: list) -> list:
    """The union of every process's ``(session, batch, rates)`` items (``cache`` itself in one process)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if trainer.world_size == 1 or not distributed:
        return cache
    local = [(s, SessionBatch(*(None if t is None else t.cpu() for t in b)), r.cpu()) for s, b, r in cache]
    shards: list = [None] * trainer.world_size
    torch.distributed.all_gather_object(shards, local)
    return [item for shard in shards for item in shard]


PENDING_LOG_KEY = "lfads_pending_epoch_log"
"""Checkpoint key of the epoch's training metrics that Lightning logs after the checkpoint is written."""


def rng_states() -> dict[str, Any]:
    """The states of the torch (CPU and CUDA), numpy and Python random number generators, as plain data.

    The numpy state is stored as a list of ints, so that a checkpoint holding it loads with
    ``torch.load(weights_only=True)``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_states` (generators it does not hold are left as they are)."""
    if "torch" in states:
        torch.set_rng_state(states["torch"].cpu())
    if "numpy" in states:
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


class ResumableState(Callback):
    """Make a fit resumed from a checkpoint continue as the uninterrupted fit would have.

    - The random number generators (torch, numpy, Python, CUDA) are saved with every checkpoint
      (:meth:`state_dict`) and restored when a fit resumes from it (:meth:`load_state_dict`, which
      Lightning calls before the first resumed epoch draws its data order). The shuffling of the training
      data, dropout, coordinated dropout and the posterior samples then draw the same numbers as they would
      have without the interruption.
    - A checkpoint written at the end of a training epoch is written before Lightning steps the plateau
      learning-rate schedules of that epoch, and a resumed fit does not repeat the step. The checkpoint
      therefore stores the schedules (and the learning rates) as they are after that step, computed on a
      copy (:func:`step_plateau_schedules`).
    - It also stores, under :data:`PENDING_LOG_KEY`, the epoch's training metrics, which Lightning logs
      only after the checkpoint is written; a fit resumed in place adds them to ``metrics.csv`` if the
      interrupted fit died before logging them.
    """

    def __init__(self) -> None:
        self._epoch_ended = False

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            set_rng_states(state_dict["rng"])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_ended = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_ended = True  # runs before the checkpoint callbacks' own epoch-end hooks

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not self._epoch_ended:
            return
        step_plateau_schedules(trainer, pl_module, checkpoint)
        pending = self._pending_epoch_log(trainer)
        if pending is not None:
            checkpoint[PENDING_LOG_KEY] = pending

    @staticmethod
    def _pending_epoch_log(trainer: pl.Trainer) -> dict[str, Any] | None:
        """The row Lightning is about to log for the finished training epoch: metrics, ``epoch``, ``step``."""
        connector = getattr(trainer, "_logger_connector", None)
        try:
            logged = connector.metrics["log"]  # the epoch means the logger connector logs next
            step = trainer.fit_loop.epoch_loop._batches_that_stepped - 1
        except (AttributeError, AssertionError, KeyError, TypeError):
            return None
        metrics = {name: float(value) for name, value in logged.items()}
        if not metrics:
            return None
        return {"epoch": int(trainer.current_epoch), "step": int(step), "metrics": metrics}


def step_plateau_schedules(trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
    """Put into ``checkpoint`` the plateau schedules and learning rates as the end of this epoch leaves them.

    For each ``ReduceLROnPlateau`` schedule that Lightning steps at the end of the current epoch (interval
    ``epoch``, matching ``frequency``, its monitored metric available), a copy of the schedule and of its
    optimizer's parameter groups is stepped through ``pl_module.lr_scheduler_step`` (which decides, as
    in training, whether the step applies), and the copy's states replace the checkpoint's. The fit's own
    schedule and optimizer are not touched; Lightning steps them right after the checkpoint is written.
    """
    if not pl_module.automatic_optimization or not checkpoint.get("lr_schedulers"):
        return
    for i, config in enumerate(trainer.lr_scheduler_configs):
        if not config.reduce_on_plateau or config.interval != "epoch" or (trainer.current_epoch + 1) % config.frequency:
            continue
        value = trainer.callback_metrics.get(config.monitor)
        optimizer = config.scheduler.optimizer
        index = next((j for j, opt in enumerate(trainer.optimizers) if opt is optimizer), None)
        if value is None or index is None:
            continue
        # Copy the schedule and the parameter groups, sharing the parameters and leaving the moments out.
        memo: dict[int, Any] = {id(p): p for group in optimizer.param_groups for p in group["params"]}
        memo[id(optimizer.state)] = {}
        optimizer_copy, scheduler_copy = copy.deepcopy((optimizer, config.scheduler), memo)
        pl_module.lr_scheduler_step(scheduler_copy, value)
        checkpoint["lr_schedulers"][i] = scheduler_copy.state_dict()
        for saved, group in zip(checkpoint["optimizer_states"][index]["param_groups"], optimizer_copy.param_groups):
            saved["lr"] = group["lr"]


class DivergenceGuard(Callback):
    """Stop the fit at the first training step whose loss or gradient norm is not finite.

    The loss of each step is taken before its backward pass (:meth:`on_before_backward`) and checked,
    with the total norm of the gradients, before the optimizer applies them (:meth:`on_before_optimizer_step`):
    the weights are never updated with a non-finite step. Steps that reach no optimizer step (manual
    optimization) are checked on their returned loss at :meth:`on_train_batch_end`. Under 16-bit mixed
    precision the gradient scaler skips non-finite gradients itself, so only the loss is checked there.

    A divergence raises :class:`lfads.errors.TrainingDivergedError` naming the epoch, the step and the
    newest checkpoint on disk. No checkpoint is ever written with non-finite weights
    (:meth:`on_save_checkpoint` refuses one), so the named checkpoint holds the last finite weights. The
    check runs at every step, whatever the validation frequency.
    """

    def __init__(self) -> None:
        self._loss: torch.Tensor | None = None
        self._checked = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._loss, self._checked = None, False

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._checked = True
        loss = self._loss if self._loss is not None else torch.zeros((), device=pl_module.device)
        norm = torch.zeros((), device=loss.device)
        if "16" not in str(trainer.precision) or "bf16" in str(trainer.precision):
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads:
                norm = torch.nn.utils.get_total_norm(grads).to(loss.device)
        if not bool(torch.isfinite(loss).all() & torch.isfinite(norm)):  # one device sync per step
            what = f"loss = {_number(loss)}"
            if torch.isfinite(loss).all():
                what += f", gradient norm = {_number(norm)}"
            raise self.error(trainer, what)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._checked:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss) and not bool(torch.isfinite(loss.detach()).all()):
            raise self.error(trainer, f"loss = {_number(loss)}")

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        bad = [name for name, value in checkpoint.get("state_dict", {}).items()
               if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:
            raise self.error(trainer, f"non-finite weights in {bad[0]}")

    @staticmethod
    def error(trainer: pl.Trainer, what: str) -> TrainingDivergedError:
        """The error naming the epoch, the step (``trainer.global_step``) and the newest checkpoint."""
        ckpt = last_checkpoint(trainer)
        where = f"last good checkpoint: {ckpt}" if ckpt is not None else "no checkpoint was written yet"
        return TrainingDivergedError(
            f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step} ({what}); {where}; "
            "try a lower model.lr_init or trainer.gradient_clip_val"
        )


def _number(value: torch.Tensor) -> str:
    """A tensor's first non-finite element (or its first element) as text: ``nan``, ``inf``, ``-inf``."""
    flat = value.detach().float().flatten()
    bad = flat[~torch.isfinite(flat)]
    return f"{float((bad if bad.numel() else flat)[0]):g}" if flat.numel() else "nan"


def last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest checkpoint file on disk among those the fit's :class:`ModelCheckpoint` callbacks wrote."""
    paths = []
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            paths += [cb.last_model_path, cb.best_model_path, *cb.best_k_models]
    found = [Path(p) for p in dict.fromkeys(paths) if p and os.path.isfile(p)]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def metric_callbacks() -> list[Callback]:
    """The callbacks that log the smoothed validation costs and the NLB validation metrics."""
    return [SmoothedValidation(), ValidationMetrics()]


def default_callbacks() -> list[Callback]:
    """Callbacks of ``lfads fit``: metrics, resumable state, the divergence guard and the two checkpoints.

    These are :func:`metric_callbacks`, :class:`ResumableState` and :class:`DivergenceGuard`.

    ``checkpoints/`` keeps the best model by :data:`BEST_CHECKPOINT_MONITOR` (the smoothed validation
    objective once the ramps are complete: the KL terms keep a model whose inferred inputs pass spike
    noise to the generator from being the one kept, and no model from inside the ramps counts) and
    ``last.ckpt``, rewritten at the end of every training epoch whatever the validation frequency.
    """
    return metric_callbacks() + [
        ResumableState(),
        DivergenceGuard(),
        ModelCheckpoint(monitor=BEST_CHECKPOINT_MONITOR, mode="min", save_top_k=1),
        ModelCheckpoint(filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True),
    ]
