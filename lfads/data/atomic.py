"""Atomic file output: write to a temporary file in the target folder, then rename it into place.

A crash or an error never leaves a half-written file under the final name, and readers never see one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary file gets the permissions a newly created file would (``mkstemp`` makes it 0600).

    Examples
    --------
    >>> with atomic_output("out.h5") as tmp:  # doctest: +SKIP
    ...     h5py.File(tmp, "w").close()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_output` (readers see the old file or the whole new one)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
