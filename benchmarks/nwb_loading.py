"""Time :func:`lfads.data.nwb.bin_nwb` on a large synthetic NWB session.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Builds (in a temporary folder, seeded) an NWB file with ``--units`` units firing as homogeneous Poisson
processes (rates log-normal around ``--rate`` spikes/s) for ``--duration`` seconds and ``--trials`` evenly
spread trials, then reads and bins it (5 ms bins, 700 ms window around ``move_onset_time``). Defaults:
200 units x 1 hour x 2000 trials at ~10 spikes/s, about 7 million spikes. Prints the time to write the
file and the time to read and bin it (best of ``--repeats``), and spikes per second.

Run ``python -m benchmarks.nwb_loading`` from the repository root (see ``--help``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lfads.data.nwb import NWBBinning, bin_nwb


def write_benchmark_nwb(path: Path, n_units: int, duration: float, n_trials: int, rate: float, seed: int) -> int:
    """Write the synthetic session to ``path``; return the number of spikes."""
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import Units

    rng = np.random.default_rng(seed)
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    nwbfile = NWBFile(session_description="Benchmark: homogeneous Poisson units.", identifier=f"benchmark-{seed}",
                      session_start_time=when, file_create_date=when,
                      subject=Subject(subject_id="bench", species="Macaca mulatta", age="P8Y", sex="M"))
    rates = rate * np.exp(0.5 * rng.standard_normal(n_units) - 0.125)  # log-normal with mean `rate`
    counts = rng.poisson(rates * duration)
    spikes = [np.sort(rng.uniform(0.0, duration, size=n)) for n in counts]
    # whole columns at once (add_unit / add_trial per row are slow for millions of spikes)
    spike_times = VectorData(name="spike_times", description="spike times (s)", data=np.concatenate(spikes))
    index = VectorIndex(name="spike_times_index", data=np.cumsum(counts), target=spike_times)
    nwbfile.units = Units(name="units", description="Poisson units", resolution=1.0 / 30000.0,
                          columns=[spike_times, index], id=ElementIdentifiers(name="id", data=np.arange(n_units)))
    period = duration / n_trials
    starts = np.arange(n_trials) * period
    nwbfile.trials = TimeIntervals(name="trials", description="evenly spread trials", columns=[
        VectorData(name="start_time", description="trial start (s)", data=starts),
        VectorData(name="stop_time", description="trial stop (s)", data=starts + min(1.0, period)),
        VectorData(name="move_onset_time", description="movement onset (s)", data=starts + 0.3),
    ])
    total = int(counts.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwbfile)
    return total


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0, help="mean rate (spikes/s)")
    parser.add_argument("--bin-ms", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    binning = NWBBinning(align_event="move_onset_time", window_ms=(-250.0, 450.0), bin_ms=args.bin_ms,
                         heldout_column=None, split_column=None, seed=args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "benchmark.nwb"
        t0 = time.perf_counter()
        n_spikes = write_benchmark_nwb(path, args.units, args.duration, args.trials, args.rate, args.seed)
        t_write = time.perf_counter() - t0
        print(f"wrote {args.units} units x {args.duration:g} s x {args.trials} trials, {n_spikes:,} spikes, "
              f"{path.stat().st_size / 1e6:.1f} MB in {t_write:.2f} s")
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            arrays = bin_nwb(path, binning)
            times.append(time.perf_counter() - t0)
        best = min(times)
        binned = sum(float(arrays[f"{s}_recon_data"].sum()) for s in ("train", "valid", "test")
                     if f"{s}_recon_data" in arrays)
        shape = arrays["train_recon_data"].shape
        print(f"bin_nwb: best {best:.2f} s of {args.repeats} ({', '.join(f'{t:.2f}' for t in times)}); "
              f"{n_spikes / best / 1e6:.2f} M spikes/s read; {binned:,.0f} spikes in windows; "
              f"train_recon_data {shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
