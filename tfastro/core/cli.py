"""The command line shared by every case's synthetic-data writer (``python -m
tfastro.<case>.synthetic --out ...``): ``--out``, ``--seed`` and ``--overwrite`` beside the
case's own options, and bad input reported in one line with exit status 2; ``comma_numbers``,
the argparse type of an option of a few comma-separated numbers."""
import argparse
import sys

import numpy as np

from tfastro.core.errors import UserInputError


def synthetic_main(prog, what, out_help, add_arguments, write, argv=None):
    """Parse ``argv`` and call ``write(args)``; returns the exit status.

    Args:
      prog: the command as typed (``python -m tfastro.<case>.synthetic``).
      what: what is written, for the description (it always says SYNTHETIC).
      out_help: help of ``--out`` (a file or a folder).
      add_arguments: ``add_arguments(parser)`` adds the case's own options.
      write: ``write(args)`` writes the data and prints what it wrote.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=f"Write SYNTHETIC {what} (stand-in data, not simulation output).")
    parser.add_argument("--out", required=True, help=out_help)
    add_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        write(args)
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def comma_numbers(count, what):
    """argparse type: ``count`` comma-separated finite numbers (``what`` they are, for the
    error) -> tuple of floats."""
    def parse(text):
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count or not np.isfinite(values).all():
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers "
                                             f"({what}), got {text!r}")
        return values
    return parse
