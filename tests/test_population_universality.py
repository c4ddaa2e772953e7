"""Per-network checks of lfads.population.universality on maps whose fixed points are known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from lfads.analysis.fixed_points import find_fixed_points
from lfads.population.universality import (
    cube_edges,
    flipflop_structure,
    line_attractor,
    line_tangents,
    oscillation_frequency,
    sine_oscillation,
)

DT = torch.float64


def test_cube_edges_join_patterns_one_bit_apart():
    edges = cube_edges(3)
    assert len(edges) == 12 and len(cube_edges(2)) == 4
    assert all(sum(x != y for x, y in zip(*sorted(e))) == 1 for e in edges)


def _corner_map(n_bits: int = 3, scale: float = 1.5):
    """h' = tanh(s h) per unit: stable points at +-h* per unit (2^N corners), index-k saddles on the faces."""

    def f(u, h):
        return torch.tanh(scale * h)

    return f


def test_flipflop_structure_recognises_the_eight_memories_and_the_cube():
    fps = find_fixed_points(_corner_map(), torch.as_tensor(np.random.default_rng(0).uniform(-1.2, 1.2, (400, 3))),
                            hidden_size=3, input_size=0)
    h_star = fps.states[fps.stability == "stable"].max()
    weight, bias = np.eye(3) / h_star, np.zeros(3)  # readout puts the stable points on the corners
    # edges by construction: the saddle with unit k at 0 joins the two corners that differ in bit k
    stable = {tuple(np.sign(s).astype(int)): i for i, s in enumerate(fps.states) if fps.stability[i] == "stable"}
    edges = []
    for s in np.nonzero(fps.n_unstable == 1)[0]:
        zero = int(np.argmin(np.abs(fps.states[s])))
        signs = np.sign(fps.states[s]).astype(int)
        a, b = signs.copy(), signs.copy()
        a[zero], b[zero] = 1, -1
        edges.append((int(s), stable[tuple(a)], stable[tuple(b)]))
    st = flipflop_structure(fps, weight, bias, saddle_edges=edges)
    assert st.n_stable == 8 and st.all_memories and st.n_index1 == 12
    assert set(st.memories) == set(itertools.product((-1, 1), repeat=3))
    assert st.cube is True and len(st.edges) == 12
    # a graph missing one edge is not a cube; no graph: no verdict on the saddles
    assert flipflop_structure(fps, weight, bias, saddle_edges=edges[1:]).cube is False
    assert flipflop_structure(fps, weight, bias).cube is None
    # a readout that moves the points off the corners: no memories
    assert not flipflop_structure(fps, 0.5 * weight, bias).all_memories


def test_sine_oscillation_reads_the_rotation_angle_of_the_fixed_point():
    theta, radius = 0.37, 1.05
    rot = radius * torch.tensor([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], dtype=DT)
    centre = torch.tensor([0.3, -0.2], dtype=DT)

    def f(u, h):
        return centre + (h - centre) @ rot.T + 0 * u

    fps = find_fixed_points(f, torch.randn(8, 2, dtype=DT), hidden_size=2, input_size=1)
    assert abs(sine_oscillation(fps) - theta) < 1e-9
    no_rotation = find_fixed_points(lambda u, h: 0.5 * h, torch.randn(4, 2, dtype=DT), hidden_size=2, input_size=1)
    assert np.isnan(sine_oscillation(no_rotation))


def _line_map(lam_other: float = 0.5, irrelevant_in_selection: float = 0.0):
    """h' = A h + B u with A = I - (1 - lam) Q Q^T (Q orthogonal to the line v): fixed points = the line through 0."""
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    v, q = basis[:, 0], basis[:, 1:]
    a = np.outer(v, v) + lam_other * q @ q.T
    b = np.zeros((6, 4))
    b[:, 0] = 0.2 * v + 0.1 * q[:, 0]  # relevant stream: moves along the line
    b[:, 1] = irrelevant_in_selection * v + 0.2 * q[:, 1]  # irrelevant stream: off the line
    a_t, b_t = torch.as_tensor(a), torch.as_tensor(b)
    return (lambda u, h: h @ a_t.T + u @ b_t.T), v


def test_line_attractor_is_found_along_a_continuous_line_of_fixed_points():
    f, v = _line_map()
    starts = torch.as_tensor(np.linspace(-2, 2, 40)[:, None] * v + 0.05 * np.random.default_rng(2).normal(size=(40, 6)))
    fps = find_fixed_points(f, starts, torch.zeros(4, dtype=DT), hidden_size=6, input_size=4)
    la = line_attractor(fps, relevant=0, irrelevant=1)
    assert la.n_points >= 20 and la.line_fraction > 0.999 and la.eig_near_one == 1.0
    assert la.mode_alignment > 0.999 and abs(la.relevant_gain - 0.2) < 1e-8 and la.irrelevant_gain < 1e-8
    assert la.is_line
    # swapping the streams: the cued one no longer moves along the line
    assert not line_attractor(fps, relevant=1, irrelevant=0).is_line


