"""Containers for one recording session's data and for one batch of trials fed to the model.

A session holds splits (``"train"``, ``"valid"``, optionally ``"test"``); each split holds arrays in
``(trials, time, neurons)`` order. :class:`SessionBatch` is the same layout as torch tensors for a batch of
trials, plus the sample-validation mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import Tensor

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""Split names of the LFADS layout, in file order."""


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
    """

    encod_data: np.ndarray
    recon_data: np.ndarray | None
    ext_input: np.ndarray
    truth: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        """Number of trials ``n`` in the split."""
        return int(self.encod_data.shape[0])


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
