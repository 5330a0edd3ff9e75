"""How a failure is described, and the signal that stops an engine executing a workflow.

Imports nothing of airt_nb.
"""

from __future__ import annotations

import traceback

__all__ = ["Abandon", "format_error", "format_traceback"]


class Abandon(Exception):
    """This engine must stop executing the workflow (its lease was lost, or it is closing)."""


def format_error(exc: BaseException) -> str:
    """``"ValueError: bad"``: the exception's type and text, on one line for tables.

    >>> format_error(ValueError("bad"))
    'ValueError: bad'
    """
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ fails (or returns no text) still fails its step
        text = "<its text could not be read: its __str__ failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_traceback(exc: BaseException) -> str:
    """The whole traceback, kept with the failure so that its cause can be read later."""
    try:
        return "".join(traceback.format_exception(exc)).strip()
    except Exception:  # a broken exception object: what can be said of it
        return format_error(exc)
