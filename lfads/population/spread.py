r"""A population spread over Ray Tune: one trial per architecture and chunk of seeds.

:func:`run_population_ray` trains the same networks as
:func:`lfads.population.population.run_population`, but as Ray Tune trials. The seeds
:math:`0, \dots, N - 1` of each architecture are cut into chunks of at most ``seeds_per_trial``
(:func:`seed_chunks`); the grid of (architecture, chunk) pairs (:func:`population_units`) is the
param space of one :class:`ray.tune.Tuner`, and every trial (:func:`train_chunk`) trains its chunk as one
batched model with :func:`lfads.population.train.train_population`. Ray runs as many trials at once as
its CPUs allow (``cpus_per_trial`` each), on this machine or on a cluster.

A trial reports its fit as a Ray Tune checkpoint (one ``fit.npz``: the weights and the fit arrays of
:class:`~lfads.population.train.PopulationFit`). The chunks of an architecture are joined along the
network axis in seed order (:func:`join_chunks`). Each network trains on the same trials, from the same
initial weights, with its own gradient clip and Adam state wherever it sits, so the joined fit holds the
networks of ``run_population``; the only difference is length: a chunk stops once all of its networks have
stopped, so its per-step arrays (``losses``, ``eval_losses``) are padded with NaN (the value a stopped
network has in the batched fit) to the longest chunk's length. ``wall_time`` is the sum of the chunks'
training times (the work done, not the time waited).

Fixed points, graphs and the HDF5 file then follow as in ``run_population``
(:func:`lfads.population.population.finish_population`), in this process.

A Ray cluster does not authenticate the processes that connect to it: anyone who can reach its port can run
code on its machines. Join one (``address``) only on a trusted network.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfads.errors import LFADSArgumentError, LFADSDataError
from lfads.population.population import (
    WEIGHTS,
    PopulationResult,
    check_population_settings,
    config_for,
    finish_population,
    fit_arrays,
    population_archs,
    report_fit,
)
from lfads.population.tasks import get_task
from lfads.population.train import PopulationFit, StackedRNN, TrainConfig, train_population
from lfads.ray_cluster import unreachable

__all__ = [
    "FIT_FILE",
    "INSTALL_HINT",
    "SpreadSetup",
    "join_chunks",
    "population_units",
    "run_population_ray",
    "seed_chunks",
    "train_chunk",
    "trial_arrays",
]

INSTALL_HINT = "spreading a population needs Ray Tune; install it with: pip install 'lfads[tune]'"
FIT_FILE = "fit.npz"
"""The file of a trial's checkpoint: its weights and fit arrays."""
_CONNECT_TIMEOUT_S = 3.0


# ----------------------------------------------------------------------------------------------------------------------
# The grid of trials
# ----------------------------------------------------------------------------------------------------------------------


def seed_chunks(seeds: Sequence[int], size: int) -> list[list[int]]:
    """``seeds`` cut, in order, into consecutive chunks of ``size`` (the last may be shorter).

    Raises
    ------
    LFADSArgumentError
        If ``size < 1``.
    """
    if int(size) < 1:
        raise LFADSArgumentError(f"seeds_per_trial {size}: must be at least 1.")
    seeds = [int(s) for s in seeds]
    return [seeds[i : i + int(size)] for i in range(0, len(seeds), int(size))]


def population_units(archs: Sequence[str], seeds: int, seeds_per_trial: int) -> list[dict[str, Any]]:
    """The trials of a population: ``{"arch": a, "seeds": chunk}`` for each architecture, then each chunk
    of ``0 .. seeds - 1`` (:func:`seed_chunks`)."""
    chunks = seed_chunks(range(int(seeds)), seeds_per_trial)
    return [{"arch": arch, "seeds": chunk} for arch in archs for chunk in chunks]


def _unit_name(trial) -> str:
    unit = trial.config["unit"]
    return f"{unit['arch']}_seeds_{unit['seeds'][0]}-{unit['seeds'][-1]}"


