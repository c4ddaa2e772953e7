"""LFADS under Lightning's DDP (``ddp_spawn``, two CPU processes): replicas stay identical and the logged
validation metrics equal a single-process evaluation of the trained weights."""

from __future__ import annotations

import csv
import json

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from lfads.callbacks import SmoothedValidation, ValidationMetrics, metric_callbacks
from lfads.data.datamodule import LFADSDataModule
from lfads.model import LFADS

pytestmark = pytest.mark.slow  # two training processes

BATCH_SIZE = 4  # the small Lorenz set has 8 validation trials = 2 processes x BATCH_SIZE: no sampler padding
VALID_METRICS = ("valid/loss", "valid/recon", "valid/kl_ic", "valid/heldin_bps", "valid/co_bps", "valid/rate_r2")


class PosteriorMeanLFADS(LFADS):
    """LFADS whose evaluation passes use the posterior means, so validation metrics are deterministic.

    Training is unchanged (sampled ICs); only the validation loss loses its sampling noise, which makes the
    distributed and single-process evaluations comparable to float precision.
    """

    def forward(self, encod, ext_input=None, sample=True):
        return super().forward(encod, ext_input, sample=sample and self.training)


class RecordRank(Callback):
    """Each process writes its parameters, epoch-end metrics and the trials it validated to ``rank{r}.pt``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.epochs: list[dict] = []
        self.valid_trials = 0

    def on_validation_epoch_start(self, trainer, pl_module):
        self.valid_trials = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.valid_trials += sum(b.encod_data.shape[0] for b in batch.values() if b is not None)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}
            smoothed = next(c for c in trainer.callbacks if isinstance(c, SmoothedValidation)).recon
            self.epochs.append({"metrics": metrics, "smoothed": smoothed, "trials": self.valid_trials})

    def on_train_end(self, trainer, pl_module):
        torch.save({
            "train_metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")},
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "train_batches": trainer.num_training_batches,
            "state": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            "epochs": self.epochs,
        }, f"{self.out_dir}/rank{trainer.global_rank}.pt")


def make_model(dm: LFADSDataModule) -> LFADS:
    return PosteriorMeanLFADS(
        encod_data_dims=dm.encod_data_dims, recon_data_dims=dm.recon_data_dims,
        encod_seq_len=dm.encod_seq_len, recon_seq_len=dm.recon_seq_len, ext_input_dim=dm.ext_input_dim,
        ic_enc_dim=8, ci_enc_dim=8, con_dim=0, co_dim=0, ic_dim=8, gen_dim=16, fac_dim=4, dropout_rate=0.1,
        kl_increase_epoch=0, l2_gen_scale=0.1, l2_increase_epoch=0, lr_init=0.01,
    )  # ramps of length 0: the loss is the same at every epoch, so a fresh Trainer can re-evaluate it


@pytest.fixture(scope="module")
def ddp_run(small_lorenz, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    dm = LFADSDataModule(str(small_lorenz), batch_size=BATCH_SIZE)
    pl.seed_everything(0)
    model = make_model(dm)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2, logger=CSVLogger(str(out), name="ddp"),
        callbacks=[*metric_callbacks(), ModelCheckpoint(monitor="valid/recon_smth", mode="min", save_last=True,
                                                        save_top_k=1), RecordRank(str(out))],
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )
    trainer.fit(model, dm)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return out, dm, ranks


def test_ddp_runs_two_processes_on_disjoint_halves_of_the_data(ddp_run):
    _, dm, ranks = ddp_run
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    n_train = dm.sessions[0].splits["train"].n_trials
    for r in ranks:
        assert r["train_batches"] == n_train // (2 * BATCH_SIZE)  # effective batch: BATCH_SIZE x 2 processes
        assert [e["trials"] for e in r["epochs"]] == [4, 4]  # 8 validation trials split between the 2


def test_ddp_replicas_end_with_identical_parameters(ddp_run):
    _, _, (rank0, rank1) = ddp_run
    assert rank0["state"].keys() == rank1["state"].keys()
    for name, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][name]), f"{name} differs between the processes"
    initial = make_model(LFADSDataModule(str(ddp_run[1].sessions[0].path), batch_size=BATCH_SIZE)).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in rank0["state"].items() if k in initial)  # it trained


def test_smoothed_validation_cost_is_identical_on_all_ranks(ddp_run):
    _, _, (rank0, rank1) = ddp_run
    smth0 = [e["metrics"]["valid/recon_smth"] for e in rank0["epochs"]]
    assert smth0 == [e["metrics"]["valid/recon_smth"] for e in rank1["epochs"]]
    assert [e["smoothed"] for e in rank0["epochs"]] == [e["smoothed"] for e in rank1["epochs"]]
    # recon_smth_e = a * recon_e + (1 - a) * recon_smth_{e-1}, from the globally reduced valid/recon
    a = 0.3
    recon = [e["metrics"]["valid/recon"] for e in rank0["epochs"]]
    assert smth0[0] == pytest.approx(recon[0], rel=1e-6)
    assert smth0[1] == pytest.approx(a * recon[1] + (1 - a) * smth0[0], rel=1e-6)
    for name in VALID_METRICS:  # every validation metric is reduced to one value shared by the ranks
        assert [e["metrics"][name] for e in rank0["epochs"]] == [e["metrics"][name] for e in rank1["epochs"]]


def test_training_metrics_are_averaged_over_both_processes(ddp_run):
    _, _, (rank0, rank1) = ddp_run
    assert {"train/loss", "train/recon", "train/kl_ic"} <= set(rank0["train_metrics"])
    assert rank0["train_metrics"] == rank1["train_metrics"]


def test_logged_validation_metrics_match_a_single_process_evaluation(ddp_run):
    out, dm, (rank0, _) = ddp_run
    model = make_model(dm)
    model.load_state_dict(rank0["state"])
    single = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ValidationMetrics()])
    (evaluated,) = single.validate(model, dm, verbose=False)
    with open(out / "ddp" / "version_0" / "metrics.csv", newline="") as f:
        logged = [r for r in csv.DictReader(f) if r.get("valid/loss")]
    assert [int(r["epoch"]) for r in logged] == [0, 1]
    final = rank0["epochs"][-1]["metrics"]
    for name in VALID_METRICS:
        assert float(logged[-1][name]) == pytest.approx(evaluated[name], rel=1e-5, abs=1e-7), name
        assert final[name] == pytest.approx(evaluated[name], rel=1e-5, abs=1e-7), json.dumps(
            {"metric": name, "ddp": final[name], "single": evaluated[name]})
