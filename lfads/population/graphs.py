"""The fixed-point graph of every network of a population, and its storage as edge lists.

For each network and condition, :func:`lfads.compare.topology.build_topology` integrates the map out of
every unstable direction of every fixed point and joins the points it reaches: nodes are the fixed
points (labelled by their index, the number of unstable directions), edges the saddle-to-point
connections. In the population file a graph is stored as arrays (:func:`graph_arrays`)::

    index (N,) int, stability (N,) bytes, edges (E, 3) int = (a, b, count),
    outcomes (D, 6) int = (source, mode, sign, outcome code, target, steps); attrs: scale, outcome_codes
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from lfads.compare.topology import OUTCOMES, TopologyGraph, build_topology

__all__ = ["find_population_graphs", "graph_arrays", "graph_from_h5", "graph_points", "saddle_edges"]

_OUTCOME_FIELDS = ("source", "mode", "sign", "outcome", "target", "steps")


def graph_points(fps: Any, task: Any) -> Any:
    """The points a network's graph is built on and its counts are taken over: the fixed points (kind
    ``fixed``, the first ones of a :class:`~lfads.analysis.FixedPoints`, so point ``k`` is node ``k``), or all
    points for a ``task`` that keeps slow points (context-dependent integration). ``None`` stays ``None``."""
    if fps is None or task.slow_points is not None or bool((fps.kind == "fixed").all()):
        return fps
    return fps.fixed()


def find_population_graphs(result: Any, **kwargs: Any) -> dict[str, list[dict[str, TopologyGraph]]]:
    """``graphs[arch][n][condition]``: the graph of each network's fixed points at each condition.

    Nodes are the points of :func:`graph_points`.

    ``result`` is a :class:`lfads.population.population.PopulationResult` with its fixed points; keyword
    arguments go to :func:`lfads.compare.topology.build_topology`.
    """
    out = {}
    for arch, fit in result.fits.items():
        out[arch] = [
            {label: build_topology(fit.model.cell(n).dynamics(), graph_points(fps, result.task), **kwargs)
             for label, fps in net.items()}
            for n, net in enumerate(result.fixed_points[arch])
        ]  # fmt: skip
    return out


def saddle_edges(graph: TopologyGraph) -> list[tuple[int, int, int]]:
    """``(saddle, a, b)`` for every index-1 point whose two departures (``+`` and ``-`` along its unstable
    direction) both reached listed fixed points ``a`` and ``b``."""
    reached: dict[int, dict[int, int]] = {}
    for o in graph.outcomes:
        if o["outcome"] == "fixed_point" and graph.graph.nodes[o["source"]]["index"] == 1 and o["mode"] == 0:
            reached.setdefault(o["source"], {})[o["sign"]] = o["target"]
    return [(s, t[1], t[-1]) for s, t in sorted(reached.items()) if 1 in t and -1 in t]


def graph_arrays(graph: TopologyGraph) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A graph as the arrays and attributes of the module docstring."""
    g = graph.graph
    edges = np.array([(a, b, d["count"]) for a, b, d in sorted(g.edges(data=True))], dtype=np.int64).reshape(-1, 3)
    codes = {name: k for k, name in enumerate(OUTCOMES)}
    outcomes = np.array(
        [[o["source"], o["mode"], o["sign"], codes[o["outcome"]], o["target"], o["steps"]] for o in graph.outcomes],
        dtype=np.int64,
    ).reshape(-1, len(_OUTCOME_FIELDS))
    stability = np.array([g.nodes[k]["stability"] for k in sorted(g.nodes)], dtype="S")
    arrays = {"index": graph.indices, "stability": stability, "edges": edges, "outcomes": outcomes}
    return arrays, {"scale": float(graph.scale), "outcome_codes": ",".join(OUTCOMES)}


def graph_from_h5(node: Any) -> TopologyGraph:
    """Read a graph written from :func:`graph_arrays` (an open HDF5 group)."""
    g = nx.Graph()
    stability = np.asarray(node["stability"][()]).astype("U")
    for k, index in enumerate(node["index"][()]):
        g.add_node(k, index=int(index), stability=str(stability[k]))
    for a, b, count in node["edges"][()]:
        g.add_edge(int(a), int(b), count=int(count))
    names = str(node.attrs["outcome_codes"]).split(",")
    outcomes = [dict(zip(_OUTCOME_FIELDS, (int(r[0]), int(r[1]), int(r[2]), names[int(r[3])], int(r[4]), int(r[5]))))
                for r in node["outcomes"][()]]  # fmt: skip
    return TopologyGraph(g, outcomes, float(node.attrs["scale"]))
