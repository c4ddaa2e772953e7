"""Reading, validating and writing the LFADS HDF5 layout."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from lfads.data.hdf5 import check_counts, load_lfads_h5, open_hdf5, save_h5_atomic, save_lfads_h5
from lfads.errors import LFADSDataError


def make_arrays(seed: int = 0, n_train: int = 20, n_valid: int = 10, n_test: int = 0, t_enc: int = 12,
                t_recon: int = 15, n_in: int = 5, n_recon: int = 7, ext_dim: int = 0, truth: bool = False) -> dict:
    """A valid LFADS-layout dict: Poisson counts, recon's first bins/neurons equal to encod."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        if n == 0 and split == "test":
            continue
        rates = rng.uniform(0.1, 2.0, size=(n, t_recon, n_recon)).astype(np.float32)
        recon = rng.poisson(rates).astype(np.float32)
        arrays[f"{split}_recon_data"] = recon
        arrays[f"{split}_encod_data"] = recon[:, :t_enc, :n_in].copy()
        if ext_dim:
            arrays[f"{split}_ext_input"] = rng.normal(size=(n, t_recon, ext_dim)).astype(np.float32)
        if truth:
            arrays[f"{split}_truth"] = rates
    return arrays


def test_round_trip_through_save_lfads_h5_is_exact(tmp_path):
    arrays = make_arrays(n_test=4, ext_dim=2, truth=True)
    arrays["train_conditions"] = np.arange(20, dtype=np.int64) % 3
    arrays["valid_conditions"] = np.arange(10, dtype=np.int64) % 3
    arrays["train_behavior"] = np.linspace(-1, 1, 20 * 12 * 2).reshape(20, 12, 2)
    arrays["neuron_ids"] = np.arange(7, dtype=np.int32)
    attrs = {"bin_size": 0.01, "description": "toy", "seed": 3, "conversion_factor": 2.5}
    src = save_h5_atomic(tmp_path / "sess_a.h5", arrays, attrs)

    first = load_lfads_h5(src)
    assert first.name == "sess_a"
    assert first.bin_size == 0.01
    assert first.attrs == {"bin_size": 0.01, "description": "toy", "seed": 3}
    for split in ("train", "valid", "test"):
        data = first.splits[split]
        np.testing.assert_array_equal(data.encod_data, arrays[f"{split}_encod_data"])
        np.testing.assert_array_equal(data.recon_data, arrays[f"{split}_recon_data"])
        np.testing.assert_array_equal(data.ext_input, arrays[f"{split}_ext_input"])
        np.testing.assert_allclose(data.truth, arrays[f"{split}_truth"] / 2.5, rtol=1e-6)
    np.testing.assert_array_equal(first.splits["train"].extras["conditions"], arrays["train_conditions"])
    assert first.splits["train"].extras["conditions"].dtype == np.int64
    np.testing.assert_array_equal(first.splits["train"].extras["behavior"], arrays["train_behavior"])
    assert first.splits["test"].extras == {}
    np.testing.assert_array_equal(first.extras["neuron_ids"], arrays["neuron_ids"])

    second = load_lfads_h5(save_lfads_h5(tmp_path / "copy" / "sess_a.h5", first))
    assert second.attrs == first.attrs and second.bin_size == first.bin_size
    assert set(second.splits) == set(first.splits)
    for split, data in first.splits.items():
        other = second.splits[split]
        for field in ("encod_data", "recon_data", "ext_input", "truth"):
            np.testing.assert_array_equal(getattr(other, field), getattr(data, field))
        assert set(other.extras) == set(data.extras)
        for key, value in data.extras.items():
            np.testing.assert_array_equal(other.extras[key], value)
            assert other.extras[key].dtype == value.dtype
    np.testing.assert_array_equal(second.extras["neuron_ids"], first.extras["neuron_ids"])


def test_save_lfads_h5_writes_a_dict_that_loads_back_identically(tmp_path):
    arrays = make_arrays(seed=4)
    path = save_lfads_h5(tmp_path / "d.h5", arrays, {"bin_size": 0.02})
    session = load_lfads_h5(path)
    for key, value in arrays.items():
        split, field = key.split("_", 1)
        np.testing.assert_array_equal(getattr(session.splits[split], field), value)
    assert session.bin_size == 0.02


def test_conversion_factor_attribute_turns_truth_into_counts_per_bin(tmp_path):
    arrays = make_arrays(truth=True)
    arrays["train_truth"] = np.full_like(arrays["train_truth"], 30.0)  # 30 Hz
    save_h5_atomic(tmp_path / "a.h5", arrays, {"conversion_factor": 100.0})  # 10 ms bins: counts = rate / 100
    session = load_lfads_h5(tmp_path / "a.h5")
    np.testing.assert_allclose(session.splits["train"].truth, 0.3, rtol=1e-6)
    assert "conversion_factor" not in session.attrs


