""" "Did you mean ...?": the nearest known names to a misspelt one.

A pure function, for the messages that name something unknown (an action,
a key of the spec, a step in ``depends_on`` or ``${{ steps.X }}``).  Close
means what a typo does: a letter missing, added, swapped or replaced; a
name that merely shares a prefix with many others suggests nothing.

Imports only the standard library.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "nearest"]


def nearest(name: str, known: Iterable[str], *, limit: int = 2, cutoff: float = 0.75) -> list[str]:
    """The known names closest to ``name``, best first (none when nothing is close).

    Case is ignored when comparing; names differing only in case come first.

    >>> nearest("file.wrte", ["file.write", "file.delete", "wait"])
    ['file.write']
    >>> nearest("deploy", ["wait", "file.copy"])
    []
    """
    names = [k for k in dict.fromkeys(known) if k != name]
    exact = [k for k in names if k.lower() == name.lower()]
    by_lower: dict[str, str] = {}
    for k in names:
        by_lower.setdefault(k.lower(), k)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=limit, cutoff=cutoff)
    found = exact + [by_lower[c] for c in close if by_lower[c] not in exact]
    return found[:limit]


def did_you_mean(name: str, known: Iterable[str], *, limit: int = 2) -> str:
    """``"did you mean `file.write`?"`` (or ``"did you mean `a` or `b`?"``), else ``""``.

    >>> did_you_mean("acton", ["name", "action", "inputs"])
    'did you mean `action`?'
    """
    found = nearest(name, known, limit=limit)
    if not found:
        return ""
    return "did you mean " + " or ".join(f"`{f}`" for f in found) + "?"
