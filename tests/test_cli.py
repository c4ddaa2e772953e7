"""`lfads fit` and `lfads sample` through the command line, on a tiny data set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from lfads.cli import main
from lfads.commands import fit
from lfads.errors import LFADSDataError
from lfads.rundir import find_checkpoint


def fit_args(data, save_dir, *extra):
    init_args = {"save_dir": str(save_dir), "name": "tiny"}
    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": init_args},
                         {"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": init_args}])
    return [
        "fit", "--config", "configs/lorenz.yaml",
        "--data.data_paths", str(data), "--data.batch_size", "8",
        "--model.gen_dim", "16", "--model.ic_dim", "8", "--model.fac_dim", "4",
        "--model.ic_enc_dim", "8", "--model.ci_enc_dim", "8",
        "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", logger, *extra,
    ]


@pytest.fixture(scope="module")
def tiny_run(small_lorenz, tmp_path_factory, monkeypatch_module):
    save_dir = tmp_path_factory.mktemp("runs")
    monkeypatch_module.setattr(sys, "argv", ["lfads"])
    # KL ramp over epoch 0 only: epochs 1 and 2 are the ones whose validation cost can pick the best checkpoint
    main(fit_args(small_lorenz, save_dir, "--model.kl_increase_epoch", "1", "--trainer.max_epochs", "3"))
    return save_dir / "tiny"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_fit_writes_a_complete_run_directory(tiny_run):
    version = tiny_run / "version_0"
    assert (version / "config.yaml").exists()
    assert (version / "metrics.csv").exists()
    assert list(version.glob("events.out.tfevents.*")), "TensorBoard events missing from the run directory"
    ckpts = {p.name for p in (version / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and len(ckpts) == 2
    config = yaml.safe_load((version / "config.yaml").read_text())
    assert config["model"]["gen_dim"] == 16
    hparams = yaml.safe_load((version / "hparams.yaml").read_text())  # dimensions linked from the data
    assert hparams["encod_data_dims"] == [12] and hparams["recon_data_dims"] == [16]
    header = (version / "metrics.csv").read_text().splitlines()[0]
    for metric in ("valid/recon_smth", "valid/loss_smth", "valid/rate_r2", "valid/co_bps", "train/loss"):
        assert metric in header


def test_best_checkpoint_is_found_from_the_run_directory(tiny_run):
    best = find_checkpoint(tiny_run)
    assert best.name != "last.ckpt" and best.parent.parent.name == "version_0"


def _valid_rows(run, key: str) -> dict[int, dict[str, str]]:
    import csv

    return {int(r["epoch"]): r for r in csv.DictReader(open(run / "version_0" / "metrics.csv")) if r.get(key)}


def test_best_checkpoint_comes_from_after_the_kl_ramp(tiny_run):
    rows = _valid_rows(tiny_run, "valid/loss_smth_ramped")
    for name in ("loss", "recon"):
        ramped = {e: float(r[f"valid/{name}_smth_ramped"]) for e, r in rows.items()}
        assert ramped[0] == float("inf") and ramped[1] < float("inf") and ramped[2] < float("inf")
    assert not find_checkpoint(tiny_run).name.startswith("epoch=0-")


def test_best_checkpoint_has_the_lowest_smoothed_validation_objective(tiny_run):
    rows = _valid_rows(tiny_run, "valid/loss_smth_ramped")
    objective = {e: float(r["valid/loss_smth_ramped"]) for e, r in rows.items()}
    best_epoch = min(objective, key=objective.get)
    assert find_checkpoint(tiny_run).name.startswith(f"epoch={best_epoch}-")


def test_checkpoint_cost_average_restarts_at_the_first_full_weight_epoch(tiny_run):
    rows = _valid_rows(tiny_run, "valid/loss_smth")
    for name in ("recon", "loss"):
        raw = {e: float(r[f"valid/{name}"]) for e, r in rows.items()}
        smoothed = {e: float(r[f"valid/{name}_smth"]) for e, r in rows.items()}
        assert smoothed[0] == pytest.approx(raw[0]) and raw[1] != pytest.approx(raw[0])
        # epoch 0 ran inside the KL ramp: its cost is not averaged into the value that selects checkpoints
        assert smoothed[1] == pytest.approx(raw[1])
        # then the exponential average with the default weight 0.3 of the newest epoch
        assert smoothed[2] == pytest.approx(0.3 * raw[2] + 0.7 * smoothed[1])


def test_run_ending_inside_the_kl_ramp_uses_its_last_checkpoint(small_lorenz, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    main(fit_args(small_lorenz, tmp_path, "--model.kl_increase_epoch", "50", "--trainer.max_epochs", "1"))
    assert find_checkpoint(tmp_path / "tiny").name == "last.ckpt"
    printed = capsys.readouterr().out
    assert "No checkpoint was scored" in printed
    assert f"Next: lfads sample --ckpt {find_checkpoint(tmp_path / 'tiny')} " in printed


def test_sample_writes_posterior_averages_for_every_split(tiny_run, tmp_path, capsys):
    out = tmp_path / "samples.h5"
    assert main(["sample", "--run", str(tiny_run), "--out", str(out), "--samples", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "rate_r2" in printed and "co_bps" in printed
    with h5py.File(out) as f:
        session = next(iter(f))
        assert set(f[session]) == {"train", "valid"}
        assert f[session]["train"]["rates"].shape == (32, 50, 16)
        assert f[session]["valid"]["factors"].shape == (8, 50, 4)
        assert f[session]["valid"]["ic_mean"].shape == (8, 8)
        assert (f[session]["valid"]["rates"][()] > 0).all()


def test_sample_never_overwrites_without_permission(tiny_run, tmp_path, small_lorenz):
    out = tmp_path / "exists.h5"
    out.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="exists"):
        main(["sample", "--run", str(tiny_run), "--out", str(out), "--samples", "2", "--no-progress"])
    assert out.read_bytes() == b"precious"
    with pytest.raises(SystemExit, match="input data"):
        main(["sample", "--run", str(tiny_run), "--out", str(small_lorenz), "--samples", "2", "--no-progress",
              "--overwrite"])


def test_a_second_fit_gets_a_new_run_directory(small_lorenz, tiny_run, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    main(fit_args(small_lorenz, tiny_run.parent, "--trainer.max_epochs", "1"))
    assert (tiny_run / "version_0" / "checkpoints" / "last.ckpt").exists()
    assert (tiny_run / "version_1" / "config.yaml").exists()
    assert not (tiny_run / "version_2").exists()


def test_print_config_layers_configs_and_overrides(small_lorenz, tmp_path, monkeypatch, capsys):
    layer = tmp_path / "layer.yaml"
    layer.write_text("model:\n  gen_dim: 33\n  co_dim: 2\n  con_dim: 8\n")
    monkeypatch.setattr(sys, "argv", ["lfads"])
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/lorenz.yaml", "--config", str(layer), "--data.data_paths", str(small_lorenz),
              "--model.ic_dim", "7", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["gen_dim"] == 33 and printed["model"]["co_dim"] == 2 and printed["model"]["ic_dim"] == 7
    base = yaml.safe_load(Path("configs/lorenz.yaml").read_text())["model"]
    assert printed["model"]["fac_dim"] == base["fac_dim"]  # from the base config


def test_jslds_layer_turns_on_cotraining_over_a_model_config(small_lorenz, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/chaotic_rnn_inputs.yaml", "--config", "configs/jslds.yaml",
              "--data.data_paths", str(small_lorenz), "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    layer = yaml.safe_load(Path("configs/jslds.yaml").read_text())["model"]
    base = yaml.safe_load(Path("configs/chaotic_rnn_inputs.yaml").read_text())["model"]
    assert all(model[k] == v for k, v in layer.items())
    assert model["gen_dim"] == base["gen_dim"] and model["co_dim"] == base["co_dim"]


def test_fit_rejects_bad_data_before_training(tmp_path, small_lorenz, monkeypatch):
    bad = tmp_path / "bad.h5"
    with h5py.File(small_lorenz) as src, h5py.File(bad, "w") as dst:
        for key in src:
            if key != "valid_recon_data":
                src.copy(key, dst)
    monkeypatch.setattr(sys, "argv", ["lfads"])
    with pytest.raises(LFADSDataError, match=r"bad\.h5.*valid_recon_data|valid_recon_data.*bad\.h5"):
        fit.main(fit_args(bad, tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_two_sessions_with_different_neurons_share_dynamics(tmp_path, monkeypatch):
    from datasets.lorenz import write_lorenz

    write_lorenz(tmp_path / "sess_a.h5", n_conditions=8, trials_per_condition=5, n_time=20, n_heldin=12, n_heldout=4,
                 seed=1)
    write_lorenz(tmp_path / "sess_b.h5", n_conditions=8, trials_per_condition=5, n_time=20, n_heldin=9, n_heldout=0,
                 seed=2)
    monkeypatch.setattr(sys, "argv", ["lfads"])
    main(fit_args(str(tmp_path / "sess_*.h5"), tmp_path / "runs", "--model.readin_dim", "6",
                  "--trainer.max_epochs", "1"))
    out = tmp_path / "samples.h5"
    main(["sample", "--run", str(tmp_path / "runs" / "tiny"), "--out", str(out), "--samples", "2", "--no-progress"])
    with h5py.File(out) as f:
        assert set(f) == {"sess_a", "sess_b"}
        assert f["sess_a/valid/rates"].shape == (8, 20, 16) and f["sess_b/valid/rates"].shape == (8, 20, 9)
        assert f["sess_a/valid/factors"].shape[-1] == f["sess_b/valid/factors"].shape[-1] == 4


def test_analyze_writes_a_file_the_result_object_loads_back_identically(tiny_run, tmp_path, capsys):
    import numpy as np

    from lfads.analysis.pipeline import AnalysisResult

    out = tmp_path / "analysis.h5"
    assert main(["analyze", "--run", str(tiny_run), "--out", str(out), "--n-initial", "64",
                 "--expansion-steps", "50", "--no-progress"]) == 0
    assert "Wrote" in capsys.readouterr().out
    result = AnalysisResult.load(out)
    assert len(result.fixed_points) >= 1 and result.jslds is not None
    assert result.info["split"] == "valid" and result.info["n_initial"] == 64
    again = tmp_path / "again.h5"
    result.save(again)
    reloaded = AnalysisResult.load(again)
    for a, b in ((result.fixed_points.to_h5()[0], reloaded.fixed_points.to_h5()[0]),
                 (result.jslds.to_h5()[0], reloaded.jslds.to_h5()[0])):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert reloaded.info == result.info
    with pytest.raises(SystemExit, match="exists"):
        main(["analyze", "--run", str(tiny_run), "--out", str(out), "--no-progress"])


@pytest.fixture(scope="module")
def tiny_run_other_seed(small_lorenz, tmp_path_factory, monkeypatch_module):
    save_dir = tmp_path_factory.mktemp("runs_seed1")
    monkeypatch_module.setattr(sys, "argv", ["lfads"])
    main(fit_args(small_lorenz, save_dir, "--model.kl_increase_epoch", "1", "--trainer.max_epochs", "3",
                  "--seed_everything", "1"))
    return save_dir / "tiny"


def test_sample_of_several_runs_writes_their_averaged_rates(tiny_run, tiny_run_other_seed, tmp_path, capsys):
    import numpy as np
    import torch

    from lfads.rundir import load_model_and_data
    from lfads.sampling import sample_posteriors

    runs = [tiny_run, tiny_run_other_seed]
    out = tmp_path / "ensemble.h5"
    torch.manual_seed(7)
    assert main(["sample", "--run", str(runs[0]), "--run", str(runs[1]), "--out", str(out), "--samples", "3",
                 "--splits", "valid", "--no-progress"]) == 0
    assert "Ensemble of 2 models" in capsys.readouterr().out
    # the same draws, member by member: load both, then sample each in turn
    torch.manual_seed(7)
    members = [load_model_and_data(find_checkpoint(r)) for r in runs]
    rates = [sample_posteriors(m, dm, 3, ("valid",), progress=False)["lorenz_small"]["valid"]["rates"]
             for m, dm in members]
    assert not np.allclose(rates[0], rates[1])  # two different models
    with h5py.File(out) as f:
        assert set(f["lorenz_small"]["valid"]) == {"rates"}
        np.testing.assert_allclose(f["lorenz_small"]["valid"]["rates"][()], (rates[0] + rates[1]) / 2, rtol=1e-5)
        assert f.attrs["n_members"] == 2
        assert f.attrs["checkpoint"].split("\n") == [str(find_checkpoint(r)) for r in runs]
        assert "lorenz_small/valid/rate_r2" in f.attrs


def test_sample_of_several_runs_needs_an_output_file_and_no_nwb(tiny_run, tiny_run_other_seed, tmp_path):
    both = ["sample", "--run", str(tiny_run), "--run", str(tiny_run_other_seed), "--samples", "2", "--no-progress"]
    with pytest.raises(SystemExit):
        main(both)
    with pytest.raises(SystemExit):
        main(both + ["--out", str(tmp_path / "e.h5"), "--nwb-out", str(tmp_path / "e.nwb")])
    assert not (tmp_path / "e.h5").exists()


def test_each_fit_claims_a_run_directory_of_its_own(tmp_path, monkeypatch):
    from lfads.rundir import claim_run_version

    root = tmp_path / "runs" / "tiny"
    assert claim_run_version(root) == 0 and (root / "version_0").is_dir()
    (root / "version_2").mkdir()
    (root / "version_notes").mkdir()
    assert claim_run_version(root) == 3
    # a folder appearing between the listing and the mkdir (another fit starting at the same moment)
    real_mkdir = type(root).mkdir

    def racing_mkdir(self, *args, **kwargs):
        if self.name == "version_4" and not self.exists():
            real_mkdir(self)  # the other fit wins the race
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(root), "mkdir", racing_mkdir)
    assert claim_run_version(root) == 5


# ---- runs opened from anywhere ------------------------------------------------------------------------------------


def test_sample_from_another_folder_opens_the_run_as_load_run_does(small_lorenz, tmp_path, monkeypatch):
    """A fit given a relative data path is sampled from another working folder exactly as load_run opens it."""
    import shutil

    import numpy as np

    from lfads.run import load_run

    repo = Path.cwd()
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(small_lorenz, project / "data" / "lorenz_small.h5")
    monkeypatch.setattr(sys, "argv", ["lfads"])
    monkeypatch.chdir(project)
    args = fit_args("data/lorenz_small.h5", "runs", "--trainer.max_epochs", "1")
    args[args.index("configs/lorenz.yaml")] = str(repo / "configs" / "lorenz.yaml")
    main(args)
    run = project / "runs" / "tiny"
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "samples.h5"
    assert main(["sample", "--run", str(run), "--out", str(out), "--samples", "2", "--splits", "valid",
                 "--seed", "3", "--no-progress"]) == 0
    opened = load_run(run, n_samples=2, splits=("valid",), seed=3)
    assert [Path(s.path).resolve() for s in opened.datamodule.sessions] == [project / "data" / "lorenz_small.h5"]
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["lorenz_small/valid/rates"][()], opened.outputs("valid")["rates"], rtol=1e-6)


def test_load_run_refuses_a_misspelt_split_before_touching_the_samples_file(tiny_run):
    from lfads.errors import LFADSDataError
    from lfads.run import load_run

    samples = tiny_run / "version_0" / "posterior_samples.h5"
    before = samples.read_bytes() if samples.exists() else None
    with pytest.raises(LFADSDataError, match="unknown split 'vaild' \\(did you mean 'valid'\\?\\)"):
        load_run(tiny_run, splits=("vaild",), resample=True)
    assert (samples.read_bytes() if samples.exists() else None) == before


@pytest.mark.parametrize(("settings", "says"), [
    ({"split": "vaild"}, "no 'vaild' split (it has ['train', 'valid'])"),
    ({"session": 2}, "session index 2 out of range: give an index from 0 to 0"),
    ({"n_initial": 0}, "analyze_model: n_initial must be a whole number of at least 1"),
    ({"max_trials": 0}, "max_trials must be a whole number of at least 1"),
])
def test_analyze_model_refuses_a_bad_split_session_or_count_before_any_search(tiny_run, settings, says):
    from lfads.analysis.pipeline import analyze_model
    from lfads.errors import LFADSDataError
    from lfads.run import load_run

    run = load_run(tiny_run, splits=("valid",))
    with pytest.raises(LFADSDataError) as info:
        analyze_model(run.model, run.datamodule, **{"jslds": False, "progress": False, **settings})
    assert says in str(info.value)


# ---- the one error path -------------------------------------------------------------------------------------------


def one_error_line(argv: list[str], capsys, command: str) -> str:
    """Run ``lfads argv``; check it exits 2 with one ``lfads <command>: error:`` line and no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0]
    assert errors[0].startswith(f"lfads {command}: error: ")
    assert str(stop.value) == errors[0]
    return errors[0]


