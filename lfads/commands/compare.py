"""``lfads compare``: distances between the dynamics of several fitted LFADS models.

Every model's generator is compared on the same trials (runs fitted to different data are refused, as for
an ensemble, unless every metric asked for is one of :data:`TRIAL_FREE_METRICS`, which compare each run on its
own trials): geometry of the generator states (Procrustes, CCA, CKA), data-driven dynamics (DSA), the
topology of the generator's fixed points and their linearizations, the generator's Jacobians along the same
trials (``jslds``; at the expansion points of a co-trained JSLDS) (see :mod:`lfads.compare`). The distance
matrices and their settings go to one HDF5 file, the tables to the terminal, and a figure (heatmaps and an
MDS embedding) beside the file. ``--groups`` names the group of each run (e.g. its model configuration, or
its animal): the mean distances within and between groups are printed too, with how well each metric
separates them (:func:`lfads.compare.stats.group_separation`).

``--population FILE`` (repeatable) compares instead the networks of populations written by ``lfads population``
(:func:`lfads.population.comparison.compare_population`): their states on shared trials of the task, their
stored fixed points and fixed-point graphs at one condition; it also prints, and stores with each metric, the
silhouette of the distances with the architectures as labels, and stores the labels in the output file.
"""

from __future__ import annotations

from pathlib import Path

from lfads.commands.checks import (
    add_common_options,
    check_splits,
    checkpoint_file,
    load_model_and_data,
    output_file,
    require_at_least,
    run_checkpoint,
    run_files,
    session_index,
    splits_present,
)
from lfads.commands.report import ArgumentParser
from lfads.errors import LFADSArgumentError, LFADSDataError

__all__ = ["DEFAULT_METRICS", "TRIAL_FREE_METRICS", "build_parser", "main"]

DEFAULT_METRICS = "procrustes,cca,dsa,topology,spectra"
SPECTRA_MATCHES = ("spectra", "readout", "graph")
TRIAL_FREE_METRICS = ("dsa", "dsa_eigenvalues", "topology", "topology_counts", "spectra")
"""Metrics that compare each run on its own trials (its DMD, its fixed points), so that runs fitted to different
data can be compared."""


def build_parser() -> ArgumentParser:
    """The argument parser of ``lfads compare``."""
    parser = ArgumentParser(prog="lfads compare",
                            description="Distances between the dynamics of fitted models or of population networks.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", action="append", help="run directory, using its best checkpoint (repeat: two or more)")
    src.add_argument("--ckpt", action="append", help="checkpoint file (repeat: two or more)")
    src.add_argument("--population", action="append",
                     help="population file written by `lfads population` (repeat to pool populations of one task)")
    parser.add_argument("--metrics", default=DEFAULT_METRICS,
                        help=f"comma-separated metrics (default {DEFAULT_METRICS})")
    parser.add_argument("--out", required=True, help="output HDF5 file with every distance matrix")
    parser.add_argument("--figure", help="figure file (default: the output file's name with .png)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the comparison (and, with --population, of the shared task trials)")
    parser.add_argument("--spectra-modes", type=int, default=None,
                        help="spectra: compare the leading N eigenvalues at matched fixed points (default: for runs, "
                             "the number of factors; for populations, all; 0: all)")
    parser.add_argument("--spectra-match", choices=SPECTRA_MATCHES,
                        help="spectra: pair the fixed points of two models by the distance between their spectra, by "
                             "their images in the shared output space, or through the topology graphs (default: "
                             "spectra for runs, readout for populations: the task output)")
    parser.add_argument("--dsa-delays", type=int, help="dsa: delays of the embedding (default: chosen by held-out "
                                                       "prediction, from 1, 2, 3, 5, 8)")
    parser.add_argument("--dsa-rank", type=int, help="dsa: rank of the DMD (default: chosen by held-out prediction, "
                                                     "from 1 to --dsa-max-rank)")
    parser.add_argument("--dsa-max-rank", type=int, help="dsa: the largest rank the selection tries (default: for "
                                                         "runs, the generator size; for populations, 10)")
    parser.add_argument("--unstable-tol", type=float, default=0.0,
                        help="topology: a direction counts as unstable when |lambda| > 1 + this (default 0)")
    runs = parser.add_argument_group("runs (with --run or --ckpt)")
    runs.add_argument("--names", help="comma-separated model names (default: run0, run1, ...)")
    runs.add_argument("--groups", help="comma-separated group of each run, e.g. m1,m1,m2,m2: prints the "
                                       "mean distances within and between groups and how well each metric separates "
                                       "them (silhouette, its p against shuffled labels, AUC)")
    runs.add_argument("--split", help="trials whose generator states are compared (default valid)")
    runs.add_argument("--session", type=int, help="session index (multi-session models; default 0)")
    runs.add_argument("--max-trials", type=int, help="use at most this many trials (default 200)")
    pop = parser.add_argument_group("populations (with --population)")
    pop.add_argument("--archs", help="comma-separated architectures to compare (default: all in the files)")
    pop.add_argument("--condition", help="task condition whose fixed points are compared (default: the first)")
    pop.add_argument("--trials", type=int, help="shared task trials the networks are run on (default 64)")
    add_common_options(parser)
    return parser


