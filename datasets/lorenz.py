r"""Synthetic spiking data driven by the Lorenz system, written in the LFADS HDF5 layout.

Latent dynamics (:math:`\sigma = 10, \rho = 28, \beta = 8/3`):

.. math::

    \dot x = \sigma (y - x), \qquad \dot y = x (\rho - z) - y, \qquad \dot z = x y - \beta z,

integrated with fixed-step fourth-order Runge-Kutta (step ``dt``, default 0.005 Lorenz time units,
``steps_per_bin`` steps per time bin, default 2, so 100 bins span 1 Lorenz time unit, a little more
than one loop around a wing of the attractor). Each condition starts from a random point, is run for
``burn_in_steps`` steps (discarded) so that it lies on the attractor, and is then recorded.

Each of the three latent dimensions is z-scored over all conditions and bins, giving :math:`z_t`.
Neuron :math:`i` fires with log-rate

.. math::

    \log \lambda_{t,i} = \log(r_0 \, \Delta) + w_i^\top z_t,

where :math:`r_0` is ``base_rate`` (spikes/s), :math:`\Delta` the bin width (s), and the readout
:math:`w_i \in \mathbb{R}^3` is a random Gaussian vector rescaled so that the standard deviation of
:math:`w_i^\top z_t` over all bins equals ``log_rate_std``. With the defaults
(:math:`r_0 = 8` spikes/s, ``log_rate_std`` = 0.8) the 1st to 99th percentiles of the rates are about
1.3 and 47 spikes/s (mean about 11 spikes/s); a few bins of the most modulated neurons peak higher.
Spike counts are Poisson with mean :math:`\lambda_{t,i}`; all trials of a condition share the latent
trajectory and differ only in their Poisson draws.

The first ``n_heldin`` neurons are held in (``encod_data``); the last ``n_heldout`` are held out
(only in ``recon_data``). ``n_forward`` extra bins after the ``n_time`` observed ones appear only in
``recon_data`` (forward prediction).

Defaults: 50 conditions x 10 trials = 500 trials, split per condition 8 train / 2 valid
(400 train, 100 valid, no test split), 100 bins of 10 ms, 30 held-in + 10 held-out neurons.

Run ``python -m datasets.lorenz --out data/lorenz.h5`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # executed as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import (  # noqa: E402
    assemble_layout,
    resolve_parameters,
    rk4_step,
    split_trials_by_condition,
    write_from_command,
)
from lfads.data.hdf5 import save_h5_atomic  # noqa: E402

__all__ = ["generate_lorenz", "integrate_lorenz", "lorenz_derivative", "main", "write_lorenz"]

SIGMA = 10.0
RHO = 28.0
BETA = 8.0 / 3.0


def lorenz_derivative(state: np.ndarray) -> np.ndarray:
    r"""Lorenz vector field :math:`(\sigma (y - x),\ x(\rho - z) - y,\ x y - \beta z)`.

    Parameters
    ----------
    state : np.ndarray
        ``(..., 3)`` points :math:`(x, y, z)`.

    Returns
    -------
    np.ndarray
        ``(..., 3)`` time derivatives.
    """
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack([SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z], axis=-1)


def integrate_lorenz(initial: np.ndarray, n_steps: int, dt: float) -> np.ndarray:
    r"""Integrate the Lorenz system with fixed-step RK4.

    :math:`s_{k+1} = s_k + \tfrac{dt}{6}(k_1 + 2k_2 + 2k_3 + k_4)` with the classical stages.

    Parameters
    ----------
    initial : np.ndarray
        ``(batch, 3)`` initial states.
    n_steps : int
        Number of steps to take.
    dt : float
        Step size in Lorenz time units.

    Returns
    -------
    np.ndarray
        ``(batch, n_steps + 1, 3)`` trajectory including the initial state.
    """
    state = np.asarray(initial, dtype=np.float64)
    out = np.empty((state.shape[0], n_steps + 1, 3))
    out[:, 0] = state
    for k in range(n_steps):
        state = rk4_step(lorenz_derivative, state, dt)
        out[:, k + 1] = state
    return out


def generate_lorenz(
    n_conditions: int = 50,
    trials_per_condition: int = 10,
    n_time: int = 100,
    n_forward: int = 0,
    n_heldin: int = 30,
    n_heldout: int = 10,
    bin_size: float = 0.01,
    base_rate: float = 8.0,
    log_rate_std: float = 0.8,
    dt: float = 0.005,
    steps_per_bin: int = 2,
    burn_in_steps: int = 1000,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Generate Lorenz-driven Poisson spiking data in the LFADS HDF5 layout.

    Parameters
    ----------
    n_conditions : int
        Number of latent trajectories (initial conditions).
    trials_per_condition : int
        Poisson repeats of each trajectory.
    n_time : int
        Bins the encoders see.
    n_forward : int
        Extra forward-prediction bins, present only in ``recon_data`` / ``truth``.
    n_heldin, n_heldout : int
        Held-in and held-out neuron counts.
    bin_size : float
        Bin width in seconds.
    base_rate : float
        Rate in spikes/s at the latent mean (:math:`z = 0`).
    log_rate_std : float
        Standard deviation of each neuron's log-rate modulation over all bins.
    dt : float
        RK4 step in Lorenz time units.
    steps_per_bin : int
        RK4 steps per time bin.
    burn_in_steps : int
        RK4 steps discarded before recording so each condition starts on the attractor.
    valid_fraction, test_fraction : float
        Fraction of each condition's trials in the ``valid`` / ``test`` splits (test off at 0).
    seed : int
        Seed for every random choice (initial conditions, readout, spikes, split).

    Returns
    -------
    dict[str, np.ndarray]
        ``{split}_encod_data`` ``(n, n_time, n_heldin)``, ``{split}_recon_data`` and ``{split}_truth``
        ``(n, n_time + n_forward, n_heldin + n_heldout)`` (truth in spikes/s),
        ``{split}_latents`` ``(n, n_time + n_forward, 3)`` (z-scored), ``{split}_conditions`` and
        ``{split}_inds`` ``(n,)``, and the scalar ``conversion_factor`` = ``1 / bin_size``.
    """
    for name, value in {"n_conditions": n_conditions, "trials_per_condition": trials_per_condition,
                        "n_time": n_time, "n_heldin": n_heldin, "steps_per_bin": steps_per_bin}.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if n_forward < 0 or n_heldout < 0 or burn_in_steps < 0:
        raise ValueError("n_forward, n_heldout and burn_in_steps must be non-negative.")
    if bin_size <= 0 or base_rate <= 0 or dt <= 0:
        raise ValueError("bin_size, base_rate and dt must be positive.")

    rng_init, rng_readout, rng_spikes, rng_split = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    n_total_time = n_time + n_forward
    n_neurons = n_heldin + n_heldout

    initial = rng_init.normal(0.0, 8.0, size=(n_conditions, 3))  # around the attractor's centre
    initial[:, 2] += RHO - 1.0
    burned = integrate_lorenz(initial, burn_in_steps, dt)[:, -1]
    trajectory = integrate_lorenz(burned, (n_total_time - 1) * steps_per_bin, dt)[:, ::steps_per_bin]
    latents = (trajectory - trajectory.mean(axis=(0, 1))) / trajectory.std(axis=(0, 1))

    readout = rng_readout.normal(size=(3, n_neurons))
    modulation = latents.reshape(-1, 3) @ readout
    readout *= log_rate_std / modulation.std(axis=0)
    log_rates = np.log(base_rate * bin_size) + latents @ readout  # (conditions, time, neurons)
    expected_counts = np.exp(log_rates)

    conditions = np.repeat(np.arange(n_conditions), trials_per_condition)
    expected_trials = expected_counts[conditions]
    counts = rng_spikes.poisson(expected_trials)
    splits = split_trials_by_condition(conditions, valid_fraction, test_fraction, rng_split)
    return assemble_layout(
        counts=counts,
        truth=expected_trials / bin_size,
        splits=splits,
        n_heldin=n_heldin,
        n_enc_time=n_time,
        conversion_factor=1.0 / bin_size,
        extras={"conditions": conditions.astype(np.int64), "latents": latents[conditions].astype(np.float32)},
    )