def sha256(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_fit_reports_bad_data_as_one_line_and_makes_no_run_folder(tmp_path, small_lorenz, monkeypatch, capsys):
    bad = tmp_path / "bad.h5"
    with h5py.File(small_lorenz) as src, h5py.File(bad, "w") as dst:
        for key in src:
            if key != "valid_recon_data":
                src.copy(key, dst)
    before = sha256(bad)
    monkeypatch.setattr(sys, "argv", ["lfads"])
    line = one_error_line(fit_args(bad, tmp_path / "runs"), capsys, "fit")
    assert "bad.h5" in line and "valid_recon_data" in line
    assert not (tmp_path / "runs").exists() and sha256(bad) == before


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--model.gen_dimm", "3"], "gen_dimm"),
        (["--model.gen_dim", "many"], "model.gen_dim"),
        (["--config", "no_such_config.yaml"], "no_such_config.yaml"),
    ],
)
def test_fit_reports_bad_arguments_as_one_line(extra, names, tmp_path, small_lorenz, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    assert names in one_error_line(fit_args(small_lorenz, tmp_path / "runs", *extra), capsys, "fit")
    assert not (tmp_path / "runs").exists()


def test_fit_failing_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, small_lorenz, monkeypatch, capsys):
    from lfads.errors import LFADSConfigError
    from lfads.model import LFADS

    def refuse(self):
        raise LFADSConfigError("model.lr_init: must be > 0")

    monkeypatch.setattr(LFADS, "configure_optimizers", refuse)  # fails after the run folder is claimed
    monkeypatch.setattr(sys, "argv", ["lfads"])
    (tmp_path / "runs" / "tiny" / "version_0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run")
    assert "lr_init" in one_error_line(fit_args(small_lorenz, tmp_path / "runs"), capsys, "fit")
    assert [p.name for p in (tmp_path / "runs" / "tiny").iterdir()] == ["version_0"]


