"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (a file, a field, a value); the message says which and why."""

    exit_code = 2
