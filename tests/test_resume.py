"""`lfads fit --resume`: a fit killed with SIGKILL continues in its own run folder, as if never stopped."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lfads.errors import CheckpointError, LFADSConfigError
from lfads.lightning_cli import build_lightning_cli, continue_metrics_file
from lfads.rundir import find_checkpoint, load_metrics, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 10


def tiny_fit_args(data: Path, save_dir: Path, *extra: str) -> list[str]:
    logger = json.dumps([
        {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(save_dir), "name": "tiny"}},
        {"class_path": "pytorch_lightning.loggers.TensorBoardLogger",
         "init_args": {"save_dir": str(save_dir), "name": "tiny"}},
    ])
    return [
        "fit", "--config", str(REPO / "configs/lorenz.yaml"),
        "--data.data_paths", str(data), "--data.batch_size", "8",
        "--model.gen_dim", "16", "--model.ic_dim", "8", "--model.fac_dim", "4", "--model.con_dim", "8",
        "--model.ic_enc_dim", "8", "--model.ci_enc_dim", "8",
        # the KL ramp ends at epoch 2 and the plateau schedule (patience 0) then acts every epoch
        "--model.kl_increase_epoch", "2", "--model.lr_patience", "0", "--model.dropout_rate", "0.2",
        "--trainer.max_epochs", str(EPOCHS), "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", logger, *extra,
    ]


def lfads_process(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "lfads", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def epochs_in_csv(path: Path) -> set[int]:
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {int(float(row["epoch"])) for row in csv.DictReader(f) if row.get("epoch")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def killed_and_resumed(small_lorenz, tmp_path_factory):
    """An uninterrupted fit, and the same fit killed with SIGKILL after epoch 1 and resumed with --resume."""
    root = tmp_path_factory.mktemp("resume")
    whole = lfads_process(tiny_fit_args(small_lorenz, root / "whole"), root / "whole.log")
    killed = lfads_process(tiny_fit_args(small_lorenz, root / "killed"), root / "killed.log")
    run = root / "killed" / "tiny" / "version_0"
    deadline = time.monotonic() + 300
    # A row of epoch 2 is logged after checkpoints/last.ckpt of epoch 1 is written.
    while killed.poll() is None and max(epochs_in_csv(run / "metrics.csv"), default=-1) < 2:
        assert time.monotonic() < deadline, "the fit to be killed made no progress"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, (root / "killed.log").read_text()[-2000:]
    epochs_at_kill = max(epochs_in_csv(run / "metrics.csv"))
    killed_ckpt_epoch = read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"]
    config_sha = sha256(run / "config.yaml")
    print(f"killed after epoch {epochs_at_kill} was logged; last.ckpt holds epoch {killed_ckpt_epoch}")
    resumed = lfads_process(["fit", "--resume", str(run)], root / "resumed.log")
    assert resumed.wait(timeout=600) == 0, (root / "resumed.log").read_text()[-3000:]
    assert whole.wait(timeout=600) == 0, (root / "whole.log").read_text()[-3000:]
    return {"run": run, "whole": root / "whole" / "tiny" / "version_0", "epochs_at_kill": epochs_at_kill,
            "killed_ckpt_epoch": killed_ckpt_epoch, "config_sha": config_sha, "log": root / "resumed.log"}


@pytest.mark.slow
def test_resumed_fit_continues_in_the_same_run_folder(killed_and_resumed):
    run = killed_and_resumed["run"]
    assert killed_and_resumed["epochs_at_kill"] < EPOCHS - 1  # killed mid-training
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    assert sha256(run / "config.yaml") == killed_and_resumed["config_sha"]
    assert f"Continuing {run}" in killed_and_resumed["log"].read_text()


@pytest.mark.slow
def test_resumed_metrics_cover_every_epoch_once(killed_and_resumed):
    m = load_metrics(killed_and_resumed["run"] / "metrics.csv")
    for key in ("train/loss", "valid/loss", "valid/loss_smth"):
        rows = np.isfinite(m[key])
        assert sorted(m["epoch"][rows].astype(int)) == list(range(EPOCHS)), key


@pytest.mark.slow
def test_resumed_fit_equals_the_uninterrupted_fit(killed_and_resumed):
    run, whole = killed_and_resumed["run"], killed_and_resumed["whole"]
    resumed = read_checkpoint(run / "checkpoints" / "last.ckpt")
    uninterrupted = read_checkpoint(whole / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == uninterrupted["epoch"] == EPOCHS - 1
    diff = max(float((resumed["state_dict"][k] - v).abs().max()) for k, v in uninterrupted["state_dict"].items())
    print(f"largest weight difference, resumed vs uninterrupted: {diff:g}")
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, atol=1e-6, rtol=0, msg=name)
    # learning rates after the plateau schedule, and every logged value, match too
    lr = [g["lr"] for s in (resumed, uninterrupted) for g in s["optimizer_states"][0]["param_groups"]]
    assert lr[0] == lr[1] and lr[0] < 0.005  # the schedule did decay the rate
    a, b = load_metrics(run / "metrics.csv"), load_metrics(whole / "metrics.csv")
    for key in ("train/loss", "valid/loss", "valid/loss_smth_ramped"):
        np.testing.assert_allclose(a[key][np.isfinite(a[key])], b[key][np.isfinite(b[key])], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_best_checkpoint_is_chosen_over_all_epochs(killed_and_resumed):
    run, whole = killed_and_resumed["run"], killed_and_resumed["whole"]
    assert find_checkpoint(run).name == find_checkpoint(whole).name
    m = load_metrics(run / "metrics.csv")
    ok = np.isfinite(m["valid/loss_smth_ramped"])
    best_epoch = int(m["epoch"][ok][np.argmin(m["valid/loss_smth_ramped"][ok])])
    assert find_checkpoint(run).name.startswith(f"epoch={best_epoch}-")
    assert len(list((run / "checkpoints").glob("epoch=*.ckpt"))) == 1


def write_metrics(path: Path, rows: list[dict]) -> None:
    header = sorted({k for r in rows for k in r})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_continued_metrics_drop_rows_after_the_checkpoint_and_add_its_pending_row(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = [{"epoch": e, "step": 4 * e + 3, "valid/loss": 1.0 + e} for e in range(4)]
    rows += [{"epoch": e, "step": 4 * e + 3, "train/loss": 2.0 + e} for e in range(3)]  # epoch 3's train row lost
    write_metrics(path, rows)
    pending = {"epoch": 1, "step": 7, "metrics": {"train/loss": 3.0}}
    header = continue_metrics_file(path, epoch=1, step=8, pending=pending)
    m = load_metrics(path)
    assert header == ["epoch", "step", "train/loss", "valid/loss"]
    assert sorted(m["epoch"][np.isfinite(m["valid/loss"])]) == [0, 1]
    assert sorted(m["epoch"][np.isfinite(m["train/loss"])]) == [0, 1]  # already logged: not added twice


def test_continued_metrics_add_the_training_row_the_killed_fit_did_not_log(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, [{"epoch": 0, "step": 3, "valid/loss": 1.0}, {"epoch": 0, "step": 3, "train/loss": 2.0},
                         {"epoch": 1, "step": 7, "valid/loss": 0.5}])
    continue_metrics_file(path, epoch=1, step=8, pending={"epoch": 1, "step": 7, "metrics": {"train/loss": 1.5,
                                                                                              "hp/kl_ramp": 1.0}})
    m = load_metrics(path)
    assert list(m) == ["epoch", "hp/kl_ramp", "step", "train/loss", "valid/loss"]
    ok = np.isfinite(m["train/loss"])
    assert m["epoch"][ok].tolist() == [0, 1] and m["train/loss"][ok].tolist() == [2.0, 1.5]
    assert m["step"][ok].tolist() == [3, 7]


def test_resume_of_a_folder_without_last_checkpoint_names_it(tmp_path):
    run = tmp_path / "tiny" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=f"{run}.*no checkpoints/last.ckpt"):
        build_lightning_cli(["fit", "--resume", str(run)])


def test_resume_with_ckpt_path_as_well_is_refused(tmp_path):
    run = tmp_path / "tiny" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(LFADSConfigError, match="--resume.*--ckpt_path"):
        build_lightning_cli(["fit", "--resume", str(run), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])


def test_ckpt_path_last_without_a_checkpoint_is_an_error(small_lorenz, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    monkeypatch.chdir(REPO)
    with pytest.raises(LFADSConfigError, match=r"--ckpt_path last: there is no checkpoints/last.ckpt in any version"):
        build_lightning_cli(tiny_fit_args(small_lorenz, tmp_path, "--ckpt_path", "last"))
    assert not list((tmp_path / "tiny").glob("version_*/checkpoints/*.ckpt"))