def test_debug_flag_shows_the_original_error(tmp_path, small_lorenz, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lfads"])
    with pytest.raises(LFADSDataError):
        main(fit_args(tmp_path / "missing.h5", tmp_path / "runs", "--debug"))
    monkeypatch.setenv("LFADS_DEBUG", "1")
    with pytest.raises(LFADSDataError):
        main(fit_args(tmp_path / "missing.h5", tmp_path / "runs"))


def test_help_lists_only_the_lightning_commands_lfads_runs(capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out.split("Available subcommands:")[1]
    assert {"fit", "validate", "test"} <= set(listed.split()) and "predict" not in listed


def test_unknown_command_is_one_line(capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["sampel"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "lfads: error: unknown command 'sampel'; choose one of "
        "fit, validate, test, sample, analyze, convert, tune, nlb, compare, population"
    ]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--samples", "0"], "--samples"),
        (["--samples", "-3"], "--samples"),
        (["--splits", "tset"], "train, valid"),
        (["--out", "{tmp}"], "is a directory"),
        (["--out", "{tmp}/no/such/folder/x.h5"], "does not exist"),
        (["--out", "{data}", "--overwrite"], "input data"),
        (["--out", "{ckpt}", "--overwrite"], "files of a run"),
        (["--data", "{tmp}/truncated.h5"], "truncated.h5"),
        (["--bogus"], "--bogus"),
    ],
)
def test_sample_reports_bad_arguments_as_one_line(args, names, tiny_run, small_lorenz, tmp_path, capsys):
    ckpt = find_checkpoint(tiny_run)
    (tmp_path / "truncated.h5").write_bytes(small_lorenz.read_bytes()[:3000])
    fill = {"tmp": str(tmp_path), "data": str(small_lorenz), "ckpt": str(ckpt)}
    args = [a.format(**fill) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "s.h5")]
    hashes = {p: sha256(p) for p in (small_lorenz, ckpt)}
    line = one_error_line(["sample", "--run", str(tiny_run), *out, "--no-progress", *args], capsys, "sample")
    assert names in line
    assert {p: sha256(p) for p in hashes} == hashes
    assert not (tmp_path / "s.h5").exists()


