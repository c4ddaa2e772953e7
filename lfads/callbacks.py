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
  (``valid/bps``, ``valid/co_bps``, ``valid/fp_bps``, ``valid/rate_r2``) over the whole validation
  split, gathered from every process under DDP.
- :func:`default_callbacks`: the callbacks ``lfads fit`` trains with, including the two checkpoints
  (the best by :data:`BEST_CHECKPOINT_MONITOR` and ``last.ckpt``).

A model trained without these callbacks logs the ELBO terms only; the plateau LR schedule then has no
``valid/recon_smth`` to monitor.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from lfads.data.batch import SessionBatch

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


def metric_callbacks() -> list[Callback]:
    """The callbacks that log the smoothed validation costs and the NLB validation metrics."""
    return [SmoothedValidation(), ValidationMetrics()]


def default_callbacks() -> list[Callback]:
    """Callbacks of ``lfads fit``: :func:`metric_callbacks` and the two checkpoints.

    ``checkpoints/`` keeps the best model by :data:`BEST_CHECKPOINT_MONITOR` (the smoothed validation
    objective once the ramps are complete: the KL terms keep a model whose inferred inputs pass spike
    noise to the generator from being the one kept, and no model from inside the ramps counts) and
    ``last.ckpt``, rewritten after every epoch.
    """
    return metric_callbacks() + [
        ModelCheckpoint(monitor=BEST_CHECKPOINT_MONITOR, mode="min", save_top_k=1),
        ModelCheckpoint(filename="last", monitor=None, save_top_k=1),
    ]
