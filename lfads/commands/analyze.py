"""``lfads analyze``: fixed points, linearization and a post-hoc JSLDS of a trained generator.

Every argument is checked before the model is loaded, and the data-dependent ones (split, session, the
output not being an input file) before the analysis starts.
"""

from __future__ import annotations

from pathlib import Path

from lfads.commands.checks import (
    StoreOnce,
    add_common_options,
    check_splits,
    checkpoint_file,
    data_files,
    load_model_and_data,
    output_file,
    require_at_least,
    require_initial_states,
    run_checkpoint,
    run_files,
    session_index,
)
from lfads.commands.report import ArgumentParser

__all__ = ["ANALYSIS_FILE", "build_parser", "main"]

ANALYSIS_FILE = "analysis.h5"
"""Default output of ``lfads analyze --run``, inside the run's version folder."""


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads analyze``."""
    parser = ArgumentParser(prog="lfads analyze", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", action=StoreOnce, help="checkpoint file")
    src.add_argument("--run", action=StoreOnce, help="run directory (uses its best checkpoint)")
    parser.add_argument("--out", action=StoreOnce,
                        help=f"output HDF5 file (default: {ANALYSIS_FILE} in the run directory)")
    parser.add_argument("--data", nargs="+", action=StoreOnce,
                        help="data files to use instead of those the model was trained on")
    parser.add_argument("--split", default="valid", action=StoreOnce,
                        help="split whose generator trajectories seed the search")
    parser.add_argument("--session", type=int, default=0, action=StoreOnce, help="session index (multi-session models)")
    parser.add_argument("--n-initial", type=int, default=1024, help="initial states for the fixed-point search")
    parser.add_argument("--noise", type=float, default=0.05, help="noise added to initial states, x state std")
    parser.add_argument("--max-trials", type=int, default=200, help="trials whose trajectories are used")
    parser.add_argument("--no-jslds", action="store_true", help="skip the post-hoc JSLDS")
    parser.add_argument("--expansion-steps", type=int, default=1000, help="training steps of the expansion network")
    parser.add_argument("--seed", type=int, default=0)
    add_common_options(parser)
    return parser


def main(argv: list[str]) -> int:
    """Run ``lfads analyze`` with the arguments after ``analyze``; returns 0 on success.

    Raises
    ------
    lfads.errors.LFADSError
        For a bad argument, checkpoint, data file or output path, before the analysis starts.
    """
    from lfads.analysis.pipeline import analyze_model
    from lfads.data.atomic import guarded_output

    args = build_parser().parse_args(argv)
    trust = True if args.trust_checkpoint else None  # None: LFADS_TRUST_CHECKPOINTS decides
    require_initial_states(args.n_initial)
    require_at_least(args.max_trials, 1, "--max-trials")
    require_at_least(args.noise, 0, "--noise")
    if not args.no_jslds:
        require_at_least(args.expansion_steps, 1, "--expansion-steps")
    ckpt = checkpoint_file(args.ckpt) if args.ckpt else run_checkpoint(args.run, trust)
    out = Path(args.out) if args.out else ckpt.parent.parent / ANALYSIS_FILE
    output_file(out, args.overwrite, protected=run_files([ckpt]), what="a run")
    if args.data:
        data_files(args.data)

    model, datamodule = load_model_and_data(ckpt, args.data, trust=trust)
    session_index(args.session, datamodule)
    session = datamodule.sessions[args.session]
    check_splits([args.split], list(session.splits), f"session {session.name}", option="--split")
    output_file(out, args.overwrite, protected=[s.path for s in datamodule.sessions], what="the input data")

    result = analyze_model(
        model, datamodule, split=args.split, session=args.session, n_initial=args.n_initial, noise_scale=args.noise,
        max_trials=args.max_trials, jslds=not args.no_jslds, expansion_steps=args.expansion_steps, seed=args.seed,
        progress=not args.no_progress,
    )
    result.info["checkpoint"] = str(ckpt)
    protected = run_files([ckpt]) | {Path(s.path) for s in datamodule.sessions}
    with guarded_output(out, protected=protected, overwrite=args.overwrite, what="analysis file") as tmp:
        result.save(tmp)
    print(result.summary())
    print(f"Wrote {out}")
    return 0
