"""``lfads sample``: posterior-averaged outputs of a trained model, or the averaged rates of an ensemble.

Every argument is checked before a model is loaded, and the data-dependent ones (splits, the output
not being an input file) before any sampling, so a bad command stops at once with one line.
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
    run_checkpoint,
    run_files,
    splits_present,
)
from lfads.commands.report import ArgumentParser
from lfads.errors import LFADSArgumentError
from lfads.rundir import POSTERIOR_FILE

__all__ = ["build_parser", "main"]


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads sample``."""
    parser = ArgumentParser(
        prog="lfads sample",
        description="Write posterior-averaged outputs of a trained model, or the averaged rates of an ensemble "
        "(several --run or --ckpt).",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", action="append", help="checkpoint file (repeat for an ensemble)")
    src.add_argument("--run", action="append", help="run directory, using its best checkpoint (repeat for an ensemble)")
    parser.add_argument(
        "--out", action=StoreOnce,
        help=f"output HDF5 file (default for one model: {POSTERIOR_FILE} in the run directory)"
    )
    parser.add_argument("--data", nargs="+", action=StoreOnce,
                        help="data files to sample instead of those the model was trained on")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples averaged per trial (default 50)")
    parser.add_argument("--splits", nargs="+", action=StoreOnce,
                        help="splits to sample (default: every split in the data)")
    parser.add_argument(
        "--nwb-out",
        action=StoreOnce,
        help="also write the outputs into a copy of each session's source NWB file (.nwb; the session name is "
        "appended when there are several); the source is never modified",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the posterior draws, as lfads.load_run(seed=...) takes it (default: torch's current generator)",
    )
    add_common_options(parser)
    return parser


def main(argv: list[str]) -> int:
    """Run ``lfads sample`` with the arguments after ``sample``; returns 0 on success.

    Raises
    ------
    lfads.errors.LFADSError
        For a bad argument, checkpoint, data file or output path, before any sampling.
    """
    import torch

    from lfads.data.atomic import guarded_output
    from lfads.data.nwb_output import (
        resolve_nwb_output_paths,
        write_nwb_outputs_for_samples,
    )
    from lfads.ensemble import check_same_trials, ensemble_rates
    from lfads.sampling import (
        format_scores,
        sample_posteriors,
        save_samples,
        score_samples,
    )

    args = build_parser().parse_args(argv)
    trust = True if args.trust_checkpoint else None  # None: LFADS_TRUST_CHECKPOINTS decides
    require_at_least(args.samples, 1, "--samples")
    ckpts = [checkpoint_file(c) for c in args.ckpt] if args.ckpt else [run_checkpoint(r, trust) for r in args.run]
    ensemble = len(ckpts) > 1
    if ensemble and not args.out:
        raise LFADSArgumentError("an ensemble (several --run or --ckpt) needs --out FILE.h5.")
    if ensemble and args.nwb_out:
        raise LFADSArgumentError(
            "--nwb-out writes one model's factors and inputs; sample ensemble members one at a time for it."
        )
    out = Path(args.out) if args.out else ckpts[0].parent.parent / POSTERIOR_FILE
    output_file(out, args.overwrite, protected=run_files(ckpts), what="a run")
    if args.data:
        data_files(args.data)

    members = [load_model_and_data(c, args.data, trust=trust) for c in ckpts]
    datamodule = members[0][1]
    check_same_trials([dm for _, dm in members], [str(c) for c in ckpts])
    splits = tuple(args.splits) if args.splits else tuple(splits_present(datamodule))
    check_splits(splits, splits_present(datamodule), f"the data ({', '.join(datamodule.session_names)})")
    inputs = {Path(s.path) for _, dm in members for s in dm.sessions}
    output_file(out, args.overwrite, protected=inputs, what="the input data")
    nwb_plan = resolve_nwb_output_paths(datamodule, args.nwb_out, overwrite=args.overwrite) if args.nwb_out else {}

    member_results = []
    with torch.random.fork_rng(devices=[], enabled=args.seed is not None):
        if args.seed is not None:
            torch.manual_seed(args.seed)
        for ckpt, (model, dm) in zip(ckpts, members):
            print(f"Sampling {args.samples} posterior samples per trial from {ckpt}")
            member_results.append(sample_posteriors(model, dm, args.samples, splits, progress=not args.no_progress))
            if ensemble:
                print(format_scores(score_samples(member_results[-1], dm)))
    results = ensemble_rates(member_results) if ensemble else member_results[0]
    scores = score_samples(results, datamodule)
    attrs = {"checkpoint": "\n".join(str(c) for c in ckpts), "n_samples": args.samples, "n_members": len(ckpts)}
    protected = run_files(ckpts) | inputs
    with guarded_output(out, protected=protected, overwrite=args.overwrite, what="samples file") as tmp:
        save_samples(tmp, results, scores, attrs=attrs)
    if ensemble:
        print(f"Ensemble of {len(ckpts)} models (rates averaged):")
    print(format_scores(scores))
    print(f"Wrote {out}")
    nwb_paths = (
        write_nwb_outputs_for_samples(results, datamodule, args.nwb_out, overwrite=args.overwrite) if nwb_plan else []
    )
    for path in nwb_paths:
        print(f"Wrote {path}")
    return 0
