"""Population benchmarks: training speed (batched trainer against a loop over seeds) and universality.

Measured figures, with their protocol: ``docs/population.md``.

**Speed** (default).
Trains ``--seeds`` networks (8) of each architecture (vanilla, GRU, LSTM, UGRNN; 64 units) on the 3-bit
flip-flop, with the universality settings (``TRAINING["flipflop"]``: batch 8, lr 3e-3, memories carried
across batches, the gated cells' candidate initialised as the vanilla recurrence), until each reaches the
task's target loss (evaluation MSE < 0.01, checked every 25 steps) or ``--max-steps``, with
:func:`lfads.population.train.train_population`: one batched model per architecture. In the same run, right
after each architecture, the first ``--loop-seeds`` of those networks are trained again one after the other
with the same code and settings (:func:`lfads.population.train.train_seed_loop`, a Python loop over seeds);
being the same seeds on the same data, they take the same number of steps. Both rates are networks per
minute of wall time (training only, one thread). Only ``--loop-seeds`` networks are trained in the loop (all
of them would take too long); the loop's time for all networks is its measured time per network-step times
the steps all networks took (the same in both: same seeds, same data). The same networks are also trained a
third way, as a user would without this tool: torch's own ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` (the UGRNN
stepped in Python), one network at a time (:mod:`benchmarks.plain_loop`; same weights, trials and stopping
rule; its rounding differs, so its networks may stop at other steps), timed and scaled the same way.

**Universality** (``--universality``): populations of 8 seeds x 4 architectures x 64 units on the
3-bit flip-flop (memories carried across batches), the sine wave and context-dependent integration,
trained and analysed by :func:`lfads.population.population.run_population` (cached in
``benchmarks/.cache/``; ``--retrain`` ignores the cache). Printed per architecture: the fraction of
flip-flop networks whose 8 stable points are the 8 memories and whose index-1 saddles join them as the
edges of a cube; the silhouette by architecture of the SVCCA, CCA and topology distances, of SVCCA as
one minus the mean canonical correlation (``svcca_corr``, the literature's form), and of the
linearizations (``spectra``, fixed points paired by their task outputs); the fraction of
sine networks x frequencies whose oscillation angle is within 15% of the target, beside the same
fraction for the frequency each network's output actually has over 1200 steps; the fraction of context
networks x contexts with a line attractor (:func:`lfads.population.universality.line_attractor`) and its
criteria. ``--tasks`` picks the tasks; ``--reanalyse`` finds a cached population's fixed points again
(after a change of the search settings); a cached population trained with other task settings than
:data:`lfads.population.universality.TRAINING` asks is trained again.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python -m benchmarks.population
    OMP_NUM_THREADS=1 python -m benchmarks.population --archs gru --seeds 4 --loop-seeds 1
    OMP_NUM_THREADS=1 python -m benchmarks.population --universality
    OMP_NUM_THREADS=1 python -m benchmarks.population --universality --tasks context --reanalyse context
"""

from __future__ import annotations

import argparse
import inspect
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.plain_loop import train_plain_loop
from lfads.population.tasks import get_task
from lfads.population.train import TrainConfig, train_population, train_seed_loop
from lfads.population.universality import ANALYSIS, TRAINING


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="vanilla,gru,lstm,ugrnn")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--loop-seeds", type=int, default=2, help="networks per architecture trained in the loop")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=TRAINING["flipflop"]["batch_size"])
    parser.add_argument("--lr", type=float, default=TRAINING["flipflop"]["lr"])
    parser.add_argument("--uniform-candidate", action="store_true",
                        help="gated cells' candidate drawn uniformly (default: as the vanilla recurrence)")
    parser.add_argument("--max-steps", type=int,
                        help="training steps at most (default 3000; universality: the task's setting)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-carry", action="store_true", help="fresh flip-flop trials every batch")
    parser.add_argument("--universality", action="store_true", help="the universality figures instead of speed")
    parser.add_argument("--tasks", default="flipflop,sine,context", help="universality: the tasks to report")
    parser.add_argument("--retrain", action="store_true", help="ignore cached populations")
    parser.add_argument("--reanalyse", default="", help="tasks (comma-separated) whose cached fixed points are "
                        "found again (after a change of the search settings)")
    return parser.parse_args(argv)


