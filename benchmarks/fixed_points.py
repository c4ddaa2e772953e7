"""Benchmark of the fixed-point finder (lfads.analysis) against plain Adam on the speed q.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Two networks:

(a) ``flipflop``: a 64-unit GRU trained on the 3-bit flip-flop task (trained here, seeded; the
    weights are cached in ``benchmarks/.cache/``, which git ignores). Ground truth: each of the 8
    memories is set with a pulse and the map is run for 20000 steps with zero input; the
    converged states are the 8 attractors (a seed whose network holds a memory only as a slow
    transient is skipped). The checks: the finder returns a stable fixed point within 1e-6 of
    each simulated attractor, and >= 95% of the initial states converge.
(b) ``random``: a 128-unit GRU with random weights and strong recurrence (all recurrent weights
    ~ N(0, (2/sqrt(128))^2), torch defaults elsewhere), with the same convergence check. With these
    weights the update gate keeps the map contracting: a single stable fixed point. ``--gain 3``
    gives a chaotic network with hundreds of slow points, a much harder stress test.
(c) ``lstm``: ``--lstm-seeds`` 64-unit LSTMs trained on the 3-bit flip-flop with the universality protocol
    (``lfads.population.universality.TRAINING``). The LSTM's normal equations have a diagonal block
    (:mod:`lfads.analysis.normal_equations`); the search with that block system is timed against the same
    search on the dense :math:`J^T J`, in the same process from the same starts, and their fixed points
    are compared.

Initial states: ``--n-init`` (1024) states sampled from the network's trajectories plus
Gaussian noise (``--noise``). The finder runs with its defaults. The baseline is plain Adam on
q (the approach of the widely used public finder: a fixed budget of Adam iterations), run in the
same process with the same closed-form gradient, twice: for ``--baseline-iters`` (5000)
iterations, and for the finder's wall time; its q quantiles and the time ratio are printed.

Usage::

    python -m benchmarks.fixed_points                 # both networks, 1 thread
    python -m benchmarks.fixed_points --which random --threads 2
    python -m benchmarks.fixed_points --which lstm --lstm-seeds 8
    python -m benchmarks.fixed_points --retrain       # ignore the cached flip-flop weights
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfads.analysis.fixed_points import (
    FixedPoints,
    find_fixed_points,
    sample_initial_states,
)
from lfads.analysis.jacobians import as_dynamics
from lfads.population.cells import CellDynamics
from lfads.population.single import FlipFlopRNN, train_flipflop_rnn
from lfads.population.tasks import generate_flipflop_data

CACHE = Path(__file__).resolve().parent / ".cache"
QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)


def _cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    ignore = CACHE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return CACHE


def _fmt_q(q: np.ndarray) -> str:
    vals = np.quantile(q, QUANTILES)
    return "  ".join(f"p{int(100 * p)}={v:.1e}" for p, v in zip(QUANTILES, vals))


PATTERNS = torch.tensor([[a, b, c] for a in (-1.0, 1.0) for b in (-1.0, 1.0) for c in (-1.0, 1.0)])


def find_true_attractors(model: FlipFlopRNN, hold_steps: int = 20000) -> torch.Tensor:
    """Ground truth by simulation: set each of the 8 memories with a pulse, then run the map with zero input.

    Returns the ``(k, H)`` final states (float64) of the memories whose state has converged
    (``q < 1e-20``) with the readout still showing the stored pattern (every |output| > 0.5).
    """
    dyn = as_dynamics(model.gru)
    x = torch.zeros(8, 10, 3)
    x[:, 5] = PATTERNS
    with torch.no_grad():
        _, states = model(x)
        h = states[:, -1].to(torch.float64)
        u = torch.zeros(8, 3, dtype=torch.float64)
        for _ in range(hold_steps):
            h = dyn.step(h, u)
        r = dyn.step(h, u) - h
        out = model.readout(h.float())
    ok = (0.5 * (r * r).sum(1) < 1e-20) & (torch.sign(out) == PATTERNS).all(1) & (out.abs() > 0.5).all(1)
    return h[ok]


def get_flipflop_model(hidden: int, seed: int, steps: int, retrain: bool) -> tuple[FlipFlopRNN, int]:
    """Train (or load from the cache) a flip-flop GRU whose 8 memories are true attractors.

    Seeds ``seed, seed + 1, ...`` are tried until :func:`find_true_attractors` confirms all 8
    (networks trained on finite trials sometimes hold a memory as a slow transient instead).
    Prints the training time. Returns the model and the seed used.
    """
    for s in range(seed, seed + 10):
        path = _cache_dir() / f"flipflop_gru{hidden}_seed{s}_steps{steps}.pt"
        model = FlipFlopRNN(3, hidden)
        if path.exists() and not retrain:
            model.load_state_dict(torch.load(path, weights_only=True))
            model.eval()
            print(f"[flipflop] loaded cached weights {path.name}")
        else:
            t0 = time.perf_counter()
            model, losses = train_flipflop_rnn(
                hidden_size=hidden, n_steps=steps, batch_size=32, n_time=64, lr=2e-2, pulse_prob=0.03, seed=s
            )
            print(f"[flipflop] trained {hidden}-unit GRU (seed {s}): {steps} Adam steps in "
                  f"{time.perf_counter() - t0:.1f} s, final loss {np.mean(losses[-20:]):.4f}")
            torch.save(model.state_dict(), path)
        n_true = find_true_attractors(model).shape[0]
        print(f"[flipflop] ground truth by simulation (20000 steps per memory): {n_true}/8 memories are attractors")
        if n_true == 8:
            return model, s
    raise RuntimeError("no seed in 10 gave a flip-flop network with 8 attractors; change --seed or --ff-steps")


def random_gru(hidden: int, inputs: int, gain: float, seed: int) -> nn.GRUCell:
    """A GRU cell with recurrent weights ~ N(0, (gain / sqrt(hidden))^2), torch defaults elsewhere."""
    torch.manual_seed(seed)
    cell = nn.GRUCell(inputs, hidden)
    with torch.no_grad():
        cell.weight_hh.normal_(0.0, gain / math.sqrt(hidden))
    return cell


def run_baseline(
    cell: nn.Module, h0: torch.Tensor, iters: int | None, seconds: float | None, lr: float
) -> tuple[np.ndarray, int, float]:
    """Plain Adam on q (closed-form gradient, float64) for a number of iterations or a wall-time budget."""
    dyn = as_dynamics(cell)
    x = h0.clone().to(torch.float64)
    u = torch.zeros(x.shape[0], dyn.input_size, dtype=torch.float64)
    opt = torch.optim.Adam([x], lr=lr)
    t0 = time.perf_counter()
    n = 0
    with torch.no_grad():
        while True:
            if iters is not None and n >= iters:
                break
            if seconds is not None and time.perf_counter() - t0 >= seconds:
                break
            _, q, grad = dyn.speed_and_gradient(x, u)
            x.grad = grad
            opt.step()
            n += 1
        _, q, _ = dyn.speed_and_gradient(x, u)
    return q.numpy(), n, time.perf_counter() - t0


def report_finder(name: str, fps: FixedPoints, wall: float, n_init: int) -> None:
    """Print the finder statistics."""
    kinds = fps.candidate_kind
    conv = float(np.mean(kinds != "unconverged"))
    print(f"[{name}] finder wall time: {wall:.2f} s for {n_init} initial states ({fps.hidden_size} units)")
    it = fps.candidate_iterations
    print(f"[{name}] second-order iterations per point: median {np.median(it):.0f}, p90 {np.quantile(it, 0.9):.0f}, "
          f"max {it.max()} (+{int(fps.settings['adam_steps'])} Adam steps)")
    print(f"[{name}] q at the end (all initial states): {_fmt_q(fps.candidate_q)}")
    counts = {k: int((kinds == k).sum()) for k in ("fixed", "slow", "unconverged")}
    print(f"[{name}] initial states by kind: {counts}; converged {100 * conv:.1f}%")
    stab = {s: int((fps.stability == s).sum()) for s in ("stable", "saddle", "unstable")}
    kinds_u = {k: int((fps.kind == k).sum()) for k in ("fixed", "slow")}
    print(f"[{name}] unique points: {len(fps)} {kinds_u}; by stability {stab}; "
          f"with marginal directions: {int((fps.n_marginal > 0).sum())}")
    print(f"[{name}] {'PASS' if conv >= 0.95 else 'FAIL'}: converged fraction {conv:.3f} (>= 0.95 required)")


def report_baseline(
    name: str, fps: FixedPoints, wall: float, cell: nn.Module, h0: torch.Tensor, args: argparse.Namespace
) -> None:
    """Run and print the plain-Adam baseline."""
    if args.baseline_iters <= 0:
        return
    q_b, n_b, t_b = run_baseline(cell, h0, args.baseline_iters, None, args.baseline_lr)
    print(f"[{name}] baseline Adam (lr {args.baseline_lr}) {n_b} iterations: {t_b:.2f} s; q: {_fmt_q(q_b)}; "
          f"q < 1e-10: {100 * np.mean(q_b < 1e-10):.1f}%")
    print(f"[{name}] time ratio baseline/finder: {t_b / wall:.1f}x; median q ratio baseline/finder: "
          f"{np.median(q_b) / max(np.median(fps.candidate_q), 1e-300):.1e}")
    q_s, n_s, t_s = run_baseline(cell, h0, None, wall, args.baseline_lr)
    print(f"[{name}] baseline Adam with the finder's wall time ({t_s:.2f} s, {n_s} iterations): q: {_fmt_q(q_s)}; "
          f"q < 1e-10: {100 * np.mean(q_s < 1e-10):.1f}%")


def bench_flipflop(args: argparse.Namespace) -> None:
    model, seed = get_flipflop_model(args.ff_hidden, args.seed, args.ff_steps, args.retrain)
    truth = find_true_attractors(model).numpy()
    gen = torch.Generator().manual_seed(seed + 1)
    data = generate_flipflop_data(128, 200, 3, 0.03, generator=gen)
    with torch.no_grad():
        _, states = model(data.inputs)
    init = sample_initial_states(states, args.n_init, args.noise, seed=args.seed)
    t0 = time.perf_counter()
    fps = find_fixed_points(model.gru, init.states, progress=args.progress)
    wall = time.perf_counter() - t0
    report_finder("flipflop", fps, wall, args.n_init)
    stable = fps.select(fps.stability == "stable")
    with torch.no_grad():
        out = model.readout(torch.as_tensor(stable.states, dtype=torch.float32))
    patterns = {tuple(int(v) for v in torch.sign(o)) for o in out if bool((o.abs() > 0.5).all())}
    dist = np.full(8, np.inf)
    if len(stable):
        dist = np.linalg.norm(stable.states[:, None, :] - truth[None, :, :], axis=2).min(axis=0)
    found = int((dist < 1e-6).sum())
    print(f"[flipflop] stable points: {len(stable)}, max|lambda| among them {stable.max_abs_eigenvalue.max():.4f}; "
          f"memory patterns covered by a stable point: {len(patterns)}/8; simulated attractors matched within 1e-6: "
          f"{found}/8 (largest distance {dist.max():.1e}) -> {'PASS' if found == 8 else 'FAIL'}")
    limit = 5.0
    print(f"[flipflop] wall time {wall:.2f} s ({'within' if wall < limit else 'over'} the {limit:.0f} s target)")
    report_baseline("flipflop", fps, wall, model.gru, init.states, args)


def bench_random(args: argparse.Namespace) -> None:
    cell = random_gru(args.rand_hidden, 3, args.gain, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    h = torch.rand(64, args.rand_hidden, generator=gen) * 2 - 1
    u = torch.zeros(64, 3)
    traj = []
    with torch.no_grad():
        for _ in range(200):
            h = cell(u, h)
            traj.append(h)
    states = torch.stack(traj, dim=1)
    init = sample_initial_states(states, args.n_init, args.noise, seed=args.seed)
    t0 = time.perf_counter()
    fps = find_fixed_points(cell, init.states, progress=args.progress)
    wall = time.perf_counter() - t0
    report_finder("random", fps, wall, args.n_init)
    limit = 20.0
    print(f"[random] wall time {wall:.2f} s ({'within' if wall < limit else 'over'} the {limit:.0f} s target)")
    report_baseline("random", fps, wall, cell, init.states, args)


class DenseCellDynamics(CellDynamics):
    """A cell's dynamics with the dense normal equations of its Jacobians (the baseline of ``lstm``)."""

    normal_equations = None


def bench_lstm(args: argparse.Namespace) -> None:
    from lfads.population.population import run_population
    from lfads.population.universality import TRAINING

    t0 = time.perf_counter()
    pop = run_population("flipflop", ["lstm"], seeds=args.lstm_seeds, units=64, find_points=False, graphs=False,
                         **TRAINING["flipflop"])
    fit = pop.fits["lstm"]
    print(f"[lstm] trained {args.lstm_seeds} networks in {time.perf_counter() - t0:.1f} s "
          f"(reached the loss: {int(fit.reached.sum())})")
    data = pop.task.condition_sample("zero", 32, torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        _, states = fit.model(data.inputs)
    walls = {"block": 0.0, "dense": 0.0}
    for n in range(args.lstm_seeds):
        init = sample_initial_states(states[n], args.n_init, args.noise, seed=args.seed)
        cell = fit.model.cell(n)
        found = {}
        for name, dyn in (("block", cell.dynamics()), ("dense", DenseCellDynamics("lstm", cell.parameter_dict()))):
            t0 = time.perf_counter()
            found[name] = find_fixed_points(dyn, init.states).fixed()
            walls[name] += time.perf_counter() - t0
        a, b = found["block"], found["dense"]
        same = len(a) == len(b) and np.allclose(np.sort(a.states, 0), np.sort(b.states, 0), atol=1e-8)
        print(f"[lstm] network {n}: {len(a)} fixed points (block) / {len(b)} (dense): "
              f"{'the same' if same else 'DIFFERENT'}")
    print(f"[lstm] search time, {args.lstm_seeds} networks: block system {walls['block']:.1f} s, dense "
          f"{walls['dense']:.1f} s, ratio dense / block {walls['dense'] / walls['block']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--which", nargs="+", default=["flipflop", "random", "lstm"],
                        choices=["flipflop", "random", "lstm"])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--n-init", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=0.1, help="std of the noise added to sampled states")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ff-hidden", type=int, default=64)
    parser.add_argument("--ff-steps", type=int, default=300)
    parser.add_argument("--rand-hidden", type=int, default=128)
    parser.add_argument("--gain", type=float, default=2.0, help="recurrent weight std times sqrt(hidden)")
    parser.add_argument("--baseline-iters", type=int, default=5000, help="0 skips the Adam baseline")
    parser.add_argument("--baseline-lr", type=float, default=1e-2)
    parser.add_argument("--lstm-seeds", type=int, default=2, help="LSTMs trained for the lstm benchmark")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads used: {torch.get_num_threads()}")
    if "flipflop" in args.which:
        bench_flipflop(args)
    if "random" in args.which:
        bench_random(args)
    if "lstm" in args.which:
        bench_lstm(args)


if __name__ == "__main__":
    main()
