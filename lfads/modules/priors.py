"""Priors over the initial condition and the inferred inputs, with their KL terms.

Both priors share one interface: ``kl(post_mean, post_std, sample)`` returns the
KL divergence from the diagonal-Gaussian posterior to the prior, one value per
trial, shape ``(batch,)``.

Initial condition (analytic):

.. math::

    \\mathrm{KL}\\big(\\mathcal N(m, s^2) \\,\\|\\, \\mathcal N(\\mu, \\sigma^2)\\big)
    = \\tfrac12 \\sum_i \\Big[\\log\\frac{\\sigma_i^2}{s_i^2} + \\frac{s_i^2 + (m_i-\\mu_i)^2}{\\sigma_i^2} - 1\\Big]

Inferred inputs (AR(1) per dimension, KL by sampling):

.. math::

    u_0 \\sim \\mathcal N(0, v), \\quad
    u_t = \\alpha u_{t-1} + \\epsilon_t,\\ \\epsilon_t \\sim \\mathcal N\\big(0, v(1-\\alpha^2)\\big),
    \\quad \\alpha = e^{-1/\\tau}

so each dimension is a stationary process with variance ``v`` and autocorrelation
time ``tau`` (in bins). The KL is estimated with the sample ``u`` drawn from the
posterior ``q``: :math:`\\log q(u) - \\log p(u)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


def diag_gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Elementwise log N(x; mean, std^2)."""
    return -0.5 * (LOG_2PI + 2.0 * torch.log(std) + ((x - mean) / std) ** 2)


class MultivariateNormalPrior(nn.Module):
    """Diagonal Gaussian prior over the initial condition, mean learnable.

    Parameters
    ----------
    dim : int
        ``ic_dim``, the size of the initial condition.
    variance : float
        Prior variance of every dimension.
    learn_mean : bool
        Whether the prior mean is a learned parameter (initialized at zero).
    learn_variance : bool
        Whether the prior log-variance is learned too.
    """

    def __init__(self, dim: int, variance: float = 0.1, learn_mean: bool = True, learn_variance: bool = False) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(dim), requires_grad=learn_mean)
        self.logvar = nn.Parameter(torch.full((dim,), math.log(variance)), requires_grad=learn_variance)

    def kl(self, post_mean: Tensor, post_std: Tensor, sample: Tensor | None = None) -> Tensor:
        """Analytic KL, ``post_mean``/``post_std`` of shape ``(batch, ic_dim)``; returns ``(batch,)``."""
        prior_var = torch.exp(self.logvar)
        post_var = post_std**2
        kl = 0.5 * (self.logvar - torch.log(post_var) + (post_var + (post_mean - self.mean) ** 2) / prior_var - 1.0)
        return kl.sum(-1)


class AutoregressivePrior(nn.Module):
    """AR(1) prior over inferred inputs with learnable timescale and process variance.

    Parameters
    ----------
    dim : int
        ``co_dim``, the number of inferred-input dimensions.
    tau : float
        Initial autocorrelation time, in bins.
    variance : float
        Initial stationary (process) variance ``v``.
    """

    def __init__(self, dim: int, tau: float = 10.0, variance: float = 0.1) -> None:
        super().__init__()
        self.log_tau = nn.Parameter(torch.full((dim,), math.log(tau)))
        self.log_var = nn.Parameter(torch.full((dim,), math.log(variance)))

    @property
    def alpha(self) -> Tensor:
        return torch.exp(-1.0 / torch.exp(self.log_tau))

    def log_prob(self, u: Tensor) -> Tensor:
        """Log density of sequences ``u`` of shape ``(batch, time, co_dim)``; returns ``(batch,)``."""
        alpha = self.alpha
        var = torch.exp(self.log_var)
        std0 = torch.sqrt(var)
        lp0 = diag_gaussian_log_prob(u[:, 0], torch.zeros_like(std0), std0).sum(-1)
        innov_std = torch.sqrt(var * (1.0 - alpha**2))
        lp_rest = diag_gaussian_log_prob(u[:, 1:], alpha * u[:, :-1], innov_std).sum((-1, -2))
        return lp0 + lp_rest

    def kl(self, post_mean: Tensor, post_std: Tensor, sample: Tensor | None = None) -> Tensor:
        """Single-sample KL estimate; all arguments ``(batch, time, co_dim)``; returns ``(batch,)``."""
        if sample is None:
            raise ValueError("AutoregressivePrior.kl needs the posterior sample (the KL is estimated by sampling).")
        log_q = diag_gaussian_log_prob(sample, post_mean, post_std).sum((-1, -2))
        return log_q - self.log_prob(sample)
