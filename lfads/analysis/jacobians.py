"""The update map of a recurrent cell and its Jacobians, in closed form for GRUs.

A cell defines a discrete-time map :math:`h_t = F(h_{t-1}, u_t)`. For the torch GRU
(gate order reset, update, candidate) with an optional clip :math:`c`:

.. math::

    r &= \\sigma(W_{ir} u + b_{ir} + W_{hr} h + b_{hr}),\\qquad
    z = \\sigma(W_{iz} u + b_{iz} + W_{hz} h + b_{hz}) \\\\
    a_n &= W_{in} u + b_{in} + r \\odot g,\\quad g = W_{hn} h + b_{hn},\\quad n = \\tanh(a_n) \\\\
    F(h, u) &= \\mathrm{clip}\\big(n + z \\odot (h - n),\\ -c,\\ c\\big)

and, with :math:`\\alpha = (h - n) z (1 - z)`, :math:`\\gamma = (1 - z)(1 - n^2)` and
:math:`\\delta = g\\, r (1 - r)` (all elementwise, one entry per unit :math:`i`),

.. math::

    \\frac{\\partial F_i}{\\partial h_j} &= m_i \\big(z_i \\delta_{ij} + \\alpha_i W_{hz,ij}
        + \\gamma_i r_i W_{hn,ij} + \\gamma_i \\delta_i W_{hr,ij}\\big) \\\\
    \\frac{\\partial F_i}{\\partial u_k} &= m_i \\big(\\alpha_i W_{iz,ik} + \\gamma_i W_{in,ik}
        + \\gamma_i \\delta_i W_{ir,ik}\\big)

where :math:`m_i = 1` if :math:`|n_i + z_i (h_i - n_i)| \\le c` and ``0`` where the clip is
active (the clamp has zero derivative there). All of this is batched over points and
evaluated in float64: one Jacobian ``(H, H)`` costs three broadcast products, where
autograd through ``vmap`` falls back to a slow per-sample path for ``nn.GRUCell``.

Any other cell or callable ``f(u, h) -> h_next`` is handled by :class:`AutogradDynamics`,
which differentiates it with ``torch.func``.

Nothing here modifies the cell it is given: GRU parameters are copied (detached, cast to
float64); a generic ``nn.Module`` is deep-copied, cast and put in evaluation mode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lfads.errors import LFADSDataError
from lfads.modules.gru import ClippedGRUCell

__all__ = [
    "Dynamics",
    "GRUDynamics",
    "GRUParameters",
    "AutogradDynamics",
    "as_dynamics",
    "extract_gru_parameters",
    "compute_jacobians",
]


@dataclass(frozen=True)
class GRUParameters:
    """Weights of a single-layer GRU in torch's layout, as float64 copies.

    Attributes
    ----------
    weight_ih : Tensor
        ``(3 H, I)`` input weights, rows ordered reset, update, candidate.
    weight_hh : Tensor
        ``(3 H, H)`` recurrent weights.
    bias_ih, bias_hh : Tensor
        ``(3 H,)`` biases (zeros for a cell built with ``bias=False``).
    clip_value : float
        State clip ``c``; ``inf`` for none.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor
    clip_value: float = float("inf")

    @property
    def hidden_size(self) -> int:
        """Number of units ``H``."""
        return self.weight_hh.shape[1]

    @property
    def input_size(self) -> int:
        """Input dimension ``I``."""
        return self.weight_ih.shape[1]


def _has_plain_gru_forward(cell: nn.Module) -> bool:
    """Whether ``cell`` computes exactly the torch GRU (optionally clipped) update."""
    if isinstance(cell, ClippedGRUCell):
        return type(cell).forward is ClippedGRUCell.forward
    if isinstance(cell, nn.GRUCell):
        return type(cell).forward is nn.GRUCell.forward
    if isinstance(cell, nn.GRU):
        return type(cell).forward is nn.GRU.forward
    return False


