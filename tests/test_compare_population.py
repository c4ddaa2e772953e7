"""`lfads compare --population` and lfads.population.comparison on a tiny population (2 archs x 2 seeds x 8 units)."""

from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pytest
import torch

from lfads.cli import main
from lfads.compare.api import ComparisonResult, compare_models
from lfads.compare.stats import separation_auc, silhouette, silhouette_test
from lfads.errors import LFADSDataError
from lfads.population.comparison import TaskReadout, compare_population, population_models, shared_trials
from lfads.population.population import load_population, run_population

METRICS = ["svcca", "procrustes", "dsa_eigenvalues", "topology", "topology_counts", "spectra"]
TINY = dict(task="flipflop", archs=["gru", "lstm"], seeds=2, units=8, max_steps=20, batch_size=8,
            n_initial_states=16, task_settings={"n_bits": 2, "n_time": 16})


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    path = tmp_path_factory.mktemp("population") / "pop.h5"
    run_population(**TINY, out=str(path))
    return path


@pytest.fixture(scope="module")
def without_points(tmp_path_factory):
    path = tmp_path_factory.mktemp("population") / "bare.h5"
    run_population(**TINY, find_points=False, out=str(path))
    return path


def _error_line(capsys) -> str:
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads compare: error:")
    return line


def test_adapter_models_hold_shared_trajectories_stored_points_graphs_and_readouts(population):
    pop = load_population(population)
    inputs = shared_trials(pop.task, 12, seed=3)
    models, labels = population_models(pop, inputs=inputs)
    assert [m.name for m in models] == ["gru/seed0", "gru/seed1", "lstm/seed0", "lstm/seed1"]
    assert labels.tolist() == ["gru", "gru", "lstm", "lstm"]
    traj = pop.trajectories(inputs)
    h = torch.randn(5, 16, dtype=torch.float64)
    for k, m in enumerate(models):
        arch, n = labels[k], k % 2
        np.testing.assert_array_equal(m.trajectories, traj[arch][n])
        assert m.trajectories.shape == (12, 16, 8)
        assert m.fixed_points is pop.fixed_points[arch][n]["zero"] and m.topology is pop.graphs[arch][n]["zero"]
        assert m.hidden_size == (16 if arch == "lstm" else 8) and m.input_size == 2
        # the map is the network's own cell, and the readout reads the first H entries of the state
        s = h[:, : m.hidden_size]
        u = torch.zeros(5, 2, dtype=torch.float64)
        torch.testing.assert_close(m.cell.step(s, u), pop.fits[arch].model.cell(n).dynamics().step(s, u))
        w, b = pop.readout(arch, n)
        assert isinstance(m.readout, TaskReadout)
        np.testing.assert_allclose(m.readout(s), s[:, :8].numpy() @ w.T + b, rtol=0, atol=1e-12)
    # the shared trials are the task's seeded trials
    assert torch.equal(shared_trials(pop.task, 12, seed=3), inputs)
    assert not torch.equal(shared_trials(pop.task, 12, seed=4), inputs)


