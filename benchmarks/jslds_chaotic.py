"""Co-trained LFADS-JSLDS against plain LFADS on the chaotic-RNN input-pulse data.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Generates the input-pulse variant of the chaotic-RNN data (seeded), fits plain LFADS with
``configs/chaotic_rnn_inputs.yaml`` and LFADS with a co-trained JSLDS (the same config with
``configs/jslds.yaml`` layered on top) for the same time budget, and prints on the validation trials:

- rate R2 against the true rates for both (target: JSLDS within 0.05 of plain LFADS),
- the JSLDS one-step relative error ``||a_t - g_t|| / ||g_t||`` (target < 1%),
- the JSLDS rollout relative error (the switching linear system run on its own from ``g_0``),
- the expansion points' fixed-point residual ``||F(e*) - e*|| / ||e*||``.

Usage::

    python -m benchmarks.jslds_chaotic --minutes 10              # one model after the other
    python -m benchmarks.jslds_chaotic --minutes 10 --parallel   # both at once, a core each (2-core box)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.fits import ROOT, start_fit
from benchmarks.scoring import sample_run

CONFIG = ROOT / "configs" / "chaotic_rnn_inputs.yaml"
JSLDS_LAYER = ROOT / "configs" / "jslds.yaml"


def finish_fit(name: str, proc: subprocess.Popen, workdir: Path) -> Path:
    from lfads.rundir import find_checkpoint

    if proc.wait() != 0:
        print((workdir / f"{name}.log").read_text()[-3000:])
        raise SystemExit(f"lfads fit failed for {name}")
    return find_checkpoint(workdir / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each model")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--workdir")
    parser.add_argument("--parallel", action="store_true",
                        help="train both models at once, one core (one thread) each, instead of one after the other")
    parser.add_argument("--jslds-args", default="", help="extra command-line overrides for the JSLDS model only")
    args = parser.parse_args()

    from lfads.metrics import rate_r2

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data = workdir / "chaotic_rnn_inputs.h5"
        subprocess.run([sys.executable, "-m", "datasets.chaotic_rnn", "--input-pulse", "--out", str(data)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        results = {}
        runs = {"plain": [], "jslds": ["--config", str(JSLDS_LAYER), *args.jslds_args.split()]}
        procs = {}
        for name, extra in runs.items():
            procs[name] = start_fit(name, CONFIG, data, workdir, args.minutes, extra)
            if not args.parallel:
                procs[name] = finish_fit(name, procs[name], workdir)
        for name in runs:
            proc = procs[name]
            ckpt = proc if isinstance(proc, Path) else finish_fit(name, proc, workdir)
            run = sample_run(ckpt, args.samples, splits=("valid",))
            model, valid = run.model, run.session.splits["valid"]
            rates = run.rates("valid")
            results[name] = {"rate_r2": rate_r2(rates, valid.truth)}
            if name == "jslds":
                model.eval()
                encod = torch.as_tensor(valid.encod_data)
                ext = torch.as_tensor(valid.ext_input)
                out = model.jslds_outputs(0, encod, ext, sample=False)
                e, image = out["expansion_points"], out["expansion_images"]
                results[name].update(
                    one_step=float(out["one_step_error"].mean()),
                    rollout=float(out["rollout_error"].mean()),
                    fp_residual=float(((image - e).norm(dim=-1) / e.norm(dim=-1).clamp_min(1e-12)).mean()),
                    approx_rate_r2=rate_r2(out["approx_rates"].numpy(), valid.truth),
                    rollout_rate_r2=rate_r2(out["rollout_rates"].numpy(), valid.truth),
                )
    plain, jslds = results["plain"], results["jslds"]
    print(f"chaotic RNN with input pulses, {args.minutes:g} min per model (validation trials)")
    print(f"  plain LFADS rate R2            {plain['rate_r2']:.4f}")
    print(f"  LFADS-JSLDS rate R2            {jslds['rate_r2']:.4f}   "
          f"(difference {plain['rate_r2'] - jslds['rate_r2']:+.4f}, target <= 0.05)")
    print(f"  JSLDS one-step relative error  {jslds['one_step']:.4%}   (target < 1%)")
    print(f"  JSLDS rollout relative error   {jslds['rollout']:.4%}")
    print(f"  expansion-point residual       {jslds['fp_residual']:.4%}  ||F(e*) - e*|| / ||e*||")
    print(f"  rate R2 of one-step / rollout JSLDS states: "
          f"{jslds['approx_rate_r2']:.4f} / {jslds['rollout_rate_r2']:.4f}")
    ok = plain["rate_r2"] - jslds["rate_r2"] <= 0.05 and jslds["one_step"] < 0.01
    print(f"  {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
