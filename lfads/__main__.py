"""``python -m lfads``: the ``lfads`` command line (:func:`lfads.cli.main`)."""

import sys

from lfads.cli import main

sys.exit(main())
