"""Errors raised for bad user input (reported without a traceback by run.py)."""



class UserInputError(ValueError):
    """A file, flag or argument does not hold what was expected.

    The message names the offending file/flag/argument and what was expected.
    """
