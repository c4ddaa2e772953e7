"""Lightning data module serving one or more recording sessions as batches of :class:`SessionBatch`.

Each file is one session (LFADS HDF5 layout, NLB tensor layout, or NWB). Sessions may record different neurons
but share ``T_enc``, ``T_recon`` and ``ext_dim``. A training batch is ``dict[int, SessionBatch]`` keyed by session
index (sessions with fewer batches are cycled); a validation batch is ``dict[int, SessionBatch | None]``
(``None`` once a session's validation trials are used up).

Sample validation: for every session and split a fixed mask ``m`` of shape ``(trials, T_enc, N_in)`` is drawn
once, ``m = 1[u >= sv_rate]`` with ``u ~ U(0, 1)`` i.i.d., so a fraction ``sv_rate`` of the elements
(in expectation) is held out of training.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.combined_loader import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from lfads.data.batch import SPLITS, SessionBatch, SessionData, SplitData
from lfads.data.hdf5 import check_counts, check_h5_readable, load_lfads_h5, validate_session
from lfads.data.nlb import is_nlb_file, load_nlb_h5
from lfads.data.nwb import NWBBinning
from lfads.errors import LFADSDataError

_GLOB_CHARS = set("*?[")


class SessionSplitDataset(Dataset):
    """Trials of one split of one session as tensors, indexed a batch at a time.

    ``dataset.__getitems__(indices)`` returns one :class:`SessionBatch` built by tensor indexing, which
    :class:`torch.utils.data.DataLoader` calls with the list of a batch's indices; use it with
    ``collate_fn=`` :func:`collate_session_batch`.

    Parameters
    ----------
    split : SplitData
        The split's arrays (float32, ``(trials, time, neurons)``); tensors share their memory, except that
        where the split has masks (``recon_mask``, ``encod_mask``) the data are copied with 0 at unobserved
        elements, so every reader of the batches (training, sampling) sees the same encoder input.
    sv_mask : np.ndarray
        ``(trials, T_enc, N_in)`` bool, True where an element may be used for training.
    """

    def __init__(self, split: SplitData, sv_mask: np.ndarray) -> None:
        self.encod_mask = _mask_tensor(split.encod_mask)
        self.recon_mask = _mask_tensor(split.recon_mask)
        self.encod_data = _observed_only(split.encod_data, self.encod_mask)
        self.recon_data = None if split.recon_data is None else _observed_only(split.recon_data, self.recon_mask)
        self.ext_input = torch.from_numpy(np.ascontiguousarray(split.ext_input, dtype=np.float32))
        self.truth = None if split.truth is None else torch.from_numpy(np.ascontiguousarray(split.truth, np.float32))
        if sv_mask.shape != tuple(self.encod_data.shape):
            raise ValueError(f"sv_mask shape {sv_mask.shape} != encod_data shape {tuple(self.encod_data.shape)}")
        self.sv_mask = torch.from_numpy(np.ascontiguousarray(sv_mask, dtype=np.bool_))

    def __len__(self) -> int:
        return int(self.encod_data.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> SessionBatch:
        """The trials ``indices`` as one batch: every tensor is ``(len(indices), time, channels)``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return SessionBatch(
            encod_data=self.encod_data[idx],
            recon_data=None if self.recon_data is None else self.recon_data[idx],
            ext_input=self.ext_input[idx],
            truth=None if self.truth is None else self.truth[idx],
            sv_mask=self.sv_mask[idx].to(torch.float32),
            recon_mask=None if self.recon_mask is None else self.recon_mask[idx],
            encod_mask=None if self.encod_mask is None else self.encod_mask[idx],
        )

    def __getitem__(self, index: int) -> SessionBatch:
        """One trial, without a batch axis: every tensor is ``(time, channels)``."""
        batch = self.__getitems__([index])
        return SessionBatch(*(None if t is None else t[0] for t in batch))


def _mask_tensor(mask: np.ndarray | None) -> torch.Tensor | None:
    """A bool mask (True = observed) as a tensor; ``None`` stays ``None``."""
    return None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, dtype=np.bool_))


def _observed_only(values: np.ndarray, mask: torch.Tensor | None) -> torch.Tensor:
    """``values`` as a float32 tensor with 0 where ``mask`` is False (no copy without a mask)."""
    data = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return data if mask is None else torch.where(mask, data, torch.zeros((), dtype=data.dtype))


