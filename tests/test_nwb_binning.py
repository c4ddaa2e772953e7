"""Binning NWB spikes into the LFADS layout: counts against hand-computed values and independent loops."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from nwb_helpers import REAL_NWB, count_by_loop, sha256, write_nwb

from lfads.data.nwb import NWBBinning, NWBDropWarning, bin_nwb, convert_nwb_to_lfads, load_nwb_session


def _bin_quietly(path, binning):
    """bin_nwb, failing the test on any drop warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", NWBDropWarning)
        return bin_nwb(path, binning)


def _all_splits(arrays, key):
    """Concatenate ``{split}_{key}`` over splits, ordered by trial id."""
    splits = [s for s in ("train", "valid", "test") if f"{s}_{key}" in arrays]
    ids = np.concatenate([arrays[f"{s}_trial_ids"] for s in splits])
    values = np.concatenate([arrays[f"{s}_{key}"] for s in splits])
    order = np.argsort(ids)
    return ids[order], values[order]


def test_spike_on_a_bin_edge_counts_in_the_bin_that_starts_there(tmp_path):
    # trial 0: window [0.05, 0.75) s; trial 1: window [1.10, 1.80) s; 5 ms bins, 140 per window
    unit = [0.05, 0.0549999, 0.055, 0.7499, 0.75, 1.1, 1.105, 1.2, 1.3, 1.795, 1.8]
    path = write_nwb(tmp_path / "edges.nwb", [unit, [0.01, 1.95]],
                     {"start_time": [0.0, 1.0], "stop_time": [0.9, 2.0], "move_onset_time": [0.3, 1.35]})
    arrays = _bin_quietly(path, NWBBinning(heldout_column=None, split_column=None, valid_fraction=0.5, seed=0))
    ids, counts = _all_splits(arrays, "recon_data")
    assert ids.tolist() == [0, 1]
    expected = np.zeros((2, 140, 2), dtype=np.float32)
    expected[0, 0, 0] = 2  # 0.05 (on the first edge) and 0.0549999
    expected[0, 1, 0] = 1  # 0.055: on the edge between bins 0 and 1
    expected[0, 139, 0] = 1  # 0.7499; 0.75 is the window's end and is not counted
    expected[1, 0, 0] = 1  # 1.1
    expected[1, 1, 0] = 1  # 1.105 = 1.35 - 0.245: on an edge computed from the event time
    expected[1, 20, 0] = 1  # 1.2
    expected[1, 40, 0] = 1  # 1.3
    expected[1, 139, 0] = 1  # 1.795; 1.8 is the end
    np.testing.assert_array_equal(counts, expected)
    assert float(arrays["bin_size"]) == 0.005 and float(arrays["window_start"]) == -0.25


def test_forward_bins_extend_recon_but_not_encod(tmp_path):
    path = write_nwb(tmp_path / "fwd.nwb", [[0.75, 0.7549, 0.7551]],
                     {"start_time": [0.0, 1.0], "stop_time": [0.9, 2.0], "move_onset_time": [0.3, 1.35]})
    arrays = _bin_quietly(path, NWBBinning(heldout_column=None, split_column=None, valid_fraction=0.5,
                                           forward_bins=3))
    ids, recon = _all_splits(arrays, "recon_data")
    _, encod = _all_splits(arrays, "encod_data")
    assert recon.shape == (2, 143, 1) and encod.shape == (2, 140, 1)
    np.testing.assert_array_equal(recon[0, 140:, 0], [2, 1, 0])  # 0.75 and 0.7549 | 0.7551 | -
    np.testing.assert_array_equal(recon[:, :140], encod)


def test_counts_equal_an_independent_loop_on_random_spikes(tmp_path):
    rng = np.random.default_rng(3)
    units = [np.sort(rng.uniform(0.0, 20.0, size=rng.integers(50, 400))) for _ in range(5)]
    align = np.sort(rng.uniform(1.0, 18.0, size=10))
    path = write_nwb(tmp_path / "rand.nwb", units,
                     {"start_time": align - 0.5, "stop_time": align + 0.5, "go": align})
    binning = NWBBinning(align_event="go", window_ms=(-200.0, 300.0), bin_ms=10.0, forward_bins=5,
                         heldout_column=None, split_column=None, valid_fraction=0.3)
    arrays = _bin_quietly(path, binning)
    ids, recon = _all_splits(arrays, "recon_data")
    assert ids.tolist() == list(range(10))
    for j in range(10):
        for u in range(5):
            np.testing.assert_array_equal(recon[j, :, u], count_by_loop(units[u], align[j] - 0.2, 55, 0.01))
    _, align_times = _all_splits(arrays, "align_times")
    np.testing.assert_array_equal(align_times, align)


