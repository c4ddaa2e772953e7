"""The reference a user would write without this tool: one network at a time, with torch's own recurrent modules.

Each network is torch's ``nn.RNN`` (vanilla: ``tanh``; relu: ``relu``), ``nn.GRU`` or ``nn.LSTM`` (the UGRNN,
which torch lacks, is a loop over time steps of its update :math:`h \\leftarrow g h + (1 - g) c` with
:math:`[g; c] = [\\sigma; \\tanh](W_i u + b_i + W_h h + b_h)`), and an ``nn.Linear`` readout, trained with
``torch.optim.Adam``, the same learning-rate decay, ``nn.utils.clip_grad_norm_`` and the same stopping rule as
:func:`lfads.population.train.train_population`. It starts from the same initial weights
(:meth:`lfads.population.train.StackedRNN.initialize`, whose layout is torch's) and sees the same trials, so
it is the same training up to rounding: ``tests/test_plain_loop.py`` pins the losses to those of the
batched trainer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lfads.population.tasks import Task, TaskData
from lfads.population.train import StackedRNN, TrainConfig, carried_loss, masked_mse, sample_batch, training_setup

__all__ = ["PlainFit", "PlainNetwork", "train_plain_loop"]


class _UGRNN(nn.Module):
    """The update-gate RNN stepped through time (torch has no module for it)."""

    def __init__(self, n_inputs: int, units: int) -> None:
        super().__init__()
        self.input = nn.Linear(n_inputs, 2 * units)
        self.recurrent = nn.Linear(units, 2 * units)

    def forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        drive, states = self.input(x), []
        h = h[0]
        for t in range(x.shape[1]):
            g, c = (drive[:, t] + self.recurrent(h)).chunk(2, dim=-1)
            g = torch.sigmoid(g)
            h = g * h + (1.0 - g) * torch.tanh(c)
            states.append(h)
        return torch.stack(states, dim=1), h[None]


class PlainNetwork(nn.Module):
    """One network of ``arch``: ``y_t = W h_t + b`` on torch's recurrent module, from ``stacked`` network ``index``."""

    def __init__(self, stacked: StackedRNN, index: int = 0) -> None:
        super().__init__()
        arch, units = stacked.arch, stacked.units
        n_inputs = stacked.weight_ih.shape[2]
        self.arch = arch
        if arch == "ugrnn":
            self.rnn = _UGRNN(n_inputs, units)
            names = {"input.weight": "weight_ih", "input.bias": "bias_ih",
                     "recurrent.weight": "weight_hh", "recurrent.bias": "bias_hh"}
        else:
            module = {"gru": nn.GRU, "lstm": nn.LSTM}.get(arch)
            self.rnn = (module(n_inputs, units, batch_first=True) if module is not None
                        else nn.RNN(n_inputs, units, nonlinearity="tanh" if arch == "vanilla" else "relu",
                                    batch_first=True))
            names = {f"{k}_l0": k for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        self.readout = nn.Linear(units, stacked.readout_weight.shape[1])
        with torch.no_grad():
            own = dict(self.rnn.named_parameters())
            for mine, theirs in names.items():
                own[mine].copy_(getattr(stacked, theirs)[index])
            self.readout.weight.copy_(stacked.readout_weight[index])
            self.readout.bias.copy_(stacked.readout_bias[index])

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | Tensor | None) -> tuple[Tensor, Tensor, object]:
        """Outputs ``(B, T, O)``, states ``h`` ``(B, T, H)`` and the final recurrent state (torch's form)."""
        if state is None:
            zeros = x.new_zeros(1, x.shape[0], self.readout.weight.shape[1])
            state = (zeros, zeros.clone()) if self.arch == "lstm" else zeros
        h, last = self.rnn(x, state)
        return self.readout(h), h, last


@dataclass
class PlainFit:
    """What :func:`train_plain_loop` reports for one network: training ``losses`` ``(steps,)``, ``stop_step``,
    ``reached`` (the target), the evaluation loss of the final weights and ``wall_time`` (seconds)."""

    losses: np.ndarray
    stop_step: int
    reached: bool
    final_loss: float
    wall_time: float


def _detached(state: object) -> object:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _evaluate(net: PlainNetwork, chunks: list[TaskData]) -> float:
    """:func:`lfads.population.train.carried_loss`, the evaluation of ``train_population``, for one network."""

    def run(x: Tensor, state: object) -> tuple[Tensor, object]:
        out, _, last = net(x, state)
        return out[None], last

    return float(carried_loss(run, chunks)[0])


def train_plain_network(task: Task, arch: str, seed: int, units: int, config: TrainConfig) -> PlainFit:
    """Train network ``seed`` alone with torch's module (module docstring)."""
    target = task.target_loss if config.target_loss is None else float(config.target_loss)
    start = time.perf_counter()
    stacked = StackedRNN.initialize(arch, [seed], units, task.n_inputs, task.n_outputs, config.identity_candidate)
    net = PlainNetwork(stacked)
    params = list(net.parameters())
    opt, sched, gen, eval_data = training_setup(params, task, config)
    data, state, losses, stop, reached = None, None, [], config.max_steps, False
    for step in range(config.max_steps):
        data = sample_batch(task, config.batch_size, gen, data if config.carry_state else None)
        x = data.inputs
        if config.input_noise > 0:
            x = x + config.input_noise * torch.randn(x.shape, generator=gen)
        out, h, last = net(x, state if config.carry_state else None)
        state = _detached(last)
        loss = masked_mse(out[None], data.targets, data.mask)[0]
        objective = loss + config.rate_penalty * h.pow(2).mean() if config.rate_penalty > 0 else loss
        opt.zero_grad()
        objective.backward()
        nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % config.check_every == 0 or step + 1 == config.max_steps:
            if _evaluate(net, eval_data) < target:
                stop, reached = step + 1, True
                break
    final = _evaluate(net, eval_data)
    return PlainFit(np.asarray(losses), stop, reached, final, time.perf_counter() - start)


def train_plain_loop(
    task: Task, arch: str, seeds: Sequence[int], units: int = 64, config: TrainConfig | None = None
) -> list[PlainFit]:
    """The networks ``seeds`` trained one after the other with torch's modules, one fit each."""
    config = config or TrainConfig()
    return [train_plain_network(task, arch, int(seed), units, config) for seed in seeds]
