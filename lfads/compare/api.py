"""Compare many models at once: :func:`compare_models` returns every distance matrix with its settings.

A model is given as

* trajectories ``(trials, time, units)`` (states on trials shared by all models), or
* a recurrent cell (``nn.GRUCell``, ``nn.GRU``, ``ClippedGRUCell``, any module) or a function
  ``f(u, h) -> h_next``: it is run on ``inputs`` ``(trials, time, I)`` from ``initial_states``
  ``(trials, H)`` to get its trajectories, and its fixed points (for the topology and spectra metrics)
  are searched from states it visits (:func:`lfads.analysis.find_fixed_points`), or
* a :class:`Model` with any of these parts filled in (e.g. precomputed fixed points, a readout).

Metrics (names for ``metrics=``):

========================  ==========================================================================
``cca``, ``svcca``,       geometry (:mod:`lfads.compare.geometry`): generalized shape metrics and CKA;
``shape``, ``procrustes``, ``cca_corr`` and ``svcca_corr`` are one minus the mean canonical correlation
``procrustes_euclidean``,
``cka``, ``cca_corr``,
``svcca_corr``
``dsa``                   similarity-transform distance between DMD operators (:mod:`lfads.compare.dsa`)
``dsa_eigenvalues``       Wasserstein distance between the DMD operators' eigenvalues
``topology``              graph distance between fixed-point graphs (:mod:`lfads.compare.topology`)
``topology_counts``       L1 distance between counts of fixed points by index
``spectra``               mean eigenvalue distance of matched fixed points (:mod:`lfads.compare.spectra`)
``jslds``                 mean eigenvalue distance of the Jacobians along the same trials
                          (:mod:`lfads.compare.jslds`)
========================  ==========================================================================

:meth:`ComparisonResult.save` writes every matrix with its settings to one HDF5 file, atomically.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lfads.analysis.fixed_points import FixedPoints, find_fixed_points, sample_initial_states
from lfads.analysis.jacobians import as_dynamics, broadcast_inputs
from lfads.compare.dsa import DSA
from lfads.compare.geometry import (
    GEOMETRY_METRICS,
    geometry_metric,
    pairwise_cross_validated_distances,
    pairwise_distances,
)
from lfads.compare.jslds import TrialPath, pairwise_jslds_distances
from lfads.compare.pairs import model_pairs
from lfads.compare.spectra import compare_linearizations
from lfads.compare.stats import N_PERMUTATIONS, GroupSeparation, group_separation
from lfads.compare.topology import TopologyGraph, build_topology, count_distance, graph_distance, unstable_index
from lfads.data.atomic import atomic_output
from lfads.errors import LFADSDataError

__all__ = ["METRICS", "ComparisonResult", "Model", "compare_models", "exact_points", "simulate"]

DYNAMICS_METRICS = ("dsa", "dsa_eigenvalues")
FIXED_POINT_METRICS = ("topology", "topology_counts", "spectra")
TRIAL_LINEARIZATION_METRICS = ("jslds",)
METRICS: tuple[str, ...] = (*GEOMETRY_METRICS, *DYNAMICS_METRICS, *FIXED_POINT_METRICS, *TRIAL_LINEARIZATION_METRICS)
_FORMAT = "lfads.compare.ComparisonResult/1"
GROUP_SETTINGS = ("group_silhouette", "group_silhouette_p", "group_auc", "group_permutations")
"""Settings names under which :meth:`ComparisonResult.score_groups` stores a grouping's scores."""


def simulate(
    cell: Any,
    inputs: Any,
    initial_states: Any,
    hidden_size: int | None = None,
    input_size: int | None = None,
) -> np.ndarray:
    """States ``(trials, time, H)`` of :math:`h_t = F(h_{t-1}, u_t)`.

    Inputs are ``(trials, time, I)``, initial states ``(trials, H)``.
    """
    dyn = as_dynamics(cell, hidden_size=hidden_size, input_size=input_size)
    u = torch.as_tensor(np.asarray(inputs), dtype=dyn.dtype, device=dyn.device)
    h = torch.as_tensor(np.asarray(initial_states), dtype=dyn.dtype, device=dyn.device)
    if u.ndim != 3 or h.ndim != 2 or u.shape[0] != h.shape[0]:
        raise LFADSDataError(
            f"simulate needs inputs (trials, time, I) and initial_states (trials, H) with the same trials; got "
            f"{tuple(u.shape)} and {tuple(h.shape)}."
        )
    out = torch.empty(u.shape[0], u.shape[1], dyn.hidden_size, dtype=dyn.dtype)
    with torch.no_grad():
        for t in range(u.shape[1]):
            h = dyn.step(h, broadcast_inputs(u[:, t], h.shape[0], dyn))
            out[:, t] = h.cpu()
    return out.numpy()


