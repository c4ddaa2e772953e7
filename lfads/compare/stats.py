"""Statistics on distance matrices: group tests, noise floors, bootstrap intervals, embeddings, silhouettes.

* :func:`permutation_test`: does group A differ from group B? The statistic is the mean between-group
  distance minus the mean within-group distance,
  :math:`T = \\bar d_{AB} - \\tfrac12(\\bar d_{AA} + \\bar d_{BB})`; its null distribution comes from
  shuffling the labels, and :math:`p = (1 + \\#\\{T_\\pi \\ge T\\}) / (1 + n_\\pi)`.
* :func:`split_half_floor`: the distance of a model to itself on two disjoint halves of the trials, over
  random splits: the smallest distance the metric can resolve with this many trials.
* :func:`bootstrap_interval`: a percentile interval of a distance over trials resampled with
  replacement (the same trials for both models).
* :func:`embed_mds`: metric multidimensional scaling of a distance matrix (scikit-learn).
* :func:`silhouette`: mean silhouette of a labelling under a precomputed distance (scikit-learn);
  :func:`silhouette_test`: is it higher than the silhouettes of shuffled labels, with
  :math:`p = (1 + \\#\\{s_\\pi \\ge s\\}) / (1 + n_\\pi)`?
* :func:`separation_auc`: probability that a between-group distance exceeds a within-group one.
* :func:`group_separation`: the three for one grouping (silhouette, its p-value, AUC), NaN where undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lfads.errors import LFADSDataError, check_setting

__all__ = [
    "N_PERMUTATIONS",
    "GroupSeparation",
    "PermutationTest",
    "bootstrap_interval",
    "embed_mds",
    "group_separation",
    "permutation_test",
    "separation_auc",
    "separation_table",
    "silhouette",
    "silhouette_test",
    "split_half_floor",
]


N_PERMUTATIONS = 1000
"""Label shuffles behind a p-value unless told otherwise."""


def _check_square(d: Any, name: str = "distances", finite: bool = True) -> np.ndarray:
    """``d`` as a float64 square matrix; with ``finite``, also free of NaN, inf and negative entries (those within
    rounding of 0 are set to 0)."""
    arr = np.array(d, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise LFADSDataError(f"{name} must be a square (models, models) matrix; got shape {arr.shape}.")
    if finite:
        bad = int((~np.isfinite(arr)).sum())
        if bad:
            raise LFADSDataError(f"{name} holds {bad} NaN or inf entries; drop the models whose distances failed.")
        tol = 1e-12 * max(1.0, float(np.abs(arr).max(initial=0.0)))
        if (arr < -tol).any():
            raise LFADSDataError(f"{name} holds negative entries (down to {arr.min():.3g}); distances are >= 0.")
        np.maximum(arr, 0.0, out=arr)
    return arr


def _group_statistic(d: np.ndarray, labels: np.ndarray, a: Any, b: Any) -> float:
    ia, ib = labels == a, labels == b
    between = d[np.ix_(ia, ib)].mean()
    within = []
    for m in (ia, ib):
        block = d[np.ix_(m, m)]
        k = int(m.sum())
        within.append(block[~np.eye(k, dtype=bool)].mean() if k > 1 else 0.0)
    return float(between - 0.5 * (within[0] + within[1]))


@dataclass(frozen=True)
class PermutationTest:
    """``statistic`` (:func:`permutation_test`: between minus within; :func:`silhouette_test`: the silhouette),
    its ``null`` draws under shuffled labels and the one-sided ``p_value``."""

    statistic: float
    null: np.ndarray
    p_value: float


def permutation_test(
    distances: Any, labels: Sequence[Any], n_permutations: int = 2000, seed: int = 0
) -> PermutationTest:
    """Test whether two groups of models are further apart than models within a group (module docstring).

    Parameters
    ----------
    distances : array
        ``(N, N)`` distance matrix.
    labels : sequence
        ``N`` labels taking exactly two values.
    """
    d = _check_square(distances)
    lab = np.asarray(labels)
    groups = np.unique(lab)
    if lab.shape != (d.shape[0],) or groups.size != 2:
        raise LFADSDataError(
            f"permutation_test needs one label per model ({d.shape[0]}) with exactly two groups; got "
            f"{lab.shape[0] if lab.ndim else 0} labels in groups {groups.tolist()}."
        )
    check_setting("permutation test", "n_permutations", n_permutations, 1, integer=True)
    a, b = groups
    stat = _group_statistic(d, lab, a, b)
    rng = np.random.default_rng(seed)
    null = np.array([_group_statistic(d, rng.permutation(lab), a, b) for _ in range(n_permutations)])
    p = (1.0 + np.sum(null >= stat - 1e-12)) / (1.0 + n_permutations)
    return PermutationTest(stat, null, float(p))


def split_half_floor(
    trajectories: Any, distance: Callable[[np.ndarray, np.ndarray], float], n_splits: int = 10, seed: int = 0
) -> np.ndarray:
    """Distances ``(n_splits,)`` between two random disjoint halves of one model's trials.

    ``distance(x, y)`` receives two ``(trials // 2, time, units)`` arrays. For metrics that compare the
    same trials (geometry), pass a distance that pairs trials by position only if the model's trials are
    exchangeable (e.g. repeats of one condition); dynamics metrics need no pairing.
    """
    x = np.asarray(trajectories, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 2:
        raise LFADSDataError(f"split_half_floor needs (trials, time, units) with at least 2 trials; got {x.shape}.")
    rng = np.random.default_rng(seed)
    half = x.shape[0] // 2
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(x.shape[0])
        out.append(distance(x[perm[:half]], x[perm[half : 2 * half]]))
    return np.asarray(out, dtype=np.float64)


def bootstrap_interval(
    x: Any,
    y: Any,
    distance: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, np.ndarray]:
    """Percentile interval of ``distance(x[idx], y[idx])`` over trials ``idx`` drawn with replacement.

    Returns ``(low, high, draws)``.
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.shape[0] != ya.shape[0]:
        raise LFADSDataError(
            f"bootstrap_interval: x has {xa.shape[0]} trials, y has {ya.shape[0]}; pass the same trials.")
    rng = np.random.default_rng(seed)
    draws = np.array([distance(xa[idx], ya[idx]) for idx in rng.integers(0, xa.shape[0], size=(n_boot, xa.shape[0]))])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high), draws


