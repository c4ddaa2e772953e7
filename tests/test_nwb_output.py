"""Writing LFADS outputs into a copy of the source NWB file: validity, round trip, input left untouched."""

from __future__ import annotations

import numpy as np
import pytest
from nwb_helpers import REAL_NWB, sha256, write_nwb

from lfads.data.nwb import NWBBinning, bin_nwb
from lfads.data.nwb_output import load_nwb_outputs, write_nwb_outputs
from lfads.errors import LFADSDataError


def _findings(path):
    from nwbinspector import inspect_nwbfile

    return list(inspect_nwbfile(nwbfile_path=str(path)))


@pytest.fixture(scope="module")
def reach(tmp_path_factory):
    from datasets.reach_nwb import write_reach_nwb

    path = write_reach_nwb(tmp_path_factory.mktemp("reach") / "reach.nwb", seed=3, n_trials=32, n_units=16,
                           n_conditions=4)
    return path, bin_nwb(path, NWBBinning(forward_bins=5))


def _fake_outputs(arrays, split, seed=0):
    rng = np.random.default_rng(seed)
    n, t, neurons = arrays[f"{split}_recon_data"].shape
    return {
        "rates": rng.gamma(2.0, 0.05, size=(n, t, neurons)),
        "factors": rng.standard_normal((n, t, 6)),
        "gen_inputs": rng.standard_normal((n, t, 2)),
        "gen_states": rng.standard_normal((n, t, 12)),
    }


def test_outputs_pass_nwbinspector_and_round_trip(reach, tmp_path):
    source, arrays = reach
    before = sha256(source)
    assert [f for f in _findings(source) if f.importance.name != "BEST_PRACTICE_SUGGESTION"] == []
    outputs = _fake_outputs(arrays, "train")
    out = write_nwb_outputs(source, tmp_path / "with_lfads.nwb", outputs, arrays["train_trial_ids"],
                            arrays["train_align_times"], float(arrays["bin_size"]), float(arrays["window_start"]),
                            units={"rates": "spikes/bin"})
    assert sha256(source) == before
    serious = [f"{f.importance.name} {f.check_function_name}: {f.message}" for f in _findings(out)
               if f.importance.name != "BEST_PRACTICE_SUGGESTION"]
    assert serious == []

    back = load_nwb_outputs(out)
    np.testing.assert_array_equal(back["trial_ids"], arrays["train_trial_ids"])  # ids increase with time here
    for name, value in outputs.items():
        np.testing.assert_array_equal(back[name], value.astype(np.float32))
    n_bins = outputs["rates"].shape[1]
    expected = arrays["train_align_times"][:, None] - 0.25 + 0.005 * (np.arange(n_bins) + 0.5)[None, :]
    np.testing.assert_allclose(back["bin_centres"], expected, atol=1e-9)

    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(out), "r") as io:
        nwbfile = io.read()
        module = nwbfile.processing["misc"]
        assert module["lfads_rates"].unit == "spikes/bin" and module["lfads_factors"].unit == "a.u."
        table = module["lfads_trials"]
        onsets = nwbfile.trials["move_onset_time"].data[:][table["trial"].data[:]]
        np.testing.assert_array_equal(onsets, table["align_time"].data[:])
        np.testing.assert_allclose(table["stop_time"].data[:] - table["start_time"].data[:], n_bins * 0.005)
        # the source's own content is still there
        assert len(nwbfile.units) == 16 and "hand_vel" in nwbfile.processing["behavior"].data_interfaces


