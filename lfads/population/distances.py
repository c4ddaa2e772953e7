"""Distances between the networks of a population, by geometry and by topology, and how they group.

Maheswaranathan et al. (2019): the geometry of the states (CCA/SVCCA) separates networks by
architecture, while the topology of their fixed points does not. Here, for a
:class:`lfads.population.population.PopulationResult`:

* :func:`geometry_distances`: all-pairs :func:`lfads.compare.geometry.pairwise_distances` (SVCCA, CCA,
  Procrustes, ...) of the networks' hidden states on the same trials;
* :func:`topology_distances`: all-pairs :func:`lfads.compare.topology.graph_distance` of their
  fixed-point graphs (graph edit distance for small graphs, Weisfeiler-Lehman otherwise);
* :func:`silhouette_by_arch`: :func:`lfads.compare.stats.silhouette` of a distance matrix with the
  architecture as the label (1: tight, well separated groups; 0: no grouping).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lfads.compare.geometry import pairwise_distances
from lfads.compare.stats import silhouette
from lfads.compare.topology import graph_distance

__all__ = ["arch_labels", "geometry_distances", "silhouette_by_arch", "topology_distances"]


def arch_labels(result: Any) -> np.ndarray:
    """``(models,)`` the architecture of each network, in the order of the distance matrices."""
    return np.array([arch for arch, fit in result.fits.items() for _ in range(fit.model.n_networks)])


def geometry_distances(trajectories: dict[str, np.ndarray], metric: str = "svcca") -> np.ndarray:
    """``(models, models)`` distances between the networks' states on the same trials.

    Parameters
    ----------
    trajectories : dict of str to np.ndarray
        ``arch -> (networks, trials, time, H)`` (:meth:`PopulationResult.trajectories`).
    metric : str
        A name of :func:`lfads.compare.geometry.geometry_metric` (``"svcca"``, ``"cca"``, ``"procrustes"``, ...).
    """
    models = [states[n] for states in trajectories.values() for n in range(states.shape[0])]
    return pairwise_distances(models, metric)


def topology_distances(result: Any, condition: str, **kwargs: Any) -> tuple[np.ndarray, list[str]]:
    """``(models, models)`` graph distances at one condition, and the method used for each pair.

    Keyword arguments go to :func:`lfads.compare.topology.graph_distance`.
    """
    graphs = [net[condition] for arch in result.fits for net in result.graphs[arch]]
    n = len(graphs)
    out = np.zeros((n, n))
    methods = []
    for i in range(n):
        for j in range(i + 1, n):
            d, method = graph_distance(graphs[i], graphs[j], **kwargs)
            out[i, j] = out[j, i] = d
            methods.append(method)
    return out, methods


def silhouette_by_arch(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of the architecture labelling under ``distances`` (0 when all distances are 0)."""
    if not np.any(distances > 0):
        return 0.0
    return float(silhouette(distances, labels))
