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

PARSERS = ("fit", "validate", "test")
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
            run = getattr(trainer, "lfads_claimed_run_dir", None)  # set only when this fit created the folder
            if run is None:
                return
            if run.is_dir() and not any(run.rglob("*.ckpt")):
                for lg in trainer.loggers:  # close open event files before their folder goes
                    lg.finalize("failed")
                shutil.rmtree(run, ignore_errors=True)
                for folder in (run.parent, Path(logger.save_dir)):  # the run's name folder and save_dir, if now empty
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()

    return DiscardRunWithoutCheckpoint()


def config_paths(argv: Sequence[str]) -> list[str]:
    """The values of ``--config X`` and ``--config=X`` in ``argv``, in order."""
    found = []
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--config="):
            found.append(arg.split("=", 1)[1])
    return found


def check_config_files(paths: Sequence[str]) -> None:
    """Check that every ``--config`` that names an existing file holds a YAML mapping; name the file if not.

    The parser reports a YAML error without the file's name, and a file holding a list as "Unexpected
    config"; these are caught here first. Values that are not files are left to the parser.

    Raises
    ------
    lfads.errors.LFADSConfigError
        Naming the file, what is wrong with it and the fix.
    """
    import yaml

    from lfads.errors import LFADSConfigError

    for text in paths:
        path = Path(text)
        if not path.is_file():
            continue
        try:
            content = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            mark = getattr(err, "problem_mark", None)
            reason = f"{getattr(err, 'problem', None) or err}" + (
                f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "")
            raise LFADSConfigError(f"--config {path}: not valid YAML ({reason}); fix the file.") from err
        if content is not None and not isinstance(content, dict):
            raise LFADSConfigError(f"--config {path}: holds a {type(content).__name__}, not a mapping of settings "
                                   f"(trainer:, model:, data:, ...); see configs/lorenz.yaml for the layout.")


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

    check_config_files(config_paths(argv))
    raising = {"exit_on_error": False}
    build_lightning_cli(
        list(argv),
        callbacks=default_fit_callbacks() + [_discard_run_callback()],
        parser_kwargs={**raising, **{name: raising for name in PARSERS}},
    )
    return 0
