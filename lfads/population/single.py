"""One torch GRU trained on the N-bit flip-flop: a network with :math:`2^N` known attractors, for checking analysis.

The task (:func:`lfads.population.tasks.generate_flipflop_data`): each of :math:`N` input channels
carries sparse pulses of :math:`\\pm 1`; the target of output channel :math:`k` at time :math:`t` is
the sign of the latest pulse on channel :math:`k` up to :math:`t` (``0`` before the first one).
A network that holds the memories indefinitely has :math:`2^N` attractors (one per memory
pattern) with saddles between them (Sussillo & Barak 2013). Networks trained on finite trials
sometimes hold a memory only as a slow transient instead; simulating the map long after a pulse
tells which.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lfads.population.tasks import generate_flipflop_data

__all__ = ["FlipFlopRNN", "train_flipflop_rnn"]


class FlipFlopRNN(nn.Module):
    """A single-layer GRU with a linear readout: ``y_t = W h_t + b``, ``h_t = GRU(x_t, h_{t-1})``.

    Parameters
    ----------
    n_bits : int
        Input and output channels.
    hidden_size : int
        GRU units.
    """

    def __init__(self, n_bits: int = 3, hidden_size: int = 32) -> None:
        super().__init__()
        self.gru = nn.GRU(n_bits, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, n_bits)

    def forward(self, inputs: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(outputs, states)``, both ``(trials, time, ·)`` from ``inputs`` ``(trials, time, bits)``."""
        states, _ = self.gru(inputs, None if h0 is None else h0.unsqueeze(0))
        return self.readout(states), states


def train_flipflop_rnn(
    hidden_size: int = 32,
    n_bits: int = 3,
    n_steps: int = 500,
    batch_size: int = 64,
    n_time: int = 64,
    lr: float = 1e-2,
    pulse_prob: float = 0.05,
    input_noise: float = 0.0,
    carry_state: bool = False,
    seed: int = 0,
) -> tuple[FlipFlopRNN, list[float]]:
    """Train a :class:`FlipFlopRNN` with Adam on the mean squared error (fresh random trials each step).

    Gaussian noise of standard deviation ``input_noise`` is added to the inputs during training;
    it makes the memory states robust attractors rather than slow points.
    With ``carry_state`` each batch continues the trials of the previous one (final states and
    memories carried over, gradients truncated at batch boundaries), so memories must be held
    for many batches, longer than any single trial.

    Returns
    -------
    model : FlipFlopRNN
        The trained network (evaluation mode).
    losses : list of float
        Training loss per step.
    """
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = FlipFlopRNN(n_bits, hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_steps, eta_min=lr * 0.05)
    losses = []
    h0, memory = None, None
    for _ in range(n_steps):
        data = generate_flipflop_data(batch_size, n_time, n_bits, pulse_prob, generator=gen, initial_targets=memory)
        noisy = data.inputs
        if input_noise > 0:
            noisy = noisy + input_noise * torch.randn(noisy.shape, generator=gen)
        out, states = model(noisy, h0)
        if carry_state:
            h0, memory = states[:, -1].detach(), data.targets[:, -1]
        loss = torch.mean((out - data.targets) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses
