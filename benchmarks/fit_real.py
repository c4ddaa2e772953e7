"""Fit LFADS to the real MC_Maze_Small recording and compare it with spike smoothing.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Trains with ``configs/mc_maze_small.yaml`` (60 of the 75 NLB training trials for training, 15 for
validation) for at most ``--minutes``, samples the posterior of the best checkpoint, and prints, next
to the Neural Latents Benchmark spike-smoothing baseline computed in the same run (Gaussian kernel,
width chosen by cross-validated co-bps on the training trials, Poisson GLM to the held-out neurons):

- co-bps: held-out neurons of the 25 NLB evaluation trials (never seen in training),
- fp-bps: forward-prediction bins of the 15 validation trials (smoothing has no forecast: its
  prediction is each neuron's mean rate, which scores 0 by definition),
- vel R2 (cv grouped): our ridge regression (:func:`lfads.metrics.vel_r2_cv_grouped`) from all rates
  (held-in and held-out neurons) to hand velocity, with trials held out by 5-fold cross-validation within
  the 75 training trials (the file has no evaluation-trial behaviour, so the benchmark's train-to-eval
  decoder cannot be scored here).

co-bps and fp-bps are printed twice: with our rate floor (every rate floored at 1e-9) and the benchmark's
(``protocol="nlb"``: exact zeros raised to 1e-9, negative rates an error).

With ``--ensemble K``, K fits are trained side by side (seeds 0 to K-1, one thread each, the same
``--minutes``) and each is scored, followed by the average of their rates (:mod:`lfads.ensemble`).

LFADS must beat smoothing on co-bps and vel R2 (judged on the last LFADS row). Usage::

    python -m benchmarks.fit_real --minutes 10
    python -m benchmarks.fit_real --minutes 10 --ensemble 2   # two fits, a core each, and their average
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.fits import ROOT, fit_side_by_side
from benchmarks.scoring import sample_run

DATA = ROOT / "datasets" / "mc_maze_small" / "mc_maze_small_full.h5"
CONFIG = ROOT / "configs" / "mc_maze_small.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--samples", type=int, default=100, help="posterior samples per trial")
    parser.add_argument("--ensemble", type=int, default=1, metavar="K",
                        help="train K fits side by side (seeds 0..K-1, one thread each) and also score the average "
                             "of their rates (lfads.ensemble); default 1")
    parser.add_argument("--workdir", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--config", default=str(CONFIG))
    args = parser.parse_args()

    from lfads.baselines import smoothing_baseline
    from lfads.ensemble import ensemble_rates
    from lfads.metrics import ScoringSlices, bits_per_spike, vel_r2_cv_grouped

    members = args.ensemble
    names = ["mc_maze_small"] if members == 1 else [f"mc_maze_small[{k}]" for k in range(members)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        wall = fit_side_by_side(names, args.config, DATA, workdir, args.minutes)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        runs = [sample_run(workdir / n, args.samples) for n in names]
        ckpts, outs = [r.checkpoint for r in runs], [r.results for r in runs]
        session = runs[0].session

    train, valid, test = (session.splits[s] for s in ("train", "valid", "test"))
    blocks = ScoringSlices.from_encod_shape(train.encod_data.shape)
    behavior75 = np.concatenate([train.extras["behavior"], valid.extras["behavior"]])

    def scores(rates: dict[str, np.ndarray]) -> tuple[float, ...]:
        # co-bps on the NLB evaluation trials, fp-bps on the validation trials, each with both rate floors
        co = [bits_per_spike(rates["test"][blocks.heldout], test.extras["spikes_heldout"], p) for p in ("lfads", "nlb")]
        fp = [bits_per_spike(rates["valid"][blocks.forward], valid.recon_data[blocks.forward], p)
              for p in ("lfads", "nlb")]
        # vel R2 over the 75 NLB training trials (train + valid), 5-fold CV over trials
        rates75 = np.concatenate([rates["train"][blocks.encoder], rates["valid"][blocks.encoder]])
        return co[0], co[1], fp[0], fp[1], vel_r2_cv_grouped(rates75, behavior75, n_folds=5)

    rows = [(f"LFADS{'' if members == 1 else f' seed {k}'}",
             scores({s: o[session.name][s]["rates"] for s in o[session.name]}))
            for k, o in enumerate(outs)]
    if members > 1:
        ens = ensemble_rates(outs)[session.name]
        rows.append((f"LFADS ensemble of {members}", scores({s: ens[s]["rates"] for s in ens})))

    heldin75 = np.concatenate([train.recon_data[blocks.heldin], valid.recon_data[blocks.heldin]])
    heldout75 = np.concatenate([train.recon_data[blocks.heldout], valid.recon_data[blocks.heldout]])
    smooth = smoothing_baseline(heldin75, heldout75, test.encod_data)
    smooth_co = bits_per_spike(smooth.eval_heldout_rates, test.extras["spikes_heldout"])
    smooth_co_nlb = bits_per_spike(smooth.eval_heldout_rates, test.extras["spikes_heldout"], "nlb")
    smooth_rates75 = np.concatenate([smooth.train_heldin_rates, smooth.train_heldout_rates], axis=2)
    smooth_vel = vel_r2_cv_grouped(smooth_rates75, behavior75, n_folds=5)
    valid_fp = valid.recon_data[blocks.forward]
    null_fp = np.broadcast_to(valid_fp.mean((0, 1), keepdims=True), valid_fp.shape)
    smooth_fp = bits_per_spike(null_fp, valid_fp)
    smooth_fp_nlb = bits_per_spike(null_fp, valid_fp, "nlb")

    print(f"MC_Maze_Small, {args.minutes:g} min budget: fit process(es) {wall:.0f} s, peak {peak_mb:.0f} MB, "
          f"{', '.join(c.name for c in ckpts)}")
    print(f"{'':<22}{'co-bps':>18}{'fp-bps':>18}{'vel R2':>12}")
    print(f"{'model':<22}{'lfads':>9}{'nlb':>9}{'lfads':>9}{'nlb':>9}{'cv grouped':>12}")
    for label, (co, co_nlb, fp, fp_nlb, vel) in rows:
        print(f"{label:<22}{co:>9.4f}{co_nlb:>9.4f}{fp:>9.4f}{fp_nlb:>9.4f}{vel:>12.4f}")
    print(f"{f'smoothing (sigma {smooth.sigma:g} bins)':<22}{smooth_co:>9.4f}{smooth_co_nlb:>9.4f}{smooth_fp:>9.4f}"
          f"{smooth_fp_nlb:>9.4f}{smooth_vel:>12.4f}")
    label, (co, _, _, _, vel) = rows[-1]
    ok = co > smooth_co and vel > smooth_vel
    print(f"{label} beats smoothing on co-bps and vel R2: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
