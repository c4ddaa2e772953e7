"""``python -m lfads.tune ARGS``: the same as ``lfads tune ARGS``."""

import sys

from lfads.tune.command import tune_command

sys.exit(tune_command(sys.argv[1:]))
