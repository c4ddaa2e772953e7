"""Do LFADS fits to the same data have the same dynamics? Seeds on two synthetic data sets, compared.

Protocol (measured figures: ``docs/compare.md``, section "LFADS fits"):

* two small data sets in the LFADS HDF5 layout, both seeded: Lorenz (``datasets.lorenz``) and the chaotic
  rate network (``datasets.chaotic_rnn``, gain 1.5), each ``--conditions`` x 10 trials of ``--time`` bins;
* ``--seeds`` fits on each (``--seed_everything`` 0, 1, ...), all with the same small autonomous LFADS
  (``configs/lorenz.yaml`` with the sizes of :func:`model_args`, ``--gen-dim`` generator units (32), no
  controller, so the generator alone carries the dynamics), ``--minutes`` of training each, ``--parallel``
  fits side by side (2) with ``--threads`` torch thread each;
* each fit's generator, as :func:`lfads.compare.runs.lfads_generator_model`: posterior-mean generator
  states on its own training trials (``(trials, time, gen_dim)``; the two data sets have different trials,
  so only the metrics that need no shared trials are used), the generator cell, the log-rate readout;
* :func:`lfads.compare.compare_models` on the six generators with ``dsa_eigenvalues``, ``dsa``,
  ``topology_counts``, ``topology`` and ``spectra``; DSA's delays and rank selected once by held-out prediction on all
  models over ranks up to the generator size (``--max-rank``), then fixed (so every operator, and every
  split-half floor, has the same size); a fixed point's index counts the directions with
  :math:`|\\lambda| > 1 +` ``--unstable-tol`` (the search's marginal band, 1e-2), so marginal modes do not
  set it;
* ``spectra`` compares the leading ``--spectra-modes`` eigenvalues (largest :math:`|\\lambda|`) of the
  matched fixed points, by default as many as the generator has factors (8): the rates see the generator
  through its factors, and the faster modes beyond are directions the data leave unconstrained;
* per metric the separation AUC (:func:`lfads.compare.separation_auc`: probability that a between-data-set
  distance exceeds a within-data-set one; target >= 0.95);
* per model the split-half noise floor (:func:`lfads.compare.split_half_floor`): the model against itself
  on two disjoint random halves of its trials, same DSA settings (for the fixed-point metrics: the fixed-point search
  started from states of each half), against its smallest distance to another model.

Usage::

    python -m benchmarks.compare_lfads                      # data, 6 fits (about 10 minutes), comparison
    python -m benchmarks.compare_lfads --skip-fit           # reuse the fits in --workdir
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # BLAS threads are fixed when numpy loads
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np

from benchmarks.fits import ROOT, start_fit

DATASETS = ("lorenz", "chaotic_rnn")
SHORT = {"lorenz": "lorenz", "chaotic_rnn": "rnn"}
DYNAMICS = ("dsa_eigenvalues", "dsa")
FIXED_POINT = ("topology_counts", "topology", "spectra")
FAC_DIM = 8
GEN_DIM = 32


def model_args(gen_dim: int = GEN_DIM) -> list[str]:
    """Fit overrides of ``configs/lorenz.yaml``: one small autonomous LFADS for both data sets."""
    return [
        "--model.ic_enc_dim", "32", "--model.ci_enc_dim", "16", "--model.con_dim", "0", "--model.co_dim", "0",
        "--model.ic_dim", "16", "--model.gen_dim", str(gen_dim), "--model.fac_dim", str(FAC_DIM),
        "--model.lr_init", "0.01", "--model.dropout_rate", "0.05", "--trainer.max_epochs", "100000",
    ]


def make_data(workdir: Path, conditions: int, n_time: int) -> dict[str, Path]:
    """Write the two data sets (seeded) and return their paths."""
    common = ["--n-conditions", str(conditions), "--trials-per-condition", "10", "--n-time", str(n_time)]
    extra = {"lorenz": ["--heldin", "30", "--heldout", "0"], "chaotic_rnn": ["--n-units", "30"]}
    paths = {}
    for name in DATASETS:
        paths[name] = workdir / f"{name}.h5"
        subprocess.run([sys.executable, "-m", f"datasets.{name}", "--out", str(paths[name]), *common, *extra[name]],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return paths


def run_name(data: str, seed: int) -> str:
    return f"{data}_s{seed}"


def fit_all(paths: dict[str, Path], seeds: int, workdir: Path, minutes: float, threads: int,
            parallel: int, batch_size: int, gen_dim: int = GEN_DIM) -> float:
    """Fit every (data set, seed), ``parallel`` at a time; returns the wall-clock seconds."""
    jobs = [(d, s) for s in range(seeds) for d in DATASETS]
    t0 = time.perf_counter()
    for k in range(0, len(jobs), parallel):
        batch = jobs[k : k + parallel]
        procs = [start_fit(run_name(d, s), ROOT / "configs/lorenz.yaml", paths[d], workdir, minutes,
                           ["--seed_everything", str(s), "--data.batch_size", str(batch_size), *model_args(gen_dim)],
                           threads) for d, s in batch]
        for (d, s), p in zip(batch, procs):
            if p.wait() != 0:
                print((workdir / f"{run_name(d, s)}.log").read_text()[-3000:])
                raise SystemExit(f"lfads fit failed for {run_name(d, s)}")
        print(f"  fitted {[run_name(d, s) for d, s in batch]} ({time.perf_counter() - t0:.0f} s so far)", flush=True)
    return time.perf_counter() - t0


def fit_summary(workdir: Path, name: str) -> str:
    """Epochs trained and the best validation rate R2 against the true rates, from the run's ``metrics.csv``."""
    import csv

    rows = list(csv.DictReader(open(sorted((workdir / name).glob("version_*/metrics.csv"))[-1])))
    epochs = max(int(r["epoch"]) for r in rows if r.get("epoch")) + 1
    r2 = max((float(r["valid/rate_r2"]) for r in rows if r.get("valid/rate_r2")), default=float("nan"))
    return f"{name}: {epochs} epochs, best valid rate R2 {r2:.3f}"


