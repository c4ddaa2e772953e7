"""The Lightning data module: session loading, cross-session checks, sample-validation masks, dataloaders."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from pytorch_lightning.utilities.combined_loader import CombinedLoader

from lfads.data import LFADSDataModule, SessionBatch
from lfads.data.hdf5 import save_h5_atomic
from lfads.errors import LFADSDataError


def write_session(path, n_train=45, n_valid=23, n_test=0, t_enc=10, t_recon=13, n_in=4, n_recon=6, ext_dim=1,
                  seed=0, truth=False, counts=True):
    """Write one LFADS-layout session. ``ext_input[..., 0]`` holds the trial's index within its split, so a batch
    tells which trials it holds."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        if n == 0:
            continue
        rates = rng.uniform(0.2, 3.0, size=(n, t_recon, n_recon)).astype(np.float32)
        recon = rng.poisson(rates).astype(np.float32) if counts else rates
        arrays[f"{split}_recon_data"] = recon
        arrays[f"{split}_encod_data"] = recon[:, :t_enc, :n_in].copy()
        if ext_dim:
            ext = np.zeros((n, t_recon, ext_dim), np.float32)
            ext[..., 0] = np.arange(n, dtype=np.float32)[:, None]
            arrays[f"{split}_ext_input"] = ext
        if truth:
            arrays[f"{split}_truth"] = rates
    return save_h5_atomic(path, arrays, {"bin_size": 0.01})


def trial_ids(batch: SessionBatch) -> list[int]:
    return batch.ext_input[:, 0, 0].long().tolist()


def test_dimensions_of_two_sessions_with_different_neurons(tmp_path):
    write_session(tmp_path / "b.h5", n_in=4, n_recon=6)
    write_session(tmp_path / "a.h5", n_in=3, n_recon=8, seed=1)
    dm = LFADSDataModule(str(tmp_path / "*.h5"), batch_size=10)
    assert dm.session_names == ["a", "b"]  # glob sorted
    assert dm.encod_data_dims == [3, 4]
    assert dm.recon_data_dims == [8, 6]
    assert (dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim, dm.bin_size) == (10, 13, 1, 0.01)
    assert [s.name for s in dm.sessions] == ["a", "b"]
    assert dm.hparams.batch_size == 10 and dm.hparams.data_paths == str(tmp_path / "*.h5")


def test_list_of_paths_keeps_the_given_order(tmp_path):
    write_session(tmp_path / "a.h5")
    write_session(tmp_path / "b.h5")
    dm = LFADSDataModule([str(tmp_path / "b.h5"), str(tmp_path / "a.h5")], batch_size=10)
    assert dm.session_names == ["b", "a"]


def test_glob_matching_nothing_raises(tmp_path):
    with pytest.raises(LFADSDataError, match=r"glob .*nothing_\*\.h5.* matches no file"):
        LFADSDataModule(str(tmp_path / "nothing_*.h5"))


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(LFADSDataError, match=r"absent\.h5: file not found"):
        LFADSDataModule(str(tmp_path / "absent.h5"))


def test_non_hdf5_file_raises_naming_it(tmp_path):
    (tmp_path / "notes.h5").write_text("not data")
    with pytest.raises(LFADSDataError, match=r"notes\.h5: not an HDF5 file"):
        LFADSDataModule(str(tmp_path / "notes.h5"))


def test_same_file_listed_twice_raises(tmp_path):
    path = str(write_session(tmp_path / "a.h5"))
    with pytest.raises(LFADSDataError, match="listed twice"):
        LFADSDataModule([path, path], batch_size=10)


@pytest.mark.parametrize(("kwargs", "what"), [({"t_enc": 9}, "T_enc"), ({"t_recon": 14}, "T_recon"),
                                              ({"ext_dim": 2}, "ext_dim")])
def test_sessions_disagreeing_in_shared_dims_raise_naming_both_files(tmp_path, kwargs, what):
    write_session(tmp_path / "first.h5")
    write_session(tmp_path / "second.h5", **kwargs)
    with pytest.raises(LFADSDataError) as info:
        LFADSDataModule(str(tmp_path / "*.h5"), batch_size=10)
    message = str(info.value)
    assert "first.h5" in message and "second.h5" in message and what in message


