"""lfads: infer latent dynamics from neural spiking data with LFADS, then reverse-engineer them."""

__version__ = "0.1.0"
