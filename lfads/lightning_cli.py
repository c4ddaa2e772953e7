"""The Lightning CLI behind ``lfads fit|validate|test`` and every ``lfads tune`` trial.

:func:`build_lightning_cli` returns an :class:`LFADSCLI`: Lightning's CLI over
:class:`lfads.model.LFADS` and :class:`lfads.data.datamodule.LFADSDataModule`, with the data dimensions
linked from the data module into the model, and each fit writing into a run folder of its own (see
:mod:`lfads.rundir`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

from lfads.rundir import claim_run_version, find_checkpoint

__all__ = ["LINKED_DATA_DIMS", "build_lightning_cli", "default_fit_callbacks"]

LINKED_DATA_DIMS = ("encod_data_dims", "recon_data_dims", "encod_seq_len", "recon_seq_len", "ext_input_dim")
"""Fields of the data module copied into the model's arguments when both are instantiated."""


def default_fit_callbacks() -> list:
    """The checkpoint callbacks of ``lfads fit``: the best by ``valid/loss_smth_ramped``, and ``last.ckpt``.

    The best is judged by the smoothed validation objective once the KL/L2 ramps are complete (see
    ``LFADS.ramps_complete``); ``last.ckpt`` is rewritten after every epoch.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    return [
        ModelCheckpoint(monitor="valid/loss_smth_ramped", mode="min", save_top_k=1),
        ModelCheckpoint(filename="last", monitor=None, save_top_k=1),
    ]


def _cli_class():
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from pytorch_lightning.utilities import rank_zero_only

    class LFADSCLI(LightningCLI):
        """LightningCLI with the data dimensions linked from the data module into the model."""

        def add_arguments_to_parser(self, parser) -> None:
            for name in LINKED_DATA_DIMS:
                parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

        def before_fit(self) -> None:
            """Claim a new run folder for the first logger and point every logger (and a CSV one) at it."""
            trainer = self.trainer
            loggers = list(trainer.loggers)
            first = loggers[0] if loggers else None
            if isinstance(first, (CSVLogger, TensorBoardLogger)) and first._version is None and rank_zero_only.rank == 0:
                first._version = claim_run_version(Path(first.root_dir))
            if loggers and not any(isinstance(lg, CSVLogger) for lg in loggers):
                loggers.append(CSVLogger(first.save_dir, name=first.name or "", version=first.version))
                trainer.loggers = loggers
            # All loggers write into the first logger's version folder (the run directory).
            if len(loggers) > 1:
                version = loggers[0].version
                for lg in loggers[1:]:
                    if hasattr(lg, "_version"):
                        lg._version = version

        def after_fit(self) -> None:
            """Name the run folder and the checkpoint ``lfads sample --run`` will use."""
            ckpt = next((c for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None)
            log_dir = self.trainer.log_dir  # collective under DDP: every process must ask
            if not self.trainer.is_global_zero:
                return
            print(f"\nRun directory: {log_dir}")
            if ckpt is None or not ckpt.best_model_path:
                return
            path, score = find_checkpoint(Path(ckpt.dirpath).parent), float(ckpt.best_model_score)
            if math.isfinite(score):
                print(f"Best checkpoint ({ckpt.monitor} = {score:.5f}): {path}")
            else:
                print(f"No checkpoint was scored (the run ended before its KL/L2 ramps did); newest: {path}")
            print(f"Next: lfads sample --ckpt {path} --out <file.h5>")

    return LFADSCLI


def build_lightning_cli(
    args: Sequence[str],
    *,
    run: bool = True,
    callbacks: Sequence[Any] | None = None,
    overwrite_config: bool = False,
):
    """Parse ``args`` as ``lfads fit|validate|test`` does and build (and, with ``run``, run) the CLI.

    Parameters
    ----------
    args : sequence of str
        The command line after ``lfads`` (with ``run``: starting with the subcommand, e.g. ``["fit",
        "--config", "configs/lorenz.yaml"]``; without: the arguments of one fit).
    run : bool
        Run the subcommand (``True``) or only parse and instantiate the trainer, model and data.
    callbacks : sequence of Callback, optional
        Default trainer callbacks (default: :func:`default_fit_callbacks`).
    overwrite_config : bool
        Replace an existing ``config.yaml`` in the run folder (a tune trial rewrites it every round).

    Returns
    -------
    LFADSCLI
    """
    from lfads.data.datamodule import LFADSDataModule
    from lfads.model import LFADS

    cli_class = _cli_class()
    defaults = {
        "callbacks": list(default_fit_callbacks() if callbacks is None else callbacks),
        "default_root_dir": "runs",
        # Every metric LFADS logs is an epoch value, so the step interval writes nothing and costs nothing;
        # 1 keeps Lightning from warning when an epoch has fewer batches than the interval.
        "log_every_n_steps": 1,
    }
    with warnings.catch_warnings():  # `args` is the whole command line here; sys.argv is the caller's
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
        return cli_class(
            LFADS,
            LFADSDataModule,
            args=list(args),
            run=run,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": overwrite_config},
            trainer_defaults=defaults,
        )
