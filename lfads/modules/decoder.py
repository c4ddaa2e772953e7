"""Decoder: the controller and generator loop that produces factors.

.. math::

    g_0 &= W_{g_0}\\, z,\\quad z \\sim q(z \\mid x) \\\\
    c_t &= \\mathrm{GRU}_{con}\\big([\\tilde e_t;\\ f_{t-1}],\\ c_{t-1}\\big) \\\\
    u_t &\\sim \\mathcal N\\big(\\mu_u(c_t),\\ \\sigma_u^2(c_t)\\big) \\\\
    g_t &= \\mathrm{GRU}_{gen}\\big([u_t;\\ v_t],\\ g_{t-1}\\big) \\\\
    f_t &= \\bar W_{fac}\\, \\mathrm{dropout}(g_t),\\quad \\bar W_{fac} \\text{ rows of unit norm}

Glossary: ``z`` initial condition (``ic_dim``), ``c`` controller state (``con_dim``),
``u`` inferred inputs (``co_dim``), ``v`` external inputs (``ext_input_dim``), ``g``
generator state (``gen_dim``), ``f`` factors (``fac_dim``), ``\\tilde e`` CI encodings.

Speed: the time loop is the only sequential part of LFADS, so everything that
does not depend on the previous step is computed outside it in one batched call:
the CI and external-input parts of each cell's input gates, the noise, and the
dropout masks. The controller reads ``f_{t-1} = \\bar W_{fac} d_{t-1}`` through the
product of its weights with ``\\bar W_{fac}``, so factors are computed once after
the loop. Each step is then two small matrix products per cell plus elementwise
GRU arithmetic.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lfads.modules.dropout import FastDropout, keep_mask
from lfads.modules.gru import ClippedGRUCell
from lfads.modules.recurrence import ControllerGeneratorLoop, fused_loops, gru_sequence
from lfads.modules.recurrence import full_precision as _full


class DecoderOutput(NamedTuple):
    """Per-step decoder outputs, each ``(batch, time, dim)``."""

    gen_states: Tensor
    factors: Tensor
    co_means: Tensor  # (batch, time, co_dim); empty last dim in autonomous mode
    co_stds: Tensor
    inferred_inputs: Tensor  # the inputs u_t that drove the generator
    con_states: Tensor
    gen_init: Tensor  # (batch, gen_dim): g_0


def gru_step(gi: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor, clip: float) -> Tensor:
    """One ``nn.GRUCell`` step from precomputed input gates ``gi`` ``(batch, 3H)``.

    ``w_hh_t`` is the transposed recurrent weight ``(H, 3H)``; the new state is clipped to ``[-clip, clip]``.
    """
    hidden = h.shape[1]
    gh = torch.addmm(b_hh, h, w_hh_t)
    rz = torch.sigmoid(gi[:, : 2 * hidden] + gh[:, : 2 * hidden])
    r, z = rz[:, :hidden], rz[:, hidden:]
    n = torch.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
    h_new = n + z * (h - n)
    return h_new.clamp(-clip, clip)


class Decoder(nn.Module):
    """Controller, generator and factor readout of LFADS.

    Parameters
    ----------
    ic_dim, gen_dim, con_dim, co_dim, fac_dim : int
        Sizes (see the glossary above). ``co_dim = 0`` or ``con_dim = 0`` makes the
        generator autonomous (no controller, no inferred inputs).
    ci_dim : int
        Size of the CI encodings (``2 * ci_enc_dim``).
    ext_input_dim : int
        Size of the external inputs.
    cell_clip : float
        State clip of both cells.
    dropout_rate : float
        Dropout on the sampled IC and on generator states before the factors.
    """

    def __init__(
        self,
        ic_dim: int,
        gen_dim: int,
        con_dim: int,
        co_dim: int,
        ci_dim: int,
        ext_input_dim: int,
        fac_dim: int,
        cell_clip: float,
        dropout_rate: float,
    ) -> None:
        super().__init__()
        self.use_con = co_dim > 0 and con_dim > 0
        self.co_dim = co_dim if self.use_con else 0
        self.ci_dim = ci_dim
        self.ext_input_dim = ext_input_dim
        self.cell_clip = cell_clip
        self.dropout_rate = dropout_rate
        self.ic_to_g0 = nn.Linear(ic_dim, gen_dim)
        self.generator = ClippedGRUCell(self.co_dim + ext_input_dim, gen_dim, cell_clip)
        self.fac_linear = nn.Linear(gen_dim, fac_dim, bias=False)
        if self.use_con:
            self.controller = ClippedGRUCell(ci_dim + fac_dim, con_dim, cell_clip)
            self.con_h0 = nn.Parameter(torch.zeros(1, con_dim))
            self.co_linear = nn.Linear(con_dim, 2 * co_dim)
        self.dropout = FastDropout(dropout_rate)

    def factor_weight(self) -> Tensor:
        """Row-normalized factor weights ``(fac_dim, gen_dim)``."""
        w = self.fac_linear.weight
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def forward(
        self, ic: Tensor, ci: Tensor | None, ext_input: Tensor, sample: bool = True, co_noise: Tensor | None = None
    ) -> DecoderOutput:
        """Run the loop.

        Parameters
        ----------
        ic : Tensor
            Initial condition ``(batch, ic_dim)`` (a posterior sample or mean).
        ci : Tensor or None
            CI encodings ``(batch, time, ci_dim)``; ``None`` in autonomous mode.
        ext_input : Tensor
            ``(batch, time, ext_input_dim)``; its time axis sets the number of steps.
        sample : bool
            Sample the inferred inputs (True) or use the posterior means.
        co_noise : Tensor, optional
            Standard normal noise ``(time, batch, co_dim)`` for the inferred-input samples
            (``u_t = mu_t + sigma_t * noise[t]``); drawn here when None.
        """
        batch, n_steps = ext_input.shape[:2]
        gen, drop_p = self.generator, self.dropout_rate if self.training else 0.0
        gen_h = g0 = self.ic_to_g0(self.dropout(ic))
        fac_w = self.factor_weight()
        # Dropout masks for all steps at once (step 0 is the initial state).
        masks = keep_mask((n_steps + 1, batch, gen_h.shape[1]), drop_p, ic.device, gen_h.dtype) if drop_p > 0 else None
        co = self.co_dim
        g_w_ih = gen.weight_ih
        if co_noise is not None and tuple(co_noise.shape) != (n_steps, batch, self.co_dim):
            raise ValueError(f"co_noise has shape {tuple(co_noise.shape)}; expected {(n_steps, batch, self.co_dim)}.")
        if fused_loops():  # the recurrence backend (lfads.runtime) is not "reference"
            return self._fused(gen_h, ci, ext_input, fac_w, masks, sample, co_noise)
        ext_gates = nn.functional.linear(ext_input, g_w_ih[:, co:], gen.bias_ih)
        if masks is not None:
            masks = masks.unbind(0)
        ext_gates = ext_gates.unbind(1)
        g_whh_t, g_bhh = gen.weight_hh.t(), gen.bias_hh
        clip = self.cell_clip
        gen_list, drop_list, con_list, co_list, u_list = [], [], [], [], []
        gd = gen_h * masks[0] if masks is not None else gen_h
        if self.use_con:
            con = self.controller
            c_w_ih = con.weight_ih
            ci_gates = nn.functional.linear(ci, c_w_ih[:, : self.ci_dim], con.bias_ih).unbind(1)
            c_fac_t = (c_w_ih[:, self.ci_dim :] @ fac_w).t()
            c_whh_t, c_bhh = con.weight_hh.t(), con.bias_hh
            co_w_t, co_b = self.co_linear.weight.t(), self.co_linear.bias
            g_wu_t = g_w_ih[:, :co].t()
            eps = self._noise(co_noise, n_steps, batch, gen_h).unbind(0) if sample else None
            con_h = self.con_h0.expand(batch, -1)
            for t in range(n_steps):
                con_h = gru_step(torch.addmm(ci_gates[t], gd, c_fac_t), con_h, c_whh_t, c_bhh, clip)
                co_p = torch.addmm(co_b, con_h, co_w_t)
                u = co_p[:, :co]
                if sample:
                    u = u + torch.exp(0.5 * co_p[:, co:]) * eps[t]
                gen_h = gru_step(torch.addmm(ext_gates[t], u, g_wu_t), gen_h, g_whh_t, g_bhh, clip)
                gd = gen_h * masks[t + 1] if masks is not None else gen_h
                gen_list.append(gen_h)
                drop_list.append(gd)
                con_list.append(con_h)
                co_list.append(co_p)
                u_list.append(u)
            co_params = torch.stack(co_list, 1)
            co_means, co_logvars = co_params[..., :co], co_params[..., co:]
            co_stds = torch.exp(0.5 * co_logvars)
            inferred = torch.stack(u_list, 1)
            con_states = torch.stack(con_list, 1)
        else:
            for t in range(n_steps):
                gen_h = gru_step(ext_gates[t], gen_h, g_whh_t, g_bhh, clip)
                gd = gen_h * masks[t + 1] if masks is not None else gen_h
                gen_list.append(gen_h)
                drop_list.append(gd)
            co_means = co_stds = inferred = con_states = ext_input.new_zeros(batch, n_steps, 0)
        gen_states = torch.stack(gen_list, 1)
        dropped = torch.stack(drop_list, 1) if masks is not None else gen_states
        factors = dropped @ fac_w.t()
        return DecoderOutput(gen_states, factors, co_means, co_stds, inferred, con_states, g0)

    def _noise(self, co_noise: Tensor | None, n_steps: int, batch: int, like: Tensor) -> Tensor:
        """``co_noise`` in ``like``'s dtype, or fresh standard normal noise ``(time, batch, co_dim)``."""
        if co_noise is not None:
            return co_noise.to(device=like.device, dtype=like.dtype)
        return torch.randn(n_steps, batch, self.co_dim, device=like.device, dtype=like.dtype)

    def _fused(
        self,
        gen_h: Tensor,
        ci: Tensor | None,
        ext_input: Tensor,
        fac_w: Tensor,
        masks: Tensor | None,
        sample: bool,
        co_noise: Tensor | None = None,
    ) -> DecoderOutput:
        """The same loop through the hand-differentiated kernels of :mod:`lfads.modules.recurrence` (float32).

        Everything entering the loop is made time-major by transposing the narrow inputs (external
        inputs, CI encodings) before their projections, not the wide gate tensors after them.
        """
        gen, co, clip = self.generator, self.co_dim, self.cell_clip
        batch, n_steps = ext_input.shape[:2]
        with torch.autocast(device_type=gen_h.device.type, enabled=False):
            gen_h, fac_w = _full(gen_h), _full(fac_w)
            ext_b = _full(gen.bias_ih)
            if self.ext_input_dim == 0 and self.use_con:
                ext_gates = ext_b  # no external inputs: the loop adds the bias at each step
            else:
                ext_gates = nn.functional.linear(_full(ext_input).transpose(0, 1), _full(gen.weight_ih[:, co:]), ext_b)
            if not self.use_con:
                states = gru_sequence(ext_gates.unsqueeze(1).contiguous(), gen_h.unsqueeze(0),
                                      gen.weight_hh.unsqueeze(0), gen.bias_hh.unsqueeze(0), clip)[:, 0]
                dropped = states * masks[1:] if masks is not None else states
                empty = gen_h.new_zeros(batch, n_steps, 0)
                gen_states = states.transpose(0, 1)
                return DecoderOutput(gen_states, dropped.transpose(0, 1) @ fac_w.t(), empty, empty, empty, empty, gen_h)
            con = self.controller
            c_w_ih = con.weight_ih
            ci_gates = nn.functional.linear(_full(ci).transpose(0, 1), c_w_ih[:, : self.ci_dim], con.bias_ih)
            cf_t = (c_w_ih[:, self.ci_dim :] @ fac_w).t()
            eps = self._noise(co_noise, n_steps, batch, gen_h).contiguous() if sample else None
            c0 = self.con_h0.expand(batch, -1)
            states, dropped, con_states, co_params, inferred = ControllerGeneratorLoop.apply(
                ci_gates.contiguous(), ext_gates.contiguous(), gen_h, c0, cf_t, con.weight_hh, con.bias_hh,
                self.co_linear.weight, self.co_linear.bias, gen.weight_ih[:, :co], gen.weight_hh, gen.bias_hh,
                eps, masks, clip,
            )
        states, dropped, con_states = states[1:], dropped[1:], con_states[1:]
        co_params = co_params.transpose(0, 1)
        return DecoderOutput(
            gen_states=states.transpose(0, 1),
            factors=dropped.transpose(0, 1) @ fac_w.t(),
            co_means=co_params[..., :co],
            co_stds=torch.exp(0.5 * co_params[..., co:]),
            inferred_inputs=inferred.transpose(0, 1),
            con_states=con_states.transpose(0, 1),
            gen_init=gen_h,
        )
