"""A population end to end: train every architecture's seeds, find every network's fixed points, store it all.

:func:`run_population` trains ``seeds`` networks of each architecture on one task
(:func:`lfads.population.train.train_population`), then for each network and each of the task's
conditions (the inputs :math:`u^*` where theory places the fixed points) runs
:func:`lfads.analysis.fixed_points.find_fixed_points` from states visited on that condition's trials,
and writes one HDF5 file (atomically, :func:`lfads.data.hdf5.save_h5_atomic`)::

    /                      attrs: format, task, task_settings (JSON), units, archs (in training order)
    /<arch>/               seeds (N,), reached (N,), stop_step (N,), final_loss (N,), losses (steps, N),
                           eval_steps (checks,), eval_losses (checks, N); attrs: target_loss, wall_time
    /<arch>/weights/       weight_ih (N, G H, I), weight_hh (N, G H, H), bias_ih, bias_hh (N, G H),
                           readout_weight (N, O, H), readout_bias (N, O)
    /<arch>/fixed_points/<seed>/<condition>/   one FixedPoints (its own layout, lfads.analysis) without its
                           linearizations (Jacobians, eigenvalues, eigenvectors): :func:`load_population`
                           computes them again from the stored weights
    /<arch>/graphs/<seed>/<condition>/         its fixed-point graph as edge lists (lfads.population.graphs)

:func:`load_population` reads it back; :meth:`PopulationResult.summary` is the per-architecture table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lfads.analysis.fixed_points import (
    LINEARIZATION_FIELDS,
    FixedPoints,
    find_fixed_points,
    sample_initial_states,
)
from lfads.data.atomic import check_output_path
from lfads.data.hdf5 import save_h5_atomic
from lfads.errors import LFADSArgumentError, LFADSDataError, check_setting
from lfads.population.cells import check_arch
from lfads.population.graphs import find_population_graphs, graph_arrays, graph_from_h5, graph_points
from lfads.population.tasks import Task, get_task
from lfads.population.train import PopulationFit, StackedRNN, TrainConfig, train_population

__all__ = [
    "WEIGHTS",
    "PopulationResult",
    "analyse_population",
    "check_population_format",
    "config_for",
    "find_population_fixed_points",
    "finish_population",
    "fit_arrays",
    "load_population",
    "population_archs",
    "report_fit",
    "run_population",
    "save_population",
]

_FORMAT = "lfads.population/1"
_FIT_ARRAYS = ("seeds", "reached", "stop_step", "final_loss", "losses", "eval_steps", "eval_losses")
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "readout_weight", "readout_bias")
"""The parameters of a :class:`~lfads.population.train.StackedRNN`, stored as ``weights/<name>``."""


@dataclass
class PopulationResult:
    """Trained networks of several architectures on one task, with their fixed points.

    Attributes
    ----------
    task : Task
        The task.
    units : int
        ``H`` of every network.
    fits : dict of str to PopulationFit
        One batched fit per architecture.
    fixed_points : dict of str to list of dict of str to FixedPoints
        ``fixed_points[arch][n][condition]``: network ``n``'s points at each condition of the task.
    graphs : dict of str to list of dict of str to TopologyGraph
        ``graphs[arch][n][condition]``: the fixed-point graph (:mod:`lfads.population.graphs`).
    path : Path or None
        The HDF5 file, once written.
    """

    task: Task
    units: int
    fits: dict[str, PopulationFit]
    fixed_points: dict[str, list[dict[str, FixedPoints]]] = field(default_factory=dict)
    graphs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def archs(self) -> list[str]:
        """Architectures in the order they were trained."""
        return list(self.fits)

    def readout(self, arch: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Network ``index``'s readout ``W (O, H)``, ``b (O,)`` as float64 arrays (it reads state entries ``:H``)."""
        w, b = self.fits[arch].model.readout(index)
        return w.double().numpy(), b.double().numpy()

    def trajectories(self, inputs: torch.Tensor) -> dict[str, np.ndarray]:
        """Hidden states of every network on the same trials: ``arch -> (networks, trials, time, H)``.

        ``inputs`` ``(trials, time, I)``; for the LSTM only :math:`h` (not :math:`c`) is returned.
        """
        out = {}
        for arch, fit in self.fits.items():
            with torch.no_grad():
                _, states = fit.model(torch.as_tensor(inputs, dtype=torch.float32))
            out[arch] = states[..., : fit.model.units].double().numpy()
        return out

    def summary_rows(self) -> list[dict[str, float | int | str]]:
        """One row per architecture: networks, reached target, median loss and steps, stable points and index-1
        saddles per network (among :func:`lfads.population.graphs.graph_points`)."""
        rows = []
        for arch, fit in self.fits.items():
            fps = [[graph_points(f, self.task) for f in net.values()] for net in self.fixed_points.get(arch, [])]
            n_stable = [sum(int((f.stability == "stable").sum()) for f in net) for net in fps]
            n_saddle1 = [sum(int(((f.stability == "saddle") & (f.n_unstable == 1)).sum()) for f in net)
                         for net in fps]  # fmt: skip
            rows.append({
                "arch": arch,
                "networks": int(fit.model.n_networks),
                "reached": int(fit.reached.sum()),
                "median_loss": float(np.median(fit.final_loss)),
                "median_steps": float(np.median(fit.stop_step)),
                "train_s": float(fit.wall_time),
                "median_stable": float(np.median(n_stable)) if n_stable else float("nan"),
                "median_index1": float(np.median(n_saddle1)) if n_saddle1 else float("nan"),
            })  # fmt: skip
        return rows

    def summary(self) -> str:
        """The per-architecture table as text (fixed points summed over the task's conditions)."""
        head = (f"{'arch':<8} {'networks':>8} {'reached':>7} {'median loss':>11} {'median steps':>12} "
                f"{'train s':>8} {'stable/net':>10} {'index-1/net':>11}")  # fmt: skip
        lines = [f"task {self.task.name} ({', '.join(f'{k}={v}' for k, v in self.task.settings.items())}), "
                 f"{self.units} units, target loss {next(iter(self.fits.values())).target_loss:g}", head,
                 "-" * len(head)]  # fmt: skip
        for r in self.summary_rows():
            lines.append(
                f"{r['arch']:<8} {r['networks']:>8d} {r['reached']:>7d} {r['median_loss']:>11.4f} "
                f"{r['median_steps']:>12.0f} {r['train_s']:>8.1f} {r['median_stable']:>10.1f} "
                f"{r['median_index1']:>11.1f}"
            )
        missed = [(arch, int((~fit.reached).sum()), fit.config.max_steps) for arch, fit in self.fits.items()]
        missed = [m for m in missed if m[1]]
        if missed:
            lines.append(f"not reached (kept, marked reached=False): "
                         f"{', '.join(f'{n} {arch} in {steps} steps' for arch, n, steps in missed)}; "
                         "train them longer (--max-steps) or set another --target-loss.")  # fmt: skip
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------------------------------------------------------
# Fixed points of every network
# ----------------------------------------------------------------------------------------------------------------------


