"""``lfads fit|validate|test``: the Lightning CLI over LFADS and its data module.

YAML configs, layered ``--config`` files, ``--print_config`` and dotted overrides such as
``--model.gen_dim 100`` all come from Lightning (see :mod:`lfads.lightning_cli`). A fit writes
``{save_dir}/{name}/version_{N}/`` (see :mod:`lfads.rundir`): ``config.yaml``, ``metrics.csv``,
TensorBoard events and ``checkpoints/`` (the best by ``valid/loss_smth_ramped`` and ``last.ckpt``).

Parse errors are raised (not printed with the whole usage), so the command line reports them as one line.
A fit that fails before its first checkpoint leaves no run folder behind
(:class:`DiscardRunWithoutCheckpoint`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

PARSERS = ("fit", "validate", "test", "predict")
"""Lightning's subcommand parsers, each told to raise its errors instead of printing usage and exiting."""


def _discard_run_callback():
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.trainer.states import TrainerFn

    class DiscardRunWithoutCheckpoint(Callback):
        """When a fit fails, remove the run folder it claimed if that folder holds no checkpoint yet.

        A fit claims ``{save_dir}/{name}/version_N`` just before training; an error in data setup,
        ``configure_optimizers`` or the first epoch would otherwise leave a folder holding only a config
        and empty logs. Once any ``.ckpt`` exists the folder is kept, whatever happens.
        """

        def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
            if trainer.state.fn != TrainerFn.FITTING or not trainer.is_global_zero or not trainer.loggers:
                return
            logger = trainer.loggers[0]
            if getattr(logger, "_version", None) is None:  # no folder was claimed for this fit
                return
            run = Path(logger.log_dir)
            if run.is_dir() and not any(run.rglob("*.ckpt")):
                for lg in trainer.loggers:  # close open event files before their folder goes
                    lg.finalize("failed")
                shutil.rmtree(run, ignore_errors=True)
                for folder in (run.parent, Path(logger.save_dir)):  # the run's name folder and save_dir, if now empty
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()

    return DiscardRunWithoutCheckpoint()


def main(argv: Sequence[str]) -> int:
    """Run ``lfads fit|validate|test`` with ``argv`` starting at the subcommand; returns 0 on success.

    Raises
    ------
    argparse.ArgumentError
        For an option the parser rejects (unknown key, wrong type).
    lfads.errors.LFADSError
        For data or hyperparameters found invalid while the model and data are built.
    """
    from lfads.lightning_cli import build_lightning_cli, default_fit_callbacks

    raising = {"exit_on_error": False}
    build_lightning_cli(
        list(argv),
        callbacks=default_fit_callbacks() + [_discard_run_callback()],
        parser_kwargs={**raising, **{name: raising for name in PARSERS}},
    )
    return 0