@dataclass
class Model:
    """One model to compare; fill in what you have (see :func:`compare_models`).

    Attributes
    ----------
    name : str
    trajectories : np.ndarray, optional
        ``(trials, time, units)``.
    cell : module or callable, optional
        The map :math:`F(h, u)` (``nn.GRUCell`` etc., or ``f(u, h)``).
    fixed_points : FixedPoints, optional
    readout : array ``(outputs, H)`` or callable, optional
        Map from states to a space shared by all models (used to match fixed points).
    hidden_size, input_size : int, optional
        Sizes of a plain function ``f(u, h)``.
    inputs : np.ndarray, optional
        ``(trials, time, I)`` inputs that drove ``trajectories`` (``trajectories[:, t] = F(h_{t-1}, u_t)``).
    initial_states : np.ndarray, optional
        ``(trials, H)`` states before the first step.
    expansion : module or callable, optional
        JSLDS expansion-point network ``(batch, H) -> (batch, H)`` (for the ``jslds`` metric).
    """

    name: str
    trajectories: np.ndarray | None = None
    cell: Any = None
    fixed_points: FixedPoints | None = None
    readout: Any = None
    hidden_size: int | None = None
    input_size: int | None = None
    inputs: np.ndarray | None = None
    initial_states: np.ndarray | None = None
    expansion: Any = None
    topology: TopologyGraph | None = field(default=None, repr=False)


def _as_model(obj: Any, name: str) -> Model:
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, np.ndarray) or (isinstance(obj, torch.Tensor)) or isinstance(obj, (list, tuple)):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else np.asarray(obj)
        return Model(name, trajectories=np.asarray(arr, dtype=np.float64))
    if callable(obj):
        return Model(name, cell=obj)
    raise LFADSDataError(
        f"Model {name!r} is a {type(obj).__name__}; pass trajectories (trials, time, units), a cell or f(u, h), or a "
        "lfads.compare.Model."
    )


