"""The jslds metric: eigenvalue distances of the Jacobians along the same trials, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from torch import nn

from lfads.compare import ComparisonResult, Model, compare_models, eigenvalue_wasserstein, simulate
from lfads.compare.jslds import (
    TrialPath,
    linearization_points,
    pairwise_jslds_distances,
    shared_points,
    spectral_distances,
)
from lfads.errors import LFADSDataError

torch.set_num_threads(1)


def _linear(a: np.ndarray, b: np.ndarray):
    """``f(u, h) = A h + B u``."""
    at, bt = torch.tensor(a.T), torch.tensor(b.T)
    return lambda u, h: h @ at + u @ bt


def _inputs(trials: int = 6, steps: int = 12, width: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(trials, steps, width))


def _signed_permutation_gru(cell: nn.GRUCell, q: torch.Tensor) -> nn.GRUCell:
    """The GRU with ``F'(Q h, u) = Q F(h, u)`` for a signed permutation ``Q = D Pi``: gates permuted by ``Pi``,
    the candidate (odd in its pre-activation) by ``Q``."""
    hidden = cell.hidden_size
    pi = q.abs()
    out = nn.GRUCell(cell.input_size, hidden).double()
    w_ih, w_hh = cell.weight_ih.detach().double(), cell.weight_hh.detach().double()
    b_ih, b_hh = cell.bias_ih.detach().double(), cell.bias_hh.detach().double()
    rows = [pi, pi, q]  # reset, update, candidate
    with torch.no_grad():
        for k, m in enumerate(rows):
            sl = slice(k * hidden, (k + 1) * hidden)
            out.weight_ih[sl] = m @ w_ih[sl]
            out.weight_hh[sl] = m @ w_hh[sl] @ q.T
            out.bias_ih[sl] = m @ b_ih[sl]
            out.bias_hh[sl] = m @ b_hh[sl]
    return out


def test_a_gru_in_signed_permuted_coordinates_is_at_distance_zero():
    torch.manual_seed(0)
    hidden = 6
    cell = nn.GRUCell(2, hidden).double()
    with torch.no_grad():
        cell.weight_hh.mul_(4.0)  # strongly nonlinear, state-dependent Jacobians
    perm = torch.eye(hidden, dtype=torch.float64)[torch.tensor([3, 0, 5, 1, 4, 2])]
    q = torch.diag(torch.tensor([1.0, -1, -1, 1, -1, 1], dtype=torch.float64)) @ perm
    cell_q = _signed_permutation_gru(cell, q)
    u = _inputs()
    h0 = np.random.default_rng(1).normal(size=(6, hidden)) * 0.5
    h0_q = h0 @ q.numpy().T
    np.testing.assert_allclose(simulate(cell_q, u, h0_q), simulate(cell, u, h0) @ q.numpy().T, atol=1e-12)

    other = nn.GRUCell(2, hidden).double()
    res = compare_models([cell, cell_q, other], metrics=["jslds"], inputs=u, initial_states=[h0, h0_q, h0])
    assert res["jslds"][0, 1] < 1e-8
    assert res["jslds"][0, 2] > 1e-2  # a different GRU is not at distance zero
    assert list(res.extras["jslds"]["linearized_at"]) == ["states"] * 3


def test_a_linear_map_and_its_orthogonal_conjugate_are_at_distance_zero():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 5)) / np.sqrt(5), rng.normal(size=(5, 2))
    q = ortho_group.rvs(5, random_state=3)
    models = [Model("A", cell=_linear(a, b), hidden_size=5, input_size=2),
              Model("QAQ'", cell=_linear(q @ a @ q.T, q @ b), hidden_size=5, input_size=2),
              Model("A+E", cell=_linear(a + 0.3 * rng.normal(size=(5, 5)), b), hidden_size=5, input_size=2)]
    h0 = rng.normal(size=(6, 5))
    res = compare_models(models, metrics=["jslds"], inputs=_inputs(), initial_states=[h0, h0 @ q.T, h0])
    assert res["jslds"][0, 1] < 1e-8
    assert res["jslds"][0, 2] > 1e-2


def test_diagonal_maps_give_the_mean_absolute_difference_of_sorted_eigenvalues():
    def diagonal(values):
        n = len(values)
        return Model(str(values), cell=_linear(np.diag(values), np.ones((n, 2))), hidden_size=n, input_size=2)

    u, h0 = _inputs(), np.zeros((6, 3))
    a, b, c = [0.9, 0.5, -0.2], [0.1, 0.8, 0.3], [0.6, -0.4]
    res = compare_models([diagonal(a), diagonal(b)], metrics=["jslds"], inputs=u, initial_states=h0)
    # sorted: [-0.2, 0.5, 0.9] against [0.1, 0.3, 0.8]
    assert res["jslds"][0, 1] == pytest.approx((0.3 + 0.2 + 0.1) / 3, abs=1e-12)
    leading = compare_models([diagonal(a), diagonal(b)], metrics=["jslds"], inputs=u, initial_states=h0,
                             jslds_kwargs={"n_modes": 2})
    # leading by modulus: [0.9, 0.5] against [0.8, 0.3]
    assert leading["jslds"][0, 1] == pytest.approx((0.1 + 0.2) / 2, abs=1e-12)
    assert leading.settings["jslds"]["n_modes"] == 2
    padded = compare_models([diagonal(a), diagonal(c)], metrics=["jslds"], inputs=u,
                            initial_states=[h0, np.zeros((6, 2))])
    # c padded with a zero: [-0.4, 0, 0.6] against [-0.2, 0.5, 0.9]
    assert padded["jslds"][0, 1] == pytest.approx((0.2 + 0.5 + 0.3) / 3, abs=1e-12)


def _tanh_map(gain: float):
    """``F(h, u) = g tanh(h + u)``: ``dF/dh = diag(g (1 - tanh^2(h + u)))``."""
    return lambda u, h: gain * torch.tanh(h + u)


def _tanh_rollout(gain: float, u: np.ndarray, h0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Previous states ``(trials, time, H)`` and the states after each step, by the recursion itself."""
    prev, h = np.empty_like(u), h0
    for t in range(u.shape[1]):
        prev[:, t] = h
        h = gain * np.tanh(h + u[:, t])
    return prev, np.concatenate([prev[:, 1:], h[:, None]], axis=1)


