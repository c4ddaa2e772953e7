"""The subcommands of ``lfads``, one module each.

``lfads.cli.main`` picks the subcommand and calls ``lfads.commands.<name>.main(argv)``:

- :mod:`lfads.commands.fit`: ``lfads fit|validate|test``, the Lightning CLI;
- :mod:`lfads.commands.sample`: ``lfads sample``, posterior-averaged outputs of one model or an ensemble;
- :mod:`lfads.commands.analyze`: ``lfads analyze``, fixed points, linearization and a JSLDS;
- :mod:`lfads.commands.convert`: ``lfads convert``, NWB sessions to the LFADS HDF5 layout;
- :mod:`lfads.commands.tune`: ``lfads tune``, population-based training;
- :mod:`lfads.commands.checks`: argument checks shared by the commands, run before any work;
- :mod:`lfads.commands.report`: the single error path (one line on stderr, exit status 2).

Each ``main`` raises :class:`lfads.errors.LFADSError` subclasses; :func:`lfads.cli.main` reports them.
"""
