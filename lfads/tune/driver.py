r"""The population: Ray Tune's population-based training over :func:`lfads.tune.rounds.train_trial`.

:func:`run_population_based_training` validates the config once (the Lightning CLI loads the data
before any trial starts), writes the resolved base config, starts Ray (or joins the cluster at
``tune.address`` after checking that it answers), runs the population and writes ``summary.json``.

A Ray cluster does not authenticate the processes that connect to it: anyone who can reach its port
can run code on its machines. Join one (``tune.address``) only on a trusted network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from lfads.data.atomic import atomic_write_text, check_output_dir, guarded_output
from lfads.errors import LFADSDataError
from lfads.ray_cluster import unreachable
from lfads.tune.history import HISTORY_FILE, PopulationHistory, select_best_trial
from lfads.tune.rounds import TrialSetup, build_trial_cli, train_trial, trial_name
from lfads.tune.settings import SearchDimension, TuneSettings, load_tune_settings, read_yaml_mapping

__all__ = [
    "INSTALL_HINT",
    "SUMMARY_FILE",
    "RayClusterUnreachable",
    "TuneOutcome",
    "check_cluster_reachable",
    "format_summary",
    "run_population_based_training",
]

INSTALL_HINT = ("lfads tune needs Ray Tune; install it with: pip install 'lfads[tune]'  "
                "(or: pip install 'ray[tune]>=2.9,<3')")
SUMMARY_FILE = "summary.json"
CONNECT_TIMEOUT_S = 3.0
"""Seconds :func:`check_cluster_reachable` waits for a Ray cluster to accept a connection."""


class RayClusterUnreachable(LFADSDataError):
    """``tune.address`` names a Ray cluster that does not accept connections."""


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


# ---------------------------------------------------------------------------------------------- Ray cluster
def check_cluster_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast unless the Ray cluster at ``address`` (``host:port``) accepts a TCP connection.

    A Ray cluster has no authentication: anyone who can reach it can run code on it, so use one only on a
    trusted network. ``None``, ``"auto"`` and ``"local"`` (resolved by Ray on this machine) are not checked.

    Raises
    ------
    RayClusterUnreachable
        If no connection is accepted within ``timeout`` seconds (refused, timed out, unknown host).
    """
    failure = None if address is None else unreachable(address, timeout)
    if failure is None:
        return
    host, port, reason = failure
    raise RayClusterUnreachable(
        f"tune.address {address}: no Ray cluster answers at {host}:{port} ({reason} within {timeout:g} s); "
        f"start one there with `ray start --head --port {port}`, correct the address, or drop tune.address "
        "to start Ray on this machine.")


