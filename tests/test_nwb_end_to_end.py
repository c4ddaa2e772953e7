"""NWB end to end: convert, fit with the shipped config, sample, and write the samples back into NWB."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from nwb_helpers import sha256

from lfads.commands.convert import convert_command, load_nwb_binning_config
from lfads.data.datamodule import LFADSDataModule
from lfads.data.hdf5 import load_lfads_h5
from lfads.data.nwb import NWBBinning, load_nwb_session
from lfads.data.nwb_output import find_nwb_source, load_nwb_outputs, write_nwb_outputs_for_samples

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "reach_nwb.yaml"
SERIOUS = {"ERROR", "PYNWB_VALIDATION", "CRITICAL", "BEST_PRACTICE_VIOLATION"}
SMALL = dict(n_trials=48, n_units=20, n_conditions=4)  # 8 valid and 4 test trials (stratified by condition)


def _serious_findings(path: Path) -> set[tuple[str, str, str]]:
    from nwbinspector import inspect_nwbfile

    return {(f.importance.name, f.check_function_name, f.object_name)
            for f in inspect_nwbfile(nwbfile_path=str(path)) if f.importance.name in SERIOUS}


def _config_binning() -> NWBBinning:
    return load_nwb_binning_config(CONFIG)


@pytest.fixture(scope="module")
def reach_files(tmp_path_factory):
    """Two small reach sessions (seeds 1 and 2) as NWB files, with their SHA-256 digests."""
    from datasets.reach_nwb import write_reach_nwb

    folder = tmp_path_factory.mktemp("reach")
    paths = [write_reach_nwb(folder / f"reach_s{seed}.nwb", seed=seed, **SMALL) for seed in (1, 2)]
    return paths, [sha256(p) for p in paths]


def _trials_table(path: Path) -> dict[str, np.ndarray]:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        trials = io.read().trials
        return {name: np.asarray(trials[name].data[:]) for name in ("move_onset_time", "split")}


def _fake_results(datamodule: LFADSDataModule, seed: int = 0) -> dict:
    """Random outputs shaped like sample_posteriors' (no inferred inputs: co_dim 0)."""
    rng = np.random.default_rng(seed)
    results = {}
    for session in datamodule.sessions:
        results[session.name] = {}
        for split, data in session.splits.items():
            n, t, neurons = data.recon_data.shape
            results[session.name][split] = {
                "rates": rng.gamma(2.0, 0.1, size=(n, t, neurons)).astype(np.float32),
                "factors": rng.standard_normal((n, t, 3)).astype(np.float32),
                "inferred_inputs": np.zeros((n, t, 0), dtype=np.float32),
                "gen_states": rng.standard_normal((n, t, 5)).astype(np.float32),
            }
    return results


# ---------------------------------------------------------------------------------------------------------------------
# lfads convert
# ---------------------------------------------------------------------------------------------------------------------


def test_convert_writes_the_session_that_nwb_binning_gives(reach_files, tmp_path):
    paths, digests = reach_files
    assert convert_command(["--nwb", *map(str, paths), "--out-dir", str(tmp_path / "h5"), "--config",
                            str(CONFIG)]) == 0
    for path, digest in zip(paths, digests):
        converted = load_lfads_h5(tmp_path / "h5" / f"{path.stem}.h5")
        direct = load_nwb_session(path, _config_binning())
        assert sorted(converted.splits) == sorted(direct.splits) == ["test", "train", "valid"]
        for split, data in direct.splits.items():
            np.testing.assert_array_equal(converted.splits[split].encod_data, data.encod_data)
            np.testing.assert_array_equal(converted.splits[split].recon_data, data.recon_data)
            for key in ("trial_ids", "align_times", "behavior", "conditions"):
                np.testing.assert_array_equal(converted.splits[split].extras[key], data.extras[key])
        assert converted.bin_size == pytest.approx(0.020)
        assert converted.attrs["window_start"] == pytest.approx(-0.25)
        assert find_nwb_source(converted) == path.resolve()  # the converted file remembers its source
        assert sha256(path) == digest


def test_convert_splits_follow_the_trials_split_column(reach_files, tmp_path, monkeypatch):
    path = reach_files[0][0]
    monkeypatch.chdir(path.parent)
    convert_command(["--nwb", path.name, "--out-dir", str(tmp_path), "--config", str(CONFIG)])  # relative input
    assert find_nwb_source(load_lfads_h5(tmp_path / f"{path.stem}.h5")) == path.resolve()
    labels = _trials_table(path)["split"].astype(str)
    with h5py.File(tmp_path / f"{path.stem}.h5", "r") as f:
        for split, label in (("train", "train"), ("valid", "val"), ("test", "test")):
            np.testing.assert_array_equal(f[f"{split}_trial_ids"][()], np.flatnonzero(labels == label))