def test_windows_outside_the_recording_are_dropped_with_a_count(tmp_path):
    spikes = [[0.05, 1.2, 2.6, 2.95], [0.2, 2.9]]
    trials = {"start_time": [0.0, 1.0, 2.5, 2.8], "stop_time": [0.8, 1.8, 3.0, 2.9]}
    path = write_nwb(tmp_path / "extent.nwb", spikes, trials)
    # windows [0, .5), [1, 1.5), [2.5, 3.0) fit exactly; [2.8, 3.3) ends after the recording (3.0 s)
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 4 trials.*outside the recording"):
        arrays = bin_nwb(path, NWBBinning(align_event="start_time", window_ms=(0.0, 500.0), heldout_column=None,
                                          split_column=None, valid_fraction=0.34))
    ids, recon = _all_splits(arrays, "recon_data")
    assert ids.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(recon.sum(axis=1), [[1, 1], [1, 0], [2, 1]])
    # shifting the window 100 ms earlier puts trial 0 before the session start
    with pytest.warns(NWBDropWarning, match=r"dropped 2 of 4 trials"):
        arrays = bin_nwb(path, NWBBinning(align_event="start_time", window_ms=(-100.0, 400.0), heldout_column=None,
                                          split_column=None, valid_fraction=0.5))
    assert _all_splits(arrays, "recon_data")[0].tolist() == [1, 2]


def test_windows_outside_obs_intervals_are_dropped_and_abutting_intervals_merge(tmp_path):
    starts = [0.5, 1.8, 2.0, 3.0, 4.8, 1.5]
    spikes = [[0.6, 3.1, 4.9, 9.9], [0.7, 5.1, 9.8]]
    obs = [[[0.0, 2.0], [3.0, 10.0]], [[0.0, 5.0], [5.0, 10.0]]]
    path = write_nwb(tmp_path / "obs.nwb", spikes,
                     {"start_time": starts, "stop_time": [s + 0.5 for s in starts]}, obs_intervals=obs)
    with pytest.warns(NWBDropWarning, match=r"dropped 2 of 6 trials.*obs_intervals.*\{0: 2\}"):
        arrays = bin_nwb(path, NWBBinning(align_event="start_time", window_ms=(0.0, 500.0), heldout_column=None,
                                          split_column=None, valid_fraction=0.25))
    ids, recon = _all_splits(arrays, "recon_data")
    # [1.8, 2.3) crosses unit 0's gap and [2.0, 2.5) lies in it; [1.5, 2.0) ends exactly where unit 0's
    # interval ends; [4.8, 5.3) spans unit 1's two abutting intervals
    assert ids.tolist() == [0, 3, 4, 5]
    np.testing.assert_array_equal(recon.sum(axis=1), [[1, 1], [1, 0], [1, 1], [0, 0]])


def test_heldout_units_come_after_heldin_units_in_recon(tmp_path):
    spikes = [[0.1] * (u + 1) for u in range(4)]  # unit u has u + 1 spikes in the window
    path = write_nwb(tmp_path / "held.nwb", spikes, {"start_time": [0.0, 0.5], "stop_time": [0.4, 0.9]},
                     unit_columns={"heldout": [False, True, False, True]})
    arrays = _bin_quietly(path, NWBBinning(align_event="start_time", window_ms=(0.0, 300.0), split_column=None,
                                           valid_fraction=0.5))
    ids, recon = _all_splits(arrays, "recon_data")
    np.testing.assert_array_equal(recon[0].sum(axis=0), [1, 3, 2, 4])
    assert arrays["heldin_unit_ids"].tolist() == [0, 2] and arrays["heldout_unit_ids"].tolist() == [1, 3]
    _, encod = _all_splits(arrays, "encod_data")
    np.testing.assert_array_equal(encod, recon[:, :, :2])


