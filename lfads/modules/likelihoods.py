"""Observation models: per-neuron likelihoods of the reconstructed data.

Each likelihood maps readout parameters ``params`` of shape
``(batch, time, n_params, neurons)`` to an elementwise negative log-likelihood of
the data ``x`` of shape ``(batch, time, neurons)`` (with all normalizing
constants, so values match ``scipy.stats``) and to the mean of the distribution
(the "rates" a user looks at).

============================  ========  ============================================
name                          n_params  parameters (in order)
============================  ========  ============================================
``poisson``                   1         log rate
``gaussian``                  2         mean, log variance
``gamma``                     2         log concentration a, log rate b (mean a/b)
``zero_inflated_gamma``       3         log a, log b, logit of P(x > 0)
============================  ========  ============================================

New likelihoods register with :func:`register` and are picked up by the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIKELIHOODS: dict[str, type[Likelihood]] = {}


def register(name: str) -> Callable[[type[Likelihood]], type[Likelihood]]:
    def wrap(cls: type[Likelihood]) -> type[Likelihood]:
        cls.name = name
        LIKELIHOODS[name] = cls
        return cls

    return wrap


def make_likelihood(name: str) -> Likelihood:
    """Instantiate a registered likelihood by name (``poisson``, ``gaussian``, ...)."""
    if name not in LIKELIHOODS:
        raise ValueError(f"Unknown reconstruction likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}.")
    return LIKELIHOODS[name]()


class Likelihood(nn.Module):
    name: str = ""
    n_params: int = 1
    is_count: bool = False  # data must be non-negative integers

    def nll(self, params: Tensor, x: Tensor, full: bool = True) -> Tensor:
        """Elementwise negative log-likelihood, ``(batch, time, neurons)``.

        ``full=False`` may drop terms that depend on the data alone (they do not change gradients).
        """
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """Mean of the distribution, ``(batch, time, neurons)``."""
        raise NotImplementedError

    def init_bias(self, data_mean: Tensor) -> Tensor:
        """Readout bias ``(n_params, neurons)`` that makes the initial mean match ``data_mean``."""
        bias = torch.zeros(self.n_params, data_mean.shape[-1])
        return bias


@register("poisson")
class Poisson(Likelihood):
    n_params = 1
    is_count = True

    def nll(self, params: Tensor, x: Tensor, full: bool = True) -> Tensor:
        log_rate = params[..., 0, :]
        nll = torch.exp(log_rate) - x * log_rate
        return nll + torch.lgamma(x + 1.0) if full else nll

    def mean(self, params: Tensor) -> Tensor:
        return torch.exp(params[..., 0, :])

    def init_bias(self, data_mean: Tensor) -> Tensor:
        return torch.log(data_mean.clamp_min(1e-3))[None]


@register("gaussian")
class Gaussian(Likelihood):
    n_params = 2

    def nll(self, params: Tensor, x: Tensor, full: bool = True) -> Tensor:
        mean, logvar = params[..., 0, :], params[..., 1, :]
        return 0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))

    def mean(self, params: Tensor) -> Tensor:
        return params[..., 0, :]

    def init_bias(self, data_mean: Tensor) -> Tensor:
        return torch.stack([data_mean, torch.zeros_like(data_mean)])


def _gamma_log_pdf(x: Tensor, log_a: Tensor, log_b: Tensor) -> Tensor:
    a = torch.exp(log_a)
    return a * log_b + (a - 1.0) * torch.log(x) - torch.exp(log_b) * x - torch.lgamma(a)


@register("gamma")
class Gamma(Likelihood):
    """Gamma with shape ``a`` and rate ``b`` (scipy: ``gamma(a, scale=1/b)``); data must be > 0."""

    n_params = 2

    def nll(self, params: Tensor, x: Tensor, full: bool = True) -> Tensor:
        return -_gamma_log_pdf(x, params[..., 0, :], params[..., 1, :])

    def mean(self, params: Tensor) -> Tensor:
        return torch.exp(params[..., 0, :] - params[..., 1, :])

    def init_bias(self, data_mean: Tensor) -> Tensor:
        return torch.stack([torch.zeros_like(data_mean), -torch.log(data_mean.clamp_min(1e-3))])


@register("zero_inflated_gamma")
class ZeroInflatedGamma(Likelihood):
    """Zero-inflated Gamma for thresholded, deconvolved signals (e.g. calcium).

    .. math::

        p(x) = (1 - q)\\,\\delta(x) + q\\,\\mathrm{Gamma}(x - s_{\\min};\\, a, b),
        \\quad x = 0 \\text{ or } x > s_{\\min}

    Parameters
    ----------
    s_min : float
        Threshold below which nonzero values do not occur.
    """

    n_params = 3

    def __init__(self, s_min: float = 0.0) -> None:
        super().__init__()
        self.s_min = s_min

    def nll(self, params: Tensor, x: Tensor, full: bool = True) -> Tensor:
        log_a, log_b, logit_q = params[..., 0, :], params[..., 1, :], params[..., 2, :]
        is_zero = x <= 0
        shifted = torch.where(is_zero, torch.ones_like(x), x - self.s_min).clamp_min(1e-8)
        lp_nonzero = F.logsigmoid(logit_q) + _gamma_log_pdf(shifted, log_a, log_b)
        lp_zero = F.logsigmoid(-logit_q)
        return -torch.where(is_zero, lp_zero, lp_nonzero)

    def init_bias(self, data_mean: Tensor) -> Tensor:
        """``q = 1/2``, ``a = 1`` and ``b`` such that ``q (s_min + 1/b)`` equals the data mean."""
        excess = (2.0 * data_mean - self.s_min).clamp_min(1e-3)
        zeros = torch.zeros_like(data_mean)
        return torch.stack([zeros, -torch.log(excess), zeros])

    def mean(self, params: Tensor) -> Tensor:
        q = torch.sigmoid(params[..., 2, :])
        return q * (self.s_min + torch.exp(params[..., 0, :] - params[..., 1, :]))