def _sorted_l1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(np.sort(x, axis=-1) - np.sort(y, axis=-1)).mean(-1)


def test_a_state_dependent_map_gives_the_closed_form_mean_over_trials_and_steps():
    rng = np.random.default_rng(4)
    u, h0 = rng.normal(size=(5, 9, 3)), rng.normal(size=(5, 3))
    gains = (0.9, 1.3)
    models = [Model(f"g{g}", cell=_tanh_map(g), hidden_size=3, input_size=3) for g in gains]
    res = compare_models(models, metrics=["jslds"], inputs=u, initial_states=h0, jslds_kwargs={"max_points": None})
    jac = [g * (1 - np.tanh(_tanh_rollout(g, u, h0)[0] + u) ** 2) for g in gains]  # diagonals (trials, time, H)
    assert res["jslds"][0, 1] == pytest.approx(_sorted_l1(jac[0], jac[1]).mean(), rel=1e-12)
    assert res.settings["jslds"]["n_points"] == 5 * 9

    # without initial states step 0 has no previous state and is left out
    paths = [TrialPath(_tanh_map(g), _tanh_rollout(g, u, h0)[1], u, None, None, 3, 3) for g in gains]
    out = pairwise_jslds_distances(paths, max_points=None)
    assert out.distances[0, 1] == pytest.approx(_sorted_l1(jac[0], jac[1])[:, 1:].mean(), rel=1e-12)

    # subsampled points: the closed form on the points drawn
    out = pairwise_jslds_distances(paths, max_points=11, seed=5)
    i, t = out.points.T
    assert len(np.unique(i * 100 + t)) == 11 and t.min() >= 1
    assert out.distances[0, 1] == pytest.approx(_sorted_l1(jac[0][i, t], jac[1][i, t]).mean(), rel=1e-12)


def test_expansion_networks_linearize_at_the_expansion_point_with_zero_input():
    rng = np.random.default_rng(6)
    u, h0 = rng.normal(size=(4, 7, 3)), rng.normal(size=(4, 3))
    half = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        half.weight.copy_(0.5 * torch.eye(3))  # E(h) = h / 2
    models = [Model("e", cell=_tanh_map(1.1), hidden_size=3, input_size=3, expansion=half),
              Model("s", cell=_tanh_map(0.8), hidden_size=3, input_size=3)]
    res = compare_models(models, metrics=["jslds"], inputs=u, initial_states=h0)
    prev_e = _tanh_rollout(1.1, u, h0)[0]
    jac_e = 1.1 * (1 - np.tanh(0.5 * prev_e) ** 2)  # at E(h_{t-1}), u* = 0
    jac_s = 0.8 * (1 - np.tanh(_tanh_rollout(0.8, u, h0)[0] + u) ** 2)
    assert res["jslds"][0, 1] == pytest.approx(_sorted_l1(jac_e, jac_s).mean(), rel=1e-12)
    assert list(res.extras["jslds"]["linearized_at"]) == ["expansion", "states"]
    states = compare_models(models, metrics=["jslds"], inputs=u, initial_states=h0, jslds_kwargs={"at": "states"})
    jac_visited = 1.1 * (1 - np.tanh(prev_e + u) ** 2)
    assert states["jslds"][0, 1] == pytest.approx(_sorted_l1(jac_visited, jac_s).mean(), rel=1e-12)
    with pytest.raises(LFADSDataError, match="expansion-point network"):
        compare_models(models, metrics=["jslds"], inputs=u, initial_states=h0, jslds_kwargs={"at": "expansion"})


