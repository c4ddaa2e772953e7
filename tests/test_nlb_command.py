"""`lfads nlb`: submission file of a run fitted to NLB tensors, evaluation target, and scores, end to end."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import h5py
import pytest

from lfads.cli import main

REPO = Path(__file__).resolve().parents[1]
MC_MAZE_SMALL = REPO / "datasets" / "mc_maze_small" / "mc_maze_small_full.h5"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mc_maze_run(tmp_path_factory):
    """A one-epoch fit of a small model to the shipped MC_Maze_Small tensors."""
    save_dir = tmp_path_factory.mktemp("nlb_runs")
    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                          "init_args": {"save_dir": str(save_dir), "name": "maze"}}])
    argv = sys.argv
    sys.argv = ["lfads"]
    try:
        main(["fit", "--config", str(REPO / "configs/mc_maze_small.yaml"), "--data.data_paths", str(MC_MAZE_SMALL),
              "--model.ic_enc_dim", "8", "--model.ci_enc_dim", "8", "--model.con_dim", "8", "--model.co_dim", "2",
              "--model.ic_dim", "8", "--model.gen_dim", "16", "--model.fac_dim", "4", "--model.kl_increase_epoch", "1",
              "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.logger", logger])
    finally:
        sys.argv = argv
    return save_dir / "maze" / "version_0"


def test_submit_target_and_score_round_trip(mc_maze_run, tmp_path, capsys):
    before = sha256(MC_MAZE_SMALL)
    submission, target = tmp_path / "submission.h5", tmp_path / "target.h5"
    assert main(["nlb", "submit", "--run", str(mc_maze_run), "--dataset", "mc_maze_small", "--out", str(submission),
                 "--samples", "4", "--no-progress"]) == 0
    with h5py.File(submission, "r") as f:
        shapes = {k: f["mc_maze_small"][k].shape for k in f["mc_maze_small"]}
    with h5py.File(MC_MAZE_SMALL, "r") as f:
        n_train, t, n_in = f["train_spikes_heldin"].shape
        n_out = f["train_spikes_heldout"].shape[2]
        n_eval = f["eval_spikes_heldin"].shape[0]
    assert shapes["train_rates_heldin"] == (n_train, t, n_in)
    assert shapes["train_rates_heldout"] == (n_train, t, n_out)
    assert shapes["eval_rates_heldin"] == (n_eval, t, n_in)
    assert shapes["eval_rates_heldout"] == (n_eval, t, n_out)
    assert main(["nlb", "target", "--tensors", str(MC_MAZE_SMALL), "--dataset", "mc_maze_small",
                 "--out", str(target)]) == 0
    capsys.readouterr()
    assert main(["nlb", "score", "--submission", str(submission), "--target", str(target)]) == 0
    table = capsys.readouterr().out
    assert "co-bps" in table or "co_bps" in table
    assert sha256(MC_MAZE_SMALL) == before


@pytest.mark.parametrize("out_is", ["tensor file", "checkpoint"])
def test_submit_never_writes_onto_its_inputs(mc_maze_run, out_is, capsys):
    ckpt = next((mc_maze_run / "checkpoints").glob("*.ckpt"))
    out = MC_MAZE_SMALL if out_is == "tensor file" else ckpt
    before = sha256(out)
    with pytest.raises(SystemExit) as exit_info:
        main(["nlb", "submit", "--run", str(mc_maze_run), "--dataset", "mc_maze_small", "--out", str(out),
              "--overwrite", "--samples", "2", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lfads nlb: error: Refusing to write")
    assert sha256(out) == before


def test_unknown_dataset_name_is_one_line(mc_maze_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["nlb", "submit", "--run", str(mc_maze_run), "--dataset", "mc_maze_tiny", "--out",
              str(tmp_path / "s.h5"), "--samples", "2", "--no-progress"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads nlb: error:") and "mc_maze_tiny" in line
    assert not (tmp_path / "s.h5").exists()


def test_a_folder_or_missing_file_given_to_score_or_target_is_named_with_its_option(tmp_path, capsys):
    folder = tmp_path / "submission.h5"
    folder.mkdir()
    cases = [
        (["nlb", "score", "--submission", str(folder), "--target", str(MC_MAZE_SMALL)], "--submission", "is a folder"),
        (["nlb", "target", "--tensors", str(tmp_path / "absent.h5"), "--dataset", "mc_maze_small", "--out",
          str(tmp_path / "t.h5")], "--tensors", "file not found"),
    ]
    for argv, option, says in cases:
        with pytest.raises(SystemExit):
            main(argv)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith("lfads nlb: error:") and f"{option} " in line and says in line
        assert "glob" not in line  # one file is expected here, not several
    assert not (tmp_path / "t.h5").exists()
