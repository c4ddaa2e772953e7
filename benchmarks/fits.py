"""``lfads fit`` processes for the benchmark scripts: one fit, or several side by side (an ensemble).

Each fit runs ``python -m lfads fit`` in its own process with a CSV logger writing to ``workdir/name``
(the run directory) and its output in ``workdir/name.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lightning_duration(seconds: int) -> str:
    """Lightning's ``DD:HH:MM:SS`` (``trainer.max_time``) for a budget in whole seconds (under a day)."""
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def max_time(minutes: float) -> str:
    """Lightning's ``DD:HH:MM:SS`` for a budget in minutes (fractions of a second dropped)."""
    return lightning_duration(int(minutes * 60))


def start_fit(name: str, config: str | os.PathLike, data: str | os.PathLike, workdir: Path, minutes: float,
              extra: list[str] | tuple[str, ...] = (), threads: int | None = None) -> subprocess.Popen:
    """Start one fit (``LFADS_NUM_THREADS=threads`` when given); returns at once."""
    logger = (f'[{{"class_path": "pytorch_lightning.loggers.CSVLogger", '
              f'"init_args": {{"save_dir": "{workdir}", "name": "{name}"}}}}]')
    cmd = [sys.executable, "-m", "lfads", "fit", "--config", str(config), "--data.data_paths", str(data),
           "--trainer.max_time", max_time(minutes), "--trainer.enable_progress_bar", "false",
           "--trainer.logger", logger, *extra]
    env = dict(os.environ)
    if threads:
        env["LFADS_NUM_THREADS"] = str(threads)
    with open(workdir / f"{name}.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def fit_side_by_side(names: list[str], config: str | os.PathLike, data: str | os.PathLike, workdir: Path,
                     minutes: float, threads: int | None = None) -> float:
    """Train one model per name at the same time and wait for all; returns the wall-clock seconds.

    With several names, fit ``k`` gets ``--seed_everything k`` (an ensemble); a single fit keeps the
    config's seed. A failed fit stops the benchmark with the end of its log.
    """
    t0 = time.perf_counter()
    seeds = [[] if len(names) == 1 else ["--seed_everything", str(k)] for k in range(len(names))]
    procs = [start_fit(n, config, data, workdir, minutes, s, threads) for n, s in zip(names, seeds)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    for n, code in zip(names, codes):
        if code != 0:
            print((workdir / f"{n}.log").read_text()[-3000:])
            raise SystemExit(f"lfads fit failed for {n}")
    return wall
