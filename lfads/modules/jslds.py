"""Jacobian-switching linear dynamics (JSLDS) co-trained with the LFADS generator.

Smith, Linderman & Sussillo (2021): next to the nonlinear generator ``g_t = F(g_{t-1}, u_t)`` an
expansion-point network ``e_t = E(g_{t-1})`` proposes, at every step, the point about which the
generator is linearized, and a switching linear system follows the first-order expansion there:

.. math::

    a_t = e_t + J_h(e_t, u^*)\\,(g_{t-1} - e_t) + J_u(e_t, u^*)\\,(u_t - u^*),\\qquad u^* = 0

Co-training adds three costs to the LFADS objective, each averaged over trials, steps and units:

.. math::

    \\lambda_e \\lVert F(e_t, u^*) - e_t \\rVert^2 \\;+\\; \\lambda_a \\lVert g_t - a_t \\rVert^2
    \\;+\\; \\lambda_r\\, \\mathrm{NLL}\\big(x \\mid \\mathrm{readout}(\\bar W_{fac} a_t)\\big)

The first makes the expansion points fixed points of the generator, the second makes the linear
system a good one-step model of the generator, the third makes its states explain the data. The
Jacobian-vector products are computed with forward-mode automatic differentiation, for all trials and
steps at once (the one-step expansion is parallel over time); no Jacobian matrix is formed during
training.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd import forward_ad

from lfads.modules.decoder import gru_step
from lfads.modules.gru import ClippedGRUCell


class JSLDSOutput(NamedTuple):
    """Per-step JSLDS quantities, each ``(batch, time, gen_dim)``."""

    expansion_points: Tensor  # e_t = E(g_{t-1})
    expansion_images: Tensor  # F(e_t, u*)
    approx_states: Tensor  # a_t, the one-step linear prediction of g_t


def cell_step(cell: ClippedGRUCell, u: Tensor, h: Tensor) -> Tensor:
    """``F(h, u)`` of a :class:`ClippedGRUCell` written with plain ops (supports forward-mode AD)."""
    gi = nn.functional.linear(u, cell.weight_ih, cell.bias_ih)
    return gru_step(gi, h, cell.weight_hh.t(), cell.bias_hh, cell.clip_value)


def linearized_step(cell: ClippedGRUCell, e: Tensor, dh: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``F(e, 0)`` and ``J_h(e, 0) dh + J_u(e, 0) u`` for batches of points, by one forward-mode pass."""
    u_star = torch.zeros_like(u)
    with forward_ad.dual_level():
        e_dual = forward_ad.make_dual(e, dh)
        u_dual = forward_ad.make_dual(u_star, u)
        out = cell_step(cell, u_dual, e_dual)
        image, tangent = forward_ad.unpack_dual(out)
    return image, tangent


class ExpansionPointNetwork(nn.Module):
    r""":math:`e(h) = h + \mathrm{MLP}(h)`, a tanh MLP whose last layer starts at zero (so :math:`e(h) = h` at start).

    Used both co-trained (:class:`JSLDS`) and fitted post hoc
    (:func:`lfads.analysis.jslds.fit_expansion_point_network`).

    Parameters
    ----------
    hidden_size : int
        ``H``, the generator size.
    width : int
        Units per hidden layer.
    depth : int
        Number of hidden layers (>= 1).
    """

    def __init__(self, hidden_size: int, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = hidden_size
        for _ in range(max(1, depth)):
            layers += [nn.Linear(size, width), nn.Tanh()]
            size = width
        last = nn.Linear(size, hidden_size)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.mlp = nn.Sequential(*layers)
        self.hidden_size = hidden_size

    def forward(self, h: Tensor) -> Tensor:
        """Expansion points ``(batch, H)`` for states ``(batch, H)``."""
        return h + self.mlp(h)


class JSLDS(nn.Module):
    """Expansion-point network plus the one-step and rollout JSLDS of a generator cell.

    Parameters
    ----------
    gen_dim : int
        Generator size.
    hidden_dim : int
        Hidden size of the expansion-point network.
    """

    def __init__(self, gen_dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.expansion = ExpansionPointNetwork(gen_dim, hidden_dim, depth=1)

    def one_step(
        self, cell: ClippedGRUCell, gen_states: Tensor, g0: Tensor, inputs: Tensor, steps: Tensor | None = None
    ) -> JSLDSOutput:
        """Expansion about ``E(g_{t-1})`` for every step at once.

        ``gen_states`` ``(batch, time, gen_dim)`` are the generator's states after each step, ``g0``
        ``(batch, gen_dim)`` its initial state, ``inputs`` ``(batch, time, input_dim)`` the generator inputs.
        ``steps`` (1-D indices into time) restricts the expansion to those steps; the outputs then have
        ``len(steps)`` time entries.
        """
        prev = torch.cat([g0.unsqueeze(1), gen_states[:, :-1]], 1)
        if steps is not None:
            prev, inputs = prev[:, steps], inputs[:, steps]
        shape = prev.shape
        flat_prev = prev.reshape(-1, shape[-1])
        e = self.expansion(flat_prev)
        image, tangent = linearized_step(cell, e, flat_prev - e, inputs.reshape(flat_prev.shape[0], inputs.shape[-1]))
        approx = e + tangent
        return JSLDSOutput(e.view(shape), image.view(shape), approx.view(shape))

    @torch.no_grad()
    def rollout(self, cell: ClippedGRUCell, g0: Tensor, inputs: Tensor) -> JSLDSOutput:
        """Run the switching linear system on its own from ``g0`` with the given inputs ``(batch, time, input_dim)``."""
        a = g0
        es, images, states = [], [], []
        for t in range(inputs.shape[1]):
            e = self.expansion(a)
            image, tangent = linearized_step(cell, e, a - e, inputs[:, t])
            a = e + tangent
            es.append(e)
            images.append(image)
            states.append(a)
        return JSLDSOutput(torch.stack(es, 1), torch.stack(images, 1), torch.stack(states, 1))


def relative_error(approx: Tensor, target: Tensor) -> Tensor:
    """``||approx_t - target_t|| / ||target_t||`` per trial and step, ``(batch, time)``."""
    return (approx - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-12)
