"""Fit LFADS to the real MC_Maze_Small recording and compare it with spike smoothing.

Trains with ``configs/mc_maze_small.yaml`` (60 of the 75 NLB training trials for training, 15 for
validation) for at most ``--minutes``, samples the posterior of the best checkpoint, and prints, next
to the Neural Latents Benchmark spike-smoothing baseline computed in the same run (Gaussian kernel,
width chosen by cross-validated co-bps on the training trials, Poisson GLM to the held-out neurons):

- co-bps: held-out neurons of the 25 NLB evaluation trials (never seen in training),
- fp-bps: forward-prediction bins of the 15 validation trials (smoothing has no forecast: its
  prediction is each neuron's mean rate, which scores 0 by definition),
- vel R2: ridge regression from all rates (held-in and held-out neurons) to hand velocity, with
  trials held out by 5-fold cross-validation within the 75 training trials.

LFADS must beat smoothing on co-bps and vel R2. Usage::

    python benchmarks/fit_real.py --minutes 10
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "datasets" / "mc_maze_small" / "mc_maze_small_full.h5"
CONFIG = ROOT / "configs" / "mc_maze_small.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--samples", type=int, default=100, help="posterior samples per trial")
    parser.add_argument("--workdir", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--config", default=str(CONFIG))
    args = parser.parse_args()

    from lfads.baselines import smoothing_baseline
    from lfads.cli import find_checkpoint, load_model_and_data
    from lfads.metrics import bits_per_spike, vel_r2
    from lfads.sampling import sample_posteriors

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        total = int(args.minutes * 60)
        max_time = f"00:{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
        logger = f'[{{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {{"save_dir": "{workdir}", "name": "mc_maze_small"}}}}]'
        cmd = [sys.executable, "-m", "lfads", "fit", "--config", args.config, "--data.data_paths", str(DATA),
               "--trainer.max_time", max_time, "--trainer.enable_progress_bar", "false", "--trainer.logger", logger]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit("lfads fit failed")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ckpt = find_checkpoint(workdir / "mc_maze_small")
        model, dm = load_model_and_data(ckpt)
        session = dm.sessions[0]
        out = sample_posteriors(model, dm, n_samples=args.samples, progress=False)[session.name]

    train, valid, test = (session.splits[s] for s in ("train", "valid", "test"))
    t_enc, n_in = train.encod_data.shape[1:]
    # co-bps on the NLB evaluation trials
    lfads_co = bits_per_spike(out["test"]["rates"][:, :t_enc, n_in:], test.extras["spikes_heldout"])
    # fp-bps on the validation trials
    lfads_fp = bits_per_spike(out["valid"]["rates"][:, t_enc:], valid.recon_data[:, t_enc:])
    # vel R2 over the 75 NLB training trials (train + valid), 5-fold CV over trials
    rates75 = np.concatenate([out["train"]["rates"][:, :t_enc], out["valid"]["rates"][:, :t_enc]])
    behavior75 = np.concatenate([train.extras["behavior"], valid.extras["behavior"]])
    lfads_vel = vel_r2(rates75, behavior75, n_folds=5)

    heldin75 = np.concatenate([train.recon_data[:, :t_enc, :n_in], valid.recon_data[:, :t_enc, :n_in]])
    heldout75 = np.concatenate([train.recon_data[:, :t_enc, n_in:], valid.recon_data[:, :t_enc, n_in:]])
    smooth = smoothing_baseline(heldin75, heldout75, test.encod_data)
    smooth_co = bits_per_spike(smooth.eval_heldout_rates, test.extras["spikes_heldout"])
    smooth_rates75 = np.concatenate([smooth.train_heldin_rates, smooth.train_heldout_rates], axis=2)
    smooth_vel = vel_r2(smooth_rates75, behavior75, n_folds=5)
    null_fp = np.broadcast_to(valid.recon_data[:, t_enc:].mean((0, 1), keepdims=True), valid.recon_data[:, t_enc:].shape)
    smooth_fp = bits_per_spike(null_fp, valid.recon_data[:, t_enc:])

    print(f"MC_Maze_Small, {args.minutes:g} min budget: fit process {wall:.0f} s, peak {peak_mb:.0f} MB, {ckpt.name}")
    print(f"{'model':<22}{'co-bps':>9}{'fp-bps':>9}{'vel R2':>9}")
    print(f"{'LFADS':<22}{lfads_co:>9.4f}{lfads_fp:>9.4f}{lfads_vel:>9.4f}")
    print(f"{f'smoothing (sigma {smooth.sigma:g} bins)':<22}{smooth_co:>9.4f}{smooth_fp:>9.4f}{smooth_vel:>9.4f}")
    ok = lfads_co > smooth_co and lfads_vel > smooth_vel
    print(f"LFADS beats smoothing on co-bps and vel R2: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
