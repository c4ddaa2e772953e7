"""Coordinated dropout: hide input elements from the encoders and score only those.

For each training batch a Bernoulli mask ``m`` with ``P(m = 0) = cd_rate`` is drawn
over the encoder data ``(batch, time, neurons)``. The encoders see
``x * m / (1 - cd_rate)``; the reconstruction cost of held-in elements counts only
where ``m = 0`` (weighted by ``1 / cd_rate`` so its expectation equals the full
cost). A model can therefore not lower its cost by passing a spike straight from
input to output, the identity overfitting that coordinated dropout prevents.
"""

from __future__ import annotations

import torch
from torch import Tensor


def coordinated_dropout_masks(shape: torch.Size, cd_rate: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """Input scale mask and loss weights, both ``shape``.

    Returns
    -------
    input_mask : Tensor
        ``m / (1 - cd_rate)``: multiply the encoder data by it.
    loss_weight : Tensor
        ``(1 - m) / cd_rate``: weight of each held-in element in the reconstruction cost.
    """
    if not 0.0 < cd_rate < 1.0:
        raise ValueError(f"cd_rate must be in (0, 1) to draw masks, got {cd_rate}.")
    keep = torch.rand(shape, device=device) >= cd_rate
    keep = keep.to(torch.float32)
    return keep / (1.0 - cd_rate), (1.0 - keep) / cd_rate

