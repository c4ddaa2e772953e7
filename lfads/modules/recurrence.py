"""Fused recurrent loops with hand-written backpropagation through time.

Autograd records every elementwise operation of every time step, and on a CPU
the bookkeeping of those small nodes, not arithmetic, dominates LFADS training.
The two loops here run their forward pass without recording a graph and their
backward pass as an explicit reverse-time loop; everything that does not depend
on the previous step (input projections, weight gradients) is one batched
matrix product outside the loop.

GRU step (``torch.nn.GRUCell`` gate order, state clip ``c``), with input gates
``a = W_{ih} x + b_{ih}`` computed beforehand:

.. math::

    (g_r, g_z, g_n) = W_{hh} h + b_{hh},\\quad r = \\sigma(a_r + g_r),\\quad z = \\sigma(a_z + g_z),\\quad
    n = \\tanh(a_n + r \\odot g_n),\\quad h' = \\mathrm{clip}(n + z \\odot (h - n))

Its backward, for an incoming gradient ``\\bar h'`` and ``m = 1[|h'_{pre}| \\le c]``:

.. math::

    \\bar p = m \\odot \\bar h',\\ \\bar a_n = \\bar p (1 - z)(1 - n^2),\\ \\bar a_z = \\bar p (h - n) z (1 - z),\\
    \\bar a_r = \\bar a_n g_n r (1 - r),\\ \\bar g = (\\bar a_r, \\bar a_z, \\bar a_n \\odot r),\\
    \\bar h = \\bar p \\odot z + \\bar g W_{hh}

- :class:`GRUSequence`: independent GRUs sharing a step count (e.g. both directions
  of both encoders), stacked on a leading group axis and stepped together.
- :class:`ControllerGeneratorLoop`: the LFADS decoder (controller, inferred-input
  sampling, generator, factor feedback).

Both are checked against plain autograd loops by ``torch.autograd.gradcheck``.

Backends (chosen at run time, :func:`lfads.runtime.set_recurrence_backend` or
``LFADS_RECURRENCE``; :func:`backend` reads the choice):

- ``reference``: the encoders and decoder run plain autograd loops instead of these Functions.
- ``python``: these Functions with their Python time loops.
- ``native``: these Functions with the compiled time loops of ``recurrence_native.cpp``
  (:mod:`lfads.modules.native`), the same arithmetic in one call per sequence; CPU float32/float64.
- ``auto``: ``native`` where it applies and builds, ``python`` otherwise (GPUs, half precision, no compiler).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from lfads.modules import native
from lfads.runtime import recurrence_backend


def backend() -> str:
    """The recurrence backend in force: ``"reference"``, ``"python"``, ``"native"`` or ``"auto"``."""
    return recurrence_backend()


def fused_loops() -> bool:
    """Whether the encoders and decoder run the hand-differentiated Functions (every backend but ``reference``)."""
    return recurrence_backend() != "reference"


def compiled_loops(*tensors: Tensor) -> ModuleType | None:
    """The compiled loops to run for ``tensors`` under the backend in force, or ``None`` for the Python loops.

    Raises
    ------
    RuntimeError
        If the backend is ``native`` and the tensors are not CPU float32/float64 or the loops cannot be built.
    """
    chosen = recurrence_backend()
    if chosen not in ("auto", "native"):
        return None
    library = native.usable(*tensors)
    if library is None and chosen == "native":
        where = {(t.device.type, str(t.dtype).removeprefix("torch.")) for t in tensors}
        raise RuntimeError(
            f"the recurrence backend is 'native' but the compiled loops cannot run here (tensors on {sorted(where)}; "
            "they need CPU float32/float64 tensors and a C++ compiler); choose 'auto' or 'python' with "
            "lfads.runtime.set_recurrence_backend or LFADS_RECURRENCE."
        )
    return library


def _affine(h: Tensor, w_t: Tensor, b: Tensor) -> Tensor:
    """``h @ w_t + b`` for 2-D ``h`` ``(B, H)`` or grouped 3-D ``h`` ``(G, B, H)``."""
    if h.dim() == 2:
        return torch.addmm(b, h, w_t)
    return torch.baddbmm(b.unsqueeze(1), h, w_t)


def gru_forward(a: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor, clip: float, out: Tensor) -> tuple:
    """One GRU step from input gates ``a`` ``(..., B, 3H)``, writing the new state into ``out``.

    Returns what the backward step needs: the gates ``(r, z)``, ``n``, ``W_hn h + b_hn`` and ``h - n``.
    """
    hidden = h.shape[-1]
    gh = _affine(h, w_hh_t, b_hh)
    rz = torch.add(a[..., : 2 * hidden], gh[..., : 2 * hidden]).sigmoid_()
    gh_n = gh[..., 2 * hidden :]
    n = torch.addcmul(a[..., 2 * hidden :], rz[..., :hidden], gh_n).tanh_()
    h_minus_n = h - n
    torch.addcmul(n, rz[..., hidden:], h_minus_n, out=out)
    if clip != float("inf"):
        out.clamp_(-clip, clip)
    return rz, n, gh_n, h_minus_n


def gru_backward(
    dh_new: Tensor, h_new: Tensor, cache: tuple, w_hh: Tensor, clip: float, da: Tensor, dgh: Tensor
) -> Tensor:
    """Backward of :func:`gru_forward`.

    Writes the gradients of the input gates into ``da`` and of the recurrent gates into ``dgh``
    (both ``(..., B, 3H)``) and returns the gradient of the previous state.
    """
    rz, n, gh_n, h_minus_n = cache
    hidden = h_new.shape[-1]
    z = rz[..., hidden:]
    dp = dh_new * h_new.abs().lt_(clip) if clip != float("inf") else dh_new
    dpz = dp * z
    da_n = da[..., 2 * hidden :]
    torch.mul(dp - dpz, 1.0 - n * n, out=da_n)
    pre = torch.empty_like(rz)
    torch.mul(da_n, gh_n, out=pre[..., :hidden])
    torch.mul(dp, h_minus_n, out=pre[..., hidden:])
    torch.mul(pre, rz - rz * rz, out=da[..., : 2 * hidden])
    dgh[..., : 2 * hidden] = da[..., : 2 * hidden]
    torch.mul(da_n, rz[..., :hidden], out=dgh[..., 2 * hidden :])
    return torch.baddbmm(dpz, dgh, w_hh) if dgh.dim() == 3 else torch.addmm(dpz, dgh, w_hh)


def weight_grad(dgates: Tensor, inputs: Tensor) -> Tensor:
    """``sum_t dgates_t^T inputs_t`` over time and batch: ``(T, ..., B, K)`` x ``(T, ..., B, H)`` -> ``(..., K, H)``."""
    # The narrower operand goes first: BLAS is several times slower on a (K, N) x (N, 4) product
    # than on (4, N) x (N, K) for the same result.
    if dgates.dim() == 3:
        d, x = dgates.reshape(-1, dgates.shape[-1]), inputs.reshape(-1, inputs.shape[-1])
        return (x.t() @ d).t() if x.shape[-1] <= d.shape[-1] else d.t() @ x
    g = dgates.shape[1]
    d = dgates.transpose(0, 1).reshape(g, -1, dgates.shape[-1])
    x = inputs.transpose(0, 1).reshape(g, -1, inputs.shape[-1])
    return (x.transpose(1, 2) @ d).transpose(1, 2) if x.shape[-1] <= d.shape[-1] else d.transpose(1, 2) @ x


def _sum_leading(x: Tensor, n: int) -> Tensor:
    """Sum over the first ``n`` axes one at a time (a leading-axis sum is a fast vectorized add)."""
    for _ in range(n):
        x = x.sum(0)
    return x


class GRUSequence(torch.autograd.Function):
    """Run ``G`` GRUs for ``T`` steps from precomputed input gates.

    Inputs: ``gates (T, G, B, 3H)``, ``h0 (G, B, H)``, ``w_hh (G, 3H, H)``, ``b_hh (G, 3H)``, ``clip``.
    Output: states ``(T + 1, G, B, H)``, the first being ``h0``.
    """

    @staticmethod
    def forward(ctx, gates: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, clip: float) -> Tensor:
        ctx.native, ctx.clip = compiled_loops(gates, h0, w_hh, b_hh), clip
        if ctx.native is not None:
            states, ctx.caches = ctx.native.gru_sequence_forward(gates.contiguous(), h0, w_hh, b_hh, float(clip))
            ctx.save_for_backward(states, w_hh)
            return states
        w_hh_t = w_hh.transpose(1, 2)
        states = gates.new_empty((gates.shape[0] + 1, *h0.shape))
        states[0] = h0
        caches = [gru_forward(gates[t], states[t], w_hh_t, b_hh, clip, states[t + 1]) for t in range(gates.shape[0])]
        ctx.save_for_backward(states, w_hh)
        ctx.caches = caches
        return states

    @staticmethod
    def backward(ctx, d_states: Tensor):
        with torch.autocast(device_type=d_states.device.type, enabled=False):
            return GRUSequence._backward(ctx, d_states)

    @staticmethod
    def _backward(ctx, d_states: Tensor):
        states, w_hh = ctx.saved_tensors
        caches, clip = ctx.caches, ctx.clip
        if ctx.native is not None:
            da, dgh, dh = ctx.native.gru_sequence_backward(d_states, states, caches, w_hh, float(clip))
            return da, dh, weight_grad(dgh, states[:-1]), _sum_leading(dgh, 1).sum(1), None
        n_steps = states.shape[0] - 1
        da = d_states.new_empty((n_steps, *states.shape[1:-1], 3 * states.shape[-1]))
        dgh = torch.empty_like(da)
        dh = d_states[n_steps]
        for t in range(n_steps - 1, -1, -1):
            dh = gru_backward(dh, states[t + 1], caches[t], w_hh, clip, da[t], dgh[t]) + d_states[t]
        return da, dh, weight_grad(dgh, states[:-1]), _sum_leading(dgh, 1).sum(1), None


def full_precision(x: Tensor) -> Tensor:
    """Half-precision tensors (from autocast) to float32; others unchanged. The loops run in full precision."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gru_sequence(gates: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, clip: float = float("inf")) -> Tensor:
    """States ``(T, G, B, H)`` of :class:`GRUSequence` after each step (``h0`` excluded), in full precision."""
    with torch.autocast(device_type=gates.device.type, enabled=False):
        args = (full_precision(gates), full_precision(h0), full_precision(w_hh), full_precision(b_hh))
        return GRUSequence.apply(*args, clip)[1:]


