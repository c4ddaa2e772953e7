"""Fixed-point graphs of population networks (lfads.compare.topology) and distances between networks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from lfads.analysis.fixed_points import find_fixed_points
from lfads.compare.topology import build_topology
from lfads.population.distances import silhouette_by_arch
from lfads.population.graphs import graph_arrays, graph_from_h5, saddle_edges
from lfads.population.universality import flipflop_structure


def _corners(u, h):
    """h' = tanh(1.5 h) per unit: 8 stable corners, 12 index-1 saddles on the cube's edges, 6 index-2, 1 index-3."""
    return torch.tanh(1.5 * h)


@pytest.fixture(scope="module")
def cube():
    starts = torch.as_tensor(np.random.default_rng(0).uniform(-1.2, 1.2, (400, 3)))
    fps = find_fixed_points(_corners, starts, hidden_size=3, input_size=0)
    return fps, build_topology(_corners, fps, hidden_size=3, input_size=0)


def test_saddle_edges_of_the_cube_map_are_the_twelve_cube_edges(cube):
    fps, graph = cube
    edges = saddle_edges(graph)
    assert len(edges) == 12
    h_star = fps.states[fps.stability == "stable"].max()
    st = flipflop_structure(fps, np.eye(3) / h_star, np.zeros(3), saddle_edges=edges)
    assert st.all_memories and st.cube


def test_graphs_round_trip_through_hdf5(cube, tmp_path):
    _, graph = cube
    arrays, attrs = graph_arrays(graph)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        grp = f.create_group("g")
        for k, v in arrays.items():
            grp.create_dataset(k, data=v)
        grp.attrs.update(attrs)
    with h5py.File(tmp_path / "g.h5", "r") as f:
        back = graph_from_h5(f["g"])
    assert sorted(back.graph.edges(data=True)) == sorted(graph.graph.edges(data=True))
    assert dict(back.graph.nodes(data=True)) == dict(graph.graph.nodes(data=True))
    assert back.outcomes == graph.outcomes and back.scale == graph.scale
    assert saddle_edges(back) == saddle_edges(graph)


def test_silhouette_by_arch_is_one_for_separated_groups_and_zero_without_distances():
    labels = np.array(["a", "a", "b", "b"])
    d = np.array([[0, 0.1, 1, 1], [0.1, 0, 1, 1], [1, 1, 0, 0.1], [1, 1, 0.1, 0]])
    assert silhouette_by_arch(d, labels) == pytest.approx(0.9)
    assert silhouette_by_arch(np.zeros((4, 4)), labels) == 0.0
