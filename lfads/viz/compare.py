"""Figures of model comparisons: distance heatmaps, MDS embeddings and fixed-point topology graphs.

Distances come from :func:`lfads.compare.compare_models` (a :class:`~lfads.compare.ComparisonResult`) or
any mapping ``metric -> (models, models)`` matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lfads.compare.stats import embed_mds
from lfads.errors import LFADSDataError
from lfads.viz._common import as_array, check_leading, condition_colors, make_axes

__all__ = ["plot_comparison", "plot_distance_matrices", "plot_mds", "plot_topology"]


def _matrices(distances: Any, metrics: Sequence[str] | None) -> tuple[dict[str, np.ndarray], list[str] | None]:
    names = getattr(distances, "names", None)
    table = getattr(distances, "distances", distances)
    if isinstance(table, np.ndarray):
        table = {"distance": table}
    if not isinstance(table, Mapping):
        raise LFADSDataError("distances must be a ComparisonResult, a mapping metric -> (N, N) array, or one array.")
    keys = list(table) if metrics is None else list(metrics)
    missing = [k for k in keys if k not in table]
    if missing:
        raise LFADSDataError(f"metrics {missing} are not in the distances (have {list(table)}).")
    out = {}
    for k in keys:
        d = as_array(table[k], f"distances[{k!r}]", 2, "(models, models)")
        if d.shape[0] != d.shape[1]:
            raise LFADSDataError(f"distances[{k!r}] has shape {d.shape}; it must be square (models, models).")
        out[k] = d
    return out, names


def plot_distance_matrices(
    distances: Any,
    *,
    metrics: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """One heatmap per metric, models in the same order on both axes.

    Parameters
    ----------
    distances : ComparisonResult, mapping or array
        ``(N, N)`` matrices by metric.
    metrics : sequence of str, optional
        Which metrics (all by default).
    names : sequence of str, optional
        Model names (those of the result by default); beyond :data:`MAX_NAMED` models every k-th is written.
    groups : sequence, optional
        ``N`` group labels, each group's models contiguous (e.g. the architectures of a population): the axes
        name the groups, one tick at the centre of each block, with lines between the blocks.
    annotate : bool, optional
        Write the values in the cells (default: when ``N <= 8``).
    ax : Axes or sequence of Axes, optional
        One per metric.
    """
    mats, result_names = _matrices(distances, metrics)
    n = next(iter(mats.values())).shape[0]
    labels = list(names) if names is not None else (result_names or [str(i) for i in range(n)])
    if len(labels) != n:
        raise LFADSDataError(f"names holds {len(labels)} entries but the matrices are {n} x {n}.")
    fig, axes = make_axes(ax, 1, len(mats), figsize=(3.6 * len(mats), 3.3))
    annotate = n <= 8 if annotate is None else annotate
    for a, (metric, d) in zip(axes[0], mats.items()):
        im = a.imshow(d, cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=a, shrink=0.8)
        a.set_title(metric)
        ticks, text, edges = _ticks(labels, groups, n)
        a.set_xticks(ticks, text, rotation=90, fontsize="small")
        a.set_yticks(ticks, text, fontsize="small")
        for edge in edges:
            a.axhline(edge, color="white", lw=0.8)
            a.axvline(edge, color="white", lw=0.8)
        if annotate:
            top = np.nanmax(d) if np.isfinite(d).any() else 1.0
            for i in range(n):
                for j in range(n):
                    a.text(j, i, f"{d[i, j]:.2g}", ha="center", va="center", fontsize="x-small",
                           color="white" if d[i, j] < 0.5 * top else "black")
    return fig


MAX_NAMED = 16
"""Most model names written along a heatmap's axes; beyond it every k-th name."""


