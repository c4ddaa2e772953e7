"""Every notebook in notebooks/ runs end to end on tiny runs, and lfads.run.load_run loads a run in one call.

A module fixture fits three tiny models through ``lfads fit`` (Lorenz, chaotic RNN with input pulses,
synthetic reach NWB); each notebook is then executed headless in a fresh ``python3`` kernel (this
interpreter) with the run paths passed through the environment variables its first cell reads. A cell
appended to each notebook reports how many axes of every open figure hold drawn data.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
POPULATION_NOTEBOOK = ROOT / "notebooks" / "05_universality.py"  # trains its own networks; run by its own test
RUN_NOTEBOOKS = [p for p in NOTEBOOKS if p != POPULATION_NOTEBOOK]

# KL ramp over the first epoch, so that the best checkpoint of a 3-epoch fit is scored (not last.ckpt)
TINY_MODEL = ["--model.gen_dim", "16", "--model.ic_dim", "8", "--model.fac_dim", "4", "--model.ic_enc_dim", "8",
              "--model.ci_enc_dim", "8", "--model.kl_increase_epoch", "1"]

FIGURE_REPORT = """
import json as _json
import matplotlib.pyplot as _plt
_report = {}
for _num in _plt.get_fignums():
    _fig = _plt.figure(_num)
    _report[str(_num)] = sum(bool(a.lines or a.collections or a.images or a.patches) for a in _fig.axes)