def get_population(task: str, args: argparse.Namespace):
    """Train (or load from ``benchmarks/.cache``) the universality population of ``task``."""
    from lfads.population.population import analyse_population, load_population, run_population, save_population

    cache = Path(__file__).resolve().parent / ".cache"
    cache.mkdir(exist_ok=True)
    (cache / ".gitignore").write_text("*\n")
    path = cache / f"population_{task}_{args.seeds}x{args.units}.h5"
    start = time.perf_counter()
    wanted = get_task(task, **TRAINING[task].get("task_settings", {})).settings
    pop = load_population(path) if path.exists() and not args.retrain else None
    if pop is not None and pop.task.settings != wanted:
        print(f"[{task}] {path.name} was trained with {pop.task.settings}, not {wanted}: training again")
        pop = None
    settings = {**TRAINING[task], **({} if args.max_steps is None else {"max_steps": args.max_steps})}
    if pop is not None and (changed := _changed_training(pop, settings)):
        print(f"[{task}] {path.name} was trained with other settings ({changed}): training again")
        pop = None
    if pop is not None:
        print(f"[{task}] loaded {path.name}")
    else:
        pop = run_population(task=task, archs=args.archs.split(","), seeds=args.seeds, units=args.units,
                             find_points=False, out=str(path), verbose=True, **settings)
    if not pop.fixed_points or not pop.graphs or task in args.reanalyse.split(","):
        analyse_population(pop, graphs=True, verbose=True, **ANALYSIS[task])
        save_population(pop, path)
    print(f"[{task}] ready in {time.perf_counter() - start:.0f} s")
    return pop


