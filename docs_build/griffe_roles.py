"""A griffe extension: Sphinx roles in the package's docstrings become Markdown for the site.

The docstrings are written for ``help()`` and Sphinx-style readers
(:class:`~airt_nb.Engine`, :meth:`Engine.start <airt_nb.Engine.start>`); on the
site they become code spans, linked when the target is an object the reference
documents (an unresolved link would fail the strict build).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
ROOT = Path(__file__).resolve().parents[1]


def _documented() -> set[str]:
    import importlib
    import inspect

    from docs_build.reference import documented_objects

    found = set()
    for path in documented_objects(ROOT / "docs" / "reference"):
        found.add(path)
        module, _, name = path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if inspect.isclass(obj):
            found |= {f"{path}.{m}" for m in vars(obj) if not m.startswith("_")}
    return found


class SphinxRoles(griffe.Extension):
    def __init__(self) -> None:
        super().__init__()
        self.documented = _documented()

    def _convert(self, match: re.Match[str]) -> str:
        tilde, text, target = match.group(1), match.group(2).strip(), match.group(3)
        target = (target or text).strip()
        shown = target.rsplit(".", 1)[-1] if tilde and not match.group(3) else text
        if target in self.documented:
            return f"[`{shown}`][{target}]"
        return f"`{shown}`"

    def on_object(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(self._convert, obj.docstring.value)