@contextmanager
def _ray_instance(settings: TuneSettings) -> Iterator[None]:
    """Ray, joined at ``settings.address`` or started here (and shut down after) unless already running."""
    import ray

    if ray.is_initialized():
        yield
        return
    if settings.address:
        ray.init(address=settings.address)
    else:
        ray.init(num_cpus=settings.num_cpus or os.cpu_count(), include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------- base config
def _check_no_searched_overrides(cli_overrides: Sequence[str], settings: TuneSettings) -> None:
    searched = {f"--model.{d.name}" for d in settings.search_space}
    clash = [a.split("=", 1)[0] for a in cli_overrides if a.split("=", 1)[0] in searched]
    if clash:
        raise LFADSDataError(f"command line: {clash} are searched by tune.search_space; drop the override or the "
                             "search dimension.")


def _strip_tune_sections(config_paths: Sequence[Path], work: Path) -> list[str]:
    """Copies of the configs without their ``tune:`` sections (the Lightning CLI does not know them)."""
    stripped = []
    for i, path in enumerate(config_paths):
        data = read_yaml_mapping(path)
        data.pop("tune", None)
        out = work / f"config_{i}.yaml"
        atomic_write_text(out, yaml.safe_dump(data, sort_keys=False))
        stripped.append(str(out))
    return stripped


def _resolved_cli(config_paths: Sequence[Path], cli_overrides: Sequence[str]):
    """The Lightning CLI of the configs and overrides: validates them and loads the data."""
    with tempfile.TemporaryDirectory(prefix="lfads_tune_cfg_") as work:
        stripped = _strip_tune_sections(config_paths, Path(work))
        args = [a for p in stripped for a in ("--config", p)] + list(cli_overrides)
        return build_trial_cli(args)


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


def _write_result_file(path: Path, text: str) -> None:
    """Write ``text`` to the new file ``path`` of the results folder through the output guard (never replaced)."""
    with guarded_output(path, what="tune result file", option="tune.save_dir") as tmp:
        Path(tmp).write_text(text)


def _device_args(accelerator: str, resources: dict) -> list[str]:
    """One device per trial (Ray places the trials); CPU unless Ray gives a trial a GPU."""
    if resources.get("gpu", 0) > 0:
        return ["--trainer.devices", "1"]
    if accelerator not in ("auto", "cpu"):
        raise LFADSDataError(f"trainer.accelerator is '{accelerator}' but tune.resources_per_trial gives a trial "
                             "no GPU; set tune.resources_per_trial.gpu (1, or 0.5 to share a GPU between two "
                             "trials) or trainer.accelerator: cpu.")
    return ["--trainer.devices", "1", "--trainer.accelerator", "cpu"]  # 'auto' would take a GPU Ray did not assign


def _prepare_population(config_paths: Sequence[Path], cli_overrides: Sequence[str],
                        settings: TuneSettings) -> TrialSetup:
    """Validate the config, create the results folder with ``base_config.yaml`` and ``tune.yaml``."""
    cli = _resolved_cli(config_paths, cli_overrides)
    template, log_save_dir, log_name = _logger_template(cli)
    data_paths = [str(Path(s.path).resolve()) for s in cli.datamodule.sessions]
    accelerator = str(cli.config.get("trainer", {}).get("accelerator", "auto"))
    device_args = _device_args(accelerator, settings.resources_per_trial)
    seed = cli.config.get("seed_everything")
    seed = int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0
    root = Path(settings.save_dir or log_save_dir or "runs") / (settings.name or log_name or "lfads")
    check_output_dir(root, option="tune.save_dir")  # a file, or a path under one, is refused before any training
    tune_dir = _make_tune_dir(root.resolve())
    base_config = tune_dir / "base_config.yaml"
    _write_result_file(base_config, cli.parser.dump(cli.config, skip_none=False))
    _write_result_file(tune_dir / "tune.yaml", yaml.safe_dump(settings.to_dict(), sort_keys=False))
    return TrialSetup(
        tune_dir=str(tune_dir),
        base_config=str(base_config),
        cli_overrides=("--data.data_paths", json.dumps(data_paths) if len(data_paths) > 1 else data_paths[0],
                       *device_args),
        logger_template=tuple(template),
        perturbation_interval=settings.perturbation_interval,
        max_epochs=settings.max_epochs,
        metric=settings.metric,
        seed=seed,
        threads=max(1, int(settings.resources_per_trial.get("cpu", 1))),
    )


# ---------------------------------------------------------------------------------------------- population
def _history_callback(history: PopulationHistory):
    from ray.tune import Callback

    class RecordHistory(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            history.add(trial_name(trial), result)

    return RecordHistory()


def _clip_to_space(space: Sequence[SearchDimension]):
    def explore(config: dict) -> dict:
        for dim in space:
            config[dim.name] = dim.clip(config[dim.name])
        return config

    return explore


def _scheduler(settings: TuneSettings):
    from ray.tune.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(
        time_attr="epoch",
        metric=settings.metric,
        mode=settings.mode,
        perturbation_interval=settings.perturbation_interval,
        burn_in_period=settings.burn_in_period,
        hyperparam_mutations={d.name: d.to_domain() for d in settings.search_space},
        quantile_fraction=settings.quantile_fraction,
        resample_probability=settings.resample_probability,
        perturbation_factors=settings.perturbation_factors,
        custom_explore_fn=_clip_to_space(settings.search_space),
        synch=settings.synch,
    )


def _fit_population(setup: TrialSetup, settings: TuneSettings, history: PopulationHistory, verbose: int) -> list:
    """Run the population to its end; return the errors of failed trials."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_trial, setup=setup), dict(settings.resources_per_trial)),
        param_space={d.name: d.to_domain() for d in settings.search_space},
        tune_config=tune.TuneConfig(
            scheduler=_scheduler(settings),
            num_samples=settings.num_samples,
            reuse_actors=True,
            time_budget_s=settings.time_budget_s,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name="ray",
            storage_path=setup.tune_dir,
            stop={"epoch": settings.max_epochs},
            checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
            callbacks=[_history_callback(history)],
            verbose=verbose,
        ),
    )
    return list(tuner.fit().errors)


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
        give the :class:`~lfads.tune.settings.TuneSettings`.
    cli_overrides : sequence of str
        Further ``lfads fit`` arguments (``--data.data_paths x.h5``, ``--model.gen_dim 100``...).
    tune_overrides : dict, optional
        Values that replace ``tune:`` keys.
    verbose : int
        Ray Tune's progress output (0 silent, 1 default table, 2 verbose).

    Raises
    ------
    LFADSDataError
        For invalid settings or configs, and (:class:`RayClusterUnreachable`) when ``tune.address`` does
        not answer; all before any training.
    """
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"{INSTALL_HINT}\n({err})") from None
    config_paths = [Path(p) for p in config_paths]
    settings = load_tune_settings(config_paths, tune_overrides)
    check_cluster_reachable(settings.address)
    _check_no_searched_overrides(cli_overrides, settings)
    setup = _prepare_population(config_paths, cli_overrides, settings)
    tune_dir = Path(setup.tune_dir)
    history = PopulationHistory(tune_dir / HISTORY_FILE, [d.name for d in settings.search_space])
    with _ray_instance(settings):
        errors = _fit_population(setup, settings, history, verbose)
    if not history.rows:
        raise RuntimeError(f"no trial reported a result; see the trial logs under {tune_dir / 'ray'}"
                           + (f" (first error: {errors[0]})" if errors else "."))
    best, value, final = select_best_trial(history.rows, settings.metric, settings.mode)
    outcome = TuneOutcome(tune_dir, history.rows, best, value, tune_dir / best, final, [str(e) for e in errors])
    _write_summary(outcome, settings)
    return outcome


# ---------------------------------------------------------------------------------------------- summary
def _write_summary(outcome: TuneOutcome, settings: TuneSettings) -> None:
    from lfads.rundir import find_checkpoint

    try:
        best_ckpt = str(find_checkpoint(outcome.best_run_dir, trust=True))  # written by this population
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
    _write_result_file(Path(outcome.tune_dir) / SUMMARY_FILE, json.dumps(summary, indent=2))


def format_summary(outcome: TuneOutcome, metric: str) -> str:
    """A printable summary: every trial's final metric, the exploit count and the best run directory."""
    lines = [f"Population ({len(outcome.final)} trials), final {metric}:"]
    for trial, value in outcome.final.items():
        lines.append(f"  {trial:<12} {value: .5f}{'   <- best' if trial == outcome.best_trial else ''}")
    exploits = sum(1 for r in outcome.history if r["exploited_from"])
    if outcome.failed:
        lines.append(f"{len(outcome.failed)} trial(s) failed; see {outcome.tune_dir / 'ray'} "
                     f"(first: {outcome.failed[0]})")
    lines += [f"Exploits: {exploits}; history: {outcome.tune_dir / HISTORY_FILE}",
              f"Best trial: {outcome.best_trial} ({metric} = {outcome.best_value:.5f})",
              f"Best run directory: {outcome.best_run_dir}",
              f"Next: lfads sample --run {outcome.best_run_dir}"]
    return "\n".join(lines)