def universality(args: argparse.Namespace) -> None:
    from lfads.compare.stats import silhouette_test
    from lfads.population.distances import (
        arch_labels,
        geometry_distances,
        silhouette_by_arch,
        topology_distances,
    )
    from lfads.population.graphs import saddle_edges
    from lfads.population.universality import (
        context_population,
        flipflop_population,
        sine_population,
        sine_simulated_population,
    )

    tasks = args.tasks.split(",")
    if "flipflop" in tasks:
        pop = get_population("flipflop", args)
        print(pop.summary())
        edges = {a: [saddle_edges(net["zero"]) for net in pop.graphs[a]] for a in pop.archs}
        structure = flipflop_population(pop, saddle_edges=edges)
        print(f"{'arch':<8} {'8 memories':>10} {'cube':>6} {'both':>6}")
        for arch, nets in structure.items():
            mem = np.mean([s.all_memories for s in nets])
            cube = np.mean([bool(s.cube) for s in nets])
            both = np.mean([s.all_memories and bool(s.cube) for s in nets])
            print(f"{arch:<8} {mem:>10.2f} {cube:>6.2f} {both:>6.2f}")
        trials = pop.task.condition_sample("zero", 64, torch.Generator().manual_seed(12345))
        traj = pop.trajectories(trials.inputs)
        labels = arch_labels(pop)
        dists = {m: geometry_distances(traj, m) for m in ("svcca", "cca", "svcca_corr")}
        dists["topology"], methods = topology_distances(pop, "zero")
        sil = {m: silhouette_by_arch(d, labels) for m, d in dists.items()}
        p = {m: silhouette_test(d, labels).p_value for m, d in dists.items()}
        print("silhouette by architecture: " + ", ".join(f"{k} {v:.3f} (p = {p[k]:.3g})" for k, v in sil.items())
              + f"; p against 1000 shuffles of the labels; topology by {sorted(set(methods))}")
        _flipflop_spectra(pop)
    if "sine" in tasks:
        pop = get_population("sine", args)
        print(pop.summary())
        errors = sine_population(pop)
        simulated = sine_simulated_population(pop)
        omegas = ", ".join(label.split("=")[1] for label in pop.task.conditions)
        print(f"sine: fraction within 15% of omega (all; per omega {omegas}) and median relative error per omega")
        for arch, err in errors.items():
            sim = simulated[arch]
            print(f"sine {arch:<8} linearisation {np.mean(err <= 0.15):.2f} "
                  f"({', '.join(f'{x:.2f}' for x in np.mean(err <= 0.15, 0))}; "
                  f"{', '.join(f'{x:.2f}' for x in np.nanmedian(err, 0))}) | "
                  f"simulated output {np.mean(sim <= 0.15):.2f} "
                  f"({', '.join(f'{x:.2f}' for x in np.mean(sim <= 0.15, 0))}; "
                  f"{', '.join(f'{x:.3f}' for x in np.median(sim, 0))})")
    if "context" in tasks:
        pop = get_population("context", args)
        print(pop.summary())
        lines = context_population(pop)
        print("context: fraction of networks x contexts with a line attractor; medians over them of: points, variance "
              "on PC1, fraction with the line mode within 0.02 of 1, |lambda - 1| of the line mode, drift per step "
              "(in units of the cued stream's step), |cos| line mode vs tangent, gain relevant / irrelevant; "
              "fraction with relevant > irrelevant")
        for arch, nets in lines.items():
            found = [la for net in nets for la in net.values()]

            def med(name: str, found=found) -> float:
                return float(np.nanmedian([getattr(la, name) for la in found]))

            print(f"context {arch:<8} line attractor {np.mean([la.is_line for la in found]):.2f} of {len(found)} | "
                  f"points {med('n_points'):.0f}, PC1 {med('line_fraction'):.2f}, near 1 {med('eig_near_one'):.2f}, "
                  f"|lambda - 1| {med('line_eigenvalue'):.3f}, drift {med('drift'):.4f}, "
                  f"alignment {med('mode_alignment'):.2f}, gain "
                  f"{med('relevant_gain'):.3f} / {med('irrelevant_gain'):.3f}, relevant > irrelevant "
                  f"{np.mean([la.relevant_gain > la.irrelevant_gain for la in found]):.2f}")


def _flipflop_spectra(pop) -> None:
    """Silhouette by architecture of the linearizations (``spectra``, points paired by their task outputs) over all,
    the 8 and the 3 leading eigenvalues of each point, and the mean distances between architectures over 3."""
    from lfads.population.comparison import compare_population

    for modes in (None, 8, 3):
        res = compare_population(pop, ["spectra"], condition="zero", spectra_kwargs={"n_modes": modes})
        print(f"spectra over {modes or 'all'} leading eigenvalues: silhouette {res.silhouettes['spectra']:.3f} "
              f"(p = {res.p_values['spectra']:.3g})")
    print(res.result.group_table("spectra"))


def _changed_training(pop, settings: dict) -> str:
    """The training settings that ``pop``'s networks were not trained with, as ``name: stored -> wanted``; empty
    when all agree. Wanted: ``settings`` (a ``TRAINING`` entry), else ``run_population``'s defaults."""
    from lfads.population.population import config_for, run_population

    trained = TrainConfig.__dataclass_fields__
    defaults = {k: p.default for k, p in inspect.signature(run_population).parameters.items() if k in trained}
    fields = {**defaults, **{k: v for k, v in settings.items() if k in trained}}
    own = settings.get("arch_settings", {})
    changed = []
    for arch, fit in pop.fits.items():
        wanted = config_for(replace(fit.config, **{**fields, "identity_candidate": False}), arch,
                            settings.get("identity_candidate", False), own)
        for name in {*fields, *own.get(arch, {})}:
            if getattr(fit.config, name) != getattr(wanted, name):
                changed.append(f"{arch} {name}: {getattr(fit.config, name)} -> {getattr(wanted, name)}")
    return "; ".join(changed)


