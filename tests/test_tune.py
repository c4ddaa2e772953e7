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