def test_distances_are_symmetric_zero_on_the_diagonal_and_grow_with_the_perturbation(tmp_path):
    torch.manual_seed(7)
    base = nn.GRUCell(2, 8).double()
    with torch.no_grad():
        base.weight_hh.mul_(2.0)
    direction = torch.randn_like(base.weight_hh)
    scales = (0.05, 0.1, 0.2, 0.4)
    cells = [base]
    for s in scales:
        cell = nn.GRUCell(2, 8).double()
        cell.load_state_dict(base.state_dict())
        with torch.no_grad():
            cell.weight_hh.add_(s * direction)
        cells.append(cell)
    u = _inputs(8, 20, 2, seed=8)
    res = compare_models(cells, metrics=["jslds"], inputs=u, initial_states=np.zeros((8, 8)))
    d = res["jslds"]
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all(np.diff(d[0, 1:]) > 0), d[0]
    back = ComparisonResult.load(res.save(tmp_path / "jslds.h5"))
    np.testing.assert_array_equal(back["jslds"], d)
    assert back.settings["jslds"] == res.settings["jslds"]
    assert list(back.extras["jslds"]["linearized_at"]) == ["states"] * 5


def test_the_assignment_equals_pots_wasserstein_distance_on_padded_complex_spectra():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(20, 6)) + 1j * rng.normal(size=(20, 6))
    b = rng.normal(size=(20, 4)) + 1j * rng.normal(size=(20, 4))
    expected = [eigenvalue_wasserstein(x, np.concatenate([y, np.zeros(2)])) for x, y in zip(a, b)]
    np.testing.assert_allclose(spectral_distances(a, b), expected, rtol=1e-12, atol=1e-14)


def test_points_are_drawn_with_a_fixed_seed():
    paths = [TrialPath(None, np.zeros((10, 30, 2)), initial_states=np.zeros((10, 2)))] * 2
    first, again = shared_points(paths, 50, seed=1), shared_points(paths, 50, seed=1)
    np.testing.assert_array_equal(first, again)
    assert len(first) == 50 and not np.array_equal(first, shared_points(paths, 50, seed=2))
    assert len(shared_points(paths, None)) == 300 and shared_points(paths, 1000).shape == (300, 2)


def test_models_on_different_trials_or_without_what_they_need_are_refused():
    cell = nn.GRUCell(2, 3).double()
    u = _inputs()
    x = simulate(cell, u, np.zeros((6, 3)))
    with pytest.raises(LFADSDataError, match="same trials"):
        compare_models([Model("a", x, cell), Model("b", x[:4], cell)], metrics=["jslds"], inputs=u,
                       initial_states=np.zeros((6, 3)))
    with pytest.raises(LFADSDataError, match="no cell"):
        compare_models([Model("a", x, cell), Model("b", x)], metrics=["jslds"])
    with pytest.raises(LFADSDataError, match="inputs"):
        compare_models([Model("a", x, cell), Model("b", x, cell)], metrics=["jslds"])
    with pytest.raises(LFADSDataError, match="initial_states must be"):
        linearization_points(TrialPath(cell, x, u, np.zeros((5, 3))), np.array([[0, 0]]))


def test_an_lfads_model_cotrained_with_a_jslds_is_linearized_at_its_expansion_points(small_lorenz):
    from lfads.compare.runs import lfads_generator_model
    from lfads.data.datamodule import LFADSDataModule
    from lfads.model import LFADS

    torch.manual_seed(0)
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    model = LFADS(dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
                  ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=2, ic_dim=4, gen_dim=6, fac_dim=3, jslds=True,
                  jslds_hidden_dim=8)
    torch.nn.init.normal_(model.jslds.expansion.mlp[-1].weight, std=0.3)  # E(h) != h
    m = lfads_generator_model(model, dm, "cotrained", split="valid", max_trials=5)
    assert m.expansion is model.jslds.expansion and m.inputs.shape[-1] == 2
    valid = dm.sessions[0].splits["valid"]
    model.eval()
    out = model.jslds_outputs(0, torch.as_tensor(valid.encod_data[:5]), torch.as_tensor(valid.ext_input[:5]))
    path = TrialPath(m.cell, m.trajectories, m.inputs, m.initial_states, m.expansion, m.hidden_size, m.input_size)
    points = shared_points([path], max_points=None)
    x, w, where, _ = linearization_points(path, points)
    assert where == "expansion" and w is None
    np.testing.assert_allclose(x.numpy(), out["expansion_points"].double().numpy()[points[:, 0], points[:, 1]],
                               atol=1e-5)
    # the generator's own visited states reproduce its trajectory: step t from (g_{t-1}, [u_t; v_t])
    x, w, where, dyn = linearization_points(path, points, at="states")
    np.testing.assert_allclose(dyn.step(x, w).numpy(), m.trajectories[points[:, 0], points[:, 1]], atol=1e-5)