def test_isolated_points_are_not_a_line_attractor():
    fps = find_fixed_points(lambda u, h: 0.5 * h + 0 * u[:, :1], torch.randn(16, 6, dtype=DT), hidden_size=6,
                            input_size=4)
    la = line_attractor(fps, relevant=0, irrelevant=1)
    assert la.n_points == 1 and not la.is_line


def test_oscillation_frequency_finds_the_frequency_of_a_noisy_sinusoid():
    rng = np.random.default_rng(3)
    t = np.arange(1000)
    for omega in (0.1, 0.37, 2.9):
        y = 0.8 * np.sin(omega * t + 0.4) + 0.3 + 0.1 * rng.normal(size=t.size)
        assert abs(oscillation_frequency(y) - omega) < 1e-3 * omega


def test_line_tangents_follow_a_curved_line_through_noise():
    rng = np.random.default_rng(4)
    radius, s = 3.0, np.sort(rng.uniform(-2.0, 2.0, 300))
    states = np.zeros((300, 5))
    states[:, 0], states[:, 1] = radius * np.sin(s / radius), radius * np.cos(s / radius)
    noisy = states + 0.01 * rng.normal(size=states.shape)
    tangents, frac = line_tangents(noisy, 30)
    exact = np.stack([np.cos(s / radius), -np.sin(s / radius)], axis=1)
    cos = np.abs((tangents[:, :2] * exact).sum(1))
    assert np.median(cos) > 0.999 and cos.min() > 0.98 and frac > 0.9


def _points_of(a: np.ndarray, b: np.ndarray, starts: np.ndarray):
    """The given states, linearised under h' = A h + B u (no search: every start is kept as a point)."""
    a_t, b_t = torch.as_tensor(a), torch.as_tensor(b)
    return find_fixed_points(lambda u, h: h @ a_t.T + u @ b_t.T, torch.as_tensor(starts),
                             torch.zeros(b.shape[1], dtype=DT), keep_unconverged=True, adam_steps=0, max_iter=0,
                             merge=False, dedup_tol=1e-9, outlier_scale=None, hidden_size=a.shape[0],
                             input_size=b.shape[1])  # fmt: skip


def test_line_mode_is_the_mode_along_the_line_not_the_eigenvalue_nearest_one():
    # eigenvalue 0.995 along the line v, an exact 1 across it (q1): the mode nearest 1 is the wrong one
    rng = np.random.default_rng(5)
    basis, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    v, q = basis[:, 0], basis[:, 1:]
    a = 0.995 * np.outer(v, v) + np.outer(q[:, 0], q[:, 0]) + 0.5 * q[:, 1:] @ q[:, 1:].T
    b = np.zeros((6, 4))
    b[:, 0], b[:, 1] = 0.2 * v, 0.2 * q[:, 1]
    fps = _points_of(a, b, np.linspace(-2, 2, 40)[:, None] * v + 1e-3 * rng.normal(size=(40, 6)))
    la = line_attractor(fps, relevant=0, irrelevant=1)
    assert la.n_points == 40 and la.mode_alignment > 0.999 and abs(la.line_eigenvalue - 0.005) < 1e-9
    assert abs(la.relevant_gain - 0.2) < 1e-8 and la.irrelevant_gain < 1e-8 and la.is_line
    # the same line leaking 5% per step is not a line attractor
    leaky = _points_of(a - 0.045 * np.outer(v, v), b, fps.states)
    la = line_attractor(leaky, relevant=0, irrelevant=1)
    assert la.mode_alignment > 0.999 and abs(la.line_eigenvalue - 0.05) < 1e-9 and la.eig_near_one == 0.0
    assert not la.is_line
    # its drift: the speed at each point over the step one unit of the cued stream makes (0.2)
    speed = np.linalg.norm(fps.states @ (a - 0.045 * np.outer(v, v) - np.eye(6)).T, axis=1)
    assert abs(la.drift - np.median(speed / 0.2)) < 1e-9 and la.drift > 0.1


def test_a_chain_of_alternating_points_is_slow_but_fails_the_eigenvalue_criterion():
    # x' = x + eps sin(k x) + 0.2 u_0, y' = 0.5 y: roots x = m pi / k with lambda - 1 = +-eps k = +-0.05
    eps, k = 0.005, 10.0

    def f(u, h):
        x, y = h[..., :1], h[..., 1:]
        return torch.cat([x + eps * torch.sin(k * x) + 0.2 * u[..., :1], 0.5 * y + 0.2 * u[..., 1:2]], dim=-1)

    starts = torch.stack([torch.linspace(-2, 2, 200, dtype=DT), torch.zeros(200, dtype=DT)], dim=1)
    fps = find_fixed_points(f, starts, torch.zeros(2, dtype=DT), hidden_size=2, input_size=2)
    la = line_attractor(fps, relevant=0, irrelevant=1)
    assert la.n_points >= 10 and abs(la.line_eigenvalue - eps * k) < 1e-6 and la.eig_near_one == 0.0 and not la.is_line
    assert la.drift < 1e-8 and abs(la.relevant_gain - 0.2) < 1e-8
