"""One HDF5 layout for analysis results: a dataclass mixin that saves and loads its fields.

A record is a dataclass whose fields are written to one HDF5 file (or group) as

- an array -> a dataset named after the field (string arrays as fixed-length bytes, read back as ``str``),
- a scalar (number, bool, ``str``) -> an attribute named after the field,
- a mapping -> one attribute ``{field}.{key}`` per entry,
- a nested record -> a group named after the field, laid out the same way,
- ``None`` -> nothing (the field's default on reading),

plus the attribute ``format`` = :attr:`H5Record.FORMAT`, checked on reading. Files are written
atomically (:func:`lfads.data.hdf5.save_h5_atomic`, built on :mod:`lfads.data.atomic`), with large
arrays gzip-compressed.

Example::

    @dataclass
    class Result(H5Record):
        FORMAT = "my.Result/1"  # a class attribute, not a field
        values: np.ndarray
        label: str = ""
        settings: dict = field(default_factory=dict)

    Result(np.arange(3), "a", {"tol": 1e-6}).save("r.h5")  # dataset values, attributes label, settings.tol
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lfads.data.hdf5 import save_h5_atomic
from lfads.errors import LFADSDataError

__all__ = ["H5Record"]

Arrays = dict[str, np.ndarray]
Attrs = dict[str, Any]


class H5Record:
    """Mixin for dataclasses stored as one HDF5 file or group (layout in the module docstring)."""

    FORMAT: ClassVar[str] = ""
    """Value of the ``format`` attribute, e.g. ``"lfads.analysis.FixedPoints/1"``."""

    WRITTEN_BY: ClassVar[str] = ""
    """What writes such files, for error messages (``{class}.save`` if empty)."""

    # -- writing ---------------------------------------------------------------------------------------------------
    def to_h5(self) -> tuple[Arrays, Attrs, dict[str, Attrs]]:
        """What :meth:`save` writes: datasets (``group/name`` for nested records), root attributes, group attributes."""
        arrays: Arrays = {}
        attrs: Attrs = {"format": self.FORMAT}
        group_attrs: dict[str, Attrs] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, H5Record):
                sub_arrays, sub_attrs, sub_groups = value.to_h5()
                arrays.update({f"{f.name}/{k}": v for k, v in sub_arrays.items()})
                group_attrs[f.name] = sub_attrs
                group_attrs.update({f"{f.name}/{k}": v for k, v in sub_groups.items()})
            elif isinstance(value, Mapping):
                attrs.update({f"{f.name}.{k}": v for k, v in value.items()})
            elif isinstance(value, (str, bytes, bool, int, float, np.generic)):
                attrs[f.name] = value
            else:
                arrays[f.name] = _storable_array(value, f"{type(self).__name__}.{f.name}")
        return arrays, attrs, group_attrs

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` atomically (a temporary file renamed into place); returns ``path``."""
        return save_h5_atomic(path, *self.to_h5())

    # -- reading ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_h5(cls, node: Any, where: str = "", fill: Mapping[str, Any] | None = None) -> Any:
        """Read from an open HDF5 file or group written by :meth:`to_h5`; ``where`` names it in errors.

        ``fill`` gives the value of fields the node does not hold (a writer that left out what the reader
        computes again).

        Raises
        ------
        LFADSDataError
            If ``format`` is not :attr:`FORMAT` or a field without a default is missing.
        """
        found = node.attrs.get("format")
        if isinstance(found, bytes):
            found = found.decode()
        if found != cls.FORMAT:
            raise LFADSDataError(
                f"{where}: not a {cls.__name__} file (attribute 'format' is {found!r}, expected {cls.FORMAT!r}); "
                f"write it with {cls.WRITTEN_BY or cls.__name__ + '.save'}."
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            nested = _record_type(hints.get(f.name))
            prefix = f"{f.name}."
            if f.name in node and nested is not None:
                kwargs[f.name] = nested.from_h5(node[f.name], f"{where}{'/' if ':' in where else ':/'}{f.name}")
            elif f.name in node:
                kwargs[f.name] = _read_dataset(node[f.name])
            elif f.name in node.attrs:
                kwargs[f.name] = _attr_value(node.attrs[f.name])
            elif any(key.startswith(prefix) for key in node.attrs):
                kwargs[f.name] = {
                    k[len(prefix):]: _attr_value(v) for k, v in node.attrs.items() if k.startswith(prefix)
                }
            elif fill is not None and f.name in fill:
                kwargs[f.name] = fill[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise LFADSDataError(
                    f"{where}: '{f.name}' is missing (neither a dataset nor an attribute); rewrite the file with "
                    f"{cls.__name__}.save."
                )
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read a file written by :meth:`save` (see :meth:`from_h5` for the errors)."""
        import h5py

        with h5py.File(path, "r") as f:
            return cls.from_h5(f, str(path))


def _record_type(hint: Any) -> type[H5Record] | None:
    """The record class in a field's type (``R`` or ``R | None``), if any."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, H5Record):
            return candidate
    return None


def _storable_array(value: Any, name: str) -> np.ndarray:
    """``value`` as an array HDF5 can hold: strings as fixed-length bytes."""
    array = np.asarray(value)
    if array.dtype.kind == "U" or (array.dtype.kind == "O" and all(isinstance(v, str) for v in array.flat)):
        return array.astype("S")
    if array.dtype.kind == "O":
        raise LFADSDataError(f"{name} holds Python objects ({array.dtype}); records store numeric or string arrays.")
    return array


def _read_dataset(dataset: Any) -> np.ndarray:
    value = dataset[()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return value.astype("U")
    return value


def _attr_value(value: Any) -> Any:
    """Numpy scalars as Python scalars, bytes as ``str``; arrays as they are."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
