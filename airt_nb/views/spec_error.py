"""A refused spec shown next to its YAML: one block, indentation kept, each faulty line marked.

Line numbers are the cell's own when the magic's line is given (``header``):
the YAML's line 1 is the cell's line 2.  A problem placed past the last line
(a parser reaching the end of the text) is shown on the last line; a problem
that names a column (``column 14``) gets a caret under that column, else
under the line's first character.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import re

from ..errors import SpecError
from .text import esc
from .theme import stylesheet

__all__ = ["SpecErrorView"]

_COLUMN = re.compile(r"\bcolumn (\d+)\b")


class SpecErrorView:
    """A :class:`~airt_nb.SpecError` next to the YAML it refers to.

    >>> view = SpecErrorView(SpecError([(2, "steps", "is required")]), "name: x\\n", header="%%workflow")
    >>> print(repr(view).splitlines()[0])
    Spec error: 1 problem, nothing was run
    """

    context_lines = 3

    def __init__(self, error: SpecError, source: str, *, header: str | None = None):
        self.error = error
        self.header = header
        self.lines = ([header] if header is not None else []) + source.splitlines()
        self.offset = 1 if header is not None else 0
        self.by_line: dict[int, list[tuple[str, int | None]]] = {}
        self.general: list[str] = []
        last = len(self.lines)
        for line, field, message in error.problems:
            text = f"{field}: {message}" if field else message
            if line is None or last == 0:
                self.general.append(text)
                continue
            number = min(max(line + self.offset, 1 + self.offset), last)
            found = _COLUMN.search(message)
            column = int(found.group(1)) if found and number == line + self.offset else None
            self.by_line.setdefault(number, []).append((text, column))

    def _shown(self) -> list[int]:
        """Line numbers to show: everything when short, else windows around the problems."""
        if len(self.lines) <= 40 or not self.by_line:
            return list(range(1, len(self.lines) + 1))
        keep: set[int] = set(range(1, self.offset + 1))
        for line in self.by_line:
            keep.update(range(max(1, line - self.context_lines), min(len(self.lines), line + self.context_lines) + 1))
        return sorted(keep)

    def title(self) -> str:
        name = f" in workflow {self.error.workflow!r}" if self.error.workflow else ""
        count = len(self.error.problems)
        return f"Spec error{name}: {count} problem{'s' if count != 1 else ''}, nothing was run"

    def _caret(self, number: int, column: int | None) -> int:
        if column is not None:
            return max(0, column - 1)
        text = self.lines[number - 1]
        return len(text) - len(text.lstrip())

    def _listing(self) -> list[tuple[str, int | None, str]]:
        """``(kind, number, text)`` rows: ``code``, ``gap`` and ``note`` (text after the caret's indent)."""
        rows: list[tuple[str, int | None, str]] = []
        previous = 0
        for number in self._shown():
            if number != previous + 1:
                rows.append(("gap", None, "⋮"))
            rows.append(("code", number, self.lines[number - 1]))
            for text, column in self.by_line.get(number, []):
                rows.append(("note", number, " " * self._caret(number, column) + "^ " + text))
            previous = number
        return rows

    def __repr__(self) -> str:
        width = len(str(len(self.lines)))
        out = [self.title()]
        for kind, number, text in self._listing():
            if kind == "code":
                mark = ">" if number in self.by_line else " "
                out.append(f"{mark}{number:>{width}} | {text}")
            else:
                out.append(f" {'':>{width}} | {text}")
        out += [f"  {text}" for text in self.general]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        width = len(str(len(self.lines)))
        rows = []
        for kind, number, text in self._listing():
            if kind == "code":
                gutter = f"{number:>{width}} │ "
                code = esc(text) or " "
                if number in self.by_line:
                    code = f'<span class="airt-bad">{code}</span>'
                elif number is not None and number <= self.offset:
                    code = f'<span class="airt-ln">{code}</span>'
                rows.append(f'<span class="airt-ln">{gutter}</span>{code}')
            elif kind == "gap":
                rows.append(f'<span class="airt-ln">{"":>{width}} ⋮</span>')
            else:  # the caret's indent, then the note, whose wrapped lines stay under the caret
                note = text.lstrip(" ")
                indent = " " * (len(text) - len(note))
                rows.append(
                    f'<span class="airt-ln">{"":>{width}} │ </span>{indent}<span class="airt-note">{esc(note)}</span>'
                )
        general = "".join(f"<li>{esc(text)}</li>" for text in self.general)
        return (
            f'<div class="airt-root airt-spec-error">{stylesheet()}'
            f'<div class="airt-spec-title">{esc(self.title())}</div>'
            f'<pre class="airt-source">{chr(10).join(rows)}</pre>'
            + (f'<ul class="airt-problems">{general}</ul>' if general else "")
            + "</div>"
        )
