"""The networks of one or more populations as :class:`lfads.compare.Model` objects, compared with every metric.

Network ``n`` of architecture ``a`` (initialised from seed ``s``) becomes a model named ``a/seed<s>`` holding

* its hidden states :math:`h_t` ``(trials, time, H)`` on trials shared by every network: ``n_trials``
  trials drawn from the task's own generator, ``task.sample(n_trials, torch.Generator().manual_seed(seed))``,
  from zero initial states (:meth:`PopulationResult.trajectories`; the LSTM's :math:`h` only);
* its map :math:`h_t = F(h_{t-1}, u_t)` with closed-form Jacobians
  (:meth:`lfads.population.cells.RecurrentCell.dynamics`, state size ``S``: ``2 H`` for the LSTM);
* the fixed points stored for one condition of the task (the input :math:`u^*` held there) and their
  stored fixed-point graph, so that the topology metrics use the graphs found by
  :func:`lfads.population.run_population` instead of integrating every network again;
* its task readout :math:`y = W h_{:H} + b` (:class:`TaskReadout`), the output space all networks share.

:func:`compare_population` runs :func:`lfads.compare.compare_models` on them and scores how well each
distance groups the networks by architecture (:func:`lfads.compare.stats.group_separation`: the silhouette, its
p-value against shuffled labels, the AUC).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfads.compare.api import FIXED_POINT_METRICS, ComparisonResult, Model, compare_models
from lfads.compare.stats import N_PERMUTATIONS, GroupSeparation, separation_table
from lfads.errors import LFADSDataError
from lfads.population.graphs import graph_points
from lfads.population.population import PopulationResult, check_population_format, load_population

__all__ = [
    "PopulationComparison",
    "TaskReadout",
    "check_population_file",
    "compare_population",
    "population_models",
    "shared_trials",
]


@dataclass(frozen=True)
class TaskReadout:
    """A network's task readout :math:`y = W h_{:H} + b` as a map from states ``(n, S)`` to outputs ``(n, O)``.

    Attributes
    ----------
    weight : np.ndarray
        ``W`` ``(O, H)``.
    bias : np.ndarray
        ``b`` ``(O,)``.
    """

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, states: Any) -> np.ndarray:
        """Outputs ``(n, O)`` (float64) of states ``(n, S)`` (array or tensor; only entries ``:H`` are read)."""
        h = states.detach().cpu().double().numpy() if isinstance(states, torch.Tensor) else np.asarray(states)
        return h[:, : self.weight.shape[1]].astype(np.float64) @ self.weight.T + self.bias


def shared_trials(task: Any, n_trials: int = 64, seed: int = 0) -> torch.Tensor:
    """``(trials, time, I)`` inputs of ``n_trials`` trials of ``task``, drawn from a generator seeded with ``seed``."""
    return task.sample(int(n_trials), torch.Generator().manual_seed(int(seed))).inputs


def _condition(result: PopulationResult, condition: str | None, where: str) -> str:
    labels = list(result.task.conditions)
    if condition is None:
        return labels[0]
    if condition not in labels:
        raise LFADSDataError(
            f"{where}: the {result.task.name} task has no condition {condition!r}; its conditions are "
            f"{', '.join(labels)}.")
    return condition


def _archs(result: PopulationResult, archs: Sequence[str] | None) -> list[str]:
    return result.archs if archs is None else [a for a in result.archs if a in set(archs)]


def population_models(
    result: PopulationResult,
    condition: str | None = None,
    *,
    archs: Sequence[str] | None = None,
    inputs: Any = None,
    n_trials: int = 64,
    seed: int = 0,
    prefix: str = "",
) -> tuple[list[Model], np.ndarray]:
    """Every network of ``result`` as a :class:`~lfads.compare.Model` (module docstring), with its architecture.

    Parameters
    ----------
    result : PopulationResult
        A population (:func:`lfads.population.load_population`).
    condition : str, optional
        The task condition whose fixed points and graphs are used (the task's first condition by default).
    archs : sequence of str, optional
        Keep only these architectures (all by default), in the population's order.
    inputs : array, optional
        ``(trials, time, I)`` shared trials; :func:`shared_trials` of ``n_trials`` and ``seed`` by default.
    n_trials, seed : int
        Number and seed of the shared trials when ``inputs`` is not given.
    prefix : str
        Put before every name (to tell populations apart).

    Returns
    -------
    models : list of Model
        Named ``<prefix><arch>/seed<s>``; ``fixed_points`` and ``topology`` are ``None`` where the population
        holds none (:func:`compare_population` then refuses the fixed-point metrics rather than searching).
    labels : np.ndarray
        ``(models,)`` the architecture of each model.
    """
    where = str(result.path) if result.path is not None else "the population"
    label = _condition(result, condition, where)
    if inputs is None:
        inputs = shared_trials(result.task, n_trials, seed)
    traj = result.trajectories(torch.as_tensor(inputs, dtype=torch.float32))
    models, labels = [], []
    for arch in _archs(result, archs):
        fit = result.fits[arch]
        points, graphs = result.fixed_points.get(arch), result.graphs.get(arch)
        for n in range(fit.model.n_networks):
            w, b = result.readout(arch, n)
            models.append(Model(
                f"{prefix}{arch}/seed{int(fit.seeds[n])}",
                trajectories=traj[arch][n],
                cell=fit.model.cell(n).dynamics(),
                fixed_points=graph_points(points[n].get(label), result.task) if points else None,
                readout=TaskReadout(w, b),
                hidden_size=fit.model.state_size,
                input_size=result.task.n_inputs,
                topology=graphs[n].get(label) if graphs else None,
            ))  # fmt: skip
            labels.append(arch)
    return models, np.asarray(labels, dtype=str)


def check_population_file(path: str | Path) -> Path:
    """``path`` if it is a population file (:func:`lfads.population.save_population`); raise otherwise.

    Raises
    ------
    LFADSDataError
        If the file is missing, a directory, not HDF5, truncated, or its ``format`` attribute is not a
        population's (the message says what was found).
    """
    import h5py

    from lfads.data.hdf5 import open_hdf5

    path = Path(path)
    if path.is_dir():
        raise LFADSDataError(f"{path}: is a directory, not a population file; pass the .h5 file `lfads population` "
                             "wrote.")
    if not path.is_file():
        raise LFADSDataError(f"{path}: no such population file; write one with `lfads population --out {path}`.")
    if not h5py.is_hdf5(path):
        raise LFADSDataError(f"{path}: not an HDF5 file, so not a population file; write one with `lfads population`.")
    with open_hdf5(path, "Copy it again or write it again with `lfads population`.") as f:
        check_population_format(f.attrs.get("format"), path)
    return path


def _require(result: PopulationResult, metrics: Sequence[str], archs: list[str], condition: str, where: str) -> None:
    """Raise if a fixed-point metric is asked for and a network has no fixed points stored at ``condition``."""
    needs = [m for m in metrics if isinstance(m, str) and m in FIXED_POINT_METRICS]
    if not needs:
        return
    for arch in archs:
        nets = result.fixed_points.get(arch)
        if not nets or any(condition not in net for net in nets):
            raise LFADSDataError(
                f"{where}: no fixed points stored for {arch} at condition {condition!r}, which the metrics "
                f"{', '.join(needs)} need; write the population with its fixed points (`lfads population`, or "
                "run_population(find_points=True)) or leave these metrics out.")


@dataclass
class PopulationComparison:
    """Distances between the networks of one or more populations, and how well they group by architecture.

    Attributes
    ----------
    result : ComparisonResult
        The distance matrices (``result.labels`` holds the architectures; each metric's settings hold its
        ``silhouette_by_arch``, ``silhouette_p`` and ``auc_by_arch``).
    labels : np.ndarray
        ``(models,)`` the architecture of each network.
    separation : dict of str to GroupSeparation
        Metric -> how well the architectures separate (:func:`lfads.compare.stats.group_separation`: the
        silhouette, its p-value against shuffled labels, the AUC; NaN where undefined: a single
        architecture, one network per architecture, or non-finite distances).
    models : list of Model
        The compared models.
    n_permutations : int
        Shuffles behind the p-values.
    """

    result: ComparisonResult
    labels: np.ndarray
    separation: dict[str, GroupSeparation] = field(default_factory=dict)
    models: list[Model] = field(default_factory=list, repr=False)
    n_permutations: int = N_PERMUTATIONS

    @property
    def silhouettes(self) -> dict[str, float]:
        """Metric -> silhouette by architecture."""
        return {metric: sc.silhouette for metric, sc in self.separation.items()}

    @property
    def p_values(self) -> dict[str, float]:
        """Metric -> the silhouette's p-value against shuffled architecture labels."""
        return {metric: sc.p_value for metric, sc in self.separation.items()}

    def silhouette_table(self, digits: int = 4) -> str:
        """One line per metric: silhouette by architecture, its p-value and the AUC
        (:func:`lfads.compare.stats.separation_table`)."""
        return separation_table(self.separation, list(dict.fromkeys(self.labels)), self.n_permutations, digits)

    def __str__(self) -> str:
        return f"{self.result}\n\n{self.silhouette_table()}"


ARCH_SETTINGS = ("silhouette_by_arch", "silhouette_p", "auc_by_arch", "silhouette_permutations")
"""Settings names of the architectures' separation scores (:meth:`ComparisonResult.score_groups`)."""


def _same_task(results: list[PopulationResult], names: list[str]) -> None:
    first = results[0].task
    for r, name in zip(results[1:], names[1:]):
        if r.task.name != first.name or json.dumps(r.task.settings) != json.dumps(first.settings):
            raise LFADSDataError(
                f"{name}: task {r.task.name} {r.task.settings} differs from {names[0]}'s {first.name} "
                f"{first.settings}; networks are compared on the same trials, so compare populations of one task.")


def compare_population(
    populations: PopulationResult | str | Path | Sequence[PopulationResult | str | Path],
    metrics: Sequence[str] = ("svcca", "cca", "procrustes", "topology"),
    *,
    condition: str | None = None,
    archs: Sequence[str] | None = None,
    n_trials: int = 64,
    seed: int = 0,
    exact_only: bool = False,
    n_permutations: int = N_PERMUTATIONS,
    **compare_kwargs: Any,
) -> PopulationComparison:
    """Compare every network of one or more populations (:func:`population_models`, then
    :func:`lfads.compare.compare_models`) and score each metric's grouping by architecture.

    Parameters
    ----------
    populations : PopulationResult, path, or a sequence of them
        Populations of one task (with the same task settings, so that the shared trials are the same). With
        more than one, names get the file's stem (or ``pop<k>``) as a prefix: ``pop0:gru/seed3``.
    metrics : sequence of str
        Names from :data:`lfads.compare.METRICS`; ``topology``, ``topology_counts`` and ``spectra`` need the
        fixed points stored in the population.
    condition : str, optional
        Condition of the task whose fixed points are compared (the first by default).
    archs : sequence of str, optional
        Compare only these architectures.
    n_trials, seed : int
        The shared trials (:func:`shared_trials`); ``seed`` seeds :func:`compare_models` too.
    exact_only : bool
        Passed to :func:`compare_models`. ``False`` by default: the models carry the points the stored graphs
        were built on (the fixed points; for a task that keeps slow points, those of its line attractors).
    n_permutations : int
        Shuffles of the architecture labels behind each silhouette's p-value (seeded by ``seed``).
    **compare_kwargs
        Other keyword arguments of :func:`compare_models` (``dsa=``, ``cv_folds=``, ``spectra_kwargs=``,
        ``progress=`` ...). The ``spectra`` metric pairs the fixed points of two networks by their task outputs
        (``spectra_kwargs`` ``by="readout"``, unless given): a memory with the same memory, a saddle with the
        saddle between the same memories.

    Returns
    -------
    PopulationComparison

    Raises
    ------
    LFADSDataError
        If a file is not a population, the populations are of different tasks, an architecture or condition
        is absent, or a fixed-point metric is asked for without stored fixed points.
    """
    items = [populations] if isinstance(populations, (PopulationResult, str, Path)) else list(populations)
    results = [load_population(check_population_file(p)) if isinstance(p, (str, Path)) else p for p in items]
    names = [str(r.path) if r.path is not None else f"population {k}" for k, r in enumerate(results)]
    _same_task(results, names)
    if archs is not None:
        missing = [a for a in archs if not any(a in r.archs for r in results)]
        if missing:
            present = list(dict.fromkeys(a for r in results for a in r.archs))
            raise LFADSDataError(f"{', '.join(names)}: no networks of {', '.join(missing)}; the architectures "
                                 f"present are {', '.join(present)}.")  # fmt: skip
    prefixes = [""] if len(results) == 1 else _prefixes(results)
    inputs = shared_trials(results[0].task, n_trials, seed)
    models, labels = [], []
    for r, name, prefix in zip(results, names, prefixes):
        label = _condition(r, condition, name)
        _require(r, metrics, _archs(r, archs), label, name)
        m, lab = population_models(r, label, archs=archs, inputs=inputs, prefix=prefix)
        models += m
        labels.append(lab)
    labels = np.concatenate(labels)
    compare_kwargs["spectra_kwargs"] = {"by": "readout", **(compare_kwargs.get("spectra_kwargs") or {})}
    result = compare_models(models, metrics, names=[m.name for m in models], seed=seed, exact_only=exact_only,
                            **compare_kwargs)  # fmt: skip
    separation = result.score_groups(labels.tolist(), n_permutations, seed, setting_names=ARCH_SETTINGS)
    return PopulationComparison(result, labels, separation, models, int(n_permutations))


def _prefixes(results: list[PopulationResult]) -> list[str]:
    stems = [r.path.stem if r.path is not None else "" for r in results]
    if all(stems) and len(set(stems)) == len(stems):
        return [f"{s}:" for s in stems]
    return [f"pop{k}:" for k in range(len(results))]
