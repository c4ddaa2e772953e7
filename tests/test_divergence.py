"""A fit stops at the first training step whose loss or gradients are not finite, whatever the validation
frequency, and names the last checkpoint with finite weights."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from test_resume import tiny_fit_args

from lfads.callbacks import default_callbacks
from lfads.cli import main
from lfads.errors import TrainingDivergedError
from lfads.lightning_cli import build_lightning_cli
from lfads.rundir import read_checkpoint

STEPS_PER_EPOCH = 4  # 32 training trials in batches of 8
# (without the plateau schedule, which needs a validation metric every epoch)
INFREQUENT_VALIDATION = ("--trainer.check_val_every_n_epoch", "20", "--trainer.max_epochs", "6",
                         "--model.lr_scheduler", "false")


class PoisonAtStep(Callback):
    """At global step ``step``, make a weight NaN (``"weights"``) or the gradient of every weight NaN (``"grads"``)."""

    def __init__(self, step: int, what: str) -> None:
        self.step, self.what, self.model = step, what, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        self.model = pl_module
        weight = next(pl_module.parameters())
        if self.what == "weights":
            with torch.no_grad():
                weight.view(-1)[0] = float("nan")
        else:
            weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lfads"])


def fit_until_diverged(small_lorenz, tmp_path, poison: PoisonAtStep) -> TrainingDivergedError:
    args = tiny_fit_args(small_lorenz, tmp_path, *INFREQUENT_VALIDATION)
    with pytest.raises(TrainingDivergedError) as info:
        build_lightning_cli(args, callbacks=default_callbacks() + [poison])
    return info.value


def test_nan_loss_stops_the_fit_at_that_step_and_names_the_last_good_checkpoint(small_lorenz, tmp_path):
    step = 2 * STEPS_PER_EPOCH + 1  # the second step of epoch 2
    error = fit_until_diverged(small_lorenz, tmp_path, PoisonAtStep(step, "weights"))
    last = tmp_path / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    assert str(error) == (f"training diverged at epoch 2, step {step} (loss = nan); last good checkpoint: {last}; "
                          "try a lower model.lr_init or trainer.gradient_clip_val")
    state = read_checkpoint(last)
    assert (state["epoch"], state["global_step"]) == (1, 2 * STEPS_PER_EPOCH)  # not rewritten after the NaN step
    assert all(torch.isfinite(w).all() for w in state["state_dict"].values() if w.is_floating_point())
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no validation ran: nothing scored


def test_nan_gradients_stop_the_fit_before_the_weights_change(small_lorenz, tmp_path):
    poison = PoisonAtStep(STEPS_PER_EPOCH + 2, "grads")
    error = fit_until_diverged(small_lorenz, tmp_path, poison)
    assert f"training diverged at epoch 1, step {STEPS_PER_EPOCH + 2} (loss = " in str(error)
    assert ", gradient norm = nan); last good checkpoint: " in str(error)
    loss = float(str(error).split("(loss = ")[1].split(",")[0])
    assert 0 < loss < 1e3  # the loss itself was finite
    assert all(torch.isfinite(p).all() for p in poison.model.parameters())  # the optimizer never applied it


def test_divergence_before_any_checkpoint_says_so_through_the_command_line(small_lorenz, tmp_path, capsys):
    args = tiny_fit_args(small_lorenz, tmp_path, *INFREQUENT_VALIDATION, "--model.lr_init", "1000")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"^lfads fit: error: training diverged at epoch 0, step \d+ \(loss = (nan|inf|-inf)\); "
                    r"no checkpoint was written yet; try a lower model.lr_init", last_line), last_line
    assert not list(tmp_path.glob("tiny/version_0/checkpoints/*.ckpt"))


def test_a_failed_fit_removes_only_a_run_folder_it_created(small_lorenz, tmp_path, capsys):
    import json

    mine = tmp_path / "tiny" / "mine"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own file")
    args = tiny_fit_args(small_lorenz, tmp_path, *INFREQUENT_VALIDATION, "--model.lr_init", "1000")
    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                          "init_args": {"save_dir": str(tmp_path), "name": "tiny", "version": "mine"}}])
    args[args.index("--trainer.logger") + 1] = logger
    with pytest.raises(SystemExit):
        main(args)
    assert "training diverged" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "the user's own file"