def test_random_heldout_fraction_is_seeded(tmp_path):
    spikes = [[0.1 + 0.01 * u] for u in range(10)]
    path = write_nwb(tmp_path / "frac.nwb", spikes, {"start_time": [0.0, 0.5], "stop_time": [0.4, 0.9]})
    picks = []
    for seed in (0, 0, 1, 2, 3):
        arrays = _bin_quietly(path, NWBBinning(align_event="start_time", window_ms=(0.0, 300.0), split_column=None,
                                               valid_fraction=0.5, heldout_fraction=0.3, seed=seed))
        assert arrays["heldout_unit_ids"].size == 3 and arrays["train_encod_data"].shape[2] == 7
        assert sorted(arrays["heldin_unit_ids"].tolist() + arrays["heldout_unit_ids"].tolist()) == list(range(10))
        picks.append(tuple(arrays["heldout_unit_ids"]))
    assert picks[0] == picks[1]
    assert len(set(picks)) > 1


def test_split_column_labels_map_to_splits_and_none_is_dropped(tmp_path):
    n = 6
    path = write_nwb(tmp_path / "split.nwb", [[0.05 + j for j in range(n)]],
                     {"start_time": [float(j) for j in range(n)], "stop_time": [j + 0.5 for j in range(n)],
                      "split": ["train", "val", "test", "none", "TRAIN", "validation"]})
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 6 trials.*'none'"):
        arrays = bin_nwb(path, NWBBinning(align_event="start_time", window_ms=(0.0, 100.0), heldout_column=None))
    assert arrays["train_trial_ids"].tolist() == [0, 4]
    assert arrays["valid_trial_ids"].tolist() == [1, 5]
    assert arrays["test_trial_ids"].tolist() == [2]
    assert arrays["test_recon_data"].shape == (1, 20, 1) and arrays["test_recon_data"][0, 10, 0] == 1


def test_random_split_is_seeded_and_partitions_the_trials(tmp_path):
    n = 50
    path = write_nwb(tmp_path / "rsplit.nwb", [[0.05 + j for j in range(n)]],
                     {"start_time": [float(j) for j in range(n)], "stop_time": [j + 0.5 for j in range(n)]})
    binning = NWBBinning(align_event="start_time", window_ms=(0.0, 100.0), heldout_column=None, split_column=None,
                         valid_fraction=0.2, test_fraction=0.1, seed=7)
    first, again = _bin_quietly(path, binning), _bin_quietly(path, binning)
    sizes = [first[f"{s}_trial_ids"].size for s in ("train", "valid", "test")]
    assert sizes == [35, 10, 5]
    assert sorted(np.concatenate([first[f"{s}_trial_ids"] for s in ("train", "valid", "test")])) == list(range(n))
    for s in ("train", "valid", "test"):
        np.testing.assert_array_equal(first[f"{s}_trial_ids"], again[f"{s}_trial_ids"])
        assert np.all(np.diff(first[f"{s}_trial_ids"]) > 0)


def test_behavior_is_averaged_within_bins_or_interpolated_at_centres(tmp_path):
    t_fast = np.arange(3000) / 1000.0
    trials = {"start_time": [0.4, 1.4], "stop_time": [0.8, 1.8], "go": [0.6, 1.6]}
    binning = NWBBinning(align_event="go", window_ms=(-100.0, 100.0), heldout_column=None, split_column=None,
                         valid_fraction=0.5, behavior="hand_vel")
    # 1 kHz: each 5 ms bin averages the samples at its start + 0, 1, 2, 3, 4 ms
    path = write_nwb(tmp_path / "fast.nwb", [[0.1, 2.9]], trials,
                     behavior={"name": "hand_vel", "data": np.stack([t_fast, 2 * t_fast], 1), "rate": 1000.0,
                               "starting_time": 0.0})
    _, beh = _all_splits(_bin_quietly(path, binning), "behavior")
    bin_starts = np.array([0.5, 1.5])[:, None] + 0.005 * np.arange(40)[None, :]
    np.testing.assert_allclose(beh[..., 0], bin_starts + 0.002, atol=1e-6)
    np.testing.assert_allclose(beh[..., 1], 2 * (bin_starts + 0.002), atol=1e-6)
    # 100 Hz: even bins hold one sample (at their start), odd bins none -> interpolated at the centre
    t_slow = np.arange(300) / 100.0
    path = write_nwb(tmp_path / "slow.nwb", [[0.1, 2.9]], trials,
                     behavior={"name": "hand_vel", "data": t_slow[:, None], "timestamps": t_slow})
    _, beh = _all_splits(_bin_quietly(path, binning), "behavior")
    expected = np.where(np.arange(40) % 2 == 0, bin_starts, bin_starts + 0.0025)
    np.testing.assert_allclose(beh[..., 0], expected, atol=1e-6)


