"""``lfads nlb``: Neural Latents Benchmark submissions from a run fitted to NLB tensors, and their scores.

- ``lfads nlb submit --run R --dataset mc_maze_small --out submission.h5`` samples the run's posteriors and
  writes the benchmark's submission file (rates of the training and evaluation trials, held-in and held-out
  neurons, with the forward-prediction bins), trials in the tensor file's order;
- ``lfads nlb target --tensors FILE --dataset NAME --out target.h5`` writes an evaluation-target file from a
  validation-phase tensor file (one that holds the evaluation trials' held-out spikes);
- ``lfads nlb score --submission submission.h5 --target target.h5`` prints co-bps, vel R2, PSTH R2 and
  fp-bps, computed as the benchmark computes them (see :mod:`lfads.nlb_submission`).
"""

from __future__ import annotations

from pathlib import Path

from lfads.commands.checks import (
    StoreOnce,
    add_common_options,
    checkpoint_file,
    data_files,
    load_model_and_data,
    output_file,
    readable_hdf5,
    require_at_least,
    run_checkpoint,
    run_files,
)
from lfads.commands.report import ArgumentParser
from lfads.data.atomic import guarded_output

__all__ = ["build_parser", "main"]


def _add_submit(actions) -> None:
    p = actions.add_parser("submit", help="write the submission file of a run fitted to NLB tensors")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", action=StoreOnce, help="run directory (uses its best checkpoint)")
    src.add_argument("--ckpt", action=StoreOnce, help="checkpoint file")
    p.add_argument("--dataset", required=True, action=StoreOnce,
                   help="the benchmark's data set name, e.g. mc_maze_small")
    p.add_argument("--out", required=True, action=StoreOnce, help="submission HDF5 file to write")
    p.add_argument("--data", nargs="+", action=StoreOnce,
                   help="NLB tensor files to use instead of those the model was trained on")
    p.add_argument("--session", action=StoreOnce, help="session name (runs fitted to several files)")
    p.add_argument("--samples", type=int, default=50, help="posterior samples averaged per trial (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default 0)")
    add_common_options(p)


def _add_target(actions) -> None:
    p = actions.add_parser("target", help="write an evaluation-target file from a validation-phase tensor file")
    p.add_argument("--tensors", required=True, action=StoreOnce, help="NLB tensor file holding eval_spikes_heldout")
    p.add_argument("--dataset", required=True, action=StoreOnce,
                   help="the benchmark's data set name, e.g. mc_maze_small")
    p.add_argument("--out", required=True, action=StoreOnce, help="target HDF5 file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier target file")


def _add_score(actions) -> None:
    p = actions.add_parser("score", help="score a submission file against an evaluation-target file")
    p.add_argument("--submission", required=True, action=StoreOnce, help="submission HDF5 file")
    p.add_argument("--target", required=True, action=StoreOnce, help="evaluation-target HDF5 file")
    p.add_argument("--dataset", action=StoreOnce, help="score only this data set (default: every one both files hold)")


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads nlb`` and its three actions."""
    parser = ArgumentParser(prog="lfads nlb", description="Neural Latents Benchmark submissions and their scores.")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    _add_submit(actions)
    _add_target(actions)
    _add_score(actions)
    return parser


def _submit(args) -> int:
    import torch

    from lfads.nlb_submission import check_dataset_name, write_submission
    from lfads.sampling import sample_posteriors

    check_dataset_name(args.dataset)
    trust = True if args.trust_checkpoint else None
    require_at_least(args.samples, 1, "--samples")
    ckpt = checkpoint_file(args.ckpt) if args.ckpt else run_checkpoint(args.run, trust)
    out = output_file(args.out, args.overwrite, protected=run_files([ckpt]), what="a run")
    if args.data:
        data_files(args.data)
    model, datamodule = load_model_and_data(ckpt, args.data, trust=trust)
    inputs = [Path(s.path) for s in datamodule.sessions]
    output_file(out, args.overwrite, protected=inputs, what="the input data")
    print(f"Sampling {args.samples} posterior samples per trial from {ckpt}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        results = sample_posteriors(model, datamodule, args.samples, progress=not args.no_progress)
    protected = [*inputs, *run_files([ckpt])]
    with guarded_output(out, protected=protected, overwrite=args.overwrite, what="submission file") as tmp:
        write_submission(results, datamodule, tmp, args.dataset, session=args.session)
    print(f"Wrote {out}")
    return 0


def _target(args) -> int:
    from lfads.nlb_submission import check_dataset_name, write_eval_target

    check_dataset_name(args.dataset)
    tensors = readable_hdf5(args.tensors, "--tensors")
    out = output_file(args.out, args.overwrite, protected=[tensors], what="the input data")
    with guarded_output(out, protected=[tensors], overwrite=args.overwrite, what="target file") as tmp:
        write_eval_target(tensors, tmp, args.dataset)
    print(f"Wrote {out}")
    return 0


def _score(args) -> int:
    from lfads.nlb_submission import format_submission_scores, score_submission

    submission = readable_hdf5(args.submission, "--submission")
    target = readable_hdf5(args.target, "--target")
    print(format_submission_scores(score_submission(submission, target, args.dataset)))
    return 0


def main(argv: list[str]) -> int:
    """Run ``lfads nlb`` with the arguments after ``nlb``; returns 0 on success."""
    args = build_parser().parse_args(argv)
    return {"submit": _submit, "target": _target, "score": _score}[args.action](args)
