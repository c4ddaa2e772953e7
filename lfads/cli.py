"""The ``lfads`` command line.

``lfads fit|validate|test`` are Lightning CLI subcommands (YAML configs, layered
``--config`` files, ``--print_config``, dotted overrides such as
``--model.gen_dim 100``). ``lfads sample`` writes posterior-averaged outputs of a
trained model.

Run directory of a fit: ``{save_dir}/{name}/version_{N}/`` with ``config.yaml``
(the fully resolved config), ``metrics.csv`` and TensorBoard events, and
``checkpoints/`` (the best by ``valid/loss_smth_ramped``, the smoothed validation objective once the
KL/L2 ramps are complete, and ``last.ckpt``). A new
fit never reuses a version folder (it claims one by creating it, see :func:`lfads.rundir.claim_run_version`), so
earlier runs, and fits started at the same moment, are never overwritten.
``lfads sample`` with several ``--run``/``--ckpt`` writes the rates averaged over an ensemble
(:mod:`lfads.ensemble`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lfads.errors import LFADSDataError
from lfads.rundir import find_checkpoint, load_model_and_data
from lfads.runtime import configure_threads

LIGHTNING_COMMANDS = ("fit", "validate", "test")


def run_lightning(args: list[str]):
    """``lfads fit|validate|test``: the Lightning CLI (see :mod:`lfads.lightning_cli`)."""
    from lfads.lightning_cli import build_lightning_cli

    return build_lightning_cli(args)


def sample_command(argv: list[str]) -> int:
    from lfads.ensemble import check_same_trials, ensemble_rates
    from lfads.data.nwb_output import resolve_nwb_output_paths, write_nwb_outputs_for_samples
    from lfads.sampling import format_scores, sample_posteriors, save_samples, score_samples

    parser = argparse.ArgumentParser(
        prog="lfads sample",
        description="Write posterior-averaged outputs of a trained model, or the averaged rates of an ensemble "
        "(several --run or --ckpt).",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", action="append", help="checkpoint file (repeat for an ensemble)")
    src.add_argument("--run", action="append", help="run directory, using its best checkpoint (repeat for an ensemble)")
    parser.add_argument("--out", help="output HDF5 file (default for one model: posterior_samples.h5 in the run directory)")
    parser.add_argument("--data", nargs="+", help="data files to sample instead of those the model was trained on")
    parser.add_argument("--samples", type=int, default=50, help="posterior samples averaged per trial (default 50)")
    parser.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    parser.add_argument(
        "--nwb-out",
        help="also write the outputs into a copy of each session's source NWB file (.nwb; the session name is "
        "appended when there are several); the source is never modified",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    ckpts = [Path(c) for c in args.ckpt] if args.ckpt else [find_checkpoint(r) for r in args.run]
    ensemble = len(ckpts) > 1
    if ensemble and not args.out:
        parser.error("an ensemble (several --run or --ckpt) needs --out")
    if ensemble and args.nwb_out:
        parser.error("--nwb-out writes one model's factors and inputs; sample ensemble members one at a time for it")
    out = Path(args.out) if args.out else ckpts[0].parent.parent / "posterior_samples.h5"
    members = [load_model_and_data(c, args.data) for c in ckpts]
    datamodule = members[0][1]
    try:
        check_same_trials([dm for _, dm in members], [str(c) for c in ckpts])
    except LFADSDataError as err:
        raise SystemExit(str(err)) from err
    inputs = {Path(s.path).resolve() for _, dm in members for s in dm.sessions}
    if out.resolve() in inputs:
        raise SystemExit(f"Refusing to write {out}: it is one of the input data files.")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it or choose another --out.")
    try:
        nwb_plan = resolve_nwb_output_paths(datamodule, args.nwb_out, overwrite=args.overwrite) if args.nwb_out else {}
    except LFADSDataError as err:
        raise SystemExit(str(err)) from err
    member_results = []
    for ckpt, (model, dm) in zip(ckpts, members):
        print(f"Sampling {args.samples} posterior samples per trial from {ckpt}")
        member_results.append(sample_posteriors(model, dm, args.samples, tuple(args.splits), progress=not args.no_progress))
        if ensemble:
            print(format_scores(score_samples(member_results[-1], dm)))
    results = ensemble_rates(member_results) if ensemble else member_results[0]
    scores = score_samples(results, datamodule)
    attrs = {"checkpoint": "\n".join(str(c) for c in ckpts), "n_samples": args.samples, "n_members": len(ckpts)}
    save_samples(out, results, scores, attrs=attrs)
    if ensemble:
        print(f"Ensemble of {len(ckpts)} models (rates averaged):")
    print(format_scores(scores))
    print(f"Wrote {out}")
    for path in write_nwb_outputs_for_samples(results, datamodule, args.nwb_out, overwrite=args.overwrite) if nwb_plan else []:
        print(f"Wrote {path}")
    return 0


def convert_command(argv: list[str]) -> int:
    """``lfads convert``: NWB files to the LFADS HDF5 layout (see :mod:`lfads.commands.convert`)."""
    from lfads.commands.convert import convert_command as run

    return run(argv)


def tune_command(argv: list[str]) -> int:
    """``lfads tune``: population-based training on Ray Tune (see :mod:`lfads.tune`)."""
    from lfads.tune import tune_command as run

    return run(argv)


def analyze_command(argv: list[str]) -> int:
    """``lfads analyze``: fixed points, linearization and a JSLDS of a trained generator."""
    from lfads.analysis.pipeline import analyze_model

    parser = argparse.ArgumentParser(prog="lfads analyze", description=analyze_command.__doc__)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="checkpoint file")
    src.add_argument("--run", help="run directory (uses its best checkpoint)")
    parser.add_argument("--out", help="output HDF5 file (default: analysis.h5 in the run directory)")
    parser.add_argument("--data", nargs="+", help="data files to use instead of those the model was trained on")
    parser.add_argument("--split", default="valid", help="split whose generator trajectories seed the search")
    parser.add_argument("--session", type=int, default=0, help="session index (multi-session models)")
    parser.add_argument("--n-initial", type=int, default=1024, help="initial states for the fixed-point search")
    parser.add_argument("--noise", type=float, default=0.05, help="noise added to initial states, x state std")
    parser.add_argument("--max-trials", type=int, default=200, help="trials whose trajectories are used")
    parser.add_argument("--no-jslds", action="store_true", help="skip the post-hoc JSLDS")
    parser.add_argument("--expansion-steps", type=int, default=1000, help="training steps of the expansion network")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    ckpt = Path(args.ckpt) if args.ckpt else find_checkpoint(args.run)
    out = Path(args.out) if args.out else ckpt.parent.parent / "analysis.h5"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it or choose another --out.")
    model, datamodule = load_model_and_data(ckpt, args.data)
    if args.split not in datamodule.sessions[args.session].splits:
        raise SystemExit(f"Split {args.split!r} is not in the data; choose one of {sorted(datamodule.sessions[args.session].splits)}.")
    result = analyze_model(
        model, datamodule, split=args.split, session=args.session, n_initial=args.n_initial, noise_scale=args.noise,
        max_trials=args.max_trials, jslds=not args.no_jslds, expansion_steps=args.expansion_steps, seed=args.seed,
        progress=not args.no_progress,
    )
    result.info["checkpoint"] = str(ckpt)
    result.save(out)
    print(result.summary())
    print(f"Wrote {out}")
    return 0


SUBCOMMANDS = {
    "sample": sample_command,
    "analyze": analyze_command,
    "convert": convert_command,
    "tune": tune_command,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lfads`` and ``python -m lfads``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_threads()
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    if not argv or argv[0] in ("-h", "--help") or argv[0] in LIGHTNING_COMMANDS or argv[0].startswith("-"):
        if not argv or argv[0] in ("-h", "--help"):
            print("lfads commands: fit, validate, test (Lightning CLI); " + ", ".join(SUBCOMMANDS) + "\n")
        run_lightning(argv)
        return 0
    raise SystemExit(f"Unknown command {argv[0]!r}; choose one of {', '.join(LIGHTNING_COMMANDS + tuple(SUBCOMMANDS))}.")


if __name__ == "__main__":
    sys.exit(main())
