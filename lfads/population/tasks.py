"""Neuroscience tasks for recurrent networks: seeded trials and the dynamics a solution needs.

Every generator returns a :class:`TaskData` of float32 tensors ``(trials, time, channels)``:
``inputs`` ``(trials, time, I)``, ``targets`` ``(trials, time, O)`` and ``mask`` ``(trials, time, O)``
(``1`` where the output is scored). A network :math:`h_t = F(h_{t-1}, x_t)`, :math:`y_t = W h_t + b`
is trained on :math:`\\sum m_{t,k} (y_{t,k} - y^*_{t,k})^2 / \\sum m_{t,k}`.

* **N-bit flip-flop** (:func:`generate_flipflop_data`): sparse :math:`\\pm 1` pulses on each of
  :math:`N` channels; output :math:`k` holds the sign of the latest pulse on channel :math:`k`.
  Theory: :math:`2^N` stable fixed points (one per memory, readouts at the corners
  :math:`\\{\\pm 1\\}^N`) with index-1 saddles between memories that differ in one bit, the edges of
  an :math:`N`-cube (Sussillo & Barak 2013).
* **Sine-wave generation** (:func:`generate_sine_data`): a static input level :math:`x_j` selects
  a frequency :math:`\\omega_j` (radians per step); the target is :math:`\\sin(\\omega_j t)`. Theory:
  for each input a fixed point whose linearisation has a complex pair
  :math:`|\\lambda| e^{\\pm i \\omega_j}`, i.e. an oscillation of angle :math:`\\omega_j` per step
  (Sussillo & Barak 2013; Maheswaranathan et al. 2019).
* **Context-dependent integration** (:func:`generate_context_data`): two noisy evidence streams and a
  one-hot context cue; the output reports the sign of the summed evidence of the cued stream, or
  (``report="integral"``) the running sum itself, which only a leak- and runaway-free integrator matches.
  Theory: for each context, a line attractor (a continuum of slow points with one eigenvalue
  near 1) along which the relevant evidence is integrated (Mante et al. 2013).

:class:`Task` bundles a generator with its sizes and the inputs at which the theory places the fixed
points; :func:`get_task` builds one by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from lfads.errors import LFADSDataError, check_setting

__all__ = [
    "TASKS",
    "Task",
    "TaskData",
    "context_integration_task",
    "flipflop_task",
    "generate_context_data",
    "generate_flipflop_data",
    "generate_sine_data",
    "get_task",
    "sine_frequencies",
    "sine_input_levels",
    "sine_task",
]


class TaskData(NamedTuple):
    """``inputs`` ``(trials, time, I)``, ``targets`` and ``mask`` ``(trials, time, O)``, all float32."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor


# ----------------------------------------------------------------------------------------------------------------------
# N-bit flip-flop
# ----------------------------------------------------------------------------------------------------------------------


def generate_flipflop_data(
    n_trials: int,
    n_time: int,
    n_bits: int = 3,
    pulse_prob: float = 0.05,
    generator: torch.Generator | None = None,
    initial_targets: Tensor | None = None,
) -> TaskData:
    """Random flip-flop trials.

    .. math:: x_{t,k} \\in \\{-1, 0, 1\\},\\ P(x_{t,k} \\ne 0) = p;\\qquad
              y_{t,k} = x_{s,k},\\ s = \\max\\{s \\le t : x_{s,k} \\ne 0\\}\\ (y_{0,k}^{init} \\text{ if none})

    Parameters
    ----------
    n_trials, n_time, n_bits : int
        Shape ``(trials, time, bits)``; inputs, targets and mask all have it.
    pulse_prob : float
        :math:`p`, probability of a pulse per time step and channel.
    generator : torch.Generator, optional
        Random source (seed it for reproducible data).
    initial_targets : Tensor, optional
        ``(trials, bits)`` memory held before the first pulse (zeros by default); used to continue
        trials across batches.

    Returns
    -------
    TaskData
        The mask is all ones (every step is scored).
    """
    shape = (n_trials, n_time, n_bits)
    pulse = torch.rand(shape, generator=generator) < pulse_prob
    sign = torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)
    inputs = pulse.float() * sign
    # index of the latest pulse up to t (0 where none yet, then masked)
    t_idx = torch.arange(n_time).view(1, n_time, 1).expand(shape)
    last = torch.cummax(torch.where(pulse, t_idx, torch.zeros_like(t_idx)), dim=1).values
    seen = torch.cummax(pulse.int(), dim=1).values.bool()
    targets = torch.gather(inputs, 1, last) * seen
    if initial_targets is not None:
        targets = torch.where(seen, targets, initial_targets.unsqueeze(1).to(targets.dtype))
    return TaskData(inputs, targets, torch.ones(shape))


