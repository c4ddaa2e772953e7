r"""Synthetic delayed-reach session with rotational motor-cortex-like dynamics, written as an NWB file.

Each trial reaches in one of ``n_conditions`` directions :math:`\theta_c = 2\pi c / C`. The latent state
:math:`z \in \mathbb{R}^4` (two rotation planes, :math:`(z_1, z_2)` and :math:`(z_3, z_4)`) and a
condition-independent signal :math:`m(t)` evolve per trial as

- before the target appears: :math:`z = 0` (apart from the decaying tail of the previous trial);
- delay (target on until movement onset :math:`t_m`): :math:`z` relaxes to the condition's preparatory
  state :math:`z^\star_c = r\,(\cos\theta_c, 0, \sin\theta_c, 0)` with time constant ``tau_prep``,
  :math:`z(t) = z^\star_c (1 - e^{-(t - t_\text{on})/\tau_\text{prep}})`;
- movement (:math:`t_m` until the trial stops): damped rotation from the state reached at :math:`t_m`,
  :math:`\dot z = A z` with :math:`A = \operatorname{blockdiag}(\omega_1 J - \lambda I,\ \omega_2 J -
  \lambda I)`, :math:`J = \begin{pmatrix}0 & -1\\ 1 & 0\end{pmatrix}`, solved in closed form;
- after the trial stops: exponential decay to 0 with time constant ``tau_rest``;
- :math:`m(t) = \exp(-\tfrac12((t - t_m - 0.1\,\mathrm{s}) / 0.1\,\mathrm{s})^2)`, a movement-locked bump
  shared by all conditions.

Units fire as inhomogeneous Poisson processes with log-linear rates
:math:`\log\lambda_u(t) = \log b_u + c_u^\top (z(t), m(t))`, :math:`b_u` log-normal around ``base_rate``
and :math:`c_u` Gaussian; rates are capped at ``max_rate``. Spikes are drawn per 1 ms step and placed
uniformly inside the step, then rounded to the 30 kHz sampling grid (the Units ``resolution``).

Hand velocity is a linear readout of the latent, :math:`v(t) = g\,(z_2(t), z_4(t))` (m/s) plus small
Gaussian noise, sampled at 1 kHz: it is zero during the delay (the preparatory state lies in the
readout's null space) and points towards :math:`\theta_c` early in the movement.

The NWB file holds: a Units table (``spike_times``, boolean ``heldout`` column, ``obs_intervals``
covering the session, ``resolution`` = 1/30000 s), a trials table (``start_time``, ``stop_time``,
``target_on_time``, ``move_onset_time``, ``condition``, ``reach_angle`` in degrees, ``split`` in
``train``/``val``/``test``, stratified by condition), ``hand_vel`` (TimeSeries ``(time, 2)``, 1 kHz) in
the processing module ``behavior``, and the true latents ``(time, 5)`` = :math:`(z, m)` at 1 kHz as the
TimeSeries ``true_latents`` in the processing module ``misc``.

Defaults: 8 conditions, 200 trials, 60 units (20 % held out), a trial of 0.75 to 0.85 s (movement onset
0.25 to 0.35 s after the start, stop 0.5 s after movement onset), 0.2 to 0.3 s between trials: about
210 s of recording. Binned with :class:`lfads.data.nwb.NWBBinning` defaults (700 ms around movement onset)
every window lies inside its trial.

Run ``python -m datasets.reach_nwb --out data/reach.nwb --seed 0`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # executed as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import write_from_command  # noqa: E402
from lfads.data.atomic import atomic_output  # noqa: E402

__all__ = ["generate_reach", "main", "write_reach_nwb"]

DT = 0.001
"""Simulation step (s); also the hand-velocity and latent sampling interval."""
RESOLUTION = 1.0 / 30000.0
"""Spike-time resolution (s): the 30 kHz sampling grid spike times are rounded to."""


def _latent_for_trial(
    t: np.ndarray,
    t_on: float,
    t_move: float,
    t_stop: float,
    z_prep: np.ndarray,
    omegas: tuple[float, float],
    damping: float,
    tau_prep: float,
    tau_rest: float,
) -> np.ndarray:
    """Latent ``(len(t), 5)`` = (z1..z4, m) of one trial at times ``t`` (s, session clock)."""
    z = np.zeros((t.size, 4))
    prep = (t >= t_on) & (t < t_move)
    z[prep] = z_prep * (1.0 - np.exp(-(t[prep] - t_on) / tau_prep))[:, None]
    z_move0 = z_prep * (1.0 - np.exp(-(t_move - t_on) / tau_prep))

    def rotate(s: np.ndarray) -> np.ndarray:
        out = np.empty((s.size, 4))
        decay = np.exp(-damping * s)
        for plane, omega in enumerate(omegas):
            a, b = z_move0[2 * plane], z_move0[2 * plane + 1]
            cos, sin = np.cos(omega * s), np.sin(omega * s)
            out[:, 2 * plane] = decay * (a * cos - b * sin)
            out[:, 2 * plane + 1] = decay * (a * sin + b * cos)
        return out

    move = (t >= t_move) & (t < t_stop)
    z[move] = rotate(t[move] - t_move)
    rest = t >= t_stop
    z_stop = rotate(np.array([t_stop - t_move]))[0]
    z[rest] = z_stop * np.exp(-(t[rest] - t_stop) / tau_rest)[:, None]
    m = np.exp(-0.5 * ((t - t_move - 0.1) / 0.1) ** 2)
    return np.concatenate([z, m[:, None]], axis=1)


def generate_reach(
    seed: int = 0,
    n_conditions: int = 8,
    n_trials: int = 200,
    n_units: int = 60,
    heldout_fraction: float = 0.2,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.1,
    base_rate: float = 8.0,
    max_rate: float = 200.0,
    prep_radius: float = 1.0,
    readout_std: float = 0.6,
    omegas: tuple[float, float] = (2 * np.pi * 1.2, 2 * np.pi * 1.5),
    damping: float = 3.0,
    tau_prep: float = 0.06,
    tau_rest: float = 0.1,
    velocity_gain: float = 0.8,
    velocity_noise: float = 0.01,
) -> dict[str, np.ndarray]:
    r"""Simulate a delayed-reach session (see the module docstring for the model).

    Parameters
    ----------
    seed : int
        Seed of every random draw; equal seeds give equal outputs.
    n_conditions, n_trials, n_units : int
        Reach directions, trials (conditions assigned in balanced random order) and units.
    heldout_fraction : float
        Fraction of units flagged ``heldout``.
    valid_fraction, test_fraction : float
        Per-condition fractions of trials labelled ``val`` and ``test`` (the rest ``train``).
    base_rate, max_rate : float
        Median baseline rate and rate cap (spikes/s).
    prep_radius : float
        Norm :math:`r` of the preparatory state.
    readout_std : float
        Standard deviation of the log-rate readout weights :math:`c_u`.
    omegas : tuple of float
        Rotation frequencies :math:`\omega_1, \omega_2` (rad/s) of the two planes.
    damping : float
        Decay rate :math:`\lambda` (1/s) of the rotation.
    tau_prep, tau_rest : float
        Time constants (s) of preparation and of the return to rest.
    velocity_gain, velocity_noise : float
        Gain :math:`g` (m/s per latent unit) and noise standard deviation (m/s) of the hand velocity.

    Returns
    -------
    dict of str to np.ndarray
        ``spike_times`` (flat, s, sorted within unit), ``spike_times_index`` ``(units,)`` end offsets,
        ``heldout`` ``(units,)`` bool, ``trial_start``, ``trial_stop``, ``target_on``, ``move_onset``
        ``(trials,)`` s, ``condition`` ``(trials,)`` int, ``reach_angle`` ``(trials,)`` degrees, ``split``
        ``(trials,)`` str, ``hand_vel`` ``(time, 2)`` m/s and ``latents`` ``(time, 5)`` sampled every
        ``DT`` from 0, ``rates`` ``(units,)`` mean rate (spikes/s), ``log_baseline`` ``(units,)`` and
        ``readout`` ``(units, 5)``, ``duration`` (s).
    """
    rng = np.random.default_rng(seed)
    condition = rng.permutation(np.arange(n_trials) % n_conditions)
    angles = 2 * np.pi * np.arange(n_conditions) / n_conditions

    # trial timing
    prep_on = 0.05
    delay = rng.uniform(0.20, 0.30, size=n_trials)
    durations = prep_on + delay + 0.5
    gaps = rng.uniform(0.2, 0.3, size=n_trials)
    trial_start = 0.5 + np.concatenate([[0.0], np.cumsum(durations + gaps)[:-1]])
    target_on = trial_start + prep_on
    move_onset = target_on + delay
    trial_stop = move_onset + 0.5
    duration = float(trial_stop[-1] + 0.5)

    # latents on the 1 ms grid
    n_steps = int(round(duration / DT))
    t = np.arange(n_steps) * DT
    latents = np.zeros((n_steps, 5))
    tail = 5 * tau_rest
    for j in range(n_trials):
        lo = int(np.floor(trial_start[j] / DT))
        hi = min(n_steps, int(np.ceil((trial_stop[j] + tail) / DT)))
        theta = angles[condition[j]]
        z_prep = prep_radius * np.array([np.cos(theta), 0.0, np.sin(theta), 0.0])
        latents[lo:hi] += _latent_for_trial(t[lo:hi], target_on[j], move_onset[j], trial_stop[j], z_prep,
                                            omegas, damping, tau_prep, tau_rest)

    # units: log-linear Poisson
    log_baseline = np.log(base_rate) + 0.5 * rng.standard_normal(n_units)
    readout = readout_std * rng.standard_normal((n_units, 5))
    readout[:, 4] *= 1.5  # the condition-independent signal is large in motor cortex
    times, index, mean_rates = [], [], []
    for u in range(n_units):
        rate = np.minimum(np.exp(log_baseline[u] + latents @ readout[u]), max_rate)
        counts = rng.poisson(rate * DT)
        steps = np.repeat(np.arange(n_steps), counts)
        spikes = (steps + rng.uniform(0.0, 1.0, size=steps.size)) * DT
        spikes = np.sort(np.round(spikes / RESOLUTION) * RESOLUTION)
        times.append(spikes)
        index.append(spikes.size)
        mean_rates.append(rate.mean())
    heldout = np.zeros(n_units, dtype=bool)
    heldout[rng.choice(n_units, size=int(round(heldout_fraction * n_units)), replace=False)] = True

    # splits stratified by condition
    split = np.full(n_trials, "train", dtype=object)
    for c in range(n_conditions):
        idx = rng.permutation(np.flatnonzero(condition == c))
        n_val = int(round(valid_fraction * idx.size))
        n_test = int(round(test_fraction * idx.size))
        split[idx[:n_val]] = "val"
        split[idx[n_val:n_val + n_test]] = "test"

    hand_vel = velocity_gain * latents[:, [1, 3]] + velocity_noise * rng.standard_normal((n_steps, 2))
    return {
        "spike_times": np.concatenate(times),
        "spike_times_index": np.cumsum(index).astype(np.int64),
        "heldout": heldout,
        "trial_start": trial_start,
        "trial_stop": trial_stop,
        "target_on": target_on,
        "move_onset": move_onset,
        "condition": condition.astype(np.int64),
        "reach_angle": np.degrees(angles[condition]),
        "split": split.astype(str),
        "hand_vel": hand_vel,
        "latents": latents,
        "rates": np.asarray(mean_rates),
        "log_baseline": log_baseline,
        "readout": readout,
        "duration": np.asarray(duration),
    }


def write_reach_nwb(path: str | os.PathLike, seed: int = 0, **kwargs: object) -> Path:
    """Simulate a session with :func:`generate_reach` and write it to ``path`` as NWB (atomically).

    Parameters
    ----------
    path : str or PathLike
        Output ``.nwb`` file; written to a temporary file in the same folder and renamed.
    seed : int
        Simulation seed (also fixes the file's identifier).
    **kwargs
        Further arguments of :func:`generate_reach`.

    Returns
    -------
    Path
        ``path``.
    """
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.file import Subject
    from pynwb.misc import Units

    sim = generate_reach(seed=seed, **kwargs)
    when = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone.utc)
    identifier = uuid.uuid5(uuid.NAMESPACE_URL, f"lfads/datasets/reach_nwb/seed={seed}/{sorted(kwargs.items())}")
    nwbfile = NWBFile(
        session_description=(
            "Synthetic delayed center-out reaching session: condition-dependent preparatory states followed by "
            "damped rotational latent dynamics, Poisson spiking units and hand velocity read out from the latent."),
        identifier=str(identifier),
        session_start_time=when,
        file_create_date=when,
        session_id=f"reach-seed{seed}",
        experiment_description="Simulated data generated by datasets/reach_nwb.py in the lfads repository.",
        institution="none (simulation)",
        lab="none (simulation)",
        experimenter=["Simulation, Synthetic"],
        keywords=["synthetic", "reaching", "motor cortex", "LFADS"],
        subject=Subject(subject_id="sim01", species="Macaca mulatta", sex="M", age="P8Y",
                        description="Simulated subject; no animal was recorded."),
    )
    units = Units(name="units", description="Simulated units: Poisson spikes with log-linear rates of the latent.",
                  resolution=RESOLUTION)
    units.add_column(name="heldout", description="True for units held out from the encoder (co-smoothing).")
    ends = sim["spike_times_index"]
    starts = np.concatenate([[0], ends[:-1]])
    for u in range(ends.size):
        units.add_unit(spike_times=sim["spike_times"][starts[u]:ends[u]], heldout=bool(sim["heldout"][u]),
                       obs_intervals=[[0.0, float(sim["duration"])]])
    nwbfile.units = units

    for name, description in [
        ("target_on_time", "time the reach target appeared (s)"),
        ("move_onset_time", "time of movement onset (s)"),
        ("condition", "reach-direction condition id"),
        ("reach_angle", "reach direction (degrees, counter-clockwise from +x)"),
        ("split", "data split: train, val or test"),
    ]:
        nwbfile.add_trial_column(name=name, description=description)
    for j in range(sim["trial_start"].size):
        nwbfile.add_trial(start_time=float(sim["trial_start"][j]), stop_time=float(sim["trial_stop"][j]),
                          target_on_time=float(sim["target_on"][j]), move_onset_time=float(sim["move_onset"][j]),
                          condition=int(sim["condition"][j]), reach_angle=float(sim["reach_angle"][j]),
                          split=str(sim["split"][j]))

    behavior = nwbfile.create_processing_module("behavior", "Hand kinematics.")
    behavior.add(TimeSeries(name="hand_vel", data=H5DataIO(sim["hand_vel"].astype(np.float32), compression="gzip"),
                            unit="m/s", rate=1.0 / DT, starting_time=0.0,
                            description="Hand velocity (x, y): linear readout of the latent plus noise."))
    misc = nwbfile.create_processing_module("misc", "Ground truth of the simulation.")
    misc.add(TimeSeries(name="true_latents", data=H5DataIO(sim["latents"].astype(np.float32), compression="gzip"),
                        unit="a.u.", rate=1.0 / DT, starting_time=0.0,
                        description="True latent state (z1, z2, z3, z4, m): two rotation planes and the "
                                    "condition-independent movement signal."))

    path = Path(path)
    with atomic_output(path, suffix=".tmp.nwb") as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwbfile)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m datasets.reach_nwb --out data/reach.nwb --seed 0``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m datasets.reach_nwb")
    parser.add_argument("--out", required=True, type=Path, help="output NWB file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file that this generator did not write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-conditions", type=int, default=8)
    parser.add_argument("--n-trials", type=int, default=200)
    parser.add_argument("--n-units", type=int, default=60)
    parser.add_argument("--heldout-fraction", type=float, default=0.2)
    parser.add_argument("--base-rate", type=float, default=8.0, help="median baseline rate (spikes/s)")
    args = parser.parse_args(argv)
    settings = {
        "seed": args.seed,
        "n_conditions": args.n_conditions,
        "n_trials": args.n_trials,
        "n_units": args.n_units,
        "heldout_fraction": args.heldout_fraction,
        "base_rate": args.base_rate,
    }
    return write_from_command(parser, args.out, args.overwrite, "datasets/reach_nwb.py",
                              lambda: write_reach_nwb(args.out, **settings))


if __name__ == "__main__":
    raise SystemExit(main())