def test_real_file_gets_no_new_inspector_findings_and_is_untouched(tmp_path):
    before = sha256(REAL_NWB)
    arrays = bin_nwb(REAL_NWB, NWBBinning(split_column=None))
    outputs = _fake_outputs(arrays, "valid", seed=1)
    out = write_nwb_outputs(REAL_NWB, tmp_path / "real_out.nwb", outputs, arrays["valid_trial_ids"],
                            arrays["valid_align_times"], 0.005, -0.25)
    assert sha256(REAL_NWB) == before

    def keys(path):
        return {(f.importance.name, f.check_function_name, f.object_name) for f in _findings(path)}

    assert keys(out) - keys(REAL_NWB) == set()
    back = load_nwb_outputs(out)
    np.testing.assert_array_equal(back["rates"], outputs["rates"].astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real_out.nwb"]  # no temporary file left


def test_outputs_are_stored_in_time_order_whatever_the_input_order(reach, tmp_path):
    source, arrays = reach
    outputs = _fake_outputs(arrays, "train", seed=2)
    shuffle = np.random.default_rng(0).permutation(arrays["train_trial_ids"].size)
    out = write_nwb_outputs(source, tmp_path / "shuffled.nwb", {k: v[shuffle] for k, v in outputs.items()},
                            arrays["train_trial_ids"][shuffle], arrays["train_align_times"][shuffle], 0.005, -0.25)
    back = load_nwb_outputs(out)
    np.testing.assert_array_equal(back["trial_ids"], arrays["train_trial_ids"])
    np.testing.assert_array_equal(back["factors"], outputs["factors"].astype(np.float32))


def test_abutting_windows_are_stored_with_a_sampling_rate(tmp_path):
    starts = [0.0, 0.7, 1.4, 2.1]
    source = write_nwb(tmp_path / "abut.nwb", [[0.1, 0.8, 1.5, 2.2, 2.79]],
                       {"start_time": starts, "stop_time": [s + 0.7 for s in starts]})
    outputs = {"rates": np.full((4, 140, 1), 0.1)}
    out = write_nwb_outputs(source, tmp_path / "abut_out.nwb", outputs, np.arange(4), np.array(starts), 0.005, 0.0)

    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(out), "r") as io:
        series = io.read().processing["misc"]["lfads_rates"]
        assert series.timestamps is None and series.rate == pytest.approx(200.0)
        assert series.starting_time == pytest.approx(0.0025)
    assert not [f for f in _findings(out) if f.check_function_name == "check_regular_timestamps"]
    np.testing.assert_allclose(load_nwb_outputs(out)["bin_centres"][3, -1], 2.7975)


def test_overlapping_windows_warn(reach, tmp_path):
    source, arrays = reach
    ids = arrays["train_trial_ids"][:2]
    outputs = {"rates": np.ones((2, 140, 3))}
    with pytest.warns(UserWarning, match="windows overlap"):
        write_nwb_outputs(source, tmp_path / "overlap.nwb", outputs, ids, np.array([1.0, 1.1]), 0.005, -0.25)


def test_writer_rejects_bad_requests_and_writes_nothing(reach, tmp_path):
    source, arrays = reach
    ids, align = arrays["train_trial_ids"], arrays["train_align_times"]
    rates = np.ones((ids.size, 140, 3))
    with pytest.raises(LFADSDataError, match="the output path is the source NWB file"):
        write_nwb_outputs(source, source, {"rates": rates}, ids, align, 0.005, -0.25)
    with pytest.raises(LFADSDataError, match=r"output 'factors' has \(trials, time\)"):
        write_nwb_outputs(source, tmp_path / "x.nwb", {"rates": rates, "factors": rates[:, :10]}, ids, align, 0.005,
                          -0.25)
    with pytest.raises(LFADSDataError, match="trial_ids range from .* but the trials table has 32 rows"):
        write_nwb_outputs(source, tmp_path / "x.nwb", {"rates": rates}, ids + 100, align, 0.005, -0.25)
    with pytest.raises(LFADSDataError, match="holds NaN"):
        write_nwb_outputs(source, tmp_path / "x.nwb", {"rates": rates * np.nan}, ids, align, 0.005, -0.25)
    assert list(tmp_path.iterdir()) == []
    first = write_nwb_outputs(source, tmp_path / "first.nwb", {"rates": rates}, ids, align, 0.005, -0.25)
    with pytest.raises(LFADSDataError, match=r"already holds \['lfads_trials', 'lfads_rates'\]"):
        write_nwb_outputs(first, tmp_path / "second.nwb", {"rates": rates}, ids, align, 0.005, -0.25)
    second = write_nwb_outputs(first, tmp_path / "second.nwb", {"rates": 2 * rates}, ids, align, 0.005, -0.25,
                               prefix="lfads2_")
    np.testing.assert_array_equal(load_nwb_outputs(second, prefix="lfads2_")["rates"], 2 * rates)
    np.testing.assert_array_equal(load_nwb_outputs(second)["rates"], rates)