def test_conversion_factor_dataset_is_applied_like_the_attribute(tmp_path):
    arrays = make_arrays(truth=True)
    arrays["conversion_factor"] = np.float64(4.0)
    save_h5_atomic(tmp_path / "a.h5", arrays)
    session = load_lfads_h5(tmp_path / "a.h5")
    np.testing.assert_allclose(session.splits["valid"].truth, arrays["valid_truth"] / 4.0, rtol=1e-6)
    assert "conversion_factor" not in session.extras


def test_truth_without_conversion_factor_is_kept_as_counts(tmp_path):
    arrays = make_arrays(truth=True)
    save_h5_atomic(tmp_path / "a.h5", arrays)
    np.testing.assert_array_equal(load_lfads_h5(tmp_path / "a.h5").splits["train"].truth, arrays["train_truth"])


def test_missing_ext_input_becomes_zero_channels_over_recon_time(tmp_path):
    save_h5_atomic(tmp_path / "a.h5", make_arrays(n_test=3))
    session = load_lfads_h5(tmp_path / "a.h5")
    assert session.splits["train"].ext_input.shape == (20, 15, 0)
    assert session.splits["test"].ext_input.shape == (3, 15, 0)
    assert session.ext_input_dim == 0
    assert (session.encod_seq_len, session.encod_data_dim, session.recon_seq_len, session.recon_data_dim) == \
        (12, 5, 15, 7)


def test_test_split_without_recon_data_loads_with_none(tmp_path):
    arrays = make_arrays(n_test=3)
    del arrays["test_recon_data"]
    save_h5_atomic(tmp_path / "a.h5", arrays)
    session = load_lfads_h5(tmp_path / "a.h5")
    assert session.splits["test"].recon_data is None
    assert session.splits["test"].ext_input.shape == (3, 15, 0)


def _break_missing_key(a):
    del a["valid_recon_data"]


def _break_rank(a):
    a["train_encod_data"] = a["train_encod_data"][:, :, 0]


def _break_neurons_between_splits(a):
    a["valid_encod_data"] = a["valid_encod_data"][:, :, :4]


def _break_time_between_splits(a):
    a["valid_recon_data"] = a["valid_recon_data"][:, :14]


def _break_recon_shorter_than_encod(a):
    for split in ("train", "valid"):
        a[f"{split}_recon_data"] = a[f"{split}_recon_data"][:, :10]


def _break_recon_fewer_neurons(a):
    for split in ("train", "valid"):
        a[f"{split}_recon_data"] = a[f"{split}_recon_data"][:, :, :4]


def _break_trial_count(a):
    a["train_recon_data"] = a["train_recon_data"][:19]


def _break_ext_time(a):
    a["train_ext_input"] = np.zeros((20, 12, 1), np.float32)
    a["valid_ext_input"] = np.zeros((10, 12, 1), np.float32)


def _break_ext_dim_between_splits(a):
    a["train_ext_input"] = np.zeros((20, 15, 1), np.float32)
    a["valid_ext_input"] = np.zeros((10, 15, 2), np.float32)


def _break_truth_shape(a):
    a["train_truth"] = np.ones((20, 15, 5), np.float32)


def _break_nan(a):
    a["train_recon_data"][3, 4, 5] = np.nan


def _break_inf(a):
    a["valid_encod_data"][1, 2, 3] = np.inf


def _break_empty_split(a):
    a["valid_encod_data"] = a["valid_encod_data"][:0]
    a["valid_recon_data"] = a["valid_recon_data"][:0]


def _break_extra_length(a):
    a["train_conditions"] = np.zeros(7, dtype=np.int64)


def _break_orphan_split(a):
    a["test_recon_data"] = a["train_recon_data"][:2]


