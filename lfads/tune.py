r"""Population-based training of LFADS on Ray Tune (AutoLFADS): ``lfads tune``.

A population of ``K`` LFADS fits with hyperparameters :math:`h_k` (learning rate, dropout,
coordinated dropout, KL and L2 weights) trains in rounds of ``perturbation_interval`` epochs. After a
round each trial reports its validation metric :math:`m_k` (``valid/recon_smth`` by default, lower is
better) and a checkpoint. Ray Tune's :class:`~ray.tune.schedulers.PopulationBasedTraining` then lets
every trial in the worst quantile *exploit* a trial of the best quantile (continue from its checkpoint)
and *explore* (perturb the copied hyperparameters):

.. math::

    h \leftarrow \mathrm{clip}_{[a, b]}(c\, h_{best}),\ c \in \{0.8, 1.2\}
    \quad\text{or, with probability } p_{resample},\quad h \sim \mathcal U(a, b)
    \ \text{(or log-uniform)},

so the population follows a schedule of hyperparameters rather than one fixed setting.

Every trial is an ordinary ``lfads fit``: the same LightningCLI class, model, data module, callbacks
and checkpointing, built from the same YAML with the trial's hyperparameters as ``--model.<name>``
overrides. A round is one ``Trainer.fit`` resumed from the trial's last checkpoint (optimizer, epoch
and KL/L2 ramps continue); when PBT copies another trial's checkpoint, every learning rate of the
copied optimizer is scaled by ``lr_init(new) / lr_init(copied)`` so that the plateau schedule's decay
so far is kept.

Results (``{save_dir}/{name}/tune_{YYYYmmdd-HHMMSS}/``):

- ``trial_NN/``: one lfads run directory per trial (``config.yaml`` of its latest round,
  ``metrics.csv`` over all rounds, ``checkpoints/`` with the best by ``valid/recon_smth_ramped`` (the
  reconstruction cost, not the whole objective as in ``lfads fit``: PBT changes the cost weights between
  rounds, so only the reconstruction cost compares across them) and ``last.ckpt``), usable with
  ``lfads sample --run``;
- ``pbt_history.csv``: one row per round and trial (epoch, hyperparameters, metrics, the trial whose
  checkpoint the round started from when it exploited one);
- ``summary.json``: the final metric of every trial and the best trial's run directory;
- ``base_config.yaml`` (the resolved Lightning config every trial starts from), ``tune.yaml`` (the
  resolved ``tune:`` section) and ``ray/`` (Ray Tune's own experiment state and checkpoints).

The ``tune:`` section of the config (removed before the rest goes to the Lightning CLI)::

    tune:
      num_samples: 8                # population size
      perturbation_interval: 25     # epochs per round
      max_epochs: 400
      metric: valid/recon_smth
      mode: min
      resources_per_trial: {cpu: 1, gpu: 0}
      num_cpus: null                # CPUs of the Ray instance started here (default: all)
      address: null                 # or the address of a running Ray cluster (results dir must be shared)
      search_space:
        lr_init: {distribution: loguniform, low: 1.0e-3, high: 1.0e-2}
        dropout_rate: {distribution: uniform, low: 0.0, high: 0.3}

Any ``tune`` key can be overridden on the command line as ``--tune.<key> VALUE`` (YAML value).
Ray Tune is optional: ``pip install 'lfads[tune]'``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import yaml

from lfads.errors import LFADSDataError

__all__ = [
    "DISTRIBUTIONS",
    "PopulationHistory",
    "SearchDimension",
    "TuneOutcome",
    "TuneSettings",
    "load_tune_settings",
    "parse_tune_settings",
    "read_population_history",
    "run_population_based_training",
    "select_best_trial",
    "train_trial",
    "tune_command",
]

INSTALL_HINT = "lfads tune needs Ray Tune; install it with: pip install 'lfads[tune]'  (or: pip install 'ray[tune]>=2.9,<3')"
DISTRIBUTIONS = ("uniform", "loguniform")
HISTORY_FILE = "pbt_history.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "lfads.ckpt"
META_FILE = "meta.json"


# ---------------------------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class SearchDimension:
    r"""One searched model hyperparameter: :math:`h \sim \mathcal U(a, b)` or :math:`\log h \sim \mathcal U(\log a, \log b)`.

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
        Population size.
    perturbation_interval : int
        Epochs per round (between two reports and possible exploits).
    max_epochs : int
        Epochs each trial trains in all.
    metric, mode : str
        Reported metric that ranks trials and whether lower (``min``) or higher (``max``) is better.
    burn_in_period : int
        Epochs before the first exploit.
    quantile_fraction : float
        Fraction of the population in the top and bottom quantiles.
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
        Address of a running Ray cluster to use instead of starting one.
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
    perturbation_factors: tuple[float, float] = (1.2, 0.8)
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


