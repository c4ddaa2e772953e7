"""`lfads population`: a tiny population trained, analysed and written through the command line."""

from __future__ import annotations

import socket
import sys

import pytest

from lfads.cli import main
from lfads.population.population import load_population, run_population

TINY = ["--task", "flipflop", "--arch", "gru,vanilla", "--seeds", "2", "--units", "8", "--max-steps", "20",
        "--n-initial", "16"]


def test_population_file_holds_every_network_and_its_fixed_points(tmp_path, capsys):
    out = tmp_path / "pop.h5"
    assert main(["population", *TINY, "--out", str(out)]) == 0
    pop = load_population(out)
    assert pop.archs == ["gru", "vanilla"] and pop.units == 8
    for arch in pop.archs:
        assert len(pop.fits[arch].reached) == 2 and len(pop.fixed_points[arch]) == 2
    assert "median loss" in capsys.readouterr().out


def test_each_task_trains_with_the_settings_of_the_universality_figures(tmp_path):
    from lfads.population.universality import TRAINING

    out = tmp_path / "pop.h5"
    assert main(["population", *TINY, "--target-loss", "0.5", "--rate-penalty", "0.01", "--no-graphs",
                 "--out", str(out)]) == 0
    pop = load_population(out)
    for arch in pop.archs:
        config = pop.fits[arch].config
        assert (config.lr, config.batch_size) == (TRAINING["flipflop"]["lr"], TRAINING["flipflop"]["batch_size"])
        assert config.carry_state and config.identity_candidate
        assert config.target_loss == 0.5  # the option overrides the task's setting
        assert config.rate_penalty == 0.01 and TRAINING["flipflop"].get("rate_penalty", 0.0) == 0.0


@pytest.mark.parametrize(("extra", "says"), [
    (["--arch", "gru,transformer"], "--arch"),
    (["--seeds", "0"], "--seeds"),
    (["--rate-penalty", "-0.1"], "--rate-penalty -0.1: must be at least 0.0"),
    (["--rate-penalty", "nan"], "--rate-penalty nan: must be at least 0.0"),
    (["--target-loss", "-1"], "--target-loss -1.0: must be at least 0.0"),
    (["--target-loss", "inf"], "--target-loss inf: must be a finite number"),
    (["--task", "juggling"], "--task juggling: unknown task; choose from"),
    (["--n-initial", "99999999999999999999"], "--n-initial 99999999999999999999: must be at most 1000000"),
    (["--ray", "--seeds-per-trial", "0"], "--seeds-per-trial 0: must be at least 1"),
    (["--ray", "--cpus-per-trial", "0"], "--cpus-per-trial 0: must be at least 1"),
    (["--seeds-per-trial", "2"], "--seeds-per-trial: only with --ray"),
    (["--ray-address", "10.0.0.5:6379"], "--ray-address: only with --ray"),
])
def test_bad_arguments_are_one_line_before_any_training(tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit) as exit_info:
        main(["population", *TINY, *extra, "--out", str(tmp_path / "pop.h5")])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads population: error:") and says in line
    assert not (tmp_path / "pop.h5").exists()


def test_population_refuses_a_repeated_architecture_before_any_training(tmp_path, capsys, monkeypatch):
    import lfads.population.population as population

    monkeypatch.setattr(population, "run_population", lambda **kw: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_info:
        main(["population", *TINY, "--arch", "gru,vanilla,gru", "--out", str(tmp_path / "pop.h5")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and line.startswith("lfads population: error:")
    assert "--arch gru,vanilla,gru: gru given more than once" in line and not (tmp_path / "pop.h5").exists()


def test_an_existing_file_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "pop.h5"
    out.write_bytes(b"earlier results")
    with pytest.raises(SystemExit):
        main(["population", *TINY, "--out", str(out)])
    assert out.read_bytes() == b"earlier results"
    assert "--overwrite" in capsys.readouterr().err


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(SystemExit) as exit_info:
        main(["population", *TINY, "--ray", "--out", str(tmp_path / "pop.h5")])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads population: error: --ray: Ray Tune is not installed")
    assert "pip install 'lfads[tune]'" in line


def test_ray_address_without_a_cluster_is_one_line_before_any_training(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    import ray

    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(SystemExit) as exit_info:
        main(["population", *TINY, "--ray", "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path / "pop.h5")])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"Ray address 127.0.0.1:{port}: no Ray cluster answers" in line and "ray start --head" in line
    assert not ray.is_initialized() and not (tmp_path / "pop.h5").exists()


def test_ray_options_reach_the_spread_population(tmp_path, monkeypatch):
    """--ray hands the trial settings and the population settings to run_population_ray (stood in for here)."""
    pytest.importorskip("ray", reason="Ray Tune is optional: pip install 'lfads[tune]'")
    from lfads.population import spread

    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return run_population(task=kwargs["task"], archs=kwargs["archs"], seeds=kwargs["seeds"], units=kwargs["units"],
                              max_steps=kwargs["max_steps"], find_points=False)

    monkeypatch.setattr(spread, "run_population_ray", fake)
    out = tmp_path / "pop.h5"
    assert main(["population", *TINY, "--ray", "--seeds-per-trial", "1", "--cpus-per-trial", "2",
                 "--ray-storage", str(tmp_path / "ray"), "--out", str(out)]) == 0
    assert len(calls) == 1
    kwargs = calls[0]
    assert {k: kwargs[k] for k in ("seeds_per_trial", "cpus_per_trial", "address", "storage")} == {
        "seeds_per_trial": 1, "cpus_per_trial": 2, "address": None, "storage": str(tmp_path / "ray")}
    assert kwargs["archs"] == ["gru", "vanilla"] and kwargs["seeds"] == 2 and kwargs["units"] == 8
    assert kwargs["lr"] == 3e-3 and kwargs["identity_candidate"] is True and kwargs["n_initial_states"] == 16
    assert load_population(out).archs == ["gru", "vanilla"]


def test_a_task_setting_of_one_architecture_gives_way_to_the_option_given(tmp_path, monkeypatch):
    """The sine wave's vanilla networks train with their own step limit and half-life unless an option sets one."""
    import lfads.population.population as population_module
    from lfads.population.universality import TRAINING

    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return run_population(task="flipflop", archs=["vanilla"], seeds=1, units=4, max_steps=2, find_points=False)

    monkeypatch.setattr(population_module, "run_population", fake)
    sine = ["population", "--task", "sine", "--arch", "vanilla", "--seeds", "1", "--units", "4"]
    assert main([*sine, "--out", str(tmp_path / "a.h5")]) == 0
    assert calls[-1]["arch_settings"] == TRAINING["sine"]["arch_settings"]
    assert calls[-1]["max_steps"] == TRAINING["sine"]["max_steps"]
    assert main([*sine, "--max-steps", "7", "--out", str(tmp_path / "b.h5")]) == 0
    assert calls[-1]["max_steps"] == 7
    vanilla = calls[-1]["arch_settings"]["vanilla"]
    assert "max_steps" not in vanilla and vanilla["lr_half_life"] == TRAINING["sine"]["arch_settings"]["vanilla"][
        "lr_half_life"]
