"""Fixed-point finder: ground truth from closed forms, scipy root finding and simulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from lfads.analysis import (
    FixedPoints,
    compute_eigendecomposition,
    compute_jacobians,
    deduplicate_points,
    find_distance_outliers,
    find_fixed_points,
    sample_initial_states,
)
from lfads.analysis.jacobians import as_dynamics
from lfads.errors import LFADSDataError
from lfads.modules.gru import ClippedGRUCell
from lfads.population.single import train_flipflop_rnn
from lfads.population.tasks import generate_flipflop_data

torch.set_num_threads(1)
DT = torch.float64


# ----------------------------------------------------------------------------------------------------------------------
# Affine maps: one fixed point, Jacobian = A
# ----------------------------------------------------------------------------------------------------------------------


def _affine(eigenvalues: list[float], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(eigenvalues)
    basis = rng.normal(size=(n, n))
    a = basis @ np.diag(eigenvalues) @ np.linalg.inv(basis)
    b = rng.normal(size=n)
    h_star = np.linalg.solve(np.eye(n) - a, b)
    return a, b, h_star


def test_affine_map_has_its_unique_fixed_point_and_jacobian_a():
    a, b, h_star = _affine([1.6, 0.9, -0.5, 0.2, 0.05])
    at, bt = torch.tensor(a), torch.tensor(b)
    fps = find_fixed_points(lambda u, h: h @ at.T + bt, torch.randn(20, 5, dtype=DT), hidden_size=5, input_size=0)
    assert len(fps) == 1
    assert fps.kind[0] == "fixed" and fps.q[0] < 1e-20
    np.testing.assert_allclose(fps.states[0], h_star, atol=1e-10)
    np.testing.assert_allclose(fps.jac_state[0], a, atol=1e-12)
    np.testing.assert_allclose(np.sort(np.abs(fps.eigenvalues[0]))[::-1], [1.6, 0.9, 0.5, 0.2, 0.05], atol=1e-10)
    assert fps.stability[0] == "saddle" and fps.n_unstable[0] == 1
    assert fps.count[0] == 20 and fps.converged_fraction == 1.0


def test_eigendecomposition_gives_biorthonormal_left_and_right_modes():
    a, _, _ = _affine([0.9, -0.7, 0.3, 1.2])
    rot = np.array([[0.6, -0.8], [0.8, 0.6]]) * 0.95  # a complex pair too
    m = np.zeros((6, 6))
    m[:4, :4], m[4:, 4:] = a, rot
    w, left, right = compute_eigendecomposition(m[None])
    w, left, right = w[0], left[0], right[0]
    np.testing.assert_allclose(m @ right, right * w, atol=1e-12)
    np.testing.assert_allclose(left.conj().T @ m, w[:, None] * left.conj().T, atol=1e-12)
    np.testing.assert_allclose(left.conj().T @ right, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(right, axis=0), 1.0, atol=1e-12)
    assert np.all(np.diff(np.abs(w)) <= 1e-12)  # sorted by decreasing |lambda|


# ----------------------------------------------------------------------------------------------------------------------
# Closed-form Jacobians and Hessian vs autograd
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["GRUCell", "ClippedGRUCell", "GRU"])
def test_closed_form_jacobians_match_autograd(kind):
    torch.manual_seed(0)
    cell = {
        "GRUCell": lambda: nn.GRUCell(3, 7),
        "ClippedGRUCell": lambda: ClippedGRUCell(3, 7, clip_value=0.3),
        "GRU": lambda: nn.GRU(3, 7, batch_first=True),
    }[kind]()
    h = torch.randn(9, 7, dtype=DT) * 0.6
    u = torch.randn(9, 3, dtype=DT)
    dyn = as_dynamics(cell)
    ref = cell.double()

    def step(hs, us):
        if kind == "GRU":
            return ref(us[None, None], hs[None, None])[1][0, 0]
        return ref(us[None], hs[None])[0]

    # reference: plain autograd on the module's own forward, one point at a time
    jac = [torch.autograd.functional.jacobian(step, (h[i], u[i])) for i in range(9)]
    f, jh, ju = dyn.jacobians(h, u)
    torch.testing.assert_close(f, torch.stack([step(h[i], u[i]) for i in range(9)]).detach(), atol=1e-14, rtol=0)
    torch.testing.assert_close(jh, torch.stack([j[0] for j in jac]), atol=1e-13, rtol=0)
    torch.testing.assert_close(ju, torch.stack([j[1] for j in jac]), atol=1e-13, rtol=0)
    if kind == "ClippedGRUCell":
        assert bool((f.abs() == 0.3).any()), "the clip must be active somewhere for this test to mean something"

    def q(hs, us):
        r = step(hs, us) - hs
        return 0.5 * (r * r).sum()

    _, _, g_cf, hess_cf = dyn.speed_hessian(h, u)
    grads = torch.stack([torch.autograd.functional.jacobian(lambda x, i=i: q(x, u[i]), h[i]) for i in range(9)])
    hess = torch.stack([torch.autograd.functional.hessian(lambda x, i=i: q(x, u[i]), h[i]) for i in range(9)])
    torch.testing.assert_close(g_cf, grads, atol=1e-13, rtol=0)
    torch.testing.assert_close(hess_cf, hess, atol=1e-12, rtol=0)


def test_generic_module_path_matches_closed_form_for_rnn_cell():
    torch.manual_seed(1)
    cell = nn.RNNCell(2, 4)
    h = torch.randn(6, 4, dtype=DT)
    u = torch.randn(6, 2, dtype=DT)
    jh, ju = compute_jacobians(cell, h, u)
    w, wi = cell.weight_hh.detach().double(), cell.weight_ih.detach().double()
    out = torch.tanh(u @ wi.T + h @ w.T + cell.bias_ih.detach().double() + cell.bias_hh.detach().double())
    torch.testing.assert_close(jh, (1 - out**2).unsqueeze(2) * w, atol=1e-13, rtol=0)
    torch.testing.assert_close(ju, (1 - out**2).unsqueeze(2) * wi, atol=1e-13, rtol=0)


# ----------------------------------------------------------------------------------------------------------------------
# A decoupled (diagonal) GRU: 3 x 3 = 9 fixed points from 1-D scipy root finding
# ----------------------------------------------------------------------------------------------------------------------


def _diagonal_gru() -> tuple[nn.GRUCell, dict[str, np.ndarray]]:
    p = {
        "w_r": np.array([0.3, 0.2]),
        "w_z": np.array([0.5, -0.4]),
        "w_n": np.array([2.5, 3.0]),
        "b_r": np.array([1.0, 0.5]),
        "b_z": np.array([0.0, 0.2]),
        "b_n": np.array([0.1, -0.05]),
        "b_in": np.array([0.02, 0.0]),
    }
    cell = nn.GRUCell(1, 2)
    with torch.no_grad():
        cell.weight_ih.normal_()  # irrelevant at u* = 0
        cell.weight_hh.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        for k, (w, b) in enumerate((("w_r", "b_r"), ("w_z", "b_z"), ("w_n", "b_n"))):
            cell.weight_hh[2 * k : 2 * k + 2] = torch.diag(torch.tensor(p[w], dtype=torch.float32))
            cell.bias_hh[2 * k : 2 * k + 2] = torch.tensor(p[b], dtype=torch.float32)
        cell.bias_ih[4:6] = torch.tensor(p["b_in"], dtype=torch.float32)
    # the float32 parameters are the ground truth
    f32 = {k: v.astype(np.float32).astype(np.float64) for k, v in p.items()}
    return cell, f32


def _unit_map(h: np.ndarray, p: dict[str, np.ndarray], i: int) -> np.ndarray:
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    r = sig(p["w_r"][i] * h + p["b_r"][i])
    z = sig(p["w_z"][i] * h + p["b_z"][i])
    n = np.tanh(p["b_in"][i] + r * (p["w_n"][i] * h + p["b_n"][i]))
    return n + z * (h - n)


def _unit_roots(p: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(-1.5, 1.5, 3001)
    phi = _unit_map(grid, p, i) - grid
    roots = [
        scipy.optimize.brentq(lambda x: _unit_map(x, p, i) - x, grid[k], grid[k + 1], xtol=1e-15)
        for k in np.nonzero(np.sign(phi[:-1]) != np.sign(phi[1:]))[0]
    ]
    roots = np.asarray(roots)
    eps = 1e-6
    slope = (_unit_map(roots + eps, p, i) - _unit_map(roots - eps, p, i)) / (2 * eps)
    return roots, slope


def test_diagonal_gru_fixed_points_and_stability_match_scipy_roots():
    cell, p = _diagonal_gru()
    (r0, s0), (r1, s1) = _unit_roots(p, 0), _unit_roots(p, 1)
    assert len(r0) == 3 and len(r1) == 3, "each unit is bistable by construction"
    truth = np.array([[a, b] for a in r0 for b in r1])
    n_unstable = np.array([int(abs(x) > 1) + int(abs(y) > 1) for x in s0 for y in s1])

    g = np.linspace(-1.2, 1.2, 15)
    init = torch.tensor(np.array([[x, y] for x in g for y in g]))
    fps = find_fixed_points(cell, init)

    assert len(fps) == 9 and set(fps.kind) == {"fixed"}
    dist = np.linalg.norm(fps.states[:, None] - truth[None], axis=2)
    match = dist.argmin(axis=1)
    assert sorted(match) == list(range(9))
    assert dist.min(axis=1).max() < 1e-9
    np.testing.assert_array_equal(fps.n_unstable, n_unstable[match])
    expected = np.where(n_unstable[match] == 0, "stable", np.where(n_unstable[match] == 2, "unstable", "saddle"))
    np.testing.assert_array_equal(fps.stability, expected)
    assert {s: int((fps.stability == s).sum()) for s in ("stable", "saddle", "unstable")} == {
        "stable": 4,
        "saddle": 4,
        "unstable": 1,
    }
    # decoupled units: the Jacobian is diagonal with the 1-D slopes
    slopes = np.array([[x, y] for x in s0 for y in s1])[match]
    np.testing.assert_allclose(np.diagonal(fps.jac_state, axis1=1, axis2=2), slopes, atol=1e-6)
    np.testing.assert_allclose(fps.jac_state[:, 0, 1], 0.0, atol=1e-15)
    assert "stable: 4, saddle: 4, unstable: 1" in fps.summary()


def test_inputs_held_per_point_give_the_fixed_point_of_each_input():
    torch.manual_seed(3)
    cell = nn.GRUCell(2, 6)
    u = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-1.0, 0.5]], dtype=DT).repeat_interleave(8, 0)
    fps = find_fixed_points(cell, torch.randn(24, 6, dtype=DT) * 0.5, u, progress=True)
    dyn = as_dynamics(cell)
    h, us = torch.tensor(fps.states), torch.tensor(fps.inputs)
    torch.testing.assert_close(dyn.step(h, us), h, atol=1e-10, rtol=0)
    assert {tuple(x) for x in fps.inputs} == {(0.0, 0.0), (1.0, -0.5), (-1.0, 0.5)}
    _, ju = compute_jacobians(cell, h, us)
    np.testing.assert_allclose(fps.jac_input, ju.numpy(), atol=1e-14)


# ----------------------------------------------------------------------------------------------------------------------
# Slow points and line attractors
# ----------------------------------------------------------------------------------------------------------------------


def test_slow_point_is_a_certified_minimum_of_q():
    # h1' = h1 + a (h1^2 + c) never reaches a fixed point: q has its minimum a^2 c^2 / 2 at h = 0
    a, c = 0.1, 0.01

    def f(u, h):
        return torch.stack([h[:, 0] + a * (h[:, 0] ** 2 + c), 0.5 * h[:, 1]], dim=1)

    fps = find_fixed_points(f, torch.randn(16, 2, dtype=DT) * 0.3, hidden_size=2, input_size=0)
    assert len(fps) == 1 and fps.kind[0] == "slow"
    np.testing.assert_allclose(fps.states[0], [0.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(fps.q[0], 0.5 * a**2 * c**2, rtol=1e-8)
    assert fps.grad_norm[0] < 1e-9
    assert len(fps.fixed()) == 0 and len(fps.slow()) == 1


def test_line_attractor_points_lie_on_the_line_with_one_marginal_direction():
    rng = np.random.default_rng(4)
    q_mat, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    qt = torch.tensor(q_mat)

    def f(u, h):  # y = Q^T h; y1 is integrated, the rest decays through 0.5 tanh
        y = h @ qt
        y = torch.cat([y[:, :1], 0.5 * torch.tanh(y[:, 1:])], dim=1)
        return y @ qt.T

    fps = find_fixed_points(f, torch.randn(40, 5, dtype=DT), hidden_size=5, input_size=0)
    assert len(fps) > 10  # a continuum: distinct points along the line
    line = q_mat[:, 0]
    off_line = fps.states - np.outer(fps.states @ line, line)
    assert np.abs(off_line).max() < 1e-8
    assert np.all(fps.n_marginal == 1)
    np.testing.assert_allclose(np.abs(fps.eigenvalues[:, 0]), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(fps.eigenvalues[:, 1:]), 0.5, atol=1e-8)
    # the marginal mode points along the line
    np.testing.assert_allclose(np.abs(np.real(fps.right_eigenvectors[:, :, 0]) @ line), 1.0, atol=1e-8)


# ----------------------------------------------------------------------------------------------------------------------
# A trained 3-bit flip-flop GRU: 8 attractors with saddles between them
# ----------------------------------------------------------------------------------------------------------------------

PATTERNS = torch.tensor([[a, b, c] for a in (-1.0, 1.0) for b in (-1.0, 1.0) for c in (-1.0, 1.0)])


@pytest.fixture(scope="module")
def flipflop():
    model, losses = train_flipflop_rnn(
        hidden_size=24, n_steps=300, batch_size=32, n_time=64, lr=2e-2, pulse_prob=0.03, seed=2
    )
    assert np.mean(losses[-20:]) < 0.03
    data = generate_flipflop_data(64, 200, 3, 0.03, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, states = model(data.inputs)
    init = sample_initial_states(states, 256, noise_std=0.05, seed=0)
    return model, states, find_fixed_points(model.gru, init.states)


def _simulate(dyn, h: torch.Tensor, steps: int) -> torch.Tensor:
    u = torch.zeros(h.shape[0], dyn.input_size, dtype=DT)
    for _ in range(steps):
        h = dyn.step(h, u)
    return h


def test_flipflop_gru_has_eight_stable_attractors_found_by_the_finder(flipflop):
    model, _, fps = flipflop
    dyn = as_dynamics(model.gru)
    # ground truth by simulation: set each memory, then hold it with zero input
    x = torch.zeros(8, 10, 3)
    x[:, 5] = PATTERNS
    with torch.no_grad():
        _, st = model(x)
    ends = _simulate(dyn, st[:, -1].double(), 3000).numpy()
    stable = fps.select(fps.stability == "stable")
    assert len(stable) >= 8
    dist = np.linalg.norm(stable.states[:, None] - ends[None], axis=2).min(axis=0)
    assert dist.max() < 1e-5, f"attractors reached by simulation not found: distances {dist}"
    assert np.all(stable.max_abs_eigenvalue < 1.0)
    with torch.no_grad():
        out = model.readout(torch.tensor(stable.states, dtype=torch.float32))
    patterns = {tuple(int(v) for v in torch.sign(o)) for o in out if bool((o.abs() > 0.5).all())}
    assert len(patterns) == 8
    assert fps.converged_fraction > 0.9


def test_flipflop_saddles_separate_distinct_attractors(flipflop):
    model, _, fps = flipflop
    dyn = as_dynamics(model.gru)
    stable = fps.select(fps.stability == "stable").states
    saddles = np.nonzero((fps.stability == "saddle") & (fps.n_unstable == 1))[0]
    assert len(saddles) >= 3
    v = np.real(fps.right_eigenvectors[saddles][:, :, 0])  # the unstable mode comes first
    start = np.concatenate([fps.states[saddles] + 1e-3 * v, fps.states[saddles] - 1e-3 * v])
    ends = _simulate(dyn, torch.tensor(start), 3000).numpy()
    dist = np.linalg.norm(ends[:, None] - stable[None], axis=2)
    which, reached = dist.argmin(axis=1), dist.min(axis=1) < 1e-4
    n = len(saddles)
    separating = int((reached[:n] & reached[n:] & (which[:n] != which[n:])).sum())
    assert separating >= 8  # a cube has 12 edges; each separating saddle sits on one


def test_flipflop_points_save_and_load_identically(flipflop, tmp_path):
    _, _, fps = flipflop
    path = fps.save(tmp_path / "fps.h5")
    back = FixedPoints.load(path)
    for name in fps.__dataclass_fields__:
        a, b = getattr(fps, name), getattr(back, name)
        if name == "settings":
            assert a == b
        else:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_projections_on_pca_and_on_given_weights(flipflop):
    _, states, fps = flipflop
    proj = fps.project_pca(states.numpy(), n_components=3)
    x = states.numpy().reshape(-1, 24).astype(np.float64)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    expected = (fps.states - x.mean(0)) @ vt[:3].T
    np.testing.assert_allclose(np.abs(proj), np.abs(expected), atol=1e-8)  # components up to sign
    w = np.random.default_rng(0).normal(size=(4, 24))
    np.testing.assert_allclose(fps.project(w), fps.states @ w.T, atol=1e-12)
    layer = nn.Linear(24, 4)  # factor weights straight from a module
    np.testing.assert_allclose(
        fps.project(layer.weight), fps.states @ layer.weight.detach().double().numpy().T, atol=1e-12
    )


# ----------------------------------------------------------------------------------------------------------------------
# The caller's model is left exactly as it was
# ----------------------------------------------------------------------------------------------------------------------


class _Wrapped(nn.Module):
    """A non-GRU module (autograd path) with dropout, to check modes and flags survive."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(2, 5)
        self.drop = nn.Dropout(0.5)
        self.hidden_size, self.input_size = 5, 2

    def forward(self, u, h):
        return self.cell(self.drop(u), h)