def _model_arguments() -> set[str]:
    from lfads.model import LFADS

    return set(inspect.signature(LFADS.__init__).parameters) - {"self"}


def _as_number(value: Any, where: str) -> float:
    try:
        number = float(value)  # YAML reads 1e-4 (no dot) as a string
    except (TypeError, ValueError):
        raise LFADSDataError(f"{where}: expected a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise LFADSDataError(f"{where}: expected a finite number, got {value!r}.")
    return number


def parse_tune_settings(section: dict, source: str = "config") -> TuneSettings:
    """Validate a ``tune:`` mapping and return it as :class:`TuneSettings`.

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
    space = section.get("search_space")
    if not isinstance(space, dict) or not space:
        raise LFADSDataError(f"{source}: tune.search_space must map model hyperparameters to "
                             "{distribution: loguniform|uniform, low: ..., high: ...}, e.g. "
                             "lr_init: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}.")
    model_args = _model_arguments()
    dims = []
    for name, spec in space.items():
        where = f"{source}: tune.search_space.{name}"
        if name not in model_args:
            raise LFADSDataError(f"{where}: '{name}' is not an argument of lfads.model.LFADS "
                                 f"(searchable: {sorted(model_args)}).")
        if not isinstance(spec, dict) or set(spec) != {"distribution", "low", "high"}:
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
        dims.append(SearchDimension(name, dist, low, high))
    kwargs = {k: v for k, v in section.items() if k != "search_space"}
    for key in ("num_samples", "perturbation_interval", "max_epochs"):
        if key in kwargs and (not isinstance(kwargs[key], int) or kwargs[key] < 1):
            raise LFADSDataError(f"{source}: tune.{key} must be a positive integer, got {kwargs[key]!r}.")
    if "burn_in_period" in kwargs and (not isinstance(kwargs["burn_in_period"], int) or kwargs["burn_in_period"] < 0):
        raise LFADSDataError(f"{source}: tune.burn_in_period must be a non-negative integer (epochs).")
    if kwargs.get("mode", "min") not in ("min", "max"):
        raise LFADSDataError(f"{source}: tune.mode must be 'min' or 'max', got {kwargs['mode']!r}.")
    if "quantile_fraction" in kwargs and not 0 < _as_number(kwargs["quantile_fraction"], "tune.quantile_fraction") <= 0.5:
        raise LFADSDataError(f"{source}: tune.quantile_fraction must lie in (0, 0.5].")
    if "resample_probability" in kwargs and not 0 <= _as_number(kwargs["resample_probability"], "tune.resample_probability") <= 1:
        raise LFADSDataError(f"{source}: tune.resample_probability must lie in [0, 1].")
    if "perturbation_factors" in kwargs:
        factors = kwargs["perturbation_factors"]
        if not isinstance(factors, (list, tuple)) or len(factors) < 1:
            raise LFADSDataError(f"{source}: tune.perturbation_factors must be a list of numbers, e.g. [1.2, 0.8].")
        kwargs["perturbation_factors"] = tuple(_as_number(f, "tune.perturbation_factors") for f in factors)
    if "resources_per_trial" in kwargs:
        res = kwargs["resources_per_trial"]
        if not isinstance(res, dict) or not res or any(_as_number(v, f"tune.resources_per_trial.{k}") < 0
                                                       for k, v in res.items()):
            raise LFADSDataError(f"{source}: tune.resources_per_trial must map resource names to non-negative "
                                 "amounts, e.g. {cpu: 1, gpu: 0}.")
        kwargs["resources_per_trial"] = {str(k): float(v) for k, v in res.items()}
    if kwargs.get("time_budget_s") is not None:
        kwargs["time_budget_s"] = _as_number(kwargs["time_budget_s"], "tune.time_budget_s")
    settings = TuneSettings(search_space=tuple(dims), **kwargs)
    if settings.num_samples < 2:
        raise LFADSDataError(f"{source}: tune.num_samples must be at least 2 for a population, got "
                             f"{settings.num_samples}.")
    return settings


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise LFADSDataError(f"{path}: config file not found (working folder {Path.cwd()}).")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise LFADSDataError(f"{path}: a config must be a YAML mapping (trainer:, model:, data:, tune:).")
    return data


def load_tune_settings(config_paths: Sequence[str | os.PathLike], overrides: dict | None = None) -> TuneSettings:
    """The merged ``tune:`` sections of ``config_paths`` (later files win, key by key), plus ``overrides``.

    ``search_space`` merges by hyperparameter; ``overrides`` holds ``--tune.<key>`` values.
    """
    merged: dict = {}
    for path in map(Path, config_paths):
        section = _read_yaml(path).get("tune") or {}
        if not isinstance(section, dict):
            raise LFADSDataError(f"{path}: 'tune' must be a mapping of settings.")
        space = {**merged.get("search_space", {}), **(section.get("search_space") or {})}
        merged.update(section)
        if space:
            merged["search_space"] = space
    for key, value in (overrides or {}).items():
        if key == "search_space" and isinstance(value, dict):
            merged["search_space"] = {**merged.get("search_space", {}), **value}
        else:
            merged[key] = value
    sources = ", ".join(map(str, config_paths)) or "command line"
    if not merged:
        raise LFADSDataError(f"{sources}: no 'tune:' section; add one with a search_space (see lfads/tune.py).")
    return parse_tune_settings(merged, sources)


# ---------------------------------------------------------------------------------------------------- history
@dataclasses.dataclass
class PopulationHistory:
    """Rows of ``pbt_history.csv``: one per reported round of one trial, in arrival order.

    Columns: ``trial``, ``round`` (Ray's ``training_iteration`` of this trial run), ``start_epoch``,
    ``epoch`` (epochs trained when reported), ``exploited_from`` (the trial whose checkpoint the round
    started from, empty when it continued its own), ``checkpoint_sha1`` (of the checkpoint it reported),
    ``resumed_sha1`` (of the checkpoint it started from), ``time_total_s``, then the searched
    hyperparameters the round trained with, then every reported ``valid/*`` metric.
    """

    path: Path
    hyperparameters: list[str]
    rows: list[dict] = dataclasses.field(default_factory=list)

    def add(self, trial: str, result: dict) -> dict:
        """Append a row built from a Ray Tune result and rewrite the CSV (atomically)."""
        config = result.get("config") or {}
        row = {
            "trial": trial,
            "round": result.get("training_iteration"),
            "start_epoch": result.get("start_epoch"),
            "epoch": result.get("epoch"),
            "exploited_from": result.get("exploited_from", ""),
            "checkpoint_sha1": result.get("checkpoint_sha1", ""),
            "resumed_sha1": result.get("resumed_sha1", ""),
            "time_total_s": result.get("time_total_s"),
        }
        row.update({name: config.get(name) for name in self.hyperparameters})
        row.update({k: v for k, v in sorted(result.items()) if k.startswith("valid/")})
        self.rows.append(row)
        self.write()
        return row

    def write(self) -> None:
        """Write all rows to :attr:`path` (temp file, then rename)."""
        fields: list[str] = []
        for row in self.rows:
            fields.extend(k for k in row if k not in fields)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)


def read_population_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``pbt_history.csv`` with numbers parsed (``float``; ``int`` for round and epochs)."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key in ("trial", "exploited_from", "checkpoint_sha1", "resumed_sha1"):
                    row[key] = value or ""
                elif value in ("", None):
                    row[key] = None
                elif key in ("round", "start_epoch", "epoch"):
                    row[key] = int(float(value))
                else:
                    try:
                        row[key] = float(value)
                    except ValueError:
                        row[key] = value
            rows.append(row)
    return rows


def select_best_trial(rows: Sequence[dict], metric: str, mode: str = "min") -> tuple[str, float, dict[str, float]]:
    """The trial whose final report (largest epoch, then latest) is best by ``metric``.

    Returns
    -------
    tuple
        ``(best_trial, its final metric, {trial: final metric})``.
    """
    final: dict[str, tuple[int, int, float]] = {}
    for order, row in enumerate(rows):
        value = row.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = (row.get("epoch") or 0, order)
        if row["trial"] not in final or key >= final[row["trial"]][:2]:
            final[row["trial"]] = (*key, float(value))
    if not final:
        raise ValueError(f"no trial reported '{metric}'.")
    values = {trial: v[2] for trial, v in sorted(final.items())}
    sign = 1.0 if mode == "min" else -1.0
    best = min(values, key=lambda t: sign * values[t])
    return best, values[best], values


# ---------------------------------------------------------------------------------------------------- trial
@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """What every trial shares (passed to :func:`train_trial` with ``ray.tune.with_parameters``)."""

    tune_dir: str
    base_config: str
    cli_overrides: tuple[str, ...]
    logger_template: tuple[dict, ...]
    perturbation_interval: int
    max_epochs: int
    metric: str
    seed: int
    threads: int


def _instantiate_cli(args: list[str], extra_callbacks: list | None = None):
    """The ``lfads fit`` LightningCLI (same class and defaults), parsed without running.

    A trial keeps the best checkpoint by ``valid/recon_smth_ramped`` and ``last.ckpt``; its ``config.yaml``
    describes its latest round.
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    from lfads.callbacks import metric_callbacks
    from lfads.lightning_cli import build_lightning_cli

    callbacks = metric_callbacks() + [
        ModelCheckpoint(monitor="valid/recon_smth_ramped", mode="min", save_last=True, save_top_k=1)]
    return build_lightning_cli(args, run=False, callbacks=callbacks + list(extra_callbacks or []), overwrite_config=True)


def _trial_index(trial_id: str) -> int:
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else int(hashlib.sha1(trial_id.encode()).hexdigest()[:6], 16)


def _trial_name(trial) -> str:
    return f"trial_{_trial_index(trial.trial_id):02d}"


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def _tune_callbacks(lr_factor_from: float | None):
    """Callbacks a round adds to ``lfads fit``'s: rescale the LR after a resume with a perturbed ``lr_init``."""
    from pytorch_lightning.callbacks import Callback

    class ScaleLearningRate(Callback):
        """After the optimizer state is restored, scale every LR by ``lr_init(model) / lr_init(checkpoint)``."""

        def on_train_start(self, trainer, pl_module):
            factor = float(pl_module.hparams.lr_init) / float(lr_factor_from)
            if factor != 1.0:
                for optimizer in trainer.optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] = group["lr"] * factor

    return [] if lr_factor_from is None else [ScaleLearningRate()]


def _merge_metrics_csv(previous: list[dict], run_dir: Path) -> None:
    """Prepend the rows of earlier rounds to the ``metrics.csv`` a round's CSVLogger wrote (it starts afresh)."""
    path = run_dir / "metrics.csv"
    current = []
    if path.exists():
        with open(path, newline="") as f:
            current = list(csv.DictReader(f))
    rows = previous + current
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    tmp = path.with_name("metrics.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _read_metrics_rows(run_dir: Path) -> list[dict]:
    rows = []
    for name in ("metrics.csv.prev", "metrics.csv"):
        path = run_dir / name
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            break
    return rows


def _prepare_resume(checkpoint_dir: Path, trial: str, run_dir: Path, work: Path) -> tuple[Path, dict, dict]:
    """Copy a reported checkpoint for resuming this trial.

    When it was written by another trial (an exploit), its ModelCheckpoint state is replaced by this trial's
    own (so ``checkpoints/`` keeps tracking this run directory's best) or dropped if the trial has none yet.
    """
    import torch

    meta = json.loads((checkpoint_dir / META_FILE).read_text())
    source = checkpoint_dir / CHECKPOINT_FILE
    info = {"resumed_sha1": _sha1(source), "exploited_from": "" if meta["trial"] == trial else meta["trial"]}
    state = torch.load(source, map_location="cpu", weights_only=False)
    if info["exploited_from"]:
        own_last = run_dir / "checkpoints" / "last.ckpt"
        own = torch.load(own_last, map_location="cpu", weights_only=False).get("callbacks", {}) if own_last.exists() else {}
        callbacks = state.get("callbacks", {})
        for key in [k for k in callbacks if k.startswith("ModelCheckpoint")]:
            if key in own:
                callbacks[key] = own[key]
            else:
                del callbacks[key]
    resume = work / "resume.ckpt"
    torch.save(state, resume)
    return resume, state.get("hyper_parameters", {}), info


def _logger_override(template: Sequence[dict], tune_dir: str, trial: str) -> str:
    loggers = []
    for entry in template:
        entry = copy.deepcopy(entry)
        init = entry.setdefault("init_args", {})
        init.update(save_dir=tune_dir, name=trial, version="")  # run directory: {tune_dir}/{trial}/
        loggers.append(entry)
    return json.dumps(loggers)


def _train_round(setup: TrialSetup, config: dict, trial: str, index: int, start_epoch: int, target: int,
                 resume: Path | None, resumed_lr: float | None) -> dict:
    run_dir = Path(setup.tune_dir) / trial
    seed = (setup.seed * 1_000_003 + index * 10_007 + start_epoch) % 2**31
    args = ["--config", setup.base_config, *setup.cli_overrides,
            "--seed_everything", str(seed),
            "--trainer.max_epochs", str(target), "--trainer.max_time", "null",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", str(start_epoch == 0).lower(),
            "--trainer.num_sanity_val_steps", "2" if start_epoch == 0 else "0",
            "--trainer.logger", _logger_override(setup.logger_template, setup.tune_dir, trial)]
    for name, value in config.items():
        args += [f"--model.{name}", repr(float(value))]
    cli = _instantiate_cli(args, _tune_callbacks(resumed_lr))
    trainer = cli.trainer
    previous = _read_metrics_rows(run_dir)
    if (run_dir / "metrics.csv.prev").exists():  # an interrupted round: its partial log is re-trained anyway
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    elif (run_dir / "metrics.csv").exists():
        os.replace(run_dir / "metrics.csv", run_dir / "metrics.csv.prev")
    cli.before_fit()
    trainer.fit(cli.model, cli.datamodule, ckpt_path=None if resume is None else str(resume))
    # last.ckpt as the state at the end of the round: Lightning's ModelCheckpoint refreshes it only when it
    # also saves a best checkpoint, and a checkpoint written after fit resumes at the next epoch.
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last.with_name("last.ckpt.tmp"))
    if trainer.is_global_zero:
        os.replace(last.with_name("last.ckpt.tmp"), last)
        _merge_metrics_csv(previous, run_dir)
        (run_dir / "metrics.csv.prev").unlink(missing_ok=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
    if setup.metric not in metrics:
        raise LFADSDataError(f"tune.metric '{setup.metric}' was not logged by the trial (logged: {sorted(metrics)}); "
                             "choose one of those, e.g. valid/recon_smth.")
    metrics["epoch"] = int(trainer.current_epoch)
    metrics["stopped_early"] = bool(trainer.current_epoch < target)
    return metrics


def train_trial(config: dict, setup: TrialSetup) -> None:
    """Ray Tune function trainable: train one LFADS trial in rounds, reporting the metric and a checkpoint.

    Parameters
    ----------
    config : dict
        The trial's current searched hyperparameters (``name -> value``), set as ``--model.<name>``.
    setup : TrialSetup
        Shared settings (results directory, base config, round length, metric).
    """
    from ray import tune

    from lfads.runtime import configure_threads

    configure_threads(setup.threads)
    import lightning_fabric  # noqa: F401  (importing them sets their loggers to INFO; quieten them after)
    import pytorch_lightning  # noqa: F401

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    context = tune.get_context()
    trial = context.get_trial_name()
    index = _trial_index(context.get_trial_id())
    run_dir = Path(setup.tune_dir) / trial
    run_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, info, resume, resumed_lr = 0, {"exploited_from": "", "resumed_sha1": ""}, None, None
    with tempfile.TemporaryDirectory(prefix="lfads_tune_") as work:
        work = Path(work)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as ckpt_dir:
                meta = json.loads((Path(ckpt_dir) / META_FILE).read_text())
                resume, hparams, info = _prepare_resume(Path(ckpt_dir), trial, run_dir, work)
            start_epoch = int(meta["epoch"])
            resumed_lr = hparams.get("lr_init")
        while start_epoch < setup.max_epochs:
            interval = setup.perturbation_interval
            target = min((start_epoch // interval + 1) * interval, setup.max_epochs)
            metrics = _train_round(setup, config, trial, index, start_epoch, target, resume, resumed_lr)
            last = run_dir / "checkpoints" / "last.ckpt"
            out = work / f"report_{metrics['epoch']}"
            out.mkdir()
            shutil.copy2(last, out / CHECKPOINT_FILE)
            sha = _sha1(out / CHECKPOINT_FILE)
            (out / META_FILE).write_text(json.dumps({"trial": trial, "epoch": metrics["epoch"], "sha1": sha,
                                                     "run_dir": str(run_dir)}))
            metrics.update(start_epoch=start_epoch, checkpoint_sha1=sha, **info)
            stop = metrics["stopped_early"] or metrics["epoch"] >= setup.max_epochs
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(out)))
            shutil.rmtree(out, ignore_errors=True)
            if stop:
                return
            start_epoch, resume, resumed_lr = metrics["epoch"], last, None
            info = {"exploited_from": "", "resumed_sha1": sha}


# ---------------------------------------------------------------------------------------------------- driver
@dataclasses.dataclass(frozen=True)
class TuneOutcome:
    """Where a population's results are and which trial won.

    Attributes
    ----------
    tune_dir : Path
        The results directory.
    history : list of dict
        Rows of ``pbt_history.csv``.
    best_trial : str
        Name of the trial with the best final metric.
    best_value : float
        Its final metric.
    best_run_dir : Path
        Its lfads run directory (``lfads sample --run``).
    final : dict
        Final metric of every trial.
    failed : list of str
        Errors of trials that failed (their results up to the failure are kept).
    """

    tune_dir: Path
    history: list
    best_trial: str
    best_value: float
    best_run_dir: Path
    final: dict
    failed: list = dataclasses.field(default_factory=list)


def _strip_tune_sections(config_paths: Sequence[Path], work: Path) -> list[str]:
    stripped = []
    for i, path in enumerate(config_paths):
        data = _read_yaml(path)
        data.pop("tune", None)
        out = work / f"config_{i}.yaml"
        out.write_text(yaml.safe_dump(data, sort_keys=False))
        stripped.append(str(out))
    return stripped


def _logger_template(cli) -> tuple[list[dict], str | None, str | None]:
    """The configured loggers (class paths and init args) and the first one's ``save_dir`` and ``name``."""
    configured = cli.config.get("trainer", {}).get("logger")
    entries = configured if isinstance(configured, list) else [configured] if configured else []
    template, save_dir, name = [], None, None
    for entry in entries:
        if not hasattr(entry, "class_path"):
            continue
        init = entry.get("init_args")
        init = init.as_dict() if hasattr(init, "as_dict") else dict(init or {})
        if "save_dir" not in init:
            continue  # a logger without a local directory keeps its own settings
        if save_dir is None:
            save_dir, name = init.get("save_dir"), init.get("name")
        template.append({"class_path": entry.class_path, "init_args": init})
    if not template:
        template = [{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {}},
                    {"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {}}]
    return template, save_dir, name


def _make_tune_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(100):
        path = root / (f"tune_{stamp}" if i == 0 else f"tune_{stamp}_{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new tune_{stamp} directory in {root}.")


def _history_callback(history: PopulationHistory):
    from ray.tune import Callback

    class RecordHistory(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            history.add(_trial_name(trial), result)

    return RecordHistory()


def _clip_to_space(space: Sequence[SearchDimension]):
    def explore(config: dict) -> dict:
        for dim in space:
            config[dim.name] = dim.clip(config[dim.name])
        return config

    return explore


def run_population_based_training(
    config_paths: Sequence[str | os.PathLike],
    cli_overrides: Sequence[str] = (),
    tune_overrides: dict | None = None,
    verbose: int = 1,
) -> TuneOutcome:
    """Run AutoLFADS-style population-based training and return where the results are.

    Parameters
    ----------
    config_paths : sequence of path
        Lightning configs (layered like ``lfads fit --config A --config B``); their ``tune:`` sections
        give the :class:`TuneSettings`.
    cli_overrides : sequence of str
        Further ``lfads fit`` arguments (``--data.data_paths x.h5``, ``--model.gen_dim 100``...).
    tune_overrides : dict, optional
        Values that replace ``tune:`` keys.
    verbose : int
        Ray Tune's progress output (0 silent, 1 default table, 2 verbose).
    """
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining
    except ImportError as err:
        raise SystemExit(f"{INSTALL_HINT}\n({err})") from None

    config_paths = [Path(p) for p in config_paths]
    settings = load_tune_settings(config_paths, tune_overrides)
    searched = {f"--model.{d.name}" for d in settings.search_space}
    clash = [a.split("=", 1)[0] for a in cli_overrides if a.split("=", 1)[0] in searched]
    if clash:
        raise LFADSDataError(f"command line: {clash} are searched by tune.search_space; drop the override or the "
                             "search dimension.")
    with tempfile.TemporaryDirectory(prefix="lfads_tune_cfg_") as work:
        stripped = _strip_tune_sections(config_paths, Path(work))
        args = [a for p in stripped for a in ("--config", p)] + list(cli_overrides)
        cli = _instantiate_cli(args)  # validates the config and loads the data before any trial starts
    template, log_save_dir, log_name = _logger_template(cli)
    data_paths = [str(Path(s.path).resolve()) for s in cli.datamodule.sessions]
    accelerator = str(cli.config.get("trainer", {}).get("accelerator", "auto"))
    seed = cli.config.get("seed_everything")
    seed = int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0
    root = Path(settings.save_dir or log_save_dir or "runs") / (settings.name or log_name or "lfads")
    tune_dir = _make_tune_dir(root.resolve())
    base_config = tune_dir / "base_config.yaml"
    base_config.write_text(cli.parser.dump(cli.config, skip_none=False))
    (tune_dir / "tune.yaml").write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
    del cli

    resources = dict(settings.resources_per_trial)
    device_args = ["--trainer.devices", "1"]  # one device per trial; Ray places the trials
    if resources.get("gpu", 0) == 0:
        if accelerator not in ("auto", "cpu"):
            raise LFADSDataError(f"trainer.accelerator is '{accelerator}' but tune.resources_per_trial gives a trial "
                                 "no GPU; set tune.resources_per_trial.gpu (1, or 0.5 to share a GPU between two "
                                 "trials) or trainer.accelerator: cpu.")
        device_args += ["--trainer.accelerator", "cpu"]  # 'auto' would take a GPU Ray did not assign
    setup = TrialSetup(
        tune_dir=str(tune_dir),
        base_config=str(base_config),
        cli_overrides=("--data.data_paths", json.dumps(data_paths) if len(data_paths) > 1 else data_paths[0],
                       *device_args),
        logger_template=tuple(template),
        perturbation_interval=settings.perturbation_interval,
        max_epochs=settings.max_epochs,
        metric=settings.metric,
        seed=seed,
        threads=max(1, int(resources.get("cpu", 1))),
    )
    history = PopulationHistory(tune_dir / HISTORY_FILE, [d.name for d in settings.search_space])
    space = {d.name: d.to_domain() for d in settings.search_space}
    scheduler = PopulationBasedTraining(
        time_attr="epoch",
        metric=settings.metric,
        mode=settings.mode,
        perturbation_interval=settings.perturbation_interval,
        burn_in_period=settings.burn_in_period,
        hyperparam_mutations=space,
        quantile_fraction=settings.quantile_fraction,
        resample_probability=settings.resample_probability,
        perturbation_factors=settings.perturbation_factors,
        custom_explore_fn=_clip_to_space(settings.search_space),
        synch=settings.synch,
    )
    started_ray = False
    if not ray.is_initialized():
        if settings.address:
            ray.init(address=settings.address)
        else:
            ray.init(num_cpus=settings.num_cpus or os.cpu_count(), include_dashboard=False)
        started_ray = True
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(train_trial, setup=setup), resources),
            param_space=space,
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                num_samples=settings.num_samples,
                reuse_actors=True,
                time_budget_s=settings.time_budget_s,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name="ray",
                storage_path=str(tune_dir),
                stop={"epoch": settings.max_epochs},
                checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
                callbacks=[_history_callback(history)],
                verbose=verbose,
            ),
        )
        grid = tuner.fit()
        errors = list(grid.errors)
    finally:
        if started_ray:
            ray.shutdown()
    if not history.rows:
        raise RuntimeError(f"no trial reported a result; see the trial logs under {tune_dir / 'ray'}"
                           + (f" (first error: {errors[0]})" if errors else "."))
    best, value, final = select_best_trial(history.rows, settings.metric, settings.mode)
    outcome = TuneOutcome(tune_dir, history.rows, best, value, tune_dir / best, final, [str(e) for e in errors])
    _write_summary(outcome, settings)
    return outcome


def _write_summary(outcome: TuneOutcome, settings: TuneSettings) -> None:
    from lfads.rundir import find_checkpoint

    try:
        best_ckpt = str(find_checkpoint(outcome.best_run_dir))
    except FileNotFoundError:
        best_ckpt = None
    summary = {
        "metric": settings.metric,
        "mode": settings.mode,
        "best_trial": outcome.best_trial,
        "best_value": outcome.best_value,
        "best_run_dir": str(outcome.best_run_dir),
        "best_checkpoint": best_ckpt,
        "final": outcome.final,
        "exploits": sum(1 for r in outcome.history if r["exploited_from"]),
        "failed_trials": outcome.failed,
    }
    tmp = outcome.tune_dir / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, outcome.tune_dir / SUMMARY_FILE)


def format_summary(outcome: TuneOutcome, metric: str) -> str:
    """A printable summary: every trial's final metric, the exploit count and the best run directory."""
    lines = [f"Population ({len(outcome.final)} trials), final {metric}:"]
    for trial, value in outcome.final.items():
        lines.append(f"  {trial:<12} {value: .5f}{'   <- best' if trial == outcome.best_trial else ''}")
    exploits = sum(1 for r in outcome.history if r["exploited_from"])
    if outcome.failed:
        lines.append(f"{len(outcome.failed)} trial(s) failed; see {outcome.tune_dir / 'ray'} (first: {outcome.failed[0]})")
    lines += [f"Exploits: {exploits}; history: {outcome.tune_dir / HISTORY_FILE}",
              f"Best trial: {outcome.best_trial} ({metric} = {outcome.best_value:.5f})",
              f"Best run directory: {outcome.best_run_dir}",
              f"Next: lfads sample --run {outcome.best_run_dir}"]
    return "\n".join(lines)


def _split_tune_argv(argv: Sequence[str]) -> tuple[list[str], dict, list[str]]:
    """``--config`` files, ``--tune.<key> VALUE`` overrides and the remaining Lightning CLI arguments."""
    configs, overrides, rest = [], {}, []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if key == "--config" or key.startswith("--tune."):
            if not eq:
                if i + 1 >= len(args):
                    raise SystemExit(f"lfads tune: {arg} needs a value.")
                value = args[i + 1]
                i += 1
            if key == "--config":
                configs.append(value)
            else:
                path = key[len("--tune."):].split(".")
                node = overrides
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = yaml.safe_load(value)
        else:
            rest.append(arg)
        i += 1
    return configs, overrides, rest


def tune_command(argv: list[str]) -> int:
    """``lfads tune --config CONFIG.yaml [--tune.<key> VALUE ...] [lfads fit overrides ...]``."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n", 1)[0].strip())
        print("\nusage: lfads tune --config CONFIG.yaml [--config MORE.yaml] [--tune.<key> VALUE ...] "
              "[--data.data_paths FILE] [--model.<name> VALUE] [--trainer.<name> VALUE]\n"
              "The config's 'tune:' section sets the population; see configs/pbt_lorenz.yaml.")
        return 0
    configs, overrides, rest = _split_tune_argv(argv)
    if not configs:
        raise SystemExit("lfads tune: pass --config CONFIG.yaml (a Lightning config with a 'tune:' section, e.g. "
                         "configs/pbt_lorenz.yaml).")
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    settings = load_tune_settings(configs, overrides)
    outcome = run_population_based_training(configs, rest, overrides)
    print()
    print(format_summary(outcome, settings.metric))
    return 0


if __name__ == "__main__":  # python -m lfads.tune: run the importable module's command (trials pickle by reference)
    from lfads.tune import tune_command as _tune_command

    sys.exit(_tune_command(sys.argv[1:]))
