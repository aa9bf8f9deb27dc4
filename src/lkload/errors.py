"""Errors that end a command with a one-line message instead of a traceback."""


class UsageError(Exception):
    """Bad input from the user (scenario, config, URL, credentials, flags): exit code 2.

    The message is one line that names what is wrong and how to fix it.
    """


class TargetUnreachable(UsageError):
    """The LiveKit server could not be reached or refused the credentials."""