# ----------------------------------------------------------------------------------------------------------------------
# Sine-wave generation
# ----------------------------------------------------------------------------------------------------------------------


def sine_frequencies(n_frequencies: int = 51, omega_min: float = 0.1, omega_max: float = 0.6) -> np.ndarray:
    """``(n_frequencies,)`` angular frequencies :math:`\\omega_j` (radians per step), evenly spaced."""
    return np.linspace(omega_min, omega_max, n_frequencies)


def sine_input_levels(n_frequencies: int = 51) -> np.ndarray:
    """``(n_frequencies,)`` static input levels :math:`x_j = j / J + 0.25` that select :math:`\\omega_j`."""
    return np.arange(n_frequencies) / n_frequencies + 0.25


def generate_sine_data(
    n_trials: int,
    n_time: int,
    n_frequencies: int = 51,
    omega_min: float = 0.1,
    omega_max: float = 0.6,
    generator: torch.Generator | None = None,
    frequency_index: Tensor | None = None,
) -> TaskData:
    """Sine-wave trials: each draws :math:`j` uniformly, holds :math:`x_t = x_j`, targets :math:`\\sin(\\omega_j t)`.

    .. math:: x_t = \\frac{j}{J} + 0.25,\\qquad y^*_t = \\sin(\\omega_j t),\\quad t = 0, \\dots, T - 1

    Parameters
    ----------
    n_trials, n_time : int
        Shape ``(trials, time, 1)``.
    n_frequencies, omega_min, omega_max : int, float, float
        :math:`J` frequencies evenly spaced in :math:`[\\omega_{min}, \\omega_{max}]` (:func:`sine_frequencies`).
    generator : torch.Generator, optional
        Random source for the frequency of each trial.
    frequency_index : Tensor, optional
        ``(trials,)`` int: the frequency of each trial, instead of random draws.
    """
    if frequency_index is None:
        frequency_index = torch.randint(n_frequencies, (n_trials,), generator=generator)
    j = torch.as_tensor(frequency_index, dtype=torch.long)
    omega = torch.as_tensor(sine_frequencies(n_frequencies, omega_min, omega_max), dtype=torch.float64)[j]
    level = torch.as_tensor(sine_input_levels(n_frequencies), dtype=torch.float64)[j]
    t = torch.arange(n_time, dtype=torch.float64)
    targets = torch.sin(omega[:, None] * t[None, :]).unsqueeze(2).float()
    inputs = level.view(-1, 1, 1).expand(j.shape[0], n_time, 1).float().contiguous()
    return TaskData(inputs, targets, torch.ones_like(targets))


# ----------------------------------------------------------------------------------------------------------------------
# Context-dependent integration
# ----------------------------------------------------------------------------------------------------------------------


