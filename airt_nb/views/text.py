"""Small formatting helpers shared by every view and panel: escaping, badges, times, durations.

Times are stored as UTC ISO-8601 text; people read them as local clock time
with how long ago it was beside it (``18:05:03 (3 min ago)``).  Colours are
never written here: a badge is a class (``airt-badge airt-status-FAILED``)
that the theme stylesheet (:mod:`.theme`) colours for the light or dark theme.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..timeutil import to_epoch

if TYPE_CHECKING:
    from ..store.records import ApprovalRecord, WorkflowRecord

__all__ = [
    "TERMINAL",
    "ago",
    "badge",
    "countdown",
    "esc",
    "fmt_duration",
    "fmt_time",
    "one_line",
    "seconds_between",
    "short",
    "stamp",
    "term_safe",
    "where_running",
    "workflow_note",
]

TERMINAL = ("COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED")


def esc(value: Any) -> str:
    r"""``value`` as HTML text, its control and invisible characters shown escaped (:func:`term_safe`):
    a direction override or a carriage return in a message shows as ``\u202e`` / ``\r``, never as
    text that reads otherwise than it is recorded.

    >>> print(esc("<b>go</b>\u202e"))
    &lt;b&gt;go&lt;/b&gt;\u202e
    """
    return html.escape(term_safe(value, newlines=True))


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# Control (C0, DEL, C1), format (bidi overrides and isolates, zero-width characters), line and paragraph
# separators, surrogates and private use: nothing a terminal should be handed from a record as it is.
_HIDDEN = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co"))


def term_safe(value: Any, *, newlines: bool = False) -> str:
    r"""``value`` as text a terminal shows as it is: control and invisible characters escaped.

    Text from a record (an approval's message, a reason, a user name, an error) may come from a
    spec an agent wrote; sent raw, a carriage return, an escape sequence or a bidi override could
    make the person deciding read something other than what is recorded.  Each such character is
    shown escaped (``\r``, ``\x1b``, ``\u202e``); ``newlines=True`` keeps line feeds (for a whole
    output whose lines are intended).  JSON output never goes through this: it stays exact.

    >>> print(term_safe("ok\r\x1b[2Kfake \u202eevil"))
    ok\r\x1b[2Kfake \u202eevil
    >>> print(term_safe("two\nlines", newlines=True))
    two
    lines
    """
    text = "" if value is None else str(value)
    if text.isprintable() or (newlines and text.replace("\n", "").isprintable()):
        return text
    out = []
    for ch in text:
        if ch == "\n" and newlines:
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in _HIDDEN:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def one_line(value: Any) -> str:
    r"""``value`` for one cell of a table: runs of spaces, tabs and line feeds become one space, every
    other control or invisible character is escaped (:func:`term_safe`; a ``\r`` shows as ``\r``).

    >>> print(one_line("two\n  lines\rback"))
    two lines\rback
    """
    text = "" if value is None else str(value)
    return " ".join(term_safe(part) for part in _BLANKS.split(text.strip(" \t\n")))


_BLANKS = re.compile(r"[ \t\n]+")


def badge(status: str, label: str | None = None) -> str:
    """A status label; the theme stylesheet gives each status its colours.

    >>> badge("FAILED")
    '<span class="airt-badge airt-status-FAILED">FAILED</span>'
    """
    return f'<span class="airt-badge airt-status-{esc(status)}">{esc(label or status)}</span>'


def seconds_between(start: str | None, end: str | None, now: float | None = None) -> float | None:
    if not start:
        return None
    stop = to_epoch(end) if end else (datetime.now(UTC).timestamp() if now is None else now)
    return max(0.0, stop - to_epoch(start))


def fmt_duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``, ``3 d 04 h``.

    >>> fmt_duration(245)
    '4 min 05 s'
    """
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600):02d} h"


def fmt_time(text: str | None) -> str:
    """A stored UTC time as local ``HH:MM:SS`` (with the date when it is not today)."""
    if not text:
        return ""
    moment = datetime.fromisoformat(text).astimezone()
    if moment.date() == datetime.now().astimezone().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def ago(text: str | None, now: float | None = None) -> str:
    """How long ago a stored time was: ``just now`` (under a minute), ``3 min ago``, ``2 h ago``, ``4 d ago``
    (``in 3 min`` for a time still to come).

    >>> from airt_nb.timeutil import iso
    >>> ago(iso(1_000_000.0), now=1_000_185.0)
    '3 min ago'
    """
    if not text:
        return ""
    current = datetime.now(UTC).timestamp() if now is None else now
    delta = current - to_epoch(text)
    future = delta < 0
    delta = abs(delta)
    if delta < 60:  # to the second would change a panel's header every second for nothing
        return "just now" if not future else "in less than a minute"
    if delta < 3600:
        amount = f"{int(delta // 60)} min"
    elif delta < 86400:
        amount = f"{int(delta // 3600)} h"
    else:
        amount = f"{int(delta // 86400)} d"
    return f"in {amount}" if future else f"{amount} ago"


def stamp(text: str | None, now: float | None = None) -> str:
    """The absolute and the relative time together: ``18:05:03 (3 min ago)``."""
    if not text:
        return ""
    return f"{fmt_time(text)} ({ago(text, now)})"


def countdown(deadline: str | None, now: float | None = None) -> str:
    """``in 1 h 59 min`` / ``overdue`` / ``no deadline``."""
    if not deadline:
        return "no deadline"
    current = datetime.now(UTC).timestamp() if now is None else now
    left = to_epoch(deadline) - current
    if left <= 0:
        return "overdue (deciding now)"
    if left < 60:
        return f"in {int(left)} s"
    if left < 3600:
        return f"in {int(left // 60)} min {int(left % 60):02d} s"
    if left < 86400:
        return f"in {int(left // 3600)} h {int(left % 3600 // 60):02d} min"
    return f"in {int(left // 86400)} d {int(left % 86400 // 3600)} h"


def short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def workflow_note(record: WorkflowRecord, pending: ApprovalRecord | None) -> str:
    """What a list of workflows says beside one: its pending approval, what it waits for, or its error.

    >>> from types import SimpleNamespace as R
    >>> workflow_note(R(waiting_for=None, error=None), R(step_name="review", message=""))
    "approval 'review'"
    """
    if pending is not None:
        return f"approval {pending.step_name!r}" + (f": {pending.message}" if pending.message else "")
    if record.waiting_for:
        return f"waiting for {record.waiting_for}"
    return record.error or ""


def _pid_host(owner: str) -> str:
    parts = owner.split("|")
    return f"pid {parts[1]} on {parts[0]}" if len(parts) > 1 else owner


def where_running(record: WorkflowRecord, own_owner: str | None) -> str:
    """Where a workflow runs now: ``here``, ``<notebook> · pid 4711 on host``, or ``""`` (nobody runs it).

    The notebook (``session``) or folder (``workdir``) comes from the workflow's
    record when it carries one; the process from the lease holder.
    """
    owner = record.lease_owner
    if not owner:
        return ""
    if owner == own_owner:
        return "here"
    origin = getattr(record, "session", None) or getattr(record, "workdir", None)
    return f"{origin} · {_pid_host(owner)}" if origin else _pid_host(owner)