def test_command_matrices_equal_compare_models_on_the_adapters_models(population, tmp_path, capsys):
    out = tmp_path / "compare.h5"
    assert main(["compare", "--population", str(population), "--metrics", ",".join(METRICS), "--trials", "16",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = ComparisonResult.load(out)
    pop = load_population(population)
    models, labels = population_models(pop, inputs=shared_trials(pop.task, 16, seed=0))
    direct = compare_models(models, METRICS, names=[m.name for m in models], seed=0, exact_only=False,
                            spectra_kwargs={"by": "readout"})
    assert saved.names == direct.names and saved.labels == labels.tolist() == ["gru", "gru", "lstm", "lstm"]
    for metric in METRICS:
        d = saved[metric]
        np.testing.assert_allclose(d, direct[metric], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.diag(d), 0.0)
        np.testing.assert_array_equal(d, d.T)
        # the silhouette printed and stored is sklearn's, recomputed here on the saved matrix
        expected = silhouette(d, labels)
        value, p, auc = re.search(rf"^ +{metric} +(\S+) +(\S+) +(\S+)$", printed, re.M).groups()
        assert float(value) == pytest.approx(expected, abs=5e-5)
        assert saved.settings[metric]["silhouette_by_arch"] == pytest.approx(expected, abs=1e-12)
        # its p-value against 1000 shuffles of the architecture labels, seeded by --seed, and the AUC
        shuffled = silhouette_test(d, labels, 1000, seed=0).p_value
        assert saved.settings[metric]["silhouette_p"] == shuffled and float(p) == pytest.approx(shuffled, rel=1e-2)
        assert saved.settings[metric]["auc_by_arch"] == separation_auc(d, labels)
        assert float(auc) == pytest.approx(separation_auc(d, labels), abs=5e-4)
        # printed: the mean distance within and between the architectures
        block = printed[printed.index(f"{metric} (mean over the models of each group)"):].splitlines()[2:4]
        gru = d[np.ix_([0, 1], [0, 1, 2, 3])]
        assert block[0].split() == ["gru", f"{d[0, 1]:.3f}", f"{gru[:, 2:].mean():.3f}"]
    assert saved.settings["spectra"]["by"] == "readout"  # memories paired by the output they hold
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_stored_graphs_are_used_not_rebuilt(population, monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("build_topology called although the population stores its graphs")

    monkeypatch.setattr("lfads.compare.api.build_topology", no_rebuild)
    res = compare_population(population, ["topology"], n_trials=8)
    pop = load_population(population)
    for m, (arch, n) in zip(res.models, [("gru", 0), ("gru", 1), ("lstm", 0), ("lstm", 1)]):
        assert sorted(m.topology.graph.edges) == sorted(pop.graphs[arch][n]["zero"].graph.edges)
        assert m.topology.indices.tolist() == pop.graphs[arch][n]["zero"].indices.tolist()


def test_pooled_copies_of_one_population_are_at_distance_zero_from_their_twins(population, tmp_path):
    twin = tmp_path / "twin.h5"
    shutil.copy(population, twin)
    res = compare_population([population, twin], ["procrustes"], archs=["lstm"], n_trials=8)
    assert res.result.names == ["pop:lstm/seed0", "pop:lstm/seed1", "twin:lstm/seed0", "twin:lstm/seed1"]
    d = res.result["procrustes"]
    assert d[0, 2] < 1e-6 and d[1, 3] < 1e-6 and d[0, 1] > 1e-3
    assert np.isnan(res.silhouettes["procrustes"])  # one architecture: no silhouette


def test_a_file_of_another_kind_is_refused_naming_the_file_and_its_format(tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "lfads.compare.ComparisonResult/1"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--population", str(other), "--out", str(tmp_path / "x.h5")])
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert str(other) in line and "not a population file" in line and "lfads.compare.ComparisonResult/1" in line
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(SystemExit):
        main(["compare", "--population", str(text), "--out", str(tmp_path / "x.h5")])
    assert str(text) in _error_line(capsys)
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(("sources", "says"), [
    (["--run", "somewhere", "--population", "pop.h5"], "not allowed with"),
    ([], "one of the arguments"),
])
def test_run_and_population_together_or_neither_are_one_line_errors(tmp_path, capsys, sources, says):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *sources, "--out", str(tmp_path / "x.h5")])
    assert exit_info.value.code == 2 and says in _error_line(capsys)


def test_fixed_point_metrics_without_stored_points_are_refused(without_points, tmp_path, capsys):
    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--population", str(without_points), "--metrics", "svcca,spectra", "--out", str(out)])
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert str(without_points) in line and "no fixed points" in line and "spectra" in line
    assert not out.exists()
    # the geometry needs only the networks
    assert main(["compare", "--population", str(without_points), "--metrics", "svcca", "--trials", "8",
                 "--out", str(out)]) == 0
    assert ComparisonResult.load(out)["svcca"].shape == (4, 4)


@pytest.mark.parametrize(("extra", "says"), [
    (["--condition", "one"], "zero"),
    (["--archs", "gru,transformer"], "transformer"),
])
def test_unknown_condition_or_architecture_lists_what_is_there(population, tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit):
        main(["compare", "--population", str(population), "--metrics", "svcca", *extra, "--out",
              str(tmp_path / "x.h5")])
    assert says in _error_line(capsys)


def test_population_options_are_refused_with_runs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--run", "a", "--run", "b", "--condition", "zero", "--out", str(tmp_path / "x.h5")])
    assert "--condition" in _error_line(capsys)


@pytest.mark.parametrize("extra", [["--max-trials", "50"], ["--split", "train"], ["--session", "1"]])
def test_run_options_are_refused_with_a_population(population, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--population", str(population), *extra, "--out", str(tmp_path / "x.h5")])
    line = _error_line(capsys)
    assert exit_info.value.code == 2 and extra[0] in line and "--trials" in line
    assert not (tmp_path / "x.h5").exists()


def test_python_route_refuses_populations_of_different_tasks(population, tmp_path):
    other = tmp_path / "bits3.h5"
    run_population(**{**TINY, "archs": ["gru"], "task_settings": {"n_bits": 3, "n_time": 16}}, find_points=False,
                   out=str(other))
    with pytest.raises(LFADSDataError, match="same trials"):
        compare_population([population, other], ["svcca"])


def test_compare_refuses_a_directory_or_truncated_or_incomplete_population_file_in_one_line(population, tmp_path,
                                                                                             capsys):
    folder = tmp_path / "pop_folder.h5"
    folder.mkdir()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(population.read_bytes()[:3000])
    incomplete = tmp_path / "incomplete.h5"
    shutil.copy(population, incomplete)
    with h5py.File(incomplete, "a") as f:
        del f["lstm/weights"]
    out = tmp_path / "x.h5"
    for path, says in ((folder, "is a directory"), (truncated, "truncated"), (incomplete, "'weights'")):
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", "--population", str(path), "--metrics", "svcca", "--out", str(out)])
        line = _error_line(capsys)
        assert exit_info.value.code == 2 and str(path) in line and says in line and "lfads population" in line
        assert not out.exists()


@pytest.mark.parametrize(("extra", "says"), [
    (["--metrics", "svcca,procrustes,svcca"], "--metrics svcca,procrustes,svcca: svcca given more than once"),
    (["--metrics", "svcca,jslds"], "jslds compares LFADS runs (--run or --ckpt), not the networks of a population"),
    (["--seed", "-1"], "--seed -1: must be at least 0"),
])
def test_compare_refuses_repeated_metrics_jslds_and_a_negative_seed_with_a_population_in_one_line(
        population, tmp_path, capsys, extra, says):
    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--population", str(population), "--metrics", "svcca", *extra, "--out", str(out)])
    assert exit_info.value.code == 2 and says in _error_line(capsys)
    assert not out.exists() and not out.with_suffix(".png").exists()


@pytest.mark.parametrize(("out_name", "figure", "says"), [
    ("x.h5", "x.txt", "matplotlib cannot write a .txt figure"),
    ("x.h5", "x.h5", "matplotlib cannot write a .h5 figure"),
    ("x.png", None, "the same file as --out"),
    ("x.svg", "x.svg", "the same file as --out"),
])
def test_compare_refuses_a_figure_it_cannot_write_or_that_is_the_output_before_any_work(
        population, tmp_path, capsys, out_name, figure, says):
    out = tmp_path / out_name
    out.write_bytes(b"earlier results")
    extra = [] if figure is None else ["--figure", str(tmp_path / figure)]
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--population", str(population), "--metrics", "svcca", "--trials", "8", "--out", str(out),
              "--overwrite", *extra])
    line = _error_line(capsys)
    assert exit_info.value.code == 2 and says in line and "--figure" in line
    assert out.read_bytes() == b"earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out_name]  # no figure, no temporary file
