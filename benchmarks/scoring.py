"""Open a finished fit for scoring: find its checkpoint, load model and data, sample the posterior.

Every benchmark that scores a fit goes through :func:`sample_run`, which opens runs through
:mod:`lfads.rundir` exactly as ``lfads sample --run`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SampledRun", "sample_run"]


@dataclass
class SampledRun:
    """A fit's best checkpoint, its model and data, and its posterior-averaged outputs.

    Attributes
    ----------
    checkpoint : Path
        The checkpoint that was loaded.
    model : lfads.model.LFADS
        On the CPU.
    datamodule : lfads.data.datamodule.LFADSDataModule
    results : dict
        ``{session: {split: {name: array}}}`` from :func:`lfads.sampling.sample_posteriors`; ``rates`` is
        ``(trials, time, neurons)``.
    """

    checkpoint: Path
    model: Any
    datamodule: Any
    results: dict

    @property
    def session(self) -> Any:
        """The first session of the data (the only one in every benchmark)."""
        return self.datamodule.sessions[0]

    def rates(self, split: str, session: int = 0) -> np.ndarray:
        """Posterior-averaged rates ``(trials, time, neurons)`` of one split of one session."""
        return self.results[self.datamodule.session_names[session]][split]["rates"]

    def scores(self) -> dict:
        """``{session: {split: {metric: value}}}`` from :func:`lfads.sampling.score_samples`."""
        from lfads.sampling import score_samples

        return score_samples(self.results, self.datamodule)


def sample_run(
    run: str | os.PathLike, samples: int, splits: Sequence[str] | None = None, seed: int | None = None
) -> SampledRun:
    """Load the best checkpoint of run folder ``run`` (or the checkpoint file ``run``) and sample its posterior.

    Parameters
    ----------
    run : str or PathLike
        A run folder (``workdir/name``, ``runs/name/version_N``) or a ``.ckpt`` file.
    samples : int
        Posterior samples averaged per trial.
    splits : sequence of str, optional
        Splits to sample (default: every split, as ``lfads sample``).
    seed : int, optional
        Seed of torch's generator before sampling, for repeatable draws.
    """
    import torch

    from lfads.rundir import find_checkpoint, load_model_and_data
    from lfads.sampling import sample_posteriors

    run = Path(run)
    checkpoint = run if run.is_file() else find_checkpoint(run)
    model, datamodule = load_model_and_data(checkpoint)
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = {} if splits is None else {"splits": tuple(splits)}
    results = sample_posteriors(model, datamodule, n_samples=samples, progress=False, **kwargs)
    return SampledRun(checkpoint, model, datamodule, results)
