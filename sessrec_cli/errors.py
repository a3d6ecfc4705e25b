"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class InputError(Exception):
    """Bad user input: a file, a line or a field that is not what was expected.

    The message names the place (file, line, field) and what was expected, on one line.
    """
