"""Each fixed point is counted once: a trained flip-flop GRU (3 bits and 64 units, 4 bits and 128 units) has
exactly one stable point per attractor.

Ground truth by simulation: every state the network visits on test trials (and every memory pattern) is
iterated for a long time with the inputs off and polished by Newton's method; the distinct end points
are the attractors the network holds. A few states may still creep along a slow region without a root
(a memory held only transiently); they count towards no attractor.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lfads.analysis import find_fixed_points, sample_initial_states
from lfads.analysis.jacobians import as_dynamics
from lfads.analysis.point_merging import merge_same_points, polish_newton
from lfads.population.single import train_flipflop_rnn
from lfads.population.tasks import generate_flipflop_data

torch.set_num_threads(1)


def _patterns(n_bits: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=n_bits)))


def _simulate_to_roots(dyn, starts: np.ndarray, chunk: int = 60000) -> tuple[np.ndarray, np.ndarray]:
    """The roots ``(n, H)`` that ``starts`` ``(n, H)`` reach under the map (then polished onto the root), and
    ``(n,)`` whether each start reached one (where not, the state the map left it at).

    The map is iterated in chunks of ``chunk`` steps (at most ten) until Newton's method takes every state
    onto a root: in flat basins the states creep towards their attractor for hundreds of thousands of steps.
    A state still creeping after that, along a slow region without a root (the ghost of a memory the
    network holds only transiently), reached none.
    """
    h = torch.as_tensor(starts, dtype=torch.float64)
    u = torch.zeros(h.shape[0], dyn.input_size, dtype=torch.float64)
    for _ in range(10):
        with torch.no_grad():
            for _ in range(chunk):
                h = dyn.step(h, u)
        ends, q, _ = polish_newton(dyn, h.numpy(), u.numpy(), steps=20)
        if q.max() < 1e-20:
            break
    settled = q < 1e-20
    return np.where(settled[:, None], ends, h.numpy()), settled


def _distinct(points: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    distinct: list[np.ndarray] = []
    for e in points:
        if not any(np.linalg.norm(e - d) < tol for d in distinct):
            distinct.append(e)
    return np.array(distinct)


# (bits, units, training steps, seed, visited states simulated): the 3-bit network trains in about 10 s, the
# 4-bit one in about 20 s
NETWORKS = {"3bit_64units": (3, 64, 250, 1, 128), "4bit_128units": (4, 128, 400, 1, 32)}


@pytest.fixture(scope="module", params=list(NETWORKS))
def flipflop(request):
    n_bits, units, steps, seed, n_visited = NETWORKS[request.param]
    model, losses = train_flipflop_rnn(
        hidden_size=units, n_bits=n_bits, n_steps=steps, batch_size=32, n_time=96, lr=2e-2 if n_bits == 3 else 1e-2,
        pulse_prob=0.03, carry_state=True, seed=seed,
    )  # fmt: skip
    assert np.mean(losses[-20:]) < 0.03
    data = generate_flipflop_data(32, 200, n_bits, 0.03, generator=torch.Generator().manual_seed(1))
    patterns = _patterns(n_bits)
    with torch.no_grad():
        _, states = model(data.inputs)
        x = torch.zeros(len(patterns), 10, n_bits)
        x[:, 5] = patterns
        _, memory_states = model(x)
    return model, states, memory_states[:, -1].double().numpy(), n_visited


@pytest.mark.slow
def test_flipflop_gru_has_one_stable_point_per_attractor_and_no_near_duplicates(flipflop):
    model, states, memories, n_visited = flipflop
    dyn = as_dynamics(model.gru)
    init = sample_initial_states(states, 512, noise_std=0.05, seed=0)
    fps = find_fixed_points(model.gru, init.states)
    stable = fps.select((fps.stability == "stable") & (fps.kind == "fixed"))

    visited = sample_initial_states(states, n_visited, seed=1).states.numpy()
    ends, settled = _simulate_to_roots(dyn, np.concatenate([visited, memories]))
    assert settled.mean() >= 0.85, f"{int((~settled).sum())} of {settled.size} simulated states did not settle"
    truth = _distinct(ends[settled])
    held = _distinct(ends[len(visited):][settled[len(visited):]])
    with torch.no_grad():
        signs = torch.sign(model.readout(torch.tensor(held, dtype=torch.float32)))
    assert len({tuple(s.tolist()) for s in signs}) == len(held) >= 2 ** (memories.shape[0].bit_length() - 2)

    # one stable point per attractor, each on its attractor
    dist = np.linalg.norm(stable.states[:, None] - truth[None], axis=2)
    on_truth = dist.min(axis=1) < 1e-8
    assert sorted(dist.argmin(axis=1)[on_truth].tolist()) == list(range(len(truth))), fps.summary(max_rows=0)
    # and no extra ones: a stable point no settled state reached is the one a still-creeping state is nearest
    creeping = ends[~settled]
    nearest = np.linalg.norm(creeping[:, None] - stable.states[None], axis=2).argmin(axis=1)
    assert set(np.flatnonzero(~on_truth).tolist()) <= set(nearest.tolist()), fps.summary(max_rows=0)
    # no near-duplicates anywhere: points are further apart than the merge tolerance
    gaps = np.linalg.norm(fps.states[:, None] - fps.states[None], axis=2) + np.eye(len(fps)) * 1e9
    assert gaps.min() > fps.settings["merge_atol"]
    assert "merged" in fps.summary() and fps.settings["n_distinct"] > len(fps)

    # the topology graph: every departure from an index-1 saddle ends at a stable point, and at least
    # one saddle separates two different attractors
    from lfads.compare.api import exact_points
    from lfads.compare.topology import build_topology

    exact = exact_points(fps)
    topo = build_topology(model.gru, exact)
    saddle_ends = [o for o in topo.outcomes if exact.n_unstable[o["source"]] == 1]
    assert saddle_ends and all(o["outcome"] == "fixed_point" for o in saddle_ends)
    assert all(exact.stability[o["target"]] == "stable" for o in saddle_ends)
    by_saddle = {}
    for o in saddle_ends:
        by_saddle.setdefault((o["source"], o["mode"]), set()).add(o["target"])
    assert any(len(t) == 2 for t in by_saddle.values())

    # without the merge the same search reports many near-duplicate stable points
    raw = find_fixed_points(model.gru, init.states, merge=False)
    assert int((raw.stability == "stable").sum()) > len(truth)


def test_merge_polishes_loose_points_onto_the_root_and_keeps_exact_line_points_apart():
    # h -> 0.999 h in 1-D: points with q below fixed_tol lie up to 1.4e-2 from the only root, 0
    slow = as_dynamics(lambda u, h: 0.999 * h, hidden_size=1, input_size=0)
    loose = np.array([[1.0e-2], [-7.0e-3], [4.0e-3]])
    q = 0.5 * (1e-3 * loose[:, 0]) ** 2
    assert (q < 1e-10).all()
    merged = merge_same_points(slow, loose, np.zeros((3, 0)), q, scale=1.0)
    assert merged.states.shape == (1, 1) and abs(merged.states[0, 0]) < 1e-12
    np.testing.assert_array_equal(merged.group, [0, 0, 0])

    # a line attractor: exact fixed points 0.1 apart are distinct, 1e-4 apart are one
    line = as_dynamics(lambda u, h: torch.stack([h[:, 0], 0.5 * h[:, 1]], dim=1), hidden_size=2, input_size=0)
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.1 + 1e-4, 0.0], [0.5, 0.0]])
    merged = merge_same_points(line, pts, np.zeros((4, 0)), np.zeros(4), scale=1.0)
    assert len(merged.states) == 3 and merged.reasons["distance"] == 1
    assert merged.group[1] == merged.group[2]


def test_loose_points_on_a_slow_manifold_without_a_root_are_one_slow_point_also_for_maps_without_inputs():
    # h -> h + 1e-6 (1-D, no input): q = 5e-13 everywhere, below fixed_tol, and there is no root
    drift = as_dynamics(lambda u, h: h + 1e-6, hidden_size=1, input_size=0)
    pts = np.array([[0.0], [0.3], [0.6]])
    merged = merge_same_points(drift, pts, np.zeros((3, 0)), np.full(3, 5e-13), scale=1.0)
    assert len(merged.states) == 1 and not merged.exact.any()
    assert merged.reasons["slow_manifold"] >= 2
    fps = find_fixed_points(drift, torch.tensor(pts), hidden_size=1, input_size=0)
    assert set(fps.kind) == {"slow"} and len(fps) == 1
