import sys

from lfads.cli import main

sys.exit(main())
