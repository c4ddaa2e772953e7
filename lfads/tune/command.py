"""``lfads tune --config CONFIG.yaml [--tune.<key> VALUE ...] [lfads fit arguments ...]``.

The command line holds three kinds of arguments: ``--config`` files (each may carry a ``tune:``
section), ``--tune.<key> VALUE`` settings (a YAML value replacing one ``tune:`` key) and everything
else, which goes to the Lightning CLI of every trial as in ``lfads fit``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any, NoReturn

import yaml

from lfads.errors import LFADSDataError
from lfads.tune.settings import TuneSettings

__all__ = ["split_tune_argv", "tune_command"]

DESCRIPTION = ("Population-based training of LFADS on Ray Tune (AutoLFADS): a population of lfads fits "
               "whose hyperparameters follow the best trials.")
EPILOG = ("The config's 'tune:' section sets the population; see configs/pbt_lorenz.yaml. Any other argument "
          "(--data.data_paths FILE, --model.<name> VALUE, --trainer.<name> VALUE) goes to every trial as in "
          "lfads fit. A mapping-valued setting takes a YAML mapping, e.g. --tune.resources_per_trial "
          "'{cpu: 2, gpu: 0}'. tune.address joins a running Ray cluster, which has no authentication: use one "
          "only on a trusted network.")


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`LFADSDataError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise LFADSDataError(f"command line: {message}; see lfads tune --help.")


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"not a YAML value: {text!r} ({err.problem})") from None


def _parser() -> _Parser:
    parser = _Parser(prog="lfads tune", description=DESCRIPTION, epilog=EPILOG, add_help=False,
                     allow_abbrev=False)
    parser.add_argument("--config", action="append", default=[], metavar="CONFIG.yaml",
                        help="Lightning config with a 'tune:' section (repeat to layer configs)")
    tune = parser.add_argument_group("tune settings (each replaces the key of the configs' 'tune:' section)")
    for field in dataclasses.fields(TuneSettings):
        tune.add_argument(f"--tune.{field.name}", dest=field.name, type=_yaml_value, metavar="VALUE",
                          default=argparse.SUPPRESS)
    return parser


def split_tune_argv(argv: Sequence[str]) -> tuple[list[str], dict, list[str]]:
    """``--config`` files, ``--tune.<key> VALUE`` settings and the remaining (Lightning CLI) arguments.

    Both ``--key VALUE`` and ``--key=VALUE`` are accepted; the remaining arguments keep their order.

    Raises
    ------
    LFADSDataError
        For ``--config`` or ``--tune.<key>`` without a value, an unknown ``--tune.<key>`` or a value that
        is not YAML.
    """
    namespace, rest = _parser().parse_known_args(list(argv))
    unknown = [arg.split("=", 1)[0] for arg in rest if arg.startswith("--tune.")]
    if unknown:
        fields = sorted(f.name for f in dataclasses.fields(TuneSettings))
        raise LFADSDataError(f"command line: unknown tune setting(s) {unknown}; the settings are {fields} "
                             "(give a mapping-valued one as YAML, e.g. --tune.resources_per_trial '{cpu: 2}').")
    settings = vars(namespace)
    configs = settings.pop("config")
    return configs, settings, rest


def tune_command(argv: list[str]) -> int:
    """``lfads tune --config CONFIG.yaml [--tune.<key> VALUE ...] [lfads fit overrides ...]``."""
    if not argv or "-h" in argv or "--help" in argv:
        print(_parser().format_help())
        return 0
    configs, overrides, rest = split_tune_argv(argv)
    if not configs:
        raise LFADSDataError("command line: pass --config CONFIG.yaml (a Lightning config with a 'tune:' section, "
                             "e.g. configs/pbt_lorenz.yaml).")
    from lfads.tune.driver import INSTALL_HINT

    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    from lfads.tune.driver import format_summary, run_population_based_training
    from lfads.tune.settings import load_tune_settings

    settings = load_tune_settings(configs, overrides)
    outcome = run_population_based_training(configs, rest, overrides)
    print()
    print(format_summary(outcome, settings.metric))
    return 0