def test_valid_split_smaller_than_batch_size_raises_with_a_suggestion(tmp_path):
    write_session(tmp_path / "small.h5", n_train=45, n_valid=23)
    with pytest.raises(LFADSDataError) as info:
        LFADSDataModule(str(tmp_path / "small.h5"), batch_size=30)
    message = str(info.value)
    assert "small.h5" in message and "valid" in message and "23 trials" in message and "batch_size <= 23" in message


def test_sv_mask_holds_out_the_requested_fraction_and_is_reproducible(tmp_path):
    write_session(tmp_path / "a.h5", n_train=200, n_valid=50, t_enc=20, t_recon=20, n_in=10, n_recon=10)
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10, sv_rate=0.3, sv_seed=7)
    mask = dm.get_sv_mask(0, "train")
    assert mask.shape == (200, 20, 10) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    # 40000 Bernoulli(0.7) elements: the held-out fraction has sd 0.0023
    assert abs(1.0 - mask.mean().item() - 0.3) < 0.015
    again = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10, sv_rate=0.3, sv_seed=7)
    assert torch.equal(again.get_sv_mask(0, "train"), mask)
    assert torch.equal(again.get_sv_mask(0, "valid"), dm.get_sv_mask(0, "valid"))
    other = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10, sv_rate=0.3, sv_seed=8)
    assert not torch.equal(other.get_sv_mask(0, "train"), mask)
    assert not torch.equal(dm.get_sv_mask(0, "valid"), mask[:50])


def test_sv_mask_is_all_ones_without_sample_validation(tmp_path):
    write_session(tmp_path / "a.h5")
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    batch = next(iter(dm.val_dataloader()))[0][0]
    assert torch.equal(batch.sv_mask, torch.ones(10, 10, 4))


def test_batches_carry_the_mask_rows_of_their_trials(tmp_path):
    write_session(tmp_path / "a.h5")
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10, sv_rate=0.5)
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))[0][0]
    ids = trial_ids(batch)
    assert torch.equal(batch.sv_mask, dm.get_sv_mask(0, "train")[ids])
    assert torch.equal(batch.encod_data, torch.from_numpy(dm.sessions[0].splits["train"].encod_data[ids]))


def test_train_loader_shuffles_and_drops_the_last_partial_batch(tmp_path):
    write_session(tmp_path / "a.h5", n_train=45)
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    loader = dm.train_dataloader()
    assert isinstance(loader, CombinedLoader)
    torch.manual_seed(0)
    batches = [b for b, _, _ in loader]
    assert len(batches) == 4  # 45 trials // 10
    seen = []
    for batch in batches:
        assert set(batch) == {0}
        sb = batch[0]
        assert isinstance(sb, SessionBatch)
        assert sb.encod_data.shape == (10, 10, 4) and sb.recon_data.shape == (10, 13, 6)
        assert sb.ext_input.shape == (10, 13, 1) and sb.sv_mask.shape == (10, 10, 4)
        assert sb.truth is None
        assert sb.encod_data.dtype == torch.float32
        seen += trial_ids(sb)
    assert len(set(seen)) == 40 and set(seen) <= set(range(45))
    assert seen != sorted(seen)
    torch.manual_seed(1)
    assert [i for b, _, _ in loader for i in trial_ids(b[0])] != seen


def test_val_loader_keeps_order_and_the_last_partial_batch(tmp_path):
    write_session(tmp_path / "a.h5", n_valid=23, truth=True)
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    batches = [b[0] for b, _, _ in dm.val_dataloader()]
    assert [len(trial_ids(b)) for b in batches] == [10, 10, 3]
    assert [i for b in batches for i in trial_ids(b)] == list(range(23))
    valid = dm.sessions[0].splits["valid"]
    np.testing.assert_array_equal(torch.cat([b.recon_data for b in batches]).numpy(), valid.recon_data)
    np.testing.assert_array_equal(torch.cat([b.truth for b in batches]).numpy(), valid.truth)


