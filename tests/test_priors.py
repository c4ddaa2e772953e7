"""Priors of :mod:`lfads.modules.priors`: closed-form KLs, torch.distributions and scipy densities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import Normal, kl_divergence

from lfads.modules.priors import AutoregressivePrior, MultivariateNormalPrior, diag_gaussian_log_prob

torch.set_num_threads(1)


def _ic_prior(dim: int, variance: float, mean: np.ndarray | None = None) -> MultivariateNormalPrior:
    prior = MultivariateNormalPrior(dim, variance=variance).double()
    with torch.no_grad():
        prior.logvar.fill_(math.log(variance))  # the float32 initial value, redone in float64
        if mean is not None:
            prior.mean.copy_(torch.as_tensor(mean))
    return prior


def _posterior(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    std = torch.rand(batch, dim, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return mean, std


def test_diag_gaussian_log_prob_matches_scipy() -> None:
    x, (m, s) = torch.randn(4, 3, dtype=torch.float64), _posterior(4, 3, 0)
    expected = stats.norm.logpdf(x.numpy(), loc=m.numpy(), scale=s.numpy())
    np.testing.assert_allclose(diag_gaussian_log_prob(x, m, s).numpy(), expected, rtol=1e-12)


def test_ic_kl_matches_closed_form() -> None:
    dim, var = 5, 0.3
    prior_mean = np.linspace(-0.5, 0.5, dim)
    prior = _ic_prior(dim, var, prior_mean)
    m, s = _posterior(6, dim, 1)
    kl = prior.kl(m, s)
    assert kl.shape == (6,)
    mn, sn = m.numpy(), s.numpy()
    expected = 0.5 * np.sum(np.log(var / sn**2) + (sn**2 + (mn - prior_mean) ** 2) / var - 1.0, axis=-1)
    np.testing.assert_allclose(kl.detach().numpy(), expected, rtol=1e-12)


def test_ic_kl_matches_torch_distributions() -> None:
    dim, var = 4, 0.1
    prior = _ic_prior(dim, var, np.array([0.2, -0.1, 0.0, 0.7]))
    m, s = _posterior(7, dim, 2)
    expected = kl_divergence(Normal(m, s), Normal(prior.mean.detach(), math.sqrt(var))).sum(-1)
    torch.testing.assert_close(prior.kl(m, s).detach(), expected, rtol=1e-12, atol=1e-12)


def test_ic_kl_is_zero_when_posterior_equals_prior() -> None:
    dim, var = 3, 0.25
    prior_mean = np.array([0.3, -1.0, 2.0])
    prior = _ic_prior(dim, var, prior_mean)
    m = torch.as_tensor(prior_mean).expand(2, dim)
    s = torch.full((2, dim), math.sqrt(var), dtype=torch.float64)
    torch.testing.assert_close(prior.kl(m, s).detach(), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-14)
    # ... and positive for any other posterior.
    assert (prior.kl(m + 0.1, s).detach() > 0).all()
    assert (prior.kl(m, s * 1.5).detach() > 0).all()


def test_ic_prior_mean_gradient_points_towards_posterior_means() -> None:
    """dKL/dmu = -(m - mu) / sigma^2: gradient descent moves the learned prior mean towards the posterior."""
    prior = _ic_prior(2, 0.5)
    m = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    s = torch.ones(1, 2, dtype=torch.float64)
    prior.kl(m, s).sum().backward()
    grad = prior.mean.grad
    torch.testing.assert_close(grad, torch.tensor([-2.0, 4.0], dtype=torch.float64))
    assert grad[0] < 0 < grad[1]
    assert not prior.logvar.requires_grad  # variance fixed by default


def test_ic_prior_variance_is_learnable_on_request() -> None:
    prior = MultivariateNormalPrior(3, variance=0.2, learn_mean=False, learn_variance=True)
    assert prior.logvar.requires_grad and not prior.mean.requires_grad
    torch.testing.assert_close(prior.logvar.detach(), torch.full((3,), math.log(0.2)))


def _ar_covariance(n_steps: int, alpha: float, var: float) -> np.ndarray:
    idx = np.arange(n_steps)
    return var * alpha ** np.abs(idx[:, None] - idx[None, :])


def _ar_prior(taus: list[float], variances: list[float]) -> AutoregressivePrior:
    prior = AutoregressivePrior(len(taus)).double()
    with torch.no_grad():
        prior.log_tau.copy_(torch.log(torch.tensor(taus, dtype=torch.float64)))
        prior.log_var.copy_(torch.log(torch.tensor(variances, dtype=torch.float64)))
    return prior


def test_ar_prior_initial_alpha_is_exp_minus_one_over_tau() -> None:
    prior = AutoregressivePrior(2, tau=4.0, variance=0.3)
    torch.testing.assert_close(prior.alpha.detach(), torch.full((2,), math.exp(-0.25)))
    torch.testing.assert_close(prior.log_var.detach().exp(), torch.full((2,), 0.3))


def test_ar_log_prob_matches_stationary_multivariate_normal() -> None:
    taus, variances = [3.0, 12.0, 0.7], [0.1, 0.5, 2.0]
    prior = _ar_prior(taus, variances)
    batch, n_steps = 4, 9
    u = torch.randn(batch, n_steps, len(taus), dtype=torch.float64)
    expected = np.zeros(batch)
    for d, (tau, var) in enumerate(zip(taus, variances)):
        cov = _ar_covariance(n_steps, math.exp(-1.0 / tau), var)
        expected += stats.multivariate_normal(mean=np.zeros(n_steps), cov=cov).logpdf(u[:, :, d].numpy())
    lp = prior.log_prob(u)
    assert lp.shape == (batch,)
    np.testing.assert_allclose(lp.detach().numpy(), expected, rtol=1e-10)


def test_ar_kl_requires_the_posterior_sample() -> None:
    prior = AutoregressivePrior(2)
    with pytest.raises(ValueError, match="sample"):
        prior.kl(torch.zeros(1, 3, 2), torch.ones(1, 3, 2))


def _analytic_kl_diag_vs_full(mean: np.ndarray, std: np.ndarray, cov: np.ndarray) -> float:
    """KL(N(mean, diag(std^2)) || N(0, cov)) for one sequence."""
    prec = np.linalg.inv(cov)
    _, logdet_p = np.linalg.slogdet(cov)
    logdet_q = np.sum(np.log(std**2))
    return 0.5 * (np.trace(prec @ np.diag(std**2)) + mean @ prec @ mean - len(mean) + logdet_p - logdet_q)


def test_ar_kl_estimator_is_unbiased() -> None:
    """Mean over u ~ q of log q(u) - log p(u) approaches the analytic KL(q || p) with p the AR covariance."""
    taus, variances = [5.0, 1.5], [0.4, 1.2]
    prior = _ar_prior(taus, variances)
    n_steps, n_samples = 6, 40000
    g = torch.Generator().manual_seed(3)
    post_mean = torch.randn(1, n_steps, 2, generator=g, dtype=torch.float64) * 0.5
    post_std = torch.rand(1, n_steps, 2, generator=g, dtype=torch.float64) * 0.5 + 0.3
    mean = post_mean.expand(n_samples, -1, -1)
    std = post_std.expand(n_samples, -1, -1)
    sample = mean + std * torch.randn(n_samples, n_steps, 2, generator=g, dtype=torch.float64)
    estimates = prior.kl(mean, std, sample).detach().numpy()
    assert estimates.shape == (n_samples,)
    analytic = sum(
        _analytic_kl_diag_vs_full(
            post_mean[0, :, d].numpy(), post_std[0, :, d].numpy(), _ar_covariance(n_steps, math.exp(-1 / tau), var)
        )
        for d, (tau, var) in enumerate(zip(taus, variances))
    )
    se = estimates.std() / math.sqrt(n_samples)
    assert abs(estimates.mean() - analytic) < 4 * se, (estimates.mean(), analytic, se)
    assert se < 0.05 * analytic  # the check has power


def test_ar_kl_gradient_reaches_timescale_and_variance() -> None:
    prior = _ar_prior([4.0], [0.3])
    u = torch.randn(3, 8, 1, dtype=torch.float64) * 0.1
    prior.kl(torch.zeros_like(u), torch.ones_like(u), u).sum().backward()
    assert prior.log_tau.grad is not None and torch.isfinite(prior.log_tau.grad).all()
    assert prior.log_var.grad is not None and torch.isfinite(prior.log_var.grad).all()
    # Small samples are more likely under a smaller variance: descent decreases log_var.
    assert prior.log_var.grad.item() > 0
