"""Shared fixtures: small synthetic data sets written in the LFADS HDF5 layout, and the recurrence backends."""

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


@pytest.fixture(params=["python", "compiled"])
def loop_backend(request):
    """The test runs twice: on the Python loops and on the compiled loops of :mod:`lfads.modules.native`."""
    from lfads.modules import native
    from lfads.runtime import set_recurrence_backend

    with set_recurrence_backend("python" if request.param == "python" else "native"):
        if request.param == "compiled":
            assert native.load() is not None, "the compiled recurrent loops did not build"
        yield request.param
