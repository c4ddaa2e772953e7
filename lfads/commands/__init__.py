"""Subcommands of the ``lfads`` command line, one module each."""
