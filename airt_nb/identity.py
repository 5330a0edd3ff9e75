"""Who is acting: ``by=`` if given, else ``AIRT_USER``, ``JUPYTERHUB_USER``, the OS user.

Every name that is recorded as a person (who started, decided, cancelled,
sent) goes through :func:`check_name`: text, not blank, at most
:data:`MAX_NAME` characters, nothing invisible, and not the name reserved for
what the engine decides itself.
"""

from __future__ import annotations

import getpass
import os
import unicodedata

from .errors import PolicyError

__all__ = ["MAX_NAME", "SYSTEM", "check_name", "current_user", "name_problem"]

#: the name under which the engine records what it decides itself (a deadline's decision)
SYSTEM = "system"
#: the longest name of a person (characters)
MAX_NAME = 200

# Control characters, and the invisible ones (zero-width spaces, direction overrides...): a name
# with them prints like another name, or rewrites the line it is printed on.
_HIDDEN = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def check_name(value: object, what: str = "by=") -> str:
    """``value`` as the name of a person (surrounding spaces removed), or :class:`~airt_nb.PolicyError`
    saying what is wrong with it; ``what`` names where it came from in the message.

    >>> check_name("  ann ")
    'ann'
    >>> check_name("ann\\u200b")
    Traceback (most recent call last):
    ...
    airt_nb.errors.PolicyError: by='ann\\u200b' contains U+200B (an invisible or control character); give the name as plain text
    """
    problem = name_problem(value)
    if problem is not None:
        shown = "" if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME else repr(value.strip())
        raise PolicyError(f"{what}{shown} {problem}" if shown else f"{what} {problem}", user=None)
    return str(value).strip()


def name_problem(value: object) -> str | None:
    """What makes ``value`` unusable as a person's name (``"is empty; ..."``), or None.

    >>> name_problem("SYSTEM")
    "is reserved for what the engine decides itself (a deadline's decision); act under your own name"
    """
    if not isinstance(value, str):
        return f"must be a person's name as text, not {type(value).__name__}"
    name = value.strip()
    if not name:
        return "is empty; give the name of a person"
    if len(name) > MAX_NAME:
        return f"is {len(name):,} characters long; a name has at most {MAX_NAME}"
    for ch in name:
        if unicodedata.category(ch) in _HIDDEN:
            return f"contains U+{ord(ch):04X} (an invisible or control character); give the name as plain text"
    if name.casefold() == SYSTEM:
        return "is reserved for what the engine decides itself (a deadline's decision); act under your own name"
    return None


def current_user(explicit: str | None = None) -> str:
    """The name decisions and starts are recorded under (checked by :func:`check_name`).

    >>> current_user("ann")
    'ann'
    """
    if explicit is not None and explicit != "":
        return check_name(explicit, "user=")
    for var in ("AIRT_USER", "JUPYTERHUB_USER"):
        value = os.environ.get(var, "").strip()
        if value:
            return check_name(value, f"{var}=")
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry (containers): still someone
        return f"uid-{os.getuid()}"
    try:
        return check_name(name, "the login name ")
    except PolicyError:  # not usable as recorded: the account's number still names it
        return f"uid-{os.getuid()}"