# ----------------------------------------------------------------------------------------------------------------------
# One trial
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpreadSetup:
    """What every trial shares (passed to :func:`train_chunk` with ``ray.tune.with_parameters``).

    Attributes
    ----------
    task : str
        Task name (:func:`lfads.population.tasks.get_task`).
    task_settings : dict
        Its settings.
    units : int
        ``H``.
    config : dict
        :class:`~lfads.population.train.TrainConfig` as a dict.
    threads : int
        Torch threads of a trial (its CPUs).
    identity_candidate : bool or tuple of str
        For every architecture, or the architectures that use it (:func:`~lfads.population.population.config_for`).
    arch_settings : dict
        Per architecture, training settings replacing the shared ones (``config_for``).
    """

    task: str
    units: int
    config: dict
    threads: int = 1
    task_settings: dict = field(default_factory=dict)
    identity_candidate: bool | tuple[str, ...] = False
    arch_settings: dict = field(default_factory=dict)


def trial_arrays(fit: PopulationFit) -> dict[str, np.ndarray]:
    """What a trial reports of ``fit``: :func:`~lfads.population.population.fit_arrays` with ``wall_time`` and
    ``target_loss``."""
    return {**fit_arrays(fit), "wall_time": np.asarray(fit.wall_time), "target_loss": np.asarray(fit.target_loss)}


def train_chunk(config: dict, setup: SpreadSetup) -> None:
    """Ray Tune function trainable: train ``config["unit"]`` (an architecture and its seeds) as one batched model.

    Reports the count that reached the target, the median final loss and the training time, with a
    checkpoint holding :data:`FIT_FILE` (:func:`trial_arrays`). Ray pickles it by reference, so it lives here.
    """
    from ray import tune

    from lfads.runtime import configure_threads

    configure_threads(setup.threads)
    unit = config["unit"]
    task = get_task(setup.task, **setup.task_settings)
    config = config_for(TrainConfig(**setup.config), unit["arch"], setup.identity_candidate, setup.arch_settings)
    fit = train_population(task, unit["arch"], unit["seeds"], setup.units, config)
    with tempfile.TemporaryDirectory(prefix="lfads_population_") as work:
        np.savez(Path(work) / FIT_FILE, **trial_arrays(fit))
        tune.report({"reached": int(fit.reached.sum()), "median_loss": float(np.median(fit.final_loss)),
                     "train_s": float(fit.wall_time)}, checkpoint=tune.Checkpoint.from_directory(work))


# ----------------------------------------------------------------------------------------------------------------------
# Joining the chunks
# ----------------------------------------------------------------------------------------------------------------------


