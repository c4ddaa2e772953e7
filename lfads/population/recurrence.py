"""The recurrence :math:`h_t = F_n(h_{t-1}, u_t)` of :math:`N` stacked cells over a trial, with its own backward.

:func:`run_recurrence` computes the same states as stepping :func:`lfads.population.cells.cell_update`
through time, as one ``torch.autograd.Function``. Its backward uses the structure of the cells' Jacobians
(``lfads.population.cells``): with :math:`a_t = W_h h_{t-1} + \\dots` the recurrent pre-activation of
:math:`G` gate blocks,

.. math::

    \\frac{\\partial L}{\\partial a_t} = \\bar h_t \\odot \\kappa_t, \\qquad
    \\bar h_{t-1} = \\frac{\\partial L}{\\partial h_{t-1}}\\Big|_{\\text{direct}} + \\bar h_t \\odot D_t
    + \\frac{\\partial L}{\\partial a_t} W_h,

where :math:`\\bar h_t` is the gradient reaching :math:`h_t`, :math:`\\kappa_t` ``(G, H)`` and :math:`D_t`
``(H,)`` are the coefficients of the closed-form Jacobian (the cells' ``ugrnn_coefficients`` and
``lstm_coefficients``, computed for all steps at once after the forward pass) and the LSTM carries
:math:`[\\bar h; \\bar c]`. Only these products run step by step; the gradients of :math:`W_h` and
:math:`b_h` are one product over all steps and trials, :math:`\\sum_{t, b} (\\partial L / \\partial a_t)^T h_{t-1}`,
instead of one per step.

Backends (:mod:`lfads.runtime`, as for the LFADS loops): the GRU runs
:func:`lfads.modules.recurrence.gru_sequence` (the same cell, ``G`` = :math:`N` grouped GRUs); under ``auto``
and ``native`` the UGRNN and LSTM loops run compiled (``recurrence_native.cpp``: one call per trial, each
step's elementwise work one vectorized pass); the vanilla cells, one activation per step, always run here.
All give the same numbers to float precision.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from lfads.modules.recurrence import compiled_loops, gru_sequence, weight_grad
from lfads.population.cells import (
    GATES,
    check_arch,
    lstm_coefficients,
    state_size,
    ugrnn_coefficients,
)

__all__ = ["run_recurrence"]

_COMPILED = {"ugrnn": 0, "lstm": 1}
"""The cells with compiled loops, and their codes in ``recurrence_native.cpp``."""



def run_recurrence(arch: str, drive: Tensor, h0: Tensor | None, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """States of :math:`N` cells driven by ``drive`` from ``h0``.

    Parameters
    ----------
    arch : str
        One of :data:`lfads.population.cells.ARCHITECTURES`.
    drive : Tensor
        ``(T, N, B, G H)`` input drive :math:`W_i u_t + b_i`, time first.
    h0 : Tensor or None
        ``(N, B, S)`` initial states (zeros if ``None``).
    weight_hh : Tensor
        ``(N, G H, H)``.
    bias_hh : Tensor
        ``(N, G H)``.

    Returns
    -------
    Tensor
        ``(N, B, T, S)`` states :math:`h_1 \\dots h_T`, differentiable in ``drive``, ``h0``, ``weight_hh`` and
        ``bias_hh`` (once).
    """
    check_arch(arch)
    n, units = weight_hh.shape[0], weight_hh.shape[2]
    if drive.ndim != 4 or drive.shape[1] != n or drive.shape[3] != GATES[arch] * units:
        raise ValueError(
            f"run_recurrence: drive has shape {tuple(drive.shape)}; expected (T, {n}, B, {GATES[arch] * units}) "
            f"for {n} {arch} cells of {units} units."
        )
    if h0 is None:
        h0 = drive.new_zeros(n, drive.shape[2], state_size(arch, units))
    if arch == "gru":
        return gru_sequence(drive, h0, weight_hh, bias_hh).permute(1, 2, 0, 3)
    library = compiled_loops(drive, h0, weight_hh, bias_hh) if arch in _COMPILED else None
    if torch.is_grad_enabled() and any(x.requires_grad for x in (drive, h0, weight_hh, bias_hh)):
        return _Recurrence.apply(arch, library, drive, h0, weight_hh, bias_hh)
    return _forward(arch, library, _recurrent_input(drive, bias_hh), h0, weight_hh).permute(1, 2, 0, 3)


def _recurrent_input(drive: Tensor, bias_hh: Tensor) -> Tensor:
    """Term added to :math:`W_h h` each step: drive plus :math:`b_h` ``(T, N, B, G H)``, a new contiguous array that
    :func:`_forward` turns into the activated gates in place."""
    return (drive + bias_hh[None, :, None, :]).contiguous()


def _forward(arch: str, library: ModuleType | None, pre: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
    """Step the cells; returns the states ``(T, N, B, S)``, leaving the activated gates in ``pre`` (what the
    backward needs). Every step writes into arrays allocated once."""
    if library is not None:
        return library.population_forward(_COMPILED[arch], pre, h0, weight_hh)
    units = weight_hh.shape[2]
    steps, n, batch = pre.shape[:3]
    w_t = weight_hh.transpose(1, 2)
    out = pre if arch in ("vanilla", "relu") else pre.new_empty(steps, n, batch, h0.shape[-1])
    h = h0
    for t in range(steps):
        h_next = out[t]
        if arch == "lstm":
            a = pre[t].baddbmm_(h[..., :units], w_t)
            a[..., : 2 * units].sigmoid_()  # input, forget
            a[..., 2 * units : 3 * units].tanh_()  # cell candidate
            a[..., 3 * units :].sigmoid_()  # output
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.addcmul(f * h[..., units:], i, g, out=h_next[..., units:])
            torch.mul(o, torch.tanh(c), out=h_next[..., :units])
        elif arch == "ugrnn":
            a = pre[t].baddbmm_(h, w_t)
            a[..., :units].sigmoid_()
            a[..., units:].tanh_()
            torch.lerp(a[..., units:], h, a[..., :units], out=h_next)  # c + g (h - c)
        elif arch == "vanilla":
            pre[t].baddbmm_(h, w_t).tanh_()  # the states are the pre-activations, activated in place
        else:  # relu
            pre[t].baddbmm_(h, w_t).relu_()
        h = h_next
    return out


def _coefficients(arch: str, gates: Tensor, states: Tensor, h0: Tensor) -> tuple[Tensor, Tensor | None]:
    """Jacobian coefficients of every step from the states ``(T, N, B, H)``: ``kappa`` ``(T, N, B, G, H)`` and
    ``diag`` ``(T, N, B, H)`` or ``None``."""
    if arch == "vanilla":
        return (1.0 - states * states).unsqueeze(3), None
    if arch == "relu":
        return (states > 0).to(states.dtype).unsqueeze(3), None
    h_prev = torch.cat([h0.unsqueeze(0), states[:-1]])
    g, c = gates.chunk(2, dim=-1)
    return torch.stack(ugrnn_coefficients(h_prev, g, c), dim=3), g


def _backward_steps(kappa: Tensor, diag: Tensor | None, grad: Tensor, weight_hh: Tensor) -> tuple[Tensor, Tensor]:
    """Step back through time: the gradients at the pre-activations ``(T, N, B, G H)`` and at ``h0``
    ``(N, B, H)``."""
    steps, n, batch, gates, units = kappa.shape
    d_rec = grad.new_empty(steps, n, batch, gates * units)
    carry = None
    for t in range(steps - 1, -1, -1):
        dh = grad[t] if carry is None else grad[t] + carry
        da = d_rec[t]
        torch.mul(dh.unsqueeze(2), kappa[t], out=da.unflatten(-1, (gates, units)))
        carry = torch.bmm(da, weight_hh) if diag is None else torch.baddbmm(dh * diag[t], da, weight_hh)
    return d_rec, carry


def _backward_lstm(gates: Tensor, states: Tensor, h0: Tensor, grad: Tensor, weight_hh: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM's gradients at the pre-activations ``(T, N, B, 4 H)`` and at ``h0`` ``(N, B, 2 H)``."""
    units = weight_hh.shape[2]
    i, f, g, o = gates.chunk(4, dim=-1)
    c = states[..., units:]
    c_prev = torch.cat([h0[..., units:].unsqueeze(0), c[:-1]])
    tau = torch.tanh(c)
    through_h = o * (1.0 - tau * tau)  # dh'/dc'
    kappa_c = torch.stack(lstm_coefficients(c_prev, i, f, g), dim=3)
    kappa_o = tau * o * (1.0 - o)
    steps, n, batch = grad.shape[:3]
    grad_h, grad_c = grad[..., :units], grad[..., units:]
    d_rec = grad.new_empty(steps, n, batch, 4 * units)
    carry_h = carry_c = None
    for t in range(steps - 1, -1, -1):
        dh = grad_h[t] if carry_h is None else grad_h[t] + carry_h
        dc = grad_c[t] if carry_c is None else grad_c[t] + carry_c
        dc = torch.addcmul(dc, dh, through_h[t])
        da = d_rec[t]
        torch.mul(dc.unsqueeze(2), kappa_c[t], out=da[..., : 3 * units].unflatten(-1, (3, units)))
        torch.mul(dh, kappa_o[t], out=da[..., 3 * units :])
        carry_h, carry_c = torch.bmm(da, weight_hh), dc * f[t]
    return d_rec, torch.cat([carry_h, carry_c], dim=-1)