def write_lorenz(path: str | Path, **kwargs: Any) -> Path:
    """Generate the Lorenz dataset and write it atomically to ``path``.

    Parameters
    ----------
    path : str or Path
        Output HDF5 file.
    **kwargs
        Passed to :func:`generate_lorenz`.

    Returns
    -------
    Path
        The written file. Root attributes: ``bin_size``, ``seed``, ``conversion_factor``,
        ``description`` and every generator parameter.
    """
    params = resolve_parameters(generate_lorenz, kwargs, "Lorenz dataset")
    arrays = generate_lorenz(**params)
    description = (
        "Lorenz-system latents (sigma=10, rho=28, beta=8/3, RK4) driving Poisson neurons with "
        f"log-rate = log(base_rate*bin_size) + W z; {params['n_conditions']} conditions x "
        f"{params['trials_per_condition']} trials, {params['n_time']} bins of {params['bin_size']} s "
        f"(+{params['n_forward']} forward), {params['n_heldin']} held-in + {params['n_heldout']} held-out neurons. "
        "truth is in spikes/s; truth / conversion_factor = expected counts per bin."
    )
    attrs = {"description": description, "conversion_factor": 1.0 / params["bin_size"], "generator": "datasets.lorenz"}
    attrs.update(params)
    return save_h5_atomic(path, arrays, attrs)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m datasets.lorenz --out FILE [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m datasets.lorenz")
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file that this generator did not write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-conditions", type=int, default=50)
    parser.add_argument("--trials-per-condition", type=int, default=10)
    parser.add_argument("--n-time", type=int, default=100, help="bins seen by the encoders")
    parser.add_argument("--forward", type=int, default=0, help="forward-prediction bins (recon only)")
    parser.add_argument("--heldin", type=int, default=30, help="held-in neurons")
    parser.add_argument("--heldout", type=int, default=10, help="held-out neurons (recon only)")
    parser.add_argument("--bin-size", type=float, default=0.01, help="seconds")
    parser.add_argument("--base-rate", type=float, default=8.0, help="spikes/s at the latent mean")
    parser.add_argument("--log-rate-std", type=float, default=0.8)
    parser.add_argument("--valid-fraction", type=float, default=0.2)
    parser.add_argument("--test-fraction", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = {
        "seed": args.seed,
        "n_conditions": args.n_conditions,
        "trials_per_condition": args.trials_per_condition,
        "n_time": args.n_time,
        "n_forward": args.forward,
        "n_heldin": args.heldin,
        "n_heldout": args.heldout,
        "bin_size": args.bin_size,
        "base_rate": args.base_rate,
        "log_rate_std": args.log_rate_std,
        "valid_fraction": args.valid_fraction,
        "test_fraction": args.test_fraction,
    }
    return write_from_command(parser, args.out, args.overwrite, "datasets.lorenz",
                              lambda: write_lorenz(args.out, **settings))


if __name__ == "__main__":
    raise SystemExit(main())
