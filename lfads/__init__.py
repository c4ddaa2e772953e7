"""lfads: infer latent dynamics from neural spiking data with LFADS, then reverse-engineer them."""

__version__ = "0.1.0"


def load_run(*args, **kwargs):
    """Load a run directory for inspection; see :func:`lfads.run.load_run`."""
    from lfads.run import load_run as _load_run

    return _load_run(*args, **kwargs)
