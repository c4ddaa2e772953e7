"""Posterior-sampling speed: the chunked sampler against repeat-and-forward, on Lorenz- and MC_Maze-sized models.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Two workloads, each sampled by :func:`lfads.sampling.sample_posteriors` (encode each trial once, draw the
posterior samples from the stored posteriors, decode in chunks sized to a memory budget) and, as the baseline in
the same run, by the plain sampler this replaced (each batch of ``4096 // n_samples`` trials repeated
``n_samples`` times and run through the whole model):

- ``lorenz``: the Lorenz quickstart (``configs/lorenz.yaml`` model sizes, the shipped generator's 500 trials of
  100 bins, 30 held-in + 10 held-out neurons), 50 samples per trial;
- ``mc_maze``: the MC_Maze_Small model (``configs/mc_maze_small.yaml`` sizes) on the shipped NLB file (100 trials,
  140 + 40 bins, 107 + 35 neurons), 50 samples per trial.

Timing does not depend on the weights, so the models keep their random initial weights, except that each is
first trained for one epoch (Lightning ``Trainer.fit``) so that sampling starts right after a fit, as in
``lfads fit`` followed by ``lfads sample``. Each (workload, sampler) runs in a fresh process with one thread (the
CLI's default on this machine); it prints wall, user and system time of the sampling call
(``resource.getrusage``), the process's peak RSS, samples per second (trials x samples / wall) and the seconds
per trial of the first split against the later ones (a slow first batch after a fit shows as a ratio well above 1).

Usage::

    python -m benchmarks.sampling                 # both workloads, both samplers
    python -m benchmarks.sampling --only lorenz   # one workload
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_SAMPLES = 50
SPLITS = ("train", "valid", "test")
WORKLOADS = {
    "lorenz": {"config": "configs/lorenz.yaml", "data": None},
    "mc_maze": {"config": "configs/mc_maze_small.yaml", "data": "datasets/mc_maze_small/mc_maze_small_full.h5"},
}


def repeat_and_forward(model, datamodule, n_samples: int, splits: tuple[str, ...], max_rows: int = 4096) -> dict:
    """The plain sampler (the baseline): repeat each batch ``n_samples`` times and run the whole model on it."""
    import torch

    from lfads.sampling import AVERAGED, PER_TRIAL

    model.eval()
    rows = max(1, max_rows // n_samples)
    results: dict = {}
    with torch.no_grad():
        for s, session in enumerate(datamodule.sessions):
            results[session.name] = {}
            for split in splits:
                if split not in session.splits:
                    continue
                chunks: dict = {k: [] for k in AVERAGED + PER_TRIAL}
                for batch in datamodule.split_dataloader(s, split, batch_size=rows):
                    b = batch.encod_data.shape[0]
                    out = model({s: batch.encod_data.repeat(n_samples, 1, 1)},
                                {s: batch.ext_input.repeat(n_samples, 1, 1)}, sample=True)[s]
                    for k in AVERAGED:
                        v = getattr(out, k).float()
                        chunks[k].append(v.reshape(n_samples, b, *v.shape[1:]).mean(0))
                    for k in PER_TRIAL:
                        chunks[k].append(getattr(out, k)[:b].float())
                results[session.name][split] = {k: torch.cat(v).numpy() for k, v in chunks.items()}
    return results


def _model_and_data(workload: str, workdir: Path):
    import yaml

    from lfads.data.datamodule import LFADSDataModule
    from lfads.model import LFADS

    spec = WORKLOADS[workload]
    config = yaml.safe_load((ROOT / spec["config"]).read_text())
    data = spec["data"]
    if data is None:
        from datasets.lorenz import write_lorenz

        data = write_lorenz(workdir / "lorenz.h5")  # the quickstart's data set: 500 trials
    else:
        data = ROOT / data
    data_cfg = {k: v for k, v in config["data"].items() if k != "data_paths"}
    dm = LFADSDataModule(str(data), **data_cfg)
    dm.setup("fit")
    model = LFADS(dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
                  **config["model"])
    return model, dm


def _fit_one_epoch(model, dm) -> float:
    import pytorch_lightning as pl

    from lfads.callbacks import metric_callbacks

    start = time.perf_counter()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=metric_callbacks())
    trainer.fit(model, dm)
    return time.perf_counter() - start


def measure(workload: str, sampler: str) -> dict:
    """One (workload, sampler) measurement in this process."""
    import torch

    from lfads.runtime import configure_threads
    from lfads.sampling import sample_posteriors

    configure_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, dm = _model_and_data(workload, Path(tmp))
        fit_s = _fit_one_epoch(model, dm)
        session = dm.sessions[0]
        splits = [s for s in SPLITS if s in session.splits]
        per_split = {}
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for split in splits:  # one call per split, to time the first split against the others
            split_start = time.perf_counter()
            if sampler == "chunked":
                sample_posteriors(model, dm, N_SAMPLES, (split,), progress=False)
            else:
                repeat_and_forward(model, dm, N_SAMPLES, (split,))
            per_split[split] = (time.perf_counter() - split_start, session.splits[split].n_trials)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    n_trials = sum(n for _, n in per_split.values())
    first = per_split[splits[0]]
    rest = [per_split[s] for s in splits[1:]]
    rest_per_trial = sum(t for t, _ in rest) / max(1, sum(n for _, n in rest))
    return {
        "workload": workload, "sampler": sampler, "trials": n_trials, "fit_s": fit_s, "wall_s": wall,
        "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
        "peak_rss_mb": after.ru_maxrss / 1024, "samples_per_s": n_trials * N_SAMPLES / wall,
        "first_split_slowdown": (first[0] / first[1]) / rest_per_trial if rest else float("nan"),
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(WORKLOADS), help="run one workload")
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "SAMPLER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for workload in [args.only] if args.only else list(WORKLOADS):
        for sampler in ("chunked", "repeat_and_forward"):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.sampling", "--one", workload, sampler],
                                  cwd=ROOT, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{N_SAMPLES} posterior samples per trial, one thread, each row a fresh process after a one-epoch fit")
    print(f"{'workload':<9}{'sampler':<20}{'trials':>7}{'wall s':>8}{'user s':>8}{'sys s':>7}{'sys %':>7}"
          f"{'peak MB':>9}{'samples/s':>11}{'1st split':>10}")
    for r in rows:
        print(f"{r['workload']:<9}{r['sampler']:<20}{r['trials']:>7d}{r['wall_s']:>8.1f}{r['user_s']:>8.1f}"
              f"{r['sys_s']:>7.1f}{100 * r['sys_s'] / r['wall_s']:>7.0f}{r['peak_rss_mb']:>9.0f}"
              f"{r['samples_per_s']:>11.0f}{r['first_split_slowdown']:>10.2f}")
    for workload in dict.fromkeys(r["workload"] for r in rows):
        new, old = (next(r for r in rows if r["workload"] == workload and r["sampler"] == s)
                    for s in ("chunked", "repeat_and_forward"))
        print(f"{workload}: chunked sampler {old['wall_s'] / new['wall_s']:.1f}x faster in wall time, "
              f"{old['user_s'] / max(new['user_s'], 1e-9):.1f}x less user time")


if __name__ == "__main__":
    main()
