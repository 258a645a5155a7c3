"""`python -m naba ...`: the same command line as the `naba` script, for when the script is not on PATH."""

import sys

from naba.cli import main

if __name__ == "__main__":
    sys.exit(main())
