"""User-facing errors: raised for mistakes a person can fix; the CLI prints them without a traceback."""


class UserError(Exception):
    """A mistake in the user's input (file, flag, port...). The message says what is wrong and how to fix it."""

    exit_code = 2
