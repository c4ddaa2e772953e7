"""lfads: infer latent dynamics from neural spiking data with LFADS, then reverse-engineer them."""

from lfads.runtime import enable_huge_pages as _enable_huge_pages

__version__ = "0.1.0"

_enable_huge_pages()  # before torch's first allocation; see lfads.runtime


def load_run(*args, **kwargs):
    """Load a run directory for inspection; see :func:`lfads.run.load_run`."""
    from lfads.run import load_run as _load_run

    return _load_run(*args, **kwargs)