def test_behavior_bin_of_only_nan_drops_the_trial_and_partial_nan_is_ignored(tmp_path):
    t = np.arange(3000) / 1000.0
    data = t.copy()
    data[1510:1515] = np.nan  # every sample of bin 2 of trial 1 ([1.51, 1.515))
    data[501] = np.nan  # one of five samples of bin 0 of trial 0
    trials = {"start_time": [0.4, 1.4, 2.4], "stop_time": [0.8, 1.8, 2.8], "go": [0.6, 1.6, 2.6]}
    path = write_nwb(tmp_path / "nan.nwb", [[0.1, 2.9]], trials,
                     behavior={"name": "hand_vel", "data": data, "timestamps": t})
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 3 trials.*'hand_vel'"):
        arrays = bin_nwb(path, NWBBinning(align_event="go", window_ms=(-100.0, 100.0), heldout_column=None,
                                          split_column=None, valid_fraction=0.5, behavior="hand_vel"))
    ids, beh = _all_splits(arrays, "behavior")
    assert ids.tolist() == [0, 2]
    assert beh[0, 0, 0] == pytest.approx((0.500 + 0.502 + 0.503 + 0.504) / 4, abs=1e-6)


def test_behavior_window_beyond_the_timeseries_drops_the_trial(tmp_path):
    t = np.arange(2000) / 1000.0  # covers [0, 2) s only
    trials = {"start_time": [0.4, 1.4, 2.4], "stop_time": [0.8, 1.8, 2.8], "go": [0.6, 1.6, 2.6]}
    path = write_nwb(tmp_path / "short.nwb", [[0.1, 2.9]], trials,
                     behavior={"name": "hand_vel", "data": t, "timestamps": t})
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 3 trials.*does not cover"):
        arrays = bin_nwb(path, NWBBinning(align_event="go", window_ms=(-100.0, 100.0), heldout_column=None,
                                          split_column=None, valid_fraction=0.5, behavior="hand_vel"))
    assert _all_splits(arrays, "behavior")[0].tolist() == [0, 1]


def test_condition_ids_number_value_combinations_in_sorted_order(tmp_path):
    trials = {"start_time": [0.0, 1.0, 2.0, 3.0], "stop_time": [0.5, 1.5, 2.5, 3.5], "cond": [3, 1, 3, 2],
              "target": ["b", "a", "a", "b"]}
    path = write_nwb(tmp_path / "cond.nwb", [[0.1, 3.4]], trials)
    base = dict(align_event="start_time", window_ms=(0.0, 100.0), heldout_column=None, split_column=None,
                valid_fraction=0.25)
    _, cond = _all_splits(_bin_quietly(path, NWBBinning(condition_columns=["cond", "target"], **base)), "conditions")
    assert cond.tolist() == [3, 0, 2, 1]  # (3,b) (1,a) (3,a) (2,b) -> sorted (1,a) (2,b) (3,a) (3,b)
    _, cond = _all_splits(_bin_quietly(path, NWBBinning(condition_columns=["cond"], **base)), "conditions")
    assert cond.tolist() == [2, 0, 2, 1]


def _reference_window_counts(path, window=(-0.25, 0.45)):
    """Spikes per (unit, trial) in [a + w0, a + w1), from the raw HDF5 datasets, in integer microseconds."""
    with h5py.File(path, "r") as f:
        flat = f["units/spike_times"][:]
        ends = f["units/spike_times_index"][:]
        align = f["intervals/trials/move_onset_time"][:]
    starts = np.concatenate([[0], ends[:-1]])
    lo = np.round((align + window[0]) * 1e6).astype(np.int64)
    hi = np.round((align + window[1]) * 1e6).astype(np.int64)
    counts = np.zeros((len(ends), len(align)), dtype=np.int64)
    for u in range(len(ends)):
        times = np.round(flat[starts[u]:ends[u]] * 1e6).astype(np.int64)
        for j in range(len(align)):
            counts[u, j] = np.count_nonzero((times >= lo[j]) & (times < hi[j]))
    return counts