print("FIGURES " + _json.dumps(_report))
"""


def fit_tiny(name: str, config: str, data: str, save_dir: str, *extra: str) -> Path:
    """``lfads fit`` with tiny dimensions for 3 epochs; returns the run folder ``save_dir/name``."""
    from lfads.cli import main

    logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                          "init_args": {"save_dir": save_dir, "name": name}}])
    main(["fit", "--config", str(ROOT / "configs" / config), "--data.data_paths", data, *TINY_MODEL,
          "--trainer.max_epochs", "3", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.logger", logger, *extra])
    return Path(save_dir) / name


@pytest.fixture(scope="module")
def tiny_runs(small_lorenz, tmp_path_factory):
    """Run folders of three tiny fits. The Lorenz fit runs inside a project folder with relative paths (as
    ``lfads fit`` is used from a repository root), so loading it from elsewhere exercises the resolution of
    its recorded data path. The input-pulse fit co-trains a JSLDS."""
    from datasets.chaotic_rnn import write_chaotic_rnn
    from datasets.reach_nwb import write_reach_nwb

    mp = pytest.MonkeyPatch()
    mp.setattr(sys, "argv", ["lfads"])
    project = tmp_path_factory.mktemp("project")
    (project / "data").mkdir()
    shutil.copy(small_lorenz, project / "data" / "lorenz.h5")
    start = time.perf_counter()
    try:
        mp.chdir(project)
        runs = {"lorenz": project / fit_tiny("lorenz", "lorenz.yaml", "data/lorenz.h5", "runs",
                                             "--data.batch_size", "8")}
        mp.chdir(ROOT)
        data = tmp_path_factory.mktemp("data")
        write_chaotic_rnn(data / "pulses.h5", n_conditions=8, trials_per_condition=5, n_units=12, n_time=40,
                          input_pulse=True, require_chaos=False, seed=0)
        write_reach_nwb(data / "reach.nwb", seed=0, n_trials=48, n_units=20)
        runs["inputs"] = fit_tiny("inputs", "chaotic_rnn_inputs.yaml", str(data / "pulses.h5"), str(project / "runs"),
                                  "--data.batch_size", "8", "--model.con_dim", "8", "--model.jslds", "true",
                                  "--model.jslds_hidden_dim", "16")
        runs["reach"] = fit_tiny("reach", "reach_nwb.yaml", str(data / "reach.nwb"), str(project / "runs"),
                                 "--data.batch_size", "4", "--model.con_dim", "8")
    finally:
        mp.undo()
    print(f"tiny fits: {time.perf_counter() - start:.1f} s")
    return runs


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernelspec for this interpreter in a temporary JUPYTER_PATH, whatever else is installed."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name="python3", prefix=str(prefix))
    return {"JUPYTER_PATH": str(prefix / "share" / "jupyter")}


def test_there_are_four_notebooks_on_fitted_runs_and_the_population_notebook():
    assert [p.name for p in RUN_NOTEBOOKS] == ["01_inspect_factors.py", "02_nwb_reach.py", "03_dynamics.py",
                                               "04_compare_dynamics.py"]
    assert POPULATION_NOTEBOOK in NOTEBOOKS


CASES = [(p, "lorenz") for p in RUN_NOTEBOOKS] + [(p, "inputs") for p in RUN_NOTEBOOKS if p.stem == "03_dynamics"]


@pytest.mark.slow
@pytest.mark.parametrize(("notebook", "dynamics_run"), CASES, ids=[f"{p.stem}-{run}" for p, run in CASES])
def test_notebook_runs_headless_and_every_figure_has_data(notebook, dynamics_run, tiny_runs, kernel_env, tmp_path,
                                                         monkeypatch):
    """03_dynamics runs twice: on the autonomous Lorenz generator and on the input-driven one with a JSLDS."""
    figures = tmp_path / "figures"
    env = {
        **kernel_env,
        "LFADS_LORENZ_RUN": str(tiny_runs["lorenz"]),
        "LFADS_INPUTS_RUN": str(tiny_runs["inputs"]),
        "LFADS_REACH_RUN": str(tiny_runs["reach"]),
        "LFADS_DYNAMICS_RUN": str(tiny_runs[dynamics_run]),
        "LFADS_N_SAMPLES": "3",
        "LFADS_N_INITIAL_STATES": "32",
        "LFADS_EXPANSION_STEPS": "50",
        "LFADS_FIGURE_DIR": str(figures),
        "LFADS_NUM_THREADS": "1",
        "LFADS_FLIPFLOP_STEPS": "250",
        "MPLBACKEND": "Agg",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report, nb = execute_notebook(notebook)
    assert len(report) >= 4, f"{notebook.name} drew only {len(report)} figures"
    check_figures(notebook, report, nb, figures)


def execute_notebook(notebook: Path) -> tuple[dict, object]:
    """Run ``notebook`` headless (its first cell must read its settings from the environment); returns the
    figure report ``{figure number: axes with data}`` and the executed notebook."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(notebook)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    for var in ("LFADS_FIGURE_DIR", "os.environ.get("):
        assert var in first_code.source, (
            f"{notebook.name}: the first code cell must read the paths from the environment"
        )
    nb.cells.append(nbformat.v4.new_code_cell(FIGURE_REPORT))
    start = time.perf_counter()
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT)}}).execute()
    elapsed = time.perf_counter() - start
    print(f"{notebook.name}: {elapsed:.1f} s")
    report_lines = [o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout"]
    return json.loads("".join(report_lines).split("FIGURES ", 1)[1]), nb


def check_figures(notebook: Path, report: dict, nb, figures: Path) -> None:
    """Every figure has axes with data, every figure was saved, and no cell raised."""
    empty = [num for num, n_axes in report.items() if n_axes == 0]
    assert not empty, f"{notebook.name}: figures {empty} have no axes with drawn data"
    saved = sorted(figures.glob("*.png"))
    assert len(saved) >= len(report) - 1 and all(p.stat().st_size > 5000 for p in saved)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.slow
def test_population_notebook_runs_headless_on_a_tiny_population(kernel_env, tmp_path, monkeypatch):
    """05_universality trains 2 seeds of each architecture with 16 units for 300 steps, and draws every figure."""
    figures = tmp_path / "figures"
    env = {**kernel_env, "LFADS_POPULATION_SEEDS": "2", "LFADS_POPULATION_UNITS": "16", "LFADS_POPULATION_STEPS": "300",
           "LFADS_N_INITIAL_STATES": "64", "LFADS_POPULATION_FILE": str(tmp_path / "population.h5"),
           "LFADS_FIGURE_DIR": str(figures), "LFADS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report, nb = execute_notebook(POPULATION_NOTEBOOK)
    assert len(report) >= 3, f"05_universality drew only {len(report)} figures"
    check_figures(POPULATION_NOTEBOOK, report, nb, figures)
    assert (tmp_path / "population.h5").exists()


def test_load_run_returns_config_model_data_metrics_and_saved_posteriors(tiny_runs, tmp_path, monkeypatch):
    from lfads.run import POSTERIOR_FILE, load_run

    # a copy of the run, loaded from another working folder: its own checkpoint and its data are found
    copy = tmp_path / "project" / "runs" / "lorenz"
    shutil.copytree(tiny_runs["lorenz"], copy)
    shutil.copytree(tiny_runs["lorenz"].parents[1] / "data", tmp_path / "project" / "data")
    (copy / "version_0" / POSTERIOR_FILE).unlink(missing_ok=True)
    monkeypatch.chdir(tmp_path)
    run = load_run(copy, n_samples=2, splits=("valid",))
    assert run.run_dir == copy / "version_0" and run.checkpoint.parent == copy / "version_0" / "checkpoints"
    assert run.checkpoint.name != "last.ckpt"
    assert run.datamodule.sessions[0].path.resolve() == (tmp_path / "project" / "data" / "lorenz.h5").resolve()
    assert run.config["model"]["gen_dim"] == 16 and run.config["trainer"]["max_epochs"] == 3
    assert not run.model.training
    assert np.array_equal(np.unique(run.metrics["epoch"][np.isfinite(run.metrics["epoch"])]), [0, 1, 2])
    valid = run.data("valid")
    out = run.outputs("valid")
    assert out["rates"].shape == valid.recon_data.shape and out["factors"].shape[-1] == 4
    assert out["ic_mean"].shape == (valid.n_trials, 8) and (out["rates"] > 0).all()
    assert run.posterior_path == copy / "version_0" / POSTERIOR_FILE and run.posterior_path.exists()
    with pytest.raises(ValueError, match="no posterior outputs for session 'lorenz', split 'train'"):
        run.outputs("train")

    # a second load reads the file (same numbers, whatever n_samples says) and adds a missing split
    again = load_run(copy, n_samples=9, splits=("valid", "train"))
    np.testing.assert_array_equal(again.outputs("valid")["rates"], out["rates"])
    assert again.outputs("train")["rates"].shape == run.data("train").recon_data.shape
    resampled = load_run(copy, n_samples=2, splits=("valid",), resample=True)
    np.testing.assert_array_equal(resampled.outputs("valid")["rates"], out["rates"])  # seeded draws


def test_load_run_reports_a_missing_run_folder(tmp_path):
    from lfads.run import load_run

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No checkpoints"):
        load_run(tmp_path / "empty")


def test_co_prior_tau_is_the_exponential_of_the_learned_log_timescale():
    from types import SimpleNamespace

    import torch

    from lfads.modules.priors import AutoregressivePrior
    from lfads.run import compute_co_prior_tau

    prior = AutoregressivePrior(2, tau=3.0)
    with torch.no_grad():
        prior.log_tau[1] = np.log(7.5)
    np.testing.assert_allclose(compute_co_prior_tau(SimpleNamespace(co_prior=prior)), [3.0, 7.5])
    assert compute_co_prior_tau(SimpleNamespace(co_prior=None)).shape == (0,)