def generate_context_data(
    n_trials: int,
    n_time: int,
    max_coherence: float = 0.2,
    noise_std: float = 1.0,
    response_steps: int = 10,
    generator: torch.Generator | None = None,
    cued: int | None = None,
    report: str = "sign",
) -> TaskData:
    """Context-dependent integration trials (Mante et al. 2013).

    Inputs ``(trials, time, 4)``: evidence streams :math:`e^{(1)}, e^{(2)}` and a one-hot context cue
    :math:`(c_1, c_2)` held for the whole trial,

    .. math:: e^{(a)}_t = \\mu_a + \\sigma \\epsilon_t,\\quad \\mu_a \\sim U(-\\mu_{max}, \\mu_{max}),\\qquad
              S_t = \\sum_{s \\le t} e^{(k)}_s,\\qquad
              y^*_t = \\operatorname{sign}(S_t)\\ \\text{or}\\ y^*_t = \\frac{S_t}{\\sigma \\sqrt{T}}

    with :math:`k` the cued stream (``report`` ``"sign"``: the choice; ``"integral"``: the running
    integral in units of its noise standard deviation at the end of the trial, which only an integrator
    without leak or runaway along its line reproduces at every step). Targets ``(trials, time, 1)`` are
    defined at every step; the mask scores only the last ``response_steps`` steps.

    Parameters
    ----------
    n_trials, n_time : int
        Trials and steps.
    max_coherence : float
        :math:`\\mu_{max}`, largest mean evidence per step.
    noise_std : float
        :math:`\\sigma`, noise per step.
    response_steps : int
        Scored steps at the end of each trial.
    generator : torch.Generator, optional
        Random source.
    cued : int, optional
        Cue this stream (0 or 1) in every trial instead of drawing one per trial.
    report : str
        ``"sign"`` or ``"integral"``: what the output reports.
    """
    if not 0 < response_steps <= n_time:
        raise LFADSDataError(f"response_steps={response_steps} must lie in [1, n_time={n_time}].")
    if report not in ("sign", "integral"):
        raise LFADSDataError(f"report={report!r}: the context task's output reports 'sign' or 'integral'.")
    mean = (2.0 * torch.rand(n_trials, 1, 2, generator=generator) - 1.0) * max_coherence
    evidence = mean + noise_std * torch.randn(n_trials, n_time, 2, generator=generator)
    context = torch.randint(2, (n_trials,), generator=generator)
    if cued is not None:
        context = torch.full((n_trials,), int(cued))
    cue = torch.nn.functional.one_hot(context, 2).float().unsqueeze(1).expand(n_trials, n_time, 2)
    inputs = torch.cat([evidence, cue], dim=2)
    relevant = torch.gather(evidence, 2, context.view(-1, 1, 1).expand(n_trials, n_time, 1))
    running = torch.cumsum(relevant.double(), dim=1)
    scale = noise_std * np.sqrt(n_time)
    targets = (torch.sign(running) if report == "sign" else running / scale).float()
    mask = torch.zeros(n_trials, n_time, 1)
    mask[:, n_time - response_steps :] = 1.0
    return TaskData(inputs, targets, mask)