def load_models(workdir: Path, seeds: int, max_trials: int | None) -> tuple[list, np.ndarray]:
    """Each fit's generator as a :class:`lfads.compare.Model` on its own training trials, with its data label."""
    from lfads.compare.runs import lfads_generator_model
    from lfads.rundir import find_checkpoint, load_model_and_data

    models, labels = [], []
    for d in DATASETS:
        for s in range(seeds):
            name = run_name(d, s)
            print("  " + fit_summary(workdir, name))
            model, dm = load_model_and_data(find_checkpoint(workdir / name))
            dm.setup("fit")
            short = f"{SHORT[d]}{s}"  # (short names keep the printed matrices aligned)
            models.append(lfads_generator_model(model, dm, short, split="train", max_trials=max_trials))
            labels.append(d)
    return models, np.array(labels)


def floors(models: list, dsa, fp_kwargs: dict, n_splits: int, seed: int, unstable_tol: float,
           spectra_kwargs: dict) -> dict[str, np.ndarray]:
    """Split-half floors ``{metric: (models, n_splits)}`` (fixed-point metrics: one split each)."""
    import dataclasses

    from lfads.compare import Model, compare_models, split_half_floor

    out = {m: np.zeros((len(models), n_splits)) for m in DYNAMICS}
    out.update({m: np.zeros((len(models), 1)) for m in FIXED_POINT})

    def dyn(metric: str):
        def distance(x: np.ndarray, y: np.ndarray) -> float:
            fit = dataclasses.replace(dsa, models=[], selection=None).fit([x, y])
            return float((fit.distances() if metric == "dsa" else fit.eigenvalue_distances())[0, 1])
        return distance

    rng = np.random.default_rng(seed)
    for i, m in enumerate(models):
        for metric in DYNAMICS:
            out[metric][i] = split_half_floor(m.trajectories, dyn(metric), n_splits=n_splits, seed=seed)
        perm = rng.permutation(m.trajectories.shape[0])
        half = perm.size // 2
        halves = [Model(f"{m.name}_{h}", trajectories=m.trajectories[idx], cell=m.cell, readout=m.readout,
                        hidden_size=m.hidden_size, input_size=m.input_size)
                  for h, idx in (("a", perm[:half]), ("b", perm[half : 2 * half]))]
        res = compare_models(halves, FIXED_POINT, fixed_point_kwargs=fp_kwargs, unstable_tol=unstable_tol, seed=seed,
                             spectra_kwargs=spectra_kwargs)
        for metric in FIXED_POINT:
            out[metric][i] = res[metric][0, 1]
    return out


