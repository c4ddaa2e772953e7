"""lfads.callbacks: smoothed validation costs (and their resume), NLB validation metrics, the fit's checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from lfads import metrics
from lfads.callbacks import (
    BEST_CHECKPOINT_MONITOR,
    SmoothedValidation,
    ValidationMetrics,
    default_callbacks,
)
from lfads.data.datamodule import LFADSDataModule
from lfads.model import LFADS

A = 0.3  # LFADS's default `smoothing`


# ---------------------------------------------------------------------------- the averages themselves
def test_average_starts_at_the_first_epoch_then_follows_the_exponential_recurrence() -> None:
    cb = SmoothedValidation()
    costs = [(2.0, 5.0), (1.0, 4.0), (0.5, 2.0)]
    for recon, loss in costs:
        cb.update(recon, loss, A, ramped_epoch=True)
    recon_bar, loss_bar = costs[0]
    for recon, loss in costs[1:]:
        recon_bar, loss_bar = A * recon + (1 - A) * recon_bar, A * loss + (1 - A) * loss_bar
    assert (cb.recon, cb.loss) == pytest.approx((recon_bar, loss_bar), rel=1e-12)


def test_average_restarts_at_the_first_full_weight_epoch() -> None:
    cb = SmoothedValidation()
    cb.update(9.0, 90.0, A, ramped_epoch=False)
    cb.update(7.0, 70.0, A, ramped_epoch=False)
    assert cb.recon == pytest.approx(A * 7.0 + (1 - A) * 9.0)  # averaged inside the ramp
    cb.update(3.0, 30.0, A, ramped_epoch=True)
    assert (cb.recon, cb.loss, cb.ramped) == (3.0, 30.0, True)  # ramp-time costs dropped
    cb.update(1.0, 10.0, A, ramped_epoch=True)
    assert cb.loss == pytest.approx(A * 10.0 + (1 - A) * 30.0)


def test_state_round_trips_through_state_dict() -> None:
    cb = SmoothedValidation()
    cb.update(1.5, 2.5, A, ramped_epoch=True)
    restored = SmoothedValidation()
    restored.load_state_dict(cb.state_dict())
    assert (restored.recon, restored.loss, restored.ramped) == (1.5, 2.5, True)


def test_checkpoints_written_by_the_model_itself_restore_the_averages() -> None:
    legacy = {"valid_recon_smoothed": 0.25, "valid_loss_smoothed": 0.75, "valid_recon_smoothed_ramped": True}
    cb = SmoothedValidation()
    cb.on_load_checkpoint(None, None, legacy)
    assert (cb.recon, cb.loss, cb.ramped) == (0.25, 0.75, True)
    untouched = SmoothedValidation()
    untouched.on_load_checkpoint(None, None, {"state_dict": {}})
    assert (untouched.recon, untouched.loss, untouched.ramped) == (None, None, False)


def test_default_callbacks_keep_the_best_by_the_ramped_objective_and_the_last() -> None:
    callbacks = default_callbacks()
    assert [type(c) for c in callbacks[:2]] == [SmoothedValidation, ValidationMetrics]
    best, last = (c for c in callbacks if isinstance(c, ModelCheckpoint))
    assert best.monitor == BEST_CHECKPOINT_MONITOR == "valid/loss_smth_ramped" and best.mode == "min"
    assert last.monitor is None and last.filename == "last"


# ---------------------------------------------------------------------------- in a fit
def _model(dm: LFADSDataModule, cls: type[LFADS] = LFADS, **kwargs) -> LFADS:
    return cls(
        encod_data_dims=dm.encod_data_dims, recon_data_dims=dm.recon_data_dims, encod_seq_len=dm.encod_seq_len,
        recon_seq_len=dm.recon_seq_len, ext_input_dim=dm.ext_input_dim, ic_enc_dim=8, ci_enc_dim=8, con_dim=0,
        co_dim=0, ic_dim=8, gen_dim=16, fac_dim=4, dropout_rate=0.1, kl_increase_epoch=0, lr_init=0.01, **kwargs,
    )  # KL ramp of length 0: every epoch is a full-weight epoch


def _trainer(log_dir, max_epochs: int, callbacks: list) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", max_epochs=max_epochs, logger=CSVLogger(str(log_dir), name="", version=""),
        callbacks=callbacks, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(log_dir),
    )


def _logged(log_dir, key: str) -> dict[int, float]:
    with open(log_dir / "metrics.csv", newline="") as f:
        return {int(r["epoch"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


@pytest.fixture(scope="module")
def first_fit(small_lorenz, tmp_path_factory):
    """Two epochs with ``lfads fit``'s callbacks; returns the run folder (its last.ckpt is epoch 1)."""
    out = tmp_path_factory.mktemp("first")
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    pl.seed_everything(0)
    _trainer(out, 2, default_callbacks()).fit(_model(dm), dm)
    return out, dm


