"""``lfads fit|validate|test``: the Lightning CLI over LFADS and its data module.

YAML configs, layered ``--config`` files, ``--print_config`` and dotted overrides such as
``--model.gen_dim 100`` all come from Lightning (see :mod:`lfads.lightning_cli`). A fit writes
``{save_dir}/{name}/version_{N}/`` (see :mod:`lfads.rundir`): ``config.yaml``, ``metrics.csv``,
TensorBoard events and ``checkpoints/`` (the best by ``valid/loss_smth_ramped`` and ``last.ckpt``).

Parse errors are raised (not printed with the whole usage), so the command line reports them as one line.
"""

from __future__ import annotations

from typing import Sequence

PARSERS = ("fit", "validate", "test", "predict")
"""Lightning's subcommand parsers, each told to raise its errors instead of printing usage and exiting."""


def main(argv: Sequence[str]) -> int:
    """Run ``lfads fit|validate|test`` with ``argv`` starting at the subcommand; returns 0 on success.

    Raises
    ------
    argparse.ArgumentError
        For an option the parser rejects (unknown key, wrong type).
    lfads.errors.LFADSError
        For data or hyperparameters found invalid while the model and data are built.
    """
    from lfads.lightning_cli import build_lightning_cli

    raising = {"exit_on_error": False}
    build_lightning_cli(list(argv), parser_kwargs={**raising, **{name: raising for name in PARSERS}})
    return 0
