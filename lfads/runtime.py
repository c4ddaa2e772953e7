"""Process-wide runtime settings: the recurrence backend, the number of CPU threads torch uses, and huge pages.

Recurrence backend (how the encoder and controller-generator loops run; every backend gives the
same results to float precision, see :mod:`lfads.modules.recurrence`):

- ``reference``: plain autograd loops (``nn.GRU``, one GRU cell call per step); the definition.
- ``python``: hand-differentiated loops, time steps in Python (any device and dtype).
- ``native``: the same loops compiled to C++ (:mod:`lfads.modules.native`; CPU float32/float64 only,
  an error elsewhere).
- ``auto`` (default): ``native`` where it applies and builds, ``python`` otherwise.

Chosen by :func:`set_recurrence_backend` (for the process, or for a ``with`` block), else the
environment variable ``LFADS_RECURRENCE``, else ``auto`` (``LFADS_NATIVE=0``, the older switch, means
``python``). It is a property of the run, not of the model: checkpoints do not record it (checkpoints
written before carry a ``fused_recurrence`` hyperparameter, which loading ignores).

Huge pages: LFADS allocates many tensors of several MB per training step (gate
buffers and caches of the recurrent loops). The kernel backs fresh memory with
4 kB pages, faulting each in on first touch, which on a CPU cost up to a third
of a step at batch 256. PyTorch can back CPU allocations of 2 MB and more with
transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``); importing :mod:`lfads` turns
this on unless the variable is already set (``THP_MEM_ALLOC_ENABLE=0`` opts out).
torch reads it at its first allocation, so it must be set before that: importing
``lfads`` before creating tensors is enough.

Threads:

Default: ``LFADS_NUM_THREADS`` if set, else 1 thread on machines with at most 4
cores and torch's own default above that. The recurrent loop issues many small
matrix products in sequence; on a 2-core machine a second thread helps only
while the other core is idle (1.48x at batch 256, 1.37x at batch 32) and makes
every step wait for a busy core otherwise (5-18x slower when another process
runs), so one thread is the robust default (``benchmarks/throughput.py``
measures both). GPU training is unaffected.

Progress bars: when a command's standard error is not a terminal (a log file, a batch job, a pipe), its
progress bars redraw at most every 30 s instead of ten times a second, so a log holds a few lines per bar
rather than thousands; ``TQDM_MININTERVAL`` set by the user wins.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Self, TextIO

RECURRENCE_BACKENDS: tuple[str, ...] = ("auto", "reference", "python", "native")
"""Names accepted by :func:`set_recurrence_backend` and ``LFADS_RECURRENCE``."""

_chosen_backend: list[str | None] = [None]  # set by set_recurrence_backend; None defers to the environment


def _check_backend(name: str, where: str) -> str:
    if name not in RECURRENCE_BACKENDS:
        raise ValueError(f"{where}={name!r} is not a recurrence backend; use one of {list(RECURRENCE_BACKENDS)}.")
    return name


def recurrence_backend() -> str:
    """The recurrence backend in force (see the module docstring for the order of the settings)."""
    if _chosen_backend[0] is not None:
        return _chosen_backend[0]
    env = os.environ.get("LFADS_RECURRENCE", "").strip()
    if env:
        return _check_backend(env, "LFADS_RECURRENCE")
    return "python" if os.environ.get("LFADS_NATIVE") == "0" else "auto"


class set_recurrence_backend:
    """Choose the recurrence backend for the process; as a context manager, for the ``with`` block only.

    Parameters
    ----------
    name : str or None
        One of :data:`RECURRENCE_BACKENDS`; ``None`` returns the choice to ``LFADS_RECURRENCE``.

    Examples
    --------
    >>> set_recurrence_backend("python")  # doctest: +SKIP
    >>> with set_recurrence_backend("reference"):  # doctest: +SKIP
    ...     out = model(encod, ext)
    """

    def __init__(self, name: str | None) -> None:
        self.previous = _chosen_backend[0]
        _chosen_backend[0] = None if name is None else _check_backend(name, "recurrence backend")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _chosen_backend[0] = self.previous


def enable_huge_pages() -> None:
    """Ask PyTorch to use transparent huge pages for large CPU tensors, unless the user chose otherwise."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


LOGGED_PROGRESS_INTERVAL = 30.0
"""Seconds between progress-bar redraws when standard error is not a terminal (:func:`configure_progress`)."""


def configure_progress(stream: TextIO | None = None) -> bool:
    """Slow progress bars down to one redraw per :data:`LOGGED_PROGRESS_INTERVAL` when ``stream`` (standard
    error by default) is not a terminal, unless ``TQDM_MININTERVAL`` is set; returns whether it did.

    tqdm reads the variable when it is first imported, so this must run before that (the ``lfads`` entry
    point calls it first thing).
    """
    stream = sys.stderr if stream is None else stream
    if "TQDM_MININTERVAL" in os.environ or stream.isatty():
        return False
    os.environ["TQDM_MININTERVAL"] = str(LOGGED_PROGRESS_INTERVAL)
    return True


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to ``n`` (or the default above) and return the value used."""
    import torch

    if n is None:
        env = os.environ.get("LFADS_NUM_THREADS")
        if env:
            n = int(env)
        elif (os.cpu_count() or 1) <= 4:
            n = 1
        else:
            return torch.get_num_threads()
    torch.set_num_threads(n)
    return n
