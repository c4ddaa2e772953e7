"""Process-wide runtime settings: the number of CPU threads torch uses, and huge pages.

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
"""

from __future__ import annotations

import os


def enable_huge_pages() -> None:
    """Ask PyTorch to use transparent huge pages for large CPU tensors, unless the user chose otherwise."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


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
