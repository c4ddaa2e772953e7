"""Checkpoints are data, not code: a checkpoint whose pickle would run code is refused unless trusted."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import torch

from lfads.errors import CheckpointError, CheckpointTrustError
from lfads.rundir import find_checkpoint, load_model_and_data, read_checkpoint


class _MakesADirectory:
    """Unpickling this object creates the folder ``path`` (a stand-in for any code a pickle can run)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path, 0o777, True)  # exist_ok: a trusted load may unpickle twice


@pytest.fixture(scope="module")
def trained_run(small_lorenz, tmp_path_factory):
    from lfads.cli import main

    save_dir = tmp_path_factory.mktemp("trust_runs")
    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                          "init_args": {"save_dir": str(save_dir), "name": "tiny"}}])
    argv = sys.argv
    sys.argv = ["lfads"]
    try:
        main(["fit", "--config", "configs/lorenz.yaml", "--data.data_paths", str(small_lorenz),
              "--data.batch_size", "8", "--model.gen_dim", "8", "--model.ic_dim", "4", "--model.fac_dim", "3",
              "--model.ic_enc_dim", "4", "--model.ci_enc_dim", "4", "--model.kl_increase_epoch", "1",
              "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.logger", logger])
    finally:
        sys.argv = argv
    return save_dir / "tiny" / "version_0"


@pytest.fixture
def poisoned(trained_run, tmp_path):
    """A copy of the run whose checkpoints carry an object that creates ``marker`` when unpickled."""
    run = tmp_path / "run" / "version_0"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "marker"
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state["payload"] = _MakesADirectory(str(marker))
        torch.save(state, ckpt)
    return run, marker


def test_checkpoints_written_by_fit_load_as_plain_data(trained_run):
    state = read_checkpoint(find_checkpoint(trained_run), trust=False)
    assert "state_dict" in state and "hyper_parameters" in state
    model, datamodule = load_model_and_data(find_checkpoint(trained_run), trust=False)
    assert model.hparams.gen_dim == 8 and datamodule.sessions


def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(poisoned, monkeypatch):
    run, marker = poisoned
    monkeypatch.delenv("LFADS_TRUST_CHECKPOINTS", raising=False)
    ckpt = run / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointTrustError, match="--trust-checkpoint"):
        read_checkpoint(ckpt)
    with pytest.raises(CheckpointTrustError, match=str(ckpt.name)):
        find_checkpoint(run)
    with pytest.raises(CheckpointTrustError):
        load_model_and_data(next(p for p in (run / "checkpoints").glob("epoch*.ckpt")))
    from lfads.run import load_run

    with pytest.raises(CheckpointTrustError):
        load_run(run)
    assert not marker.exists()


def test_trusted_checkpoint_is_unpickled_in_full(poisoned, monkeypatch):
    run, marker = poisoned
    read_checkpoint(run / "checkpoints" / "last.ckpt", trust=True)
    assert marker.is_dir()
    marker.rmdir()
    monkeypatch.setenv("LFADS_TRUST_CHECKPOINTS", "1")
    read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert marker.is_dir()


@pytest.mark.parametrize("content", [None, b"not a checkpoint\n", b""], ids=["directory", "text", "empty"])
def test_file_that_is_no_checkpoint_gives_a_checkpoint_error_naming_it(tmp_path, content):
    path = tmp_path / "model.ckpt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.ckpt"):
        read_checkpoint(path)


def test_missing_checkpoint_gives_a_checkpoint_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="missing.ckpt"):
        read_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("command", ["sample", "analyze"])
def test_commands_refuse_a_checkpoint_that_would_run_code_until_trusted(poisoned, command, tmp_path, capsys,
                                                                        monkeypatch):
    from lfads.cli import main

    run, marker = poisoned
    monkeypatch.delenv("LFADS_TRUST_CHECKPOINTS", raising=False)
    ckpt = next((run / "checkpoints").glob("epoch*.ckpt"))
    extra = ["--samples", "2"] if command == "sample" else ["--n-initial", "8", "--no-jslds", "--max-trials", "8"]
    argv = [command, "--ckpt", str(ckpt), "--out", str(tmp_path / "out.h5"), "--no-progress", *extra]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"lfads {command}: error:") and "--trust-checkpoint" in line
    assert not marker.exists() and not (tmp_path / "out.h5").exists()
    assert main([*argv, "--trust-checkpoint"]) == 0
    assert marker.is_dir() and (tmp_path / "out.h5").exists()