def _between_attractors(fps: FixedPoints, noise_std: float, seed: int, copies: int = 4) -> np.ndarray:
    """``copies`` noisy midpoints ``(copies * pairs, H)`` of every pair of stable fixed points: starts for a
    second search (the segment between two attractors crosses the boundary of their basins, where the
    saddles between them sit)."""
    stable = fps.states[(fps.kind == "fixed") & (fps.stability == "stable")]
    i, j = np.triu_indices(len(stable), 1)
    rng = np.random.default_rng(seed)
    mids = [0.5 * (stable[i] + stable[j]) + noise_std * rng.standard_normal((i.size, fps.hidden_size))
            for _ in range(copies)]  # fmt: skip
    return np.concatenate(mids) if i.size else np.zeros((0, fps.hidden_size))


def find_population_fixed_points(
    task: Task,
    fit: PopulationFit,
    n_initial_states: int = 256,
    noise_std: float = 0.02,
    n_trials: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, FixedPoints]]:
    """Fixed points of every network of ``fit`` at every condition of ``task``.

    For each condition, ``n_trials`` trials from ``task.condition_sample`` are run through each network;
    ``n_initial_states`` visited states plus Gaussian noise of standard deviation ``noise_std``
    (:func:`lfads.analysis.fixed_points.sample_initial_states`) start the search, with the input
    held at the condition's :math:`u^*`; when it finds several attractors, a second search starts from the
    same states and from noisy midpoints of every pair of stable points (:func:`_between_attractors`), where
    the saddles between attractors are (from visited states alone the search misses some of them). The
    closed-form Jacobians of :class:`lfads.population.cells.CellDynamics` are used. For a task with
    ``slow_points`` (context-dependent integration) the slow points are kept instead
    (:class:`lfads.population.tasks.Task`).

    A progress bar over networks and conditions shows with ``progress``.

    Returns
    -------
    list of dict of str to FixedPoints
        ``[n][condition]``.
    """
    out: list[dict[str, FixedPoints]] = [{} for _ in range(fit.model.n_networks)]
    bar = tqdm(total=len(out) * len(task.conditions), unit="search", disable=not progress, leave=False,
               desc=f"fixed points of {len(out)} {fit.arch} x {len(task.conditions)} conditions")
    for c, (label, u_star) in enumerate(task.conditions.items()):
        data = task.condition_sample(label, n_trials, torch.Generator().manual_seed(int(seed) + c))
        with torch.no_grad():
            _, states = fit.model(data.inputs)
        u = torch.as_tensor(u_star, dtype=torch.float64)
        for n in range(fit.model.n_networks):
            init = sample_initial_states(states[n], n_initial_states, noise_std, seed=int(seed) + c)
            dyn = fit.model.cell(n).dynamics()
            if task.slow_points is None:
                fps = find_fixed_points(dyn, init.states, u)
                mids = _between_attractors(fps, noise_std, int(seed) + c)
                if len(mids):
                    fps = find_fixed_points(dyn, np.concatenate([init.states.numpy(), mids]), u)
                out[n][label] = fps
            else:  # a continuum of slow points: Adam only, no merging (its Newton polish and flow of stable
                # points would fold the continuum into the few exact fixed points on it), keep the slow end states
                fps = find_fixed_points(dyn, init.states, u, keep_unconverged=True, max_iter=0, dedup_tol=1e-3,
                                        adam_steps=int(task.slow_points["adam_steps"]), merge=False)
                out[n][label] = fps.select(fps.q <= float(task.slow_points["max_speed"]))
            bar.update()
    bar.close()
    return out


