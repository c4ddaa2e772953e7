"""``lfads convert``: bin NWB sessions into the LFADS HDF5 layout, one file per session.

Binning options (:class:`lfads.data.nwb.NWBBinning`) come from the dataclass defaults, then the ``data.nwb``
section of a YAML config (the one given to ``lfads fit``), then the binning flags, later ones winning. The
flags are generated from the dataclass: ``--window-ms`` for ``window_ms``, with its type and the help text
of its docstring. Loading a written file gives the same session as binning the NWB file with the same
options (:func:`lfads.data.nwb.load_nwb_session`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import typing
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lfads.commands.checks import StoreOnce
from lfads.commands.report import ArgumentParser
from lfads.data.atomic import check_output_dir, guarded_output
from lfads.data.nwb import NWBBinning
from lfads.data.nwb_output import check_output_targets
from lfads.errors import LFADSDataError, LFADSError

__all__ = ["binning_flags", "convert_command", "load_nwb_binning_config"]

_NONE_WORDS = {"none", "null"}


def load_nwb_binning_config(path: str | os.PathLike) -> NWBBinning:
    """The ``data.nwb`` section of a YAML config (as given to ``lfads fit``) as validated binning options.

    Parameters
    ----------
    path : str or PathLike
        YAML file with a mapping ``data: {nwb: {...}}`` (``data: {init_args: {nwb: ...}}`` is read too).

    Returns
    -------
    NWBBinning
        The section's fields over the defaults (:meth:`NWBBinning.from_mapping`).

    Raises
    ------
    LFADSDataError
        If the file is missing or not YAML, has no ``data.nwb`` mapping, or names an unknown option or a value
        of the wrong type (the message names the file and the option).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LFADSDataError(f"{path}: config file not found (relative paths are taken from {Path.cwd()}).")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LFADSDataError(f"{path}: not a valid YAML file ({err}).") from err
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict) and "nwb" not in data and isinstance(data.get("init_args"), dict):
        data = data["init_args"]
    section = data.get("nwb") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise LFADSDataError(f"{path}: no 'data.nwb' section (a mapping of NWB binning options such as align_event, "
                             f"window_ms, bin_ms). Add one, or give the options as flags (see lfads convert --help).")
    return NWBBinning.from_mapping(section, source=f"{path}: data.nwb")


# ---------------------------------------------------------------------------------------------------------------------
# Flags generated from NWBBinning
# ---------------------------------------------------------------------------------------------------------------------


def _optional_name(text: str) -> str | None:
    return None if text.strip().lower() in _NONE_WORDS else text


def _field_help() -> dict[str, str]:
    """Field name -> its description in the ``Attributes`` section of the :class:`NWBBinning` docstring."""
    from docstring_parser import DocstringStyle, parse

    docs = {}
    for item in parse(NWBBinning.__doc__ or "", style=DocstringStyle.NUMPYDOC).params:
        text = re.sub(r"\s+", " ", (item.description or "").replace("``", "")).strip()
        for name in item.arg_name.split(","):
            docs[name.strip()] = text
    return docs


def binning_flags(parser: argparse.ArgumentParser | Any) -> None:
    """Add one flag per :class:`NWBBinning` field to ``parser`` (an argparse parser or argument group).

    ``field_name`` becomes ``--field-name``; the type follows the annotation: numbers and strings take one
    value, ``tuple[float, float]`` two, ``list[str]`` one or more; for optional fields ``none`` (or ``null``)
    means ``None``. A flag that is not given leaves no attribute on the parsed namespace, so it never
    overrides the config. The help is the field's docstring description and default.

    Raises
    ------
    TypeError
        For a field type with no flag form (a field added to :class:`NWBBinning` with a new kind of type).
    """
    hints = typing.get_type_hints(NWBBinning)
    docs = _field_help()
    for field in dataclasses.fields(NWBBinning):
        hint = hints[field.name]
        optional = type(None) in typing.get_args(hint)
        kind = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        kwargs: dict[str, Any]
        if origin is tuple and len(set(args)) == 1 and args[0] in (int, float):
            kwargs = {"nargs": len(args), "type": args[0]}
        elif origin is list and args == (str,):
            kwargs = {"nargs": "+", "type": str}
        elif kind in (int, float) and not optional:
            kwargs = {"type": kind}
        elif kind is str:
            kwargs = {"type": _optional_name if optional else str}
        else:
            raise TypeError(f"NWBBinning.{field.name}: no command-line form for the type {hint}; extend "
                            f"lfads.commands.convert.binning_flags.")
        if "metavar" in field.metadata:
            kwargs["metavar"] = field.metadata["metavar"]
        text = docs.get(field.name, "")
        if "Default" not in text:
            text = f"{text} Default: {field.default}.".lstrip()
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, default=argparse.SUPPRESS,
                            help=text, **kwargs)


