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

Layout: network first, ``(N, T, B, ·)``; the inputs ``(1, T, B, I)`` when all networks see the same trials.
The weight gradients are batched products over the ``T B`` rows of each network, read in place.

Backends (:mod:`lfads.runtime`, as for the LFADS loops): under ``auto`` and ``native`` every cell's loop runs
compiled (``recurrence_native.cpp``: one call per trial; each step one batched product :math:`W_h h` and
one vectorized pass over the rows that forms the drive :math:`W_i u_t + b_i`, never stored, the gates and
the new state); under ``python`` the loops here run time first on the drive formed by one product (the GRU
through :func:`lfads.modules.recurrence.gru_sequence`). All give the same numbers to float precision.
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

_CODES = {"ugrnn": 0, "lstm": 1, "gru": 2, "vanilla": 3, "relu": 4}
"""The cells' codes in ``recurrence_native.cpp``."""


def run_recurrence(
    arch: str, inputs: Tensor, h0: Tensor | None, weight_ih: Tensor, bias_ih: Tensor, weight_hh: Tensor,
    bias_hh: Tensor,
) -> Tensor:
    """States of :math:`N` cells driven by ``inputs`` from ``h0``.

    Parameters
    ----------
    arch : str
        One of :data:`lfads.population.cells.ARCHITECTURES`.
    inputs : Tensor
        ``(N, T, B, I)`` inputs :math:`u_t`, network first, or ``(1, T, B, I)``: the same for every network.
    h0 : Tensor or None
        ``(N, B, S)`` initial states (zeros if ``None``).
    weight_ih, bias_ih : Tensor
        ``(N, G H, I)`` and ``(N, G H)``: the drive :math:`W_i u_t + b_i`.
    weight_hh, bias_hh : Tensor
        ``(N, G H, H)`` and ``(N, G H)``.

    Returns
    -------
    Tensor
        ``(N, T, B, S)`` states :math:`h_1 \\dots h_T`, differentiable (once) in every tensor argument.
    """
    check_arch(arch)
    n, width, units = weight_hh.shape
    if inputs.ndim != 4 or inputs.shape[0] not in (1, n) or weight_ih.shape != (n, width, inputs.shape[3]):
        raise ValueError(
            f"run_recurrence: inputs {tuple(inputs.shape)} and weight_ih {tuple(weight_ih.shape)} do not fit "
            f"{n} {arch} cells of {units} units; expected inputs (1 or {n}, T, B, I) and weight_ih ({n}, {width}, I)."
        )
    if inputs.dtype != weight_hh.dtype:
        raise ValueError(f"run_recurrence: inputs are {inputs.dtype} but the weights {weight_hh.dtype}; convert the "
                         f"inputs (inputs.to({weight_hh.dtype})) or the networks (.to(dtype)) so they match.")
    if width != GATES[arch] * units:
        raise ValueError(f"run_recurrence: weight_hh has shape {tuple(weight_hh.shape)}; a {arch} cell has "
                         f"{GATES[arch]} gate blocks: expected ({n}, {GATES[arch] * units}, {units}).")
    if h0 is None:
        h0 = inputs.new_zeros(n, inputs.shape[2], state_size(arch, units))
    params = (weight_ih, bias_ih, h0, weight_hh, bias_hh)
    library = compiled_loops(inputs, *params)
    if library is None:
        drive = torch.matmul(inputs.transpose(0, 1), weight_ih.transpose(1, 2)) + bias_ih.unsqueeze(1)
        return _time_first(arch, drive, h0, weight_hh, bias_hh).transpose(0, 1)
    inputs = inputs.contiguous()
    if torch.is_grad_enabled() and any(x.requires_grad for x in (inputs, *params)):
        return _NativeRecurrence.apply(arch, library, inputs, *params)
    return library.population_forward(_CODES[arch], inputs, *params, False)[0]


