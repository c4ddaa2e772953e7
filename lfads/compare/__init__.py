"""Comparing the dynamics of many models: geometry, data-driven dynamics, fixed-point topology, spectra.

* :mod:`~lfads.compare.geometry` -- CCA/SVCCA, generalized shape metrics (CCA to Procrustes), linear CKA;
* :mod:`~lfads.compare.dsa` -- dynamical similarity analysis: delay embedding, DMD, the orthogonal
  similarity-transform distance between operators and the Wasserstein distance between their eigenvalues;
* :mod:`~lfads.compare.topology` -- the graph of fixed points joined by the flow out of their unstable
  directions, and distances between such graphs;
* :mod:`~lfads.compare.spectra` -- fixed points of two models matched, Jacobian spectra compared;
* :mod:`~lfads.compare.jslds` -- Jacobian spectra compared along the same trials (the matrices of a JSLDS);
* :mod:`~lfads.compare.stats` -- permutation tests, noise floors, bootstrap intervals, MDS, silhouettes;
* :mod:`~lfads.compare.systems` -- small systems with known answers (DSA's Figures 3 and 4);
* :mod:`~lfads.compare.api` -- :func:`compare_models`: every metric for many models at once, saved to HDF5.

Example::

    from lfads.compare import compare_models
    res = compare_models([states_a, states_b, states_c], metrics=["procrustes", "cca", "dsa"])
    print(res.table("dsa"))
    res.save("compare.h5")
"""

from lfads.compare.api import METRICS, ComparisonResult, Model, compare_models, simulate
from lfads.compare.dsa import (
    DMD,
    DSA,
    delay_embed,
    eigenvalue_wasserstein,
    fit_dmd,
    select_delay_rank,
    similarity_transform_distance,
    subtract_condition_means,
    triangle_violation_rate,
)
from lfads.compare.geometry import (
    LinearCKA,
    ShapeMetric,
    cross_validated_distance,
    geometry_metric,
    pairwise_cross_validated_distances,
    pairwise_distances,
)
from lfads.compare.jslds import JSLDSComparison, TrialPath, pairwise_jslds_distances
from lfads.compare.spectra import LinearizationComparison, compare_linearizations, match_fixed_points
from lfads.compare.stats import (
    GroupSeparation,
    bootstrap_interval,
    embed_mds,
    group_separation,
    permutation_test,
    separation_auc,
    silhouette,
    silhouette_test,
    split_half_floor,
)
from lfads.compare.topology import (
    TopologyGraph,
    build_topology,
    count_distance,
    graph_distance,
    graph_edit_distance,
    unstable_index,
    wl_distance,
)

__all__ = [
    "DMD",
    "DSA",
    "GroupSeparation",
    "JSLDSComparison",
    "METRICS",
    "ComparisonResult",
    "LinearCKA",
    "LinearizationComparison",
    "Model",
    "ShapeMetric",
    "TopologyGraph",
    "TrialPath",
    "bootstrap_interval",
    "build_topology",
    "compare_linearizations",
    "compare_models",
    "count_distance",
    "cross_validated_distance",
    "delay_embed",
    "eigenvalue_wasserstein",
    "embed_mds",
    "fit_dmd",
    "geometry_metric",
    "graph_distance",
    "graph_edit_distance",
    "group_separation",
    "match_fixed_points",
    "pairwise_cross_validated_distances",
    "pairwise_distances",
    "pairwise_jslds_distances",
    "permutation_test",
    "select_delay_rank",
    "separation_auc",
    "silhouette",
    "silhouette_test",
    "similarity_transform_distance",
    "simulate",
    "split_half_floor",
    "subtract_condition_means",
    "triangle_violation_rate",
    "unstable_index",
    "wl_distance",
]