def _ticks(names: list[str], groups: Sequence[Any] | None, n: int) -> tuple[np.ndarray, list[str], list[float]]:
    """Tick positions, their text and the block boundaries of an ``n`` x ``n`` heatmap."""
    if groups is None:
        step = -(-n // MAX_NAMED)
        return np.arange(0, n, step), names[::step], []
    g = [str(x) for x in check_leading(np.asarray(groups), "groups", n, "distances")]
    if not _contiguous(g):
        raise LFADSDataError("groups: the models of each group must be contiguous; sort the models by group.")
    starts = _block_starts(g)
    ends = starts[1:] + [n]
    centres = np.array([(a + b - 1) / 2 for a, b in zip(starts, ends)])
    return centres, [g[a] for a in starts], [a - 0.5 for a in starts[1:]]


def plot_mds(
    distances: Any,
    labels: Sequence[Any] | None = None,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str | None = None,
    seed: int = 0,
    ax: Axes | None = None,
) -> Figure:
    """Models placed in 2-D by metric MDS of one distance matrix, coloured by ``labels`` (e.g. family, seed group).

    Parameters
    ----------
    distances : array
        ``(N, N)``.
    labels : sequence, optional
        ``N`` group labels.
    names : sequence of str, optional
        Written next to the points.
    """
    d = as_array(distances, "distances", 2, "(models, models)")
    xy = embed_mds(d, 2, seed=seed)
    fig, axes = make_axes(ax, 1, 1, figsize=(4.2, 3.8))
    a = axes[0, 0]
    if labels is None:
        a.scatter(xy[:, 0], xy[:, 1], s=30, c="C0", edgecolors="none")
    else:
        lab = check_leading(np.asarray(labels), "labels", d.shape[0], "distances")
        groups, colors = condition_colors(lab, cmap)
        a.scatter(xy[:, 0], xy[:, 1], s=30, c=[colors[g] for g in lab], edgecolors="none")
        a.legend(handles=[Line2D([], [], ls="", marker="o", color=colors[g], label=str(g)) for g in groups],
                 fontsize="small", frameon=False)
    if names is not None:
        for (x, y), nm in zip(xy, names):
            a.annotate(str(nm), (x, y), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
    a.set_xlabel("MDS 1")
    a.set_ylabel("MDS 2")
    a.set_aspect("equal", adjustable="datalim")
    if title:
        a.set_title(title)
    return fig


def plot_comparison(
    result: Any, labels: Sequence[Any] | None = None, *, metrics: Sequence[str] | None = None, seed: int = 0
) -> Figure:
    """Heatmaps (top row) and MDS embeddings (bottom row) of every metric of a comparison, points coloured by
    ``labels``; beyond :data:`MAX_NAMED` models the heatmaps name the label groups (when each is contiguous)."""
    mats, names = _matrices(result, metrics)
    k = len(mats)
    fig, axes = plt.subplots(2, k, figsize=(3.8 * k, 7.0), squeeze=False, layout="constrained")
    contiguous = labels is not None and _contiguous(labels)
    plot_distance_matrices(mats, names=names, groups=labels if contiguous and len(labels) > MAX_NAMED else None,
                           ax=list(axes[0]))
    for a, (metric, d) in zip(axes[1], mats.items()):
        plot_mds(d, labels, title=f"{metric}: MDS", seed=seed, ax=a)
    return fig


def _block_starts(labels: Sequence[Any]) -> list[int]:
    """Index of the first model of every run of equal labels."""
    return [k for k in range(len(labels)) if k == 0 or labels[k] != labels[k - 1]]


def _contiguous(labels: Sequence[Any]) -> bool:
    """Whether the models of each label are contiguous (one run per label)."""
    return len(_block_starts(labels)) == len(set(labels))


_INDEX_COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown")


def plot_topology(
    topology: Any,
    positions: np.ndarray | None = None,
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A fixed-point graph: nodes coloured by index (0 stable, 1, 2, ... unstable directions), edges by the flow.

    Parameters
    ----------
    topology : TopologyGraph or networkx.Graph
    positions : np.ndarray, optional
        ``(N, 2)`` node positions (e.g. the fixed points on two principal components); a spring layout by default.
    """
    import networkx as nx

    graph = topology if isinstance(topology, nx.Graph) else topology.graph
    nodes = sorted(graph.nodes)
    if positions is None:
        pos = nx.spring_layout(graph, seed=0)
    else:
        p = as_array(positions, "positions", 2, "(points, 2)")
        if p.shape != (len(nodes), 2):
            raise LFADSDataError(f"positions has shape {p.shape}; expected ({len(nodes)}, 2), one row per fixed point.")
        pos = {k: p[i] for i, k in enumerate(nodes)}
    fig, axes = make_axes(ax, 1, 1, figsize=(4.2, 3.8))
    a = axes[0, 0]
    index = [graph.nodes[k]["index"] for k in nodes]
    colors = [_INDEX_COLORS[min(i, len(_INDEX_COLORS) - 1)] for i in index]
    nx.draw_networkx_edges(graph, pos, ax=a, edge_color="0.6")
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=colors, node_size=60, ax=a)
    present = sorted(set(index))
    a.legend(handles=[Line2D([], [], ls="", marker="o", color=_INDEX_COLORS[min(i, len(_INDEX_COLORS) - 1)],
                             label=f"index {i}") for i in present], fontsize="small", frameon=False)
    a.set_title(title or f"{len(nodes)} fixed points, {graph.number_of_edges()} edges")
    a.set_axis_off()
    return fig