def test_convert_flags_override_the_config(reach_files, tmp_path):
    path = reach_files[0][0]
    convert_command(["--nwb", str(path), "--out-dir", str(tmp_path), "--config", str(CONFIG), "--bin-ms", "10",
                     "--window-ms", "-200", "400", "--condition-columns", "none", "--forward-bins", "3"])
    with h5py.File(tmp_path / f"{path.stem}.h5", "r") as f:
        assert f["train_encod_data"].shape[1] == 60  # 600 ms / 10 ms
        assert f["train_recon_data"].shape[1] == 63
        assert "train_conditions" not in f and "train_behavior" in f  # behavior still from the config
        assert f.attrs["bin_size"] == pytest.approx(0.010) and f.attrs["window_start"] == pytest.approx(-0.2)


def test_convert_never_overwrites_without_the_flag(reach_files, tmp_path):
    path = reach_files[0][0]
    out = tmp_path / f"{path.stem}.h5"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="--overwrite"):
        convert_command(["--nwb", str(path), "--out-dir", str(tmp_path), "--config", str(CONFIG)])
    assert out.read_bytes() == b"precious"
    convert_command(["--nwb", str(path), "--out-dir", str(tmp_path), "--config", str(CONFIG), "--overwrite"])
    assert load_lfads_h5(out).splits["train"].n_trials == 36  # 48 trials: 4 conditions x (12 - 2 val - 1 test)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left