def _binning_from_args(args: argparse.Namespace) -> NWBBinning:
    """Defaults, then the config's ``data.nwb`` section, then the flags given."""
    base = load_nwb_binning_config(args.config) if args.config is not None else NWBBinning()
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(NWBBinning) if hasattr(args, f.name)}
    for name, value in flags.items():
        if isinstance(value, list) and [str(v).strip().lower() for v in value] in (["none"], ["null"]):
            flags[name] = None
    return NWBBinning.from_mapping(flags, source="lfads convert flags", base=base)


def _build_convert_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
                          ) -> argparse.ArgumentParser:
    """The parser of ``lfads convert``; ``parser_class`` decides how usage errors end (print and exit, or raise)."""
    parser = parser_class(
        prog="lfads convert",
        description="Bin NWB sessions into LFADS HDF5 files (one per session, named after the NWB file). Binning "
                    "options: NWBBinning defaults, then the config's data.nwb section, then the flags below.")
    parser.add_argument("--nwb", nargs="+", required=True, metavar="FILE", action=StoreOnce,
                        help="NWB file(s), one per session")
    parser.add_argument("--out-dir", required=True, type=Path, action=StoreOnce,
                        help="folder for the .h5 files (created if missing)")
    parser.add_argument("--config", type=Path, action=StoreOnce,
                        help="YAML config with a data.nwb section (e.g. configs/reach_nwb.yaml)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    binning_flags(parser.add_argument_group("binning (fields of lfads.data.nwb.NWBBinning; 'none' means null)"))
    return parser


# ---------------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------------


def convert_command(argv: list[str]) -> int:
    """``lfads convert --nwb FILE [FILE ...] --out-dir DIR [--config YAML] [binning flags] [--overwrite]``.

    Writes ``DIR/<NWB file stem>.h5`` per NWB file with :func:`lfads.data.nwb.convert_nwb_to_lfads`. All or
    nothing: the arguments, the inputs (NWB files with distinct names) and the outputs (none may exist unless
    ``--overwrite`` is given) are checked first; every session is then written to a temporary file in ``DIR``,
    and only when all have been binned are they renamed onto their names. The NWB files are only read.

    Parameters
    ----------
    argv : list of str
        The arguments after ``convert``.

    Returns
    -------
    int
        0 on success. Bad arguments or data end the command with :class:`SystemExit` and a message naming the
        file and option at fault.
    """
    from lfads.data.nwb import check_nwb_file

    args = _build_convert_parser(ArgumentParser).parse_args(argv)
    try:
        binning = _binning_from_args(args)
        sources = [Path(p) for p in args.nwb]
        for source in sources:
            check_nwb_file(source)
        check_output_dir(args.out_dir)  # a file, or a path under one, is refused; a missing folder is created
        targets = [args.out_dir / f"{source.stem}.h5" for source in sources]
        check_output_targets(sources, targets, sources, args.overwrite, option="--out-dir")
        print(f"binning: {binning}")
        _convert_all_or_nothing(sources, targets, binning, args.overwrite)
    except LFADSError as err:
        raise SystemExit(f"lfads convert: {err}") from err
    for source, target in zip(sources, targets):
        print(f"{source} -> {target}: {_describe_h5(target)}")
    return 0


def _convert_all_or_nothing(sources: Sequence[Path], targets: Sequence[Path], binning: NWBBinning,
                            overwrite: bool) -> None:
    """Bin every source into a temporary file next to its target; rename them all only if all succeed.

    Each target goes through :func:`lfads.data.atomic.guarded_output`: never onto a source, a run's file or a
    folder, and created exclusively unless ``overwrite``.
    """
    from lfads.data.nwb import convert_nwb_to_lfads

    with ExitStack() as pending:
        for source, target in zip(sources, targets):
            tmp = pending.enter_context(guarded_output(target, protected=sources, overwrite=overwrite,
                                                       what="LFADS HDF5 file", option="--out-dir",
                                                       suffix=".partial.h5"))
            convert_nwb_to_lfads(source.resolve(), tmp, binning)  # absolute source_file attribute


def _describe_h5(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        trials = ", ".join(f"{split} {f[f'{split}_encod_data'].shape[0]}" for split in ("train", "valid", "test")
                           if f"{split}_encod_data" in f)
        _, t_enc, n_in = f["train_encod_data"].shape
        _, t_recon, n_recon = f["train_recon_data"].shape
        bin_ms = 1000.0 * float(f.attrs["bin_size"])
    forward = f" + {t_recon - t_enc} forward" if t_recon > t_enc else ""
    return (f"trials {trials}; {n_in} held-in + {n_recon - n_in} held-out units; {t_enc}{forward} bins of "
            f"{bin_ms:g} ms")
