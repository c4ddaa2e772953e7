"""Does a trained network have the dynamics its task needs? Per-network checks against the theory of each task.

* Flip-flop (:func:`flipflop_structure`): the stable fixed points, read out through
  :math:`y = W h + b`, are the :math:`2^N` memories :math:`\\{\\pm 1\\}^N` (one stable point each, every
  readout channel within ``tol`` of :math:`\\pm 1`), and the index-1 saddles join memories that differ
  in exactly one bit: the edges of the :math:`N`-cube (:math:`N 2^{N-1}` of them, 12 for 3 bits).
  The saddle-to-memory edges come from the fixed-point graph of :mod:`lfads.compare.topology`
  when given.
* Sine wave (:func:`sine_oscillation`): at the input level of frequency :math:`\\omega`, the fixed point
  has a complex pair :math:`|\\lambda| e^{\\pm i \\theta}`; the network oscillates at
  :math:`\\theta` radians per step, to compare with :math:`\\omega`.
* Context-dependent integration (:func:`line_attractor`): with a context cued and no evidence, the
  slow points lie along a line (first principal component :math:`\\ge` ``line_fraction`` of their
  variance). At each point the line's local tangent :math:`t` (the least-squares slope of the
  points against their coordinate along the first principal component, over the ``neighbours``
  points nearest along it) picks the *line mode*: the eigenmode whose right eigenvector is most
  parallel to :math:`t`. That mode's eigenvalue must lie within ``eig_tol`` of 1 and its right
  eigenvector along :math:`t`; the relevant stream's input vector :math:`J_u e_k` must project on its
  left eigenvector (the selection vector) more than the irrelevant one. Beside these criteria, the
  points' *drift* (median speed over the relevant stream's step along the line) says how slow the line
  is, whatever its local eigenvalues.
* Simulated frequency (:func:`oscillation_frequency`): the peak of the periodogram of a long simulated
  output, the frequency the network actually produces, to set beside the linearisation's angle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from lfads.analysis.fixed_points import FixedPoints

__all__ = [
    "ANALYSIS",
    "TRAINING",
    "FlipFlopStructure",
    "LineAttractor",
    "cube_edges",
    "flipflop_structure",
    "line_attractor",
    "line_tangents",
    "oscillation_frequency",
    "sine_oscillation",
    "sine_simulated_population",
]


TRAINING: dict[str, dict[str, Any]] = {
    "flipflop": {"batch_size": 8, "lr": 3e-3, "carry_state": True, "identity_candidate": True},
    "sine": {"batch_size": 8, "lr": 3e-3, "lr_half_life": 1000, "max_steps": 6000, "rate_penalty": 1.0,
             "arch_settings": {"vanilla": {"max_steps": 12000, "lr_half_life": 2000}, "ugrnn": {"rate_penalty": 0.1}},
             "task_settings": {"n_time": 300}},
    "context": {"batch_size": 16, "lr": 3e-3, "lr_half_life": 700, "target_loss": 0.02, "max_steps": 6000,
                "rate_penalty": 1.0,
                "identity_candidate": ["gru", "ugrnn"],
                "task_settings": {"n_time": 100, "response_steps": 90, "report": "integral"}},
}
"""Training settings (:func:`lfads.population.population.run_population` keywords) used for the universality
figures: flip-flop memories carried across batches (trials of unbounded length, so memories become
attractors rather than slow transients), a decaying learning rate for the sine wave and the integration.
Flip-flop: learning rate 3e-3 and the gated cells' candidate initialised as the vanilla recurrence
(``identity_candidate``), for every architecture; at 1e-2, 5 of 8 vanilla networks held their memories as
irregular oscillations in the readout's null space (no fixed point), and with the uniform candidate most
UGRNNs held them on slow points with no root (``docs/population.md``).
Sine trials last 300 steps (4.8 periods of the lowest frequency, 0.1 rad/step): on 100-step trials (1.6
periods) the networks matched the output on the trial but their linearisation at 0.1 was 20-180% too fast,
and their sustained oscillation up to 12% (GRU) to 62% (LSTM) off. The activity penalty (``rate_penalty``,
at most 6000 steps) keeps the oscillation small about its fixed point, where the linearisation predicts its
frequency. It is 1.0, the UGRNNs' 0.1: at 0.1 the GRUs' fraction of linearisations within 15% of the
frequency changed with the rounding of one training to the next, and the UGRNNs' lowest frequency fared
worse at 1.0 (``docs/population.md``, sine). The vanilla networks need longer training (at most 12000
steps, halving every 2000) for their lowest frequency.
Context: 100-step trials whose output reports the running integral of the cued stream (``report="integral"``)
at every step after the first 10, to loss 0.02: a decision (a runaway along the line) or a leak then both miss
the target, where the sign scored on the last 10 steps of 50-step trials rewarded a decision as well as an
integrator. ``identity_candidate`` for the GRUs and UGRNNs only: it straightened their lines (UGRNN line
attractors 0.12 without, 0.94 with) and bent the LSTMs' (0.88 without, 0.50 with). The activity penalty
(``rate_penalty`` 1.0, at most 6000 steps) gave the vanilla networks their line attractors: without it their
slow points formed a chain of attracting and repelling points (``docs/population.md``)."""


ANALYSIS: dict[str, dict[str, float | int]] = {
    "flipflop": {"n_initial_states": 1024, "noise_std": 0.1},
    "sine": {"n_initial_states": 256, "noise_std": 0.02},
    "context": {"n_initial_states": 256, "noise_std": 0.02},
}
"""Fixed-point search settings (:func:`lfads.population.population.analyse_population` keywords) for the
universality figures: the flip-flop needs many, widely spread starts to reach all 12 index-1 saddles (with 256
starts at noise 0.02 most LSTMs showed 8 to 10 of them; with 1024 at 0.1, all 12 in 7 of 8)."""


def cube_edges(n_bits: int) -> set[frozenset[tuple[int, ...]]]:
    """The :math:`N 2^{N-1}` edges of the :math:`N`-cube: pairs of sign patterns that differ in one bit."""
    corners = list(itertools.product((-1, 1), repeat=n_bits))
    return {frozenset((a, b)) for a, b in itertools.combinations(corners, 2) if sum(x != y for x, y in zip(a, b)) == 1}


@dataclass
class FlipFlopStructure:
    """The fixed-point structure of one flip-flop network.

    Attributes
    ----------
    n_stable : int
        Stable fixed points.
    memories : list of tuple
        Sign patterns of the stable points whose every readout channel is within ``tol`` of :math:`\\pm 1`.
    n_index1 : int
        Index-1 saddles.
    edges : set of frozenset or None
        Memory pairs joined through an index-1 saddle (``None`` when no graph was given).
    all_memories : bool
        Exactly :math:`2^N` stable points and they are the :math:`2^N` memories.
    cube : bool or None
        The saddle edges are exactly the edges of the :math:`N`-cube (``None`` without a graph).
    """

    n_stable: int
    memories: list[tuple[int, ...]]
    n_index1: int
    edges: set[frozenset[tuple[int, ...]]] | None
    all_memories: bool
    cube: bool | None


def _readouts(fps: FixedPoints, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return fps.states[:, : weight.shape[1]] @ weight.T + bias


def flipflop_structure(
    fps: FixedPoints,
    weight: np.ndarray,
    bias: np.ndarray,
    tol: float = 0.4,
    saddle_edges: list[tuple[int, int, int]] | None = None,
) -> FlipFlopStructure:
    """Stable points as memories and index-1 saddles as cube edges (module docstring).

    Parameters
    ----------
    fps : FixedPoints
        The network's points at zero input.
    weight, bias : np.ndarray
        Readout ``(N_bits, H)`` and ``(N_bits,)``; it reads the first ``H`` state entries.
    tol : float
        Largest distance of a memory's readout channels from :math:`\\pm 1`; the default 0.4 keeps each
        channel well on its side of the decision boundary 0 (trained networks read out their attractors
        within about 0.3 of the targets they were trained on).
    saddle_edges : list of (int, int, int), optional
        ``(saddle, point_a, point_b)``: indices into ``fps`` of an index-1 saddle and the two points its
        unstable manifold flows to (from the fixed-point graph).
    """
    n_bits = weight.shape[0]
    y = _readouts(fps, weight, bias)
    fixed = fps.kind == "fixed"
    stable = np.nonzero(fixed & (fps.stability == "stable"))[0]
    pattern = {}
    for i in stable:
        if np.all(np.abs(np.abs(y[i]) - 1.0) <= tol):
            pattern[int(i)] = tuple(int(s) for s in np.sign(y[i]))
    memories = sorted(set(pattern.values()))
    all_memories = len(stable) == 2**n_bits and len(memories) == 2**n_bits and len(pattern) == len(stable)
    index1 = set(np.nonzero(fixed & (fps.stability == "saddle") & (fps.n_unstable == 1))[0].tolist())
    edges = cube = None
    if saddle_edges is not None:
        edges = {frozenset((pattern[a], pattern[b])) for s, a, b in saddle_edges
                 if s in index1 and a in pattern and b in pattern and pattern[a] != pattern[b]}  # fmt: skip
        cube = edges == cube_edges(n_bits)
    return FlipFlopStructure(len(stable), memories, len(index1), edges, all_memories, cube)


def sine_oscillation(fps: FixedPoints) -> float:
    """Angle :math:`\\theta \\in (0, \\pi)` (radians per step) of the oscillation at one input level.

    Among the fixed points (``kind == "fixed"``) found at that input, the complex eigenvalue pair of
    largest modulus over all points is taken (the mode that carries the oscillation); NaN if no fixed
    point has a complex pair.
    """
    best, angle = -np.inf, np.nan
    for i in np.nonzero(fps.kind == "fixed")[0]:
        ev = fps.eigenvalues[i]
        cplx = ev[np.abs(ev.imag) > 1e-9]
        if cplx.size and np.abs(cplx).max() > best:
            k = np.argmax(np.abs(cplx))
            best, angle = float(np.abs(cplx[k])), float(abs(np.angle(cplx[k])))
    return angle


def oscillation_frequency(y: np.ndarray) -> float:
    """Angular frequency (radians per step, in :math:`(0, \\pi]`) of the strongest oscillation in ``y`` ``(T,)``.

    The peak of the periodogram :math:`P(\\omega) = |\\sum_t (y_t - \\bar y) e^{-i \\omega t}|^2`: located on an
    8-fold zero-padded FFT grid, then refined by a bounded scalar search within one grid step.
    """
    y = np.asarray(y, dtype=np.float64)
    y = y - y.mean()
    n_fft = 8 * y.size
    power = np.abs(np.fft.rfft(y, n_fft)) ** 2
    k = int(np.argmax(power[1:])) + 1
    step = 2 * np.pi / n_fft
    t = np.arange(y.size)

    def neg_power(omega: float) -> float:
        return -float(np.abs(np.exp(-1j * omega * t) @ y) ** 2)

    lo, hi = max(step * (k - 1), 1e-12), min(step * (k + 1), np.pi)
    return float(minimize_scalar(neg_power, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9}).x)


@dataclass
class LineAttractor:
    """Slow-point geometry of one network in one context.

    Attributes
    ----------
    n_points : int
        Fixed and slow points found.
    line_fraction : float
        Fraction of their variance along their first principal component.
    eig_near_one : float
        Fraction of points whose line mode has its eigenvalue within ``eig_tol`` of 1.
    mode_alignment : float
        Median :math:`|\\cos|` between the line mode's right eigenvector and the local tangent.
    relevant_gain, irrelevant_gain : float
        Median :math:`|w^\\top J_u e_k|\\,\\|v\\|` over points (the step along the line per unit of input),
        :math:`v, w` the right and left eigenvectors of the line mode (:math:`w^H v = 1`), for the cued
        and the other evidence stream.
    line_eigenvalue : float
        Median :math:`|\\lambda - 1|` of the line mode.
    drift : float
        Median over points of their speed :math:`\\|F(h^*) - h^*\\|` divided by the relevant gain: how far the
        state drifts in one step with no evidence, in units of the step one unit of the cued stream makes
        along the line. Small for any slow line, including one whose points alternate between attracting and
        repelling (line mode's eigenvalue on both sides of 1), which the eigenvalue criterion rejects.
    is_line : bool
        All criteria met: at least ``min_points`` points, ``line_fraction`` above the threshold,
        ``eig_near_one`` and ``mode_alignment`` at least ``min_fraction``, and relevant gain above
        irrelevant gain.
    """

    n_points: int
    line_fraction: float
    eig_near_one: float
    mode_alignment: float
    relevant_gain: float
    irrelevant_gain: float
    is_line: bool
    line_eigenvalue: float = float("nan")
    drift: float = float("nan")


def line_tangents(states: np.ndarray, neighbours: int) -> tuple[np.ndarray, float]:
    """Unit local tangents ``(N, H)`` of a set of points along a line, and the line's variance fraction.

    With :math:`s_i` the coordinate of point :math:`i` on the first principal component, the tangent at
    :math:`i` is the least-squares slope :math:`\\sum_j (s_j - \\bar s)(h_j - \\bar h)` over the
    ``neighbours`` points :math:`j` with :math:`s_j` nearest to :math:`s_i`, normalised: noise across the
    line, uncorrelated with :math:`s`, averages out, and a curved line keeps its local direction.

    Parameters
    ----------
    states : np.ndarray
        ``(N, H)`` points, ``N >= 2``.
    neighbours : int
        Points in each local fit (at least 2; at most ``N``).
    """
    x = states - states.mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    frac = float(sv[0] ** 2 / max((sv**2).sum(), 1e-300))
    s = x @ vt[0]
    k = int(np.clip(neighbours, 2, len(states)))
    near = np.argsort(np.abs(s[:, None] - s[None, :]), axis=1, kind="stable")[:, :k]  # (N, k)
    ds = s[near] - s[near].mean(1, keepdims=True)
    dh = states[near] - states[near].mean(1, keepdims=True)
    t = np.einsum("nk,nkh->nh", ds, dh)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-300)
    return t, frac


def line_attractor(
    fps: FixedPoints,
    relevant: int,
    irrelevant: int,
    eig_tol: float = 0.02,
    min_line_fraction: float = 0.9,
    min_points: int = 5,
    min_fraction: float = 0.8,
    neighbours: int | None = None,
) -> LineAttractor:
    """Check one context's points for a line attractor (module docstring).

    Parameters
    ----------
    fps : FixedPoints
        Points found with the context cued and no evidence.
    relevant, irrelevant : int
        Input channels of the cued and the other evidence stream.
    eig_tol : float
        Tolerance of :math:`|\\lambda - 1|` of the line mode.
    min_line_fraction : float
        Smallest fraction of variance along the line.
    min_points : int
        Fewest points for a line.
    min_fraction : float
        Smallest fraction of points with the line mode within ``eig_tol`` of 1, and smallest median
        :math:`|\\cos|` between the line mode and the tangent.
    neighbours : int, optional
        Points in each local tangent fit (:func:`line_tangents`); ``max(min_points, N // 10)`` by default.
    """
    n = len(fps)
    nan = float("nan")
    if n < 2:
        return LineAttractor(n, nan, nan, nan, nan, nan, False)
    tangents, frac = line_tangents(fps.states, neighbours or max(min_points, n // 10))
    dist, align, rel, irr = [], [], [], []
    for i in range(n):
        v_all = fps.right_eigenvectors[i]
        norms = np.maximum(np.linalg.norm(v_all, axis=0), 1e-300)
        cos = np.abs(v_all.conj().T @ tangents[i]) / norms
        k = int(np.argmax(cos))
        dist.append(abs(fps.eigenvalues[i][k] - 1.0))
        align.append(cos[k])
        w = fps.left_eigenvectors[i][:, k]
        ju = fps.jac_input[i]
        rel.append(abs(np.vdot(w, ju[:, relevant])) * norms[k])
        irr.append(abs(np.vdot(w, ju[:, irrelevant])) * norms[k])
    near_f = float(np.mean(np.asarray(dist) <= eig_tol))
    align_m, rel_m, irr_m = float(np.median(align)), float(np.median(rel)), float(np.median(irr))
    ok = (n >= min_points and frac >= min_line_fraction and near_f >= min_fraction and align_m >= min_fraction
          and rel_m > irr_m)  # fmt: skip
    drift = float(np.median(fps.speed / np.maximum(np.asarray(rel), 1e-300)))
    return LineAttractor(n, frac, near_f, align_m, rel_m, irr_m, bool(ok), float(np.median(dist)), drift)


# ----------------------------------------------------------------------------------------------------------------------
# Whole populations
# ----------------------------------------------------------------------------------------------------------------------


def flipflop_population(
    result, tol: float = 0.4, saddle_edges: dict | None = None
) -> dict[str, list[FlipFlopStructure]]:
    """:func:`flipflop_structure` of every network of a flip-flop population
    (a :class:`~lfads.population.population.PopulationResult`).

    ``saddle_edges[arch][n]`` (optional): network ``n``'s saddle edges, as in :func:`flipflop_structure`.
    """
    out = {}
    for arch in result.archs:
        out[arch] = []
        for n, net in enumerate(result.fixed_points[arch]):
            w, b = result.readout(arch, n)
            edges = None if saddle_edges is None else saddle_edges[arch][n]
            out[arch].append(flipflop_structure(net["zero"], w, b, tol, edges))
    return out


def _target_omega(label: str) -> float:
    """The target frequency of a sine-task condition, read from its label (``omega=...``)."""
    return float(label.split("=")[1])


def sine_population(result, rel_tol: float = 0.15) -> dict[str, np.ndarray]:
    """Per architecture, ``(networks, conditions)`` relative errors :math:`|\\theta - \\omega| / \\omega`.

    NaN where no fixed point has a complex pair.

    The target :math:`\\omega` of each condition is read from its label (``omega=...``).
    """
    out = {}
    for arch in result.archs:
        rows = []
        for net in result.fixed_points[arch]:
            rows.append([abs(sine_oscillation(fps) - _target_omega(label)) / _target_omega(label)
                         for label, fps in net.items()])  # fmt: skip
        out[arch] = np.asarray(rows)
    return out


def sine_simulated_population(result, n_steps: int = 1200, skip: int = 200) -> dict[str, np.ndarray]:
    """Per architecture, ``(networks, conditions)`` relative errors :math:`|\\hat\\omega - \\omega| / \\omega` of the
    frequency each network actually produces.

    Every network runs from the zero state for ``n_steps`` steps with the input held at each condition's
    level; :math:`\\hat\\omega` is :func:`oscillation_frequency` of its output after the first ``skip``
    steps (the sustained oscillation, not the transient of the training window).
    """
    labels = list(result.task.conditions)
    omegas = np.array([_target_omega(label) for label in labels])
    inputs = torch.stack([torch.full((n_steps, result.task.n_inputs), float(result.task.conditions[label][0]))
                          for label in labels])  # fmt: skip
    out = {}
    for arch, fit in result.fits.items():
        with torch.no_grad():
            y, _ = fit.model(inputs)  # (networks, conditions, time, 1)
        y = y[..., skip:, 0].double().numpy()
        freq = np.array([[oscillation_frequency(y[n, c]) for c in range(len(labels))] for n in range(y.shape[0])])
        out[arch] = np.abs(freq - omegas) / omegas
    return out


def context_population(result, eig_tol: float = 0.02) -> dict[str, list[dict[str, LineAttractor]]]:
    """:func:`line_attractor` of every network in each context (the cued stream is relevant)."""
    out = {}
    for arch in result.archs:
        out[arch] = [
            {label: line_attractor(fps, relevant=int(label[-1]) - 1, irrelevant=2 - int(label[-1]), eig_tol=eig_tol)
             for label, fps in net.items()}
            for net in result.fixed_points[arch]
        ]  # fmt: skip
    return out
