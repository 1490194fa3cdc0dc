"""The base of every error meant for a user (bad input, bad config, missing files).

The CLI prints these as one clean message and exits with code 2; anything else is a bug and keeps
its traceback. Library modules raise subclasses that also derive from the matching built-in
(ValueError, RuntimeError), so library callers can catch them the ordinary way.
"""
from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what is wrong and how to fix it."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)