class _Recurrence(torch.autograd.Function):
    """:func:`run_recurrence` (module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        arch: str,
        library: ModuleType | None,
        drive: Tensor,
        h0: Tensor,
        weight_hh: Tensor,
        bias_hh: Tensor,
    ) -> Tensor:
        gates = _recurrent_input(drive, bias_hh)
        out = _forward(arch, library, gates, h0, weight_hh)
        ctx.arch, ctx.library = arch, library
        ctx.save_for_backward(out, h0, weight_hh, gates)
        return out.permute(1, 2, 0, 3)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_states: Tensor) -> tuple[None, None, Tensor, Tensor | None, Tensor, Tensor]:  # type: ignore[override]
        arch, library = ctx.arch, ctx.library
        states, h0, weight_hh, gates = ctx.saved_tensors  # states (T, N, B, S)
        units = weight_hh.shape[2]
        grad = grad_states.permute(2, 0, 1, 3).contiguous()  # (T, N, B, S)
        if library is not None:
            d_rec, grad_h0 = library.population_backward(_COMPILED[arch], grad, states, h0, gates, weight_hh)
        elif arch == "lstm":
            d_rec, grad_h0 = _backward_lstm(gates, states, h0, grad, weight_hh)
        else:
            d_rec, grad_h0 = _backward_steps(*_coefficients(arch, gates, states, h0), grad, weight_hh)
        h_prev = torch.cat([h0[..., :units].unsqueeze(0), states[:-1, ..., :units]])
        grad_w, grad_b = weight_grad(d_rec, h_prev), d_rec.sum(0).sum(1)
        return None, None, d_rec, grad_h0 if ctx.needs_input_grad[3] else None, grad_w, grad_b