def extract_gru_parameters(
    cell: nn.Module, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> GRUParameters | None:
    """Copy the weights of a GRU cell, or return ``None`` if ``cell`` is not a plain GRU.

    Recognised: ``nn.GRUCell``, :class:`lfads.modules.gru.ClippedGRUCell`, and a single-layer,
    unidirectional ``nn.GRU``; a subclass that overrides ``forward`` is not recognised (its math
    is unknown) and goes through :class:`AutogradDynamics` instead.

    Parameters
    ----------
    cell : nn.Module
        The cell. It is not modified.
    dtype : torch.dtype
        Floating type of the copies (float64 by default).
    device : torch.device or str, optional
        Device of the copies; the cell's device by default.

    Raises
    ------
    LFADSDataError
        For an ``nn.GRU`` with more than one layer or two directions (no single map ``F(h, u)``).
    """
    if not _has_plain_gru_forward(cell):
        return None
    if isinstance(cell, nn.GRU):
        if cell.num_layers != 1 or cell.bidirectional:
            raise LFADSDataError(
                f"nn.GRU with num_layers={cell.num_layers}, bidirectional={cell.bidirectional} has no single "
                "update map h_t = F(h_{t-1}, u_t); pass a single-layer unidirectional GRU (or one of its layers "
                "as an nn.GRUCell), or a callable f(u, h) -> h_next."
            )
        w_ih, w_hh = cell.weight_ih_l0, cell.weight_hh_l0
        b_ih = getattr(cell, "bias_ih_l0", None) if cell.bias else None
        b_hh = getattr(cell, "bias_hh_l0", None) if cell.bias else None
    else:
        w_ih, w_hh, b_ih, b_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    device = w_hh.device if device is None else torch.device(device)

    def _copy(t: Tensor | None, n: int) -> Tensor:
        if t is None:
            return torch.zeros(n, dtype=dtype, device=device)
        return t.detach().to(device=device, dtype=dtype, copy=True)

    h3 = w_hh.shape[0]
    clip = float(getattr(cell, "clip_value", float("inf"))) if isinstance(cell, ClippedGRUCell) else float("inf")
    return GRUParameters(_copy(w_ih, h3), _copy(w_hh, h3), _copy(b_ih, h3), _copy(b_hh, h3), clip)


class Dynamics(Protocol):
    """A discrete-time map ``h_next = F(h, u)`` with Jacobians, batched over rows.

    All tensors are ``(batch, dim)``: ``h`` is ``(batch, H)``, ``u`` is ``(batch, I)``. A map may also
    provide ``normal_equations(h, u) -> (q, J^T r, system)`` for the fixed-point search, when its
    :math:`J^T J` has a structure that solves faster than a dense matrix
    (:mod:`lfads.analysis.normal_equations`).
    """

    hidden_size: int
    input_size: int
    dtype: torch.dtype
    device: torch.device

    def step(self, h: Tensor, u: Tensor) -> Tensor:
        """``F(h, u)``, ``(batch, H)``."""
        ...

    def jacobians(self, h: Tensor, u: Tensor, wrt_input: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(F, dF/dh (batch, H, H), dF/du (batch, H, I) or None)``."""
        ...

    def speed_and_gradient(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(r, q, grad)``: residual ``r = F(h, u) - h``, ``q = ||r||^2 / 2`` ``(batch,)`` and ``dq/dh``."""
        ...

    def differentiable_step(self, h: Tensor, u: Tensor) -> Tensor:
        """``F(h, u)`` written in plain differentiable torch ops (usable under ``torch.func`` transforms)."""
        ...

    def speed_hessian(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(r, q, grad, Hessian of q (batch, H, H))``."""
        ...


class GRUDynamics:
    """Closed-form GRU map and Jacobians (see the module docstring), batched.

    Parameters
    ----------
    params : GRUParameters
        The weights (typically from :func:`extract_gru_parameters`).
    """

    def __init__(self, params: GRUParameters) -> None:
        self.params = params
        self.hidden_size = params.hidden_size
        self.input_size = params.input_size
        self.dtype = params.weight_hh.dtype
        self.device = params.weight_hh.device
        H = self.hidden_size
        w = params.weight_hh
        self._w_hr, self._w_hz, self._w_hn = w[:H], w[H : 2 * H], w[2 * H :]
        wi = params.weight_ih
        self._w_ir, self._w_iz, self._w_in = wi[:H], wi[H : 2 * H], wi[2 * H :]
        self._w_hh_t = w.T.contiguous()
        self._w_ih_t = wi.T.contiguous()
        self._clip = params.clip_value

    # -- forward pieces ------------------------------------------------------------------------------------------
    def _gates(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        H = self.hidden_size
        p = self.params
        gi = torch.addmm(p.bias_ih, u, self._w_ih_t) if self.input_size else p.bias_ih.expand(h.shape[0], -1)
        gh = torch.addmm(p.bias_hh, h, self._w_hh_t)
        rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        g = gh[:, 2 * H :]
        n = torch.tanh(gi[:, 2 * H :] + r * g)
        pre = n + z * (h - n)
        return r, z, n, g, pre, self._mask(pre)

    def _mask(self, pre: Tensor) -> Tensor | None:
        if self._clip == float("inf"):
            return None
        return (pre.abs() <= self._clip).to(pre.dtype)

    def _clamp(self, pre: Tensor) -> Tensor:
        return pre if self._clip == float("inf") else pre.clamp(-self._clip, self._clip)

    def step(self, h: Tensor, u: Tensor) -> Tensor:
        """``F(h, u)`` for ``h`` ``(batch, H)`` and ``u`` ``(batch, I)``."""
        return self._clamp(self._gates(h, u)[4])

    def differentiable_step(self, h: Tensor, u: Tensor) -> Tensor:
        """Same as :meth:`step`; written in plain torch ops so ``torch.func`` transforms apply."""
        return self.step(h, u)

    def _coefficients(self, h: Tensor, u: Tensor) -> tuple[Tensor, ...]:
        """``(F, z, alpha, gamma r, gamma delta, gamma, mask)`` of the module docstring, each ``(B, H)``."""
        r, z, n, g, pre, mask = self._gates(h, u)
        alpha = (h - n) * z * (1.0 - z)
        gamma = (1.0 - z) * (1.0 - n * n)
        delta = g * r * (1.0 - r)
        return self._clamp(pre), z, alpha, gamma * r, gamma * delta, gamma, mask

    def jacobians(self, h: Tensor, u: Tensor, wrt_input: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Closed-form ``(F, dF/dh, dF/du)``: ``(B, H)``, ``(B, H, H)``, ``(B, H, I)`` (or ``None``)."""
        f, z, alpha, gr, gd, gamma, mask = self._coefficients(h, u)
        if mask is not None:
            z, alpha, gr, gd, gamma = (x * mask for x in (z, alpha, gr, gd, gamma))
        jh = alpha.unsqueeze(2) * self._w_hz
        jh.addcmul_(gr.unsqueeze(2), self._w_hn).addcmul_(gd.unsqueeze(2), self._w_hr)
        jh.diagonal(dim1=1, dim2=2).add_(z)
        ju = None
        if wrt_input:
            ju = alpha.unsqueeze(2) * self._w_iz
            ju.addcmul_(gamma.unsqueeze(2), self._w_in).addcmul_(gd.unsqueeze(2), self._w_ir)
        return f, jh, ju

    def vjp_state(self, h: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``(F, v^T dF/dh)`` without forming the Jacobian: one ``(B, 3H) @ (3H, H)`` product."""
        f, z, alpha, gr, gd, _, mask = self._coefficients(h, u)
        if mask is not None:
            v = v * mask
        coef = torch.cat([v * gd, v * alpha, v * gr], dim=1)
        return f, torch.addcmul(coef @ self.params.weight_hh, v, z)

    def speed_and_gradient(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Residual ``r = F(h, u) - h``, speed ``q = ||r||^2 / 2`` and ``dq/dh = (dF/dh - I)^T r``."""
        f, z, alpha, gr, gd, _, mask = self._coefficients(h, u)
        r = f - h
        v = r if mask is None else r * mask
        coef = torch.cat([v * gd, v * alpha, v * gr], dim=1)
        grad = torch.addcmul(coef @ self.params.weight_hh, v, z) - r
        return r, 0.5 * (r * r).sum(1), grad

    def speed_hessian(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(r, q, grad, Hessian)`` of the speed, the Hessian ``(B, H, H)`` in closed form.

        .. math:: \\nabla^2 q = J^T J + \\nabla^2_h (v^T F)\\big|_{v = r},\\qquad J = \\partial F/\\partial h - I

        Unit :math:`i` contributes :math:`\\phi_i = v_i [n_i + z_i (h_i - n_i)]`, a function of
        :math:`x_i = (h_i, a_{z,i}, a_{r,i}, g_i)` that are linear in :math:`h` (rows
        :math:`e_i, W_{hz,i}, W_{hr,i}, W_{hn,i}`), so
        :math:`\\nabla^2_h (v^T F) = \\sum_i L_i^T (\\nabla^2_{x} \\phi_i) L_i`; with
        :math:`a_n = c + r g`, the local second derivatives are
        :math:`\\phi_{hz} = v z'`, :math:`\\phi_{zz} = v z'' (h - n)`, :math:`\\phi_{zn} = -v z' n'`,
        :math:`\\phi_{nn} = v (1 - z) n''` chained through :math:`a_n(a_r, g)`. Units where the clip
        is active contribute nothing (``v`` is masked).
        """
        r_gate, z, n, g, pre, mask = self._gates(h, u)
        f = self._clamp(pre)
        res = f - h
        v = res if mask is None else res * mask
        zp = z * (1.0 - z)
        zpp = zp * (1.0 - 2.0 * z)
        n1 = 1.0 - n * n
        n2 = -2.0 * n * n1
        rp = r_gate * (1.0 - r_gate)
        rpp = rp * (1.0 - 2.0 * r_gate)
        phi_n = v * (1.0 - z) * n1
        phi_nn = v * (1.0 - z) * n2
        phi_zn = -v * zp * n1
        phi_hz = v * zp
        phi_zz = v * zpp * (h - n)
        dr = rp * g  # d a_n / d a_r
        phi_rr = phi_nn * dr * dr + phi_n * rpp * g
        phi_rg = phi_nn * dr * r_gate + phi_n * rp
        phi_gg = phi_nn * r_gate * r_gate
        phi_zr = phi_zn * dr
        phi_zg = phi_zn * r_gate
        wz, wr, wg = self._w_hz, self._w_hr, self._w_hn

        def rows(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
            out = a.unsqueeze(2) * wz
            return out.addcmul_(b.unsqueeze(2), wr).addcmul_(c.unsqueeze(2), wg)

        # P^T Q with P = [W_z; W_r; W_g] and Q = M P (M: 3x3 blocks of diagonals)
        second = wz.T @ rows(phi_zz, phi_zr, phi_zg)
        second += wr.T @ rows(phi_zr, phi_rr, phi_rg)
        second += wg.T @ rows(phi_zg, phi_rg, phi_gg)
        cross = phi_hz.unsqueeze(2) * wz
        second += cross + cross.mT
        # Gauss-Newton part
        _, jac, _ = self.jacobians(h, u, wrt_input=False)
        jac.diagonal(dim1=1, dim2=2).sub_(1.0)
        hess = torch.baddbmm(second, jac.mT, jac)
        grad = (jac.mT @ res.unsqueeze(2)).squeeze(2)
        return res, 0.5 * (res * res).sum(1), grad, hess


class AutogradDynamics:
    """Any callable ``f(u, h) -> h_next`` (batched over rows), differentiated with ``torch.func``.

    Parameters
    ----------
    fn : callable or nn.Module
        The map, called as ``fn(u, h)`` with ``u`` ``(batch, I)`` and ``h`` ``(batch, H)`` and
        returning ``(batch, H)``; the same argument order as ``nn.GRUCell``. An ``nn.Module`` is
        deep-copied, cast to ``dtype`` and put in evaluation mode (the caller's module is untouched);
        a plain function is called as is and must accept tensors of ``dtype``.
    hidden_size, input_size : int
        ``H`` and ``I``.
    dtype : torch.dtype
        Floating type used for states and inputs.
    device : torch.device or str
        Device of states and inputs.
    """

    def __init__(
        self,
        fn: Callable[[Tensor, Tensor], Tensor],
        hidden_size: int,
        input_size: int,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(fn, nn.Module):
            fn = copy.deepcopy(fn).to(dtype=dtype, device=device).eval().requires_grad_(False)
        self.fn = fn
        self.hidden_size = int(hidden_size)
        self.input_size = int(input_size)
        self.dtype = dtype
        self.device = torch.device(device)
        self._vmap_ok = True

    def step(self, h: Tensor, u: Tensor) -> Tensor:
        """``fn(u, h)`` evaluated without building a graph."""
        with torch.no_grad():
            out = self.fn(u, h)
        if out.shape != h.shape:
            raise LFADSDataError(
                f"The dynamics callable returned shape {tuple(out.shape)} for a state of shape {tuple(h.shape)}; "
                "it must map (batch, input) and (batch, hidden) to (batch, hidden)."
            )
        return out

    def differentiable_step(self, h: Tensor, u: Tensor) -> Tensor:
        """``fn(u, h)`` with autograd enabled."""
        return self.fn(u, h)

    def _single(self, h: Tensor, u: Tensor) -> Tensor:
        return self.fn(u.unsqueeze(0), h.unsqueeze(0)).squeeze(0)

    def jacobians(self, h: Tensor, u: Tensor, wrt_input: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(F, dF/dh, dF/du)`` via ``vmap(jacrev)``; falls back to one backward pass per output unit."""
        f = self.step(h, u)
        argnums = (0, 1) if wrt_input and self.input_size else (0,)
        if self._vmap_ok:
            try:
                with torch.enable_grad():
                    jac = torch.func.vmap(torch.func.jacrev(self._single, argnums=argnums))(h, u)
                jh = jac[0]
                ju = jac[1] if len(argnums) == 2 else None
                return f, jh.detach(), self._empty_ju(h, wrt_input) if ju is None else ju.detach()
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                self._vmap_ok = False
        return (f, *self._loop_jacobians(h, u, wrt_input))

    def _empty_ju(self, h: Tensor, wrt_input: bool) -> Tensor | None:
        if not wrt_input:
            return None
        return h.new_zeros(h.shape[0], self.hidden_size, self.input_size)

    def _loop_jacobians(self, h: Tensor, u: Tensor, wrt_input: bool) -> tuple[Tensor, Tensor | None]:
        """Rows are independent, so ``d(sum_b F_bi)/d h_b`` is row ``i`` of each Jacobian."""
        with torch.enable_grad():
            hh = h.detach().clone().requires_grad_(True)
            uu = u.detach().clone().requires_grad_(bool(wrt_input and self.input_size))
            out = self.fn(uu, hh)
            rows_h, rows_u = [], []
            for i in range(self.hidden_size):
                inputs = (hh, uu) if uu.requires_grad else (hh,)
                grads = torch.autograd.grad(out[:, i].sum(), inputs, retain_graph=True, allow_unused=True)
                rows_h.append(torch.zeros_like(hh) if grads[0] is None else grads[0])
                if uu.requires_grad:
                    rows_u.append(torch.zeros_like(uu) if grads[1] is None else grads[1])
        jh = torch.stack(rows_h, dim=1).detach()
        ju = torch.stack(rows_u, dim=1).detach() if rows_u else self._empty_ju(h, wrt_input)
        return jh, ju

    def speed_and_gradient(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(r, q, dq/dh)`` with one backward pass."""
        with torch.enable_grad():
            hh = h.detach().clone().requires_grad_(True)
            r = self.fn(u, hh) - hh
            q = 0.5 * (r * r).sum(1)
            (grad,) = torch.autograd.grad(q.sum(), hh)
        return r.detach(), q.detach(), grad


    def speed_hessian(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(r, q, grad, Hessian)`` of the speed via ``vmap(hessian)``, or one point at a time if that fails."""

        def q_single(hs: Tensor, us: Tensor) -> Tensor:
            res = self._single(hs, us) - hs
            return 0.5 * (res * res).sum()

        hess = None
        if self._vmap_ok:
            try:
                with torch.enable_grad():
                    hess = torch.func.vmap(torch.func.hessian(q_single))(h, u).detach()
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                self._vmap_ok = False
        if hess is None:
            with torch.enable_grad():
                hess = torch.stack(
                    [torch.autograd.functional.hessian(lambda x, ui=ui: q_single(x, ui), hi) for hi, ui in zip(h, u)]
                ).detach()
        r, q, grad = self.speed_and_gradient(h, u)
        return r, q, grad, hess


def as_dynamics(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    hidden_size: int | None = None,
    input_size: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Dynamics:
    """Wrap a cell or callable as a :class:`Dynamics` (closed form for plain GRUs).

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        ``nn.GRUCell``, ``ClippedGRUCell``, single-layer ``nn.GRU`` (closed-form path), any other
        module or callable ``f(u, h) -> h_next`` (autograd path), or an existing :class:`Dynamics`
        (returned unchanged).
    hidden_size, input_size : int, optional
        Needed only for a callable whose sizes cannot be read from GRU-like attributes.
    dtype : torch.dtype
        Floating type for the computation (float64 by default).
    device : torch.device or str, optional
        Device; that of the module's parameters (or CPU) by default.

    Raises
    ------
    LFADSDataError
        If the sizes of a generic callable are unknown.
    """
    if isinstance(cell, (GRUDynamics, AutogradDynamics)):
        return cell
    if isinstance(cell, nn.Module):
        params = extract_gru_parameters(cell, dtype=dtype, device=device)
        if params is not None:
            return GRUDynamics(params)
        if device is None:
            first = next(iter(cell.parameters()), None)
            device = first.device if first is not None else "cpu"
    hidden_size = hidden_size if hidden_size is not None else getattr(cell, "hidden_size", None)
    input_size = input_size if input_size is not None else getattr(cell, "input_size", None)
    if hidden_size is None or input_size is None:
        raise LFADSDataError(
            f"Cannot tell the state and input sizes of {type(cell).__name__}: pass hidden_size= and input_size= "
            "(input_size=0 for an autonomous map f(u, h) that ignores u)."
        )
    return AutogradDynamics(cell, int(hidden_size), int(input_size), dtype=dtype, device=device or "cpu")


def compute_jacobians(
    cell: nn.Module | Callable[[Tensor, Tensor], Tensor] | Dynamics,
    states: Tensor,
    inputs: Tensor | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Jacobians of ``F`` w.r.t. state and input at a batch of points.

    .. math:: J_h = \\partial F / \\partial h \\ (H \\times H),\\qquad J_u = \\partial F / \\partial u\\ (H \\times I)

    Parameters
    ----------
    cell : nn.Module, callable or Dynamics
        See :func:`as_dynamics` (``kwargs`` go there).
    states : Tensor
        ``(points, H)``.
    inputs : Tensor, optional
        ``(points, I)`` or ``(I,)``; zeros by default.

    Returns
    -------
    jac_state : Tensor
        ``(points, H, H)``, float64 by default.
    jac_input : Tensor
        ``(points, H, I)``.
    """
    dyn = as_dynamics(cell, **kwargs)
    h = torch.as_tensor(states).to(dtype=dyn.dtype, device=dyn.device)
    if h.ndim == 1:
        h = h.unsqueeze(0)
    u = broadcast_inputs(inputs, h.shape[0], dyn)
    _, jh, ju = dyn.jacobians(h, u, wrt_input=True)
    assert ju is not None
    return jh, ju


def broadcast_inputs(inputs: Tensor | None, n_points: int, dyn: Dynamics) -> Tensor:
    """Inputs ``u*`` as ``(points, I)``: zeros for ``None``, a ``(I,)`` vector repeated, or ``(points, I)`` as is.

    Raises
    ------
    LFADSDataError
        If the shape fits neither form.
    """
    if inputs is None:
        return torch.zeros(n_points, dyn.input_size, dtype=dyn.dtype, device=dyn.device)
    u = torch.as_tensor(inputs).to(dtype=dyn.dtype, device=dyn.device)
    if u.ndim == 1 and u.shape[0] == dyn.input_size:
        return u.unsqueeze(0).expand(n_points, -1).contiguous()
    if u.ndim == 2 and u.shape == (n_points, dyn.input_size):
        return u.contiguous()
    raise LFADSDataError(
        f"inputs has shape {tuple(u.shape)}; expected ({dyn.input_size},) for one input held at every point, "
        f"or ({n_points}, {dyn.input_size}) for one input per point."
    )
