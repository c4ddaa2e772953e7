"""Observation models of :mod:`lfads.modules.likelihoods` against ``scipy.stats``.

Every registered likelihood is tested through the registry; a likelihood registered
without a scipy oracle below makes :func:`test_every_registered_likelihood_has_a_scipy_oracle` fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import special, stats

from lfads.modules.likelihoods import LIKELIHOODS, ZeroInflatedGamma, make_likelihood
from lfads.modules.readin_readout import ReadOut

torch.set_num_threads(1)

BATCH, TIME, NEURONS = 3, 5, 4


@dataclass
class Oracle:
    """Random parameters and data for a likelihood, with scipy's log density and mean."""

    make_params: Callable[[np.random.Generator], np.ndarray]  # -> (BATCH, TIME, n_params, NEURONS)
    make_data: Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, params) -> (BATCH, TIME, NEURONS)
    logpdf: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, params) -> elementwise log density
    mean: Callable[[np.ndarray], np.ndarray]  # params -> mean
    data_mean_range: tuple[float, float]  # data means used to test init_bias


def _shape(n_params: int) -> tuple[int, int, int, int]:
    return (BATCH, TIME, n_params, NEURONS)


def _gamma_a_scale(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's shape ``a = exp(log a)`` and ``scale = 1 / exp(log b)``."""
    return np.exp(params[..., 0, :]), 1.0 / np.exp(params[..., 1, :])


def _poisson() -> Oracle:
    return Oracle(
        make_params=lambda rng: rng.uniform(-2.0, 2.0, _shape(1)),
        make_data=lambda rng, p: rng.poisson(np.exp(p[..., 0, :])).astype(float),
        logpdf=lambda x, p: stats.poisson.logpmf(x, np.exp(p[..., 0, :])),
        mean=lambda p: stats.poisson.mean(np.exp(p[..., 0, :])),
        data_mean_range=(0.05, 5.0),
    )


def _gaussian() -> Oracle:
    def scale(p: np.ndarray) -> np.ndarray:
        return np.sqrt(np.exp(p[..., 1, :]))

    return Oracle(
        make_params=lambda rng: np.stack(
            [rng.normal(0.0, 2.0, _shape(1))[..., 0, :], rng.uniform(-2.0, 1.5, _shape(1))[..., 0, :]], axis=-2
        ),
        make_data=lambda rng, p: rng.normal(p[..., 0, :], scale(p)),
        logpdf=lambda x, p: stats.norm.logpdf(x, loc=p[..., 0, :], scale=scale(p)),
        mean=lambda p: stats.norm.mean(loc=p[..., 0, :], scale=scale(p)),
        data_mean_range=(-3.0, 3.0),
    )


def _gamma() -> Oracle:
    def logpdf(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        return stats.gamma.logpdf(x, a=a, scale=scale)

    def mean(p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        return stats.gamma.mean(a, scale=scale)

    def data(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        return rng.gamma(a, scale) + 1e-3  # keep away from 0 where the density may be infinite

    return Oracle(
        make_params=lambda rng: rng.uniform(-1.0, 1.5, _shape(2)),
        make_data=data,
        logpdf=logpdf,
        mean=mean,
        data_mean_range=(0.05, 5.0),
    )


def _zero_inflated_gamma(s_min: float) -> Oracle:
    def logpdf(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        q = 1.0 / (1.0 + np.exp(-p[..., 2, :]))
        nonzero = np.log(q) + stats.gamma.logpdf(np.where(x > 0, x - s_min, 1.0), a=a, scale=scale)
        return np.where(x > 0, nonzero, np.log1p(-q))

    def mean(p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        q = 1.0 / (1.0 + np.exp(-p[..., 2, :]))
        return q * (s_min + stats.gamma.mean(a, scale=scale))

    def data(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
        a, scale = _gamma_a_scale(p)
        nonzero = s_min + rng.gamma(a, scale) + 1e-3
        zero = rng.uniform(size=nonzero.shape) < 0.4
        return np.where(zero, 0.0, nonzero)

    return Oracle(
        make_params=lambda rng: rng.uniform(-1.0, 1.5, _shape(3)),
        make_data=data,
        logpdf=logpdf,
        mean=mean,
        data_mean_range=(0.05, 5.0),
    )


ORACLES: dict[str, Callable[[], Oracle]] = {
    "poisson": _poisson,
    "gaussian": _gaussian,
    "gamma": _gamma,
    "zero_inflated_gamma": lambda: _zero_inflated_gamma(0.0),
}

# Known bugs, documented by strict xfails (remove an entry once its bug is fixed).
INIT_BIAS_BUGS: dict[str, str] = {}


def _oracle(name: str) -> Oracle:
    if name not in ORACLES:
        pytest.fail(f"Likelihood {name!r} is registered but tests/test_likelihoods.py has no scipy oracle for it.")
    return ORACLES[name]()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


def test_every_registered_likelihood_has_a_scipy_oracle() -> None:
    missing = sorted(set(LIKELIHOODS) - set(ORACLES))
    assert not missing, f"registered likelihoods without a scipy oracle in tests/test_likelihoods.py: {missing}"


def test_make_likelihood_rejects_unknown_name_and_lists_choices() -> None:
    with pytest.raises(ValueError, match="poisson"):
        make_likelihood("negative_binomial_typo")


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_full_nll_equals_minus_scipy_log_density(name: str) -> None:
    oracle = _oracle(name)
    rng = np.random.default_rng(0)
    lik = make_likelihood(name)
    params = oracle.make_params(rng)
    assert params.shape == (BATCH, TIME, lik.n_params, NEURONS)
    x = oracle.make_data(rng, params)
    nll = lik.nll(_t(params), _t(x), full=True)
    assert nll.shape == (BATCH, TIME, NEURONS)
    assert nll.dtype == torch.float64
    np.testing.assert_allclose(nll.numpy(), -oracle.logpdf(x, params), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("s_min", [0.0, 0.25])
def test_zero_inflated_gamma_nll_with_threshold_matches_scipy(s_min: float) -> None:
    oracle = _zero_inflated_gamma(s_min)
    rng = np.random.default_rng(1)
    params = oracle.make_params(rng)
    x = oracle.make_data(rng, params)
    assert (x == 0).any() and (x > s_min).any()
    nll = ZeroInflatedGamma(s_min=s_min).nll(_t(params), _t(x))
    np.testing.assert_allclose(nll.numpy(), -oracle.logpdf(x, params), rtol=1e-8, atol=1e-8)
    mean = ZeroInflatedGamma(s_min=s_min).mean(_t(params))
    np.testing.assert_allclose(mean.numpy(), oracle.mean(params), rtol=1e-10)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_mean_equals_scipy_distribution_mean(name: str) -> None:
    oracle = _oracle(name)
    params = oracle.make_params(np.random.default_rng(2))
    mean = make_likelihood(name).mean(_t(params))
    assert mean.shape == (BATCH, TIME, NEURONS)
    np.testing.assert_allclose(mean.numpy(), oracle.mean(params), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_reduced_nll_differs_from_full_by_a_data_only_term(name: str) -> None:
    oracle = _oracle(name)
    rng = np.random.default_rng(3)
    lik = make_likelihood(name)
    x = _t(oracle.make_data(rng, oracle.make_params(rng)))
    weights = _t(rng.uniform(0.5, 1.5, x.shape))
    diffs, grads = [], []
    for _ in range(2):
        params = _t(oracle.make_params(rng))
        g = {}
        for full in (True, False):
            p = params.clone().requires_grad_(True)
            nll = lik.nll(p, x, full=full)
            (nll * weights).sum().backward()
            g[full] = p.grad
            if full:
                full_value = nll.detach()
            else:
                diffs.append(full_value - nll.detach())
        grads.append(g)
    # The dropped term does not depend on the parameters: same difference for two parameter draws ...
    torch.testing.assert_close(diffs[0], diffs[1], rtol=0, atol=1e-10)
    # ... so the gradients with respect to the parameters are identical.
    for g in grads:
        torch.testing.assert_close(g[True], g[False], rtol=0, atol=1e-12)


def test_poisson_reduced_nll_drops_exactly_log_factorial() -> None:
    rng = np.random.default_rng(4)
    params = rng.uniform(-1, 1, _shape(1))
    x = rng.poisson(2.0, (BATCH, TIME, NEURONS)).astype(float)
    lik = make_likelihood("poisson")
    diff = lik.nll(_t(params), _t(x), full=True) - lik.nll(_t(params), _t(x), full=False)
    log_factorial = np.log(special.factorial(x))
    np.testing.assert_allclose(diff.numpy(), log_factorial, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=INIT_BIAS_BUGS[n])) if n in INIT_BIAS_BUGS else n
        for n in sorted(LIKELIHOODS)
    ],
)
def test_init_bias_makes_initial_mean_equal_data_mean(name: str) -> None:
    oracle = _oracle(name)
    lik = make_likelihood(name)
    lo, hi = oracle.data_mean_range
    data_mean = torch.as_tensor(np.random.default_rng(5).uniform(lo, hi, NEURONS), dtype=torch.float32)
    bias = lik.init_bias(data_mean)
    assert bias.shape == (lik.n_params, NEURONS)
    # A read-out with zero weights outputs its bias: params (batch, time, n_params, neurons).
    readout = ReadOut(fac_dim=3, recon_data_dims=[NEURONS], n_params=lik.n_params)
    with torch.no_grad():
        readout.layers[0].weight.zero_()
    readout.init_bias(0, bias)
    params = readout(0, torch.randn(BATCH, TIME, 3))
    assert params.shape == (BATCH, TIME, lik.n_params, NEURONS)
    mean = lik.mean(params)
    torch.testing.assert_close(mean, data_mean.expand(BATCH, TIME, NEURONS), rtol=1e-5, atol=1e-6)


def test_params_axis_order_is_batch_time_param_neuron() -> None:
    """Parameter ``k`` of neuron ``n`` is ``params[..., k, n]``: a Gaussian mean on axis -2 index 0."""
    params = torch.zeros(1, 1, 2, 3, dtype=torch.float64)
    params[0, 0, 0] = torch.tensor([1.0, 2.0, 3.0])  # means
    params[0, 0, 1] = torch.tensor([0.0, np.log(4.0), 0.0])  # log variances
    lik = make_likelihood("gaussian")
    torch.testing.assert_close(lik.mean(params)[0, 0], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    nll = lik.nll(params, torch.tensor([[[1.0, 4.0, 3.0]]], dtype=torch.float64))
    expected = -stats.norm.logpdf([1.0, 4.0, 3.0], loc=[1.0, 2.0, 3.0], scale=[1.0, 2.0, 1.0])
    np.testing.assert_allclose(nll[0, 0].numpy(), expected, rtol=1e-12)