@pytest.mark.parametrize("make", [lambda: ClippedGRUCell(2, 5, clip_value=0.8), _Wrapped])
def test_finder_and_jslds_leave_the_model_unchanged(make):
    from lfads.analysis import fit_expansion_point_network, simulate_jslds

    torch.manual_seed(5)
    model = make()
    model.train()
    first = next(model.parameters())
    first.requires_grad_(False)  # a mix of flags, both must survive
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    modes = {k: m.training for k, m in model.named_modules()}

    h0 = torch.randn(12, 5) * 0.3
    fps = find_fixed_points(model, h0)
    compute_jacobians(model, h0, torch.zeros(12, 2))
    net, _ = fit_expansion_point_network(model, h0, n_steps=5)
    simulate_jslds(model, h0[:3], torch.zeros(3, 4, 2), fps)
    simulate_jslds(model, h0[:3], torch.zeros(3, 4, 2), net)

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert {k: m.training for k, m in model.named_modules()} == modes


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def test_sample_initial_states_draws_finite_visited_states_with_aligned_inputs():
    traj = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    traj[1, 4] = float("nan")  # a padded step is never drawn
    inputs = traj[..., :2] * 10
    init = sample_initial_states(traj, 9, inputs=inputs, seed=3)
    flat = traj.reshape(-1, 3).double()
    assert init.states.shape == (9, 3) and init.states.dtype == DT
    torch.testing.assert_close(init.states, flat[init.indices])
    torch.testing.assert_close(init.inputs, inputs.reshape(-1, 2).double()[init.indices])
    assert len(set(init.indices.tolist())) == 9 and 9 not in init.indices.tolist()
    noisy = sample_initial_states(torch.zeros(1000, 4), 1000, noise_std=0.2, seed=1).states
    assert abs(float(noisy.std()) - 0.2) < 0.01
    with pytest.raises(LFADSDataError, match="no finite state"):
        sample_initial_states(torch.full((3, 2), float("nan")), 2)


