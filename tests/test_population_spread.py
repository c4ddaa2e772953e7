"""A population spread over Ray Tune: the trial grid, the joining of chunks, and equality with run_population."""

from __future__ import annotations

import time
from dataclasses import asdict

import h5py
import numpy as np
import pytest
import torch

from lfads.errors import LFADSArgumentError
from lfads.population.population import config_for, run_population
from lfads.population.spread import join_chunks, population_units, seed_chunks, trial_arrays
from lfads.population.tasks import get_task
from lfads.population.train import TrainConfig, train_population

SETTINGS = {"n_bits": 2, "n_time": 16}
# target 0.15 in at most 150 steps: the networks stop at different checks (25 to 100 steps), so chunks end apart
TRAIN = {"units": 8, "max_steps": 150, "batch_size": 8, "target_loss": 0.15, "data_seed": 3}


@pytest.mark.parametrize(("n", "size", "expected"), [
    (4, 2, [[0, 1], [2, 3]]),
    (5, 2, [[0, 1], [2, 3], [4]]),
    (3, 8, [[0, 1, 2]]),
    (3, 1, [[0], [1], [2]]),
])
def test_seed_chunks_are_consecutive_and_cover_every_seed_once(n, size, expected):
    chunks = seed_chunks(range(n), size)
    assert chunks == expected
    assert sorted(s for c in chunks for s in c) == list(range(n))
    assert all(1 <= len(c) <= size for c in chunks)


def test_trials_are_every_architecture_times_every_chunk():
    units = population_units(["gru", "lstm"], 7, 3)
    assert [(u["arch"], u["seeds"]) for u in units] == [
        ("gru", [0, 1, 2]), ("gru", [3, 4, 5]), ("gru", [6]),
        ("lstm", [0, 1, 2]), ("lstm", [3, 4, 5]), ("lstm", [6]),
    ]
    for arch in ("gru", "lstm"):
        seeds = [s for u in units if u["arch"] == arch for s in u["seeds"]]
        assert sorted(seeds) == list(range(7)) and len(set(seeds)) == 7


@pytest.mark.parametrize("size", [0, -2])
def test_fewer_than_one_seed_per_trial_is_refused(size):
    with pytest.raises(LFADSArgumentError, match=rf"seeds_per_trial {size}: must be at least 1"):
        seed_chunks(range(4), size)


def test_joined_chunks_are_the_batched_fit_of_all_seeds():
    """Chunks trained apart (in any order) and joined equal the fit of all seeds at once, NaN padding included."""
    task = get_task("flipflop", **SETTINGS)
    full = run_population(task="flipflop", archs=["gru"], seeds=4, find_points=False, task_settings=SETTINGS,
                          **TRAIN).fits["gru"]
    chunks = [trial_arrays(train_population(task, "gru", c, 8, full.config)) for c in ([2, 3], [0, 1])]
    assert len({c["losses"].shape[0] for c in chunks}) == 2  # the chunks stopped at different steps
    joined = join_chunks("gru", chunks, full.config)
    for name in ("seeds", "reached", "stop_step", "final_loss", "losses", "eval_steps", "eval_losses"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(full, name), err_msg=name)
    for name in ("weight_ih", "weight_hh", "bias_hh", "readout_weight", "readout_bias"):
        torch.testing.assert_close(getattr(joined.model, name), getattr(full.model, name), atol=0, rtol=0)


# ----------------------------------------------------------------------------------------------------------------------
# Through Ray
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ray_cleanup():
    """Shut down any Ray left running by a test, so that no Ray process outlives it."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _layout(path) -> dict[str, tuple]:
    shapes = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: shapes.__setitem__(name, getattr(obj, "shape", "group")))
        shapes["/attrs"] = tuple(sorted(f.attrs))
    return shapes


@pytest.mark.slow
def test_population_through_ray_equals_run_population(tmp_path, ray_cleanup):
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    from lfads.population.spread import run_population_ray

    common = dict(task="flipflop", archs=["gru", "vanilla"], seeds=4, n_initial_states=16, rate_penalty=0.05,
                  task_settings=SETTINGS, **TRAIN)  # fmt: skip
    start = time.perf_counter()
    local = run_population(out=tmp_path / "local.h5", **common)
    local_s = time.perf_counter() - start
    start = time.perf_counter()
    spread = run_population_ray(seeds_per_trial=2, cpus_per_trial=1, num_cpus=2, storage=tmp_path / "ray",
                                out=tmp_path / "ray.h5", **common)
    print(f"run_population {local_s:.1f} s, run_population_ray {time.perf_counter() - start:.1f} s")

    assert spread.archs == local.archs == ["gru", "vanilla"]
    for arch in local.archs:
        a, b = local.fits[arch], spread.fits[arch]
        for name in ("seeds", "reached", "stop_step", "eval_steps"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
        for name in ("losses", "eval_losses", "final_loss"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=1e-6, rtol=0, err_msg=name)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "readout_weight", "readout_bias"):
            torch.testing.assert_close(getattr(b.model, name), getattr(a.model, name), atol=1e-6, rtol=0)
        assert b.config == a.config and b.target_loss == a.target_loss and b.config.rate_penalty == 0.05
        assert len(spread.fixed_points[arch]) == 4 and len(spread.graphs[arch]) == 4
    assert any(len(set(f.stop_step)) > 1 for f in local.fits.values())  # some chunks stopped before others
    assert _layout(tmp_path / "ray.h5") == _layout(tmp_path / "local.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.h5", "ray", "ray.h5"]  # no temporary file left


def test_a_spread_trial_trains_with_its_architectures_identity_candidate(monkeypatch):
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    import lfads.population.spread as spread

    used = {}

    class Stop(Exception):
        pass

    def fake_train(task, arch, seeds, units, config):
        used[arch] = config.identity_candidate
        raise Stop

    monkeypatch.setattr(spread, "train_population", fake_train)
    setup = spread.SpreadSetup("flipflop", 4, asdict(TrainConfig(max_steps=1)), identity_candidate=("gru",))
    for arch in ("gru", "lstm"):
        with pytest.raises(Stop):
            spread.train_chunk({"unit": {"arch": arch, "seeds": [0]}}, setup)
    assert used == {"gru": True, "lstm": False}


def test_config_for_resolves_identity_candidate_per_architecture():
    config = TrainConfig(lr=3e-3)
    assert config_for(config, "gru", ["gru", "ugrnn"]).identity_candidate is True
    assert config_for(config, "lstm", ["gru", "ugrnn"]).identity_candidate is False
    assert config_for(config, "lstm", True).identity_candidate is True
    assert config_for(config, "gru", ["gru"]).lr == 3e-3
