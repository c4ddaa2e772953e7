"""Figures of trained LFADS models, each a function that draws one kind of plot and returns its Figure.

Every function accepts an optional ``ax`` (an Axes, or an array of them for multi-panel plots) and
otherwise makes a new figure; arrays are ``(trials, time, neurons)`` (or ``(trials, time, dims)``),
rates are expected counts per bin, and inconsistent shapes raise :class:`lfads.errors.LFADSDataError`
(a ``ValueError``) naming the arguments.

- :func:`plot_raster_and_rates`, :func:`plot_psths`: data against inferred rates.
- :func:`plot_trajectories`, :func:`plot_inferred_inputs`, :func:`plot_ic_embedding`: latent variables.
- :func:`plot_training_curves`: curves from ``metrics.csv``.
- :func:`plot_eigenvalues`, :func:`plot_fixed_points`, :func:`plot_jslds_error`: generator dynamics
  (:func:`draw_fixed_points`, :func:`draw_eigenvalue_spectra` draw fixed points into one given Axes).
- :func:`align_to_events`: cut windows around one event per trial.
"""

from lfads.viz._common import align_to_events
from lfads.viz.activity import plot_psths, plot_raster_and_rates
from lfads.viz.dynamics import (
    draw_eigenvalue_spectra,
    draw_fixed_points,
    plot_eigenvalues,
    plot_fixed_points,
    plot_jslds_error,
)
from lfads.viz.latents import plot_ic_embedding, plot_inferred_inputs, plot_trajectories
from lfads.viz.training import plot_training_curves

__all__ = [
    "align_to_events",
    "draw_eigenvalue_spectra",
    "draw_fixed_points",
    "plot_eigenvalues",
    "plot_fixed_points",
    "plot_ic_embedding",
    "plot_inferred_inputs",
    "plot_jslds_error",
    "plot_psths",
    "plot_raster_and_rates",
    "plot_training_curves",
    "plot_trajectories",
]