def _resume(first_fit, tmp_path, ckpt) -> tuple[dict[int, float], dict[int, float]]:
    """Train epochs 2 and 3 from ``ckpt`` with fresh callbacks; logged ``valid/loss`` and ``valid/loss_smth``."""
    _, dm = first_fit
    _trainer(tmp_path, 4, default_callbacks()).fit(_model(dm), dm, ckpt_path=str(ckpt))
    return _logged(tmp_path, "valid/loss"), _logged(tmp_path, "valid/loss_smth")


def _assert_continues(before: dict[int, float], loss: dict[int, float], smoothed: dict[int, float]) -> None:
    assert sorted(loss) == sorted(smoothed) == [2, 3]
    previous = before[1]
    for epoch in (2, 3):
        expected = A * loss[epoch] + (1 - A) * previous
        assert smoothed[epoch] == pytest.approx(expected, rel=1e-6), epoch
        previous = smoothed[epoch]
    assert smoothed[2] != pytest.approx(loss[2], rel=1e-4)  # a restarted average would equal the raw cost


def test_fit_logs_the_smoothed_costs_of_its_validation_epochs(first_fit) -> None:
    out, _ = first_fit
    loss, smoothed = _logged(out, "valid/loss"), _logged(out, "valid/loss_smth")
    ramped = _logged(out, "valid/loss_smth_ramped")
    assert smoothed[0] == pytest.approx(loss[0], rel=1e-6)
    assert smoothed[1] == pytest.approx(A * loss[1] + (1 - A) * smoothed[0], rel=1e-6)
    assert ramped == smoothed  # every epoch is at full weight


def test_fit_resumed_from_last_checkpoint_continues_the_smoothed_average(first_fit, tmp_path) -> None:
    out, _ = first_fit
    loss, smoothed = _resume(first_fit, tmp_path, out / "checkpoints" / "last.ckpt")
    _assert_continues(_logged(out, "valid/loss_smth"), loss, smoothed)


def test_fit_resumed_from_a_checkpoint_with_the_model_level_keys_continues_the_average(first_fit, tmp_path) -> None:
    out, _ = first_fit
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    own = state["callbacks"].pop("SmoothedValidation")  # the layout of checkpoints written by LFADS itself
    state.update(valid_recon_smoothed=own["recon"], valid_loss_smoothed=own["loss"],
                 valid_recon_smoothed_ramped=own["ramped"])
    legacy = tmp_path / "legacy.ckpt"
    torch.save(state, legacy)
    loss, smoothed = _resume(first_fit, tmp_path / "run", legacy)
    _assert_continues(_logged(out, "valid/loss_smth"), loss, smoothed)


class _RecordPlateauMetric(LFADS):
    """LFADS that records the metric value each plateau-schedule step receives."""

    def lr_scheduler_step(self, scheduler, metric) -> None:
        self.scheduler_metrics = [*getattr(self, "scheduler_metrics", []), float(metric)]
        super().lr_scheduler_step(scheduler, metric)


def test_plateau_schedule_steps_on_the_smoothed_cost_of_the_epoch_just_validated(small_lorenz, tmp_path) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    pl.seed_everything(1)
    model = _model(dm, _RecordPlateauMetric, lr_scheduler=True)
    _trainer(tmp_path, 3, [SmoothedValidation()]).fit(model, dm)
    logged = _logged(tmp_path, "valid/recon_smth")
    assert model.scheduler_metrics == pytest.approx([logged[e] for e in range(3)], rel=1e-6)
    assert len(set(model.scheduler_metrics)) == 3


def test_model_without_the_callbacks_logs_only_its_own_costs(small_lorenz, tmp_path) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    (logged,) = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                           enable_model_summary=False).validate(_model(dm), dm, verbose=False)
    assert {"valid/loss", "valid/recon", "valid/sv_nll"} <= set(logged)
    assert not [k for k in logged if "_smth" in k or k in ("valid/heldin_bps", "valid/co_bps", "valid/rate_r2")]


def test_validation_metrics_score_the_posterior_mean_rates_of_the_whole_split(small_lorenz) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=3)  # 8 validation trials: batches of 3, 3 and 2
    pl.seed_everything(2)
    model = _model(dm)
    (logged,) = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                           callbacks=[ValidationMetrics()]).validate(model, dm, verbose=False)
    valid = dm.sessions[0].splits["valid"]
    model.eval()
    (whole,) = dm.split_dataloader(0, "valid", batch_size=len(valid.encod_data))  # the reference: one batch
    rates = model.posterior_mean_rates({0: whole})[0].numpy().astype(np.float64)
    counts, truth = np.asarray(valid.recon_data), np.asarray(valid.truth)
    t_enc, n_in = np.asarray(valid.encod_data).shape[1:]
    assert logged["valid/rate_r2"] == pytest.approx(metrics.rate_r2(rates, truth), rel=1e-5)
    assert logged["valid/heldin_bps"] == pytest.approx(
        metrics.bits_per_spike(rates[:, :t_enc, :n_in], counts[:, :t_enc, :n_in]), rel=1e-4, abs=1e-6)
    assert logged["valid/co_bps"] == pytest.approx(
        metrics.bits_per_spike(rates[:, :t_enc, n_in:], counts[:, :t_enc, n_in:]), rel=1e-4, abs=1e-6)
