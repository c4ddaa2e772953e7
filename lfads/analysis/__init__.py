"""Dynamics analysis of a trained recurrent cell (e.g. the LFADS generator).

For :math:`h_t = F(h_{t-1}, u_t)`:

* :mod:`~lfads.analysis.fixed_points` -- fixed and slow points :math:`F(h^*, u^*) \\approx h^*`
  by batched minimisation of :math:`q = \\tfrac12\\|F(h, u^*) - h\\|^2`, deduplicated and linearised
  (:func:`find_fixed_points`, :class:`FixedPoints`), built on
  :mod:`~lfads.analysis.speed_minimization` (Adam, then Levenberg-Marquardt per point, whose normal
  equations are in :mod:`~lfads.analysis.normal_equations`) and :mod:`~lfads.analysis.point_merging`
  (outliers, duplicates, and the points that stand for one fixed point);
* :mod:`~lfads.analysis.jacobians` -- :math:`\\partial F/\\partial h`, :math:`\\partial F/\\partial u`
  (closed form for GRU cells, ``torch.func`` for any callable);
* :mod:`~lfads.analysis.linearization` -- eigenmodes and stability of a map;
* :mod:`~lfads.analysis.jslds` -- Jacobian-switching linear dynamics built around the points;
* :mod:`~lfads.analysis.projection` -- PCA views (figures are in :mod:`lfads.viz.dynamics`).

Tasks with known attractors (the flip-flop) and trained networks to test all this on live in
:mod:`lfads.population`.

Example with a trained LFADS model (``out`` the posterior outputs)::

    from lfads.analysis import find_fixed_points, sample_initial_states
    init = sample_initial_states(out.gen_states, 1024, noise_std=0.05)
    fps = find_fixed_points(model.decoder.generator, init.states)
    print(fps.summary())
"""

from lfads.analysis.fixed_points import (
    KINDS,
    FixedPoints,
    InitialStates,
    SpeedMinimization,
    build_fixed_points,
    deduplicate_points,
    find_distance_outliers,
    find_fixed_points,
    minimize_speed,
    sample_initial_states,
)
from lfads.analysis.jacobians import (
    AutogradDynamics,
    GRUDynamics,
    GRUParameters,
    as_dynamics,
    compute_jacobians,
    extract_gru_parameters,
)
from lfads.analysis.jslds import (
    ExpansionPointNetwork,
    JSLDSResult,
    Readout,
    compute_relative_errors,
    fit_expansion_point_network,
    simulate_jslds,
)
from lfads.analysis.linearization import STABILITY_CLASSES, classify_stability, compute_eigendecomposition
from lfads.analysis.projection import PCA, compute_pca, project_states

__all__ = [
    "KINDS",
    "STABILITY_CLASSES",
    "AutogradDynamics",
    "ExpansionPointNetwork",
    "FixedPoints",
    "GRUDynamics",
    "GRUParameters",
    "InitialStates",
    "JSLDSResult",
    "PCA",
    "Readout",
    "SpeedMinimization",
    "as_dynamics",
    "build_fixed_points",
    "classify_stability",
    "compute_eigendecomposition",
    "compute_jacobians",
    "compute_pca",
    "compute_relative_errors",
    "deduplicate_points",
    "extract_gru_parameters",
    "find_distance_outliers",
    "find_fixed_points",
    "fit_expansion_point_network",
    "minimize_speed",
    "project_states",
    "sample_initial_states",
    "simulate_jslds",
]