def collate_session_batch(batch: SessionBatch) -> SessionBatch:
    """Collate function for :class:`SessionSplitDataset`: the dataset already returns a whole batch."""
    return batch


def resolve_data_paths(data_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Expand a file, a glob pattern, or a list of either into a list of files (each glob sorted).

    Raises
    ------
    LFADSDataError
        If nothing is given, a glob matches nothing, a file is missing, or a file is listed twice.
    """
    items = [data_paths] if isinstance(data_paths, (str, os.PathLike)) else list(data_paths)
    if not items:
        raise LFADSDataError("data_paths is empty; give a file, a list of files, or a glob such as 'data/*.h5'.")
    paths: list[Path] = []
    for item in items:
        item = os.fspath(item)
        if not os.path.exists(item) and _GLOB_CHARS & set(item):
            matches = sorted(glob.glob(os.path.expanduser(item)))
            matches = [m for m in matches if os.path.isfile(m)]
            if not matches:
                raise LFADSDataError(f"data_paths: the glob '{item}' matches no file (working folder {Path.cwd()}).")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(os.path.expanduser(item)))
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise LFADSDataError(f"data_paths: the file {paths[i]} is listed twice; each session must appear once.")
    return paths


def _to_nwb_binning(nwb: NWBBinning | dict | None) -> NWBBinning | None:
    """NWB binning options as an :class:`~lfads.data.nwb.NWBBinning` (a mapping of its fields is validated).

    Raises
    ------
    lfads.data.nwb.NWBBinningError
        From :meth:`~lfads.data.nwb.NWBBinning.from_mapping`, naming ``data.nwb`` and the field at fault.
    """
    if nwb is None or isinstance(nwb, NWBBinning):
        return nwb
    return NWBBinning.from_mapping(nwb, source="data.nwb")


def load_session(
    path: str | os.PathLike,
    valid_fraction: float = 0.2,
    split_seed: int = 0,
    nwb: NWBBinning | dict | None = None,
) -> SessionData:
    """Load one session, choosing the reader by the file: ``.nwb`` -> NWB, NLB tensors -> NLB, else LFADS HDF5.

    Parameters
    ----------
    path : str or PathLike
        The session's file.
    valid_fraction, split_seed : float, int
        Train/valid split of NLB files (see :func:`lfads.data.nlb.load_nlb_h5`).
    nwb : NWBBinning or dict, optional
        Binning options for ``.nwb`` files (a dict holds fields of :class:`~lfads.data.nwb.NWBBinning`);
        default ``NWBBinning()``.
    """
    path = Path(path)
    if path.suffix.lower() == ".nwb":
        if not path.exists():
            raise LFADSDataError(f"{path}: file not found. Check the path (relative paths are taken from "
                                 f"{Path.cwd()}).")
        from lfads.data.nwb import load_nwb_session  # NWB support loads pynwb; import only when needed

        session = load_nwb_session(path, _to_nwb_binning(nwb))
        validate_session(session)
        return session
    check_h5_readable(path)
    if is_nlb_file(path):
        return load_nlb_h5(path, valid_fraction=valid_fraction, seed=split_seed)
    return load_lfads_h5(path)


def draw_sv_mask(shape: tuple[int, ...], sv_rate: float, seed: int | Sequence[int]) -> np.ndarray:
    """Sample-validation mask ``m = 1[u >= sv_rate]``, ``u ~ U(0, 1)`` i.i.d., as a bool array of ``shape``.

    True marks elements used for training; a fraction ``sv_rate`` (in expectation) is False (held out).
    """
    if sv_rate == 0.0:
        return np.ones(shape, dtype=np.bool_)
    return np.random.default_rng(seed).random(shape) >= sv_rate


class LFADSDataModule(pl.LightningDataModule):
    """Serves the trials of one or more sessions for training, validation and posterior sampling.

    All sessions are loaded and validated on construction, so data errors surface before training and the data
    dimensions are known at once.

    Parameters
    ----------
    data_paths : str or list of str
        One file per session: a path, a glob pattern (matches sorted), or a list of either. Files ending in
        ``.nwb`` are read with :func:`lfads.data.nwb.load_nwb_session`; HDF5 files in the NLB tensor layout with
        :func:`lfads.data.nlb.load_nlb_h5`; other HDF5 files in the LFADS layout with
        :func:`lfads.data.hdf5.load_lfads_h5`.
    batch_size : int
        Trials per batch and session.
    sv_rate : float
        Fraction of ``encod_data`` elements held out for sample validation, in [0, 1).
    sv_seed : int
        Seed of the sample-validation masks.
    num_workers : int
        DataLoader worker processes (0: load in the main process, usually fastest for in-memory tensors).
    valid_fraction : float
        Fraction of trials used for validation when splitting NLB-layout files.
    split_seed : int
        Seed of the train/valid split of NLB-layout files.
    nwb : NWBBinning or dict, optional
        How ``.nwb`` files are binned (:class:`lfads.data.nwb.NWBBinning`; in a YAML config, a mapping of its
        fields under ``data.nwb``). A dict of the same fields is accepted and converted. Default
        ``NWBBinning()``. Stored in the hyperparameters as a plain dict.
    """

    def __init__(
        self,
        data_paths: str | list[str],
        batch_size: int = 64,
        sv_rate: float = 0.0,
        sv_seed: int = 0,
        num_workers: int = 0,
        valid_fraction: float = 0.2,
        split_seed: int = 0,
        nwb: NWBBinning | dict | None = None,
    ) -> None:
        super().__init__()
        binning = _to_nwb_binning(nwb)
        # hyperparameters hold plain values (YAML-safe, reloadable from a checkpoint): the options as a dict
        nwb = None if binning is None else {**dataclasses.asdict(binning), "window_ms": list(binning.window_ms)}
        self.save_hyperparameters()
        if batch_size < 1:
            raise LFADSDataError(f"batch_size must be at least 1, got {batch_size}.")
        if not 0.0 <= sv_rate < 1.0:
            raise LFADSDataError(f"sv_rate must lie in [0, 1), got {sv_rate}.")
        if num_workers < 0:
            raise LFADSDataError(f"num_workers must be >= 0, got {num_workers}.")
        self.batch_size = batch_size
        self.sv_rate = sv_rate
        self.sv_seed = sv_seed
        self.num_workers = num_workers

        paths = resolve_data_paths(data_paths)
        self._sessions = [load_session(p, valid_fraction=valid_fraction, split_seed=split_seed, nwb=binning)
                          for p in paths]
        self._check_sessions_agree()
        self._datasets: list[dict[str, SessionSplitDataset]] = []
        for s_idx, session in enumerate(self._sessions):
            datasets = {}
            for split, data in session.splits.items():
                seed = (sv_seed, s_idx, SPLITS.index(split))
                datasets[split] = SessionSplitDataset(data, draw_sv_mask(data.encod_data.shape, sv_rate, seed))
            self._datasets.append(datasets)

    def _check_sessions_agree(self) -> None:
        first = self._sessions[0]
        names: dict[str, Path] = {}
        for session in self._sessions:
            if session.name in names:
                raise LFADSDataError(f"{session.path} and {names[session.name]} have the same session name "
                                     f"'{session.name}'; rename one file so that outputs do not collide.")
            names[session.name] = session.path
            for label, attr in (("T_enc (encoder time bins)", "encod_seq_len"),
                                ("T_recon (reconstructed time bins)", "recon_seq_len"),
                                ("ext_dim (external input channels)", "ext_input_dim")):
                if getattr(session, attr) != getattr(first, attr):
                    raise LFADSDataError(
                        f"{session.path} has {label} = {getattr(session, attr)} but {first.path} has "
                        f"{getattr(first, attr)}; all sessions must share it (neuron counts may differ).")
            if session.bin_size is not None and first.bin_size is not None and session.bin_size != first.bin_size:
                raise LFADSDataError(f"{session.path} has bin_size {session.bin_size} s but {first.path} has "
                                     f"{first.bin_size} s; all sessions must be binned alike.")
        smallest = min(s.splits[split].n_trials for s in self._sessions for split in ("train", "valid"))
        for session in self._sessions:
            for split in ("train", "valid"):
                n = session.splits[split].n_trials
                if n < self.batch_size:
                    raise LFADSDataError(
                        f"{session.path}: the {split} split has {n} trials, fewer than batch_size={self.batch_size}; "
                        f"set batch_size <= {smallest} (the smallest train/valid split over all sessions).")

    # ---- dimensions -------------------------------------------------------------------------------------------------
    @property
    def sessions(self) -> list[SessionData]:
        """The loaded sessions, in ``data_paths`` order."""
        return list(self._sessions)

    @property
    def session_names(self) -> list[str]:
        """Session names (file stems), in ``data_paths`` order."""
        return [s.name for s in self._sessions]

    @property
    def encod_data_dims(self) -> list[int]:
        """``N_in`` of each session."""
        return [s.encod_data_dim for s in self._sessions]

    @property
    def recon_data_dims(self) -> list[int]:
        """``N_recon`` of each session."""
        return [s.recon_data_dim for s in self._sessions]

    @property
    def encod_seq_len(self) -> int:
        """``T_enc``, shared by all sessions."""
        return self._sessions[0].encod_seq_len

    @property
    def recon_seq_len(self) -> int:
        """``T_recon``, shared by all sessions."""
        return self._sessions[0].recon_seq_len

    @property
    def ext_input_dim(self) -> int:
        """``ext_dim``, shared by all sessions (0 when there are no external inputs)."""
        return self._sessions[0].ext_input_dim

    @property
    def bin_size(self) -> float | None:
        """Bin width in seconds, where any session states it (all that state it agree)."""
        return next((s.bin_size for s in self._sessions if s.bin_size is not None), None)

    # ---- checks and masks -------------------------------------------------------------------------------------------
    def require_counts(self) -> None:
        """Raise :class:`LFADSDataError` unless every session's encod/recon data are non-negative integers."""
        for session in self._sessions:
            check_counts(session)

    def get_sv_mask(self, session: int, split: str) -> torch.Tensor:
        """Sample-validation mask of one split, ``(trials, T_enc, N_in)`` float: 1 = train on it, 0 = held out."""
        return self._get_dataset(session, split).sv_mask.to(torch.float32)

    def _check_session_split(self, session: int, split: str) -> None:
        """Raise :class:`LFADSDataError` unless ``session`` is an index from 0 and that session has ``split``."""
        n = len(self._sessions)
        if isinstance(session, bool) or not isinstance(session, (int, np.integer)) or not 0 <= session < n:
            raise LFADSDataError(f"session index {session!r} out of range: give an index from 0 to {n - 1} (the "
                                 f"sessions are {self.session_names}).")
        if split not in self._sessions[session].splits:
            raise LFADSDataError(f"{self._sessions[session].path}: no '{split}' split (it has "
                                 f"{sorted(self._sessions[session].splits)}).")

    def _get_dataset(self, session: int, split: str) -> SessionSplitDataset:
        self._check_session_split(session, split)
        return self._datasets[session][split]

    # ---- dataloaders ------------------------------------------------------------------------------------------------
    def _make_loader(self, dataset: SessionSplitDataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          collate_fn=collate_session_batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> CombinedLoader:
        """Shuffled training batches, ``dict[int, SessionBatch]`` keyed by session; incomplete batches dropped.

        An epoch is as long as the session with the most batches; the others are cycled.
        """
        loaders = {i: self._make_loader(d["train"], self.batch_size, shuffle=True, drop_last=True)
                   for i, d in enumerate(self._datasets)}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> CombinedLoader:
        """Validation batches in order, ``dict[int, SessionBatch | None]`` (``None`` once a session is used up)."""
        loaders = {i: self._make_loader(d["valid"], self.batch_size, shuffle=False, drop_last=False)
                   for i, d in enumerate(self._datasets)}
        return CombinedLoader(loaders, mode="max_size")

    def split_data(self, session: int, split: str) -> SplitData:
        """One split of one session (a negative index counts from the end), after checking the index and the
        split name (one line naming the file)."""
        n = len(self._sessions)
        if isinstance(session, (int, np.integer)) and not isinstance(session, bool) and -n <= session < 0:
            session += n
        self._check_session_split(session, split)
        return self._sessions[session].splits[split]

    def split_dataloader(self, session: int, split: str, batch_size: int | None = None) -> DataLoader:
        """All trials of one split of one session, in order (no shuffling, last batch kept), for posterior sampling.

        Parameters
        ----------
        session : int
            Session index (position in :attr:`session_names`).
        split : str
            ``"train"``, ``"valid"`` or ``"test"``.
        batch_size : int, optional
            Defaults to the module's ``batch_size``.
        """
        if split not in SPLITS:
            raise LFADSDataError(f"unknown split '{split}'; use one of {list(SPLITS)}.")
        dataset = self._get_dataset(session, split)
        return self._make_loader(dataset, batch_size or self.batch_size, shuffle=False, drop_last=False)
