"""Recurrent cells as maps :math:`h_t = F(h_{t-1}, u_t)` with closed-form Jacobians.

Five architectures share one parameter layout: ``weight_ih`` ``(G H, I)``, ``weight_hh`` ``(G H, H)``,
``bias_ih`` and ``bias_hh`` ``(G H,)`` for :math:`G` gate blocks of :math:`H` units (stacked on extra
leading axes for a population: ``(N, G H, I)`` and so on). With :math:`a = W_{i} u + b_{i} + W_{h} h + b_{h}`
split into blocks:

* ``vanilla`` (:math:`G = 1`): :math:`F = \\tanh(a)`;
* ``relu`` (:math:`G = 1`): :math:`F = \\max(a, 0)`;
* ``gru`` (:math:`G = 3`, torch's layout, blocks reset, update, candidate):
  :math:`r = \\sigma(a_r)`, :math:`z = \\sigma(a_z)`,
  :math:`n = \\tanh(W_{in} u + b_{in} + r \\odot (W_{hn} h + b_{hn}))`, :math:`F = n + z \\odot (h - n)`;
* ``lstm`` (:math:`G = 4`, torch's layout, blocks input, forget, cell, output): the state is
  :math:`s = [h; c]` of size :math:`2H`, :math:`a` uses :math:`h` only,
  :math:`c' = \\sigma(a_f) c + \\sigma(a_i) \\tanh(a_g)`, :math:`h' = \\sigma(a_o) \\tanh(c')`, :math:`F = [h'; c']`;
* ``ugrnn`` (:math:`G = 2`, blocks gate, candidate; Collins, Sohl-Dickstein & Sussillo 2017):
  :math:`g = \\sigma(a_g)`, :math:`c = \\tanh(a_c)`, :math:`F = g \\odot h + (1 - g) \\odot c`.

Every Jacobian is a diagonal plus a sum over gate blocks of row-scaled weight blocks,
:math:`\\partial F / \\partial h = D + \\sum_k \\operatorname{diag}(\\kappa_k) W_{h,k}` and
:math:`\\partial F / \\partial u = \\sum_k \\operatorname{diag}(\\kappa'_k) W_{i,k}`; for the GRU,
with :math:`\\alpha = (h - n) z (1 - z)`, :math:`\\gamma = (1 - z)(1 - n^2)`, :math:`\\delta = g_n r (1 - r)`:
:math:`D = z`, :math:`\\kappa = (\\gamma\\delta, \\alpha, \\gamma r)` and
:math:`\\kappa' = (\\gamma\\delta, \\alpha, \\gamma)`;
for the UGRNN :math:`D = g`, :math:`\\kappa = \\kappa' = ((h - c) g (1 - g), (1 - g)(1 - c^2))`; for the LSTM
(:math:`\\tau = \\tanh c'`) the rows of :math:`c'` have :math:`\\kappa^c = (g\\,i', c\\,f', i\\,(1 - g^2), 0)`,
those of :math:`h'` have :math:`\\kappa^h = o (1 - \\tau^2) \\kappa^c + (0, 0, 0, \\tau o')`, and
:math:`\\partial c'/\\partial c = \\operatorname{diag}(f)`,
:math:`\\partial h'/\\partial c = \\operatorname{diag}(o (1 - \\tau^2) f)`.

:class:`RecurrentCell` is an ``nn.Module`` ``cell(u, h) -> h_next`` (the argument order of
``nn.GRUCell``); :meth:`RecurrentCell.dynamics` gives a :class:`CellDynamics`, which the fixed-point
finder and :func:`lfads.analysis.jacobians.compute_jacobians` use with the closed-form Jacobians.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lfads.analysis.jacobians import AutogradDynamics, GRUDynamics, GRUParameters
from lfads.analysis.normal_equations import DiagonalTailSystem, NormalSystem, dense_gauss_newton_system
from lfads.errors import LFADSDataError, check_setting

__all__ = [
    "ARCHITECTURES",
    "GATES",
    "CellDynamics",
    "LSTMDerivatives",
    "RecurrentCell",
    "cell_jacobians",
    "cell_step",
    "cell_update",
    "check_arch",
    "gru_coefficients",
    "init_parameters",
    "input_drive",
    "lstm_coefficients",
    "lstm_derivatives",
    "lstm_normal_equations",
    "state_size",
    "ugrnn_coefficients",
]

ARCHITECTURES: tuple[str, ...] = ("vanilla", "relu", "gru", "lstm", "ugrnn")
GATES: dict[str, int] = {"vanilla": 1, "relu": 1, "gru": 3, "lstm": 4, "ugrnn": 2}
PARAMETER_NAMES: tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_CANDIDATE_BLOCK: dict[str, int] = {"gru": 2, "lstm": 2, "ugrnn": 1}  # gate block of the candidate state


def check_arch(arch: str) -> str:
    """Return ``arch`` if it is one of :data:`ARCHITECTURES`.

    Raises
    ------
    LFADSDataError
        For an unknown name.
    """
    if arch not in GATES:
        raise LFADSDataError(f"Unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}.")
    return arch


def state_size(arch: str, units: int) -> int:
    """Size of the state :math:`h`: ``2 * units`` for the LSTM (``[h; c]``), ``units`` otherwise."""
    return 2 * units if check_arch(arch) == "lstm" else units


# ----------------------------------------------------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------------------------------------------------


def init_parameters(
    arch: str,
    units: int,
    input_size: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    identity_candidate: bool = False,
) -> dict[str, Tensor]:
    """Random parameters of one cell.

    Gated cells: every entry :math:`\\sim U(-1/\\sqrt H, 1/\\sqrt H)` (torch's default), plus 1 on the
    forget-gate bias (LSTM) and the update-gate bias (UGRNN) so that memories are kept at first.
    ``vanilla`` and ``relu``: :math:`W_h = 0.5 I + N(0, 0.25/H)` (eigenvalues in the disc of radius 0.5
    about 0.5: no mode starts near :math:`-1`), :math:`W_i \\sim N(0, 1/I)`, zero biases.

    With ``identity_candidate``, the recurrent block of a gated cell's candidate (GRU :math:`n`, LSTM
    :math:`g`, UGRNN :math:`c`) is drawn like the vanilla :math:`W_h`, :math:`0.5 I + N(0, 0.25/H)` (drawn
    after the uniform entries, which it replaces). Where the gate is open (:math:`z < 1`,
    :math:`g < 1`) the fixed points of the GRU and the UGRNN are exactly the points where the candidate
    equals the state, :math:`h = \\tanh(W_c h + \\dots)`: the candidate map is a vanilla network, and this
    starts it as one (every mode with positive self-feedback, rather than the uniform block's eigenvalues
    spread over the disc of radius :math:`1/\\sqrt 3` about 0). ``vanilla`` and ``relu`` are unchanged.

    Returns
    -------
    dict
        ``weight_ih`` ``(G H, I)``, ``weight_hh`` ``(G H, H)``, ``bias_ih``, ``bias_hh`` ``(G H,)``.
    """
    check_setting(f"{arch} cell", "units", units, 1, integer=True)
    check_setting(f"{arch} cell", "input_size", input_size, 0, integer=True)
    gh = GATES[check_arch(arch)] * units
    if arch in ("vanilla", "relu"):
        w_ih = torch.randn(gh, input_size, generator=generator) / math.sqrt(max(input_size, 1))
        w_hh = torch.randn(gh, units, generator=generator) / math.sqrt(units)
        w_hh = 0.5 * torch.eye(units) + 0.5 * w_hh
        b_ih, b_hh = torch.zeros(gh), torch.zeros(gh)
    else:
        k = 1.0 / math.sqrt(units)

        def uniform(*shape: int) -> Tensor:
            return (2.0 * torch.rand(*shape, generator=generator) - 1.0) * k

        w_ih, w_hh, b_ih, b_hh = uniform(gh, input_size), uniform(gh, units), uniform(gh), uniform(gh)
        if arch == "lstm":
            b_ih[units : 2 * units] += 1.0
        elif arch == "ugrnn":
            b_ih[:units] += 1.0
        if identity_candidate:
            block = _CANDIDATE_BLOCK[arch] * units
            noise = torch.randn(units, units, generator=generator) / math.sqrt(units)
            w_hh[block : block + units] = 0.5 * torch.eye(units) + 0.5 * noise
    params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    return {k: v.to(dtype) for k, v in params.items()}


# ----------------------------------------------------------------------------------------------------------------------
# The map
# ----------------------------------------------------------------------------------------------------------------------


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x W^T + b`` for ``x`` ``(..., B, K)``, ``weight`` ``(..., M, K)``, ``bias`` ``(..., M)``."""
    return torch.matmul(x, weight.transpose(-1, -2)) + bias.unsqueeze(-2)