class ControllerGeneratorLoop(torch.autograd.Function):
    """The LFADS decoder loop (see :mod:`lfads.modules.decoder` for the equations).

    Inputs (``T`` steps, batch ``B``; controller size ``C``, generator size ``Gd``):
    ``ci_gates (T, B, 3C)``, ``ext_gates (T, B, 3Gd)`` or ``(3Gd,)`` (no external inputs: the bias alone),
    ``g0 (B, Gd)``, ``c0 (B, C)``,
    ``cf_t (Gd, 3C)`` (dropped generator state -> controller gates), ``wc_hh (3C, C)``, ``bc_hh (3C)``,
    ``wco (2co, C)``, ``bco (2co)``, ``wu (3Gd, co)``, ``wg_hh (3Gd, Gd)``, ``bg_hh (3Gd)``,
    ``eps (T, B, co)`` or None (posterior means), ``masks (T + 1, B, Gd)`` or None (no dropout), ``clip``.

    Outputs, each including the initial state at index 0: generator states and dropped generator
    states ``(T + 1, B, Gd)``, controller states ``(T + 1, B, C)``; then controller output parameters
    ``(T, B, 2co)`` (means, log-variances) and inferred inputs ``(T, B, co)``.
    """

    @staticmethod
    def forward(ctx, ci_gates, ext_gates, g0, c0, cf_t, wc_hh, bc_hh, wco, bco, wu, wg_hh, bg_hh, eps, masks, clip):
        ctx.native = compiled_loops(ci_gates, ext_gates, g0, c0, cf_t, wc_hh, wg_hh, wu)
        if ctx.native is not None:
            gen, drop, con, cop, u_all, std_all, cache_c, cache_g = ctx.native.controller_generator_forward(
                ci_gates.contiguous(), ext_gates.contiguous(), g0, c0, cf_t, wc_hh, bc_hh, wco, bco, wu, wg_hh,
                bg_hh, eps, masks, float(clip),
            )
            ctx.save_for_backward(gen, gen if drop is None else drop, con, u_all, cf_t, wc_hh, wco, wu, wg_hh)
            ctx.extra = (eps, masks, std_all, cache_c, cache_g, clip, ext_gates.dim() == 1)
            return gen, (gen.clone() if drop is None else drop), con, cop, u_all
        n_steps, batch = ci_gates.shape[:2]
        co = wu.shape[1]
        wc_hh_t, wco_t, wu_t, wg_hh_t = wc_hh.t(), wco.t(), wu.t(), wg_hh.t()
        gen = g0.new_empty((n_steps + 1, *g0.shape))
        con = c0.new_empty((n_steps + 1, batch, c0.shape[-1]))
        gen[0], con[0] = g0, c0
        if masks is None:
            drop = gen
        else:
            drop = torch.empty_like(gen)
            torch.mul(g0, masks[0], out=drop[0])
        cop = g0.new_empty((n_steps, batch, 2 * co))
        u_all = g0.new_empty((n_steps, batch, co))
        std_all = torch.empty_like(u_all) if eps is not None else None
        cache_c, cache_g = [], []
        for t in range(n_steps):
            cache_c.append(
                gru_forward(torch.addmm(ci_gates[t], drop[t], cf_t), con[t], wc_hh_t, bc_hh, clip, con[t + 1])
            )
            torch.addmm(bco, con[t + 1], wco_t, out=cop[t])
            if eps is not None:
                torch.exp(cop[t, :, co:] * 0.5, out=std_all[t])
                torch.addcmul(cop[t, :, :co], std_all[t], eps[t], out=u_all[t])
            else:
                u_all[t] = cop[t, :, :co]
            ext_t = ext_gates if ext_gates.dim() == 1 else ext_gates[t]
            cache_g.append(gru_forward(torch.addmm(ext_t, u_all[t], wu_t), gen[t], wg_hh_t, bg_hh, clip, gen[t + 1]))
            if masks is not None:
                torch.mul(gen[t + 1], masks[t + 1], out=drop[t + 1])
        ctx.save_for_backward(gen, drop, con, u_all, cf_t, wc_hh, wco, wu, wg_hh)
        ctx.extra = (eps, masks, std_all, cache_c, cache_g, clip, ext_gates.dim() == 1)
        return gen, (gen.clone() if masks is None else drop), con, cop, u_all

    @staticmethod
    def backward(ctx, *grads):
        with torch.autocast(device_type=ctx.saved_tensors[0].device.type, enabled=False):
            return ControllerGeneratorLoop._backward(ctx, *grads)

    @staticmethod
    def _backward(ctx, d_gen, d_drop, d_con, d_cop, d_u):
        gen, drop, con, u_all, cf_t, wc_hh, wco, wu, wg_hh = ctx.saved_tensors
        eps, masks, std_all, cache_c, cache_g, clip, ext_is_bias = ctx.extra
        if ctx.native is not None:
            da_c, dgh_c, da_g, dgh_g, dps, dg, dc = ctx.native.controller_generator_backward(
                d_gen, d_drop, d_con, d_cop, d_u, gen, con, cache_c, cache_g, cf_t, wc_hh, wco, wu, wg_hh,
                eps, std_all, masks, float(clip),
            )
            return ControllerGeneratorLoop._grads(da_c, dgh_c, da_g, dgh_g, dps, dg, dc, drop, con, u_all, gen,
                                                  ext_is_bias)
        n_steps, co = u_all.shape[0], wu.shape[1]
        cf = cf_t.t()
        da_c = con.new_empty((n_steps, *con.shape[1:-1], 3 * con.shape[-1]))
        dgh_c = torch.empty_like(da_c)
        da_g = gen.new_empty((n_steps, *gen.shape[1:-1], 3 * gen.shape[-1]))
        dgh_g = torch.empty_like(da_g)
        dps = u_all.new_empty((n_steps, u_all.shape[1], 2 * co))

        def grad_gen(t, d_drop_t):
            """Gradient reaching gen[t] directly and through drop[t]."""
            total = d_drop_t
            if d_drop is not None:
                total = d_drop[t] if total is None else total + d_drop[t]
            if total is not None and masks is not None:
                total = total * masks[t]
            if d_gen is not None:
                total = d_gen[t] if total is None else total + d_gen[t]
            return total if total is not None else torch.zeros_like(gen[t])

        dg = grad_gen(n_steps, None)
        dc = d_con[n_steps] if d_con is not None else None
        for t in range(n_steps - 1, -1, -1):
            dg_prev = gru_backward(dg, gen[t + 1], cache_g[t], wg_hh, clip, da_g[t], dgh_g[t])
            du = torch.addmm(d_u[t], da_g[t], wu) if d_u is not None else da_g[t] @ wu
            dps[t, :, :co] = du
            if eps is not None:
                torch.mul(du * eps[t], std_all[t], out=dps[t, :, co:]).mul_(0.5)
            else:
                dps[t, :, co:] = 0.0
            if d_cop is not None:
                dps[t] += d_cop[t]
            dc = torch.addmm(dc, dps[t], wco) if dc is not None else dps[t] @ wco
            dc = gru_backward(dc, con[t + 1], cache_c[t], wc_hh, clip, da_c[t], dgh_c[t])
            if d_con is not None:
                dc = dc + d_con[t]
            dg = grad_gen(t, da_c[t] @ cf) + dg_prev
        return ControllerGeneratorLoop._grads(da_c, dgh_c, da_g, dgh_g, dps, dg, dc, drop, con, u_all, gen, ext_is_bias)

    @staticmethod
    def _grads(da_c, dgh_c, da_g, dgh_g, dps, dg, dc, drop, con, u_all, gen, ext_is_bias):
        """Input gradients from the per-step gate gradients: weight gradients as one product over all steps."""
        return (
            da_c,
            _sum_leading(da_g, 2) if ext_is_bias else da_g,
            dg,
            dc,
            weight_grad(da_c, drop[:-1]).t(),
            weight_grad(dgh_c, con[:-1]),
            _sum_leading(dgh_c, 2),
            weight_grad(dps, con[1:]),
            _sum_leading(dps, 2),
            weight_grad(da_g, u_all),
            weight_grad(dgh_g, gen[:-1]),
            _sum_leading(dgh_g, 2),
            None,
            None,
            None,
        )