@pytest.mark.parametrize(
    ("breaker", "key", "detail"),
    [
        (_break_missing_key, "valid_recon_data", "missing"),
        (_break_rank, "train_encod_data", "3-D"),
        (_break_neurons_between_splits, "valid_encod_data", "(10, 12, 4)"),
        (_break_time_between_splits, "valid_recon_data", "(10, 14, 7)"),
        (_break_recon_shorter_than_encod, "train_recon_data", "10 time bins"),
        (_break_recon_fewer_neurons, "train_recon_data", "4 neurons"),
        (_break_trial_count, "train_recon_data", "19 trials"),
        (_break_ext_time, "train_ext_input", "(20, 12, 1)"),
        (_break_ext_dim_between_splits, "valid_ext_input", "2 channels"),
        (_break_truth_shape, "train_truth", "(20, 15, 5)"),
        (_break_nan, "train_recon_data", "(3, 4, 5)"),
        (_break_inf, "valid_encod_data", "(1, 2, 3)"),
        (_break_empty_split, "valid_encod_data", "0 trials"),
        (_break_extra_length, "train_conditions", "(7,)"),
        (_break_orphan_split, "test_encod_data", "no 'test_encod_data'"),
    ],
)
def test_layout_violation_raises_error_naming_file_and_key(tmp_path, breaker, key, detail):
    arrays = make_arrays()
    breaker(arrays)
    path = save_h5_atomic(tmp_path / "broken_session.h5", arrays)
    with pytest.raises(LFADSDataError) as info:
        load_lfads_h5(path)
    message = str(info.value)
    assert "broken_session.h5" in message and f"'{key}'" in message and detail in message


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(LFADSDataError, match="not found"):
        load_lfads_h5(tmp_path / "nope.h5")


def test_non_hdf5_file_raises_data_error(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LFADSDataError, match="not an HDF5 file"):
        load_lfads_h5(path)


def test_open_hdf5_tells_a_foreign_file_from_a_truncated_one_and_names_it(tmp_path):
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f["x"] = np.arange(100_000, dtype=np.float64)
    truncated, foreign = tmp_path / "cut.h5", tmp_path / "notes.h5"
    truncated.write_bytes(good.read_bytes()[:4000])
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(LFADSDataError, match=r"^--in .*cut\.h5: cannot be opened as HDF5; the file is truncated"):
        open_hdf5(truncated, label="--in")
    with pytest.raises(LFADSDataError, match=r"notes\.h5: is not an HDF5 file .* Write it again\.$"):
        open_hdf5(foreign, "Write it again.")
    with open_hdf5(good) as f:
        assert f["x"].shape == (100_000,)


def test_check_counts_accepts_poisson_counts(tmp_path):
    check_counts(load_lfads_h5(save_h5_atomic(tmp_path / "a.h5", make_arrays())))


def test_check_counts_reports_first_negative_value(tmp_path):
    arrays = make_arrays()
    arrays["valid_recon_data"][2, 13, 6] = -1.0  # a recon-only bin: encod stays valid
    arrays["valid_recon_data"][4, 0, 0] = -3.0
    session = load_lfads_h5(save_h5_atomic(tmp_path / "neg.h5", arrays))
    with pytest.raises(LFADSDataError) as info:
        check_counts(session)
    message = str(info.value)
    assert "neg.h5" in message and "'valid_recon_data'" in message
    assert "-1.0" in message and "(2, 13, 6)" in message


def test_check_counts_reports_first_non_integer_value(tmp_path):
    arrays = make_arrays()
    arrays["train_encod_data"][0, 1, 2] = 0.5
    session = load_lfads_h5(save_h5_atomic(tmp_path / "frac.h5", arrays))
    with pytest.raises(LFADSDataError) as info:
        check_counts(session)
    message = str(info.value)
    assert "frac.h5" in message and "'train_encod_data'" in message
    assert "0.5" in message and "(0, 1, 2)" in message


def test_save_lfads_h5_refuses_invalid_data_and_writes_nothing(tmp_path):
    arrays = make_arrays()
    arrays["train_encod_data"][0, 0, 0] = np.nan
    with pytest.raises(LFADSDataError, match="train_encod_data"):
        save_lfads_h5(tmp_path / "out.h5", arrays)
    assert os.listdir(tmp_path) == []


def test_loading_never_modifies_the_input_file(tmp_path):
    path = save_h5_atomic(tmp_path / "a.h5", make_arrays(truth=True), {"conversion_factor": 3.0})
    before = path.read_bytes()
    load_lfads_h5(path)
    assert path.read_bytes() == before
    with h5py.File(path, "r") as f:
        assert f.attrs["conversion_factor"] == 3.0


# ---------------------------------------------------------------------------- split names and session names

@pytest.mark.parametrize("key, suggestion", [
    ("tset_encod_data", "test_encod_data"),
    ("vaild_recon_data", "valid_recon_data"),
    ("validation_encod_data", "valid_encod_data"),
    ("trian_truth", "train_truth"),
    ("vaild_recon_dat", "valid_recon_data"),
])
def test_a_key_with_a_misspelt_split_prefix_is_an_error_listing_the_splits(tmp_path, key, suggestion):
    arrays = make_arrays(n_test=3)
    arrays[key] = arrays["valid_recon_data"].copy()
    path = save_h5_atomic(tmp_path / "typo.h5", arrays)
    before = path.read_bytes()
    with pytest.raises(LFADSDataError) as info:
        load_lfads_h5(path)
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message and suggestion in message
    assert "['train', 'valid', 'test']" in message  # the splits the file holds
    assert path.read_bytes() == before