def _time_loop(train_loop, task, arch: str, seeds: list[int], units: int, config: TrainConfig,
               fit) -> tuple[float, float, bool]:
    """Train ``seeds`` one at a time with ``train_loop``: its measured seconds, its seconds for all of ``fit``'s
    networks (measured time per network-step times the steps they all took) and whether each network stopped
    at the step it stopped at in ``fit``."""
    start = time.perf_counter()
    fits = train_loop(task, arch, seeds, units, config)
    measured = time.perf_counter() - start
    steps = [int(np.ravel(f.stop_step)[0]) for f in fits]
    same = all(s == fit.stop_step[i] for i, s in enumerate(steps))
    return measured, measured * fit.stop_step.sum() / sum(steps), same


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.universality:
        universality(args)
        return
    task = get_task("flipflop")
    config = TrainConfig(max_steps=args.max_steps or 3000, batch_size=args.batch_size, lr=args.lr, eval_trials=128,
                         carry_state=not args.no_carry, identity_candidate=not args.uniform_candidate)
    seeds = list(range(args.seeds))
    print(f"3-bit flip-flop, {args.units} units, batch {args.batch_size}, lr {args.lr}, "
          f"{'uniform' if args.uniform_candidate else 'vanilla-like'} candidate, target loss "
          f"{task.target_loss}, {'fresh trials' if args.no_carry else 'trials continued across batches'}, "
          f"{args.threads} thread(s)")
    header = (f"{'arch':<8} {'reached':>7} {'median steps':>12} {'batched s':>9} {'net/min':>8} "
              f"{'loop s (measured)':>17} {'loop s (all)':>12} {'loop net/min':>12} {'speed-up':>8} "
              f"{'torch loop s (measured)':>23} {'torch loop s (all)':>18} {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    total_batched = total_loop = total_torch = 0.0
    run_start = time.perf_counter()
    n_loop = n_reached = 0
    for arch in args.archs.split(","):
        fit = train_population(task, arch, seeds, args.units, config)
        loop_time, loop_all, same_loop = _time_loop(train_seed_loop, task, arch, seeds[: args.loop_seeds], args.units,
                                                    config, fit)
        torch_time, torch_all, same_torch = _time_loop(train_plain_loop, task, arch, seeds[: args.loop_seeds],
                                                       args.units, config, fit)
        same = same_loop and same_torch
        rate, loop_rate = 60 * len(seeds) / fit.wall_time, 60 * len(seeds) / loop_all
        print(f"{arch:<8} {int(fit.reached.sum()):>4}/{len(seeds):<2} {np.median(fit.stop_step):>12.0f} "
              f"{fit.wall_time:>9.1f} {rate:>8.1f} {loop_time:>17.1f} {loop_all:>12.1f} {loop_rate:>12.1f} "
              f"{rate / loop_rate:>7.1f}x {torch_time:>23.1f} {torch_all:>18.1f} {torch_all / fit.wall_time:>7.1f}x"
              + ("" if same else "  (loop stopped at other steps)"), flush=True)
        total_batched += fit.wall_time
        total_loop += loop_all
        total_torch += torch_all
        n_loop += len(seeds[: args.loop_seeds])
        n_reached += int(fit.reached.sum())
    n_total = len(seeds) * len(args.archs.split(","))
    rate = 60 * n_total / total_batched
    print("-" * len(header))
    print(f"all: {n_reached}/{n_total} networks reached the target; batched {n_total} networks in "
          f"{total_batched:.1f} s ({rate:.1f} per minute); loop ({n_loop} networks measured, time per network-step "
          f"times all steps) {total_loop:.1f} s ({60 * n_total / total_loop:.1f} per minute); "
          f"speed-up {total_loop / total_batched:.1f}x; torch's modules in a loop (the same networks) "
          f"{total_torch:.1f} s ({60 * n_total / total_torch:.1f} per minute), speed-up "
          f"{total_torch / total_batched:.1f}x; run time {time.perf_counter() - run_start:.0f} s")


if __name__ == "__main__":
    main()