def _time_first(arch: str, drive: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """The Python loops: states ``(T, N, B, S)`` for the drive ``(T, N, B, G H)``."""
    if arch == "gru":
        return gru_sequence(drive.contiguous(), h0, weight_hh, bias_hh)
    if torch.is_grad_enabled() and any(x.requires_grad for x in (drive, h0, weight_hh, bias_hh)):
        return _Recurrence.apply(arch, drive, h0, weight_hh, bias_hh)
    return _forward(arch, _recurrent_input(drive, bias_hh), h0, weight_hh)


def _recurrent_input(drive: Tensor, bias_hh: Tensor) -> Tensor:
    """Term added to :math:`W_h h` each step: drive plus :math:`b_h` ``(T, N, B, G H)``, a new contiguous array that
    :func:`_forward` turns into the activated gates in place."""
    return (drive + bias_hh[None, :, None, :]).contiguous()


def _forward(arch: str, pre: Tensor, h0: Tensor, weight_hh: Tensor) -> Tensor:
    """Step the cells; returns the states ``(T, N, B, S)``, leaving the activated gates in ``pre`` (what the
    backward needs). Every step writes into arrays allocated once."""
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
    """:func:`run_recurrence` in the Python loops, time first (module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, arch: str, drive: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor
    ) -> Tensor:
        gates = _recurrent_input(drive, bias_hh)
        out = _forward(arch, gates, h0, weight_hh)
        ctx.arch = arch
        ctx.save_for_backward(out, h0, weight_hh, gates)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_states: Tensor) -> tuple[None, Tensor, Tensor | None, Tensor, Tensor]:  # type: ignore[override]
        arch = ctx.arch
        states, h0, weight_hh, gates = ctx.saved_tensors  # states (T, N, B, S)
        units = weight_hh.shape[2]
        grad = grad_states.contiguous()
        if arch == "lstm":
            d_rec, grad_h0 = _backward_lstm(gates, states, h0, grad, weight_hh)
        else:
            d_rec, grad_h0 = _backward_steps(*_coefficients(arch, gates, states, h0), grad, weight_hh)
        h_prev = torch.cat([h0[..., :units].unsqueeze(0), states[:-1, ..., :units]])
        grad_w, grad_b = weight_grad(d_rec, h_prev), d_rec.sum(0).sum(1)
        return None, d_rec, grad_h0 if ctx.needs_input_grad[2] else None, grad_w, grad_b


class _NativeRecurrence(torch.autograd.Function):
    """:func:`run_recurrence` in the compiled loops, network first (module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        arch: str,
        library: ModuleType,
        inputs: Tensor,
        weight_ih: Tensor,
        bias_ih: Tensor,
        h0: Tensor,
        weight_hh: Tensor,
        bias_hh: Tensor,
    ) -> Tensor:
        code = _CODES[arch]
        states, cache = library.population_forward(code, inputs, weight_ih, bias_ih, h0, weight_hh, bias_hh, True)
        ctx.arch, ctx.library = arch, library
        ctx.save_for_backward(inputs, weight_ih, states, h0, weight_hh, cache)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_states: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        inputs, weight_ih, states, h0, weight_hh, cache = ctx.saved_tensors  # states (N, T, B, S)
        code = _CODES[ctx.arch]
        d_drive, d_rec, grad_h0 = ctx.library.population_backward(code, grad_states, states, h0, cache, weight_hh)
        n, width = d_drive.shape[0], d_drive.shape[3]
        flat_d, flat_u = d_drive.view(n, -1, width), inputs.view(inputs.shape[0], -1, inputs.shape[3])
        grad_wi = torch.bmm(flat_u.expand(n, -1, -1).transpose(1, 2), flat_d).transpose(1, 2)
        grad_bi = d_drive.sum(dim=(1, 2))
        grad_u = None
        if ctx.needs_input_grad[2]:
            grad_u = torch.bmm(flat_d, weight_ih)
            grad_u = (grad_u.sum(0) if inputs.shape[0] == 1 else grad_u).view(inputs.shape)
        same_sum = grad_bi if ctx.arch != "gru" else None  # only the GRU's recurrent term differs from the drive's
        grad_wh, grad_bh = _recurrent_grads(d_rec, states, h0, weight_hh.shape[2], same_sum)
        return (None, None, grad_u, grad_wi, grad_bi, grad_h0 if ctx.needs_input_grad[5] else None, grad_wh, grad_bh)


def _recurrent_grads(
    d_rec: Tensor, states: Tensor, h0: Tensor, units: int, grad_b: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Gradients of :math:`W_h` ``(N, G H, H)`` and :math:`b_h` ``(N, G H)`` from those of the recurrent term
    ``d_rec`` ``(N, T, B, G H)``: :math:`\\sum_{t, b} \\bar a_t^T h_{t-1}` as two batched products (step 0
    against ``h0``, the rest against the states ``(N, T, B, S)``, read in place); ``grad_b``, when given, is
    :math:`\\sum_{t, b} \\bar a_t` already summed (copied, not summed again)."""
    n, width = d_rec.shape[0], d_rec.shape[3]
    later = d_rec[:, 1:].reshape(n, -1, width)
    before = states[:, :-1, :, :units].reshape(n, -1, units)
    grad_w = torch.bmm(before.transpose(1, 2), later)  # (N, H, G H): the narrower operand first
    grad_w.baddbmm_(h0[..., :units].transpose(1, 2), d_rec[:, 0])
    return grad_w.transpose(1, 2), d_rec.sum(dim=(1, 2)) if grad_b is None else grad_b.clone()
