"""Fixed points drawn into one Axes (lfads.viz.dynamics): what is drawn matches the points, modes and eigenvalues."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lfads.analysis import compute_pca, find_fixed_points  # noqa: E402
from lfads.viz.dynamics import draw_eigenvalue_spectra, draw_fixed_points  # noqa: E402

torch.set_num_threads(1)


def _bistable_units(n: int) -> nn.GRUCell:
    """``n`` decoupled bistable GRU units: 3**n fixed points (2**n stable)."""
    cell = nn.GRUCell(1, n)
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.weight_hh[2 * n :] = torch.diag(torch.linspace(2.5, 3.0, n))
        cell.bias_hh.zero_()
        cell.bias_hh[:n] = 3.0
        cell.bias_ih.zero_()
        cell.bias_ih[2 * n :] = torch.linspace(-0.05, 0.05, n)
    return cell


@pytest.fixture(scope="module")
def points_2d():
    cell = _bistable_units(2)
    grid = np.linspace(-1.1, 1.1, 9)
    fps = find_fixed_points(cell, torch.tensor([[x, y] for x in grid for y in grid], dtype=torch.float64))
    traj = np.cumsum(np.random.default_rng(0).normal(size=(4, 30, 2)) * 0.05, axis=1)
    return fps, traj


def test_state_space_plot_draws_each_point_and_each_unstable_mode(points_2d):
    fps, traj = points_2d
    assert len(fps) == 9
    pca = compute_pca(traj, 2)
    ax = draw_fixed_points(fps, traj, pca=pca, mode_scale=0.2)
    drawn = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert {k: len(v) for k, v in drawn.items()} == {"stable (fixed)": 4, "saddle (fixed)": 4, "unstable (fixed)": 1}
    np.testing.assert_allclose(
        np.sort(drawn["stable (fixed)"], axis=0), np.sort(pca.transform(fps.states[fps.stability == "stable"]), axis=0)
    )
    # 4 trajectories, then one segment per unstable mode: 4 saddles x 1 + 1 unstable x 2
    lines = ax.get_lines()
    assert len(lines) == 4 + 6
    i = int(np.nonzero(fps.stability == "saddle")[0][0])
    v = np.real(fps.unstable_modes(i)[1][:, 0])
    v /= np.linalg.norm(v)
    ends = pca.transform(np.stack([fps.states[i] - 0.2 * v, fps.states[i] + 0.2 * v]))
    assert any(np.allclose(np.column_stack(line.get_data()), ends) for line in lines[4:])
    assert ax.get_xlabel().startswith("PC1 (")
    plt.close("all")


def test_three_dimensional_plot_shows_all_points():
    cell = _bistable_units(3)
    grid = np.linspace(-1.1, 1.1, 5)
    init = torch.tensor([[x, y, z] for x in grid for y in grid for z in grid], dtype=torch.float64)
    fps = find_fixed_points(cell, init)
    assert len(fps) == 27 and int((fps.stability == "stable").sum()) == 8
    ax = draw_fixed_points(fps, n_components=3)
    assert ax.name == "3d"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 27
    plt.close("all")


def test_spectrum_plot_draws_the_unit_circle_and_every_eigenvalue(points_2d):
    fps, _ = points_2d
    ax = draw_eigenvalue_spectra(fps)
    circle = ax.get_lines()[0]
    x, y = circle.get_data()
    np.testing.assert_allclose(np.hypot(x, y), 1.0, atol=1e-12)
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    expected = np.column_stack([fps.eigenvalues.real.ravel(), fps.eigenvalues.imag.ravel()])
    np.testing.assert_allclose(np.sort(offsets, axis=0), np.sort(expected, axis=0))
    plt.close("all")
