"""Process-wide runtime settings: the number of CPU threads torch uses.

Default: ``LFADS_NUM_THREADS`` if set, else 1 thread on machines with at most 4
cores and torch's own default above that. The recurrent loop issues many small
matrix products in sequence; on a 2-core machine a second thread helps only
while the other core is idle (1.57x at batch 256, 1.08x at batch 32) and makes
every step wait for a busy core otherwise (5-18x slower when another process
runs), so one thread is the robust default (``benchmarks/throughput.py``
measures both). GPU training is unaffected.
"""

from __future__ import annotations

import os


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
