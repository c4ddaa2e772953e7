"""Normal equations of the fixed-point search: the Schur solve against the dense one, the LSTM's blocks
against its Jacobians, and the search itself the same with either system."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfads.analysis.fixed_points import find_fixed_points, minimize_speed
from lfads.analysis.normal_equations import DenseSystem, DiagonalTailSystem, dense_gauss_newton_system
from lfads.population.cells import CellDynamics, RecurrentCell

DT = torch.float64


def _tail_system(batch: int = 6, k: int = 5, t: int = 4, seed: int = 0) -> DiagonalTailSystem:
    """A random J^T J with a diagonal trailing block: J = [[P, diag(a)], [Q, diag(b)]]."""
    g = torch.Generator().manual_seed(seed)
    p, q = torch.randn(batch, k, k, generator=g, dtype=DT), torch.randn(batch, t, k, generator=g, dtype=DT)
    a, b = torch.randn(batch, k, generator=g, dtype=DT), torch.randn(batch, t, generator=g, dtype=DT)
    a[:, t:] = 0.0  # J's c-columns: a diagonal block above (k x t, first t rows) and one below
    top = torch.cat([p, torch.diag_embed(a)[:, :, :t]], 2)
    bottom = torch.cat([q, torch.diag_embed(b)], 2)
    jac = torch.cat([top, bottom], 1)
    full = jac.mT @ jac
    tail = full[:, k:, k:].diagonal(dim1=1, dim2=2).clone()
    return DiagonalTailSystem(full[:, :k, :k].clone(), full[:, :k, k:].clone(), tail)


def test_schur_solve_equals_the_dense_cholesky_solve():
    system = _tail_system()
    assert torch.count_nonzero(system.dense()[:, 5:, 5:] - torch.diag_embed(system.tail)) == 0
    g = torch.randn(6, 9, generator=torch.Generator().manual_seed(3), dtype=DT)
    for mu in (1e-8, 1e-2, 10.0):
        mus = torch.full((6,), mu, dtype=DT)
        x_tail, ok_tail = system.solve(mus, g)
        x_dense, ok_dense = DenseSystem(system.dense()).solve(mus, g)
        assert ok_tail.all() and ok_dense.all()
        torch.testing.assert_close(x_tail, x_dense, rtol=1e-8, atol=1e-10)
        residual = (system.dense() + mu * torch.eye(9, dtype=DT)) @ x_tail.unsqueeze(2) + g.unsqueeze(2)
        assert residual.abs().max() < 1e-8


def test_schur_solve_flags_a_system_that_is_not_positive_definite_and_takes_no_step():
    system = _tail_system()
    system.lead[2] = -torch.eye(5, dtype=DT)  # indefinite for point 2 only
    x, ok = system.solve(torch.full((6,), 1e-3, dtype=DT), torch.ones(6, 9, dtype=DT))
    assert ok.tolist() == [True, True, False, True, True, True]
    assert torch.count_nonzero(x[2]) == 0 and torch.isfinite(x).all()


def test_tail_system_rows_assign_finite_and_scale_match_the_dense_matrix():
    system, other = _tail_system(seed=0), _tail_system(seed=1)
    rows = torch.tensor([4, 1])
    torch.testing.assert_close(system.rows(rows).dense(), system.dense()[rows])
    torch.testing.assert_close(system.diagonal_max(), system.dense().diagonal(dim1=1, dim2=2).amax(1))
    system.assign(rows, other.rows(rows))
    torch.testing.assert_close(system.dense()[rows], other.dense()[rows])
    system.coupling[3, 0, 0] = float("nan")
    assert system.finite().tolist() == [True, True, True, False, True, True]


def test_lstm_normal_equations_equal_those_of_its_jacobians():
    cell = RecurrentCell("lstm", 3, 7, generator=torch.Generator().manual_seed(0))
    dyn = CellDynamics("lstm", cell.parameter_dict())
    g = torch.Generator().manual_seed(1)
    h, u = torch.randn(9, 14, generator=g, dtype=DT), torch.randn(9, 3, generator=g, dtype=DT)
    q, grad, system = dyn.normal_equations(h, u)
    q_d, grad_d, dense = dense_gauss_newton_system(dyn, h, u)
    assert isinstance(system, DiagonalTailSystem)
    torch.testing.assert_close(q, q_d, rtol=1e-13, atol=0)
    torch.testing.assert_close(grad, grad_d, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(system.dense(), dense.matrix, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("arch", ["vanilla", "ugrnn"])
def test_other_cells_keep_the_dense_system(arch):
    cell = RecurrentCell(arch, 3, 7, generator=torch.Generator().manual_seed(0))
    dyn = CellDynamics(arch, cell.parameter_dict())
    _, _, system = dyn.normal_equations(torch.zeros(2, 7, dtype=DT), torch.zeros(2, 3, dtype=DT))
    assert isinstance(system, DenseSystem)


def test_lstm_search_reaches_the_same_points_with_the_block_system_as_with_the_dense_one():
    cell = RecurrentCell("lstm", 3, 12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        cell.weight_hh.mul_(3.0)  # several fixed points
    dyn = cell.dynamics()
    starts = torch.randn(256, 24, generator=torch.Generator().manual_seed(5), dtype=DT)
    block = minimize_speed(dyn, starts)

    class Dense(CellDynamics):
        normal_equations = None  # the search falls back on the dense system of the Jacobians

    dense = minimize_speed(Dense("lstm", cell.parameter_dict()), starts)
    # rounding differs, so a borderline slow or unconverged point may swap; every fixed point is the same
    fixed = block.kind == "fixed"
    assert fixed.sum() == (dense.kind == "fixed").sum() > 128 and (block.kind == dense.kind).mean() > 0.98
    np.testing.assert_array_equal(fixed, dense.kind == "fixed")
    np.testing.assert_allclose(block.states[fixed], dense.states[fixed], atol=1e-10)
    points = find_fixed_points(dyn, starts).fixed()
    dense_points = find_fixed_points(Dense("lstm", cell.parameter_dict()), starts).fixed()
    assert len(points) == len(dense_points) >= 2
    np.testing.assert_allclose(np.sort(points.states, 0), np.sort(dense_points.states, 0), atol=1e-10)
