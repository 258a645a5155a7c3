"""`python -m naba.cli ...`: the `naba` command line, as the console script runs it."""

import sys

from naba.cli import main

if __name__ == "__main__":
    sys.exit(main())
