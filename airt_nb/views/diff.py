"""Two runs side by side: the steps whose status, inputs or outputs differ (``airt_nb.diff``).

The frame (:func:`airt_nb.frames.diff`) holds the values; this module draws
them: one row per step that differs, run *a*'s value beside run *b*'s,
the cells that differ marked, and a heading naming both runs (and the fork
between them, when one is the other's fork).

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .text import badge, esc, short
from .theme import stylesheet

__all__ = ["FIELDS", "diff_html", "diff_text"]

#: what is compared, in the order shown
FIELDS = ("status", "inputs", "outputs")


def _value(value: Any, limit: int = 300) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(field: str, value: Any, changed: bool) -> str:
    mark = ' class="airt-diff-changed" style="background:var(--jp-warn-color3,#fff3e0)"' if changed else ""
    if field == "status":
        inner = badge(str(value)) if value else '<span class="airt-muted">no such step</span>'
    else:
        inner = f"<code>{esc(_value(value))}</code>"
    return f"<td{mark}>{inner}</td>"


def _heading(a: str, b: str, relation: str | None, shown: int, total: int) -> str:
    rel = f" ({relation})" if relation else ""
    if not shown:
        return f"runs <code>{esc(a)}</code> and <code>{esc(b)}</code>{esc(rel)}: no step differs ({total} compared)"
    return (
        f"{shown} of {total} steps differ between run a <code>{esc(a)}</code> and run b <code>{esc(b)}</code>{esc(rel)}"
    )


def diff_html(a: str, b: str, rows: Sequence[dict[str, Any]], *, total: int, relation: str | None = None) -> str:
    """The differing steps as a table; ``rows`` have ``step_name``, ``changed`` and ``FIELD_a`` / ``FIELD_b``."""
    head = "".join(f"<th>{f} (a)</th><th>{f} (b)</th>" for f in FIELDS)
    body = []
    for row in rows:
        changed = set(row.get("changed") or ())
        cells = "".join(_cell(f, row.get(f"{f}_{side}"), f in changed) for f in FIELDS for side in ("a", "b"))
        body.append(f"<tr><td><b>{esc(row['step_name'])}</b></td>{cells}</tr>")
    table = (
        f'<table class="airt-diff"><thead><tr><th>step</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        if body
        else ""
    )
    return (
        f'<div class="airt-root airt-panel airt-diff-view">{stylesheet()}'
        f'<div class="airt-header" style="margin-bottom:4px">{_heading(a, b, relation, len(rows), total)}</div>'
        f"{table}</div>"
    )


def diff_text(a: str, b: str, rows: Sequence[dict[str, Any]], *, total: int, relation: str | None = None) -> str:
    """The same as text: one block per differing step, ``a`` and ``b`` values on their own lines."""
    rel = f" ({relation})" if relation else ""
    if not rows:
        return f"runs {a} and {b}{rel}: no step differs ({total} compared)"
    lines = [f"{len(rows)} of {total} steps differ between run a {a} and run b {b}{rel}"]
    for row in rows:
        lines.append(f"  {row['step_name']}: {', '.join(row.get('changed') or ())}")
        for f in row.get("changed") or ():
            lines.append(f"    {f:<8} a: {short(_value(row.get(f + '_a')), 90)}")
            lines.append(f"    {'':<8} b: {short(_value(row.get(f + '_b')), 90)}")
            if f == "status":  # why a run's step failed is the first thing one compares runs for
                for side in ("a", "b"):
                    error = row.get(f"error_{side}")
                    if isinstance(error, str) and error:
                        lines.append(f"    {'error':<8} {side}: {short(error, 90)}")
    return "\n".join(lines)