@dataclass
class ComparisonResult:
    """Distance matrices of ``N`` named models, one per metric, with the settings that produced them.

    Attributes
    ----------
    names : list of str
    distances : dict
        Metric name -> ``(N, N)`` matrix.
    settings : dict
        Metric name -> dict of scalar settings (and ``wall_time`` in seconds).
    extras : dict
        Metric name -> dict of other ``(N, N)`` arrays (e.g. the graph-distance method per pair).
    labels : list of str, optional
        A group label per model (e.g. the architecture of each network of a population).
    """

    names: list[str]
    distances: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: list[str] | None = None

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.distances[metric]

    def table(self, metric: str, digits: int = 3) -> str:
        """The matrix of one metric as text, rows and columns labelled by model name."""
        d = self.distances[metric]
        width = max(8, digits + 6, *(len(n) for n in self.names)) + 2  # two spaces between columns
        head = " " * width + "".join(f"{n:>{width}}" for n in self.names)
        rows = [f"{n:<{width}}" + "".join(f"{v:>{width}.{digits}f}" for v in row) for n, row in zip(self.names, d)]
        return f"{metric}\n{head}\n" + "\n".join(rows)

    def group_table(self, metric: str, digits: int = 3) -> str:
        """Mean distance between the models of every two groups of :attr:`labels` (on the diagonal: between
        different models of one group), groups in order of first appearance.

        .. math:: \\bar d_{AB} = \\operatorname{mean} \\{d_{ij} : i \\in A,\\ j \\in B,\\ i \\ne j\\}
        """
        if self.labels is None:
            raise LFADSDataError("ComparisonResult.group_table needs labels (one group label per model).")
        d, labels = self.distances[metric], np.asarray(self.labels)
        groups = list(dict.fromkeys(self.labels))
        off = ~np.eye(len(labels), dtype=bool)
        width = max(8, digits + 6, *(len(g) for g in groups)) + 2
        head = " " * width + "".join(f"{g:>{width}}" for g in groups)
        rows = []
        for a in groups:
            cells = []
            for b in groups:
                block = d[np.ix_(labels == a, labels == b)][off[np.ix_(labels == a, labels == b)]]
                cells.append(f"{block.mean():>{width}.{digits}f}" if block.size else f"{'-':>{width}}")
            rows.append(f"{a:<{width}}" + "".join(cells))
        return f"{metric} (mean over the models of each group)\n{head}\n" + "\n".join(rows)

    def score_groups(
        self,
        labels: Sequence[str],
        n_permutations: int = N_PERMUTATIONS,
        seed: int = 0,
        setting_names: tuple[str, str, str, str] = GROUP_SETTINGS,
    ) -> dict[str, GroupSeparation]:
        """Set :attr:`labels` and score how well they separate the models under every metric
        (:func:`lfads.compare.stats.group_separation`); the silhouette, its p-value, the AUC and
        ``n_permutations`` go into each metric's settings under ``setting_names``."""
        self.labels = list(labels)
        scores = {metric: group_separation(d, self.labels, n_permutations, seed)
                  for metric, d in self.distances.items()}
        for metric, sc in scores.items():
            values = (sc.silhouette, sc.p_value, sc.auc, int(n_permutations))
            self.settings[metric].update(zip(setting_names, values))
        return scores

    def __str__(self) -> str:
        return "\n\n".join(self.table(m) for m in self.distances)

    def save(self, path: str | Path) -> Path:
        """Write to HDF5 atomically: ``names`` (and ``labels`` when set), one group per metric with ``distances``
        (and extras), settings as the group's attributes."""
        import h5py

        path = Path(path)
        with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = _FORMAT
            f.create_dataset("names", data=np.asarray(self.names, dtype="S"))
            if self.labels is not None:
                f.create_dataset("labels", data=np.asarray(self.labels, dtype="S"))
            for metric, d in self.distances.items():
                g = f.create_group(metric)
                g.create_dataset("distances", data=np.asarray(d, dtype=np.float64))
                for key, value in self.extras.get(metric, {}).items():
                    value = np.asarray(value)
                    g.create_dataset(key, data=value.astype("S") if value.dtype.kind == "U" else value)
                for key, value in self.settings.get(metric, {}).items():
                    g.attrs[key] = value
        return path

    @classmethod
    def load(cls, path: str | Path) -> ComparisonResult:
        """Read a file written by :meth:`save`.

        Raises
        ------
        LFADSDataError
            If the file was not written by :meth:`save`.
        """
        import h5py

        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != _FORMAT:
                raise LFADSDataError(
                    f"{path}: not a comparison file (attribute 'format' is {f.attrs.get('format')!r}, expected "
                    f"{_FORMAT!r}); write it with ComparisonResult.save."
                )
            names = [n.decode() for n in f["names"][()]]
            out = cls(names)
            if "labels" in f:
                out.labels = [n.decode() for n in f["labels"][()]]
            for metric in f:
                if metric in ("names", "labels"):
                    continue
                g = f[metric]
                out.distances[metric] = g["distances"][()]
                out.settings[metric] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in g.attrs.items()}
                extras = {}
                for key in g:
                    if key != "distances":
                        value = g[key][()]
                        extras[key] = value.astype("U") if value.dtype.kind == "S" else value
                if extras:
                    out.extras[metric] = extras
        return out