def test_real_dandi_file_bins_all_units_and_matches_a_simple_loop():
    arrays = _bin_quietly(REAL_NWB, NWBBinning(split_column=None))
    assert arrays["heldin_unit_ids"].size == 107 and arrays["heldout_unit_ids"].size == 0
    assert arrays["train_encod_data"].shape == (80, 140, 107)
    assert arrays["valid_encod_data"].shape == (20, 140, 107)
    ids, recon = _all_splits(arrays, "recon_data")
    assert ids.tolist() == list(range(100))
    reference = _reference_window_counts(REAL_NWB)  # (units, trials)
    np.testing.assert_array_equal(recon.sum(axis=1).T, reference)
    assert recon.sum() == reference.sum() > 30000


def test_real_dandi_file_with_its_all_test_split_column_fails_clearly():
    with pytest.raises(Exception, match=r"'train' split would be empty.*'test': 100.*split_column=None") as info:
        bin_nwb(REAL_NWB, NWBBinning())
    assert REAL_NWB.name in str(info.value)


def test_convert_nwb_to_lfads_writes_the_layout_and_leaves_the_source_alone(tmp_path):
    from lfads.data.hdf5 import load_lfads_h5

    before = sha256(REAL_NWB)
    binning = NWBBinning(split_column=None, seed=2)
    out = convert_nwb_to_lfads(REAL_NWB, tmp_path / "mc_maze_small.h5", binning)
    assert sha256(REAL_NWB) == before
    arrays = _bin_quietly(REAL_NWB, binning)
    with h5py.File(out, "r") as f:
        assert f.attrs["bin_size"] == 0.005 and f.attrs["window_start"] == -0.25
        for key in ("train_encod_data", "valid_recon_data", "valid_trial_ids", "heldin_unit_ids"):
            np.testing.assert_array_equal(f[key][()], arrays[key])
    session = load_lfads_h5(out)
    np.testing.assert_array_equal(session.splits["train"].recon_data, arrays["train_recon_data"])


def test_load_nwb_session_returns_a_validated_session():
    session = load_nwb_session(REAL_NWB, split_column=None, valid_fraction=0.25)
    assert session.bin_size == 0.005
    assert session.splits["valid"].encod_data.shape == (25, 140, 107)
    assert session.splits["train"].extras["trial_ids"].shape == (75,)
    assert session.extras["heldin_unit_ids"].shape == (107,)
    with pytest.raises(TypeError, match="unknown NWB binning option"):
        load_nwb_session(REAL_NWB, bin_size=0.01)


def test_reach_generator_is_deterministic_by_seed_and_its_file_bins(tmp_path):
    from datasets.reach_nwb import generate_reach, write_reach_nwb

    small = dict(n_trials=48, n_units=20, n_conditions=4)
    first, again, other = generate_reach(1, **small), generate_reach(1, **small), generate_reach(2, **small)
    for key in ("spike_times", "spike_times_index", "move_onset", "hand_vel", "split"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["spike_times"].size != other["spike_times"].size or \
        not np.array_equal(first["spike_times"], other["spike_times"])
    assert first["heldout"].sum() == 4
    assert 2.0 < first["rates"].mean() < 30.0

    path = write_reach_nwb(tmp_path / "reach.nwb", seed=1, **small)
    arrays = _bin_quietly(path, NWBBinning(behavior="hand_vel", condition_columns=["condition"], forward_bins=10))
    assert arrays["train_encod_data"].shape[1:] == (140, 16)
    assert arrays["train_recon_data"].shape[1:] == (150, 20)
    n_binned = sum(arrays[f"{s}_trial_ids"].size for s in ("train", "valid", "test"))
    assert n_binned == 48
    ids, counts = _all_splits(arrays, "recon_data")
    # all spikes of a window are binned: compare with the simulation's own spike times
    ends = first["spike_times_index"]
    heldin0 = int(np.flatnonzero(~first["heldout"])[0])  # the first recon column
    unit = first["spike_times"][(ends[heldin0 - 1] if heldin0 else 0):ends[heldin0]]
    a = first["move_onset"]
    expected = [np.count_nonzero((unit >= a[j] - 0.25) & (unit < a[j] + 0.45 + 0.05)) for j in range(48)]
    np.testing.assert_array_equal(counts[:, :, 0].sum(axis=1), expected)
    # hand velocity 150 ms after movement onset points towards the reach angle
    _, beh = _all_splits(arrays, "behavior")
    velocity = beh[:, 80]  # bin 80 covers [+150, +155) ms
    angle = np.degrees(np.arctan2(velocity[:, 1], velocity[:, 0]))
    error = (angle - first["reach_angle"][ids] + 180.0) % 360.0 - 180.0
    assert np.all(np.abs(error) < 30.0)
