"""Errors with one message template: what setting, where, allowed values, what was received."""

from __future__ import annotations

from typing import Any


class SettingError(ValueError):
    """A setting has a value regsearch cannot use.

    The message is one line: ``<where>: <setting> must be <allowed>; got <received>.``
    Searches that cannot run because of such an error exit with code 2.
    """

    def __init__(self, setting: str, allowed: str, received: Any, where: str = "") -> None:
        self.setting = setting
        self.allowed = allowed
        self.received = received
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}'{setting}' must be {allowed}; got {received!r}.")


def one_of(values: Any) -> str:
    """Formats allowed values as ``one of 'a', 'b', 'c'``."""
    return "one of " + ", ".join(repr(v) for v in values)


class SearchFailedError(RuntimeError):
    """Every trial of a search failed, so there is no answer to report."""
