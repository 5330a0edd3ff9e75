"""Who is acting: ``by=`` if given, else ``AIRT_USER``, ``JUPYTERHUB_USER``, the OS user."""

from __future__ import annotations

import getpass
import os

__all__ = ["current_user"]


def current_user(explicit: str | None = None) -> str:
    """The name decisions and starts are recorded under.

    >>> current_user("ann")
    'ann'
    """
    if explicit:
        return explicit
    for var in ("AIRT_USER", "JUPYTERHUB_USER"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still someone
        return f"uid-{os.getuid()}"
