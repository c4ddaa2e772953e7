"""Cells of lfads.population.cells: the maps against torch's own cells, the Jacobians against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lfads.analysis.fixed_points import find_fixed_points
from lfads.analysis.jacobians import GRUDynamics, as_dynamics, compute_jacobians, extract_gru_parameters
from lfads.errors import LFADSDataError
from lfads.population.cells import (
    ARCHITECTURES,
    CellDynamics,
    RecurrentCell,
    cell_step,
    init_parameters,
    state_size,
)

DT = torch.float64


def _cell(arch: str, units: int = 6, inputs: int = 3, seed: int = 0) -> RecurrentCell:
    return RecurrentCell(arch, inputs, units, generator=torch.Generator().manual_seed(seed))


def _points(cell: RecurrentCell, n: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, cell.hidden_size, generator=g, dtype=DT)
    return h, torch.randn(n, cell.input_size, generator=g, dtype=DT)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_closed_form_jacobians_equal_autograd_in_float64(arch):
    cell = _cell(arch)
    dyn = CellDynamics(arch, cell.parameter_dict())
    h, u = _points(cell)
    f, jh, ju = dyn.jacobians(h, u)
    for b in range(h.shape[0]):
        ah = torch.autograd.functional.jacobian(lambda x: dyn.differentiable_step(x[None], u[b : b + 1])[0], h[b])
        au = torch.autograd.functional.jacobian(lambda x: dyn.differentiable_step(h[b : b + 1], x[None])[0], u[b])
        torch.testing.assert_close(jh[b], ah, atol=1e-6, rtol=0)
        torch.testing.assert_close(ju[b], au, atol=1e-6, rtol=0)
    torch.testing.assert_close(f, dyn.step(h, u), atol=1e-12, rtol=0)
    assert jh.shape == (5, state_size(arch, 6), state_size(arch, 6)) and ju.shape == (5, state_size(arch, 6), 3)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_jacobians_hold_where_relu_units_are_off_and_gates_saturate(arch):
    cell = _cell(arch, seed=4)
    dyn = CellDynamics(arch, cell.parameter_dict())
    h, u = _points(cell, seed=5)
    h, u = 4 * h, 4 * u  # large pre-activations: many ReLUs off, gates near 0 or 1
    _, jh, _ = dyn.jacobians(h, u)
    auto = torch.stack([
        torch.autograd.functional.jacobian(lambda x: dyn.differentiable_step(x[None], u[b : b + 1])[0], h[b])
        for b in range(5)
    ])
    torch.testing.assert_close(jh, auto, atol=1e-6, rtol=0)


def test_gru_cell_is_torchs_gru_and_matches_the_closed_form_gru_dynamics():
    cell = _cell("gru")
    ref = nn.GRUCell(3, 6).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name).copy_(getattr(cell, name))
    h, u = _points(cell)
    torch.testing.assert_close(cell.double()(u, h), ref(u, h), atol=1e-12, rtol=0)
    _, jh, ju = CellDynamics("gru", cell.parameter_dict()).jacobians(h, u)
    assert isinstance(cell.dynamics(), GRUDynamics)  # the analysis gets the closed-form GRU map
    _, jh_ref, ju_ref = GRUDynamics(extract_gru_parameters(ref)).jacobians(h, u)
    torch.testing.assert_close(jh, jh_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ju, ju_ref, atol=1e-12, rtol=0)


def test_lstm_cell_is_torchs_lstm_with_state_h_then_c():
    cell = _cell("lstm").double()
    ref = nn.LSTMCell(3, 6).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name).copy_(getattr(cell, name))
    s, u = _points(cell)
    h_ref, c_ref = ref(u, (s[:, :6], s[:, 6:]))
    torch.testing.assert_close(cell(u, s), torch.cat([h_ref, c_ref], 1), atol=1e-12, rtol=0)


def test_ugrnn_interpolates_between_the_state_and_the_candidate():
    cell = _cell("ugrnn").double()
    h, u = _points(cell)
    a = u @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    g, c = torch.sigmoid(a[:, :6]), torch.tanh(a[:, 6:])
    torch.testing.assert_close(cell(u, h), g * h + (1 - g) * c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", ["vanilla", "relu"])
def test_vanilla_cells_apply_their_nonlinearity_to_the_affine_drive(arch):
    cell = _cell(arch).double()
    h, u = _points(cell)
    a = u @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    torch.testing.assert_close(cell(u, h), torch.tanh(a) if arch == "vanilla" else torch.relu(a), atol=1e-12, rtol=0)


def test_stacked_parameters_step_every_network_as_it_steps_alone():
    cells = [_cell("lstm", seed=s).double() for s in range(3)]
    stacked = {k: torch.stack([c.parameter_dict()[k] for c in cells]) for k in cells[0].parameter_dict()}
    h = torch.randn(3, 4, 12, dtype=DT)
    u = torch.randn(3, 4, 3, dtype=DT)
    out = cell_step("lstm", stacked, u, h)
    for n, c in enumerate(cells):
        torch.testing.assert_close(out[n], c(u[n], h[n]), atol=1e-12, rtol=0)


def test_cell_dynamics_are_accepted_by_the_analysis_and_leave_the_cell_untouched():
    cell = _cell("ugrnn")
    before = {k: v.detach().clone() for k, v in cell.state_dict().items()}
    dyn = cell.dynamics()
    assert as_dynamics(dyn) is dyn and isinstance(dyn, CellDynamics)
    h, u = _points(cell)
    jh, _ = compute_jacobians(dyn, h, u)
    assert jh.dtype == DT
    with torch.no_grad():
        dyn.params["weight_hh"].mul_(2.0)
    assert all(torch.equal(v, cell.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("arch", ["vanilla", "lstm", "ugrnn"])
def test_fixed_point_finder_finds_the_fixed_point_of_a_contracting_cell(arch):
    cell = _cell(arch, units=5, seed=2)
    with torch.no_grad():
        cell.weight_hh.mul_(0.3)  # contracting: one fixed point, found by iterating the map
    dyn = cell.dynamics()
    h = torch.zeros(1, cell.hidden_size, dtype=DT)
    u = torch.zeros(1, 3, dtype=DT)
    for _ in range(2000):
        h = dyn.step(h, u)
    fps = find_fixed_points(dyn, torch.randn(16, cell.hidden_size, dtype=DT) * 0.5)
    assert len(fps) == 1 and fps.stability[0] == "stable"
    np.testing.assert_allclose(fps.states[0], h[0].numpy(), atol=1e-8)
    # the module itself works too (autograd path), with the same answer
    fps_module = find_fixed_points(cell, torch.randn(16, cell.hidden_size, dtype=DT) * 0.5)
    np.testing.assert_allclose(fps_module.states[0], h[0].numpy(), atol=1e-8)


@pytest.mark.parametrize(("arch", "block"), [("gru", 2), ("lstm", 2), ("ugrnn", 1)])
def test_identity_candidate_draws_only_the_candidate_block_as_the_vanilla_recurrence(arch, block):
    units = 200
    plain = init_parameters(arch, units, 3, torch.Generator().manual_seed(4))
    near = init_parameters(arch, units, 3, torch.Generator().manual_seed(4), identity_candidate=True)
    rows = slice(block * units, (block + 1) * units)
    for name in ("weight_ih", "bias_ih", "bias_hh"):
        torch.testing.assert_close(near[name], plain[name], atol=0, rtol=0)
    others = torch.ones(near["weight_hh"].shape[0], dtype=torch.bool)
    others[rows] = False
    torch.testing.assert_close(near["weight_hh"][others], plain["weight_hh"][others], atol=0, rtol=0)
    noise = (near["weight_hh"][rows] - 0.5 * torch.eye(units)).numpy()
    # 0.5 N(0, 1/H) entries: mean 0 and standard deviation 0.5 / sqrt(H) over 40000 draws
    assert abs(noise.mean()) < 4 * 0.5 / units / np.sqrt(units)
    assert abs(noise.std() * np.sqrt(units) - 0.5) < 0.01
    # the uniform block it replaced has standard deviation 1 / sqrt(3 H)
    assert abs(plain["weight_hh"][rows].std().item() * np.sqrt(3 * units) - 1.0) < 0.02


@pytest.mark.parametrize("arch", ["vanilla", "relu"])
def test_identity_candidate_leaves_the_vanilla_cells_as_they_are(arch):
    plain = init_parameters(arch, 8, 3, torch.Generator().manual_seed(2))
    near = init_parameters(arch, 8, 3, torch.Generator().manual_seed(2), identity_candidate=True)
    for name, value in plain.items():
        torch.testing.assert_close(near[name], value, atol=0, rtol=0)


def test_unknown_architecture_names_the_choices():
    with pytest.raises(LFADSDataError, match="choose one of"):
        RecurrentCell("transformer", 3, 4)


@pytest.mark.parametrize(("units", "input_size"), [(0, 3), (4, -1), (2.5, 3)])
def test_a_cell_without_units_or_with_negative_inputs_is_refused(units, input_size):
    with pytest.raises(LFADSDataError, match="gru cell: (units|input_size) must be a whole number"):
        RecurrentCell("gru", input_size, units)
