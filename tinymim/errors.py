"""The root of every error tinymim raises on purpose.

Each package has its own small hierarchy below ``TinymimError`` (compress.errors, export.errors,
serve.errors). The CLI catches ``TinymimError`` and prints its message without a traceback; anything
else is a bug and keeps its traceback.
"""


class TinymimError(Exception):
    """An error with a message meant for the user: what was wrong and what to do."""

    exit_code = 1


class ConfigError(TinymimError):
    """A configuration key, type or value is invalid; raised before any work starts."""

    exit_code = 2