def test_multi_session_loaders_yield_dicts_keyed_by_session(tmp_path):
    write_session(tmp_path / "a.h5", n_train=45, n_valid=23, n_in=3, n_recon=5)
    write_session(tmp_path / "b.h5", n_train=25, n_valid=12, n_in=4, n_recon=7)
    dm = LFADSDataModule(str(tmp_path / "*.h5"), batch_size=10)
    train = [b for b, _, _ in dm.train_dataloader()]
    assert len(train) == 4  # max over sessions of 45//10 and 25//10, the shorter cycled
    for batch in train:
        assert set(batch) == {0, 1}
        assert batch[0].encod_data.shape == (10, 10, 3) and batch[1].encod_data.shape == (10, 10, 4)
        assert batch[0].recon_data.shape == (10, 13, 5) and batch[1].recon_data.shape == (10, 13, 7)
    valid = [b for b, _, _ in dm.val_dataloader()]
    assert len(valid) == 3
    assert [None if b[1] is None else len(trial_ids(b[1])) for b in valid] == [10, 2, None]
    assert [len(trial_ids(b[0])) for b in valid] == [10, 10, 3]


def test_split_dataloader_returns_every_trial_in_order(tmp_path):
    write_session(tmp_path / "a.h5", n_train=45, n_test=7)
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    train = list(dm.split_dataloader(0, "train"))
    assert [i for b in train for i in trial_ids(b)] == list(range(45))
    test = list(dm.split_dataloader(0, "test", batch_size=4))
    assert [len(trial_ids(b)) for b in test] == [4, 3]
    assert all(isinstance(b, SessionBatch) for b in test)


def test_split_dataloader_gives_none_recon_for_a_split_without_recon(tmp_path):
    path = write_session(tmp_path / "a.h5", n_test=5)
    with h5py.File(path, "a") as f:
        del f["test_recon_data"]
    dm = LFADSDataModule(str(path), batch_size=10)
    batch = next(iter(dm.split_dataloader(0, "test")))
    assert batch.recon_data is None and batch.encod_data.shape == (5, 10, 4) and batch.ext_input.shape == (5, 13, 1)


def test_split_dataloader_rejects_absent_split_and_session(tmp_path):
    write_session(tmp_path / "a.h5")
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    with pytest.raises(LFADSDataError, match="no 'test' split"):
        dm.split_dataloader(0, "test")
    with pytest.raises(LFADSDataError, match="out of range"):
        dm.split_dataloader(1, "train")


def test_require_counts_rejects_non_integer_data(tmp_path):
    write_session(tmp_path / "ok.h5")
    LFADSDataModule(str(tmp_path / "ok.h5"), batch_size=10).require_counts()
    write_session(tmp_path / "rates.h5", counts=False)
    dm = LFADSDataModule(str(tmp_path / "rates.h5"), batch_size=10)
    with pytest.raises(LFADSDataError, match=r"rates\.h5: 'train_encod_data' has non-integer value"):
        dm.require_counts()


def test_dataset_indexes_single_trials_without_batch_axis(tmp_path):
    write_session(tmp_path / "a.h5")
    dm = LFADSDataModule(str(tmp_path / "a.h5"), batch_size=10)
    item = dm.split_dataloader(0, "train").dataset[3]
    assert item.encod_data.shape == (10, 4) and item.recon_data.shape == (13, 6) and item.ext_input[0, 0] == 3


def test_split_data_names_the_file_for_a_missing_split_and_the_sessions_for_a_bad_index(small_lorenz):
    dm = LFADSDataModule(str(small_lorenz), batch_size=8)
    assert dm.split_data(0, "valid") is dm.sessions[0].splits["valid"]
    assert dm.split_data(-1, "train") is dm.sessions[0].splits["train"]
    with pytest.raises(LFADSDataError, match=r"lorenz_small\.h5: no 'vaild' split \(it has \['train', 'valid'\]\)"):
        dm.split_data(0, "vaild")
    out_of_range = r"session index 3 out of range: give an index from 0 to 0 \(the sessions are \["
    with pytest.raises(LFADSDataError, match=out_of_range):
        dm.split_data(3, "valid")