def embed_mds(distances: Any, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """Metric MDS coordinates ``(N, n_components)`` of a distance matrix (scikit-learn SMACOF, started from
    classical MDS where available)."""
    import inspect

    from sklearn.manifold import MDS

    d = _check_square(distances)
    check_setting("embed_mds", "n_components", n_components, 1, integer=True)
    d = 0.5 * (d + d.T)
    params = inspect.signature(MDS).parameters
    kwargs: dict[str, Any] = {"n_components": n_components, "random_state": seed}
    if "metric_mds" in params:  # scikit-learn >= 1.8: `metric` names the dissimilarity
        kwargs.update(metric="precomputed", init="classical_mds")
    else:
        kwargs.update(dissimilarity="precomputed", n_init=4)
    mds = MDS(**kwargs)
    # A matrix of zeros (models at one point, e.g. equal topologies) leaves SMACOF's relative stress 0/0.
    with np.errstate(invalid="ignore", divide="ignore"):
        return mds.fit_transform(d)


def _checked_labels(d: np.ndarray, labels: Sequence[Any], where: str) -> np.ndarray:
    """``labels`` as an array after checking there is one per model of ``d`` and 2 to ``N - 1`` groups."""
    lab = np.asarray(labels)
    k = np.unique(lab).size
    if lab.shape != (d.shape[0],) or not 2 <= k <= d.shape[0] - 1:
        raise LFADSDataError(f"{where} needs one label per model ({d.shape[0]}) in 2 to {d.shape[0] - 1} groups; "
                             f"got {lab.shape[0] if lab.ndim else 0} labels in {k} groups.")
    return lab


def _silhouette_of_checked(d: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return float(silhouette_score(d, labels, metric="precomputed"))


def silhouette(distances: Any, labels: Sequence[Any]) -> float:
    """Mean silhouette coefficient of ``labels`` under a precomputed distance matrix."""
    d = _check_square(distances)
    return _silhouette_of_checked(d, _checked_labels(d, labels, "silhouette"))


def silhouette_test(
    distances: Any, labels: Sequence[Any], n_permutations: int = N_PERMUTATIONS, seed: int = 0
) -> PermutationTest:
    """Does ``labels`` group the models better than chance? The :func:`silhouette` :math:`s` of ``labels`` against
    those of ``n_permutations`` shuffles of them, :math:`p = (1 + \\#\\{s_\\pi \\ge s\\}) / (1 + n_\\pi)`.

    Needs between 2 and ``N - 1`` groups. All distances 0: every silhouette is 0 and :math:`p = 1`.
    """
    d = _check_square(distances)
    lab = _checked_labels(d, labels, "silhouette_test")
    check_setting("permutation test", "n_permutations", n_permutations, 1, integer=True)
    stat = _silhouette_of_checked(d, lab)
    rng = np.random.default_rng(seed)
    null = np.array([_silhouette_of_checked(d, rng.permutation(lab)) for _ in range(n_permutations)])
    p = (1.0 + np.sum(null >= stat - 1e-12)) / (1.0 + n_permutations)
    return PermutationTest(stat, null, float(p))


def separation_auc(distances: Any, labels: Sequence[Any]) -> float:
    """:math:`P(d_\\text{between} > d_\\text{within})` over all pairs (ties count half): 1 when every
    within-group distance is smaller than every between-group one, 0.5 at chance."""
    d = _check_square(distances)
    lab = np.asarray(labels)
    i, j = np.triu_indices(d.shape[0], 1)
    same = lab[i] == lab[j]
    within, between = d[i, j][same], d[i, j][~same]
    if within.size == 0 or between.size == 0:
        raise LFADSDataError("separation_auc needs at least one within-group and one between-group pair.")
    diff = between[:, None] - within[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


@dataclass(frozen=True)
class GroupSeparation:
    """How well a grouping separates the models under one distance: :func:`silhouette`, the p-value of
    :func:`silhouette_test` and :func:`separation_auc`."""

    silhouette: float
    p_value: float
    auc: float


def group_separation(
    distances: Any, labels: Sequence[Any], n_permutations: int = N_PERMUTATIONS, seed: int = 0
) -> GroupSeparation:
    """:func:`silhouette`, :func:`silhouette_test` and :func:`separation_auc` of ``labels``.

    NaN where undefined: fewer than 2 groups or as many groups as models (silhouette, p-value; the AUC also
    needs a pair within a group and one between groups), or a non-finite distance (all three). All distances
    0: silhouette 0, :math:`p = 1`, AUC 0.5.
    """
    d = _check_square(distances, finite=False)
    lab = np.asarray(labels)
    if lab.shape != (d.shape[0],):
        raise LFADSDataError(f"group_separation needs one label per model ({d.shape[0]}); got {lab.shape[0]} labels.")
    nan = float("nan")
    if not np.isfinite(d).all():
        return GroupSeparation(nan, nan, nan)
    k = np.unique(lab).size
    same = lab[:, None] == lab[None, :]
    has_pairs = bool(np.triu(same, 1).any() and np.triu(~same, 1).any())
    auc = separation_auc(d, lab) if has_pairs else nan
    if not 2 <= k <= d.shape[0] - 1:
        return GroupSeparation(nan, nan, auc)
    test = silhouette_test(d, lab, n_permutations, seed)
    return GroupSeparation(test.statistic, test.p_value, auc)


def separation_table(scores: Mapping[str, GroupSeparation], groups: Sequence[str], n_permutations: int,
                     digits: int = 4) -> str:
    """One line per metric of :func:`group_separation` results: silhouette, p-value and AUC (blank where NaN)."""
    def cell(value: float, width: int, fmt: str) -> str:
        return f"{'':>{width}}" if np.isnan(value) else f"{value:>{width}{fmt}}"

    lines = [f"separation of the groups ({', '.join(groups)}): silhouette, its p against {n_permutations} shuffles "
             "of the labels, AUC of between- over within-group distances",
             f"  {'metric':<22}{'silhouette':>11}{'p':>9}{'AUC':>8}"]
    for metric, sc in scores.items():
        lines.append(f"  {metric:<22}{cell(sc.silhouette, 11, f'.{digits}f')}{cell(sc.p_value, 9, '.3g')}"
                     f"{cell(sc.auc, 8, '.3f')}")
    return "\n".join(lines)