@pytest.mark.parametrize(
    ("source", "names"),
    [
        (["--ckpt", "{tmp}/missing.ckpt"], "missing.ckpt"),
        (["--ckpt", "{tmp}/notes.ckpt"], "not a checkpoint"),
        (["--ckpt", "{tmp}"], "is a directory"),
        (["--run", "{tmp}/no_run"], "no_run"),
    ],
)
def test_sample_reports_bad_checkpoints_as_one_line(source, names, tmp_path, capsys):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    source = [a.format(tmp=tmp_path) for a in source]
    assert names in one_error_line(["sample", *source, "--out", str(tmp_path / "s.h5")], capsys, "sample")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--n-initial", "0"], "--n-initial"),
        (["--max-trials", "0"], "--max-trials"),
        (["--session", "5"], "--session 5"),
        (["--split", "tset"], "train, valid"),
        (["--out", "{data}", "--overwrite"], "input data"),
        (["--out", "{ckpt}", "--overwrite"], "files of a run"),
    ],
)
def test_analyze_reports_bad_arguments_as_one_line(args, names, tiny_run, small_lorenz, tmp_path, capsys):
    ckpt = find_checkpoint(tiny_run)
    args = [a.format(data=small_lorenz, ckpt=ckpt) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "a.h5")]
    hashes = {p: sha256(p) for p in (small_lorenz, ckpt)}
    line = one_error_line(["analyze", "--run", str(tiny_run), *out, "--no-progress", *args], capsys, "analyze")
    assert names in line
    assert {p: sha256(p) for p in hashes} == hashes


@pytest.mark.slow  # two fresh interpreters
def test_the_installed_command_prints_one_line_and_debug_the_traceback(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    env.pop("LFADS_DEBUG", None)
    cmd = [sys.executable, "-m", "lfads", "sample", "--ckpt", str(tmp_path / "none.ckpt"), "--samples", "0"]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == ["lfads sample: error: --samples 0: must be at least 1."]
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, env=env, check=False)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "LFADSArgumentError" in debug.stderr