def _prepare_models(
    models: list[Model],
    metrics: Sequence[str],
    inputs: Any,
    initial_states: Any,
    n_initial_states: int,
    fixed_point_kwargs: dict[str, Any],
    seed: int,
    exact_only: bool,
    unstable_tol: float = 0.0,
    progress: bool = False,
    build_graphs: bool = False,
) -> None:
    need_lin = any(m in TRIAL_LINEARIZATION_METRICS for m in metrics)
    need_traj = need_lin or any(m in GEOMETRY_METRICS or m in DYNAMICS_METRICS for m in metrics)
    need_fps = any(m in FIXED_POINT_METRICS for m in metrics)
    for k, m in enumerate(tqdm(models, desc="models", unit="model", disable=not progress, leave=False)):
        h0 = _initial_states_of(initial_states, k)
        if m.trajectories is None and m.cell is not None and (need_traj or (need_fps and m.fixed_points is None)):
            if inputs is None or initial_states is None:
                raise LFADSDataError(
                    f"Model {m.name!r} is a cell: pass inputs (trials, time, I) and initial_states (trials, H) to "
                    "compare_models so it can be run, or give its trajectories."
                )
            m.trajectories = simulate(m.cell, inputs, h0, m.hidden_size, m.input_size)
        if need_lin:
            if m.cell is None:
                raise LFADSDataError(
                    f"Model {m.name!r} has no cell; the jslds metric differentiates the map along the trials, so give "
                    "its cell (or f(u, h)) with its trajectories."
                )
            m.inputs = np.asarray(inputs) if m.inputs is None and inputs is not None else m.inputs
            m.initial_states = np.asarray(h0) if m.initial_states is None and h0 is not None else m.initial_states
        if need_traj and m.trajectories is None:
            raise LFADSDataError(f"Model {m.name!r} has no trajectories; the metrics {list(metrics)} need them.")
        if need_fps and m.fixed_points is None:
            if m.cell is None:
                raise LFADSDataError(
                    f"Model {m.name!r} has neither fixed points nor a cell; the metrics "
                    f"{[x for x in metrics if x in FIXED_POINT_METRICS]} need one of them."
                )
            init = sample_initial_states(m.trajectories, n_initial_states, noise_std=0.05, seed=seed)
            m.fixed_points = find_fixed_points(  # inputs held at zero
                m.cell, init.states, None, hidden_size=m.hidden_size, input_size=m.input_size, **fixed_point_kwargs
            )
        if need_fps and exact_only:
            m.fixed_points = exact_points(m.fixed_points)
        if build_graphs and m.topology is None:
            if m.cell is None:
                raise LFADSDataError(
                    f"Model {m.name!r}: the fixed-point graph (topology, or spectra matched by graph) integrates the "
                    "map, so it needs a cell.")
            m.topology = build_topology(m.cell, m.fixed_points, unstable_tol=unstable_tol,
                                        hidden_size=m.hidden_size, input_size=m.input_size)


