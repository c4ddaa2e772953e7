"""Reading and writing the LFADS HDF5 layout (one file per session)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np


def save_h5_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping | None = None) -> Path:
    """Write ``arrays`` (name -> array; names may contain ``/`` for groups) to ``path`` atomically.

    The file is written to a temporary file in the same folder and renamed onto ``path``,
    so a crash never leaves a half-written file and readers never see one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                value = np.asarray(value)
                kwargs = {"compression": "gzip", "compression_opts": 4} if value.ndim >= 2 and value.size > 1024 else {}
                f.create_dataset(key, data=value, **kwargs)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
