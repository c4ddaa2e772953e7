"""Containers for one recording session's data and for one batch of trials fed to the model.

A session holds splits (``"train"``, ``"valid"``, optionally ``"test"``); each split holds arrays in
``(trials, time, neurons)`` order. :class:`SessionBatch` is the same layout as torch tensors for a batch of
trials, plus the sample-validation mask.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import Tensor

from lfads.errors import LFADSDataError

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""Split names of the LFADS layout, in file order."""

DATA_FILE_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".nwb")
"""File endings removed (case-insensitively) to name a session after its file."""


def check_session_name(name: str, path: str | os.PathLike | None = None, *, from_file: bool = False) -> str:
    """Return ``name`` after checking it can name a session (an HDF5 group of the outputs).

    ``path`` is the session's file, named in messages; ``from_file`` says the name was taken from the file name
    (the fix is then to rename the file).

    Raises
    ------
    LFADSDataError
        If ``name`` is empty, only dots (``.``, ``..``: they would write at the root of an output file) or
        holds ``/`` (it would nest groups).
    """
    why = None
    if not name:
        why = "is empty"
    elif not name.strip("."):
        why = "is only dots"
    elif "/" in name:
        why = "holds '/'"
    if why is None:
        return name
    where = "" if path is None else f"{path}: "
    if from_file:
        suffix = Path(path).suffix if path is not None and Path(path).suffix else ".h5"
        raise LFADSDataError(f"{where}the file name gives the session name {name!r}, which {why}; rename the file "
                             f"(e.g. to session1{suffix}) so that its samples can be stored and read back.")
    raise LFADSDataError(f"{where}session name {name!r} {why}; give a name with letters or digits "
                         f"(e.g. 'session1').")


def session_name_from_path(path: str | os.PathLike) -> str:
    """The session name of a data file: its name without a data ending (``.h5``, ``.hdf5``, ``.nwb``).

    Other endings are removed as :attr:`pathlib.Path.stem` does. ``..h5`` and ``.h5`` are refused (see
    :func:`check_session_name`).
    """
    path = Path(path)
    name = path.name
    stem = next((name[: -len(s)] for s in DATA_FILE_SUFFIXES if name.lower().endswith(s)), path.stem)
    return check_session_name(stem, path, from_file=True)


