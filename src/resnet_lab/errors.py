"""The one exception type that means "the user asked for something impossible"."""


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with status 2.

    The message must say what is wrong and how to fix it.
    """
