"""Training-step throughput of the MC_Maze-sized LFADS model against a plain reference.

Measured figures, with their protocol: ``docs/benchmarks.md``.

Times full training steps (forward, loss, backward, optimizer step) on random
Poisson counts for the MC_Maze-sized configuration (137 held-in / 182 total
neurons, 35 + 10 forward bins, gen 200, con 64, ic 64, co 4, fac 100,
encoders 64/64) at batch 256 and batch 32, and prints trials/s, peak memory and
achieved GFLOP/s (from an analytic FLOP count) next to the machine's sgemm rate
measured in the same run.

The reference is the same architecture written the plain way: every RNN
(both directions of both encoders, controller and generator) is a per-step
Python loop over a GRU cell built from ``nn.Linear`` layers, the controller
reads concatenated inputs, and the factors are computed inside the loop. Each
implementation runs at 1 and 2 threads, in a fresh process per measurement,
and is compared at its best thread count. The model runs as shipped: compiled
CPU loops (``lfads.modules.native``, unless ``LFADS_NATIVE=0``) and its own fused
AdamW; the reference uses ``torch.optim.Adam``. Both run with the huge-page
allocator setting that ``import lfads`` applies (``THP_MEM_ALLOC_ENABLE=1``,
unless set otherwise in the environment).

Usage::

    python -m benchmarks.throughput            # full run (a few minutes)
    python -m benchmarks.throughput --quick    # fewer steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch import nn

DIMS = dict(n_in=137, n_recon=182, t_enc=35, t_recon=45, gen=200, con=64, ic=64, co=4, fac=100, ic_enc=64, ci_enc=64)


# ----------------------------------------------------------------------------- reference
class PlainGRUCell(nn.Module):
    """GRU cell from two Linear layers, one Python call per op (the usual hand-written cell)."""

    def __init__(self, input_size: int, hidden_size: int, clip: float = 5.0) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 3 * hidden_size)
        self.hh = nn.Linear(hidden_size, 3 * hidden_size)
        self.clip = clip

    def forward(self, x, h):
        xr, xz, xn = self.ih(x).chunk(3, 1)
        hr, hz, hn = self.hh(h).chunk(3, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return torch.clamp((1 - z) * n + z * h, -self.clip, self.clip)


class PlainBiEncoder(nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.fwd, self.bwd = PlainGRUCell(n_in, hidden), PlainGRUCell(n_in, hidden)
        self.hidden = hidden

    def forward(self, x):
        b, t, _ = x.shape
        hf = x.new_zeros(b, self.hidden)
        hb = x.new_zeros(b, self.hidden)
        outs_f, outs_b = [], []
        for i in range(t):
            hf = self.fwd(x[:, i], hf)
            outs_f.append(hf)
        for i in reversed(range(t)):
            hb = self.bwd(x[:, i], hb)
            outs_b.append(hb)
        return torch.cat([torch.stack(outs_f, 1), torch.stack(outs_b[::-1], 1)], -1), torch.cat([hf, hb], -1)


class PlainLFADS(nn.Module):
    def __init__(self, d: dict) -> None:
        super().__init__()
        self.d = d
        self.ic_enc = PlainBiEncoder(d["n_in"], d["ic_enc"])
        self.ci_enc = PlainBiEncoder(d["n_in"], d["ci_enc"])
        self.ic_lin = nn.Linear(2 * d["ic_enc"], 2 * d["ic"])
        self.g0 = nn.Linear(d["ic"], d["gen"])
        self.con = PlainGRUCell(2 * d["ci_enc"] + d["fac"], d["con"])
        self.co_lin = nn.Linear(d["con"], 2 * d["co"])
        self.gen = PlainGRUCell(d["co"], d["gen"])
        self.fac = nn.Linear(d["gen"], d["fac"], bias=False)
        self.readout = nn.Linear(d["fac"], d["n_recon"])
        self.drop = nn.Dropout(0.3)

    def loss(self, x, y):
        d = self.d
        b = x.shape[0]
        x = self.drop(x)
        _, h_ic = self.ic_enc(x)
        ic_mean, ic_logvar = self.ic_lin(self.drop(h_ic)).chunk(2, -1)
        ic_std = torch.exp(0.5 * ic_logvar)
        ic = ic_mean + ic_std * torch.randn_like(ic_std)
        ci, _ = self.ci_enc(x)
        ci = nn.functional.pad(self.drop(ci), (0, 0, 0, d["t_recon"] - d["t_enc"]))
        g = self.g0(self.drop(ic))
        c = x.new_zeros(b, d["con"])
        w = self.fac.weight / self.fac.weight.norm(dim=1, keepdim=True)
        f = self.drop(g) @ w.t()
        facs, kl_co = [], 0.0
        for t in range(d["t_recon"]):
            c = self.con(torch.cat([ci[:, t], f], -1), c)
            m, lv = self.co_lin(c).chunk(2, -1)
            s = torch.exp(0.5 * lv)
            u = m + s * torch.randn_like(s)
            kl_co = kl_co + (0.5 * (m**2 + s**2) - torch.log(s) - 0.5).sum()
            g = self.gen(u, g)
            f = self.drop(g) @ w.t()
            facs.append(f)
        log_rates = self.readout(torch.stack(facs, 1))
        nll = (torch.exp(log_rates) - y * log_rates).mean()
        kl_ic = (0.5 * (ic_mean**2 + ic_std**2) - torch.log(ic_std) - 0.5).sum()
        return nll + (kl_ic + kl_co) / (b * y.shape[1] * y.shape[2])


# ----------------------------------------------------------------------------- FLOPs
def step_flops(batch: int, d: dict = DIMS) -> float:
    """Analytic FLOPs of one training step (matrix products only; backward = 2x forward)."""

    def gru(i, h):
        return 2 * 3 * h * (i + h)

    per_trial = (
        2 * d["t_enc"] * gru(d["n_in"], d["ic_enc"])
        + 2 * d["t_enc"] * gru(d["n_in"], d["ci_enc"])
        + d["t_recon"] * (gru(2 * d["ci_enc"] + d["fac"], d["con"]) + 2 * d["con"] * 2 * d["co"])
        + d["t_recon"] * (gru(d["co"], d["gen"]) + 2 * d["gen"] * d["fac"] + 2 * d["fac"] * d["n_recon"])
    )
    return 3.0 * per_trial * batch


# ----------------------------------------------------------------------------- measurement (child process)
def measure(impl: str, batch: int, threads: int, steps: int) -> dict:
    import resource

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = DIMS
    x = torch.poisson(torch.full((batch, d["t_enc"], d["n_in"]), 0.3))
    y = torch.cat([x, torch.poisson(torch.full((batch, d["t_enc"], d["n_recon"] - d["n_in"]), 0.3))], 2)
    y = torch.cat([y, torch.poisson(torch.full((batch, d["t_recon"] - d["t_enc"], d["n_recon"]), 0.3))], 1)
    if impl == "lfads":
        from lfads.data.batch import SessionBatch
        from lfads.model import LFADS

        model = LFADS(
            [d["n_in"]], [d["n_recon"]], d["t_enc"], d["t_recon"], 0,
            gen_dim=d["gen"], con_dim=d["con"], ic_dim=d["ic"], co_dim=d["co"], fac_dim=d["fac"],
            ic_enc_dim=d["ic_enc"], ci_enc_dim=d["ci_enc"], dropout_rate=0.3, ci_lag=0,
        )
        sb = SessionBatch(x, y, torch.zeros(batch, d["t_recon"], 0), None, torch.ones_like(x))
        model.log = lambda *a, **k: None  # no trainer attached

        def loss_fn():
            return model._step({0: sb}, "train")
    else:
        model = PlainLFADS(d)

        def loss_fn():
            return model.loss(x, y)

    model.train()
    if impl == "lfads":  # the model's own optimizer (fused AdamW on a CPU)
        opt = model.configure_optimizers()
        opt = opt["optimizer"] if isinstance(opt, dict) else opt
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "batch": batch, "threads": threads, "sec_per_step": dt, "trials_per_s": batch / dt,
            "gflops": step_flops(batch) / dt / 1e9, "peak_mb": peak_mb}


def sgemm_rate(threads: int, n: int = 1024, reps: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, batch, threads, steps = args.child.split(",")
        print(json.dumps(measure(impl, int(batch), int(threads), int(steps))))
        return
    steps = {256: 3 if args.quick else 6, 32: 5 if args.quick else 15}
    # Both implementations run with the allocator setting that `import lfads` applies (see lfads.runtime).
    env = dict(os.environ, THP_MEM_ALLOC_ENABLE=os.environ.get("THP_MEM_ALLOC_ENABLE", "1"))
    print(f"THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']} for both implementations")
    print(f"torch {torch.__version__}; sgemm (1024^3): "
          + ", ".join(f"{t} thread(s) {sgemm_rate(t):.1f} GFLOP/s" for t in (1, 2)))
    print(f"{'impl':<10}{'batch':>6}{'threads':>8}{'ms/step':>10}{'trials/s':>10}{'GFLOP/s':>9}{'peak MB':>9}")
    best: dict = {}
    for batch in (256, 32):
        for impl in ("lfads", "reference"):
            for threads in (1, 2):
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.throughput", "--child",
                     f"{impl},{batch},{threads},{steps[batch]}"],
                    capture_output=True, text=True, check=True, env=env,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{impl:<10}{batch:>6}{threads:>8}{r['sec_per_step'] * 1e3:>10.1f}{r['trials_per_s']:>10.1f}"
                      f"{r['gflops']:>9.2f}{r['peak_mb']:>9.0f}", flush=True)
                key = (impl, batch)
                if key not in best or r["trials_per_s"] > best[key]["trials_per_s"]:
                    best[key] = r
    print("\nAt each implementation's best thread count:")
    for batch, target in ((256, 1.5), (32, 3.0)):
        ours, ref = best[("lfads", batch)], best[("reference", batch)]
        ratio = ours["trials_per_s"] / ref["trials_per_s"]
        print(f"  batch {batch:>3}: lfads {ours['trials_per_s']:.1f} trials/s ({ours['threads']} thr) vs reference "
              f"{ref['trials_per_s']:.1f} ({ref['threads']} thr): {ratio:.2f}x (target >= {target}x) "
              f"{'PASS' if ratio >= target else 'FAIL'}")


if __name__ == "__main__":
    main()
