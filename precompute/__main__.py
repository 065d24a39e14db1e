"""``python -m precompute``: see :mod:`precompute.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
