"""Everything about a finished ``lfads fit`` run in one object: config, best model, data, metrics, posteriors.

A run directory ``{save_dir}/{name}/version_{N}/`` (see :mod:`lfads.rundir`) holds ``config.yaml``,
``metrics.csv``, ``checkpoints/`` and, once sampled, ``posterior_samples.h5``. :func:`load_run` gathers
them so that an analysis starts with one line::

    run = load_run("runs/lorenz")            # newest version_* folder, best checkpoint
    out = run.outputs("valid")               # posterior-averaged rates, factors, ... (trials, time, dim)
    data = run.data("valid")                 # the split's counts, truth and extras

Posterior outputs are the averages over ``n_samples`` posterior draws per trial
(:func:`lfads.sampling.sample_posteriors`),

.. math::

    \\hat r_t = \\frac{1}{S}\\sum_{s=1}^{S} r_t\\big(z^{(s)}, u^{(s)}_{1:t}\\big),

read from ``posterior_samples.h5`` when the run has one (the file ``lfads sample --run`` writes) and
otherwise sampled with a fixed seed and saved there atomically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lfads.errors import LFADSDataError
from lfads.rundir import POSTERIOR_FILE, load_metrics, load_model_and_data, resolve_run_dir

if TYPE_CHECKING:
    from lfads.data.batch import SplitData

__all__ = ["POSTERIOR_FILE", "Run", "compute_co_prior_tau", "load_metrics", "load_run", "resolve_run_dir"]



@dataclass
class Run:
    """A trained LFADS run, loaded by :func:`load_run`.

    Attributes
    ----------
    run_dir : Path
        The version folder (``.../version_N``) the checkpoint belongs to.
    checkpoint : Path
        The best checkpoint (by ``valid/loss_smth_ramped``, see :func:`lfads.rundir.find_checkpoint`).
    config : dict
        The resolved ``config.yaml`` of the fit (empty if the file is missing).
    model : lfads.model.LFADS
        The model from ``checkpoint``, on the CPU, in evaluation mode.
    datamodule : lfads.data.datamodule.LFADSDataModule
        The data module rebuilt from the checkpoint's hyperparameters.
    metrics : dict of str to np.ndarray
        ``metrics.csv`` as one float array per column (``(rows,)``, NaN where a row has no value); see
        :func:`load_metrics`.
    posteriors : dict
        ``{session: {split: {name: array}}}`` posterior averages: ``rates``, ``factors``, ``gen_states``,
        ``inferred_inputs``, ``co_means``, ``co_stds`` ``(trials, time, dim)``; ``ic_mean``, ``ic_std``
        ``(trials, ic_dim)``. Rates are expected counts per bin.
    posterior_path : Path
        Where the posteriors were read from or written to.
    """

    run_dir: Path
    checkpoint: Path
    config: dict
    model: Any
    datamodule: Any
    metrics: dict[str, np.ndarray]
    posteriors: dict[str, dict[str, dict[str, np.ndarray]]]
    posterior_path: Path

    @property
    def session_names(self) -> list[str]:
        """Session names in data-module order."""
        return list(self.datamodule.session_names)

    @property
    def bin_size(self) -> float | None:
        """Bin width in seconds, where the data state it."""
        return self.datamodule.bin_size

    def _session_name(self, session: int | str) -> str:
        names = self.session_names
        if isinstance(session, str):
            if session not in names:
                raise LFADSDataError(f"run {self.run_dir}: no session '{session}'; the sessions are {names}.")
            return session
        if not -len(names) <= session < len(names):
            raise LFADSDataError(f"run {self.run_dir}: session index {session} out of range ({len(names)} sessions).")
        return names[session]

    def outputs(self, split: str = "valid", session: int | str = 0) -> dict[str, np.ndarray]:
        """Posterior averages of one split of one session (see :attr:`posteriors`).

        Raises
        ------
        LFADSDataError
            If the split was not sampled.
        """
        name = self._session_name(session)
        by_split = self.posteriors.get(name, {})
        if split not in by_split:
            raise LFADSDataError(
                f"{self.posterior_path}: no posterior outputs for session '{name}', split '{split}' (it holds "
                f"{sorted(by_split)}); call load_run with splits including '{split}' (missing splits are sampled and "
                "added to the file)."
            )
        return by_split[split]

    def data(self, split: str = "valid", session: int | str = 0) -> SplitData:
        """The :class:`lfads.data.batch.SplitData` of one split (counts, truth in counts per bin, extras)."""
        return self.datamodule.split_data(self.session_names.index(self._session_name(session)), split)

    def co_prior_tau(self) -> np.ndarray:
        """AR(1) timescales ``tau`` of the inferred-input prior, in bins, ``(co_dim,)`` (empty if autonomous).

        The prior is :math:`u_t = \\alpha u_{t-1} + \\epsilon_t` with :math:`\\alpha = e^{-1/\\tau}`.
        """
        return compute_co_prior_tau(self.model)


def compute_co_prior_tau(model: Any) -> np.ndarray:
    """Learned AR(1) timescales :math:`\\tau = e^{\\log\\tau}` (bins) of a model's ``co_prior``, ``(co_dim,)``.

    Returns an empty array when the model has no controller (``co_prior`` is ``None``).
    """
    prior = getattr(model, "co_prior", None)
    if prior is None:
        return np.zeros(0)
    return np.exp(prior.log_tau.detach().cpu().double().numpy())


def _sample(model, datamodule, n_samples: int, splits: Sequence[str], seed: int, progress: bool) -> dict:
    import torch

    from lfads.sampling import sample_posteriors

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return sample_posteriors(model, datamodule, n_samples, tuple(splits), progress=progress)


def _save(path: Path, results: dict, datamodule, ckpt: Path, n_samples: int, seed: int) -> None:
    from lfads.sampling import save_samples, score_samples

    scores = score_samples(results, datamodule)
    save_samples(path, results, scores, attrs={"checkpoint": str(ckpt), "n_samples": n_samples, "seed": seed})


def load_run(
    run_dir: str | os.PathLike,
    *,
    n_samples: int = 50,
    splits: str | Sequence[str] = ("train", "valid", "test"),
    data_paths: str | Sequence[str] | None = None,
    resample: bool = False,
    seed: int = 0,
    progress: bool = False,
    trust: bool | None = None,
) -> Run:
    """Load a trained run: resolved config, best model (eval mode), data module, metrics and posterior outputs.

    Parameters
    ----------
    run_dir : str or PathLike
        A version folder or the folder above the versions (its newest version is used).
    n_samples : int
        Posterior samples averaged per trial when sampling (ignored when the samples file is read).
    splits : str or sequence of str
        Splits to sample, of ``train``, ``valid``, ``test`` (those a session lacks are skipped).
    data_paths : str or sequence of str, optional
        Data files to use instead of those recorded in the checkpoint. Recorded relative paths are resolved
        from the nearest ancestor of the run folder that has them (the folder the fit ran in), else from the
        working folder.
    resample : bool
        Sample again and replace ``posterior_samples.h5`` even if it exists.
    seed : int
        Seed of the posterior draws (torch's global generator is restored afterwards).
    progress : bool
        Show a progress bar while sampling.
    trust : bool, optional
        Load the checkpoint with full unpickling, which can run code stored in it (default: only when
        ``LFADS_TRUST_CHECKPOINTS=1``); see :func:`lfads.rundir.checkpoint_loading`.

    Returns
    -------
    Run

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` does not exist or holds no checkpoint.
    lfads.errors.CheckpointTrustError
        If the checkpoint needs full unpickling and ``trust`` was not given.

    Notes
    -----
    Splits requested but missing from an existing samples file are sampled with the file's ``n_samples``
    and ``seed`` and added to it (the file is rewritten atomically). A samples file written from another
    checkpoint (its ``checkpoint`` attribute names a different file) is still read, with a warning; pass
    ``resample=True`` to replace it.
    """
    import h5py
    import yaml

    from lfads.sampling import load_samples, sampling_request

    splits = sampling_request(n_samples, splits)
    version_dir, ckpt = resolve_run_dir(run_dir, trust=trust)
    config_path = version_dir / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    config = config or {}
    paths = [os.fspath(data_paths)] if isinstance(data_paths, (str, os.PathLike)) else data_paths
    model, datamodule = load_model_and_data(ckpt, list(paths) if paths else None, trust=trust)
    model = model.cpu().eval()
    metrics_path = version_dir / "metrics.csv"
    metrics = load_metrics(metrics_path) if metrics_path.exists() else {}

    posterior_path = version_dir / POSTERIOR_FILE
    if posterior_path.exists() and not resample:
        with h5py.File(posterior_path, "r") as f:
            source = f.attrs.get("checkpoint")
            n_samples = int(f.attrs.get("n_samples", n_samples))
            seed = int(f.attrs.get("seed", seed))
        if source is not None and Path(str(source)).name != ckpt.name:
            warnings.warn(
                f"{posterior_path} was sampled from {source}, not from the best checkpoint {ckpt}; pass "
                "resample=True to replace it.",
                stacklevel=2,
            )
        posteriors = load_samples(posterior_path)
        missing = [split for split in splits
                   if any(split in s.splits and split not in posteriors.get(s.name, {}) for s in datamodule.sessions)]
        if missing:  # requested splits the file lacks: sample them alike and add them to the file
            for name, by_split in _sample(model, datamodule, n_samples, missing, seed, progress).items():
                posteriors.setdefault(name, {}).update(by_split)
            _save(posterior_path, posteriors, datamodule, ckpt, n_samples, seed)
    else:
        posteriors = _sample(model, datamodule, n_samples, splits, seed, progress)
        _save(posterior_path, posteriors, datamodule, ckpt, n_samples, seed)
    return Run(
        run_dir=version_dir,
        checkpoint=ckpt,
        config=config,
        model=model,
        datamodule=datamodule,
        metrics=metrics,
        posteriors=posteriors,
        posterior_path=posterior_path,
    )
