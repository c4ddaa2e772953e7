"""Regularizers: L2 on recurrent kernels and the ramps that phase in L2 and KL costs.

.. math::

    \\mathcal L_{L2} = \\rho_{L2}(e) \\sum_{c} \\lambda_c\\,
    \\frac{1}{2} \\frac{\\lVert W^{hh}_c \\rVert_F^2}{|W^{hh}_c|},
    \\qquad \\rho(e) = \\mathrm{clip}\\Big(\\frac{e - e_0}{\\Delta e}, 0, 1\\Big)

``c`` runs over the IC encoder, CI encoder, controller and generator; ``e`` is the
(fractional) epoch, ``e_0`` the start and ``\\Delta e`` the length of the ramp.
"""

from __future__ import annotations

from torch import Tensor, nn


def linear_ramp(epoch: float, start: float, length: float) -> float:
    """Weight ramping linearly from 0 at ``start`` to 1 at ``start + length`` (epochs)."""
    if epoch < start:
        return 0.0
    if length <= 0:
        return 1.0
    return min(1.0, (epoch - start) / length)


def recurrent_l2(module: nn.Module | None) -> Tensor | float:
    """``1/2 * mean(W_hh ** 2)`` summed over the recurrent kernels of a GRU module (0 if None)."""
    if module is None:
        return 0.0
    total: Tensor | float = 0.0
    for name, p in module.named_parameters():
        if "weight_hh" in name:
            total = total + 0.5 * p.pow(2).sum() / p.numel()
    return total