def check_split_name(split: str, option: str, listing: str) -> None:
    """Raise :class:`LFADSDataError` unless ``split`` is ``train``, ``valid`` or ``test``: the message names
    ``option``, suggests the closest split name and ends with ``listing``."""
    if split not in SPLITS:
        guess = difflib.get_close_matches(str(split), SPLITS, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise LFADSDataError(f"{option}: unknown split {split!r}{hint}; {listing}.")


def check_splits(
    requested: Iterable[str],
    available: Iterable[str],
    *,
    option: str = "--splits",
) -> tuple[str, ...]:
    """Return the requested split names after checking each is a split name present in the data.

    Parameters
    ----------
    requested : iterable of str
        Split names asked for (e.g. the values of ``--splits``).
    available : iterable of str
        Splits the data hold (over all sessions).
    option : str
        Where the names came from, for messages.

    Raises
    ------
    LFADSDataError
        If nothing is requested, or a name is not a split (with the closest split name as a suggestion), or the
        split is absent from the data; the message lists the splits present.
    """
    requested = tuple(requested)
    present = [split for split in SPLITS if split in set(available)]
    if not requested:
        raise LFADSDataError(f"{option} is empty; choose from the splits in the data: {present}.")
    for split in requested:
        check_split_name(split, option, f"the data hold the splits {present}")
        if split not in present:
            raise LFADSDataError(f"{option}: split {split!r} is not in the data; it holds the splits {present}.")
    return requested


class SessionBatch(NamedTuple):
    """One batch of trials from one session, as tensors.

    ``T_enc``/``N_in`` are the encoder's time bins and neurons, ``T_recon``/``N_recon`` those of the
    reconstructed data (``T_recon >= T_enc``, ``N_recon >= N_in``; the first ``T_enc`` bins and ``N_in``
    neurons of ``recon_data`` coincide with ``encod_data``).
    """

    encod_data: Tensor
    """``(batch, T_enc, N_in)`` spike counts seen by the encoders."""
    recon_data: Tensor | None
    """``(batch, T_recon, N_recon)`` spike counts the model reconstructs; ``None`` for a split without
    reconstruction data (e.g. an evaluation split whose held-out neurons are hidden)."""
    ext_input: Tensor
    """``(batch, T_recon, ext_dim)`` external inputs to the generator; ``ext_dim`` may be 0."""
    truth: Tensor | None
    """``(batch, T_recon, N_recon)`` true expected counts per bin (rate x bin width) where known, else ``None``."""
    sv_mask: Tensor
    """``(batch, T_enc, N_in)`` float, 1.0 where the element of ``encod_data`` may be used for training and
    0.0 where it is held out for sample validation (all ones when the sample-validation rate is 0)."""
    recon_mask: Tensor | None = None
    """``(batch, T_recon, N_recon)`` bool, True where the element of ``recon_data`` was observed; ``None`` when
    every element was (files without masks). Unobserved elements hold 0 and are left out of the cost."""
    encod_mask: Tensor | None = None
    """``(batch, T_enc, N_in)`` bool, True where the element of ``encod_data`` was observed (the encoder block
    of ``recon_mask``); ``None`` when every element was. The encoders see 0 at unobserved elements."""


@dataclass
class SplitData:
    """The arrays of one split of one session (numpy, ``(trials, time, neurons)``).

    Attributes
    ----------
    encod_data : np.ndarray
        ``(n, T_enc, N_in)`` float32 counts seen by the encoders.
    recon_data : np.ndarray or None
        ``(n, T_recon, N_recon)`` float32 counts to reconstruct; ``None`` when the split has none.
    ext_input : np.ndarray
        ``(n, T_recon, ext_dim)`` float32 external inputs (``ext_dim`` may be 0).
    truth : np.ndarray or None
        ``(n, T_recon, N_recon)`` float32 expected counts per bin (file truth / ``conversion_factor``).
    extras : dict of str to np.ndarray
        Other per-trial arrays, keyed without the split prefix (``"conditions"``, ``"behavior"``, ``"inds"``...);
        the first axis of each has length ``n``.
    recon_mask : np.ndarray or None
        ``(n, T_recon, N_recon)`` bool, True where ``recon_data`` was observed (``{split}_recon_mask``);
        ``None``: every element was.
    encod_mask : np.ndarray or None
        ``(n, T_enc, N_in)`` bool, True where ``encod_data`` was observed (``{split}_encod_mask``, the encoder
        block of ``recon_mask``); ``None``: every element was. Data at unobserved elements are 0.
    """

    encod_data: np.ndarray
    recon_data: np.ndarray | None
    ext_input: np.ndarray
    truth: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    recon_mask: np.ndarray | None = None
    encod_mask: np.ndarray | None = None

    @property
    def n_trials(self) -> int:
        """Number of trials ``n`` in the split."""
        return int(self.encod_data.shape[0])


def observed_mean(values: np.ndarray, mask: np.ndarray | None, axis: int | tuple[int, ...]) -> np.ndarray:
    r"""Mean of ``values`` over ``axis`` taken over the observed elements only.

    .. math::

        \bar x = \frac{\sum m\, x}{\max(1, \sum m)}

    along ``axis``, so an entry with no observed element is 0. ``mask`` is a bool array of ``values``' shape
    (True = observed); ``None`` gives the plain mean.
    """
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        return values.mean(axis=axis)
    observed = np.asarray(mask, dtype=bool)
    return np.where(observed, values, 0.0).sum(axis=axis) / np.maximum(observed.sum(axis=axis), 1)


@dataclass
class SessionData:
    """One recording session in the LFADS layout.

    Attributes
    ----------
    name : str
        Session name (the file's stem).
    path : Path
        The file the session was read from.
    splits : dict of str to SplitData
        ``"train"`` and ``"valid"`` always, ``"test"`` where present.
    attrs : dict
        Descriptive root attributes of the file (``conversion_factor`` is consumed when reading and not kept).
    bin_size : float or None
        Bin width in seconds, where known.
    extras : dict of str to np.ndarray
        Datasets of the file that belong to no split (e.g. per-neuron metadata), keyed by their HDF5 path.
    """

    name: str
    path: Path
    splits: dict[str, SplitData]
    attrs: dict = field(default_factory=dict)
    bin_size: float | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_session_name(self.name, self.path)

    @property
    def encod_seq_len(self) -> int:
        """``T_enc``, the number of time bins the encoders see."""
        return int(self.splits["train"].encod_data.shape[1])

    @property
    def encod_data_dim(self) -> int:
        """``N_in``, the number of neurons the encoders see."""
        return int(self.splits["train"].encod_data.shape[2])

    @property
    def recon_seq_len(self) -> int:
        """``T_recon``, the number of time bins reconstructed."""
        return int(self.splits["train"].recon_data.shape[1])

    @property
    def recon_data_dim(self) -> int:
        """``N_recon``, the number of neurons reconstructed."""
        return int(self.splits["train"].recon_data.shape[2])

    @property
    def ext_input_dim(self) -> int:
        """``ext_dim``, the number of external input channels (0 when there are none)."""
        return int(self.splits["train"].ext_input.shape[2])
