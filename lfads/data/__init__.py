"""Data: the LFADS HDF5 layout, NLB tensor files, and the Lightning data module that batches sessions."""

from lfads.data.batch import SPLITS, SessionBatch, SessionData, SplitData
from lfads.data.datamodule import LFADSDataModule, load_session, resolve_data_paths
from lfads.data.hdf5 import (
    build_session,
    check_counts,
    load_lfads_h5,
    save_h5_atomic,
    save_lfads_h5,
    validate_session,
)
from lfads.data.nlb import is_nlb_file, load_nlb_h5

__all__ = [
    "SPLITS",
    "LFADSDataModule",
    "SessionBatch",
    "SessionData",
    "SplitData",
    "build_session",
    "check_counts",
    "is_nlb_file",
    "load_lfads_h5",
    "load_nlb_h5",
    "load_session",
    "resolve_data_paths",
    "save_h5_atomic",
    "save_lfads_h5",
    "validate_session",
]
