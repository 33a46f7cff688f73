"""The one exception type the CLI turns into a one-line error with exit code 2."""


class GenreTorchError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it."""
