"""Options for binning an NWB session (:class:`NWBBinning`) and their one validator, :meth:`NWBBinning.from_mapping`.

Every way options arrive (a ``data.nwb`` YAML section, :func:`lfads.data.nwb.load_nwb_session` keyword
arguments, ``lfads convert`` flags) goes through :meth:`NWBBinning.from_mapping`, which lists unknown options
with the valid ones and checks each value against the field's type, naming the source and the field.
"""

from __future__ import annotations

import functools
import numbers
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np

from lfads.errors import LFADSDataError

__all__ = ["NWBBinning", "NWBBinningError", "UNOBSERVED_CHOICES"]

UNOBSERVED_CHOICES: tuple[str, ...] = ("drop_trials", "mask")
"""Values of :attr:`NWBBinning.unobserved`."""


class NWBBinningError(LFADSDataError, TypeError):
    """NWB binning options are malformed: not a mapping, an unknown option, or a value of the wrong type.

    Both a :class:`~lfads.errors.LFADSDataError` (a config file is at fault) and a :class:`TypeError` (a
    keyword argument is at fault).
    """


@dataclass
class NWBBinning:
    """How to cut an NWB session into trial-aligned bins.

    Attributes
    ----------
    align_event : str
        Column of the trials table holding the event time (s, session clock) each window is aligned to,
        e.g. ``"move_onset_time"`` or ``"start_time"``.
    window_ms : tuple of float
        ``(start, end)`` of the window in ms relative to the event; ``end - start`` must be a whole number of
        bins. Default ``(-250, 450)``: 700 ms, as in the NLB MC_Maze benchmark.
    bin_ms : float
        Bin width in ms (a whole number of nanoseconds).
    forward_bins : int
        Extra bins after the window that appear only in ``recon_data`` (forward prediction).
    heldout_column : str or None
        Boolean Units column marking held-out units. If the column is absent and ``heldout_fraction > 0``, a
        seeded random ``heldout_fraction`` of the units is held out instead; if it is absent and
        ``heldout_fraction == 0`` it is an error. ``None``: ignore any column and use ``heldout_fraction``.
    heldout_fraction : float
        Fraction of units held out at random (seeded) when no held-out column is used.
    split_column : str or None
        Trials column with labels ``train``/``val``/``valid``/``test`` (``none`` drops the trial). ``None``:
        split at random (seeded) with ``valid_fraction`` and ``test_fraction``.
    valid_fraction, test_fraction : float
        Fractions of the kept trials for the validation and test splits when ``split_column`` is ``None``
        (``round(fraction * n)`` trials each, the rest train).
    behavior : str or None
        Name of a TimeSeries in ``acquisition`` or any processing module (e.g. ``"hand_vel"``), binned over
        the window bins into ``{split}_behavior``.
    condition_columns : list of str or None
        Trials columns whose value combinations define conditions; ``{split}_conditions`` holds integer ids
        numbered in sorted order of the combinations.
    seed : int
        Seed for the random held-out units and random split.
    unobserved : str
        What happens where a unit's ``obs_intervals`` do not cover a bin (window or forward bins):
        ``"drop_trials"`` drops every trial whose window leaves the ``obs_intervals`` of any unit;
        ``"mask"`` keeps the trials, sets those bins' counts to 0 and marks them False in the boolean
        ``{split}_recon_mask`` and ``{split}_encod_mask`` (True = observed), which the model's cost and the
        metrics leave out. Only trials in which no unit is observed in any bin are dropped then. Default
        ``"drop_trials"``.
    """

    align_event: str = "move_onset_time"
    window_ms: tuple[float, float] = field(default=(-250.0, 450.0), metadata={"metavar": ("START", "END")})
    bin_ms: float = 5.0
    forward_bins: int = 0
    heldout_column: str | None = "heldout"
    heldout_fraction: float = 0.0
    split_column: str | None = "split"
    valid_fraction: float = 0.2
    test_fraction: float = 0.0
    behavior: str | None = None
    condition_columns: list[str] | None = field(default=None, metadata={"metavar": "COLUMN"})
    seed: int = 0
    unobserved: str = field(default="drop_trials", metadata={"choices": UNOBSERVED_CHOICES})

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        source: str = "NWB binning options",
        base: NWBBinning | None = None,
    ) -> NWBBinning:
        """Validated options from a mapping of field names to values (a YAML section, keyword arguments, flags).

        Fields absent from ``mapping`` keep their value in ``base``. Values are checked against the field
        types (and a field's ``choices``, e.g. ``unobserved``); whole numbers given for float fields become floats, ``window_ms`` becomes a tuple of floats and
        ``condition_columns`` a list.

        Parameters
        ----------
        mapping : mapping of str to Any
            Field name -> value; ``None`` is accepted for the optional fields.
        source : str
            Where the mapping comes from (a file and key such as ``"run.yaml: data.nwb"``), named in errors.
        base : NWBBinning, optional
            Values of the fields ``mapping`` leaves out; default ``NWBBinning()``.

        Returns
        -------
        NWBBinning

        Raises
        ------
        NWBBinningError
            ``mapping`` is not a mapping, holds keys that are not fields (listed with the valid ones), or a
            value of the wrong type or not among the field's choices (the field and the expected type or the
            choices are named).
        """
        if not isinstance(mapping, Mapping):
            raise NWBBinningError(f"{source} must be a mapping of NWB binning options (or null), got "
                                  f"{type(mapping).__name__}: {mapping!r}.")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(key) for key in mapping if key not in known)
        if unknown:
            raise NWBBinningError(f"{source}: unknown NWB binning option(s) {unknown}. Valid options: {known}; "
                                  f"remove each unknown option ({', '.join(unknown)}) or rename it to a valid one.")
        hints = _binning_types()
        values = {name: _coerce_option(value, hints[name], source, name) for name, value in mapping.items()}
        for f in fields(cls):
            if f.name in values:
                check_choice(values[f.name], f.metadata.get("choices"), f"{source}: option {f.name}", NWBBinningError)
        return replace(cls() if base is None else base, **values)


