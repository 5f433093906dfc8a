"""``python -m loadgen`` (and the zipapp) run the ``shadow-loadgen`` CLI."""

import sys

from loadgen.cli import main

sys.exit(main())
