"""Shared fixtures: small synthetic data sets written in the LFADS HDF5 layout."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_lorenz(tmp_path_factory):
    """A small Lorenz data set: 32 train / 8 valid trials, 50 bins, 12 held-in + 4 held-out neurons."""
    from datasets.lorenz import write_lorenz

    path = tmp_path_factory.mktemp("data") / "lorenz_small.h5"
    write_lorenz(path, n_conditions=8, trials_per_condition=5, n_time=50, n_heldin=12, n_heldout=4, seed=1)
    return path