def report(res, labels: np.ndarray, floor: dict[str, np.ndarray]) -> None:
    """Print the matrices, the separation AUC per metric and each model's floor against its distances."""
    from lfads.compare import separation_auc

    names = res.names
    print()
    for metric in res.distances:
        print(res.table(metric))
        print()
    print(f"{'metric':<18s}{'AUC':>7s}{'within':>10s}{'between':>10s}   (target AUC >= 0.95)")
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(names), dtype=bool)
    for metric, d in res.distances.items():
        print(f"{metric:<18s}{separation_auc(d, labels):7.3f}{d[same & off].mean():10.3f}{d[~same].mean():10.3f}")
    print()
    print(f"{'model':<16s}{'metric':<18s}{'floor mean':>11s}{'floor max':>11s}{'min dist':>10s}  above")
    for i, n in enumerate(names):
        for metric, d in res.distances.items():
            f = floor[metric][i]
            nearest = np.min(d[i][off[i]])
            print(f"{n:<16s}{metric:<18s}{f.mean():11.4f}{f.max():11.4f}{nearest:10.4f}  "
                  f"{'yes' if nearest > f.max() else 'NO'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "compare_lfads")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget of each fit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each fit")
    parser.add_argument("--parallel", type=int, default=2, help="fits side by side")
    parser.add_argument("--conditions", type=int, default=60, help="conditions per data set (x 10 trials)")
    parser.add_argument("--time", type=int, default=50, help="bins per trial")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--gen-dim", type=int, default=GEN_DIM, help="generator units of every fit")
    parser.add_argument("--max-trials", type=int, default=None, help="training trials per model compared (all)")
    parser.add_argument("--n-splits", type=int, default=5, help="random halvings per model for the DSA floors")
    parser.add_argument("--max-rank", type=int, default=None,
                        help="largest DSA rank tried by the held-out selection (default: the generator size)")
    parser.add_argument("--unstable-tol", type=float, default=1e-2,
                        help="topology: a direction is unstable when |lambda| > 1 + this (default: the fixed-point "
                             "search's marginal band, marginal_tol)")
    parser.add_argument("--spectra-modes", type=int, default=FAC_DIM,
                        help="spectra: the leading eigenvalues compared at matched fixed points (default: the factor "
                             "dimension, 8; 0 for all)")
    parser.add_argument("--skip-fit", action="store_true", help="reuse the data and fits in --workdir")
    parser.add_argument("--out", type=Path, default=None, help="write the distance matrices here (HDF5)")
    parser.add_argument("--figure", type=Path, default=None, help="save heatmaps + MDS of every metric here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from lfads.compare import DSA, compare_models
    from lfads.compare.dsa import select_delay_rank

    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_fit:
        t0 = time.perf_counter()
        paths = make_data(args.workdir, args.conditions, args.time)
        print(f"data: {args.conditions} conditions x 10 trials x {args.time} bins each "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        wall = fit_all(paths, args.seeds, args.workdir, args.minutes, args.threads, args.parallel,
                       args.batch_size, args.gen_dim)
        print(f"{args.seeds * len(DATASETS)} fits, {args.minutes} min each, {args.parallel} side by side: "
              f"{wall:.0f} s", flush=True)

    t0 = time.perf_counter()
    models, labels = load_models(args.workdir, args.seeds, args.max_trials)
    max_rank = args.max_rank or min(m.trajectories.shape[-1] for m in models)
    sel = select_delay_rank([m.trajectories for m in models], ranks=range(1, max_rank + 1))
    dsa = DSA(delays=sel.delays, rank=sel.rank)
    print(f"models: {[m.trajectories.shape for m in models]}; DSA delays {sel.delays}, rank {sel.rank} "
          f"(selected from delays {sel.grid_delays.tolist()}, ranks 1-{max_rank})")
    fp_kwargs = {"progress": False}
    spectra_kwargs = {"n_modes": args.spectra_modes or None}
    res = compare_models(models, (*DYNAMICS, *FIXED_POINT), names=[m.name for m in models], dsa=dsa,
                         fixed_point_kwargs=fp_kwargs, unstable_tol=args.unstable_tol, spectra_kwargs=spectra_kwargs)
    print(f"comparison: {time.perf_counter() - t0:.0f} s", flush=True)
    for m in models:
        c = m.topology.count_vector() if m.topology is not None else []
        print(f"  {m.name}: fixed points by index (|lambda| > 1 + {args.unstable_tol:g}) {[int(v) for v in c]}; "
              f"by |lambda| > 1 {np.bincount(m.fixed_points.n_unstable).tolist()}")
        for k, lam in enumerate(m.fixed_points.eigenvalues):
            mag = np.sort(np.abs(lam))[::-1]
            print(f"    point {k}: largest |lambda| {np.array2string(mag[:6], precision=4)}")
    t0 = time.perf_counter()
    floor = floors(models, dsa, fp_kwargs, args.n_splits, seed=0, unstable_tol=args.unstable_tol,
                   spectra_kwargs=spectra_kwargs)
    print(f"split-half floors: {time.perf_counter() - t0:.0f} s")
    report(res, labels, floor)
    if args.out is not None:
        res.save(args.out)
    if args.figure is not None:
        from lfads.viz.compare import plot_comparison

        plot_comparison(res, labels=list(labels)).savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
