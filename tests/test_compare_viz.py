"""Comparison figures draw one panel per metric with data, and reject inconsistent inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lfads.compare import ComparisonResult
from lfads.errors import LFADSDataError
from lfads.viz.compare import plot_comparison, plot_distance_matrices, plot_mds, plot_topology


def _result() -> ComparisonResult:
    pts = np.random.default_rng(0).normal(size=(6, 2)) + np.repeat([[0, 0], [5, 0]], 3, axis=0)
    return ComparisonResult([f"m{i}" for i in range(6)], {"a": cdist(pts, pts), "b": 2 * cdist(pts, pts)})


def test_heatmaps_and_mds_have_one_panel_per_metric_with_data():
    res = _result()
    fig = plot_comparison(res, labels=[0, 0, 0, 1, 1, 1])
    drawn = [ax for ax in fig.axes if (ax.images or ax.collections) and ax.get_label() != "<colorbar>"]
    assert len(drawn) == 4  # 2 heatmaps + 2 MDS panels (colour bars hold no data)
    heat = plot_distance_matrices(res, metrics=["b"])
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == res.names
    np.testing.assert_array_equal(heat.axes[0].images[0].get_array(), res["b"])
    mds = plot_mds(res["a"], labels=list("aaabbb"), names=res.names)
    xy = mds.axes[0].collections[0].get_offsets()
    assert np.linalg.norm(xy[:3].mean(0) - xy[3:].mean(0)) > 3  # the two groups sit apart
    plt.close("all")


def test_large_comparisons_name_groups_or_every_kth_model_along_the_heatmap_axes():
    labels = ["vanilla"] * 8 + ["gru"] * 8 + ["lstm"] * 8 + ["ugrnn"] * 8
    pts = np.random.default_rng(1).normal(size=(32, 2))
    res = ComparisonResult([f"{a}/seed{k % 8}" for k, a in enumerate(labels)], {"a": cdist(pts, pts)})
    heat = plot_comparison(res, labels=labels).axes[0]
    assert [t.get_text() for t in heat.get_xticklabels()] == ["vanilla", "gru", "lstm", "ugrnn"]
    np.testing.assert_array_equal(heat.get_xticks(), [3.5, 11.5, 19.5, 27.5])  # the centre of each block
    assert sorted(line.get_xdata()[0] for line in heat.lines if line.get_xdata()[0] == line.get_xdata()[1]) == [
        7.5, 15.5, 23.5]
    named = plot_distance_matrices(res).axes[0]
    assert [t.get_text() for t in named.get_xticklabels()] == res.names[::2]  # 32 models: every second name
    with pytest.raises(LFADSDataError, match="contiguous"):
        plot_distance_matrices(res, groups=labels[1:] + labels[:1])
    plt.close("all")


def test_topology_plot_colours_nodes_by_index_and_checks_positions():
    g = nx.Graph()
    g.add_nodes_from([(0, {"index": 0}), (1, {"index": 1}), (2, {"index": 0})])
    g.add_edges_from([(0, 1), (1, 2)])
    fig = plot_topology(g, positions=np.array([[0, 0], [1, 0], [2, 0]]))
    assert fig.axes[0].collections
    with pytest.raises(LFADSDataError, match="one row per fixed point"):
        plot_topology(g, positions=np.zeros((2, 2)))
    plt.close("all")


def test_inconsistent_inputs_raise_clear_errors():
    res = _result()
    with pytest.raises(LFADSDataError, match="not in the distances"):
        plot_distance_matrices(res, metrics=["c"])
    with pytest.raises(LFADSDataError, match="names holds 2"):
        plot_distance_matrices(res, names=["x", "y"])
    with pytest.raises(LFADSDataError, match="labels"):
        plot_mds(res["a"], labels=[0, 1])
