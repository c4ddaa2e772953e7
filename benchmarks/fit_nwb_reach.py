r"""Fit LFADS to the synthetic reach NWB session and compare it with spike smoothing on held-out trials.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Steps (all files under ``--out-dir``, default a new temporary folder):

1. write the reach session (``datasets/reach_nwb.py``, ``--seed``) to ``data/reach.nwb``;
2. ``lfads fit --config configs/reach_nwb.yaml`` with ``--trainer.max_time`` set from ``--budget-min``
   (run folder ``runs/reach_nwb/version_N``);
3. sample the best checkpoint (``--samples`` posterior samples per trial) and write the samples to
   ``samples.h5`` and, mapped back onto the source trials, to ``reach_lfads.nwb``;
4. fit the spike-smoothing baseline (:func:`lfads.baselines.smoothing_baseline`: Gaussian smoothing of the
   held-in spikes, kernel width chosen by cross-validated co-bps, and a Poisson GLM to the held-out units)
   on the training trials;
5. score both on the ``test`` trials, which neither method saw while fitting or choosing a checkpoint:

   - co-bps: :func:`lfads.metrics.co_bps` of the held-out units' rates against their spikes;
   - vel R2: ridge decoder from the rates of all units to hand velocity, fitted on the training trials
     (penalty by cross-validation) and scored on the test trials (our protocol,
     :func:`lfads.metrics.vel_r2_train_test_grouped`);
   - PSTH R2: :func:`lfads.metrics.psth_r2` of the condition-averaged rates against the condition-averaged
     *true* expected counts of the simulation, :math:`\int_{\text{bin}} \lambda_u(t)\,dt` with the rates
     :math:`\lambda_u` of :func:`datasets.reach_nwb.generate_reach` (same seed).

   The same three numbers for the ``valid`` trials are printed for reference (they picked the checkpoint).

Prints a table and ``PASS`` when LFADS beats smoothing on all three test metrics, else ``FAIL`` (exit code 1).
Run ``python -m benchmarks.fit_nwb_reach`` from the repository root (see ``--help``); ``--ckpt`` scores an
existing checkpoint instead of fitting.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.fits import lightning_duration
from benchmarks.scoring import sample_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "reach_nwb.yaml"
METRICS = ("co_bps", "vel_r2", "psth_r2")


def compute_true_counts(seed: int, session, split: str) -> np.ndarray:
    r"""True expected counts per bin ``(trials, T, units)`` of one split, units in the session's column order.

    The simulated rate :math:`\lambda_u(t) = \min(\exp(\log b_u + c_u^\top x(t)), \lambda_{max})` is constant
    on each 1 ms step, so its integral over a bin is read off the cumulative sum by linear interpolation.
    """
    import inspect

    from datasets.reach_nwb import DT, generate_reach

    sim = generate_reach(seed=seed)
    max_rate = inspect.signature(generate_reach).parameters["max_rate"].default
    data = session.splits[split]
    bin_size, w0 = float(session.attrs["bin_size"]), float(session.attrs["window_start"])
    n_bins = data.recon_data.shape[1]
    edges = data.extras["align_times"][:, None] + w0 + bin_size * np.arange(n_bins + 1)[None, :]
    grid = np.arange(sim["latents"].shape[0] + 1) * DT
    unit_ids = np.concatenate([session.extras["heldin_unit_ids"], session.extras["heldout_unit_ids"]])
    out = np.empty((data.n_trials, n_bins, unit_ids.size))
    for col, u in enumerate(unit_ids):
        rate = np.minimum(np.exp(sim["log_baseline"][u] + sim["latents"] @ sim["readout"][u]), max_rate)
        cumulative = np.concatenate([[0.0], np.cumsum(rate * DT)])
        out[:, :, col] = np.diff(np.interp(edges, grid, cumulative), axis=1)
    return out


def score_rates(rates: dict[str, np.ndarray], session, truth: dict[str, np.ndarray], split: str) -> dict[str, float]:
    """co-bps, vel R2 (decoder fitted on train, scored on ``split``) and PSTH R2 against the true counts."""
    from lfads.metrics import co_bps, psth_r2, vel_r2_train_test_grouped

    data, train = session.splits[split], session.splits["train"]
    n_in = data.encod_data.shape[2]
    return {
        "co_bps": co_bps(rates[split], data.recon_data, n_in),
        "vel_r2": vel_r2_train_test_grouped(rates["train"], train.extras["behavior"], rates[split],
                                            data.extras["behavior"]),
        "psth_r2": psth_r2(rates[split], truth[split], data.extras["conditions"]),
    }


def run_fit(budget_min: float, extra: list[str]) -> Path:
    """``lfads fit`` with the shipped config in the current folder; return the best checkpoint."""
    from lfads.cli import main
    from lfads.rundir import find_checkpoint

    max_time = lightning_duration(int(round(budget_min * 60)))
    args = ["fit", "--config", str(CONFIG), "--trainer.max_time", max_time, "--trainer.enable_progress_bar", "false",
            *extra]
    print("lfads " + " ".join(args), flush=True)
    main(args)
    return find_checkpoint(Path("runs") / "reach_nwb")


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m benchmarks.fit_nwb_reach")
    parser.add_argument("--budget-min", type=float, default=5.0, help="training time limit in minutes (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated session")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples per trial")
    parser.add_argument("--out-dir", type=Path, help="working folder (default: a new temporary folder)")
    parser.add_argument("--ckpt", type=Path, help="score this checkpoint (of a fit on --out-dir's data) instead")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("overrides", nargs="*", help="extra 'lfads fit' arguments, e.g. --model.gen_dim 100 (after --)")
    args = parser.parse_args(argv)

    os.environ["LFADS_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from datasets.reach_nwb import write_reach_nwb
    from lfads.baselines import smoothing_baseline
    from lfads.data.nwb import NWBDropWarning
    from lfads.data.nwb_output import write_nwb_outputs_for_samples
    from lfads.sampling import format_scores, save_samples

    out_dir = (args.out_dir or Path(tempfile.mkdtemp(prefix="fit_nwb_reach_"))).resolve()
    ckpt = args.ckpt.resolve() if args.ckpt else None
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(out_dir)  # the config's relative paths (data/reach.nwb, runs/) resolve here
    print(f"working folder: {out_dir}")
    source = Path("data/reach.nwb")
    if not source.exists():
        write_reach_nwb(source, seed=args.seed)
        print(f"wrote {source} (seed {args.seed})")

    start = time.perf_counter()
    if ckpt is None:
        ckpt = run_fit(args.budget_min, args.overrides)
    fit_s = time.perf_counter() - start
    print(f"checkpoint: {ckpt}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NWBDropWarning)
        run = sample_run(ckpt, args.samples)
    datamodule, session, results = run.datamodule, run.session, run.results
    scores = run.scores()
    save_samples("samples.h5", results, scores, attrs={"checkpoint": str(ckpt), "n_samples": args.samples})
    written = write_nwb_outputs_for_samples(results, datamodule, "reach_lfads.nwb", overwrite=True)
    print(format_scores(scores))
    print(f"wrote samples.h5 and {', '.join(map(str, written))}")

    splits = ("train", "valid", "test")
    n_in = session.encod_data_dim
    lfads_rates = {split: results[session.name][split]["rates"] for split in splits}
    train = session.splits["train"]
    start = time.perf_counter()
    held_in = np.concatenate([session.splits[s].encod_data for s in splits])
    baseline = smoothing_baseline(train.encod_data, train.recon_data[:, :, n_in:], held_in)
    smooth_all = np.concatenate([baseline.eval_heldin_rates, baseline.eval_heldout_rates], axis=-1)
    bounds = np.cumsum([0] + [session.splits[s].n_trials for s in splits])
    smooth_rates = {s: smooth_all[bounds[i]:bounds[i + 1]] for i, s in enumerate(splits)}
    baseline_s = time.perf_counter() - start
    truth = {split: compute_true_counts(args.seed, session, split) for split in splits}

    table = {}
    for split in ("valid", "test"):
        table[("LFADS", split)] = score_rates(lfads_rates, session, truth, split)
        table[("smoothing", split)] = score_rates(smooth_rates, session, truth, split)
        table[("true rates", split)] = score_rates(truth, session, truth, split)

    print(f"\nfit {fit_s:.0f} s; smoothing baseline {baseline_s:.0f} s (sigma {baseline.sigma:g} bins); "
          f"{session.splits['valid'].n_trials} valid / {session.splits['test'].n_trials} test trials")
    print(f"{'method':<12}{'split':<7}" + "".join(f"{m:>10}" for m in METRICS))
    for (method, split), row in table.items():
        print(f"{method:<12}{split:<7}" + "".join(f"{row[m]:>10.4f}" for m in METRICS))
    print("protocols: co_bps with every rate floored at 1e-9; vel_r2 by our decoder (vel_r2_train_test_grouped: "
          "standardized rates, folds grouped by trial); psth_r2 against the true condition averages")
    wins = {m: table[("LFADS", "test")][m] > table[("smoothing", "test")][m] for m in METRICS}
    verdict = "PASS" if all(wins.values()) else "FAIL"
    print(f"{verdict}: LFADS beats smoothing on test "
          + ", ".join(f"{m} {'yes' if w else 'no'}" for m, w in wins.items()))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