def _pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``(r, n)`` -> ``(rows, n)`` with NaN rows appended."""
    return np.concatenate([values, np.full((rows - values.shape[0], values.shape[1]), np.nan)])


def join_chunks(arch: str, chunks: Sequence[dict[str, np.ndarray]], config: TrainConfig) -> PopulationFit:
    """One :class:`~lfads.population.train.PopulationFit` of ``arch`` from its chunks' :func:`trial_arrays`.

    The chunks are ordered by their first seed and joined along the network axis; ``losses`` and
    ``eval_losses`` are padded with NaN to the longest chunk (whose ``eval_steps`` are kept; every other
    chunk's are their prefix). ``wall_time`` is the chunks' sum.
    """
    chunks = sorted(chunks, key=lambda c: int(c["seeds"][0]))
    steps = max(c["losses"].shape[0] for c in chunks)
    longest = max(chunks, key=lambda c: len(c["eval_steps"]))
    for c in chunks:
        if not np.array_equal(c["eval_steps"], longest["eval_steps"][: len(c["eval_steps"])]):
            raise LFADSDataError(f"population chunk {arch} seeds {c['seeds'].tolist()}: its evaluation steps are not "
                                 "a prefix of the other chunks'; were they trained with different settings?")
    weights = {name: torch.as_tensor(np.concatenate([c[f"weights/{name}"] for c in chunks])) for name in WEIGHTS}
    model = StackedRNN(arch, weights, weights["readout_weight"], weights["readout_bias"]).eval()
    return PopulationFit(
        arch=arch,
        seeds=np.concatenate([c["seeds"] for c in chunks]),
        model=model,
        losses=np.concatenate([_pad_rows(c["losses"], steps) for c in chunks], axis=1),
        eval_steps=np.asarray(longest["eval_steps"]),
        eval_losses=np.concatenate([_pad_rows(c["eval_losses"], len(longest["eval_steps"])) for c in chunks], axis=1),
        reached=np.concatenate([c["reached"] for c in chunks]),
        stop_step=np.concatenate([c["stop_step"] for c in chunks]),
        final_loss=np.concatenate([c["final_loss"] for c in chunks]),
        target_loss=float(chunks[0]["target_loss"]),
        wall_time=float(sum(float(c["wall_time"]) for c in chunks)),
        config=config,
    )


def _read_trial(result) -> dict[str, np.ndarray]:
    """The :func:`trial_arrays` a finished trial reported in its checkpoint."""
    where = f"trial {result.path}"
    if result.error is not None:
        raise RuntimeError(f"{where}: training failed ({result.error}); its log is in that folder.")
    if result.checkpoint is None:
        raise LFADSDataError(f"{where}: reported no checkpoint with its fit.")
    with result.checkpoint.as_directory() as folder:
        path = Path(folder) / FIT_FILE
        if not path.exists():
            raise LFADSDataError(f"{where}: its checkpoint {folder} has no {FIT_FILE}; with a Ray cluster, the storage "
                                 "folder must be one every machine of the cluster sees (a shared file system).")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


# ----------------------------------------------------------------------------------------------------------------------
# Ray
# ----------------------------------------------------------------------------------------------------------------------


def _check_reachable(address: str, timeout: float = _CONNECT_TIMEOUT_S) -> None:
    """Fail fast unless ``address`` (``host:port`` or ``ray://host:port``; ``auto``/``local`` are not checked)
    accepts a TCP connection."""
    try:
        failure = unreachable(address, timeout)
    except ValueError:
        raise LFADSArgumentError(f"Ray address {address!r}: expected host:port (e.g. 10.0.0.5:6379), the address "
                                 "`ray start --head` prints, or 'auto'.") from None
    if failure is None:
        return
    host, port, reason = failure
    raise LFADSDataError(f"Ray address {address}: no Ray cluster answers at {host}:{port} ({reason} within "
                         f"{timeout:g} s); start one there with `ray start --head --port {port}`, correct the "
                         "address, or drop it to start Ray on this machine.")


@contextmanager
def _ray_instance(address: str | None, num_cpus: int | None, verbose: bool) -> Iterator[None]:
    """Ray, joined at ``address`` or started here (and shut down after) unless already running; the trials'
    own output reaches this process only when ``verbose``."""
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = {"logging_level": logging.WARNING, "log_to_driver": bool(verbose)}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    try:
        yield
    finally:
        ray.shutdown()


def _storage_path(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def _fit_trials(units: list[dict], setup: SpreadSetup, cpus_per_trial: float, storage: str, verbose: bool) -> list:
    """Run one trial per unit; return Ray Tune's results."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_chunk, setup=setup), {"cpu": cpus_per_trial}),
        param_space={"unit": tune.grid_search(units)},
        tune_config=tune.TuneConfig(reuse_actors=True, trial_name_creator=_unit_name,
                                    trial_dirname_creator=_unit_name),
        run_config=tune.RunConfig(storage_path=storage, verbose=1 if verbose else 0),
    )
    return list(tuner.fit())


def run_population_ray(
    task: str = "flipflop",
    archs: list[str] | None = None,
    seeds: int = 8,
    units: int = 64,
    seeds_per_trial: int = 8,
    cpus_per_trial: int = 1,
    address: str | None = None,
    num_cpus: int | None = None,
    storage: str | os.PathLike | None = None,
    max_steps: int = 3000,
    batch_size: int = 8,
    lr: float = 1e-2,
    lr_half_life: int | None = None,
    carry_state: bool = False,
    target_loss: float | None = None,
    data_seed: int = 0,
    identity_candidate: bool | Sequence[str] = False,
    rate_penalty: float = 0.0,
    arch_settings: Mapping[str, Mapping[str, Any]] | None = None,
    n_initial_states: int = 256,
    noise_std: float = 0.02,
    find_points: bool = True,
    graphs: bool = True,
    out: str | os.PathLike | None = None,
    task_settings: dict[str, float] | None = None,
    verbose: bool = False,
) -> PopulationResult:
    """:func:`lfads.population.population.run_population` with the training spread over Ray Tune trials.

    Parameters
    ----------
    seeds_per_trial : int
        Networks trained together (one batched model) in one trial.
    cpus_per_trial : int
        CPUs Ray gives a trial (its torch threads).
    address : str, optional
        ``host:port`` of a running Ray cluster (``ray start --head``), or ``"auto"``; ``None`` starts Ray on
        this machine (and shuts it down after). An already started Ray is used as it is.
    num_cpus : int, optional
        CPUs of the Ray started here (default: all of this machine's).
    storage : path or URI, optional
        Ray Tune's results folder (trial logs and checkpoints), kept; by default a temporary folder, removed
        after. With a cluster of several machines it must be one they all see (a shared file system or
        ``s3://...``).
    task, archs, seeds, units, max_steps, batch_size, lr, lr_half_life, carry_state, target_loss, data_seed,
    identity_candidate, rate_penalty, arch_settings, n_initial_states, noise_std, find_points, graphs, out,
    task_settings, verbose
        As in ``run_population``.

    Returns
    -------
    PopulationResult
        Laid out as ``run_population``'s (architectures in the order given, seeds in order).

    Raises
    ------
    LFADSArgumentError
        If ``seeds_per_trial < 1`` or ``cpus_per_trial <= 0``, or Ray Tune is not installed.
    LFADSDataError
        If ``address`` does not accept connections (before any training).
    RuntimeError
        If a trial failed.
    """
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError as err:
        raise LFADSArgumentError(f"{INSTALL_HINT} ({err}).") from None
    if not cpus_per_trial > 0:
        raise LFADSArgumentError(f"cpus_per_trial {cpus_per_trial}: must be positive.")
    check_population_settings("run_population_ray", seeds, units, n_initial_states, noise_std, out)
    the_task = get_task(task, **(task_settings or {}))
    archs = population_archs(archs)
    trials = population_units(archs, seeds, seeds_per_trial)
    config = TrainConfig(max_steps=max_steps, batch_size=batch_size, lr=lr, lr_half_life=lr_half_life,
                         carry_state=carry_state, target_loss=target_loss, data_seed=data_seed,
                         rate_penalty=rate_penalty)
    candidate = identity_candidate if isinstance(identity_candidate, bool) else tuple(identity_candidate)
    own = {arch: dict(values) for arch, values in (arch_settings or {}).items()}
    # every architecture's settings, built before Ray starts (a wrong setting is an error then)
    configs = {arch: config_for(config, arch, identity_candidate, own) for arch in archs}
    setup = SpreadSetup(task, int(units), asdict(config), max(1, int(cpus_per_trial)), dict(task_settings or {}),
                        candidate, own)
    if address:
        _check_reachable(address)
    with tempfile.TemporaryDirectory(prefix="lfads_population_ray_") as scratch:
        with _ray_instance(address, num_cpus, verbose):
            results = _fit_trials(trials, setup, cpus_per_trial, _storage_path(storage or scratch), verbose)
        chunks: dict[str, list] = {arch: [] for arch in archs}
        for res in results:
            chunks[res.config["unit"]["arch"]].append(_read_trial(res))
    result = PopulationResult(the_task, int(units), {})
    for arch in archs:
        result.fits[arch] = join_chunks(arch, chunks[arch], configs[arch])
        if verbose:
            report_fit(result.fits[arch])
    return finish_population(result, find_points, graphs, n_initial_states, noise_std, out, verbose)
