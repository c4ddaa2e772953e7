"""`lfads tune`: settings validation, history bookkeeping, and a tiny population-based training run on Ray Tune."""

from __future__ import annotations

import csv
import sys
import time

import pytest
import torch
import yaml

from lfads.errors import LFADSDataError
from lfads.tune import load_tune_settings, parse_tune_settings, read_population_history, select_best_trial, tune_command

SPACE = {"lr_init": {"distribution": "loguniform", "low": 1.0e-3, "high": 2.0e-2},
         "dropout_rate": {"distribution": "uniform", "low": 0.0, "high": 0.3}}


def test_tune_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tune": {"search_space": SPACE}}))
    with pytest.raises(SystemExit, match=r"pip install 'lfads\[tune\]'"):
        tune_command(["--config", str(config)])


def test_settings_reject_a_hyperparameter_the_model_does_not_have():
    with pytest.raises(LFADSDataError, match=r"pbt\.yaml: tune\.search_space\.learning_rate.*not an argument"):
        parse_tune_settings({"search_space": {"learning_rate": SPACE["lr_init"]}}, "pbt.yaml")


def test_settings_reject_a_loguniform_range_that_reaches_zero():
    bad = {"cd_rate": {"distribution": "loguniform", "low": 0.0, "high": 0.5}}
    with pytest.raises(LFADSDataError, match=r"tune\.search_space\.cd_rate.*low > 0"):
        parse_tune_settings({"search_space": bad}, "pbt.yaml")


def test_settings_layer_files_and_command_line_overrides(tmp_path):
    base, layer = tmp_path / "base.yaml", tmp_path / "layer.yaml"
    base.write_text(yaml.safe_dump({"tune": {"num_samples": 8, "search_space": SPACE}}, sort_keys=False))
    layer.write_text("tune:\n  perturbation_interval: 3\n  search_space:\n"
                     "    cd_rate: {distribution: uniform, low: 0.0, high: 1.0e-1}\n")
    settings = load_tune_settings([base, layer], {"num_samples": 4})
    assert settings.num_samples == 4 and settings.perturbation_interval == 3
    assert [d.name for d in settings.search_space] == ["lr_init", "dropout_rate", "cd_rate"]
    assert settings.search_space[2].high == pytest.approx(0.1)  # YAML "1.0e-1"
    assert settings.search_space[0].clip(1.0) == pytest.approx(2.0e-2)


def test_best_trial_is_chosen_by_its_final_report_not_its_best_one():
    rows = [
        {"trial": "a", "epoch": 2, "m": 0.1}, {"trial": "b", "epoch": 2, "m": 0.5},
        {"trial": "a", "epoch": 4, "m": 0.7}, {"trial": "b", "epoch": 4, "m": 0.4},
    ]
    assert select_best_trial(rows, "m", "min") == ("b", 0.4, {"a": 0.7, "b": 0.4})
    assert select_best_trial(rows, "m", "max")[0] == "a"


def _last_logged(run_dir, metric):
    with open(run_dir / "metrics.csv", newline="") as f:
        values = [(int(r["epoch"]), float(r[metric])) for r in csv.DictReader(f) if r.get(metric)]
    return values


