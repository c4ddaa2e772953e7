"""compare_models on trajectories, GRU cells and f(u, h) functions; results saved to and read from HDF5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from torch import nn

from lfads.compare import (
    ComparisonResult,
    Model,
    compare_models,
    pairwise_cross_validated_distances,
    pairwise_distances,
    simulate,
)
from lfads.compare.systems import decision_system
from lfads.errors import LFADSDataError

torch.set_num_threads(1)


def _bistable(rates, seed=None):
    if seed is None:
        q = torch.eye(len(rates), dtype=torch.float64)
    else:
        q = torch.tensor(ortho_group.rvs(len(rates), random_state=seed))
    k = torch.tensor(rates, dtype=torch.float64)
    return lambda u, h: ((h @ q) + k * ((h @ q) - (h @ q) ** 3)) @ q.T


def test_trajectories_give_symmetric_matrices_that_match_the_metric_modules(tmp_path):
    data = [decision_system(f, seed=i, n_trials=40)[0] for i, f in enumerate(["point", "point", "line", "bistable"])]
    cond = decision_system("point", n_trials=40)[1]
    res = compare_models(data, metrics=["procrustes", "cca", "cka", "dsa", "dsa_eigenvalues"],
                         names=["p1", "p2", "line", "bi"], conditions=cond)
    for metric, d in res.distances.items():
        assert d.shape == (4, 4) and np.array_equal(d, d.T) and np.all(np.diag(d) == 0), metric
        assert res.settings[metric]["wall_time"] >= 0
    np.testing.assert_array_equal(res["procrustes"], pairwise_distances(data, "procrustes"))
    cv = compare_models(data, metrics=["cca"], cv_folds=4)
    assert cv.settings["cca"]["cv_folds"] == 4 and res.settings["cca"]["cv_folds"] == 0
    np.testing.assert_array_equal(cv["cca"], pairwise_cross_validated_distances(data, "cca", 4, 0))
    assert res.settings["dsa"]["residuals"] and res.settings["dsa"]["rank"] >= 1
    assert res["dsa"][0, 1] < res["dsa"][0, 2]  # two point attractors are closer than a point and a line
    assert "p1" in res.table("cca") and "dsa_eigenvalues" in str(res)

    path = res.save(tmp_path / "out" / "compare.h5")
    assert [p.name for p in path.parent.iterdir()] == ["compare.h5"]  # no temporary file left behind
    back = ComparisonResult.load(path)
    assert back.names == res.names and back.settings == res.settings
    for metric in res.distances:
        np.testing.assert_array_equal(back[metric], res[metric])


def test_cells_and_functions_are_run_and_compared_by_their_fixed_point_topology_and_spectra(tmp_path):
    same_a = Model("square", cell=_bistable([0.2, 0.26]), hidden_size=2, input_size=0)
    same_b = Model("square_rotated", cell=_bistable([0.2, 0.26], seed=3), hidden_size=2, input_size=0)
    one_axis = lambda u, h: torch.stack([h[:, 0] + 0.2 * (h[:, 0] - h[:, 0] ** 3), 0.5 * h[:, 1]], 1)  # noqa: E731
    mono = Model("one_axis", cell=one_axis, hidden_size=2, input_size=0)  # bistable in y1 only
    rng = np.random.default_rng(0)
    h0 = rng.uniform(-1.2, 1.2, size=(60, 2))
    res = compare_models([same_a, same_b, mono], metrics=["topology", "topology_counts", "spectra", "procrustes"],
                         inputs=np.zeros((60, 20, 0)), initial_states=h0, n_initial_states=60)
    assert same_a.fixed_points is not None and len(same_a.fixed_points) == 9
    assert res["topology"][0, 1] == 0 and res["topology_counts"][0, 1] == 0
    assert res["topology"][0, 2] > 0 and res["topology_counts"][0, 2] == (4 - 2) + (4 - 1) + 1
    assert res["spectra"][0, 1] < 1e-8 < res["spectra"][0, 2]
    assert res.extras["topology"]["method"][0, 1] == "ged"
    np.testing.assert_array_equal(res.extras["topology"]["count_vector"][0], [4, 4, 1])
    back = ComparisonResult.load(res.save(tmp_path / "t.h5"))
    assert back.extras["topology"]["method"][0, 2] == "ged"
    # the points of the square and of its rotated copy matched through their graphs: the same spectra
    by_graph = compare_models([same_a, same_b, mono], metrics=["spectra"], spectra_kwargs={"by": "graph"})
    assert by_graph.settings["spectra"]["by"] == "graph"
    assert by_graph["spectra"][0, 1] < 1e-8 < by_graph["spectra"][0, 2]


def test_group_table_averages_the_distances_between_different_models_of_each_two_groups():
    d = np.array([[0.0, 1.0, 2.0, 4.0],
                  [1.0, 0.0, 3.0, 5.0],
                  [2.0, 3.0, 0.0, 7.0],
                  [4.0, 5.0, 7.0, 0.0]])
    res = ComparisonResult(["a0", "a1", "b0", "b1"], distances={"m": d}, labels=["a", "a", "b", "b"])
    rows = [line.split() for line in res.group_table("m").splitlines()[2:]]
    assert rows == [["a", "1.000", "3.500"], ["b", "3.500", "7.000"]]  # within a: d01; between: (2+4+3+5)/4
    single = ComparisonResult(["a0", "b0"], distances={"m": d[:2, :2]}, labels=["a", "b"])
    assert single.group_table("m").splitlines()[2].split() == ["a", "-", "1.000"]  # one model: no pair within
    with pytest.raises(LFADSDataError, match="labels"):
        ComparisonResult(["a0", "a1"], distances={"m": d[:2, :2]}).group_table("m")


def test_progress_bars_name_the_metric_and_leave_the_distances_unchanged(capsys):
    data = [decision_system(f, seed=i, n_trials=20)[0] for i, f in enumerate(["point", "line", "bistable"])]
    quiet = compare_models(data, metrics=["dsa_eigenvalues"])
    capsys.readouterr()
    shown = compare_models(data, metrics=["dsa_eigenvalues"], progress=True)
    assert "dsa_eigenvalues" in capsys.readouterr().err
    np.testing.assert_array_equal(shown["dsa_eigenvalues"], quiet["dsa_eigenvalues"])


def test_gru_cells_run_on_shared_inputs_match_their_own_simulation():
    torch.manual_seed(0)
    cells = [nn.GRUCell(3, 8), nn.GRUCell(3, 5)]
    inputs = torch.randn(10, 15, 3)
    h0 = [torch.zeros(10, 8), torch.zeros(10, 5)]
    res = compare_models(cells, metrics=["cca"], inputs=inputs, initial_states=h0)
    states = simulate(cells[0], inputs, h0[0])
    with torch.no_grad():
        h, ref = h0[0], []
        for t in range(15):
            h = cells[0](inputs[:, t], h)
            ref.append(h)
    np.testing.assert_allclose(states, torch.stack(ref, 1).numpy(), atol=1e-6)
    assert 0 < res["cca"][0, 1] < np.pi / 2


def test_bad_requests_say_what_is_missing():
    x = np.random.default_rng(0).normal(size=(5, 10, 3))
    with pytest.raises(LFADSDataError, match="Unknown metrics"):
        compare_models([x, x], metrics=["nope"])
    with pytest.raises(LFADSDataError, match="neither fixed points nor a cell"):
        compare_models([x, x], metrics=["spectra"])
    with pytest.raises(LFADSDataError, match="pass inputs"):
        compare_models([nn.GRUCell(2, 3), nn.GRUCell(2, 3)], metrics=["cca"])
    with pytest.raises(LFADSDataError, match="not a comparison file"):
        import h5py

        with h5py.File("/tmp/_not_compare.h5", "w") as f:
            f.attrs["format"] = "x"
        ComparisonResult.load("/tmp/_not_compare.h5")
