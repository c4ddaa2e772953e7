"""GRU cells used by the controller and the generator.

The cell follows ``torch.nn.GRUCell`` exactly (gate order reset, update, candidate)
and adds a symmetric clip on the new state, as in LFADS:

.. math::

    r &= \\sigma(W_{ir} u + b_{ir} + W_{hr} h + b_{hr}) \\\\
    z &= \\sigma(W_{iz} u + b_{iz} + W_{hz} h + b_{hz}) \\\\
    n &= \\tanh(W_{in} u + b_{in} + r \\odot (W_{hn} h + b_{hn})) \\\\
    h' &= \\mathrm{clip}\\big((1 - z) \\odot n + z \\odot h,\\; -c,\\; c\\big)

Because the parameters are those of ``nn.GRUCell``, the fused ATen kernel
``torch.gru_cell`` computes a step in one call, and analysis code that knows the
GRU Jacobian in closed form works on this cell unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ClippedGRUCell(nn.GRUCell):
    """``nn.GRUCell`` whose output state is clipped to ``[-clip_value, clip_value]``.

    Parameters
    ----------
    input_size : int
        Dimension of the input ``u``.
    hidden_size : int
        Dimension of the state ``h``.
    clip_value : float
        Clip for the state; ``inf`` disables it.
    """

    def __init__(self, input_size: int, hidden_size: int, clip_value: float = float("inf")) -> None:
        super().__init__(input_size, hidden_size, bias=True)
        self.clip_value = float(clip_value)

    def forward(self, input: Tensor, hidden: Tensor) -> Tensor:  # noqa: A002 - torch naming
        """One step. ``input``: ``(batch, input_size)``; ``hidden``: ``(batch, hidden_size)``."""
        h = torch.gru_cell(input, hidden, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.clip_value != float("inf"):
            h = h.clamp(-self.clip_value, self.clip_value)
        return h
