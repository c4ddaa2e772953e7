"""How well can the chaotic-RNN rates be inferred from the spikes by an observer that knows the network?

Measured figures, with their protocol: ``docs/benchmarks.md``.

For each validation trial of a ``datasets.chaotic_rnn`` file this script finds the maximum a posteriori
initial state under the *true* generative model (the network weights are rebuilt from the file's seed):

.. math::

    \\hat x_0 = \\arg\\min_{x_0}\\ \\sum_{t, i} \\big(\\lambda_{t,i}(x_0) - n_{t,i} \\log \\lambda_{t,i}(x_0)\\big)
    + \\frac{\\lVert x_0 \\rVert^2}{2 \\sigma_0^2},

where :math:`\\lambda(x_0)` are the expected counts along the RK4 trajectory from :math:`x_0` (the
generator's own integrator) and :math:`\\sigma_0` is the file's ``x0_std``. The objective is minimized
with L-BFGS from the prior mean and from ``--restarts - 1`` random starts (chaotic trajectories give
it many local minima), keeping each trial's best. It prints the rate R2 of the resulting rates against
the truth, overall, by 20-bin segment and for the first bins: a reference for what LFADS, which must
also learn the dynamics, can reach. Early bins are limited by the data, not by the model: the random
initial state's off-attractor part decays with the network's time constant before many spikes arrive.

Usage::

    python -m datasets.chaotic_rnn --n-conditions 400 --out data/chaotic_rnn.h5
    python -m benchmarks.chaotic_rnn_ideal_observer data/chaotic_rnn.h5 --restarts 3
"""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np
import torch

from datasets import rk4_step
from datasets.chaotic_rnn import make_chaotic_rnn_weights
from lfads.metrics import rate_r2


def expected_counts(x0: torch.Tensor, coupling: torch.Tensor, spec: dict, n_bins: int) -> torch.Tensor:
    """Expected counts per bin ``(trials, n_bins, units)`` along the RK4 trajectories from ``x0``
    ``(trials, units)``."""
    tau, h, substeps = spec["tau"], spec["bin_size"] / spec["substeps"], spec["substeps"]

    def derivative(x: torch.Tensor) -> torch.Tensor:
        return (-x + torch.tanh(x) @ coupling) / tau

    states, x = [x0], x0
    for _ in range(n_bins - 1):
        for _ in range(substeps):
            x = rk4_step(derivative, x, h)
        states.append(x)
    return spec["max_rate"] * (torch.tanh(torch.stack(states, 1)) + 1.0) / 2.0 * spec["bin_size"]


def map_initial_states(counts: torch.Tensor, coupling: torch.Tensor, spec: dict, restarts: int, seed: int = 0):
    """Per-trial MAP initial states (best of ``restarts`` L-BFGS runs) and their expected counts."""
    n, n_bins, n_units = counts.shape
    x0_std = spec["x0_std"]

    def objective(x0: torch.Tensor) -> torch.Tensor:  # (trials,)
        lam = expected_counts(x0, coupling, spec, n_bins).clamp_min(1e-12)
        return (lam - counts * torch.log(lam)).sum((1, 2)) + 0.5 * (x0**2).sum(1) / x0_std**2

    gen = torch.Generator().manual_seed(seed)
    best = torch.zeros(n, n_units, dtype=torch.float64)
    best_value = torch.full((n,), float("inf"), dtype=torch.float64)
    for restart in range(restarts):
        start = torch.zeros(n, n_units, dtype=torch.float64)
        if restart > 0:
            start = x0_std * torch.randn(n, n_units, generator=gen, dtype=torch.float64)
        x0 = start.requires_grad_()
        opt = torch.optim.LBFGS([x0], lr=1.0, max_iter=300, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-7, tolerance_change=1e-10)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective(x0).sum()  # trials are independent: the sum's gradient is per-trial
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            value = objective(x0)
            better = value < best_value
            best[better], best_value[better] = x0[better], value[better]
        print(f"  start {restart + 1}/{restarts}: {int(better.sum())} trials improved", flush=True)
    with torch.no_grad():
        return best, expected_counts(best, coupling, spec, n_bins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="an HDF5 file written by datasets.chaotic_rnn (without input pulses)")
    parser.add_argument("--restarts", type=int, default=3, help="L-BFGS starts per trial (the first at x0 = 0)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with h5py.File(args.data, "r") as f:
        attrs = dict(f.attrs)
        if bool(attrs.get("input_pulse", False)):
            raise SystemExit(f"{args.data}: input-pulse data are not supported (the pulses are not inferred here).")
        counts = torch.tensor(f["valid_recon_data"][()], dtype=torch.float64)
        truth = f["valid_truth"][()]
    spec = {k: float(attrs[k]) for k in ("tau", "bin_size", "max_rate", "x0_std", "gain")}
    spec["substeps"] = int(attrs["substeps"])
    recurrent, _ = make_chaotic_rnn_weights(int(attrs["n_units"]), int(attrs["seed"]), spec["gain"], spec["tau"],
                                            bool(attrs["require_chaos"]))
    coupling = torch.tensor(spec["gain"] * recurrent.T, dtype=torch.float64)
    t0 = time.perf_counter()
    _, lam = map_initial_states(counts, coupling, spec, args.restarts)
    rates = lam.numpy() / spec["bin_size"]  # spikes/s, the units of the truth
    n_bins = rates.shape[1]
    segments = [rate_r2(rates[:, a:a + 20], truth[:, a:a + 20]) for a in range(0, n_bins, 20)]
    first_bins = [rate_r2(rates[:, a:a + 1], truth[:, a:a + 1]) for a in range(10)]
    print(f"MAP initial state under the true network, {counts.shape[0]} validation trials, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"rate R2 {rate_r2(rates, truth):.4f}; by 20-bin segment {np.round(segments, 3).tolist()}")
    print(f"bins 0-9: {np.round(first_bins, 2).tolist()}")


if __name__ == "__main__":
    main()