def test_convert_reports_bad_inputs_before_writing_anything(reach_files, tmp_path):
    path = reach_files[0][0]
    not_nwb = tmp_path / "notes.nwb"
    not_nwb.write_text("not hdf5")
    with pytest.raises(SystemExit, match="notes.nwb: not an HDF5 file"):
        convert_command(["--nwb", str(path), str(not_nwb), "--out-dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="no column 'no_such_event'"):
        convert_command(["--nwb", str(path), "--out-dir", str(tmp_path / "out"), "--align-event", "no_such_event"])
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  nwb:\n    bin_size: 20\n")
    with pytest.raises(SystemExit, match="unknown option.*bin_size"):
        convert_command(["--nwb", str(path), "--out-dir", str(tmp_path / "out"), "--config", str(config)])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_convert_writes_nothing_when_a_later_session_fails_to_bin(reach_files, tmp_path):
    from nwb_helpers import write_nwb

    good = reach_files[0][0]
    # a valid NWB session without the 'hand_vel' TimeSeries the config asks for
    no_behavior = write_nwb(tmp_path / "no_behavior.nwb", [[0.1, 0.5, 0.9], [0.2, 0.6]], {
        "start_time": [0.0, 1.0], "stop_time": [1.0, 2.0], "move_onset_time": [0.4, 1.4],
        "split": ["train", "val"], "condition": [0, 1]}, unit_columns={"heldout": [False, True]})
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="no TimeSeries named 'hand_vel'"):
        convert_command(["--nwb", str(good), str(no_behavior), "--out-dir", str(out), "--config", str(CONFIG)])
    assert list(out.iterdir()) == []  # the first session, binned fine, was not kept either


# ---------------------------------------------------------------------------------------------------------------------
# Sampled outputs -> NWB, without a model
# ---------------------------------------------------------------------------------------------------------------------


def test_data_module_takes_binning_as_dataclass_or_dict(reach_files):
    path = reach_files[0][0]
    binning = _config_binning()
    from dataclasses import asdict

    as_dict = {**asdict(binning), "window_ms": list(binning.window_ms)}
    a = LFADSDataModule(str(path), batch_size=4, nwb=binning)
    b = LFADSDataModule(str(path), batch_size=4, nwb=as_dict)
    assert a.hparams["nwb"] == b.hparams["nwb"] == as_dict  # stored as a plain dict either way
    np.testing.assert_array_equal(a.sessions[0].splits["valid"].recon_data, b.sessions[0].splits["valid"].recon_data)
    from lfads.errors import LFADSDataError

    with pytest.raises(LFADSDataError, match="unknown NWB binning option.*bin_width"):
        LFADSDataModule(str(path), batch_size=4, nwb={"bin_width": 20})


def test_several_sessions_get_one_nwb_each_named_after_the_session(reach_files, tmp_path):
    paths, digests = reach_files
    convert_command(["--nwb", str(paths[1]), "--out-dir", str(tmp_path), "--config", str(CONFIG)])
    # one session straight from NWB, one from the converted HDF5 file: both map back to their NWB source
    datamodule = LFADSDataModule([str(paths[0]), str(tmp_path / f"{paths[1].stem}.h5")], batch_size=4,
                                 nwb=_config_binning())
    results = _fake_results(datamodule)
    written = write_nwb_outputs_for_samples(results, datamodule, tmp_path / "out.nwb")
    assert [p.name for p in written] == ["out_reach_s1.nwb", "out_reach_s2.nwb"]
    for path, source, session in zip(written, paths, datamodule.sessions):
        back = load_nwb_outputs(path)
        assert "inferred_inputs" not in back  # 0-dimensional outputs are left out
        onsets = _trials_table(source)["move_onset_time"]
        for split, data in session.splits.items():
            rows = np.searchsorted(back["trial_ids"], data.extras["trial_ids"])
            np.testing.assert_array_equal(back["trial_ids"][rows], data.extras["trial_ids"])
            np.testing.assert_array_equal(back["rates"][rows], results[session.name][split]["rates"])
            np.testing.assert_array_equal(back["gen_states"][rows], results[session.name][split]["gen_states"])
            centres = onsets[data.extras["trial_ids"]][:, None] - 0.25 + 0.02 * (np.arange(35) + 0.5)
            np.testing.assert_allclose(back["bin_centres"][rows], centres, atol=1e-9)
    assert [sha256(p) for p in paths] == digests


def test_nwb_outputs_refuse_existing_files_before_writing_any(reach_files, tmp_path):
    paths = reach_files[0]
    datamodule = LFADSDataModule([str(p) for p in paths], batch_size=4, nwb=_config_binning())
    (tmp_path / "out_reach_s2.nwb").write_bytes(b"keep")
    from lfads.errors import LFADSDataError

    with pytest.raises(LFADSDataError, match="already exist"):
        write_nwb_outputs_for_samples(_fake_results(datamodule), datamodule, tmp_path / "out.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_reach_s2.nwb"]
    with pytest.raises(LFADSDataError, match="must end in '.nwb'"):
        write_nwb_outputs_for_samples(_fake_results(datamodule), datamodule, tmp_path / "out.h5")
    written = write_nwb_outputs_for_samples(_fake_results(datamodule), datamodule, tmp_path / "out.nwb",
                                            overwrite=True)
    assert [p.name for p in written] == ["out_reach_s1.nwb", "out_reach_s2.nwb"]


# ---------------------------------------------------------------------------------------------------------------------
# Generator -> lfads fit (shipped config) -> sample -> NWB
# ---------------------------------------------------------------------------------------------------------------------


def test_fit_sample_and_write_nwb_end_to_end(tmp_path, monkeypatch):
    import torch

    from datasets.reach_nwb import write_reach_nwb
    from lfads.cli import main
    from lfads.rundir import find_checkpoint, load_model_and_data
    from lfads.sampling import load_samples

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the config's data/reach.nwb and runs/ resolve here
    monkeypatch.setattr(sys, "argv", ["lfads"])
    source = write_reach_nwb(tmp_path / "data" / "reach.nwb", seed=4, **SMALL)
    digest = sha256(source)

    assert main(["fit", "--config", str(CONFIG), "--trainer.accelerator", "cpu", "--trainer.max_epochs", "3",
                 "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
                 "--model.ic_enc_dim", "8", "--model.ci_enc_dim", "8", "--model.con_dim", "8", "--model.co_dim", "2",
                 "--model.ic_dim", "4", "--model.gen_dim", "8", "--model.fac_dim", "4",
                 "--data.batch_size", "8"]) == 0
    ckpt = find_checkpoint(tmp_path / "runs" / "reach_nwb").resolve()
    assert ckpt.is_relative_to((tmp_path / "runs" / "reach_nwb" / "version_0").resolve())

    model, datamodule = load_model_and_data(ckpt)
    session = datamodule.sessions[0]
    assert datamodule.hparams["nwb"]["bin_ms"] == 20.0 and session.bin_size == pytest.approx(0.02)
    out = tmp_path / "reach_lfads.nwb"
    assert main(["sample", "--ckpt", str(ckpt), "--out", str(tmp_path / "samples.h5"), "--nwb-out", str(out),
                 "--samples", "3", "--no-progress"]) == 0
    with pytest.raises(SystemExit, match="exist"):  # neither output is replaced without --overwrite
        main(["sample", "--ckpt", str(ckpt), "--out", str(tmp_path / "other.h5"), "--nwb-out", str(out),
              "--samples", "3", "--no-progress"])
    assert not (tmp_path / "other.h5").exists()

    assert sha256(source) == digest
    assert _serious_findings(out) - _serious_findings(source) == set()
    back = load_nwb_outputs(out)
    saved = load_samples(tmp_path / "samples.h5")[session.name]
    labels = _trials_table(source)["split"].astype(str)
    assert np.array_equal(np.sort(back["trial_ids"]), np.flatnonzero(labels != "none"))  # every trial, once
    for split, data in session.splits.items():
        rows = np.searchsorted(back["trial_ids"], data.extras["trial_ids"])
        np.testing.assert_array_equal(back["trial_ids"][rows], data.extras["trial_ids"])
        for name in ("rates", "factors", "inferred_inputs", "gen_states"):
            np.testing.assert_array_equal(back[name][rows], saved[split][name])
        assert back["rates"].shape[2] == 20 and back["inferred_inputs"].shape[2] == 2
