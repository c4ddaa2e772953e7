r"""Spiking data from a chaotic rate network (the LFADS paper's synthetic benchmark), in the LFADS HDF5 layout.

Dynamics of the :math:`N` = ``n_units`` (default 50) unit network:

.. math::

    \tau \dot x = -x + \gamma J \tanh(x) + B u(t),

with :math:`J_{ij} \sim \mathcal N(0, 1/N)`, gain :math:`\gamma` (1.5 by default; 2.5 gives faster,
more irregular chaos), :math:`\tau` = 25 ms, and a single input channel :math:`u(t)` that is zero except
in the input-pulse variant. :math:`B \in \mathbb R^{N \times 1}` has i.i.d. :math:`\mathcal N(0, 1/N)`
entries (so :math:`\|B\| \approx 1`). A 50-unit network is often *not* chaotic (many draws of :math:`J`
settle onto a fixed point or a limit cycle, and about half of the draws at :math:`\gamma = 1.5` fall silent
within half a second of a random start), so by default (``require_chaos``) :math:`J` is the first of a
seeded sequence of draws whose largest Lyapunov exponent, measured over the 5 s following a 2 s
transient, exceeds 0.5/s at the chosen gain. Chaos in such small networks can be transient: a selected
network may still settle down many seconds later, far beyond the 1 s trials.
:math:`J` and :math:`B` depend only on ``seed``, ``n_units``, ``gain``, ``tau`` and ``require_chaos``;
:func:`make_chaotic_rnn_weights` rebuilds them.

The state is integrated with fixed-step RK4 using ``substeps`` steps per 10 ms bin (5 ms steps,
:math:`h / \tau = 0.2`, by default) and sampled at the start of every bin. Rates are the rescaled unit activations

.. math::

    r_{t,i} = r_\text{max} \, \frac{\tanh(x_{t,i}) + 1}{2} \in (0, r_\text{max}),

with :math:`r_\text{max}` = ``max_rate`` = 30 spikes/s by default, and spike counts are Poisson with
mean :math:`r_{t,i} \Delta` per bin of width :math:`\Delta` (10 ms).

A condition is a random initial state :math:`x_0 \sim \mathcal N(0, x_{0,\text{std}}^2 I)`. Without
inputs all trials of a condition share the trajectory and differ only in their Poisson draws.

Input-pulse variant (``input_pulse=True``, CLI ``--input-pulse``): every trial gets one pulse
:math:`u(t) = a` (``pulse_amplitude``, default 20) lasting ``pulse_width`` bins (default 1 bin, 10 ms)
starting at a bin drawn uniformly from ``pulse_window`` (default bins 20 to 79, i.e. 0.2 to 0.8 s).
A one-bin pulse moves the state by about :math:`(\Delta / \tau)\, a B`, i.e. about 1 per unit (RMS) with
the defaults, a strong kick compared with the spread of :math:`x` itself (standard deviation about 0.5 for
the default network). Trials therefore follow different trajectories
after their pulse; the input is written to ``{split}_true_inputs`` ``(n, T, 1)`` (value :math:`a` in the
pulse bins, 0 elsewhere) and the first pulse bin to ``{split}_pulse_bins`` ``(n,)``. A pulse starting at
bin :math:`p` first affects the rates of bin :math:`p + 1`.

Defaults: 140 conditions x 10 trials = 1400 trials, split per condition 8 train / 2 valid
(1120 train, 280 valid, no test split), 100 bins of 10 ms (1 s), all 50 units held in.

Run ``python -m datasets.chaotic_rnn --out data/chaotic_rnn.h5 [--input-pulse]`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import functools
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

__all__ = [
    "MIN_LYAPUNOV_EXPONENT",
    "estimate_lyapunov_exponent",
    "generate_chaotic_rnn",
    "integrate_chaotic_rnn",
    "main",
    "make_chaotic_rnn_weights",
    "write_chaotic_rnn",
]

# Independent random streams derived from the seed; the order is fixed so that J, B and the
# initial states do not change when, e.g., the number of trials or the input variant changes.
_STREAMS = ("weights", "initial", "pulses", "spikes", "split", "probe")

MIN_LYAPUNOV_EXPONENT = 0.5
"""Largest Lyapunov exponent (1/s) a draw of ``J`` needs to count as chaotic."""

_CANDIDATES_PER_BATCH = 16
_MAX_CANDIDATES = 512


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def _rk4_step(state: np.ndarray, coupling: np.ndarray, drive: np.ndarray | float, tau: float, h: float) -> np.ndarray:
    """One RK4 step of ``tau dx/dt = -x + tanh(x) @ coupling + drive`` (``coupling`` = (gain J)^T, maybe batched)."""

    def derivative(x: np.ndarray) -> np.ndarray:
        return (-x + np.tanh(x) @ coupling + drive) / tau

    return rk4_step(derivative, state, h)


def estimate_lyapunov_exponent(
    recurrent: np.ndarray,
    gain: float,
    tau: float = 0.025,
    bin_size: float = 0.01,
    substeps: int = 5,
    duration: float = 10.0,
    burn_in: float = 3.0,
    seed: int = 0,
) -> np.ndarray | float:
    r"""Largest Lyapunov exponent of :math:`\tau \dot x = -x + \gamma J \tanh(x)` (Benettin's method).

    A reference trajectory starts at :math:`x_0 \sim \mathcal N(0, I)`, runs ``burn_in`` seconds, and is
    then followed together with a copy displaced by :math:`\epsilon = 10^{-7}`; every bin the displacement
    :math:`d` is measured and rescaled back to :math:`\epsilon`, and
    :math:`\lambda = \frac{1}{\text{duration}} \sum \log(\|d\| / \epsilon)`.
    :math:`\lambda > 0` means chaos, :math:`\lambda \approx 0` a limit cycle (or slower divergence),
    :math:`\lambda < 0` a stable fixed point. The estimate is noisy near zero (about 0.1/s).

    Parameters
    ----------
    recurrent : np.ndarray
        ``(N, N)`` or ``(K, N, N)`` matrices :math:`J` (``K`` networks evaluated together).
    gain, tau, bin_size, substeps
        As in :func:`integrate_chaotic_rnn`.
    duration, burn_in : float
        Seconds of measurement and of discarded transient.
    seed : int
        Seed of the initial state and displacement direction.

    Returns
    -------
    np.ndarray or float
        ``(K,)`` exponents in 1/s, or one exponent for a single ``(N, N)`` matrix.
    """
    recurrent = np.asarray(recurrent, dtype=np.float64)
    batched = recurrent.ndim == 3
    coupling = gain * np.swapaxes(recurrent if batched else recurrent[None], -1, -2)  # (K, N, N)
    n_networks, n_units = coupling.shape[0], coupling.shape[-1]
    rng = np.random.default_rng(seed)
    h = bin_size / substeps
    state = np.broadcast_to(rng.normal(size=(1, 1, n_units)), (n_networks, 1, n_units)).copy()
    for _ in range(int(round(burn_in / h))):
        state = _rk4_step(state, coupling, 0.0, tau, h)
    eps = 1e-7
    direction = rng.normal(size=(1, 1, n_units))
    pair = np.concatenate([state, state + eps * direction / np.linalg.norm(direction)], axis=1)  # (K, 2, N)
    total = np.zeros(n_networks)
    n_bins = int(round(duration / bin_size))
    for _ in range(n_bins):
        for _ in range(substeps):
            pair = _rk4_step(pair, coupling, 0.0, tau, h)
        displacement = pair[:, 1] - pair[:, 0]
        norm = np.maximum(np.linalg.norm(displacement, axis=-1), 1e-300)
        total += np.log(norm / eps)
        pair[:, 1] = pair[:, 0] + displacement * (eps / norm)[:, None]
    exponents = total / (n_bins * bin_size)
    return exponents if batched else float(exponents[0])


@functools.lru_cache(maxsize=32)
def _chaotic_rnn_weights(
    n_units: int, seed: int, gain: float, tau: float, require_chaos: bool
) -> tuple[np.ndarray, np.ndarray]:
    streams = _streams(seed)
    rng = streams["weights"]
    scale = 1.0 / np.sqrt(n_units)
    input_weights = rng.normal(0.0, scale, size=(n_units, 1))
    if not require_chaos:
        return rng.normal(0.0, scale, size=(n_units, n_units)), input_weights
    probe_seed = int(streams["probe"].integers(2**31))
    for _ in range(_MAX_CANDIDATES // _CANDIDATES_PER_BATCH):
        candidates = rng.normal(0.0, scale, size=(_CANDIDATES_PER_BATCH, n_units, n_units))
        exponents = estimate_lyapunov_exponent(
            candidates, gain, tau, substeps=2, duration=5.0, burn_in=2.0, seed=probe_seed
        )
        chaotic = np.flatnonzero(exponents > MIN_LYAPUNOV_EXPONENT)
        if chaotic.size:
            return candidates[chaotic[0]], input_weights
    raise ValueError(
        f"none of {_MAX_CANDIDATES} draws of J (n_units={n_units}, gain={gain}, seed={seed}) had a largest "
        f"Lyapunov exponent above {MIN_LYAPUNOV_EXPONENT}/s; raise the gain, change the seed, or pass "
        "require_chaos=False to accept the first draw."
    )


def make_chaotic_rnn_weights(
    n_units: int = 50,
    seed: int = 0,
    gain: float = 1.5,
    tau: float = 0.025,
    require_chaos: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Recurrent and input weights of the network, :math:`J, B \sim \mathcal N(0, 1/N)` entrywise.

    Small networks are often not chaotic: at :math:`N = 50` many draws of :math:`J` settle onto a stable
    fixed point or a limit cycle within a second, even at :math:`\gamma = 2.5`. With ``require_chaos``
    candidate matrices are drawn in a fixed, seeded order and the first one whose largest Lyapunov exponent
    (:func:`estimate_lyapunov_exponent` over 5 s after a 2 s transient, 5 ms RK4 steps) exceeds
    :data:`MIN_LYAPUNOV_EXPONENT` is returned, i.e. :math:`J`
    is a draw from :math:`\mathcal N(0, 1/N)` conditioned on chaotic dynamics at this gain. Without it the
    first draw is returned.

    Parameters
    ----------
    n_units : int
        Number of units :math:`N`.
    seed : int
        The dataset seed (same value as passed to :func:`generate_chaotic_rnn`).
    gain, tau : float
        Dynamics the chaos check uses (same values as passed to :func:`generate_chaotic_rnn`).
    require_chaos : bool
        Reject draws that are not chaotic.

    Returns
    -------
    J : np.ndarray
        ``(n_units, n_units)`` recurrent weights (without the gain).
    B : np.ndarray
        ``(n_units, 1)`` input weights.
    """
    recurrent, input_weights = _chaotic_rnn_weights(
        int(n_units), int(seed), float(gain), float(tau), bool(require_chaos)
    )
    return recurrent.copy(), input_weights.copy()


def integrate_chaotic_rnn(
    initial: np.ndarray,
    recurrent: np.ndarray,
    gain: float,
    tau: float,
    bin_size: float,
    n_bins: int,
    substeps: int = 2,
    inputs: np.ndarray | None = None,
    input_weights: np.ndarray | None = None,
) -> np.ndarray:
    r"""Integrate :math:`\tau \dot x = -x + \gamma J \tanh(x) + B u` with RK4.

    The input is held constant within each bin.

    Parameters
    ----------
    initial : np.ndarray
        ``(batch, N)`` initial states.
    recurrent : np.ndarray
        ``(N, N)`` matrix :math:`J`.
    gain : float
        :math:`\gamma`.
    tau : float
        Time constant in seconds.
    bin_size : float
        Bin width in seconds.
    n_bins : int
        Number of bins to return.
    substeps : int
        RK4 steps per bin.
    inputs : np.ndarray, optional
        ``(batch, n_bins, k)`` input :math:`u` per bin.
    input_weights : np.ndarray, optional
        ``(N, k)`` matrix :math:`B`; required with ``inputs``.

    Returns
    -------
    np.ndarray
        ``(batch, n_bins, N)`` states sampled at the start of each bin (bin 0 is ``initial``).
    """
    if inputs is not None and input_weights is None:
        raise ValueError("input_weights (B) is required when inputs are given.")
    state = np.asarray(initial, dtype=np.float64).copy()
    coupling = gain * np.asarray(recurrent, dtype=np.float64).T  # row vectors: tanh(x) @ (gain J)^T
    h = bin_size / substeps
    out = np.empty((state.shape[0], n_bins, state.shape[1]))
    for t in range(n_bins):
        out[:, t] = state
        if t == n_bins - 1:
            break
        drive: np.ndarray | float = 0.0
        if inputs is not None:
            drive = inputs[:, t] @ np.asarray(input_weights, dtype=np.float64).T
        for _ in range(substeps):
            state = _rk4_step(state, coupling, drive, tau, h)
    return out


def _integrate_from_pulses(
    states: np.ndarray,
    pulse_bins: np.ndarray,
    inputs: np.ndarray,
    recurrent: np.ndarray,
    input_weights: np.ndarray,
    gain: float,
    tau: float,
    bin_size: float,
    substeps: int,
) -> np.ndarray:
    """Re-integrate each trial from its first pulse bin on.

    ``states`` ``(trials, T, N)`` holds each trial's input-free trajectory; up to and including bin
    ``pulse_bins[i]`` it is already correct, so only the later bins are recomputed (with ``inputs``
    ``(trials, T, 1)``). This halves the work compared with integrating every trial from bin 0.
    """
    states = states.copy()
    n_trials, n_bins, _ = states.shape
    coupling = gain * np.asarray(recurrent, dtype=np.float64).T
    h = bin_size / substeps
    order = np.argsort(pulse_bins, kind="stable")
    n_active = 0
    for t in range(int(pulse_bins.min()), n_bins - 1):
        n_active = int(np.searchsorted(pulse_bins[order], t, side="right"))
        active = order[:n_active]  # trials whose pulse has started by bin t
        x = states[active, t]
        drive = inputs[active, t] @ np.asarray(input_weights, dtype=np.float64).T
        for _ in range(substeps):
            x = _rk4_step(x, coupling, drive, tau, h)
        states[active, t + 1] = x
    return states


def generate_chaotic_rnn(
    n_conditions: int = 140,
    trials_per_condition: int = 10,
    n_units: int = 50,
    n_heldout: int = 0,
    n_time: int = 100,
    n_forward: int = 0,
    gain: float = 1.5,
    tau: float = 0.025,
    bin_size: float = 0.01,
    substeps: int = 2,
    max_rate: float = 30.0,
    x0_std: float = 1.0,
    require_chaos: bool = True,
    input_pulse: bool = False,
    pulse_amplitude: float = 20.0,
    pulse_width: int = 1,
    pulse_window: tuple[int, int] | None = None,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Generate chaotic-RNN Poisson spiking data in the LFADS HDF5 layout.

    Parameters
    ----------
    n_conditions : int
        Number of random initial states.
    trials_per_condition : int
        Trials per initial state.
    n_units : int
        Network size; every unit is one neuron.
    n_heldout : int
        How many of the units (the last ones) are held out, i.e. only in ``recon_data``.
    n_time : int
        Bins the encoders see.
    n_forward : int
        Extra forward-prediction bins, present only in ``recon_data`` / ``truth``.
    gain : float
        Recurrent gain :math:`gamma`.
    tau : float
        Unit time constant (s).
    bin_size : float
        Bin width (s).
    substeps : int
        RK4 steps per bin.
    max_rate : float
        Rate (spikes/s) at ``tanh(x) = 1``.
    x0_std : float
        Standard deviation of the initial states.
    require_chaos : bool
        Redraw :math:`J` until the network is chaotic (see :func:`make_chaotic_rnn_weights`).
    input_pulse : bool
        Give each trial one input pulse (see the module docstring).
    pulse_amplitude : float
        Value of :math:`u` during the pulse.
    pulse_width : int
        Pulse length in bins.
    pulse_window : tuple[int, int], optional
        ``[first, last)`` range of pulse start bins; default ``(n_time // 5, 4 * n_time // 5)``.
    valid_fraction, test_fraction : float
        Fraction of each condition's trials in the ``valid`` / ``test`` splits (test off at 0).
    seed : int
        Seed for every random choice.

    Returns
    -------
    dict[str, np.ndarray]
        ``{split}_encod_data`` ``(n, n_time, n_units - n_heldout)``, ``{split}_recon_data`` and
        ``{split}_truth`` ``(n, n_time + n_forward, n_units)`` (truth in spikes/s), ``{split}_conditions``
        and ``{split}_inds`` ``(n,)``, the scalar ``conversion_factor`` = ``1 / bin_size``, and with
        ``input_pulse`` also ``{split}_true_inputs`` ``(n, n_time + n_forward, 1)`` and ``{split}_pulse_bins``.
    """
    for name, value in {"n_conditions": n_conditions, "trials_per_condition": trials_per_condition,
                        "n_units": n_units, "n_time": n_time, "substeps": substeps, "pulse_width": pulse_width}.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if not 0 <= n_heldout < n_units:
        raise ValueError(f"n_heldout must be in [0, n_units={n_units}), got {n_heldout}.")
    if n_forward < 0:
        raise ValueError(f"n_forward must be non-negative, got {n_forward}.")
    if tau <= 0 or bin_size <= 0 or max_rate <= 0:
        raise ValueError("tau, bin_size and max_rate must be positive.")

    rng = _streams(seed)
    recurrent, input_weights = make_chaotic_rnn_weights(n_units, seed, gain, tau, require_chaos)
    n_bins = n_time + n_forward
    conditions = np.repeat(np.arange(n_conditions), trials_per_condition)
    initial = rng["initial"].normal(0.0, x0_std, size=(n_conditions, n_units))

    extras: dict[str, np.ndarray] = {"conditions": conditions.astype(np.int64)}
    if input_pulse:
        first, last = pulse_window if pulse_window is not None else (n_time // 5, 4 * n_time // 5)
        if not 0 <= first < last <= n_bins - pulse_width:
            raise ValueError(
                f"pulse_window={first, last} must satisfy 0 <= first < last <= n_bins - pulse_width "
                f"= {n_bins - pulse_width} so that every pulse fits in the trial."
            )
        pulse_bins = rng["pulses"].integers(first, last, size=conditions.size)
        inputs = np.zeros((conditions.size, n_bins, 1))
        for offset in range(pulse_width):
            inputs[np.arange(conditions.size), pulse_bins + offset, 0] = pulse_amplitude
        shared = integrate_chaotic_rnn(initial, recurrent, gain, tau, bin_size, n_bins, substeps)
        states = _integrate_from_pulses(
            shared[conditions], pulse_bins, inputs, recurrent, input_weights, gain, tau, bin_size, substeps
        )
        extras["true_inputs"] = inputs.astype(np.float32)
        extras["pulse_bins"] = pulse_bins.astype(np.int64)
    else:
        states = integrate_chaotic_rnn(initial, recurrent, gain, tau, bin_size, n_bins, substeps)[conditions]

    rates = max_rate * (np.tanh(states) + 1.0) / 2.0  # spikes/s
    counts = rng["spikes"].poisson(rates * bin_size)
    splits = split_trials_by_condition(conditions, valid_fraction, test_fraction, rng["split"])
    return assemble_layout(
        counts=counts,
        truth=rates,
        splits=splits,
        n_heldin=n_units - n_heldout,
        n_enc_time=n_time,
        conversion_factor=1.0 / bin_size,
        extras=extras,
    )


def write_chaotic_rnn(path: str | Path, **kwargs: Any) -> Path:
    """Generate the chaotic-RNN dataset and write it atomically to ``path``.

    Parameters
    ----------
    path : str or Path
        Output HDF5 file.
    **kwargs
        Passed to :func:`generate_chaotic_rnn`.

    Returns
    -------
    Path
        The written file. Root attributes: ``bin_size``, ``seed``, ``conversion_factor``,
        ``description`` and every generator parameter (``pulse_window`` as a 2-vector when set).
    """
    params = resolve_parameters(generate_chaotic_rnn, kwargs, "chaotic-RNN")
    arrays = generate_chaotic_rnn(**params)
    pulse_text = (
        f" Each trial has one input pulse u={params['pulse_amplitude']} lasting {params['pulse_width']} bin(s) "
        "through B at a random bin (true_inputs, pulse_bins)."
        if params["input_pulse"]
        else ""
    )
    chaos_text = (
        f" with J the first seeded draw whose largest Lyapunov exponent exceeds {MIN_LYAPUNOV_EXPONENT}/s"
        if params["require_chaos"]
        else ""
    )
    description = (
        f"Chaotic rate network tau dx/dt = -x + gain*J tanh(x) + B u with N={params['n_units']}, "
        f"gain={params['gain']}, tau={params['tau']} s, J,B ~ N(0, 1/N){chaos_text} (rebuild with "
        "datasets.chaotic_rnn.make_chaotic_rnn_weights(n_units, seed, gain, tau, require_chaos)); "
        "rates = max_rate*(tanh(x)+1)/2 with "
        f"max_rate={params['max_rate']} spikes/s; Poisson counts in {params['bin_size']} s bins; "
        f"{params['n_conditions']} random initial states x {params['trials_per_condition']} trials.{pulse_text} "
        "truth is in spikes/s; truth / conversion_factor = expected counts per bin."
    )
    attrs = {
        "description": description,
        "conversion_factor": 1.0 / params["bin_size"],
        "generator": "datasets.chaotic_rnn",
    }
    for name, value in params.items():
        if value is None:
            continue
        attrs[name] = np.asarray(value) if isinstance(value, tuple) else value
    return save_h5_atomic(path, arrays, attrs)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m datasets.chaotic_rnn --out FILE [options]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m datasets.chaotic_rnn")
    parser.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file that this generator did not write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-conditions", type=int, default=140)
    parser.add_argument("--trials-per-condition", type=int, default=10)
    parser.add_argument("--n-units", type=int, default=50)
    parser.add_argument("--heldout", type=int, default=0, help="units held out of encod_data (the last ones)")
    parser.add_argument("--n-time", type=int, default=100, help="bins seen by the encoders")
    parser.add_argument("--forward", type=int, default=0, help="forward-prediction bins (recon only)")
    parser.add_argument("--gain", type=float, default=1.5, help="recurrent gain (1.5 or 2.5 in the LFADS paper)")
    parser.add_argument("--max-rate", type=float, default=30.0, help="spikes/s at tanh(x)=1")
    parser.add_argument(
        "--allow-non-chaotic", action="store_true", help="use the first draw of J without the chaos check"
    )
    parser.add_argument("--input-pulse", action="store_true", help="one input pulse per trial")
    parser.add_argument("--pulse-amplitude", type=float, default=20.0)
    parser.add_argument("--pulse-width", type=int, default=1, help="bins")
    parser.add_argument("--valid-fraction", type=float, default=0.2)
    parser.add_argument("--test-fraction", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = {
        "seed": args.seed,
        "n_conditions": args.n_conditions,
        "trials_per_condition": args.trials_per_condition,
        "n_units": args.n_units,
        "n_heldout": args.heldout,
        "n_time": args.n_time,
        "n_forward": args.forward,
        "gain": args.gain,
        "max_rate": args.max_rate,
        "require_chaos": not args.allow_non_chaotic,
        "input_pulse": args.input_pulse,
        "pulse_amplitude": args.pulse_amplitude,
        "pulse_width": args.pulse_width,
        "valid_fraction": args.valid_fraction,
        "test_fraction": args.test_fraction,
    }
    return write_from_command(parser, args.out, args.overwrite, "datasets.chaotic_rnn",
                              lambda: write_chaotic_rnn(args.out, **settings))


if __name__ == "__main__":
    raise SystemExit(main())