def analyse_population(
    result: PopulationResult,
    n_initial_states: int = 256,
    noise_std: float = 0.02,
    graphs: bool = True,
    verbose: bool = False,
) -> PopulationResult:
    """Find the fixed points (:func:`find_population_fixed_points`) and, with ``graphs``, the fixed-point graphs
    (:mod:`lfads.population.graphs`) of every network of ``result``, in place; returns ``result``."""
    for arch, fit in result.fits.items():
        start = time.perf_counter()
        result.fixed_points[arch] = find_population_fixed_points(result.task, fit, n_initial_states, noise_std,
                                                                 progress=verbose)
        if verbose:
            print(f"[population] {arch}: fixed points in {time.perf_counter() - start:.1f} s", flush=True)
    if graphs:
        start = time.perf_counter()
        result.graphs = find_population_graphs(result)
        if verbose:
            print(f"[population] fixed-point graphs in {time.perf_counter() - start:.1f} s", flush=True)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------------------


def config_for(
    config: TrainConfig,
    arch: str,
    identity_candidate: bool | Sequence[str],
    arch_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> TrainConfig:
    """``config`` for architecture ``arch``, with ``identity_candidate`` a bool for every architecture or the
    architectures that use it, and ``arch_settings[arch]`` (:class:`~lfads.population.train.TrainConfig`
    fields) replacing the shared settings for that architecture.

    Raises
    ------
    LFADSArgumentError
        If ``arch_settings`` names a field that ``TrainConfig`` does not have.
    """
    use = identity_candidate if isinstance(identity_candidate, bool) else arch in identity_candidate
    own = dict((arch_settings or {}).get(arch, {}))
    unknown = sorted(set(own) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise LFADSArgumentError(
            f"arch_settings[{arch!r}]: {', '.join(unknown)} not a training setting; use fields of "
            "lfads.population.train.TrainConfig (e.g. rate_penalty, max_steps, lr_half_life).")
    return replace(config, identity_candidate=bool(use), **own)


def run_population(
    task: str = "flipflop",
    archs: list[str] | None = None,
    seeds: int = 8,
    units: int = 64,
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
    out: str | None = None,
    task_settings: dict[str, float] | None = None,
    verbose: bool = False,
) -> PopulationResult:
    """Train a population (``seeds`` networks of each architecture on ``task``), find its fixed points, save it.

    Parameters
    ----------
    task : str
        ``"flipflop"``, ``"sine"`` or ``"context"`` (:func:`lfads.population.tasks.get_task`).
    archs : list of str, optional
        Architectures (:data:`lfads.population.cells.ARCHITECTURES`); vanilla, GRU, LSTM and UGRNN by default.
    seeds : int
        Networks per architecture, initialised from seeds ``0 .. seeds - 1``.
    units : int
        ``H``.
    max_steps, batch_size, lr, lr_half_life, carry_state, target_loss, data_seed, identity_candidate, rate_penalty
        Training settings (:class:`lfads.population.train.TrainConfig`; ``target_loss=None`` takes the task's;
        ``identity_candidate`` a bool for all architectures or the list of those that use it).
    arch_settings : dict, optional
        Per architecture, training settings that replace the shared ones (``{"vanilla": {"rate_penalty": 1.0}}``;
        :func:`config_for`).
    n_initial_states : int
        Starts of the fixed-point search per network and condition.
    noise_std : float
        Noise added to the visited states that start the search.
    find_points : bool
        Find the fixed points (otherwise only train).
    graphs : bool
        Build each network's fixed-point graph (:mod:`lfads.population.graphs`; needs ``find_points``).
    out : str, optional
        HDF5 file to write (atomically).
    task_settings : dict, optional
        Keyword settings of the task builder (e.g. ``{"n_bits": 2}``).
    verbose : bool
        Print progress.

    Returns
    -------
    PopulationResult
    """
    check_population_settings("run_population", seeds, units, n_initial_states, noise_std, out)
    the_task = get_task(task, **(task_settings or {}))
    archs = population_archs(archs)
    config = TrainConfig(max_steps=max_steps, batch_size=batch_size, lr=lr, lr_half_life=lr_half_life,
                         carry_state=carry_state, target_loss=target_loss, data_seed=data_seed,
                         rate_penalty=rate_penalty)
    result = PopulationResult(the_task, int(units), {})
    for arch in archs:
        fit = train_population(the_task, arch, list(range(seeds)), units,
                               config_for(config, arch, identity_candidate, arch_settings), progress=verbose)
        result.fits[arch] = fit
        if verbose:
            report_fit(fit)
    return finish_population(result, find_points, graphs, n_initial_states, noise_std, out, verbose)


def check_population_settings(where: str, seeds: int, units: int, n_initial_states: int, noise_std: float,
                              out: str | os.PathLike | None) -> None:
    """Raise :class:`LFADSDataError` (or :class:`~lfads.errors.LFADSOutputError` for ``out``) before any training
    unless the population's sizes and search settings are in range and ``out`` can be written."""
    for name, value in (("seeds", seeds), ("units", units), ("n_initial_states", n_initial_states)):
        check_setting(where, name, value, 1, integer=True)
    check_setting(where, "noise_std", noise_std, 0.0)
    if out is not None:
        check_output_path(out, overwrite=True, what="population file", option="out")


def population_archs(archs: list[str] | None) -> list[str]:
    """``archs`` checked (:func:`lfads.population.cells.check_arch`), or vanilla, GRU, LSTM and UGRNN by default."""
    archs = list(archs) if archs else ["vanilla", "gru", "lstm", "ugrnn"]
    for arch in archs:
        check_arch(arch)
    return archs


def report_fit(fit: PopulationFit) -> None:
    """Print how many of ``fit``'s networks reached the target, and its training time."""
    print(f"[population] {fit.arch}: {int(fit.reached.sum())}/{fit.model.n_networks} reached "
          f"{fit.target_loss:g} in {fit.wall_time:.1f} s", flush=True)  # fmt: skip


def finish_population(
    result: PopulationResult,
    find_points: bool = True,
    graphs: bool = True,
    n_initial_states: int = 256,
    noise_std: float = 0.02,
    out: str | Path | None = None,
    verbose: bool = False,
) -> PopulationResult:
    """After training: with ``find_points``, :func:`analyse_population`; with ``out``, :func:`save_population`."""
    if find_points:
        analyse_population(result, n_initial_states, noise_std, graphs=graphs, verbose=verbose)
    if out is not None:
        save_population(result, out)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Storage
# ----------------------------------------------------------------------------------------------------------------------


def fit_arrays(fit: PopulationFit) -> dict[str, np.ndarray]:
    """``fit``'s per-network arrays and its weights (``weights/<name>``, :data:`WEIGHTS`) as numpy arrays."""
    out = {name: np.asarray(getattr(fit, name)) for name in _FIT_ARRAYS}
    out.update({f"weights/{name}": getattr(fit.model, name).detach().numpy() for name in WEIGHTS})
    return out


def save_population(result: PopulationResult, path: str | Path) -> Path:
    """Write ``result`` to one HDF5 file (layout in the module docstring), atomically; returns the path."""
    arrays: dict[str, np.ndarray] = {}
    attrs = {"format": _FORMAT, "task": result.task.name, "task_settings": json.dumps(result.task.settings),
             "units": result.units, "archs": ",".join(result.fits)}  # fmt: skip
    group_attrs: dict[str, dict] = {}
    for arch, fit in result.fits.items():
        arrays.update({f"{arch}/{name}": value for name, value in fit_arrays(fit).items()})
        group_attrs[arch] = {"target_loss": fit.target_loss, "wall_time": fit.wall_time,
                             "train_config": json.dumps(asdict(fit.config))}  # fmt: skip
        for n, net in enumerate(result.fixed_points.get(arch, [])):
            for label, fps in net.items():
                where = f"{arch}/fixed_points/{int(fit.seeds[n])}/{label}"
                fp_arrays, fp_attrs, fp_groups = fps.to_h5()
                arrays.update({f"{where}/{k}": v for k, v in fp_arrays.items() if k not in LINEARIZATION_FIELDS})
                group_attrs[where] = fp_attrs
                group_attrs.update({f"{where}/{k}": v for k, v in fp_groups.items()})
        for n, net in enumerate(result.graphs.get(arch, [])):
            for label, graph in net.items():
                where = f"{arch}/graphs/{int(fit.seeds[n])}/{label}"
                g_arrays, g_attrs = graph_arrays(graph)
                arrays.update({f"{where}/{k}": v for k, v in g_arrays.items()})
                group_attrs[where] = g_attrs
    save_h5_atomic(path, arrays, attrs, group_attrs)
    result.path = Path(path)
    return result.path


def check_population_format(found: Any, path: str | Path) -> None:
    """Raise unless ``found``, the ``format`` attribute of the file ``path``, is a population file's."""
    if found != _FORMAT:
        raise LFADSDataError(
            f"{path}: not a population file (attribute 'format' is {found!r}, expected {_FORMAT!r}); write one "
            "with `lfads population` or lfads.population.run_population(out=...) (save_population).")


def _read_fixed_points(node: Any, where: str, model: StackedRNN, network: int) -> dict[str, FixedPoints]:
    """One network's stored points, by condition; their linearizations, which the file does not hold, computed
    again from the network's cell (built once for all conditions; files that hold them are read as they are)."""
    points, dynamics = {}, None
    for label in node:
        if "jac_state" in node[label]:
            points[label] = FixedPoints.from_h5(node[label], f"{where}/{label}")
            continue
        if dynamics is None:
            dynamics = model.cell(network).dynamics()
        fps = FixedPoints.from_h5(node[label], f"{where}/{label}", fill=dict.fromkeys(LINEARIZATION_FIELDS))
        points[label] = fps.relinearized(dynamics)
    return points


def load_population(path: str | Path) -> PopulationResult:
    """Read a file written by :func:`save_population` (networks, fits and fixed points).

    Raises
    ------
    LFADSDataError
        If the file was not written by :func:`save_population`, or lacks part of its layout (a damaged file).
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        check_population_format(f.attrs.get("format"), path)
        try:
            return _read_population(f, path)
        except KeyError as err:  # h5py names the missing attribute or object, not the file
            raise LFADSDataError(
                f"{path}: not a complete population file ({err.args[0] if err.args else err}); the file is damaged "
                "or was not written whole - write it again with `lfads population`.") from err


def _read_population(f: Any, path: Path) -> PopulationResult:
    """The population held by the open file ``f`` (of path ``path``), whose format has been checked."""
    task = get_task(str(f.attrs["task"]), **json.loads(f.attrs["task_settings"]))
    result = PopulationResult(task, int(f.attrs["units"]), {}, path=path)
    archs = str(f.attrs["archs"]).split(",") if "archs" in f.attrs else list(f)
    for arch in archs:
        g = f[arch]
        w = {name: torch.as_tensor(g["weights"][name][()]) for name in WEIGHTS}
        model = StackedRNN(arch, w, w["readout_weight"], w["readout_bias"]).eval()
        arrays = {name: g[name][()] for name in _FIT_ARRAYS}
        result.fits[arch] = PopulationFit(
            arch=arch, model=model, target_loss=float(g.attrs["target_loss"]),
            wall_time=float(g.attrs["wall_time"]),
            config=TrainConfig(**json.loads(g.attrs["train_config"])), **arrays,
        )  # fmt: skip
        if "fixed_points" in g:
            nets = g["fixed_points"]
            result.fixed_points[arch] = [
                _read_fixed_points(nets[str(int(s))], f"{path}:{arch}/{int(s)}", model, n)
                for n, s in enumerate(arrays["seeds"])
            ]
        if "graphs" in g:
            nets = g["graphs"]
            result.graphs[arch] = [
                {label: graph_from_h5(nets[str(int(s))][label]) for label in nets[str(int(s))]}
                for s in arrays["seeds"]
            ]  # fmt: skip
    return result
