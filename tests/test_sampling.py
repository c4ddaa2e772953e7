"""Posterior sampling: encode once, decode in chunks; equal to repeating each batch and running the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tqdm.auto import tqdm

from lfads.data.datamodule import LFADSDataModule
from lfads.errors import LFADSDataError
from lfads.model import LFADS
from lfads.runtime import set_recurrence_backend
from lfads.sampling import AVERAGED, PER_TRIAL, chunk_rows, sample_posteriors


@torch.no_grad()
def repeat_and_forward(model, dm, n_samples: int, split: str, trials_per_batch: int) -> dict[str, np.ndarray]:
    """The plain sampler: repeat each batch ``n_samples`` times, run the whole model on it, average."""
    model.eval()
    chunks: dict[str, list] = {k: [] for k in AVERAGED + PER_TRIAL}
    # Iterated through tqdm as the sampler does: the wrapper starts the loader's iterator twice, and each
    # start draws a seed from torch's generator.
    for batch in tqdm(dm.split_dataloader(0, split, batch_size=trials_per_batch), disable=True):
        b = batch.encod_data.shape[0]
        out = model({0: batch.encod_data.repeat(n_samples, 1, 1)}, {0: batch.ext_input.repeat(n_samples, 1, 1)})[0]
        for k in AVERAGED:
            v = getattr(out, k).float()
            chunks[k].append(v.reshape(n_samples, b, *v.shape[1:]).mean(0))
        for k in PER_TRIAL:
            chunks[k].append(getattr(out, k)[:b].float())
    return {k: torch.cat(v).numpy() for k, v in chunks.items()}


def _model(dm: LFADSDataModule, **overrides) -> LFADS:
    torch.manual_seed(0)
    kwargs = {"ic_enc_dim": 16, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 2, "ic_dim": 8, "gen_dim": 16, "fac_dim": 4,
              "dropout_rate": 0.3}
    kwargs.update(overrides)
    return LFADS(dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim, **kwargs)


@pytest.mark.parametrize("memory_mb", [0.05, 1.0])
@pytest.mark.parametrize("controller", [True, False])
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_chunked_sampler_equals_repeat_and_forward_with_the_same_noise(small_lorenz, memory_mb, controller,
                                                                       backend) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    model = _model(dm) if controller else _model(dm, con_dim=0, co_dim=0)
    with set_recurrence_backend(backend):
        torch.manual_seed(5)
        new = sample_posteriors(model, dm, n_samples=7, splits=("train",), memory_mb=memory_mb, progress=False,
                                trials_per_batch=6)[dm.session_names[0]]["train"]
        torch.manual_seed(5)
        old = repeat_and_forward(model, dm, n_samples=7, split="train", trials_per_batch=6)
    assert set(new) == set(old)
    for k in old:
        np.testing.assert_allclose(new[k], old[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(new["rates"], repeat_and_forward(model, dm, 7, "train", 6)["rates"])  # noise matters


def test_chunk_size_follows_the_memory_budget(small_lorenz) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    model = _model(dm)
    small, large = chunk_rows(model, 50, memory_mb=1.0), chunk_rows(model, 50, memory_mb=8.0)
    assert 7 * small <= large <= 9 * small
    assert chunk_rows(model, 500, memory_mb=8.0) < large


def test_sampling_restores_training_mode_and_averages_out_noise(small_lorenz) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    model = _model(dm).train()
    torch.manual_seed(0)
    few = sample_posteriors(model, dm, 2, ("valid",), progress=False)[dm.session_names[0]]["valid"]["rates"]
    many = [sample_posteriors(model, dm, 200, ("valid",), progress=False)[dm.session_names[0]]["valid"]["rates"]
            for _ in range(2)]
    assert model.training
    # The spread between two 200-sample averages is far below that between 2-sample averages.
    assert np.abs(many[0] - many[1]).mean() < 0.3 * np.abs(few - many[0]).mean()


@pytest.mark.parametrize(("n_samples", "splits", "says"), [
    (0, ("valid",), "n_samples must be a whole number of at least 1; got 0"),
    (2.5, ("valid",), "n_samples must be a whole number"),
    (2, ("trian",), "unknown split 'trian' (did you mean 'train'?)"),
    (2, (), "splits is empty"),
])
def test_a_bad_sample_count_or_split_name_is_refused_before_sampling(small_lorenz, n_samples, splits, says) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    with pytest.raises(LFADSDataError) as info:
        sample_posteriors(_model(dm), dm, n_samples, splits, progress=False)
    assert says in str(info.value)


def test_one_split_may_be_named_by_a_string(small_lorenz) -> None:
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    out = sample_posteriors(_model(dm), dm, 2, "valid", progress=False)[dm.session_names[0]]
    assert list(out) == ["valid"] and out["valid"]["rates"].shape[0] == dm.sessions[0].splits["valid"].n_trials
