"""Fit LFADS to synthetic data with known rates and print how close it gets.

Measured figures, with their protocol: ``docs/benchmarks.md``.

For each data set (Lorenz: 30 held-in + 10 held-out neurons, 100 bins, 400 train / 100 valid
trials; chaotic RNN, gain 1.5, with the LFADS paper's 400 initial conditions x 10 trials, 3200 train /
800 valid) this script generates the data (seeded), trains with the shipped
config (``configs/lorenz.yaml``, ``configs/chaotic_rnn.yaml``) for at most ``--minutes`` of
training in a fresh ``lfads fit`` process (one at a time, each with ``--threads`` torch threads,
by default one per core), samples the posterior of the best checkpoint and prints,
on the validation trials:

- rate R2 against the true rates of the rates averaged over ``--samples`` posterior samples (the
  target is judged on this), and for reference of the rates at the posterior means (no sampling),
- the model's bits/spike and that of the true rates (the ceiling), and their ratio,
- seconds per epoch, training trials per second and the training process's peak memory.

With ``--ensemble K`` each data set is fitted K times side by side (seeds 0 to K-1, the ``--threads``
split between them, the same ``--minutes``), each member is scored as above, and a last row scores the
average of the members' rates (:mod:`lfads.ensemble`; epochs and seconds per epoch are the members' mean,
trials per second their sum). On a 2-core machine this spends the second core on a second model
instead of on a second thread for one model.

Targets (2-core CPU, 10 minutes of training each): Lorenz rate R2 >= 0.95 and >= 90% of the
true-rate bits/spike; chaotic RNN rate R2 >= 0.85.

Usage::

    python -m benchmarks.fit_synthetic                 # both, 10 minutes each
    python -m benchmarks.fit_synthetic --minutes 3 --only lorenz
    python -m benchmarks.fit_synthetic --only chaotic_rnn --ensemble 2   # two fits, a core each, and their average
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.fits import ROOT, fit_side_by_side
from benchmarks.scoring import sample_run

DATASETS = {
    "lorenz": dict(config="configs/lorenz.yaml", module="datasets.lorenz", args=[],
                   targets={"rate_r2": 0.95, "bps_ratio": 0.90}),
    "chaotic_rnn": dict(config="configs/chaotic_rnn.yaml", module="datasets.chaotic_rnn",
                        args=["--n-conditions", "400"], targets={"rate_r2": 0.85}),
}


def score_fit(name: str, workdir: Path, wall: float, samples: int) -> tuple[dict, np.ndarray, np.ndarray, object]:
    """Figures of a finished fit on the validation trials, its sampled rates, its rates at the posterior means
    and its data module."""
    from lfads.metrics import bits_per_spike, rate_r2

    run = sample_run(workdir / name, samples, splits=("valid",))
    model, dm, session = run.model, run.datamodule, run.session
    rows = list(csv.DictReader(open(run.checkpoint.parent.parent / "metrics.csv")))
    epochs = max(int(r["epoch"]) for r in rows if r.get("epoch")) + 1
    valid = session.splits["valid"]
    rates = run.rates("valid")
    model.eval()
    with torch.no_grad():  # rates at the posterior means (no sampling), for reference
        mean_rates = model({0: torch.as_tensor(valid.encod_data)}, {0: torch.as_tensor(valid.ext_input)},
                           sample=False)[0].rates.numpy()
    n_train = session.splits["train"].encod_data.shape[0]
    result = {
        "rate_r2": rate_r2(rates, valid.truth),
        "rate_r2_mean": rate_r2(mean_rates, valid.truth),
        "bps": bits_per_spike(rates, valid.recon_data),
        "bps_true": bits_per_spike(valid.truth, valid.recon_data),
        "epochs": epochs,
        "sec_per_epoch": wall / epochs,
        "trials_per_s": n_train * epochs / wall,
        "wall_s": wall,
        "ckpt": str(run.checkpoint),
    }
    result["bps_ratio"] = result["bps"] / result["bps_true"]
    return result, rates, mean_rates, dm


def run_one(name: str, spec: dict, minutes: float, workdir: Path, samples: int, config: str | None = None,
            threads: int | None = None, members: int = 1) -> list[tuple[str, dict]]:
    """Train ``members`` models side by side (seeds 0, 1, ...) and score each, plus their ensemble if several."""
    from lfads.ensemble import ensemble_rates
    from lfads.metrics import bits_per_spike, rate_r2

    data = workdir / f"{name}.h5"
    subprocess.run([sys.executable, "-m", spec["module"], "--out", str(data), *spec["args"]], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    names = [name] if members == 1 else [f"{name}[{k}]" for k in range(members)]
    wall = fit_side_by_side(names, config or ROOT / spec["config"], data, workdir, minutes, threads)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process
    rows, sampled, at_means = [], [], []
    for n in names:
        result, rates, mean_rates, dm = score_fit(n, workdir, wall, samples)
        result["peak_mb"] = peak_mb
        rows.append((n, result))
        sampled.append(rates)
        at_means.append(mean_rates)
    if members > 1:
        session = dm.sessions[0]
        valid = session.splits["valid"]

        def average(member_rates: list[np.ndarray]) -> np.ndarray:
            results = [{session.name: {"valid": {"rates": r}}} for r in member_rates]
            return ensemble_rates(results)[session.name]["valid"]["rates"]

        rates = average(sampled)
        ens = dict(
            rate_r2=rate_r2(rates, valid.truth), rate_r2_mean=rate_r2(average(at_means), valid.truth),
            bps=bits_per_spike(rates, valid.recon_data), bps_true=rows[0][1]["bps_true"],
            epochs=int(round(np.mean([r["epochs"] for _, r in rows]))),
            sec_per_epoch=np.mean([r["sec_per_epoch"] for _, r in rows]),
            trials_per_s=sum(r["trials_per_s"] for _, r in rows), peak_mb=peak_mb,
        )
        ens["bps_ratio"] = ens["bps"] / ens["bps_true"]
        rows.append((f"{name} ens{members}", ens))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget per data set")
    parser.add_argument("--only", choices=sorted(DATASETS), nargs="+")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples per trial")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads of each fit (default: every core, as the fits run one at a time; "
                             "lfads's own default is 1 on machines with up to 4 cores, see lfads.runtime)")
    parser.add_argument("--ensemble", type=int, default=1, metavar="K",
                        help="train K models side by side (seeds 0..K-1, threads split between them) and also score "
                             "the average of their rates (lfads.ensemble); default 1")
    parser.add_argument("--workdir", help="keep runs here (default: a temporary folder)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=PATH",
                        help="train data set NAME with another config (e.g. lorenz=my.yaml); repeatable")
    args = parser.parse_args()
    configs = dict(item.split("=", 1) for item in args.config)
    unknown = sorted(set(configs) - set(DATASETS))
    if unknown:
        parser.error(f"--config names unknown data sets {unknown}; choose from {sorted(DATASETS)}")
    names = args.only or list(DATASETS)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"{'data set':<17}{'rate R2':>9}{'(means)':>9}{'bits/spk':>10}{'true b/s':>10}{'ratio':>7}{'epochs':>8}"
              f"{'s/epoch':>9}{'trials/s':>10}{'peak MB':>9}  result")
        for name in names:
            spec = DATASETS[name]
            threads = args.threads if args.ensemble == 1 else max(1, args.threads // args.ensemble)
            for label, r in run_one(name, spec, args.minutes, workdir, args.samples, configs.get(name), threads,
                                    args.ensemble):
                checks = [f"{k} {r[k]:.4f} >= {v}" for k, v in spec["targets"].items()]
                ok = all(r[k] >= v for k, v in spec["targets"].items())
                print(f"{label:<17}{r['rate_r2']:>9.4f}{r['rate_r2_mean']:>9.4f}{r['bps']:>10.4f}{r['bps_true']:>10.4f}{r['bps_ratio']:>7.3f}"
                      f"{r['epochs']:>8d}{r['sec_per_epoch']:>9.3f}{r['trials_per_s']:>10.1f}{r['peak_mb']:>9.0f}  "
                      f"{'PASS' if ok else 'FAIL'} ({'; '.join(checks)})", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
