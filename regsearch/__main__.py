"""``python -m regsearch``: see :mod:`regsearch.cli`."""

from regsearch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
