r"""The ``tune:`` section of an ``lfads tune`` config: what the population searches and how it is run.

:func:`parse_tune_settings` validates one mapping field by field (each field has a small check that
names the config, the key and the fix); :func:`load_tune_settings` layers the sections of several
config files and the ``--tune.<key>`` command-line values before parsing them.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lfads.errors import LFADSDataError
from lfads.ray_cluster import LOCAL_ADDRESSES, split_address

__all__ = [
    "DISTRIBUTIONS",
    "LOCAL_ADDRESSES",
    "SearchDimension",
    "TuneSettings",
    "load_tune_settings",
    "parse_tune_settings",
    "read_yaml_mapping",
    "split_address",
]

DISTRIBUTIONS = ("uniform", "loguniform")
"""Distributions a search dimension may be drawn from."""

SPEC_KEYS = {"distribution", "low", "high"}


@dataclasses.dataclass(frozen=True)
class SearchDimension:
    r"""A searched hyperparameter: :math:`h \sim \mathcal U(a, b)` or :math:`\log h \sim \mathcal U(\log a, \log b)`.

    Attributes
    ----------
    name : str
        An argument of :class:`lfads.model.LFADS` (e.g. ``lr_init``), set as ``--model.<name>``.
    distribution : str
        ``"uniform"`` or ``"loguniform"`` (``low > 0``).
    low, high : float
        Bounds :math:`a < b`; perturbed values are clipped to them.
    """

    name: str
    distribution: str
    low: float
    high: float

    def clip(self, value: float) -> float:
        """``value`` clipped to ``[low, high]``."""
        return float(min(max(value, self.low), self.high))

    def to_domain(self):
        """The Ray Tune sampling domain (``ray.tune.uniform`` / ``ray.tune.loguniform``)."""
        from ray import tune

        return getattr(tune, self.distribution)(self.low, self.high)


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """The ``tune:`` section of an ``lfads tune`` config.

    Attributes
    ----------
    search_space : tuple of SearchDimension
        Hyperparameters PBT samples and perturbs.
    num_samples : int
        Population size (at least 2).
    perturbation_interval : int
        Epochs per round (between two reports and possible exploits).
    max_epochs : int
        Epochs each trial trains in all.
    metric, mode : str
        Reported metric that ranks trials and whether lower (``min``) or higher (``max``) is better.
    burn_in_period : int
        Epochs before the first exploit.
    quantile_fraction : float
        Fraction of the population in the top and bottom quantiles, in ``(0, 0.5]``.
    resample_probability : float
        Probability that an explored hyperparameter is redrawn from its distribution instead of perturbed.
    perturbation_factors : tuple of float
        Factors a perturbed hyperparameter is multiplied by (one drawn at random).
    synch : bool
        Synchronous PBT: every trial finishes a round before anyone exploits (the right choice when the
        population is larger than the number of trials that run at once).
    resources_per_trial : dict
        Ray resources of one trial (``cpu``, ``gpu``); the CPU count also sets torch's thread count.
    num_cpus : int or None
        CPUs of the Ray instance started in-process (None: all of the machine's).
    address : str or None
        Address (``host:port``) of a running Ray cluster to use instead of starting one. A Ray cluster
        does not authenticate its clients: use one only on a trusted network.
    time_budget_s : float or None
        Wall-clock budget of the whole population (trials stop when it is spent).
    name, save_dir : str or None
        Results go to ``{save_dir}/{name}/tune_<timestamp>/``; default: the first logger's ``save_dir``
        and ``name`` in the Lightning config (else ``runs`` and ``lfads``).
    """

    search_space: tuple[SearchDimension, ...]
    num_samples: int = 8
    perturbation_interval: int = 25
    max_epochs: int = 400
    metric: str = "valid/recon_smth"
    mode: str = "min"
    burn_in_period: int = 0
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    perturbation_factors: tuple[float, ...] = (1.2, 0.8)
    synch: bool = True
    resources_per_trial: dict = dataclasses.field(default_factory=lambda: {"cpu": 1})
    num_cpus: int | None = None
    address: str | None = None
    time_budget_s: float | None = None
    name: str | None = None
    save_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe form (the search space as ``name -> {distribution, low, high}``)."""
        out = dataclasses.asdict(self)
        out["search_space"] = {d.name: {"distribution": d.distribution, "low": d.low, "high": d.high}
                               for d in self.search_space}
        out["perturbation_factors"] = list(self.perturbation_factors)
        return out


# ---------------------------------------------------------------------------------------------- value checks
# Each check takes a value and ``where`` (``"<config>: tune.<key>"``) and returns the value to store.


def _as_number(value: Any, where: str) -> float:
    try:
        number = float(value)  # YAML reads 1e-4 (no dot) as a string
    except (TypeError, ValueError):
        raise LFADSDataError(f"{where}: expected a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise LFADSDataError(f"{where}: expected a finite number, got {value!r}.")
    return number


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any, where: str) -> int:
    if not _is_int(value) or value < 1:
        raise LFADSDataError(f"{where} must be a positive integer, got {value!r}.")
    return value


def _population_size(value: Any, where: str) -> int:
    _positive_int(value, where)
    if value < 2:
        raise LFADSDataError(f"{where} must be at least 2 for a population, got {value}.")
    return value


def _epochs(value: Any, where: str) -> int:
    if not _is_int(value) or value < 0:
        raise LFADSDataError(f"{where} must be a non-negative integer (epochs), got {value!r}.")
    return value


def _mode(value: Any, where: str) -> str:
    if value not in ("min", "max"):
        raise LFADSDataError(f"{where} must be 'min' or 'max', got {value!r}.")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LFADSDataError(f"{where} must be a non-empty string, got {value!r}.")
    return value


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def check_unless_none(value: Any, where: str) -> Any:
        return None if value is None else check(value, where)

    return check_unless_none


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise LFADSDataError(f"{where} must be true or false, got {value!r}.")
    return value


def _quantile_fraction(value: Any, where: str) -> float:
    number = _as_number(value, where)
    if not 0 < number <= 0.5:
        raise LFADSDataError(f"{where} must lie in (0, 0.5], got {number}.")
    return number


def _probability(value: Any, where: str) -> float:
    number = _as_number(value, where)
    if not 0 <= number <= 1:
        raise LFADSDataError(f"{where} must lie in [0, 1], got {number}.")
    return number


def _positive_number(value: Any, where: str) -> float:
    number = _as_number(value, where)
    if number <= 0:
        raise LFADSDataError(f"{where} must be positive, got {number}.")
    return number


def _factors(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise LFADSDataError(f"{where} must be a list of numbers, e.g. [1.2, 0.8]; got {value!r}.")
    return tuple(_positive_number(f, f"{where}[{i}]") for i, f in enumerate(value))


def _resources(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise LFADSDataError(f"{where} must map resource names to non-negative amounts, e.g. {{cpu: 1, gpu: 0}}; "
                             f"got {value!r}.")
    amounts = {str(k): _as_number(v, f"{where}.{k}") for k, v in value.items()}
    negative = sorted(k for k, v in amounts.items() if v < 0)
    if negative:
        raise LFADSDataError(f"{where}: {negative} must be non-negative amounts, e.g. {{cpu: 1, gpu: 0}}.")
    return amounts


def _address(value: Any, where: str) -> str:
    _text(value, where)
    try:
        split_address(value)
    except ValueError as err:
        raise LFADSDataError(f"{where}: {err}; it is the address `ray start --head` prints, or 'auto'.") from None
    return value


FIELD_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "num_samples": _population_size,
    "perturbation_interval": _positive_int,
    "max_epochs": _positive_int,
    "metric": _text,
    "mode": _mode,
    "burn_in_period": _epochs,
    "quantile_fraction": _quantile_fraction,
    "resample_probability": _probability,
    "perturbation_factors": _factors,
    "synch": _boolean,
    "resources_per_trial": _resources,
    "num_cpus": _optional(_positive_int),
    "address": _optional(_address),
    "time_budget_s": _optional(_positive_number),
    "name": _optional(_text),
    "save_dir": _optional(_text),
}
"""The check of every :class:`TuneSettings` field but ``search_space``."""


# ---------------------------------------------------------------------------------------------- search space
def _model_arguments() -> set[str]:
    from lfads.model import LFADS

    return set(inspect.signature(LFADS.__init__).parameters) - {"self"}


def _parse_dimension(name: str, spec: Any, where: str, model_args: set[str]) -> SearchDimension:
    if name not in model_args:
        raise LFADSDataError(f"{where}: '{name}' is not an argument of lfads.model.LFADS "
                             f"(searchable: {sorted(model_args)}).")
    if not isinstance(spec, dict) or set(spec) != SPEC_KEYS:
        raise LFADSDataError(f"{where}: give exactly distribution, low and high, e.g. "
                             "{distribution: uniform, low: 0.0, high: 0.5}; got " + repr(spec) + ".")
    dist = spec["distribution"]
    if dist not in DISTRIBUTIONS:
        raise LFADSDataError(f"{where}.distribution: '{dist}' is not one of {list(DISTRIBUTIONS)}.")
    low, high = _as_number(spec["low"], f"{where}.low"), _as_number(spec["high"], f"{where}.high")
    if not low < high:
        raise LFADSDataError(f"{where}: low ({low}) must be smaller than high ({high}).")
    if dist == "loguniform" and low <= 0:
        raise LFADSDataError(f"{where}: a loguniform range needs low > 0, got {low}; use uniform or raise low.")
    return SearchDimension(name, dist, low, high)


def _parse_search_space(space: Any, source: str) -> tuple[SearchDimension, ...]:
    if not isinstance(space, dict) or not space:
        raise LFADSDataError(f"{source}: tune.search_space must map model hyperparameters to "
                             "{distribution: loguniform|uniform, low: ..., high: ...}, e.g. "
                             "lr_init: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}.")
    model_args = _model_arguments()
    return tuple(_parse_dimension(name, spec, f"{source}: tune.search_space.{name}", model_args)
                 for name, spec in space.items())


# ---------------------------------------------------------------------------------------------- parse and load
def parse_tune_settings(section: dict, source: str = "config") -> TuneSettings:
    """Validate a ``tune:`` mapping and return it as :class:`TuneSettings`.

    Parameters
    ----------
    section : dict
        ``search_space`` and any other :class:`TuneSettings` field.
    source : str
        Where the mapping came from (config file names), the prefix of every error message.

    Raises
    ------
    LFADSDataError
        Naming ``source`` and the key at fault, for unknown keys, missing or malformed search dimensions,
        hyperparameters that are not LFADS model arguments, and out-of-range values.
    """
    if not isinstance(section, dict):
        raise LFADSDataError(f"{source}: 'tune' must be a mapping of settings, got {type(section).__name__}.")
    fields = {f.name for f in dataclasses.fields(TuneSettings)}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise LFADSDataError(f"{source}: unknown tune setting(s) {unknown}; the settings are {sorted(fields)}.")
    values = {key: FIELD_CHECKS[key](value, f"{source}: tune.{key}")
              for key, value in section.items() if key != "search_space"}
    return TuneSettings(search_space=_parse_search_space(section.get("search_space"), source), **values)


def read_yaml_mapping(path: Path) -> dict:
    """The YAML mapping in ``path`` (an empty file reads as ``{}``).

    Raises
    ------
    LFADSDataError
        If the file is missing or does not hold a mapping.
    """
    if not path.is_file():
        raise LFADSDataError(f"{path}: config file not found (working folder {Path.cwd()}).")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise LFADSDataError(f"{path}: a config must be a YAML mapping (trainer:, model:, data:, tune:).")
    return data


def _layer(merged: dict, section: dict) -> dict:
    """``section`` over ``merged``, key by key; ``search_space`` merges hyperparameter by hyperparameter."""
    out = {**merged, **section}
    old, new = merged.get("search_space"), section.get("search_space")
    if isinstance(old, dict) and (new is None or isinstance(new, dict)):
        out["search_space"] = {**old, **(new or {})}
    return out


def load_tune_settings(config_paths: Sequence[str | os.PathLike], overrides: dict | None = None) -> TuneSettings:
    """The merged ``tune:`` sections of ``config_paths`` (later files win, key by key), plus ``overrides``.

    ``search_space`` merges by hyperparameter; ``overrides`` holds ``--tune.<key>`` values.
    """
    merged: dict = {}
    for path in map(Path, config_paths):
        section = read_yaml_mapping(path).get("tune") or {}
        if not isinstance(section, dict):
            raise LFADSDataError(f"{path}: 'tune' must be a mapping of settings.")
        merged = _layer(merged, section)
    merged = _layer(merged, overrides or {})
    sources = ", ".join(map(str, config_paths)) or "command line"
    if not merged:
        raise LFADSDataError(f"{sources}: no 'tune:' section; add one with a search_space "
                             "(see configs/pbt_lorenz.yaml).")
    return parse_tune_settings(merged, sources)
