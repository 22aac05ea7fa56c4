"""The command line shared by every case's synthetic-data writer (``python -m
tfastro.<case>.synthetic --out ...``): ``--out``, ``--seed`` and ``--overwrite`` beside the
case's own options, and bad input reported in one line with exit status 2."""
import argparse
import sys

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
