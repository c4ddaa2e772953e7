"""Per-session read-in and read-out layers around the shared dynamics.

Read-in (session ``s``): ``x'_t = W^{in}_s x_t + b^{in}_s`` maps the session's
``N_s`` encoder neurons onto a shared ``readin_dim``-dimensional space, so
recordings of different neurons share one encoder and generator. Read-out:
``theta_t = W^{out}_s f_t + b^{out}_s`` maps factors to every likelihood parameter
of each reconstructed neuron, shape ``(batch, time, n_params, N^{recon}_s)``.

Principal-components regression (PCR) initialization of the read-in: the
sessions' condition- or trial-averaged activity ``P_s`` ``(T, N_s)`` is stacked
along neurons, its top ``readin_dim`` principal components ``Z`` ``(T, readin_dim)``
are computed, and each ``W^{in}_s`` is the ridge regression of ``Z`` on the
centred ``P_s``, so every session starts by projecting onto the same shared axes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class ReadIn(nn.Module):
    """One linear read-in per session, or the identity when ``readin_dim`` is None."""

    def __init__(self, encod_data_dims: list[int], readin_dim: int | None) -> None:
        super().__init__()
        if readin_dim is None:
            if len(set(encod_data_dims)) != 1:
                raise ValueError(
                    f"Sessions have different numbers of encoder neurons {encod_data_dims}: "
                    "set model.readin_dim to map them onto a shared space."
                )
            self.layers = nn.ModuleList([nn.Identity() for _ in encod_data_dims])
            self.out_dim = encod_data_dims[0]
        else:
            self.layers = nn.ModuleList([nn.Linear(n, readin_dim) for n in encod_data_dims])
            self.out_dim = readin_dim

    def forward(self, session: int, x: Tensor) -> Tensor:
        return self.layers[session](x)

    @torch.no_grad()
    def init_pcr(self, averaged: list[np.ndarray], ridge: float = 1e-3) -> None:
        """PCR initialization from per-session averaged activity ``(T_avg, N_s)`` (rows aligned across sessions)."""
        if isinstance(self.layers[0], nn.Identity):
            return
        centred = [a - a.mean(0, keepdims=True) for a in averaged]
        stacked = np.concatenate(centred, axis=1)
        u, s, _ = np.linalg.svd(stacked, full_matrices=False)
        k = min(self.out_dim, u.shape[1])
        scores = u[:, :k] * s[:k]  # (T_avg, k)
        scores /= scores.std(0, keepdims=True) + 1e-8
        for layer, a, c in zip(self.layers, averaged, centred):
            gram = c.T @ c + ridge * np.trace(c.T @ c) / max(c.shape[1], 1) * np.eye(c.shape[1])
            w = np.linalg.solve(gram, c.T @ scores)  # (N_s, k)
            weight = np.zeros((self.out_dim, c.shape[1]))
            weight[:k] = w.T
            layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
            layer.bias.copy_(torch.as_tensor(-(a.mean(0) @ weight.T), dtype=layer.bias.dtype))


class ReadOut(nn.Module):
    """One linear read-out per session from factors to likelihood parameters."""

    def __init__(self, fac_dim: int, recon_data_dims: list[int], n_params: int) -> None:
        super().__init__()
        self.n_params = n_params
        self.layers = nn.ModuleList([nn.Linear(fac_dim, n_params * n) for n in recon_data_dims])

    def forward(self, session: int, factors: Tensor) -> Tensor:
        """``factors (batch, time, fac_dim)`` -> params ``(batch, time, n_params, neurons)``."""
        out = self.layers[session](factors)
        return out.unflatten(-1, (self.n_params, -1))

    @torch.no_grad()
    def init_bias(self, session: int, bias: Tensor) -> None:
        """Set the bias from ``(n_params, neurons)`` values."""
        self.layers[session].bias.copy_(bias.reshape(-1))