def test_a_data_field_under_an_unknown_prefix_is_an_error(tmp_path):
    arrays = make_arrays()
    arrays["heldout_recon_data"] = arrays["valid_recon_data"].copy()
    with pytest.raises(LFADSDataError, match=r"unknown split 'heldout'.*\['train', 'valid'\]"):
        load_lfads_h5(save_h5_atomic(tmp_path / "a.h5", arrays))


def test_a_misspelt_data_field_under_a_real_split_is_an_error(tmp_path):
    arrays = make_arrays(ext_dim=2)
    arrays["train_ext_inputs"] = arrays.pop("train_ext_input")
    with pytest.raises(LFADSDataError, match=r"'train_ext_inputs' looks like 'train_ext_input' misspelt"):
        load_lfads_h5(save_h5_atomic(tmp_path / "a.h5", arrays))


def test_extras_whose_names_resemble_no_split_and_field_are_kept(tmp_path):
    arrays = make_arrays()
    arrays["trial_info"] = np.arange(4)  # "trial" is close to "train", "info" to no data field
    arrays["train_conditions"] = np.arange(20)
    arrays["neuron_ids"] = np.arange(7)
    arrays["train_encod_data_raw"] = arrays["train_encod_data"].copy()
    session = load_lfads_h5(save_h5_atomic(tmp_path / "a.h5", arrays))
    assert sorted(session.extras) == ["neuron_ids", "trial_info"]
    assert sorted(session.splits["train"].extras) == ["conditions", "encod_data_raw"]


@pytest.mark.parametrize("file_name, session_name", [("..h5", "."), (".h5", ""), ("...hdf5", "..")])
def test_a_file_name_giving_an_empty_or_dot_only_session_is_an_error(tmp_path, file_name, session_name):
    path = save_h5_atomic(tmp_path / file_name, make_arrays())
    with pytest.raises(LFADSDataError) as info:
        load_lfads_h5(path)
    message = str(info.value)
    assert str(path) in message and f"session name {session_name!r}" in message and "rename the file" in message


@pytest.mark.parametrize("file_name, session_name", [("a.h5", "a"), ("a..h5", "a."), (".hidden.h5", ".hidden"),
                                                     ("run.2.H5", "run.2"), ("x.hdf5", "x")])
def test_ordinary_file_names_give_their_stem_as_session_name(tmp_path, file_name, session_name):
    assert load_lfads_h5(save_h5_atomic(tmp_path / file_name, make_arrays())).name == session_name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_session_cannot_be_made_with_an_unusable_name(name):
    from lfads.data.hdf5 import build_session

    with pytest.raises(LFADSDataError, match="session name"):
        build_session(make_arrays(), path="mem.h5", name=name)


def test_requested_splits_are_checked_against_the_splits_present():
    from lfads.data.batch import check_splits

    assert check_splits(["train", "valid"], ["train", "valid", "test"]) == ("train", "valid")
    with pytest.raises(LFADSDataError, match=r"--splits: unknown split 'tset' \(did you mean 'test'\?\); the data "
                                             r"hold the splits \['train', 'valid'\]"):
        check_splits(["tset"], ["valid", "train"])
    with pytest.raises(LFADSDataError, match=r"split 'test' is not in the data; it holds the splits \['train'"):
        check_splits(["test"], ["train", "valid"])
    with pytest.raises(LFADSDataError, match="--splits is empty"):
        check_splits([], ["train", "valid"])


def test_an_nlb_file_named_dot_dot_h5_is_an_error_saying_to_rename_it(tmp_path):
    from lfads.data.nlb import load_nlb_h5

    rng = np.random.default_rng(0)
    arrays = {"train_spikes_heldin": rng.poisson(1.0, (10, 6, 3)).astype(np.float32),
              "train_spikes_heldout": rng.poisson(1.0, (10, 6, 2)).astype(np.float32),
              "eval_spikes_heldin": rng.poisson(1.0, (4, 6, 3)).astype(np.float32)}
    assert load_nlb_h5(save_h5_atomic(tmp_path / "nlb.h5", arrays)).name == "nlb"
    with pytest.raises(LFADSDataError, match=r"session name '\.'.*rename the file"):
        load_nlb_h5(save_h5_atomic(tmp_path / "..h5", arrays))
