"""Process-wide runtime settings: the number of CPU threads torch uses.

Default: ``LFADS_NUM_THREADS`` if set, else 1 thread on machines with at most 4
cores and torch's own default above that. On small machines the recurrent loop
issues many small matrix products; splitting each one over two threads costs
more in synchronization than it saves, and a second thread competes with the
data loader and the rest of the system (``benchmarks/throughput.py`` measures
this). GPU training is unaffected.
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
