"""Bad NWB input: each case raises LFADSDataError naming the file and field, or drops with a counted warning."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from nwb_helpers import write_nwb

from lfads.data.nwb import NWBBinning, NWBDropWarning, bin_nwb
from lfads.errors import LFADSDataError

TRIALS = {"start_time": [0.0, 1.0, 2.0], "stop_time": [0.8, 1.8, 2.8], "move_onset_time": [0.3, 1.3, 2.3],
          "split": ["train", "val", "train"]}
SPIKES = [[0.1, 0.4, 1.4, 2.5], [0.2, 1.2, 2.2, 2.7]]
OK = dict(heldout_column=None)


@pytest.fixture()
def good_file(tmp_path):
    return write_nwb(tmp_path / "good.nwb", SPIKES, TRIALS)


def test_good_file_bins_without_warnings(good_file, recwarn):
    arrays = bin_nwb(good_file, NWBBinning(**OK))
    assert arrays["train_trial_ids"].tolist() == [0, 2] and arrays["valid_trial_ids"].tolist() == [1]
    assert not [w for w in recwarn if issubclass(w.category, NWBDropWarning)]


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(LFADSDataError, match=r"nothere\.nwb: file not found"):
        bin_nwb(tmp_path / "nothere.nwb")


def test_text_file_is_not_hdf5(tmp_path):
    path = tmp_path / "notes.nwb"
    path.write_text("not an NWB file")
    with pytest.raises(LFADSDataError, match=r"notes\.nwb: not an HDF5 file"):
        bin_nwb(path)


def test_hdf5_without_nwb_version_is_not_nwb(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["train_encod_data"] = np.zeros((2, 3, 4))
    with pytest.raises(LFADSDataError, match=r"plain\.h5: an HDF5 file but not an NWB file.*nwb_version"):
        bin_nwb(path)


def test_missing_units_table(tmp_path):
    path = write_nwb(tmp_path / "nounits.nwb", None, TRIALS)
    with pytest.raises(LFADSDataError, match=r"nounits\.nwb: no Units table \(/units\)"):
        bin_nwb(path, NWBBinning(**OK))


def test_missing_trials_table(tmp_path):
    path = write_nwb(tmp_path / "notrials.nwb", SPIKES, None)
    with pytest.raises(LFADSDataError, match=r"notrials\.nwb: no trials table \(/intervals/trials\)"):
        bin_nwb(path, NWBBinning(**OK))


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"align_event": "go_cue_time"}, "trials table has no column 'go_cue_time' \\(binning option align_event\\)"),
        ({"split_column": "fold"}, "trials table has no column 'fold' \\(binning option split_column\\)"),
        ({"condition_columns": ["target"]},
         "trials table has no column 'target' \\(binning option condition_columns\\)"),
    ],
)
def test_unknown_trial_columns_list_the_available_ones(good_file, options, where):
    with pytest.raises(LFADSDataError, match=where) as info:
        bin_nwb(good_file, NWBBinning(**OK, **options))
    message = str(info.value)
    assert "good.nwb" in message
    assert "Available columns: ['start_time', 'stop_time', 'move_onset_time', 'split']" in message


def test_unknown_heldout_column_is_an_error_unless_a_fraction_is_given(good_file):
    with pytest.raises(LFADSDataError, match=r"Units table has no column 'heldout'.*Available columns") as info:
        bin_nwb(good_file, NWBBinning())
    assert "good.nwb" in str(info.value)
    arrays = bin_nwb(good_file, NWBBinning(heldout_fraction=0.5))
    assert arrays["heldout_unit_ids"].size == 1 and arrays["heldin_unit_ids"].size == 1


def test_non_boolean_heldout_column_is_an_error(tmp_path):
    path = write_nwb(tmp_path / "badheld.nwb", SPIKES, TRIALS, unit_columns={"heldout": [0.5, 2.0]})
    with pytest.raises(LFADSDataError, match=r"Units column 'heldout'.*boolean"):
        bin_nwb(path)


def test_unknown_split_label_is_an_error(tmp_path):
    trials = dict(TRIALS, split=["train", "holdout", "val"])
    path = write_nwb(tmp_path / "labels.nwb", SPIKES, trials)
    with pytest.raises(LFADSDataError, match=r"labels\.nwb: trials column 'split'.*unknown label\(s\) \['holdout'\]"):
        bin_nwb(path, NWBBinning(**OK))


def test_unsorted_spike_times_name_the_unit(tmp_path):
    path = write_nwb(tmp_path / "unsorted.nwb", [[0.1, 0.4, 1.4], [0.2, 2.2, 1.2]], TRIALS)
    with pytest.raises(LFADSDataError, match=r"unsorted\.nwb: Units 'spike_times' of unit id\(s\) \[1\] are not "
                                             r"sorted"):
        bin_nwb(path, NWBBinning(**OK))


def test_decrease_between_two_units_is_not_unsorted(tmp_path):
    path = write_nwb(tmp_path / "boundary.nwb", [[1.4, 2.5], [0.2, 1.2]], TRIALS)
    arrays = bin_nwb(path, NWBBinning(**OK))
    assert arrays["train_recon_data"].sum() + arrays["valid_recon_data"].sum() == 4


def test_nan_spike_times_name_the_unit(tmp_path):
    path = write_nwb(tmp_path / "nan.nwb", [[0.1, 0.4], [0.2, float("nan"), 1.2]], TRIALS)
    with pytest.raises(LFADSDataError, match=r"nan\.nwb: Units 'spike_times' holds 1 NaN/Inf value\(s\) in unit "
                                             r"id\(s\) \[1\]"):
        bin_nwb(path, NWBBinning(**OK))


def test_units_without_spikes_are_dropped_with_their_ids(tmp_path):
    path = write_nwb(tmp_path / "silent.nwb", [SPIKES[0], [], SPIKES[1]], TRIALS)
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 3 units: they have no spikes \(unit ids \[1\]\)"):
        arrays = bin_nwb(path, NWBBinning(**OK))
    assert arrays["heldin_unit_ids"].tolist() == [0, 2]
    assert arrays["train_recon_data"].shape[2] == 2


def test_window_that_is_not_a_whole_number_of_bins_is_an_error(good_file):
    with pytest.raises(LFADSDataError, match=r"good\.nwb: the window \(-250.0, 450.0\) ms is 700 ms long.*"
                                             r"233\.333 bins of 3 ms"):
        bin_nwb(good_file, NWBBinning(bin_ms=3.0, **OK))


def test_bin_width_finer_than_a_nanosecond_is_an_error(good_file):
    with pytest.raises(LFADSDataError, match=r"bin_ms=0\.0050001 ms is not a whole number of nanoseconds"):
        bin_nwb(good_file, NWBBinning(bin_ms=0.0050001, **OK))


def test_nan_event_times_are_dropped_with_a_count(tmp_path):
    trials = dict(TRIALS, move_onset_time=[0.3, float("nan"), 2.3], split=["train", "val", "val"])
    path = write_nwb(tmp_path / "nanevent.nwb", SPIKES, trials)
    with pytest.warns(NWBDropWarning, match=r"nanevent\.nwb: dropped 1 of 3 trials: their 'move_onset_time' is NaN"):
        arrays = bin_nwb(path, NWBBinning(**OK))
    assert arrays["valid_trial_ids"].tolist() == [2]


def test_every_trial_outside_the_recording_is_an_error(good_file):
    with pytest.warns(NWBDropWarning, match=r"dropped 3 of 3 trials.*outside the recording"):
        with pytest.raises(LFADSDataError, match=r"good\.nwb: no trials left"):
            bin_nwb(good_file, NWBBinning(window_ms=(-500.0, 5000.0), **OK))


def test_empty_validation_split_is_an_error_that_suggests_a_random_split(tmp_path):
    trials = dict(TRIALS, split=["train", "train", "test"])
    path = write_nwb(tmp_path / "noval.nwb", SPIKES, trials)
    with pytest.raises(LFADSDataError, match=r"noval\.nwb: the 'valid' split would be empty.*split_column=None"):
        bin_nwb(path, NWBBinning(**OK))


def test_unit_with_empty_obs_intervals_removes_every_trial_and_is_named(tmp_path):
    path = write_nwb(tmp_path / "unobserved.nwb", SPIKES, TRIALS, obs_intervals=[[[0.0, 3.0]], np.zeros((0, 2))])
    with pytest.warns(NWBDropWarning, match=r"dropped 3 of 3 trials.*obs_intervals"):
        with pytest.raises(LFADSDataError, match=r"unobserved\.nwb: no trial window lies inside the Units "
                                                 r"'obs_intervals'.*\{1: 3\}"):
            bin_nwb(path, NWBBinning(**OK))


def test_unknown_behavior_timeseries_lists_the_timeseries(tmp_path):
    t = np.arange(3000) / 1000.0
    path = write_nwb(tmp_path / "beh.nwb", SPIKES, TRIALS, behavior={"name": "cursor_pos", "data": t, "timestamps": t})
    with pytest.raises(LFADSDataError, match=r"beh\.nwb: no TimeSeries named 'hand_vel'.*\['cursor_pos'\]"):
        bin_nwb(path, NWBBinning(behavior="hand_vel", **OK))


def test_invalid_options_are_reported(good_file):
    with pytest.raises(LFADSDataError, match=r"window_ms=\(450.0, -250.0\) must have end > start"):
        bin_nwb(good_file, NWBBinning(window_ms=(450.0, -250.0), **OK))
    with pytest.raises(LFADSDataError, match=r"forward_bins=-1"):
        bin_nwb(good_file, NWBBinning(forward_bins=-1, **OK))
    with pytest.raises(LFADSDataError, match=r"valid_fraction \+ test_fraction"):
        bin_nwb(good_file, NWBBinning(split_column=None, valid_fraction=0.6, test_fraction=0.5, **OK))