@pytest.mark.slow
def test_population_exploits_and_reports_its_best_trial(small_lorenz, tmp_path):
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    from lfads.rundir import find_checkpoint, load_model_and_data
    from lfads.tune import run_population_based_training

    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({
        "trainer": {"accelerator": "cpu"},
        "model": {"gen_dim": 16, "ic_dim": 8, "fac_dim": 4, "ic_enc_dim": 8, "ci_enc_dim": 8},
        "data": {"data_paths": str(small_lorenz), "batch_size": 8},
        "tune": {"num_samples": 4, "perturbation_interval": 2, "max_epochs": 4, "burn_in_period": 0, "num_cpus": 2,
                 "save_dir": str(tmp_path / "runs"), "search_space": SPACE},
    }))
    start = time.perf_counter()
    outcome = run_population_based_training(["configs/pbt_lorenz.yaml", tiny], verbose=0)
    elapsed = time.perf_counter() - start
    print(f"tiny PBT: {elapsed:.1f} s")

    history = read_population_history(outcome.tune_dir / "pbt_history.csv")
    trials = sorted({r["trial"] for r in history})
    assert len(trials) == 4 and max(r["epoch"] for r in history) == 4

    # At least one exploit: a round that started from another trial's checkpoint, with perturbed hyperparameters.
    exploits = [r for r in history if r["exploited_from"]]
    assert exploits, "no trial exploited another"
    settings = {d.name: d for d in load_tune_settings([tiny]).search_space}
    for row in exploits:
        donor = next(r for r in history if r["trial"] == row["exploited_from"] and r["epoch"] == row["start_epoch"])
        assert row["trial"] != donor["trial"]
        assert row["resumed_sha1"] == donor["checkpoint_sha1"]  # the bytes the donor reported
        assert row["epoch"] > row["start_epoch"] > 0
        for name, dim in settings.items():
            assert row[name] != donor[name], f"{name} was copied, not perturbed"
            assert dim.low <= row[name] <= dim.high
    # The exploiting trial's own metrics.csv continues the donor's epochs (no restart from epoch 0).
    logged = _last_logged(outcome.tune_dir / exploits[0]["trial"], "valid/recon_smth")
    assert [e for e, _ in logged] == list(range(4))

    # The reported best trial has the best final validation metric, read back from every run directory.
    final = {t: _last_logged(outcome.tune_dir / t, "valid/recon_smth")[-1] for t in trials}
    assert all(epoch == 3 for epoch, _ in final.values())
    best = min(final, key=lambda t: final[t][1])
    assert outcome.best_trial == best
    assert outcome.best_value == pytest.approx(final[best][1], rel=1e-6)
    assert outcome.best_run_dir == outcome.tune_dir / best

    # Each trial directory is an lfads run directory that `lfads sample --run` can load.
    ckpt = find_checkpoint(outcome.best_run_dir)
    model, datamodule = load_model_and_data(ckpt)
    assert list(model.hparams.encod_data_dims) == [12] and datamodule.batch_size == 8
    last = torch.load(outcome.best_run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 4 and "datamodule_hyper_parameters" in last
    assert (outcome.best_run_dir / "config.yaml").exists()


# ---------------------------------------------------------------------------------------------- settings, per field
def _parse_error(section: dict) -> str:
    with pytest.raises(LFADSDataError) as err:
        parse_tune_settings({"search_space": SPACE, **section}, "pbt.yaml")
    return str(err.value)


@pytest.mark.parametrize("key, value, message", [
    ("num_samples", 0, "pbt.yaml: tune.num_samples must be a positive integer, got 0."),
    ("num_samples", 1, "pbt.yaml: tune.num_samples must be at least 2 for a population, got 1."),
    ("num_samples", True, "pbt.yaml: tune.num_samples must be a positive integer, got True."),
    ("perturbation_interval", 2.5, "pbt.yaml: tune.perturbation_interval must be a positive integer, got 2.5."),
    ("max_epochs", "400", "pbt.yaml: tune.max_epochs must be a positive integer, got '400'."),
    ("burn_in_period", -1, "pbt.yaml: tune.burn_in_period must be a non-negative integer (epochs), got -1."),
    ("metric", "", "pbt.yaml: tune.metric must be a non-empty string, got ''."),
    ("mode", "lowest", "pbt.yaml: tune.mode must be 'min' or 'max', got 'lowest'."),
    ("quantile_fraction", 0.75, "pbt.yaml: tune.quantile_fraction must lie in (0, 0.5], got 0.75."),
    ("quantile_fraction", "half", "pbt.yaml: tune.quantile_fraction: expected a number, got 'half'."),
    ("resample_probability", 1.5, "pbt.yaml: tune.resample_probability must lie in [0, 1], got 1.5."),
    ("perturbation_factors", [], ("pbt.yaml: tune.perturbation_factors must be a list of numbers, e.g. [1.2, 0.8]; "
                                 "got [].")),
    ("perturbation_factors", [1.2, 0], "pbt.yaml: tune.perturbation_factors[1] must be positive, got 0.0."),
    ("synch", "yes please", "pbt.yaml: tune.synch must be true or false, got 'yes please'."),
    ("resources_per_trial", {"cpu": -1}, ("pbt.yaml: tune.resources_per_trial: ['cpu'] must be non-negative "
                                         "amounts, e.g. {cpu: 1, gpu: 0}.")),
    ("resources_per_trial", 2, ("pbt.yaml: tune.resources_per_trial must map resource names to non-negative amounts, "
                               "e.g. {cpu: 1, gpu: 0}; got 2.")),
    ("num_cpus", 0, "pbt.yaml: tune.num_cpus must be a positive integer, got 0."),
    ("address", "10.0.0.5", ("pbt.yaml: tune.address: expected host:port (e.g. 10.0.0.5:6379), got '10.0.0.5'; "
                            "it is the address `ray start --head` prints, or 'auto'.")),
    ("address", "host:99999", ("pbt.yaml: tune.address: expected host:port (e.g. 10.0.0.5:6379), got 'host:99999'; "
                              "it is the address `ray start --head` prints, or 'auto'.")),
    ("time_budget_s", -60, "pbt.yaml: tune.time_budget_s must be positive, got -60.0."),
    ("time_budget_s", float("inf"), "pbt.yaml: tune.time_budget_s: expected a finite number, got inf."),
    ("save_dir", 3, "pbt.yaml: tune.save_dir must be a non-empty string, got 3."),
])
def test_each_tune_setting_is_checked_with_a_message_naming_the_file_and_key(key, value, message):
    assert _parse_error({key: value}) == message


def test_unknown_tune_setting_lists_the_known_ones():
    message = _parse_error({"population": 4})
    assert message.startswith("pbt.yaml: unknown tune setting(s) ['population']; the settings are [")
    assert "'num_samples'" in message and "'search_space'" in message


@pytest.mark.parametrize("space, message", [
    (None, ("pbt.yaml: tune.search_space must map model hyperparameters to {distribution: loguniform|uniform, "
           "low: ..., high: ...}, e.g. lr_init: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}.")),
    ({"lr_init": {"distribution": "normal", "low": 0.1, "high": 0.2}},
     "pbt.yaml: tune.search_space.lr_init.distribution: 'normal' is not one of ['uniform', 'loguniform']."),
    ({"lr_init": {"distribution": "uniform", "low": 0.1}},
     ("pbt.yaml: tune.search_space.lr_init: give exactly distribution, low and high, e.g. {distribution: uniform, "
     "low: 0.0, high: 0.5}; got {'distribution': 'uniform', 'low': 0.1}.")),
    ({"lr_init": {"distribution": "uniform", "low": 0.2, "high": 0.1}},
     "pbt.yaml: tune.search_space.lr_init: low (0.2) must be smaller than high (0.1)."),
    ({"lr_init": {"distribution": "uniform", "low": "a", "high": 0.1}},
     "pbt.yaml: tune.search_space.lr_init.low: expected a number, got 'a'."),
])
def test_each_search_dimension_is_checked_with_a_message_naming_it(space, message):
    with pytest.raises(LFADSDataError) as err:
        parse_tune_settings({"search_space": space}, "pbt.yaml")
    assert str(err.value) == message


def test_valid_settings_are_normalised():
    settings = parse_tune_settings({"search_space": SPACE, "resources_per_trial": {"cpu": 2, "gpu": 0},
                                    "perturbation_factors": [1.5, "0.5"], "time_budget_s": "1e3",
                                    "address": "ray://10.0.0.5:10001", "synch": False}, "pbt.yaml")
    assert settings.resources_per_trial == {"cpu": 2.0, "gpu": 0.0}
    assert settings.perturbation_factors == (1.5, 0.5) and settings.time_budget_s == 1000.0
    assert settings.address == "ray://10.0.0.5:10001" and settings.synch is False
    assert settings.to_dict()["search_space"]["lr_init"] == SPACE["lr_init"]


def test_cluster_address_forms():
    from lfads.tune.settings import split_address

    assert split_address("auto") is None and split_address("local") is None
    assert split_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert split_address("ray://head.lab:10001") == ("head.lab", 10001)
    assert split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("6379", ":6379", "host:port", "host:0"):
        with pytest.raises(ValueError, match="expected host:port"):
            split_address(bad)


# ---------------------------------------------------------------------------------------------- history
def test_population_history_round_trips_through_its_csv(tmp_path):
    from lfads.tune import PopulationHistory

    history = PopulationHistory(tmp_path / "pbt_history.csv", ["lr_init", "dropout_rate"])
    history.add("trial_00", {"training_iteration": 1, "start_epoch": 0, "epoch": 2, "time_total_s": 3.5,
                             "config": {"lr_init": 0.004, "dropout_rate": 0.1}, "valid/recon_smth": 0.25,
                             "train/loss": 9.0})
    history.add("trial_01", {"training_iteration": 2, "start_epoch": 2, "epoch": 4, "time_total_s": 7.0,
                             "config": {"lr_init": 0.005, "dropout_rate": 0.2}, "exploited_from": "trial_00",
                             "checkpoint_sha1": "abc123", "resumed_sha1": "def456", "valid/recon_smth": 0.2,
                             "valid/loss": 1.5})
    rows = read_population_history(tmp_path / "pbt_history.csv")
    assert rows[0] == {"trial": "trial_00", "round": 1, "start_epoch": 0, "epoch": 2, "exploited_from": "",
                       "checkpoint_sha1": "", "resumed_sha1": "", "time_total_s": 3.5, "lr_init": 0.004,
                       "dropout_rate": 0.1, "valid/recon_smth": 0.25, "valid/loss": None}
    assert rows[1]["exploited_from"] == "trial_00" and rows[1]["resumed_sha1"] == "def456"
    assert rows[1]["valid/loss"] == 1.5 and isinstance(rows[1]["epoch"], int)
    assert [p.name for p in tmp_path.iterdir()] == ["pbt_history.csv"]  # no temporary file left behind
    assert select_best_trial(rows, "valid/recon_smth") == ("trial_01", 0.2, {"trial_00": 0.25, "trial_01": 0.2})


# ---------------------------------------------------------------------------------------------- command line
def test_argv_splits_into_configs_tune_settings_and_trial_arguments():
    from lfads.tune import split_tune_argv

    configs, overrides, rest = split_tune_argv([
        "--config", "a.yaml", "--model.gen_dim", "16", "--tune.num_samples=4", "--config=b.yaml",
        "--tune.search_space", "{cd_rate: {distribution: uniform, low: 0, high: 1.0e-1}}",
        "--data.data_paths", "x.h5", "y.h5", "--trainer.max_epochs", "-1", "--tune.address", "10.0.0.5:6379",
    ])
    assert configs == ["a.yaml", "b.yaml"]
    assert overrides == {"num_samples": 4, "address": "10.0.0.5:6379",
                         "search_space": {"cd_rate": {"distribution": "uniform", "low": 0, "high": 0.1}}}
    assert rest == ["--model.gen_dim", "16", "--data.data_paths", "x.h5", "y.h5", "--trainer.max_epochs", "-1"]


@pytest.mark.parametrize("argv, message", [
    (["--config"], "command line: argument --config: expected one argument; see lfads tune --help."),
    (["--config", "a.yaml", "--tune.num_samples"],
     "command line: argument --tune.num_samples: expected one argument; see lfads tune --help."),
    (["--config", "a.yaml", "--tune.search_space", "{a: [1"],
     ("command line: argument --tune.search_space: not a YAML value: '{a: [1' (expected ',' or ']', but got '<stream "
     "end>'); see lfads tune --help.")),
])
def test_argv_without_a_value_or_with_bad_yaml_is_an_error(argv, message):
    from lfads.tune import split_tune_argv

    with pytest.raises(LFADSDataError) as err:
        split_tune_argv(argv)
    assert str(err.value) == message


def test_argv_with_an_unknown_tune_key_is_an_error():
    from lfads.tune import split_tune_argv

    with pytest.raises(LFADSDataError, match=r"unknown tune setting\(s\) \['--tune\.resources_per_trial\.cpu'\]"):
        split_tune_argv(["--config", "a.yaml", "--tune.resources_per_trial.cpu", "2"])


def test_tune_layers_command_line_search_space_over_the_configs(tmp_path):
    from lfads.tune import split_tune_argv

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tune": {"search_space": SPACE, "num_samples": 8}}, sort_keys=False))
    configs, overrides, _ = split_tune_argv(["--config", str(config), "--tune.num_samples", "3", "--tune.search_space",
                                             "{lr_init: {distribution: uniform, low: 0.001, high: 0.002}}"])
    settings = load_tune_settings(configs, overrides)
    assert settings.num_samples == 3
    assert [(d.name, d.distribution) for d in settings.search_space] == [("lr_init", "uniform"),
                                                                        ("dropout_rate", "uniform")]


# ---------------------------------------------------------------------------------------------- cluster address
def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_address_fails_fast_naming_the_address_and_the_fix():
    from lfads.tune import RayClusterUnreachable, check_cluster_reachable

    address = f"127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(RayClusterUnreachable) as err:
        check_cluster_reachable(address)
    assert time.perf_counter() - start < 5.0
    message = str(err.value)
    assert isinstance(err.value, LFADSDataError) and "\n" not in message
    assert message.startswith(f"tune.address {address}: no Ray cluster answers at {address} (")
    assert "ray start --head --port" in message and "drop tune.address" in message


def test_reachable_cluster_address_and_local_ones_pass_the_check():
    import socket

    from lfads.tune import check_cluster_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_cluster_reachable(f"127.0.0.1:{server.getsockname()[1]}")
    check_cluster_reachable(None)
    check_cluster_reachable("auto")


def test_tune_command_with_an_unreachable_cluster_stops_before_any_training(tmp_path):
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    from lfads.tune import RayClusterUnreachable

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tune": {"search_space": SPACE, "save_dir": str(tmp_path / "runs")}}))
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(RayClusterUnreachable, match=f"tune.address {address}: no Ray cluster answers"):
        tune_command(["--config", str(config), "--tune.address", address, "--data.data_paths", "missing.h5"])
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------- rounds
def _write_metrics(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_round_metrics_continue_the_earlier_rounds(tmp_path):
    from lfads.tune.rounds import _merge_metrics, _previous_metrics

    _write_metrics(tmp_path / "metrics.csv", [{"epoch": "0", "valid/recon": "2.0"},
                                              {"epoch": "1", "valid/recon": "1.5"}])
    previous = _previous_metrics(tmp_path)
    assert not (tmp_path / "metrics.csv").exists() and (tmp_path / "metrics.csv.prev").exists()
    _write_metrics(tmp_path / "metrics.csv", [{"epoch": "2", "valid/recon": "1.2", "train/loss": "7"}])
    _merge_metrics(previous, tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["valid/recon"], r["train/loss"]) for r in rows] == [("0", "2.0", ""), ("1", "1.5", ""),
                                                                               ("2", "1.2", "7")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_an_interrupted_round_is_dropped_from_the_metrics(tmp_path):
    from lfads.tune.rounds import _previous_metrics

    _write_metrics(tmp_path / "metrics.csv.prev", [{"epoch": "0", "valid/recon": "2.0"}])
    _write_metrics(tmp_path / "metrics.csv", [{"epoch": "0", "valid/recon": "2.0"}, {"epoch": "1", "valid/recon": "9"}])
    assert _previous_metrics(tmp_path) == [{"epoch": "0", "valid/recon": "2.0"}]
    assert not (tmp_path / "metrics.csv").exists()


def test_an_exploited_checkpoint_keeps_the_exploiting_trials_best_checkpoint_tracking(tmp_path):
    import json

    from lfads.tune.rounds import _prepare_resume

    key = "ModelCheckpoint{'monitor': 'valid/recon_smth_ramped'}"
    donor, run_dir, work = tmp_path / "donor", tmp_path / "trial_01", tmp_path / "work"
    for folder in (donor, run_dir / "checkpoints", work):
        folder.mkdir(parents=True)
    torch.save({"epoch": 4, "hyper_parameters": {"lr_init": 0.004},
                "callbacks": {key: {"best_model_path": "donor.ckpt"}, "Other": {"x": 1}}}, donor / "lfads.ckpt")
    (donor / "meta.json").write_text(json.dumps({"trial": "trial_00", "epoch": 4}))
    torch.save({"callbacks": {key: {"best_model_path": "own.ckpt"}}}, run_dir / "checkpoints" / "last.ckpt")

    start = _prepare_resume(donor, "trial_01", run_dir, work)
    resumed = torch.load(start.resume, weights_only=False)
    assert resumed["callbacks"] == {key: {"best_model_path": "own.ckpt"}, "Other": {"x": 1}}
    assert (start.epoch, start.resumed_lr, start.exploited_from) == (4, 0.004, "trial_00")
    assert len(start.resumed_sha1) == 12

    (run_dir / "checkpoints" / "last.ckpt").unlink()  # before its first round a trial tracks nothing yet
    resumed = torch.load(_prepare_resume(donor, "trial_01", run_dir, work).resume, weights_only=False)
    assert resumed["callbacks"] == {"Other": {"x": 1}}
    own = _prepare_resume(donor, "trial_00", donor.parent, work)
    assert own.exploited_from == "" and torch.load(own.resume, weights_only=False)["callbacks"][key] == {
        "best_model_path": "donor.ckpt"}


def test_tune_without_a_config_says_to_pass_one():
    with pytest.raises(LFADSDataError, match=r"^command line: pass --config CONFIG\.yaml"):
        tune_command(["--model.gen_dim", "16"])


def test_tune_help_prints_usage_and_the_trust_note(capsys):
    assert tune_command(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lfads tune [--config CONFIG.yaml]") and "--tune.num_samples VALUE" in out
    assert "no authentication" in out
