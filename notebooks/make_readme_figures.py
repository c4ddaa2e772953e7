"""Write the README figures of a trained Lorenz run: rasters vs rates, factor trajectories, fixed points.

Usage (from the repository root, after the quickstart run)::

    python notebooks/make_readme_figures.py --run runs/lorenz

writes ``docs/figures/raster_vs_rates.png``, ``docs/figures/factor_trajectories.png`` and
``docs/figures/fixed_points.png`` (validation trials; posterior averages read from, or sampled into, the
run's ``posterior_samples.h5``; fixed points of the generator from a seeded search). Each file is written
to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIGURES = ("raster_vs_rates.png", "factor_trajectories.png", "fixed_points.png")


def save_atomic(fig, path: Path, dpi: int) -> Path:
    """Save ``fig`` as PNG to a temporary file next to ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        plt.close(fig)
    return path


def make_figures(run_dir: str | os.PathLike, out_dir: str | os.PathLike = "docs/figures", n_samples: int = 50,
                 n_initial_states: int = 512, dpi: int = 120) -> list[Path]:
    """Draw the three README figures of the run in ``run_dir`` into ``out_dir``; returns the written files."""
    import torch

    from lfads import viz
    from lfads.analysis.fixed_points import find_fixed_points, sample_initial_states
    from lfads.analysis.projection import compute_pca
    from lfads.metrics import rate_r2
    from lfads.run import load_run

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out_dir = Path(out_dir)
    run = load_run(run_dir, n_samples=n_samples, splits=("valid",))
    valid, out = run.data("valid"), run.outputs("valid")
    conditions = valid.extras.get("conditions")
    written = []

    # 1. spikes, inferred rates and true rates of two validation trials
    fig = viz.plot_raster_and_rates(valid.recon_data, out["rates"], trials=[0, 1], truth=valid.truth,
                                    bin_size=run.bin_size)
    if valid.truth is not None:
        fig.suptitle(f"Lorenz validation trials: rate $R^2$ = {rate_r2(out['rates'], valid.truth):.2f} "
                     f"(all trials, {valid.recon_data.shape[2]} neurons)")
    written.append(save_atomic(fig, out_dir / FIGURES[0], dpi))

    # 2. factor trajectories in 3-D, one colour per condition
    n_show = min(40, valid.n_trials)
    fig = viz.plot_trajectories(out["factors"], conditions, n_components=3, trials=range(n_show),
                                events={"start": 0}, linewidth=0.9)
    fig.axes[0].set_title(f"inferred factors of {n_show} validation trials")
    written.append(save_atomic(fig, out_dir / FIGURES[1], dpi))

    # 3. fixed points of the generator on its trajectories, and their eigenvalues
    model = run.model
    with torch.no_grad():
        mean_pass = model({0: torch.as_tensor(valid.encod_data)}, {0: torch.as_tensor(valid.ext_input)},
                          sample=False)[0]
    gen_states = mean_pass.gen_states.double().numpy()
    spread = float(gen_states.reshape(-1, gen_states.shape[-1]).std(0).mean())
    init = sample_initial_states(gen_states, n_initial_states, noise_std=0.05 * spread, seed=0)
    fps = find_fixed_points(model.decoder.generator, init.states)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained", width_ratios=[1.3, 1])
    visited = gen_states.reshape(-1, gen_states.shape[-1])
    radius = float(np.sqrt(((visited - visited.mean(0)) ** 2).sum(1).mean()))  # RMS distance from the centre
    viz.plot_fixed_points(fps, gen_states, conditions=conditions, pca=compute_pca(gen_states, 2), ax=axes[0],
                          mode_scale=0.3 * radius)
    n_fixed, n_slow = int((fps.kind == "fixed").sum()), int((fps.kind == "slow").sum())
    axes[0].set_title(f"generator: {n_fixed} fixed and {n_slow} slow point(s) on its trajectories")
    viz.plot_eigenvalues(fps, ax=axes[1])
    axes[1].set_title("eigenvalues of the Jacobians")
    axes[1].legend(loc="lower left", fontsize="small", frameon=False)
    zoom = axes[1].inset_axes([0.08, 0.56, 0.4, 0.4])  # slow modes near lambda = 1
    viz.plot_eigenvalues(fps, ax=zoom)
    zoom.get_legend().remove()
    zoom.set_xlim(0.9, 1.04)
    zoom.set_ylim(-0.12, 0.12)
    zoom.set_xlabel("")
    zoom.set_ylabel("")
    zoom.tick_params(labelsize="x-small")
    axes[1].indicate_inset_zoom(zoom, edgecolor="0.4")
    written.append(save_atomic(fig, out_dir / FIGURES[2], dpi))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python notebooks/make_readme_figures.py --run runs/lorenz [--out docs/figures]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run folder (runs/<name> or runs/<name>/version_N)")
    parser.add_argument("--out", default="docs/figures", help="output folder (default docs/figures)")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples per trial, if sampling")
    parser.add_argument("--initial-states", type=int, default=512, help="starts of the fixed-point search")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    for path in make_figures(args.run, args.out, args.samples, args.initial_states, args.dpi):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
