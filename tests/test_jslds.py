"""Jacobian-switching linear dynamics: exactness for affine maps, second-order accuracy near fixed points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lfads.analysis import (
    JSLDSResult,
    Readout,
    compute_relative_errors,
    find_fixed_points,
    fit_expansion_point_network,
    simulate_jslds,
)
from lfads.analysis.jacobians import as_dynamics
from lfads.errors import LFADSDataError

torch.set_num_threads(1)
DT = torch.float64


def _affine_system(seed: int = 0, n: int = 4, m: int = 2):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=DT) * 0.35
    b = torch.randn(n, m, generator=g, dtype=DT)
    c = torch.randn(n, generator=g, dtype=DT)
    return a, b, c, (lambda u, h: h @ a.T + u @ b.T + c)


def _readout(n: int, seed: int = 0) -> Readout:
    rng = np.random.default_rng(seed)
    return Readout(
        rng.normal(size=(3, n)) * 0.3, rng.normal(size=3) * 0.1, rng.normal(size=(5, 3)) * 0.5, np.full(5, -1.0)
    )


def test_jslds_is_exact_for_an_affine_map_in_every_mode():
    a, b, c, f = _affine_system()
    kw = {"hidden_size": 4, "input_size": 2}
    g = torch.Generator().manual_seed(1)
    h0 = torch.randn(3, 4, generator=g, dtype=DT)
    u = torch.randn(3, 25, 2, generator=g, dtype=DT)
    fps = find_fixed_points(f, torch.randn(5, 4, generator=g, dtype=DT), **kw)
    net, _ = fit_expansion_point_network(f, torch.randn(50, 4, generator=g, dtype=DT), n_steps=20, **kw)
    arbitrary = torch.randn(7, 4, generator=g, dtype=DT)  # exact even around points that are not fixed
    for expansion in (fps, net, arbitrary):
        u_star = torch.tensor([0.3, -0.2], dtype=DT)
        res = simulate_jslds(f, h0, u, expansion, input_star=u_star, readout=_readout(4), **kw)
        assert res.one_step_error_total < 1e-13 and res.rollout_error_total < 1e-13
        assert max(res.errors.values()) < 1e-12
    # the reference is the nonlinear rollout itself
    h = h0
    for t in range(25):
        h = f(u[:, t], h)
        np.testing.assert_allclose(res.states[:, t], h.numpy(), atol=1e-14)


def test_one_step_error_is_second_order_in_the_distance_to_a_fixed_point():
    torch.manual_seed(2)
    cell = nn.GRUCell(2, 6)
    fps = find_fixed_points(cell, torch.randn(16, 6, dtype=DT) * 0.3)
    assert len(fps.fixed()) == 1
    h_star = torch.tensor(fps.states[0])
    g = torch.Generator().manual_seed(3)
    direction = torch.randn(8, 6, generator=g, dtype=DT)
    du = torch.randn(8, 1, 2, generator=g, dtype=DT)
    errors = []
    for eps in (1e-2, 1e-3):
        res = simulate_jslds(cell, h_star + eps * direction, eps * du, fps)
        errors.append(np.linalg.norm(res.one_step[:, 0] - res.states[:, 0]))
    assert errors[1] < 1e-5
    assert 50 < errors[0] / errors[1] < 200  # error ~ eps^2


def test_expansion_network_learns_the_closed_form_minimiser_for_an_affine_map():
    # argmin_e ||(A - I) e + c||^2 + beta ||e - h||^2 = (M^T M + beta I)^{-1} (beta h - M^T c)
    a, _, c, f = _affine_system(seed=4, n=3, m=1)
    beta = 0.5
    g = torch.Generator().manual_seed(5)
    states = torch.randn(2000, 3, generator=g, dtype=DT) * 0.5
    net, losses = fit_expansion_point_network(
        f, states, beta=beta, n_steps=800, lr=1e-2, width=32, hidden_size=3, input_size=1
    )
    assert losses[-1] < 0.5 * losses[0]
    m = a - torch.eye(3, dtype=DT)
    x = states[:200]
    expected = torch.linalg.solve(m.T @ m + beta * torch.eye(3, dtype=DT), (beta * x - m.T @ c).T).T
    err = (net(x) - expected).norm(dim=1) / expected.norm(dim=1)
    assert float(err.mean()) < 0.03


def test_expansion_network_maps_gru_states_near_its_fixed_point():
    torch.manual_seed(6)
    cell = nn.GRUCell(2, 5)
    fps = find_fixed_points(cell, torch.randn(8, 5, dtype=DT) * 0.3)
    h_star = torch.tensor(fps.states[0])
    states = h_star + 0.3 * torch.randn(500, 5, dtype=DT)
    net, _ = fit_expansion_point_network(cell, states, beta=1e-4, n_steps=400, lr=1e-2, width=32)
    before = (states - h_star).norm(dim=1).mean()
    after = (net(states) - h_star).norm(dim=1).mean()
    assert after < 0.1 * before


def test_nearest_mode_switches_to_the_nearest_point_of_a_bistable_system():
    # two decoupled bistable units: 4 attractors, the linearisation switches between them
    cell = nn.GRUCell(1, 2)
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.weight_hh[4:6] = torch.diag(torch.tensor([3.0, 3.0]))
        cell.bias_hh.zero_()
        cell.bias_hh[:2] = 3.0  # reset gate open
        cell.bias_ih.zero_()
        cell.weight_ih.fill_(1.0)
    grid = torch.tensor([[x, y] for x in np.linspace(-1, 1, 7) for y in np.linspace(-1, 1, 7)], dtype=DT)
    fps = find_fixed_points(cell, grid)
    stable = fps.select(fps.stability == "stable")
    assert len(stable) == 4
    g = torch.Generator().manual_seed(7)
    h0 = torch.rand(6, 2, generator=g, dtype=DT) * 2 - 1
    u = 0.3 * torch.randn(6, 40, 1, generator=g, dtype=DT)
    res = simulate_jslds(cell, h0, u, stable)
    prev = np.concatenate([h0.numpy()[:, None], res.states[:, :-1]], axis=1)
    nearest = np.linalg.norm(prev[:, :, None] - stable.states[None, None], axis=3).argmin(axis=2)
    np.testing.assert_array_equal(res.one_step_index, nearest)
    np.testing.assert_array_equal(res.one_step_expansion, stable.states[nearest])
    assert len(np.unique(res.one_step_index)) > 1
    assert res.one_step_error_total < 0.1


def test_readout_maps_states_to_factors_and_exp_rates_from_module_weights():
    fac, out = nn.Linear(4, 3, bias=False), nn.Linear(3, 5)
    readout = Readout(fac.weight, None, out.weight, out.bias)
    h = torch.randn(2, 6, 4, dtype=DT)
    with torch.no_grad():
        expected = torch.exp(out.double()(fac.double()(h)))
    np.testing.assert_allclose(readout.rates(h), expected.numpy(), rtol=1e-12)
    assert Readout(np.eye(4)).rates(h) is None


def test_relative_errors_follow_their_definitions():
    true = np.zeros((2, 3, 2))
    true[..., 0] = 1.0
    pred = true.copy()
    pred[0, 1, 1] = 0.5
    per_point, per_time, overall = compute_relative_errors(pred, true)
    np.testing.assert_allclose(per_point, [[0, 0.5, 0], [0, 0, 0]])
    np.testing.assert_allclose(per_time, [0, 0.5 / np.sqrt(2), 0])
    np.testing.assert_allclose(overall, 0.5 / np.sqrt(6))


def test_jslds_result_saves_and_loads_identically(tmp_path):
    _, _, _, f = _affine_system(seed=8)
    kw = {"hidden_size": 4, "input_size": 2}
    fps = find_fixed_points(f, torch.randn(3, 4, dtype=DT), **kw)
    for readout in (None, _readout(4)):
        res = simulate_jslds(f, torch.randn(2, 4, dtype=DT), torch.randn(2, 6, 2, dtype=DT), fps, readout=readout, **kw)
        back = JSLDSResult.load(res.save(tmp_path / "jslds.h5"))
        for name in res.__dataclass_fields__:
            x, y = getattr(res, name), getattr(back, name)
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y, err_msg=name)
            else:
                assert x == y, name


def test_jslds_rejects_inputs_of_the_wrong_shape():
    cell = nn.GRUCell(2, 3)
    pts = np.zeros((1, 3))
    with pytest.raises(LFADSDataError, match="inputs must be"):
        simulate_jslds(cell, torch.zeros(2, 3), torch.zeros(2, 5, 3), pts)
    with pytest.raises(LFADSDataError, match="n_steps"):
        simulate_jslds(cell, torch.zeros(2, 3), None, pts)
    res = simulate_jslds(nn.GRUCell(0, 3), torch.zeros(2, 3), None, pts, n_steps=4)
    assert res.states.shape == (2, 4, 3)
    dyn = as_dynamics(nn.GRUCell(0, 3))
    assert dyn.input_size == 0


@pytest.mark.parametrize(("setting", "says"), [
    ({"width": 0}, "width must be a whole number of at least 1; got 0"),
    ({"n_steps": -1}, "n_steps must be a whole number of at least 1; got -1"),
    ({"lr": 0.0}, "lr must be a number above 0; got 0.0"),
    ({"beta": float("nan")}, "beta must be a number of at least 0; got nan"),
])
def test_expansion_network_settings_out_of_range_are_refused_naming_them(setting, says):
    with pytest.raises(LFADSDataError) as info:
        fit_expansion_point_network(nn.GRUCell(2, 4), np.random.default_rng(0).normal(size=(10, 4)), **setting)
    assert f"fit_expansion_point_network: {says}" in str(info.value)
