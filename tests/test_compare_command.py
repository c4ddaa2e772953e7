"""`lfads compare` on fitted LFADS runs: distance matrices of their generators, written with a figure."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from lfads.cli import main
from lfads.compare.api import ComparisonResult
from lfads.compare.stats import silhouette


def fit(data, save_dir, name: str, seed: int) -> None:
    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                          "init_args": {"save_dir": str(save_dir), "name": name}}])
    argv = sys.argv
    sys.argv = ["lfads"]
    try:
        main(["fit", "--config", "configs/lorenz.yaml", "--data.data_paths", str(data), "--data.batch_size", "8",
              "--model.gen_dim", "12", "--model.ic_dim", "4", "--model.fac_dim", "3", "--model.ic_enc_dim", "4",
              "--model.ci_enc_dim", "4", "--model.kl_increase_epoch", "1", "--trainer.max_epochs", "2",
              "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.logger", logger, "--seed_everything", str(seed)])
    finally:
        sys.argv = argv


@pytest.fixture(scope="module")
def two_runs(small_lorenz, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("compare_runs")
    fit(small_lorenz, save_dir, "a", 0)
    fit(small_lorenz, save_dir, "b", 1)
    return save_dir / "a", save_dir / "b"


def test_compare_writes_symmetric_matrices_and_a_figure(two_runs, tmp_path, capsys):
    out = tmp_path / "compare.h5"
    assert main(["compare", "--run", str(two_runs[0]), "--run", str(two_runs[1]), "--names", "a,b",
                 "--metrics", "procrustes,cca,dsa_eigenvalues,topology_counts,spectra", "--out", str(out)]) == 0
    result = ComparisonResult.load(out)
    assert result.names == ["a", "b"]
    for metric in ("procrustes", "cca", "dsa_eigenvalues", "topology_counts", "spectra"):
        d = result[metric]
        assert d.shape == (2, 2) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
        assert np.isfinite(d).all() and (d >= 0).all()
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert "procrustes" in capsys.readouterr().out


def test_groups_of_runs_print_their_separation_and_store_it_with_the_labels(two_runs, tmp_path, capsys):
    # run a twice (distance 0 within group A) and run b: every within-group distance is below the between ones
    out = tmp_path / "groups.h5"
    runs = ["--run", str(two_runs[0]), "--run", str(two_runs[0]), "--run", str(two_runs[1])]
    assert main(["compare", *runs, "--names", "a1,a2,b", "--groups", "A,A,B", "--metrics", "procrustes,cca",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = ComparisonResult.load(out)
    assert result.labels == ["A", "A", "B"]
    for metric in ("procrustes", "cca"):
        d, settings = result[metric], result.settings[metric]
        assert settings["group_auc"] == 1.0
        assert settings["group_silhouette"] == pytest.approx(silhouette(d, ["A", "A", "B"]), abs=1e-12)
        # 3 equally likely arrangements of the labels; only the given one reaches its silhouette
        assert settings["group_silhouette_p"] == pytest.approx(1 / 3, abs=0.05)
        assert f"{metric} (mean over the models of each group)" in printed
        row = re.search(rf"^ +{metric} +(\S+) +(\S+) +(\S+)$", printed, re.M).groups()
        assert [float(x) for x in row] == pytest.approx(
            [settings["group_silhouette"], settings["group_silhouette_p"], 1.0], abs=5e-4)


def test_dsa_delays_and_rank_given_on_the_command_line_are_used_not_selected(two_runs, tmp_path, capsys):
    runs = ["--run", str(two_runs[0]), "--run", str(two_runs[1]), "--metrics", "dsa_eigenvalues"]
    assert main(["compare", *runs, "--dsa-delays", "2", "--dsa-rank", "3", "--out", str(tmp_path / "g.h5")]) == 0
    given = ComparisonResult.load(tmp_path / "g.h5").settings["dsa_eigenvalues"]
    assert (given["delays"], given["rank"], given["selected"], given["rank_at_grid_edge"]) == (2, 3, False, False)
    assert "note: DSA chose" not in capsys.readouterr().out
    assert main(["compare", *runs, "--out", str(tmp_path / "s.h5")]) == 0
    selected = ComparisonResult.load(tmp_path / "s.h5").settings["dsa_eigenvalues"]
    assert selected["selected"] and selected["max_rank"] == selected["state_dim"] > 10  # runs: up to the generator size
    # the note is printed exactly when the selection stopped at the grid's largest rank
    assert ("note: DSA chose rank" in capsys.readouterr().out) == bool(selected["rank_at_grid_edge"])
    assert main(["compare", *runs, "--dsa-max-rank", "1", "--out", str(tmp_path / "m.h5")]) == 0
    bounded = ComparisonResult.load(tmp_path / "m.h5").settings["dsa_eigenvalues"]
    assert bounded["selected"] and (bounded["max_rank"], bounded["rank"]) == (1, 1) and bounded["rank_at_grid_edge"]
    assert f"--dsa-max-rank {bounded['state_dim']}, the state dimension" in capsys.readouterr().out


def test_a_run_compared_with_itself_is_at_distance_zero(two_runs, tmp_path):
    out = tmp_path / "self.h5"
    assert main(["compare", "--run", str(two_runs[0]), "--run", str(two_runs[0]), "--names", "x,y",
                 "--metrics", "procrustes,cca,dsa_eigenvalues,spectra", "--out", str(out)]) == 0
    result = ComparisonResult.load(out)
    for metric in ("procrustes", "cca", "dsa_eigenvalues", "spectra"):
        assert result[metric][0, 1] < 1e-6, metric


def test_the_jslds_metric_compares_the_generators_linearized_along_the_same_trials(two_runs, tmp_path):
    out = tmp_path / "jslds.h5"
    assert main(["compare", "--run", str(two_runs[0]), "--run", str(two_runs[0]), "--run", str(two_runs[1]),
                 "--names", "a,a_again,b", "--metrics", "jslds", "--max-trials", "4", "--out", str(out)]) == 0
    result = ComparisonResult.load(out)
    d = result["jslds"]
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    assert d[0, 1] < 1e-12 and d[0, 2] > 1e-6
    assert result.settings["jslds"]["n_points"] == 4 * 50  # every step of 4 trials, from the initial states on
    assert list(result.extras["jslds"]["linearized_at"]) == ["states"] * 3


def test_spectra_of_runs_compare_as_many_leading_modes_as_the_generators_have_factors(two_runs, tmp_path):
    runs = ["--run", str(two_runs[0]), "--run", str(two_runs[1]), "--metrics", "spectra"]
    assert main(["compare", *runs, "--out", str(tmp_path / "factors.h5")]) == 0
    assert main(["compare", *runs, "--spectra-modes", "0", "--out", str(tmp_path / "all.h5")]) == 0
    leading, every = ComparisonResult.load(tmp_path / "factors.h5"), ComparisonResult.load(tmp_path / "all.h5")
    assert leading.settings["spectra"]["n_modes"] == 3  # the fits' fac_dim
    assert "n_modes" not in every.settings["spectra"]
    assert leading["spectra"][0, 1] != every["spectra"][0, 1]


def test_runs_on_different_data_are_compared_only_by_metrics_that_need_no_shared_trials(two_runs, tmp_path, capsys):
    from datasets.lorenz import write_lorenz

    other = tmp_path / "other.h5"
    write_lorenz(other, n_conditions=8, trials_per_condition=5, n_time=50, n_heldin=12, n_heldout=4, seed=2)
    fit(other, tmp_path / "runs", "c", 0)
    runs = ["--run", str(two_runs[0]), "--run", str(two_runs[1]), "--run", str(tmp_path / "runs" / "c")]
    for metrics in ("procrustes,dsa", "spectra"):  # geometry, or points paired by their rates, need shared trials
        extra = ["--spectra-match", "readout"] if metrics == "spectra" else []
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", *runs, "--metrics", metrics, *extra, "--out", str(tmp_path / "x.h5")])
        assert exit_info.value.code == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith("lfads compare: error:") and "--metrics dsa,dsa_eigenvalues,topology" in line
        assert ("procrustes" if metrics != "spectra" else "spectra matched by readout") in line
        assert not (tmp_path / "x.h5").exists()
    out = tmp_path / "dynamics.h5"
    assert main(["compare", *runs, "--metrics", "dsa_eigenvalues,topology_counts,spectra", "--out", str(out)]) == 0
    result = ComparisonResult.load(out)
    for metric in ("dsa_eigenvalues", "topology_counts", "spectra"):
        d = result[metric]
        assert np.isfinite(d).all() and np.array_equal(d, d.T) and (np.diag(d) == 0).all()
    # the two runs on the first data keep the distances they have when compared alone
    alone = tmp_path / "alone.h5"
    assert main(["compare", *runs[:4], "--metrics", "dsa_eigenvalues,topology_counts,spectra", "--out",
                 str(alone)]) == 0
    for metric in ("topology_counts", "spectra"):
        assert result[metric][0, 1] == ComparisonResult.load(alone)[metric][0, 1]


@pytest.mark.parametrize(("extra", "says"), [
    (["--metrics", "procrustes,warp"], "--metrics"),
    (["--names", "a"], "--names"),
    (["--max-trials", "1"], "--max-trials"),
    (["--groups", "a"], "--groups"),
    (["--dsa-rank", "0"], "--dsa-rank 0: must be at least 1"),
    (["--dsa-delays", "-1"], "--dsa-delays -1: must be at least 1"),
    (["--dsa-max-rank", "0"], "--dsa-max-rank 0: must be at least 1"),
    (["--dsa-rank", "3", "--dsa-max-rank", "20"], "give one of them"),
    (["--groups", "a,b"], "at least two groups and one group of two"),
    (["--spectra-modes", "-1"], "--spectra-modes"),
    (["--unstable-tol", "-0.1"], "--unstable-tol"),
])
def test_bad_arguments_are_one_line(two_runs, tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit):
        main(["compare", "--run", str(two_runs[0]), "--run", str(two_runs[1]), "--out", str(tmp_path / "x.h5"),
              *extra])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads compare: error:") and says in line


def test_a_single_run_is_refused(two_runs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--run", str(two_runs[0]), "--out", str(tmp_path / "x.h5")])
    assert "two or more" in capsys.readouterr().err


def test_compare_refuses_a_figure_that_is_an_input_data_file_before_any_work(two_runs, small_lorenz, tmp_path,
                                                                              capsys):
    data = small_lorenz.read_bytes()
    figure = tmp_path / "data.png"
    figure.symlink_to(small_lorenz)  # a figure name that resolves to the runs' data file
    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--run", str(two_runs[0]), "--run", str(two_runs[1]), "--metrics", "procrustes",
              "--out", str(out), "--figure", str(figure), "--overwrite"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and line.startswith("lfads compare: error:") and "--figure" in line
    assert "input file" in line and not out.exists() and small_lorenz.read_bytes() == data
