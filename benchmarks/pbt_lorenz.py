"""Population-based training against a single default fit on the Lorenz set, for the same wall-clock budget.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Generates the Lorenz data set (seeded; 400 train / 100 valid trials, 30 held-in + 10 held-out neurons),
then, one after the other and each for ``--minutes`` of wall-clock time:

- ``lfads tune --config configs/pbt_lorenz.yaml`` with a population of ``--population`` trials sharing
  ``--cpus`` CPUs (one per running trial), rounds of ``--interval`` epochs;
- ``lfads fit --config configs/lorenz.yaml`` with the population's model (autonomous, 10 factors) and the
  config's plateau schedule (one process; torch uses 1 thread on machines with <= 4 cores).

The PBT winner is the trial with the best final ``valid/recon_smth`` (chosen without the true rates).
For it and for the single fit, the best checkpoint's posterior-mean rates (``--samples`` samples per
trial) on the validation trials give rate R2 (against the true rates) and co-bps (held-out neurons), and
the script prints both, the epochs trained and the number of exploits.

Usage (run by hand; not part of the test suite)::

    python benchmarks/pbt_lorenz.py                       # 10 minutes each, 8 trials
    python benchmarks/pbt_lorenz.py --minutes 3 --interval 5
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fits import ROOT, lightning_duration
from benchmarks.scoring import sample_run
from lfads.rundir import version_dirs


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` from the repository root, output to ``log``; return its wall-clock seconds."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        print(log.read_text()[-4000:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); log: {log}")
    return time.perf_counter() - t0


def epochs_trained(run_dir: Path) -> int:
    with open(run_dir / "metrics.csv", newline="") as f:
        return 1 + max(int(r["epoch"]) for r in csv.DictReader(f) if r.get("epoch"))


def score(run_dir: Path, samples: int) -> dict[str, float]:
    """Rate R2 and co-bps of the posterior-mean rates of ``run_dir``'s best checkpoint on the validation trials."""
    run = sample_run(run_dir, samples, splits=("valid",))
    scores = run.scores()[run.session.name]["valid"]
    return {"rate_r2": scores["rate_r2"], "co_bps": scores["co_bps"], "heldin_bps": scores["heldin_bps"],
            "epochs": epochs_trained(run_dir)}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each contender")
    parser.add_argument("--population", type=int, default=8, help="PBT trials")
    parser.add_argument("--interval", type=int, default=25, help="epochs per PBT round")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the Ray instance (default: all)")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples per trial")
    parser.add_argument("--workdir", help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    budget_s = int(args.minutes * 60)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        data = work / "lorenz.h5"
        if not data.exists():
            subprocess.run([sys.executable, "-m", "datasets.lorenz", "--out", str(data)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)

        tune_cmd = [sys.executable, "-m", "lfads.tune", "--config", "configs/pbt_lorenz.yaml",
                    "--data.data_paths", str(data), "--tune.save_dir", str(work / "pbt"),
                    "--tune.num_samples", str(args.population), "--tune.perturbation_interval", str(args.interval),
                    "--tune.burn_in_period", str(args.interval), "--tune.max_epochs", "100000",
                    "--tune.time_budget_s", str(budget_s)]
        if args.cpus:
            tune_cmd += ["--tune.num_cpus", str(args.cpus)]
        pbt_wall = run(tune_cmd, work / "tune.log")
        summary_path = max((work / "pbt").glob("*/tune_*/summary.json"), key=lambda p: p.stat().st_mtime)
        summary = json.loads(summary_path.read_text())

        max_time = lightning_duration(budget_s)
        logger = json.dumps([{"class_path": "pytorch_lightning.loggers.CSVLogger",
                              "init_args": {"save_dir": str(work / "single"), "name": "lorenz"}}])
        # the population's (autonomous) model, trained once with the default plateau schedule
        same_model = ["--model.con_dim", "0", "--model.co_dim", "0", "--model.ci_enc_dim", "64",
                      "--model.fac_dim", "10"]
        fit_cmd = [sys.executable, "-m", "lfads", "fit", "--config", "configs/lorenz.yaml", *same_model,
                   "--data.data_paths", str(data), "--trainer.max_time", max_time, "--trainer.max_epochs", "100000",
                   "--trainer.enable_progress_bar", "false", "--trainer.logger", logger]
        fit_wall = run(fit_cmd, work / "fit.log")
        single_dir = version_dirs(work / "single" / "lorenz")[-1]

        pbt = score(Path(summary["best_run_dir"]), args.samples)
        single = score(single_dir, args.samples)
        print(f"Lorenz, {args.minutes:g} min budget each; PBT: {args.population} trials, rounds of {args.interval} "
              f"epochs, {summary['exploits']} exploits, best {summary['best_trial']} "
              f"(valid/recon_smth {summary['best_value']:.5f})")
        print(f"{'':<22}{'rate R2':>9}{'co-bps':>9}{'heldin bps':>11}{'epochs':>8}{'wall s':>8}")
        for name, r, wall in (("PBT best trial", pbt, pbt_wall), ("single default fit", single, fit_wall)):
            print(f"{name:<22}{r['rate_r2']:>9.4f}{r['co_bps']:>9.4f}{r['heldin_bps']:>11.4f}{r['epochs']:>8d}{wall:>8.0f}")
        print(f"PBT results: {summary_path.parent}")


if __name__ == "__main__":
    main()
