"""Dropout with cheap random masks.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on a CPU costs several
nanoseconds per element; LFADS draws a mask for every generator state of every
step, so this shows up in training time. Here CPU masks come from random bytes:
``torch.Tensor.random_`` on int64 words (7 usable bytes each, the top byte of a
non-negative int64 is not uniform), compared with a threshold. The keep
probability is therefore rounded to a multiple of 1/256 on CPU, and the kept
values are scaled by the rounded probability, so the expectation of the output
equals the input exactly. On other devices ``torch.rand`` is used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def keep_mask(shape: tuple[int, ...], drop_rate: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A dropout mask of ``shape``: 0 with probability ``drop_rate`` (rounded on CPU), else ``1 / keep``."""
    if device.type != "cpu":
        return (torch.rand(shape, device=device) >= drop_rate).to(dtype) / (1.0 - drop_rate)
    n = 1
    for s in shape:
        n *= s
    threshold = int(round((1.0 - drop_rate) * 256))
    if threshold <= 0:
        return torch.zeros(shape, dtype=dtype)
    if threshold >= 256:
        return torch.ones(shape, dtype=dtype)
    words = -(-n // 7)
    raw = torch.empty(words, dtype=torch.int64).random_().view(torch.uint8).view(words, 8)[:, :7]
    mask = raw.reshape(-1)[:n].view(shape) < threshold
    return mask.to(dtype) * (256.0 / threshold)


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout`` using :func:`keep_mask`."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * keep_mask(tuple(x.shape), self.p, x.device, x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"