def compare_models(
    models: Sequence[Any],
    metrics: Sequence[str] = ("procrustes", "cca", "cka", "dsa", "dsa_eigenvalues"),
    *,
    names: Sequence[str] | None = None,
    inputs: Any = None,
    initial_states: Any = None,
    conditions: Any = None,
    dsa: DSA | None = None,
    n_initial_states: int = 256,
    fixed_point_kwargs: dict[str, Any] | None = None,
    spectra_kwargs: dict[str, Any] | None = None,
    graph_kwargs: dict[str, Any] | None = None,
    jslds_kwargs: dict[str, Any] | None = None,
    exact_only: bool = True,
    unstable_tol: float = 0.0,
    cv_folds: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> ComparisonResult:
    """All-pairs distance matrices of ``N`` models for each metric (module docstring).

    Parameters
    ----------
    models : sequence
        Trajectories ``(trials, time, units)``, cells / ``f(u, h)`` functions, or :class:`Model`.
    metrics : sequence of str
        Names from :data:`METRICS` (or :class:`~lfads.compare.geometry.ShapeMetric` objects).
    names : sequence of str, optional
        Model names (``model0``, ``model1``, ... by default).
    inputs, initial_states : array, optional
        ``(trials, time, I)`` and ``(trials, H)`` (or one per model) to run models given as cells; for
        ``jslds`` also the inputs and initial states of models given with trajectories and a cell, unless their
        :class:`Model` has its own.
    conditions : array, optional
        ``(trials,)`` labels: DSA is fitted to the residuals about the condition averages.
    dsa : DSA, optional
        DSA settings (delays, rank, restarts...); selected by held-out prediction when not set.
    n_initial_states : int
        Starts of the fixed-point search per model.
    cv_folds : int, optional
        Geometry metrics fitted and scored on different trials, averaged over this many folds
        (:func:`~lfads.compare.geometry.pairwise_cross_validated_distances`).
    exact_only : bool
        Topology and spectra use only the fixed points that Newton's method resolves to rounding error
        (:func:`exact_points`), not loose points of slow plateaus.
    unstable_tol : float
        ``topology`` and ``topology_counts`` count a direction as unstable when :math:`|\\lambda| > 1 +`
        ``unstable_tol`` (:func:`~lfads.compare.topology.unstable_index`). The default 0 counts every
        :math:`|\\lambda| > 1`; the search's ``marginal_tol`` (1e-2 by default) leaves out the marginal modes
        (:math:`||\\lambda| - 1| \\le` ``marginal_tol``) whose side of 1 a fit does not pin down. Models
        given with a ``topology`` already built keep theirs.
    fixed_point_kwargs, spectra_kwargs, graph_kwargs, jslds_kwargs : dict, optional
        Passed to :func:`~lfads.analysis.find_fixed_points`,
        :func:`~lfads.compare.spectra.compare_linearizations`,
        :func:`~lfads.compare.topology.graph_distance` and
        :func:`~lfads.compare.jslds.pairwise_jslds_distances` (``max_points``, default 2000; ``n_modes``;
        ``at``; ``seed`` defaults to ``seed``).
    progress : bool
        Progress bars over the models (running cells, finding fixed points and graphs) and over the pairs of
        the all-pairs loops of DSA, topology and spectra.

    Examples
    --------
    >>> res = compare_models([x1, x2, x3], metrics=["procrustes", "dsa"])  # doctest: +SKIP
    >>> print(res.table("dsa"))                                             # doctest: +SKIP
    >>> res.save("compare.h5")                                              # doctest: +SKIP
    """
    names = [f"model{i}" for i in range(len(models))] if names is None else [str(n) for n in names]
    if len(names) != len(models):
        raise LFADSDataError(f"compare_models: {len(models)} models but {len(names)} names.")
    if len(models) < 2:
        raise LFADSDataError("compare_models needs at least two models.")
    metric_names = [m if isinstance(m, str) else None for m in metrics]
    unknown = [m for m in metric_names if m is not None and m not in METRICS]
    if unknown:
        raise LFADSDataError(f"Unknown metrics {unknown}; choose from {list(METRICS)}.")
    ms = [_as_model(obj, name) for obj, name in zip(models, names)]
    metric_kinds = [m if isinstance(m, str) else "shape" for m in metrics]
    _prepare_models(ms, metric_kinds, inputs, initial_states, n_initial_states,
                    fixed_point_kwargs or {}, seed, exact_only, unstable_tol, progress,
                    build_graphs="topology" in metric_kinds or (spectra_kwargs or {}).get("by") == "graph")
    result = ComparisonResult(names)
    n = len(ms)
    dsa_fit: DSA | None = None
    for metric in metrics:
        start = time.perf_counter()
        if not isinstance(metric, str) or metric in GEOMETRY_METRICS:
            m = geometry_metric(metric)
            key = metric if isinstance(metric, str) else f"shape_alpha{m.alpha}_{m.kind}"
            if cv_folds:
                d = pairwise_cross_validated_distances([x.trajectories for x in ms], m, cv_folds, seed)
            else:
                d = pairwise_distances([x.trajectories for x in ms], m)
            settings = {**m.settings, "cv_folds": int(cv_folds or 0)}
        elif metric in DYNAMICS_METRICS:
            key = metric
            if dsa_fit is None:
                dsa_fit = dataclasses.replace(dsa, models=[], selection=None) if dsa is not None else DSA(seed=seed)
                dsa_fit.fit([x.trajectories for x in ms], conditions=conditions)
                start = time.perf_counter()
            d = dsa_fit.distances(progress) if metric == "dsa" else dsa_fit.eigenvalue_distances(progress)
            settings = dict(dsa_fit.settings)
        elif metric == "topology":
            key = metric
            d = np.zeros((n, n))
            method = np.full((n, n), "", dtype="<U3")
            for i, j in model_pairs(n, metric, progress):
                d[i, j], method[i, j] = graph_distance(ms[i].topology, ms[j].topology, **(graph_kwargs or {}))
                d[j, i], method[j, i] = d[i, j], method[i, j]
            result.extras[key] = {"method": method,
                                  "count_vector": _pad_counts([x.topology.count_vector() for x in ms])}
            settings = {"max_nodes": (graph_kwargs or {}).get("max_nodes", 12),
                        "timeout": (graph_kwargs or {}).get("timeout", 5.0), "unstable_tol": float(unstable_tol)}
        elif metric == "topology_counts":
            key = metric
            d = np.zeros((n, n))
            graphs = [_index_graph(m, unstable_tol) for m in ms]
            for i, j in model_pairs(n):
                d[i, j] = d[j, i] = count_distance(graphs[i], graphs[j])
            settings = {"unstable_tol": float(unstable_tol)}
        elif metric == "jslds":
            key = metric
            d, settings, per_model = _jslds_distances(ms, jslds_kwargs or {}, seed)
            result.extras[key] = {"linearized_at": per_model}
        else:  # spectra
            key = metric
            kw = dict(spectra_kwargs or {})
            d = np.zeros((n, n))
            for i, j in model_pairs(n, metric, progress):
                if kw.get("by") == "readout":
                    kw.update(readout_a=ms[i].readout, readout_b=ms[j].readout)
                elif kw.get("by") == "graph":
                    kw.update(graph_a=ms[i].topology, graph_b=ms[j].topology)
                d[i, j] = d[j, i] = compare_linearizations(ms[i].fixed_points, ms[j].fixed_points, **kw).distance
            settings = {k: v for k, v in kw.items() if isinstance(v, (int, float, str, bool))}
        settings["wall_time"] = time.perf_counter() - start
        result.distances[key] = d
        result.settings[key] = settings
    return result


def _initial_states_of(initial_states: Any, k: int) -> Any:
    """Model ``k``'s initial states from one array shared by all models or a list of one per model."""
    if isinstance(initial_states, (list, tuple)):
        return initial_states[k] if k < len(initial_states) else None
    return initial_states


def _jslds_distances(ms: list[Model], kwargs: dict[str, Any], seed: int) -> tuple[np.ndarray, dict, np.ndarray]:
    kw = {"max_points": 2000, "n_modes": None, "at": "auto", "seed": seed, **kwargs}
    paths = [TrialPath(m.cell, m.trajectories, m.inputs, m.initial_states, m.expansion, m.hidden_size, m.input_size,
                       m.name) for m in ms]
    res = pairwise_jslds_distances(paths, **kw)
    settings = {"max_points": int(kw["max_points"] or 0), "n_points": int(len(res.points)),
                "n_modes": int(kw["n_modes"] or 0), "at": str(kw["at"]), "seed": int(kw["seed"]),
                "widths": "zero-padded"}
    return res.distances, settings, np.asarray(res.linearized_at)


def exact_points(fps: FixedPoints, rtol: float = 1e-6) -> FixedPoints:
    """The points whose speed is below ``rtol * fixed_tol`` (``fixed_tol`` from the search settings, 1e-10 by
    default): roots resolved to rounding error, as opposed to loose points on slow plateaus."""
    fixed_tol = float(fps.settings.get("fixed_tol", 1e-10))
    return fps.select(fps.q <= rtol * fixed_tol)


def _index_graph(m: Model, unstable_tol: float = 0.0):
    import networkx as nx

    if m.topology is not None:
        return m.topology.graph
    g = nx.Graph()
    index = unstable_index(m.fixed_points.eigenvalues, unstable_tol) if len(m.fixed_points) else []
    for k, idx in enumerate(index):
        g.add_node(k, index=int(idx))
    return g


def _pad_counts(counts: list[np.ndarray]) -> np.ndarray:
    width = max((c.size for c in counts), default=0)
    return np.array([np.pad(c, (0, width - c.size)) for c in counts], dtype=np.int64)