def check_choice(value: Any, choices: tuple[str, ...] | None, where: str, error: type[Exception]) -> None:
    """Raise ``error`` naming ``where`` and the valid values unless ``value`` is one of ``choices`` (None: any)."""
    if choices is not None and value not in choices:
        raise error(f"{where} must be one of {list(choices)}, got {value!r}.")


@functools.cache
def _binning_types() -> dict[str, Any]:
    """Field name -> resolved type annotation of :class:`NWBBinning`."""
    return typing.get_type_hints(NWBBinning)


def _coerce_option(value: Any, hint: Any, source: str, name: str) -> Any:
    """``value`` checked against the annotation ``hint`` of field ``name`` and normalised (see from_mapping)."""
    optional = type(None) in typing.get_args(hint)
    if optional and value is None:
        return None
    kind = next(arg for arg in typing.get_args(hint) if arg is not type(None)) if optional else hint
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args) and all(map(_is_number, value, args)):
            return tuple(arg(v) for v, arg in zip(value, args))
    elif origin is list:
        if isinstance(value, (list, tuple)) and all(isinstance(v, args[0]) for v in value):
            return list(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif _is_number(value, kind):
        return kind(value)
    raise NWBBinningError(f"{source}: option {name} must be {_describe_type(kind)}{' or null' if optional else ''}, "
                          f"got {value!r} ({type(value).__name__}).")


def _is_number(value: Any, kind: type) -> bool:
    """``value`` is a number of ``kind`` (``int``: integers only; ``float``: any real), never a bool."""
    wanted = numbers.Integral if kind is int else numbers.Real
    return isinstance(value, wanted) and not isinstance(value, (bool, np.bool_))


def _describe_type(kind: Any) -> str:
    """Words for a field type in error messages, e.g. ``tuple[float, float]`` -> ``"a list of 2 numbers"``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return f"a list of {len(args)} numbers"
    if origin is list:
        return "a list of strings"
    return {str: "a string", int: "an integer", float: "a number"}[kind]