def input_drive(params: dict[str, Tensor], u: Tensor) -> Tensor:
    """:math:`W_i u + b_i`, ``(..., B, G H)`` for ``u`` ``(..., B, I)``."""
    return _linear(u, params["weight_ih"], params["bias_ih"])


def cell_update(arch: str, drive: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """:math:`F(h, u)` from the input drive :math:`W_i u + b_i` ``(..., B, G H)`` and the state ``(..., B, S)``."""
    if arch == "lstm":
        units = weight_hh.shape[-1]
        hh, c = h[..., :units], h[..., units:]
        i, f, g, o = (drive + _linear(hh, weight_hh, bias_hh)).chunk(4, dim=-1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.cat([torch.sigmoid(o) * torch.tanh(c_next), c_next], dim=-1)
    rec = _linear(h, weight_hh, bias_hh)
    if arch == "vanilla":
        return torch.tanh(drive + rec)
    if arch == "relu":
        return torch.relu(drive + rec)
    if arch == "gru":
        d_r, d_z, d_n = drive.chunk(3, dim=-1)
        g_r, g_z, g_n = rec.chunk(3, dim=-1)
        r, z = torch.sigmoid(d_r + g_r), torch.sigmoid(d_z + g_z)
        n = torch.tanh(d_n + r * g_n)
        return n + z * (h - n)
    if arch == "ugrnn":
        a_g, a_c = (drive + rec).chunk(2, dim=-1)
        g, c = torch.sigmoid(a_g), torch.tanh(a_c)
        return c + g * (h - c)
    raise LFADSDataError(f"Unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}.")


def cell_step(arch: str, params: dict[str, Tensor], u: Tensor, h: Tensor) -> Tensor:
    """:math:`F(h, u)` for ``u`` ``(..., B, I)`` and ``h`` ``(..., B, S)``; leading axes of the parameters broadcast."""
    return cell_update(arch, input_drive(params, u), h, params["weight_hh"], params["bias_hh"])


# ----------------------------------------------------------------------------------------------------------------------
# Closed-form Jacobians
# ----------------------------------------------------------------------------------------------------------------------


def gru_coefficients(h: Tensor, r: Tensor, z: Tensor, n: Tensor, rec_n: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gate coefficients of the GRU's Jacobian, elementwise (any shape): with :math:`F = n + z (h - n)`,

    .. math:: \\gamma = (1 - z)(1 - n^2),\\quad \\kappa_r = \\gamma\\, g_n\\, r (1 - r),\\quad
              \\kappa_z = (h - n)\\, z (1 - z),

    the derivatives of :math:`F` by the reset and update pre-activations (:math:`\\kappa_r, \\kappa_z`) and,
    times :math:`r` for the recurrent part, by the candidate's (:math:`\\gamma`); ``rec_n`` is
    :math:`g_n = W_{hn} h + b_{hn}`. Returns :math:`(\\kappa_r, \\kappa_z, \\gamma)`.
    """
    gamma = (1.0 - z) * (1.0 - n * n)
    return gamma * rec_n * r * (1.0 - r), (h - n) * z * (1.0 - z), gamma


def ugrnn_coefficients(h: Tensor, g: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Gate coefficients of the UGRNN's Jacobian, elementwise: with :math:`F = c + g (h - c)`, the derivatives
    by the gate's and the candidate's pre-activations, :math:`((h - c) g (1 - g), (1 - g)(1 - c^2))`."""
    return (h - c) * g * (1.0 - g), (1.0 - g) * (1.0 - c * c)


def lstm_coefficients(c: Tensor, i: Tensor, f: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gate coefficients of the LSTM's new cell state :math:`c' = f c + i g`, elementwise: its derivatives by
    the input, forget and candidate pre-activations, :math:`(g\\, i (1 - i),\\ c\\, f (1 - f),\\ i (1 - g^2))`."""
    return g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g)


def _blocks_sum(coefs: tuple[Tensor, ...], weight: Tensor, units: int) -> Tensor:
    """:math:`\\sum_k \\operatorname{diag}(\\kappa_k) W_k`.

    ``coefs``: ``G`` tensors ``(B, H)``; ``weight``: ``(G H, K)``; returns ``(B, H, K)``.
    """
    out = coefs[0].unsqueeze(2) * weight[:units]
    for k, c in enumerate(coefs[1:], start=1):
        out.addcmul_(c.unsqueeze(2), weight[k * units : (k + 1) * units])
    return out


def cell_jacobians(
    arch: str, params: dict[str, Tensor], h: Tensor, u: Tensor, wrt_input: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Closed-form ``(F, dF/dh, dF/du)`` of one cell at a batch of points (see the module docstring).

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.
    params : dict of Tensor
        One cell's parameters (no leading network axis).
    h : Tensor
        ``(B, S)`` states.
    u : Tensor
        ``(B, I)`` inputs.
    wrt_input : bool
        Also return :math:`\\partial F / \\partial u`.

    Returns
    -------
    F : Tensor
        ``(B, S)``.
    jac_state : Tensor
        ``(B, S, S)``.
    jac_input : Tensor or None
        ``(B, S, I)``.
    """
    w_ih, w_hh = params["weight_ih"], params["weight_hh"]
    units = w_hh.shape[1]
    drive = input_drive(params, u)
    if arch == "lstm":
        return _lstm_jacobians(drive, h, params, wrt_input)
    rec = _linear(h, w_hh, params["bias_hh"])
    if arch in ("vanilla", "relu"):
        a = drive + rec
        f = torch.tanh(a) if arch == "vanilla" else torch.relu(a)
        d = 1.0 - f * f if arch == "vanilla" else (a > 0).to(a.dtype)
        jh = d.unsqueeze(2) * w_hh
        return f, jh, d.unsqueeze(2) * w_ih if wrt_input else None
    if arch == "gru":
        d_r, d_z, d_n = drive.chunk(3, dim=1)
        g_r, g_z, g_n = rec.chunk(3, dim=1)
        r, z = torch.sigmoid(d_r + g_r), torch.sigmoid(d_z + g_z)
        n = torch.tanh(d_n + r * g_n)
        f = n + z * (h - n)
        gd, alpha, gamma = gru_coefficients(h, r, z, n, g_n)
        diag, coef_h, coef_u = z, (gd, alpha, gamma * r), (gd, alpha, gamma)
    elif arch == "ugrnn":
        a_g, a_c = (drive + rec).chunk(2, dim=1)
        g, c = torch.sigmoid(a_g), torch.tanh(a_c)
        f = c + g * (h - c)
        coef_h = coef_u = ugrnn_coefficients(h, g, c)
        diag = g
    else:
        raise LFADSDataError(f"Unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}.")
    jh = _blocks_sum(coef_h, w_hh, units)
    jh.diagonal(dim1=1, dim2=2).add_(diag)
    ju = _blocks_sum(coef_u, w_ih, units) if wrt_input else None
    return f, jh, ju


class LSTMDerivatives(NamedTuple):
    """The LSTM's next state and the coefficients of its Jacobian at a batch of states ``[h; c]`` ``(B, 2H)``.

    :math:`\\partial h' / \\partial h = \\sum_k \\operatorname{diag}(\\kappa^h_k) W_k` over the gates
    :math:`k = i, f, g, o`, :math:`\\partial c' / \\partial h = \\sum_k \\operatorname{diag}(\\kappa^c_k) W_k`
    over :math:`i, f, g`, :math:`\\partial h' / \\partial c = \\operatorname{diag}(d)` and
    :math:`\\partial c' / \\partial c = \\operatorname{diag}(f)`; the same with the input weights for
    :math:`\\partial / \\partial u`. Every field ``(B, H)``.
    """

    h_next: Tensor
    c_next: Tensor
    kh: tuple[Tensor, Tensor, Tensor, Tensor]
    kc: tuple[Tensor, Tensor, Tensor]
    d: Tensor
    f: Tensor


def lstm_derivatives(drive: Tensor, state: Tensor, params: dict[str, Tensor]) -> LSTMDerivatives:
    """:class:`LSTMDerivatives` from the input drive :math:`W_i u + b_i` ``(B, 4H)`` and ``state``."""
    w_hh = params["weight_hh"]
    units = w_hh.shape[1]
    h, c = state[:, :units], state[:, units:]
    a_i, a_f, a_g, a_o = (drive + _linear(h, w_hh, params["bias_hh"])).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c_next = f * c + i * g
    tau = torch.tanh(c_next)
    kc = lstm_coefficients(c, i, f, g)
    dtau = o * (1.0 - tau * tau)
    kh = (dtau * kc[0], dtau * kc[1], dtau * kc[2], tau * o * (1.0 - o))
    return LSTMDerivatives(o * tau, c_next, kh, kc, dtau * f, f)


def _lstm_jacobians(
    drive: Tensor, state: Tensor, params: dict[str, Tensor], wrt_input: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(F, dF/ds, dF/du)`` of the LSTM with state ``s = [h; c]`` (module docstring)."""
    w_hh, w_ih = params["weight_hh"], params["weight_ih"]
    units = w_hh.shape[1]
    der = lstm_derivatives(drive, state, params)
    jac = state.new_zeros(state.shape[0], 2 * units, 2 * units)
    jac[:, :units, :units] = _blocks_sum(der.kh, w_hh, units)
    jac[:, units:, :units] = _blocks_sum(der.kc, w_hh, units)
    jac[:, :units, units:].diagonal(dim1=1, dim2=2).copy_(der.d)
    jac[:, units:, units:].diagonal(dim1=1, dim2=2).copy_(der.f)
    ju = None
    if wrt_input:
        ju = torch.cat([_blocks_sum(der.kh, w_ih, units), _blocks_sum(der.kc, w_ih, units)], dim=1)
    return torch.cat([der.h_next, der.c_next], dim=1), jac, ju


def lstm_normal_equations(
    drive: Tensor, state: Tensor, params: dict[str, Tensor]
) -> tuple[Tensor, Tensor, DiagonalTailSystem]:
    """``(q, J^T r, J^T J)`` of the LSTM's fixed-point search at ``state = [h; c]`` ``(B, 2H)``, from its blocks.

    With :math:`r = F(s) - s` and :math:`J = \\partial F / \\partial s - I`,

    .. math:: J = \\begin{pmatrix} P & \\operatorname{diag}(d_1) \\\\ Q & \\operatorname{diag}(d_2)
              \\end{pmatrix},\\quad d_1 = o (1 - \\tanh^2 c')\\, f,\\quad d_2 = f - 1,

    where :math:`P = \\partial h' / \\partial h - I` and :math:`Q = \\partial c' / \\partial h` are the dense
    ``(B, H, H)`` blocks; so :math:`J^T J` has the leading block :math:`P^T P + Q^T Q`, the coupling
    :math:`P^T \\operatorname{diag}(d_1) + Q^T \\operatorname{diag}(d_2)` and the diagonal tail
    :math:`d_1^2 + d_2^2` (:class:`lfads.analysis.normal_equations.DiagonalTailSystem`).
    """
    w_hh = params["weight_hh"]
    units = w_hh.shape[1]
    der = lstm_derivatives(drive, state, params)
    blocks = state.new_empty(state.shape[0], 2 * units, units)  # [P; Q]
    blocks[:, :units] = _blocks_sum(der.kh, w_hh, units)
    blocks[:, units:] = _blocks_sum(der.kc, w_hh, units)
    blocks[:, :units].diagonal(dim1=1, dim2=2).sub_(1.0)
    d1, d2 = der.d, der.f - 1.0
    r = torch.cat([der.h_next, der.c_next], dim=1) - state
    r_h, r_c = r[:, :units], r[:, units:]
    grad = torch.cat([(blocks.mT @ r.unsqueeze(2)).squeeze(2), d1 * r_h + d2 * r_c], dim=1)
    coupling = blocks[:, :units].mT * d1.unsqueeze(1)
    coupling.addcmul_(blocks[:, units:].mT, d2.unsqueeze(1))
    system = DiagonalTailSystem(blocks.mT @ blocks, coupling, d1 * d1 + d2 * d2)
    return 0.5 * (r * r).sum(1), grad, system


# ----------------------------------------------------------------------------------------------------------------------
# Module and Dynamics
# ----------------------------------------------------------------------------------------------------------------------


class RecurrentCell(nn.Module):
    """One cell as a module: ``cell(u, h) -> h_next`` with ``u`` ``(batch, I)`` and ``h`` ``(batch, S)``.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.
    input_size : int
        ``I``.
    units : int
        ``H`` (the state has ``S = 2 H`` entries for the LSTM).
    params : dict of Tensor, optional
        Initial parameters (copied); random from :func:`init_parameters` with ``generator`` otherwise.
    generator : torch.Generator, optional
        Random source for the initialisation.

    Attributes
    ----------
    hidden_size : int
        ``S``, the size of the state (what the fixed-point finder searches over).
    """

    def __init__(
        self,
        arch: str,
        input_size: int,
        units: int,
        params: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.arch = check_arch(arch)
        self.input_size = int(input_size)
        self.units = int(units)
        self.hidden_size = state_size(arch, units)
        if params is None:
            params = init_parameters(arch, units, input_size, generator)
        for name in PARAMETER_NAMES:
            self.register_parameter(name, nn.Parameter(params[name].detach().clone()))

    def parameter_dict(self) -> dict[str, Tensor]:
        """The four parameter tensors by name."""
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def forward(self, u: Tensor, h: Tensor) -> Tensor:
        """:math:`F(h, u)`, ``(batch, S)``."""
        return cell_step(self.arch, self.parameter_dict(), u, h)

    def dynamics(
        self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> CellDynamics | GRUDynamics:
        """The map with closed-form Jacobians, on float64 copies of the weights.

        A :class:`CellDynamics`; for the GRU, :class:`lfads.analysis.jacobians.GRUDynamics` (the same map,
        torch's layout), whose speed gradient and Hessian are in closed form too.
        """
        params = self.parameter_dict()
        if self.arch == "gru":
            device = params["weight_hh"].device if device is None else torch.device(device)
            copies = [params[k].detach().to(device=device, dtype=dtype, copy=True) for k in PARAMETER_NAMES]
            return GRUDynamics(GRUParameters(*copies))
        return CellDynamics(self.arch, params, dtype=dtype, device=device)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, input_size={self.input_size}, units={self.units}"


class CellDynamics(AutogradDynamics):
    """The :class:`lfads.analysis.jacobians.Dynamics` of a cell: closed-form Jacobians, autograd for the rest.

    The parameters are copied (detached, cast to ``dtype``); the caller's tensors are never modified.
    Accepted wherever the analysis takes a cell: ``find_fixed_points(cell.dynamics(), states)``.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.
    params : dict of Tensor
        One cell's parameters (:func:`init_parameters` layout).
    dtype : torch.dtype
        Floating type (float64 by default).
    device : torch.device or str, optional
        Device; that of the parameters by default.
    """

    def __init__(
        self,
        arch: str,
        params: dict[str, Tensor],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        self.arch = check_arch(arch)
        device = params["weight_hh"].device if device is None else torch.device(device)
        self.params = {k: params[k].detach().to(device=device, dtype=dtype, copy=True) for k in PARAMETER_NAMES}
        units, inputs = self.params["weight_hh"].shape[1], self.params["weight_ih"].shape[1]
        super().__init__(self._map, state_size(arch, units), inputs, dtype=dtype, device=device)

    def _map(self, u: Tensor, h: Tensor) -> Tensor:
        return cell_step(self.arch, self.params, u, h)

    def jacobians(self, h: Tensor, u: Tensor, wrt_input: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Closed-form ``(F, dF/dh (B, S, S), dF/du (B, S, I) or None)``."""
        with torch.no_grad():
            return cell_jacobians(self.arch, self.params, h, u, wrt_input)

    def normal_equations(self, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, NormalSystem]:
        """``(q, J^T r, J^T J)`` for the fixed-point search (:mod:`lfads.analysis.normal_equations`); the LSTM's
        from its blocks (:func:`lstm_normal_equations`)."""
        with torch.no_grad():
            if self.arch == "lstm":
                return lstm_normal_equations(input_drive(self.params, u), h, self.params)
            return dense_gauss_newton_system(self, h, u)
