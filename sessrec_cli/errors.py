"""The exception types that the CLI turns into a one-line message: bad input (exit code 2)
and a training run that failed on its own (exit code 1)."""


class InputError(Exception):
    """Bad user input: a file, a line or a field that is not what was expected.

    The message names the place (file, line, field) and what was expected, on one line.
    """


class TrainingError(Exception):
    """Training stopped because it went wrong, not because of its input (e.g. a NaN loss).

    The message names the epoch, the step and what failed, and where the last good checkpoint is.
    """
