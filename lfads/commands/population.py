"""``lfads population``: train a population of task RNNs, find every network's fixed points, write one file.

``lfads population --task flipflop --arch vanilla,gru,lstm,ugrnn --seeds 8 --units 64 --out pop.h5`` trains
``seeds`` networks of each architecture at once (one batched model per architecture), finds each network's
fixed points and fixed-point graph, writes weights, losses, the reached-target flags, fixed points and graphs
to one HDF5 file, and prints a summary table per architecture (see :mod:`lfads.population`).

With ``--ray`` the training is spread over Ray Tune trials, one per architecture and chunk of
``--seeds-per-trial`` seeds (:mod:`lfads.population.spread`), on a Ray started here or on the cluster at
``--ray-address`` (``ray start --head`` prints it); the file is the same.

Each task trains and is analysed with the settings of the universality figures
(:data:`lfads.population.universality.TRAINING` and ``ANALYSIS``: batch size, learning rate and its decay,
trial length, initialisation, target loss, fixed-point starts); ``--target-loss`` and ``--n-initial``
override theirs.
"""

from __future__ import annotations

from lfads.commands.checks import output_file, require_at_least, require_initial_states
from lfads.commands.report import ArgumentParser
from lfads.errors import LFADSArgumentError

__all__ = ["build_parser", "main", "task_defaults"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads population``."""
    parser = ArgumentParser(prog="lfads population",
                            description="Train a population of task RNNs and find their fixed points.")
    parser.add_argument("--task", default="flipflop", help="flipflop, sine or context (default flipflop)")
    parser.add_argument("--arch", default="vanilla,gru,lstm,ugrnn",
                        help="comma-separated architectures (default vanilla,gru,lstm,ugrnn)")
    parser.add_argument("--seeds", type=int, default=8, help="networks per architecture (default 8)")
    parser.add_argument("--units", type=int, default=64, help="units per network (default 64)")
    parser.add_argument("--max-steps", type=int,
                        help="training steps at most (default: the task's training setting, 6000 for the sine "
                             "wave, 3000 otherwise)")
    parser.add_argument("--target-loss", type=float, help="stop a network at this loss (default: the task's)")
    parser.add_argument("--rate-penalty", type=float, metavar="BETA",
                        help="add BETA times the mean squared activity <h^2> to each network's training loss "
                             "(default: the task's training setting, 0 for the flip-flop, 1.0 for the sine wave "
                             "(the UGRNNs 0.1) and context; the stopping rule scores the task loss alone)")
    parser.add_argument("--n-initial", type=int,
                        help="starts of the fixed-point search per network and condition (default: the task's "
                             "analysis setting, 1024 for the flip-flop, 256 otherwise)")
    parser.add_argument("--no-graphs", action="store_true", help="skip the fixed-point graphs")
    parser.add_argument("--out", required=True, help="HDF5 file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier population file")
    ray = parser.add_argument_group("spreading the training over Ray Tune")
    ray.add_argument("--ray", action="store_true",
                     help="train on Ray Tune, one trial per architecture and chunk of seeds "
                          "(pip install 'lfads[tune]')")
    ray.add_argument("--ray-address", metavar="HOST:PORT",
                     help="a running Ray cluster (`ray start --head` prints it; trusted networks only); "
                          "default: start Ray on this machine")
    ray.add_argument("--seeds-per-trial", type=int, metavar="K",
                     help="networks trained together in one trial (default 8)")
    ray.add_argument("--cpus-per-trial", type=int, metavar="C", help="CPUs of one trial (default 1)")
    ray.add_argument("--ray-storage", metavar="DIR",
                     help="keep Ray Tune's results (trial logs, checkpoints) here; on a cluster of several "
                          "machines a folder they all see (default: a temporary folder)")
    return parser


def _archs(text: str) -> list[str]:
    from lfads.population.cells import ARCHITECTURES

    archs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if not archs or unknown:
        raise LFADSArgumentError(
            f"--arch {text}: unknown {unknown or 'empty list'}; choose from {', '.join(ARCHITECTURES)}.")
    repeated = sorted({a for a in archs if archs.count(a) > 1})
    if repeated:  # each would be trained again and its first networks dropped
        raise LFADSArgumentError(f"--arch {text}: {', '.join(repeated)} given more than once; name each architecture "
                                 "once (--seeds sets the networks per architecture).")
    return archs


def _task(name: str) -> str:
    """``name`` after checking it names a task of :data:`lfads.population.tasks.TASKS`."""
    from lfads.population.tasks import TASKS, get_task

    if name not in TASKS:
        raise LFADSArgumentError(f"--task {name}: unknown task; choose from {', '.join(sorted(TASKS))}.")
    get_task(name)  # the task builds with its default settings
    return name


_RAY_OPTIONS = ("ray_address", "seeds_per_trial", "cpus_per_trial", "ray_storage")


def _ray_settings(args) -> dict | None:
    """The settings of :func:`lfads.population.spread.run_population_ray` from ``--ray ...``; None without ``--ray``."""
    given = [f"--{name.replace('_', '-')}" for name in _RAY_OPTIONS if getattr(args, name) is not None]
    if not args.ray:
        if given:
            raise LFADSArgumentError(f"{', '.join(given)}: only with --ray; add --ray or drop them.")
        return None
    settings = {"seeds_per_trial": 8 if args.seeds_per_trial is None else args.seeds_per_trial,
                "cpus_per_trial": 1 if args.cpus_per_trial is None else args.cpus_per_trial,
                "address": args.ray_address, "storage": args.ray_storage}
    require_at_least(settings["seeds_per_trial"], 1, "--seeds-per-trial")
    require_at_least(settings["cpus_per_trial"], 1, "--cpus-per-trial")
    if args.ray_address is not None and not args.ray_address.strip():
        raise LFADSArgumentError("--ray-address '': empty; pass the host:port `ray start --head` prints, or drop it.")
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise LFADSArgumentError("--ray: Ray Tune is not installed; install it with pip install 'lfads[tune]', "
                                 "or drop --ray.") from None
    return settings


def task_defaults(task: str) -> dict:
    """The training and analysis settings of the universality figures for ``task`` (``TRAINING``, ``ANALYSIS``
    of :mod:`lfads.population.universality`): what ``lfads population`` trains with unless told otherwise."""
    from lfads.population.universality import ANALYSIS, TRAINING

    return {**TRAINING.get(task, {}), **ANALYSIS.get(task, {})}


def main(argv: list[str]) -> int:
    """Run ``lfads population`` with the arguments after ``population``; returns 0 on success."""
    from lfads.data.atomic import guarded_output
    from lfads.population.population import run_population, save_population

    args = build_parser().parse_args(argv)
    archs = _archs(args.arch)
    for value, option in ((args.seeds, "--seeds"), (args.units, "--units"), (args.max_steps, "--max-steps")):
        if value is not None:
            require_at_least(value, 1, option)
    if args.n_initial is not None:
        require_initial_states(args.n_initial)
    ray = _ray_settings(args)
    _task(args.task)  # an unknown task is an error before any training
    out = output_file(args.out, args.overwrite, what="a run")
    common = {**task_defaults(args.task), "task": args.task, "archs": archs, "seeds": args.seeds,
              "units": args.units, "graphs": not args.no_graphs, "verbose": True}
    if args.rate_penalty is not None:
        require_at_least(args.rate_penalty, 0.0, "--rate-penalty")
    if args.target_loss is not None:  # a mean squared error; 0 trains every network for --max-steps
        require_at_least(args.target_loss, 0.0, "--target-loss")
    if args.n_initial is not None:
        common["n_initial_states"] = args.n_initial
    given = {k: getattr(args, k) for k in ("max_steps", "target_loss", "rate_penalty") if getattr(args, k) is not None}
    common.update(given)
    if given and "arch_settings" in common:  # an option given on the command line holds for every architecture
        common["arch_settings"] = {arch: {k: v for k, v in own.items() if k not in given}
                                   for arch, own in common["arch_settings"].items()}
    if ray is None:
        result = run_population(**common)
    else:
        from lfads.population.spread import run_population_ray

        result = run_population_ray(**ray, **common)
    with guarded_output(out, overwrite=args.overwrite, what="population file") as tmp:
        save_population(result, tmp)
    print(result.summary())
    print(f"Wrote {out}")
    return 0
