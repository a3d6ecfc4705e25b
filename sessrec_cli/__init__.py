"""sessrec: session-based and sequential recommendation from the command line."""

__version__ = "0.1.0"
