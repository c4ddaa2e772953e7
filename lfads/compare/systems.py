"""Small dynamical systems with known answers, for checking and demonstrating comparison metrics.

* :func:`decision_system`: three 2-D families (bistable with a saddle, line attractor, point attractor)
  whose condition-averaged trajectories are identical by construction; only their responses to
  trial-to-trial noise differ (the setting of Galgali et al. 2023 and of DSA's Figure 3).
* :func:`ring_attractor`: noisy diffusion on a ring (or on an arc: the ring cut into a line), observed
  through von Mises tuning curves whose width is a smooth deformation parameter (DSA's Figure 4).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DECISION_FAMILIES", "decision_system", "ring_attractor", "ring_latent", "tuning_curves"]

DECISION_FAMILIES: tuple[str, ...] = ("bistable", "line", "point")


def _residual_step(family: str, r: np.ndarray, rate: float) -> np.ndarray:
    """One step of the residual map :math:`g` of a family.

    The map is odd in :math:`r`, so zero-mean noise keeps :math:`E[r] = 0`.
    """
    decay = 1.0 - rate
    if family == "point":
        return decay * r
    if family == "line":
        return np.stack([r[:, 0], decay * r[:, 1]], axis=1)
    if family == "bistable":  # saddle at 0, attractors at r_1 = +-1
        return np.stack([r[:, 0] + rate * (r[:, 0] - r[:, 0] ** 3), decay * r[:, 1]], axis=1)
    raise ValueError(f"family must be one of {DECISION_FAMILIES}; got {family!r}.")


def decision_system(
    family: str,
    seed: int = 0,
    n_trials: int = 100,
    n_time: int = 50,
    noise: float = 0.2,
    rate: float = 0.15,
    amplitude: float = 3.0,
    rotate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Trials of a 2-D system with prescribed condition averages and family-specific residual dynamics.

    .. math:: x_{t} = m_{c,t} + r_t,\\qquad r_{t+1} = g(r_t) + \\sigma \\epsilon_t,\\quad r_0 = \\sigma\\epsilon

    with two conditions :math:`c = \\pm 1`, the mean path
    :math:`m_{c,t} = a\\,(2 c\\, t/T,\\ \\tfrac12 \\sin(\\pi t / T))` and :math:`g` odd, so that
    :math:`E[x_t] = m_{c,t}` for every family: ``point`` :math:`g(r) = (1-k) r`; ``line``
    :math:`g(r) = (r_1, (1-k) r_2)`; ``bistable`` :math:`g(r) = (r_1 + k (r_1 - r_1^3), (1-k) r_2)`.
    The states are finally rotated by a random angle (``rotate``).

    Returns
    -------
    states : np.ndarray
        ``(n_trials, n_time, 2)``.
    conditions : np.ndarray
        ``(n_trials,)`` of ``+1`` / ``-1`` (first half ``+1``).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_time) / n_time
    cond = np.repeat([1.0, -1.0], [n_trials - n_trials // 2, n_trials // 2])
    mean = amplitude * np.stack(
        [2.0 * t[None, :] * cond[:, None], 0.5 * np.sin(np.pi * t)[None, :] * np.ones((n_trials, 1))], axis=-1
    )
    x = np.zeros((n_trials, n_time, 2))
    r = noise * rng.normal(size=(n_trials, 2))
    for k in range(n_time):
        x[:, k] = mean[:, k] + r
        r = _residual_step(family, r, rate) + noise * rng.normal(size=r.shape)
    if rotate:
        th = rng.uniform(0.0, 2.0 * np.pi)
        x = x @ np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return x, cond


def ring_latent(
    seed: int = 0, n_trials: int = 40, n_time: int = 100, diffusion: float = 0.02, cut: float | None = None
) -> np.ndarray:
    """Angles ``(n_trials, n_time)`` diffusing on the ring,
    :math:`\\theta_{t+1} = \\theta_t + \\sqrt{2D}\\,\\epsilon_t`.

    With ``cut`` the ring is cut into a line: the angle lives on :math:`[-\\pi + c/2, \\pi - c/2]` with
    reflecting ends (``cut`` = :math:`c`, the removed arc in radians).
    """
    rng = np.random.default_rng(seed)
    half = np.pi if cut is None else np.pi - cut / 2.0
    th = rng.uniform(-half, half, n_trials)
    out = np.zeros((n_trials, n_time))
    for t in range(n_time):
        out[:, t] = th
        th = th + np.sqrt(2.0 * diffusion) * rng.normal(size=n_trials)
        if cut is None:
            th = (th + np.pi) % (2.0 * np.pi) - np.pi
        else:
            th = np.where(th > half, 2.0 * half - th, th)
            th = np.where(th < -half, -2.0 * half - th, th)
    return out


def tuning_curves(theta: np.ndarray, n_units: int = 40, kappa: float = 1.0) -> np.ndarray:
    """Rates ``theta.shape + (n_units,)`` of von Mises tuning curves.

    :math:`\\exp(\\kappa(\\cos(\\theta - \\phi_i) - 1))` for unit :math:`i` preferring :math:`\\phi_i`.
    """
    pref = np.linspace(-np.pi, np.pi, n_units, endpoint=False)
    return np.exp(kappa * (np.cos(np.asarray(theta)[..., None] - pref) - 1.0))


def ring_attractor(
    deformation: float = 0.0, seed: int = 0, cut: float | None = None, n_units: int = 40, **kwargs
) -> np.ndarray:
    """States ``(trials, time, n_units)`` of a ring attractor.

    It is seen through tuning curves whose width is set by ``deformation``.

    ``deformation`` in :math:`[0, 1]` sharpens the tuning from :math:`\\kappa = 1` to :math:`\\kappa = 5`: a
    smooth, invertible change of the ring's embedding that leaves its dynamics (diffusion along the ring)
    unchanged. ``cut`` turns the ring into a line (:func:`ring_latent`); other keywords go there too.
    """
    return tuning_curves(ring_latent(seed, cut=cut, **kwargs), n_units, 1.0 + 4.0 * deformation)