def test_deduplication_keeps_the_lowest_q_and_outlier_rule_uses_rms_spread():
    pts = np.array([[0.0, 0.0], [1e-6, 0.0], [1.0, 1.0], [1.0, 1.0 + 5e-5], [3.0, 0.0]])
    q = np.array([1e-12, 1e-20, 1e-15, 1e-13, 1e-11])
    reps, assign = deduplicate_points(pts, q, tol=1e-4)
    np.testing.assert_array_equal(reps, [1, 2, 4])
    np.testing.assert_array_equal(assign, [0, 0, 1, 1, 2])
    ref = np.array([[1.0, 0.0], [-1.0, 0.0]])  # centroid 0, RMS distance 1
    out = find_distance_outliers(np.array([[0.0, 9.9], [10.1, 0.0]]), ref, outlier_scale=10.0)
    np.testing.assert_array_equal(out, [False, True])


def test_bad_shapes_raise_errors_that_say_what_to_pass():
    cell = nn.GRUCell(2, 4)
    with pytest.raises(LFADSDataError, match=r"\(n, 4\)"):
        find_fixed_points(cell, torch.zeros(3, 5))
    with pytest.raises(LFADSDataError, match="one input per point"):
        find_fixed_points(cell, torch.zeros(3, 4), torch.zeros(2, 2))
    with pytest.raises(LFADSDataError, match="hidden_size"):
        find_fixed_points(lambda u, h: h, torch.zeros(3, 4))
    with pytest.raises(LFADSDataError, match="num_layers=2"):
        find_fixed_points(nn.GRU(2, 4, num_layers=2), torch.zeros(3, 4))
    starts = torch.zeros(3, 4)
    starts[1, 2] = float("nan")
    with pytest.raises(LFADSDataError, match="initial_states: 1 of 3 states hold NaN or inf"):
        find_fixed_points(cell, starts)
