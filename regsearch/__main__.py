"""``python -m regsearch``: see :mod:`regsearch.cli`."""

from regsearch.cli import command

if __name__ == "__main__":
    raise SystemExit(command())