def _metrics(text: str) -> list[str]:
    from lfads.compare.api import METRICS

    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if not names or unknown:
        raise LFADSArgumentError(
            f"--metrics {text}: unknown {unknown or 'empty list'}; choose from {', '.join(METRICS)}.")
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:  # each metric would be computed again and its first matrix replaced
        raise LFADSArgumentError(f"--metrics {text}: {', '.join(repeated)} given more than once; name each metric "
                                 "once.")
    return names


def _names(text: str | None, n: int) -> list[str]:
    names = [f"run{i}" for i in range(n)] if text is None else [s.strip() for s in text.split(",")]
    if len(names) != n or len(set(names)) != n or not all(names):
        raise LFADSArgumentError(f"--names {text}: give {n} distinct names, one per --run/--ckpt, separated by commas.")
    return names


def _figure_file(figure: str | None, out: Path, overwrite: bool, protected: set[Path], what: str) -> Path:
    """``--figure`` (default: ``out`` with ``.png``) checked before any work: a format matplotlib writes, not the
    ``--out`` file, and writable (see :func:`lfads.commands.checks.output_file`)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from lfads.data.atomic import same_file

    path = Path(figure) if figure else out.with_suffix(".png")
    option = "--figure" if figure else f"--figure {path} (the default: --out with .png)"
    formats = FigureCanvasBase.get_supported_filetypes()
    if (path.suffix.lstrip(".").lower() or "png") not in formats:
        raise LFADSArgumentError(f"{option}: matplotlib cannot write a {path.suffix} figure; end the name with one of "
                                 f"{', '.join('.' + f for f in sorted(formats))} (e.g. .png, .pdf, .svg).")
    if same_file(path, out):
        raise LFADSArgumentError(f"{option}: the same file as --out {out}, which holds the distance matrices; give "
                                 "--out an .h5 name or --figure another file.")
    return output_file(path, overwrite, protected=protected, option="--figure", what=what)


def main(argv: list[str]) -> int:
    """Run ``lfads compare`` with the arguments after ``compare``; returns 0 on success."""
    from lfads.compare.runs import lfads_generator_model

    args = build_parser().parse_args(argv)
    require_at_least(args.seed, 0, "--seed")
    if args.spectra_modes is not None:
        require_at_least(args.spectra_modes, 0, "--spectra-modes")
    for value, option in ((args.dsa_delays, "--dsa-delays"), (args.dsa_rank, "--dsa-rank"),
                          (args.dsa_max_rank, "--dsa-max-rank")):
        if value is not None:
            require_at_least(value, 1, option)
    if args.dsa_rank is not None and args.dsa_max_rank is not None:
        raise LFADSArgumentError("--dsa-rank fixes the rank and --dsa-max-rank bounds its selection: give one of them.")
    require_at_least(args.unstable_tol, 0.0, "--unstable-tol")
    if args.population:
        return _population_main(args)
    given = [o for o, v in (("--archs", args.archs), ("--condition", args.condition), ("--trials", args.trials))
             if v is not None]  # fmt: skip
    if given:
        raise LFADSArgumentError(f"{', '.join(given)}: only with --population, not with --run or --ckpt.")
    trust = True if args.trust_checkpoint else None
    split = "valid" if args.split is None else args.split
    session = 0 if args.session is None else args.session
    max_trials = 200 if args.max_trials is None else args.max_trials
    sources = args.ckpt or args.run
    if len(sources) < 2:
        raise LFADSArgumentError("give two or more models to compare (repeat --run or --ckpt).")
    metrics, names = _metrics(args.metrics), _names(args.names, len(sources))
    groups = _groups(args.groups, len(sources))
    require_at_least(max_trials, 2, "--max-trials")
    ckpts = [checkpoint_file(c) for c in args.ckpt] if args.ckpt else [run_checkpoint(r, trust) for r in args.run]
    out = output_file(args.out, args.overwrite, protected=run_files(ckpts), what="a run")
    figure = _figure_file(args.figure, out, args.overwrite, run_files(ckpts), what="a run")
    members = [load_model_and_data(c, None, trust=trust) for c in ckpts]
    _check_members(members, ckpts, split, session, metrics, args.spectra_match)
    inputs = {Path(s.path) for _, dm in members for s in dm.sessions}
    output_file(out, args.overwrite, protected=inputs, what="the input data")
    output_file(figure, args.overwrite, protected=inputs, option="--figure", what="the input data")
    models = [lfads_generator_model(m, dm, name, split, session, max_trials)
              for (m, dm), name in zip(members, names)]
    factors = min(int(m.hparams["fac_dim"]) for m, _ in members)
    generator = min(int(m.hparams["gen_dim"]) for m, _ in members)
    _compare_and_write(models, metrics, names, args, out, figure, run_files(ckpts) | inputs, default_modes=factors,
                       default_max_rank=generator, groups=groups)
    return 0


def _groups(text: str | None, n: int) -> list[str] | None:
    if text is None:
        return None
    groups = [g.strip() for g in text.split(",")]
    if len(groups) != n or not all(groups) or not 2 <= len(set(groups)) <= n - 1:
        raise LFADSArgumentError(
            f"--groups {text}: give {n} group names, one per --run/--ckpt, separated by commas, with at least two "
            "groups and one group of two or more runs (e.g. a,a,b).")
    return groups


def _check_members(members: list, ckpts: list[Path], split: str, session: int, metrics: list[str],
                   spectra_match: str | None) -> None:
    """The runs hold the split and session asked for; and the same trials, unless every metric asked for
    compares each run on its own trials (:data:`TRIAL_FREE_METRICS`)."""
    from lfads.ensemble import check_same_trials

    shared = [m for m in metrics if m not in TRIAL_FREE_METRICS]
    if "spectra" in metrics and spectra_match == "readout":
        shared.append("spectra matched by readout")
    if shared:
        try:
            check_same_trials([dm for _, dm in members], [str(c) for c in ckpts])
        except LFADSDataError as err:
            raise LFADSDataError(
                f"{err} The metrics {', '.join(shared)} compare the generators on the same trials; for runs fitted "
                f"to different data (sessions, animals) use --metrics {','.join(TRIAL_FREE_METRICS)}.") from None
    for (_, datamodule), ckpt in zip(members, ckpts):
        session_index(session, datamodule)
        check_splits([split], splits_present(datamodule),
                     f"the data of {ckpt} ({', '.join(datamodule.session_names)})", "--split")


def _population_main(args) -> int:
    """``lfads compare --population FILE ...``: the networks of populations, compared and scored by architecture."""
    from lfads.population.comparison import check_population_file, compare_population

    if args.names is not None or args.groups is not None:
        option = "--names" if args.names is not None else "--groups"
        raise LFADSArgumentError(f"{option}: a population's networks are named and grouped by the file "
                                 "(arch/seed<s>, by architecture); leave it out.")
    given = [o for o, v in (("--split", args.split), ("--session", args.session), ("--max-trials", args.max_trials))
             if v is not None]  # fmt: skip
    if given:
        raise LFADSArgumentError(f"{', '.join(given)}: only with --run or --ckpt; a population's networks run on "
                                 "shared task trials (--trials).")
    metrics = _metrics(args.metrics)
    if "jslds" in metrics:  # a population's networks carry no inputs or expansion points to linearize along
        raise LFADSArgumentError(f"--metrics {args.metrics}: jslds compares LFADS runs (--run or --ckpt), not the "
                                 "networks of a population; leave it out with --population.")
    archs = None if args.archs is None else [a.strip() for a in args.archs.split(",") if a.strip()]
    if archs is not None and not archs:
        raise LFADSArgumentError(f"--archs {args.archs}: give comma-separated architectures, e.g. gru,lstm.")
    trials = 64 if args.trials is None else args.trials
    require_at_least(trials, 2, "--trials")
    paths = [check_population_file(p) for p in args.population]
    out = output_file(args.out, args.overwrite, protected=paths, what="a population file")
    figure = _figure_file(args.figure, out, args.overwrite, set(paths), what="a population file")
    comparison = compare_population(paths, metrics, condition=args.condition, archs=archs, n_trials=trials,
                                    seed=args.seed, progress=not args.no_progress,
                                    **_metric_options(args, default_modes=0, default_match="readout"))
    _write(comparison.result, args, out, figure, set(paths), labels=comparison.labels, full=False)
    print(comparison.silhouette_table())
    return 0


def _metric_options(args, default_modes: int, default_match: str, default_max_rank: int | None = None) -> dict:
    """``compare_models`` keywords from ``--spectra-modes``, ``--spectra-match``, ``--unstable-tol``,
    ``--dsa-delays``, ``--dsa-rank`` and ``--dsa-max-rank``."""
    from lfads.compare.dsa import DSA

    modes = default_modes if args.spectra_modes is None else args.spectra_modes
    by = default_match if args.spectra_match is None else args.spectra_match
    max_rank = None if args.dsa_rank is not None else (args.dsa_max_rank or default_max_rank)
    return {"spectra_kwargs": {"n_modes": modes or None, "by": by}, "unstable_tol": args.unstable_tol,
            "dsa": DSA(delays=args.dsa_delays, rank=args.dsa_rank, max_rank=max_rank, seed=args.seed)}


def _dsa_note(result) -> str | None:
    """A line to print when DSA chose the largest rank of its grid."""
    settings = result.settings.get("dsa") or result.settings.get("dsa_eigenvalues")
    if not settings or not settings.get("rank_at_grid_edge"):
        return None
    rank, state_dim = int(settings["rank"]), int(settings.get("state_dim", -1))
    larger = f"e.g. --dsa-max-rank {state_dim}, the state dimension" if state_dim > rank else "a larger --dsa-max-rank"
    return (f"note: DSA chose rank {rank}, the largest of its grid: the held-out prediction error may fall further "
            f"at higher ranks; let it choose among more with {larger}.")


def _compare_and_write(models, metrics, names, args, out: Path, figure: Path, protected: set,
                       default_modes: int, default_max_rank: int, groups: list[str] | None) -> None:
    from lfads.compare.api import compare_models
    from lfads.compare.stats import N_PERMUTATIONS, separation_table

    result = compare_models(models, metrics, names=names, seed=args.seed, progress=not args.no_progress,
                            **_metric_options(args, default_modes, "spectra", default_max_rank))
    table = None
    if groups is not None:
        scores = result.score_groups(groups, seed=args.seed)
        table = separation_table(scores, list(dict.fromkeys(groups)), N_PERMUTATIONS)
    _write(result, args, out, figure, protected, labels=groups)
    if table is not None:
        print(table)


def _write(result, args, out: Path, figure: Path, protected: set, labels=None, full: bool = True) -> None:
    """Write ``result`` and its figure through the output guard; print every matrix (``full``) and, with
    ``labels``, the mean distances within and between the groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lfads.data.atomic import guarded_output
    from lfads.viz.compare import plot_comparison

    with guarded_output(out, protected=protected, overwrite=args.overwrite, what="comparison file") as tmp:
        result.save(tmp)
    if full:
        print(result)
    if labels is not None:
        print("\n\n".join(result.group_table(m) for m in result.distances))
    print(f"Wrote {out}" + ("" if full else " (the distance of every pair of networks)"))
    note = _dsa_note(result)
    if note:
        print(note)
    fig = plot_comparison(result, None if labels is None else list(labels))
    with guarded_output(figure, protected=protected, overwrite=args.overwrite, what="figure", option="--figure",
                        suffix=figure.suffix) as tmp:
        fig.savefig(tmp, dpi=120, format=figure.suffix.lstrip(".") or "png")
    plt.close(fig)
    print(f"Wrote {figure}")
