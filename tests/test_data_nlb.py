"""Reading Neural Latents Benchmark tensor files (nlb_tools layout) into the LFADS layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from lfads.data import LFADSDataModule
from lfads.data.hdf5 import save_h5_atomic
from lfads.data.nlb import NLB_DEFAULT_BIN_SIZE, is_nlb_file, load_nlb_h5
from lfads.errors import LFADSDataError

MC_MAZE_SMALL = Path(__file__).resolve().parents[1] / "datasets" / "mc_maze_small" / "mc_maze_small_full.h5"
needs_real_file = pytest.mark.skipif(not MC_MAZE_SMALL.exists(), reason="MC_Maze_Small NLB file not available")


@pytest.fixture(scope="module")
def nlb_raw() -> dict[str, np.ndarray]:
    with h5py.File(MC_MAZE_SMALL, "r") as f:
        return {key: f[key][()] for key in f}


@needs_real_file
def test_mc_maze_small_loads_with_nlb_dimensions():
    session = load_nlb_h5(MC_MAZE_SMALL)
    assert session.name == "mc_maze_small_full"
    assert (session.encod_seq_len, session.recon_seq_len) == (140, 180)
    assert (session.encod_data_dim, session.recon_data_dim, session.ext_input_dim) == (107, 142, 0)
    train, valid, test = (session.splits[s] for s in ("train", "valid", "test"))
    assert (train.n_trials, valid.n_trials, test.n_trials) == (60, 15, 25)
    assert session.bin_size == NLB_DEFAULT_BIN_SIZE == 0.005
    assert test.recon_data is None and test.encod_data.shape == (25, 140, 107)
    assert train.truth is None


@needs_real_file
def test_mc_maze_small_recon_is_heldin_heldout_then_forward_bins(nlb_raw):
    session = load_nlb_h5(MC_MAZE_SMALL)
    inds = np.concatenate([session.splits["train"].extras["inds"], session.splits["valid"].extras["inds"]])
    assert sorted(inds.tolist()) == list(range(75))
    for split in ("train", "valid"):
        data = session.splits[split]
        rows = data.extras["inds"]
        np.testing.assert_array_equal(data.encod_data, nlb_raw["train_spikes_heldin"][rows])
        np.testing.assert_array_equal(data.recon_data[:, :140, :107], data.encod_data)
        np.testing.assert_array_equal(data.recon_data[:, :140, 107:], nlb_raw["train_spikes_heldout"][rows])
        np.testing.assert_array_equal(data.recon_data[:, 140:, :107], nlb_raw["train_spikes_heldin_forward"][rows])
        np.testing.assert_array_equal(data.recon_data[:, 140:, 107:], nlb_raw["train_spikes_heldout_forward"][rows])
        np.testing.assert_array_equal(data.extras["behavior"], nlb_raw["train_behavior"][rows])
    test = session.splits["test"]
    np.testing.assert_array_equal(test.encod_data, nlb_raw["eval_spikes_heldin"])
    np.testing.assert_array_equal(test.extras["spikes_heldout"], nlb_raw["eval_spikes_heldout"])
    assert test.extras["spikes_heldout"].shape == (25, 140, 35)


@needs_real_file
def test_nlb_split_is_seeded():
    first = load_nlb_h5(MC_MAZE_SMALL, seed=3).splits["valid"].extras["inds"]
    again = load_nlb_h5(MC_MAZE_SMALL, seed=3).splits["valid"].extras["inds"]
    other = load_nlb_h5(MC_MAZE_SMALL, seed=4).splits["valid"].extras["inds"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len(load_nlb_h5(MC_MAZE_SMALL, valid_fraction=0.4).splits["valid"].extras["inds"]) == 30


@needs_real_file
def test_datamodule_reads_nlb_file_and_its_test_split():
    dm = LFADSDataModule(str(MC_MAZE_SMALL), batch_size=15, valid_fraction=0.2, split_seed=0)
    assert (dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len) == ([107], [142], 140, 180)
    assert dm.bin_size == 0.005
    dm.require_counts()
    batch = next(iter(dm.split_dataloader(0, "test", batch_size=25)))
    assert batch.recon_data is None and batch.encod_data.shape == (25, 140, 107)
    with pytest.raises(LFADSDataError, match="batch_size <= 15"):
        LFADSDataModule(str(MC_MAZE_SMALL), batch_size=64)


@needs_real_file
def test_is_nlb_file_tells_layouts_apart(tmp_path):
    assert is_nlb_file(MC_MAZE_SMALL)
    lfads_file = save_h5_atomic(tmp_path / "l.h5", {"train_encod_data": np.zeros((2, 3, 4))})
    assert not is_nlb_file(lfads_file)
    (tmp_path / "t.h5").write_text("text")
    assert not is_nlb_file(tmp_path / "t.h5")
    assert not is_nlb_file(tmp_path / "absent.h5")


def write_nlb(path, n=10, m=4, t=6, t_fp=2, n_in=3, n_out=2, attrs=None, **override):
    rng = np.random.default_rng(0)
    arrays = {
        "train_spikes_heldin": rng.poisson(1.0, (n, t, n_in)).astype(np.float32),
        "train_spikes_heldout": rng.poisson(1.0, (n, t, n_out)).astype(np.float32),
        "train_spikes_heldin_forward": rng.poisson(1.0, (n, t_fp, n_in)).astype(np.float32),
        "train_spikes_heldout_forward": rng.poisson(1.0, (n, t_fp, n_out)).astype(np.float32),
        "eval_spikes_heldin": rng.poisson(1.0, (m, t, n_in)).astype(np.float32),
    }
    for key, value in override.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    return save_h5_atomic(path, arrays, attrs)


def test_bin_width_attribute_in_ms_sets_bin_size(tmp_path):
    path = write_nlb(tmp_path / "n.h5", attrs={"bin_width": 20})
    assert load_nlb_h5(path).bin_size == pytest.approx(0.02)
    assert load_nlb_h5(path, bin_size=0.01).bin_size == 0.01


def test_nlb_file_without_forward_bins_reconstructs_encoder_bins_only(tmp_path):
    path = write_nlb(tmp_path / "n.h5", train_spikes_heldin_forward=None, train_spikes_heldout_forward=None)
    session = load_nlb_h5(path)
    assert (session.encod_seq_len, session.recon_seq_len, session.recon_data_dim) == (6, 6, 5)
    with h5py.File(path, "r") as f:
        heldin, heldout = f["train_spikes_heldin"][()], f["train_spikes_heldout"][()]
    train = session.splits["train"]
    expected = np.concatenate([heldin, heldout], axis=2)[train.extras["inds"]]
    np.testing.assert_array_equal(train.recon_data, expected)
    np.testing.assert_array_equal(session.splits["test"].extras["inds"], np.arange(4))


def test_nlb_forward_tensor_with_wrong_neurons_raises_naming_key(tmp_path):
    path = write_nlb(tmp_path / "bad_nlb.h5", train_spikes_heldout_forward=np.zeros((10, 2, 3), np.float32))
    with pytest.raises(LFADSDataError, match=r"bad_nlb\.h5: 'train_spikes_heldout_forward' has shape \(10, 2, 3\)"):
        load_nlb_h5(path)


def test_nlb_eval_tensor_with_wrong_bins_raises_naming_key(tmp_path):
    path = write_nlb(tmp_path / "bad_nlb.h5", eval_spikes_heldin=np.zeros((4, 5, 3), np.float32))
    with pytest.raises(LFADSDataError, match=r"'eval_spikes_heldin' has shape \(4, 5, 3\)"):
        load_nlb_h5(path)


def test_nlb_spikes_with_nan_raise_at_load(tmp_path):
    heldout = np.ones((10, 6, 2), np.float32)
    heldout[2, 3, 1] = np.nan
    path = write_nlb(tmp_path / "nan_nlb.h5", train_spikes_heldout=heldout)
    with pytest.raises(LFADSDataError, match=r"nan_nlb\.h5: '(train|valid)_recon_data' holds 1 non-finite"):
        load_nlb_h5(path)


def test_eval_counts_join_heldin_heldout_and_forward_spikes_like_recon_data(tmp_path):
    from lfads.data.nlb import held_out_eval_counts

    rng = np.random.default_rng(1)
    extra = {name: rng.poisson(1.0, shape).astype(np.float32) for name, shape in
             (("eval_spikes_heldout", (4, 6, 2)), ("eval_spikes_heldin_forward", (4, 2, 3)),
              ("eval_spikes_heldout_forward", (4, 2, 2)))}
    path = write_nlb(tmp_path / "n.h5", **extra)
    test = load_nlb_h5(path).splits["test"]
    counts = held_out_eval_counts(test)
    assert counts.shape == (4, 8, 5)
    np.testing.assert_array_equal(counts[:, :6, :3], test.encod_data)
    np.testing.assert_array_equal(counts[:, :6, 3:], extra["eval_spikes_heldout"])
    np.testing.assert_array_equal(counts[:, 6:, :3], extra["eval_spikes_heldin_forward"])
    np.testing.assert_array_equal(counts[:, 6:, 3:], extra["eval_spikes_heldout_forward"])
    assert held_out_eval_counts(load_nlb_h5(write_nlb(tmp_path / "m.h5")).splits["test"]) is None


def test_eval_heldout_spikes_with_wrong_bins_raise_naming_key(tmp_path):
    from lfads.data.nlb import held_out_eval_counts

    path = write_nlb(tmp_path / "n.h5", eval_spikes_heldout=np.zeros((4, 5, 2), np.float32))
    with pytest.raises(LFADSDataError, match=r"'eval_spikes_heldout' has shape \(4, 5, 2\)"):
        held_out_eval_counts(load_nlb_h5(path).splits["test"])
