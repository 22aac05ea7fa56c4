"""Synthetic stand-in data of every science case, from the command line::

    python -m tfastro.synthetic <case> --out PATH [options]   # supernova, multifield, dm2gal,
    python -m tfastro.synthetic <case> --help                 # turbulence or prestellar

Each case's writer is ``tfastro.<case>.synthetic.main``; this module only picks the case.
"""
import importlib
import sys

CASES = ("supernova", "multifield", "dm2gal", "turbulence", "prestellar")
USAGE = f"usage: python -m tfastro.synthetic {{{','.join(CASES)}}} --out PATH [options]"


def main(argv=None):
    """Run the chosen case's writer; returns the exit status (2 for bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(f"{USAGE}\nWrite SYNTHETIC stand-in data (not simulation output) of a science "
              "case; `python -m tfastro.synthetic <case> --help` lists the case's options.")
        return 0
    if not argv or argv[0] not in CASES:
        got = repr(argv[0]) if argv else "nothing"
        print(f"{USAGE}\npython -m tfastro.synthetic: error: expected a case, one of "
              f"{', '.join(CASES)}, got {got}", file=sys.stderr)
        return 2
    return importlib.import_module(f"tfastro.{argv[0]}.synthetic").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
