"""The Gauss-Newton normal equations of the fixed-point search, dense or with a diagonal trailing block.

For the residual :math:`r(h) = F(h, u) - h` and :math:`J = \\partial F / \\partial h - I`, each
Levenberg-Marquardt step of :mod:`lfads.analysis.fixed_points` solves

.. math:: (J^T J + \\mu I)\\,\\Delta = -J^T r

for a batch of points, one damping :math:`\\mu` per point. A *system* holds :math:`M = J^T J` for the
batch and solves that equation:

- :class:`DenseSystem`: :math:`M` ``(batch, S, S)``, solved by Cholesky.
- :class:`DiagonalTailSystem`: :math:`M = \\begin{pmatrix} A & C \\\\ C^T & \\operatorname{diag}(d)
  \\end{pmatrix}` with :math:`A` ``(batch, K, K)``, :math:`C` ``(batch, K, T)``, :math:`d` ``(batch, T)``:
  the trailing :math:`T` state entries couple to each other only through the diagonal. The LSTM's state
  :math:`[h; c]` has this form (each :math:`c_j` enters the map only through :math:`c'_j` and
  :math:`h'_j`), so its :math:`2H \\times 2H` system reduces to the :math:`H \\times H` Schur complement

  .. math:: S = A + \\mu I - C\\,\\operatorname{diag}(d + \\mu)^{-1} C^T,\\qquad
            S\\,\\Delta_K = -g_K + C\\,\\frac{g_T}{d + \\mu},\\qquad
            \\Delta_T = -\\frac{g_T + C^T \\Delta_K}{d + \\mu},

  with :math:`g = J^T r`: a quarter of the product that forms :math:`J^T J` (plus one :math:`H \\times H`
  product for :math:`S`) and an eighth of the factorisation.

A dynamics object (:class:`lfads.analysis.jacobians.Dynamics`) may provide ``normal_equations(h, u)``
returning ``(q, J^T r, system)``; :func:`gauss_newton_system` falls back on the dense system from its
Jacobians.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class DenseSystem:
    """:math:`J^T J` as a dense ``(batch, S, S)`` matrix."""

    matrix: Tensor

    def rows(self, index: Tensor) -> DenseSystem:
        """The systems of the points ``index`` (a new object)."""
        return DenseSystem(self.matrix[index])

    def assign(self, index: Tensor, other: DenseSystem) -> None:
        """Replace the systems of the points ``index`` by ``other``'s, in place."""
        self.matrix[index] = other.matrix

    def finite(self) -> Tensor:
        """``(batch,)``: every entry finite."""
        return torch.isfinite(self.matrix).flatten(1).all(1)

    def diagonal_max(self) -> Tensor:
        """``(batch,)``: the largest diagonal entry of :math:`J^T J`, the scale of the damping."""
        return self.matrix.diagonal(dim1=1, dim2=2).amax(1)

    def solve(self, mu: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        """``(Δ, ok)``: :math:`(J^T J + \\mu I)\\,\\Delta = -g` ``(batch, S)``; ``ok`` where the damped matrix is
        numerically positive definite (Δ is 0 elsewhere)."""
        diag = self.matrix.diagonal(dim1=1, dim2=2)
        diag.add_(mu.unsqueeze(1))  # in place (and undone below) to avoid copying (B, S, S) per iteration
        chol, info = torch.linalg.cholesky_ex(self.matrix)
        diag.sub_(mu.unsqueeze(1))
        return _cholesky_solve(chol, -g, info == 0)


@dataclass
class DiagonalTailSystem:
    """:math:`J^T J = [[A, C], [C^T, \\operatorname{diag}(d)]]` (module docstring).

    Attributes
    ----------
    lead : Tensor
        :math:`A`, ``(batch, K, K)``.
    coupling : Tensor
        :math:`C`, ``(batch, K, T)``.
    tail : Tensor
        :math:`d`, ``(batch, T)``.
    """

    lead: Tensor
    coupling: Tensor
    tail: Tensor

    def rows(self, index: Tensor) -> DiagonalTailSystem:
        """The systems of the points ``index`` (a new object)."""
        return DiagonalTailSystem(self.lead[index], self.coupling[index], self.tail[index])

    def assign(self, index: Tensor, other: DiagonalTailSystem) -> None:
        """Replace the systems of the points ``index`` by ``other``'s, in place."""
        self.lead[index], self.coupling[index], self.tail[index] = other.lead, other.coupling, other.tail

    def finite(self) -> Tensor:
        """``(batch,)``: every entry finite."""
        parts = (self.lead.flatten(1), self.coupling.flatten(1), self.tail)
        return torch.stack([torch.isfinite(p).all(1) for p in parts]).all(0)

    def diagonal_max(self) -> Tensor:
        """``(batch,)``: the largest diagonal entry of :math:`J^T J`."""
        return torch.maximum(self.lead.diagonal(dim1=1, dim2=2).amax(1), self.tail.amax(1))

    def dense(self) -> Tensor:
        """The full ``(batch, K + T, K + T)`` matrix."""
        top = torch.cat([self.lead, self.coupling], 2)
        bottom = torch.cat([self.coupling.mT, torch.diag_embed(self.tail)], 2)
        return torch.cat([top, bottom], 1)

    def solve(self, mu: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        """``(Δ, ok)`` as :meth:`DenseSystem.solve`, through the Schur complement of the diagonal block."""
        k = self.lead.shape[1]
        g_lead, g_tail = g[:, :k], g[:, k:]
        inv = 1.0 / (self.tail + mu.unsqueeze(1))
        scaled = self.coupling * inv.unsqueeze(1)
        schur = self.lead - scaled @ self.coupling.mT
        schur.diagonal(dim1=1, dim2=2).add_(mu.unsqueeze(1))
        chol, info = torch.linalg.cholesky_ex(schur)
        ok = (info == 0) & (self.tail + mu.unsqueeze(1) > 0).all(1)
        rhs = -g_lead + (scaled @ g_tail.unsqueeze(2)).squeeze(2)
        d_lead, ok = _cholesky_solve(chol, rhs, ok)
        d_tail = -(g_tail + (self.coupling.mT @ d_lead.unsqueeze(2)).squeeze(2)) * inv
        d_tail = torch.where(ok.unsqueeze(1), d_tail, torch.zeros_like(d_tail))
        return torch.cat([d_lead, d_tail], 1), ok


NormalSystem = DenseSystem | DiagonalTailSystem


def _cholesky_solve(chol: Tensor, rhs: Tensor, ok: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` with ``L L^T x = rhs`` where ``ok``, 0 elsewhere (``chol`` may hold garbage where not ``ok``)."""
    y = torch.linalg.solve_triangular(chol, rhs.unsqueeze(2), upper=False)
    x = torch.linalg.solve_triangular(chol.mT, y, upper=True).squeeze(2)
    return torch.where(ok.unsqueeze(1), x, torch.zeros_like(x)), ok


def gauss_newton_system(dyn: Any, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, NormalSystem]:
    """``(q, J^T r, J^T J)`` at ``h`` ``(batch, S)``: the dynamics' own ``normal_equations`` where it has
    them, else :func:`dense_gauss_newton_system`."""
    own = getattr(dyn, "normal_equations", None)
    return own(h, u) if own is not None else dense_gauss_newton_system(dyn, h, u)


def dense_gauss_newton_system(dyn: Any, h: Tensor, u: Tensor) -> tuple[Tensor, Tensor, DenseSystem]:
    """``(q, J^T r, J^T J)`` at ``h`` ``(batch, S)`` from the dynamics' Jacobians, with ``q = ||r||^2 / 2``."""
    f, jac, _ = dyn.jacobians(h, u, wrt_input=False)
    jac.diagonal(dim1=1, dim2=2).sub_(1.0)
    r = f - h
    return 0.5 * (r * r).sum(1), (jac.mT @ r.unsqueeze(2)).squeeze(2), DenseSystem(jac.mT @ jac)
