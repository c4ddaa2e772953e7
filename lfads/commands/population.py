"""``lfads population``: train a population of task RNNs, find every network's fixed points, write one file.

``lfads population --task flipflop --arch vanilla,gru,lstm,ugrnn --seeds 8 --units 64 --out pop.h5`` trains
``seeds`` networks of each architecture at once (one batched model per architecture), finds each network's
fixed points and fixed-point graph, writes weights, losses, the reached-target flags, fixed points and graphs
to one HDF5 file, and prints a summary table per architecture (see :mod:`lfads.population`).
"""

from __future__ import annotations

from lfads.commands.checks import output_file, require_at_least
from lfads.commands.report import ArgumentParser
from lfads.errors import LFADSArgumentError

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads population``."""
    parser = ArgumentParser(prog="lfads population",
                            description="Train a population of task RNNs and find their fixed points.")
    parser.add_argument("--task", default="flipflop", help="flipflop, sine or context (default flipflop)")
    parser.add_argument("--arch", default="vanilla,gru,lstm,ugrnn",
                        help="comma-separated architectures (default vanilla,gru,lstm,ugrnn)")
    parser.add_argument("--seeds", type=int, default=8, help="networks per architecture (default 8)")
    parser.add_argument("--units", type=int, default=64, help="units per network (default 64)")
    parser.add_argument("--max-steps", type=int, default=3000, help="training steps at most (default 3000)")
    parser.add_argument("--target-loss", type=float, help="stop a network at this loss (default: the task's)")
    parser.add_argument("--n-initial", type=int, default=256,
                        help="starts of the fixed-point search per network and condition (default 256)")
    parser.add_argument("--no-graphs", action="store_true", help="skip the fixed-point graphs")
    parser.add_argument("--out", required=True, help="HDF5 file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier population file")
    return parser


def _archs(text: str) -> list[str]:
    from lfads.population.cells import ARCHITECTURES

    archs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if not archs or unknown:
        raise LFADSArgumentError(
            f"--arch {text}: unknown {unknown or 'empty list'}; choose from {', '.join(ARCHITECTURES)}.")
    return archs


def main(argv: list[str]) -> int:
    """Run ``lfads population`` with the arguments after ``population``; returns 0 on success."""
    from lfads.data.atomic import guarded_output
    from lfads.population.population import run_population, save_population
    from lfads.population.tasks import get_task

    args = build_parser().parse_args(argv)
    archs = _archs(args.arch)
    for value, option in ((args.seeds, "--seeds"), (args.units, "--units"), (args.max_steps, "--max-steps"),
                          (args.n_initial, "--n-initial")):
        require_at_least(value, 1, option)
    get_task(args.task)  # an unknown task is an error before any training
    out = output_file(args.out, args.overwrite, what="a run")
    result = run_population(task=args.task, archs=archs, seeds=args.seeds, units=args.units,
                            max_steps=args.max_steps, target_loss=args.target_loss, n_initial_states=args.n_initial,
                            graphs=not args.no_graphs, verbose=True)
    with guarded_output(out, overwrite=args.overwrite, what="population file") as tmp:
        save_population(result, tmp)
    print(result.summary())
    print(f"Wrote {out}")
    return 0