# ----------------------------------------------------------------------------------------------------------------------
# Task objects
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A task: a seeded trial generator with its sizes and its fixed-point conditions.

    Attributes
    ----------
    name : str
        ``"flipflop"``, ``"sine"`` or ``"context"``.
    n_inputs, n_outputs, n_time : int
        Input and output channels, steps per training trial.
    sample : callable
        ``sample(n_trials, generator) -> TaskData``.
    conditions : dict of str to np.ndarray
        The inputs :math:`u^*` ``(I,)`` at which the fixed points are sought, by label.
    condition_sample : callable
        ``condition_sample(label, n_trials, generator) -> TaskData``: trials whose states visit the
        region of that condition's fixed points (the initial states of the search are drawn from them).
    target_loss : float
        Default stopping loss of the trainer.
    settings : dict
        The task parameters (for the record).
    continue_sample : callable or None
        ``continue_sample(n_trials, generator, previous) -> TaskData``: trials that continue ``previous``
        (the same trials, later in time), for training with the state carried across batches; ``None``
        where the task has no such continuation.
    slow_points : dict or None
        For tasks whose solution is a continuum of *slow* points (a line attractor) rather than isolated
        fixed points: ``{"adam_steps": k, "max_speed": q}``: the search is ``k`` Adam steps on
        :math:`q` without the Newton phase and without merging (either would carry every start to one of
        the few exact fixed points on the line), and every end state with :math:`q \\le` ``max_speed`` is kept.
    """

    name: str
    n_inputs: int
    n_outputs: int
    n_time: int
    sample: Callable[[int, torch.Generator | None], TaskData]
    conditions: dict[str, np.ndarray]
    condition_sample: Callable[[str, int, torch.Generator | None], TaskData]
    target_loss: float
    settings: dict = field(default_factory=dict)
    continue_sample: Callable[[int, torch.Generator | None, TaskData], TaskData] | None = None
    slow_points: dict | None = None


def flipflop_task(n_bits: int = 3, n_time: int = 64, pulse_prob: float = 0.05, target_loss: float = 0.01) -> Task:
    """The :math:`N`-bit flip-flop; fixed points sought at zero input; trials can be continued (memories carried)."""
    where = "flipflop task"
    check_setting(where, "n_bits", n_bits, 1, integer=True)
    check_setting(where, "n_time", n_time, 1, integer=True)
    check_setting(where, "pulse_prob", pulse_prob, 0.0, strict=True, maximum=1.0)
    check_setting(where, "target_loss", target_loss, 0.0)
    return Task(
        "flipflop", n_bits, n_bits, n_time,
        lambda n, g: generate_flipflop_data(n, n_time, n_bits, pulse_prob, generator=g),
        {"zero": np.zeros(n_bits)},
        lambda label, n, g: generate_flipflop_data(n, 4 * n_time, n_bits, pulse_prob, generator=g),
        target_loss,
        {"n_bits": n_bits, "n_time": n_time, "pulse_prob": pulse_prob},
        lambda n, g, prev: generate_flipflop_data(n, n_time, n_bits, pulse_prob, generator=g,
                                                  initial_targets=prev.targets[:, -1]),
    )  # fmt: skip


def _sine_label(omega: float) -> str:
    return f"omega={omega:.4f}"


def sine_task(
    n_frequencies: int = 51,
    omega_min: float = 0.1,
    omega_max: float = 0.6,
    n_time: int = 100,
    n_conditions: int = 5,
    target_loss: float = 0.01,
) -> Task:
    """Sine-wave generation; fixed points sought at ``n_conditions`` input levels spread over the range."""
    where = "sine task"
    for name, value in (("n_frequencies", n_frequencies), ("n_time", n_time), ("n_conditions", n_conditions)):
        check_setting(where, name, value, 1, integer=True)
    check_setting(where, "omega_min", omega_min, 0.0, strict=True)
    check_setting(where, "omega_max", omega_max, omega_min)
    check_setting(where, "target_loss", target_loss, 0.0)
    levels, omegas = sine_input_levels(n_frequencies), sine_frequencies(n_frequencies, omega_min, omega_max)
    picks = np.unique(np.linspace(0, n_frequencies - 1, n_conditions).round().astype(int))
    index = {_sine_label(omegas[j]): int(j) for j in picks}
    return Task(
        "sine", 1, 1, n_time,
        lambda n, g: generate_sine_data(n, n_time, n_frequencies, omega_min, omega_max, generator=g),
        {_sine_label(omegas[j]): np.array([levels[j]]) for j in picks},
        lambda label, n, g: generate_sine_data(n, n_time, n_frequencies, omega_min, omega_max,
                                               frequency_index=torch.full((n,), index[label])),
        target_loss,
        {"n_frequencies": n_frequencies, "omega_min": omega_min, "omega_max": omega_max, "n_time": n_time,
         "n_conditions": n_conditions},
    )  # fmt: skip


def context_integration_task(
    n_time: int = 50,
    max_coherence: float = 0.2,
    noise_std: float = 1.0,
    response_steps: int = 10,
    target_loss: float = 0.15,
    report: str = "sign",
) -> Task:
    """Context-dependent integration; fixed points sought with no evidence and each context cued."""
    where = "context task"
    check_setting(where, "n_time", n_time, 1, integer=True)
    check_setting(where, "response_steps", response_steps, 1, integer=True, maximum=n_time)
    for name, value in (("max_coherence", max_coherence), ("noise_std", noise_std), ("target_loss", target_loss)):
        check_setting(where, name, value, 0.0)
    if report not in ("sign", "integral"):
        raise LFADSDataError(f"context task: report={report!r}; the output reports 'sign' or 'integral'.")
    return Task(
        "context", 4, 1, n_time,
        lambda n, g: generate_context_data(n, n_time, max_coherence, noise_std, response_steps, generator=g,
                                           report=report),
        {"context 1": np.array([0.0, 0.0, 1.0, 0.0]), "context 2": np.array([0.0, 0.0, 0.0, 1.0])},
        lambda label, n, g: generate_context_data(n, n_time, max_coherence, noise_std, response_steps, generator=g,
                                                  cued=int(label[-1]) - 1, report=report),
        target_loss,
        {"n_time": n_time, "max_coherence": max_coherence, "noise_std": noise_std, "response_steps": response_steps,
         "report": report},
        slow_points={"adam_steps": 1000, "max_speed": 1e-4},
    )  # fmt: skip


TASKS: dict[str, Callable[..., Task]] = {
    "flipflop": flipflop_task,
    "sine": sine_task,
    "context": context_integration_task,
}


def get_task(name: str, **settings: float) -> Task:
    """The task called ``name`` (a key of :data:`TASKS`), with keyword settings passed to its builder.

    Raises
    ------
    LFADSDataError
        For an unknown name or setting, or a setting out of its range.
    """
    if name not in TASKS:
        raise LFADSDataError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")
    known = list(inspect.signature(TASKS[name]).parameters)
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise LFADSDataError(f"{name} task: unknown settings {unknown}; it takes {known}.")
    return TASKS[name](**settings)

