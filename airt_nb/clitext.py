"""What the ``airt`` command prints: tables for people, approvals with their preview, records as JSON.

Plain functions of the store's records (no engine, no argument parsing), so
that :mod:`airt_nb.cli` stays the commands themselves.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from .fields import describe_field
from .store.records import ApprovalRecord, DecisionRecord, StepRecord, WorkflowRecord
from .timeutil import to_epoch
from .views.approval_html import preview_text
from .views.text import one_line, term_safe

__all__ = [
    "approval_json",
    "approval_text",
    "decoded",
    "duration",
    "event_json",
    "event_text",
    "fit",
    "hanging",
    "indent",
    "safe_lines",
    "table",
    "terminal_width",
    "when",
    "workflow_json",
]


def approval_text(
    a: ApprovalRecord, rec: WorkflowRecord, decisions: list[DecisionRecord], *, airt: str = "airt"
) -> list[str]:
    """``show``'s lines of an approval; ``airt`` starts the commands it suggests (``airt --db PATH``)."""
    context = json.loads(a.context) if a.context else {}
    mine = [d for d in decisions if d.approval_id == a.approval_id]
    if a.status != "PENDING":
        reason = f" ({term_safe(a.reason)})" if a.reason else ""
        lines = [
            hanging(
                [
                    f"approval {a.approval_id} (step {a.step_name!r}): {a.status} by {term_safe(a.decided_by)}"
                    f"{_proof(a.auth)} at {when(a.decided_at)} UTC{reason}"
                ],
                4,
            )
        ]
        if a.values:
            lines.append(f"  {'values':<12}" + ", ".join(f"{k}={json.dumps(v)}" for k, v in a.values.items()))
        if len(mine) > 1 or a.min_approvals > 1:
            lines += decision_lines(mine)
        return lines
    lines = [f"pending approval {a.approval_id} (step {a.step_name!r})"]
    if a.gate_step:
        lines.append(f"  asked again: step {a.step_name!r} did not run; its approval of step {a.gate_step!r} "
                     "no longer matches what it would do")  # fmt: skip
    outcome = "approved" if a.on_timeout == "approve" else "rejected"
    deadline = f"{when(a.deadline)} UTC, then {outcome} automatically" if a.deadline else "none"
    lines += [
        f"  {'message':<12}{safe_lines(a.message, 14) if a.message else '(none)'}",
        f"  {'approvers':<12}{term_safe(', '.join(a.approver_list)) or 'anyone'}",
        f"  {'requested':<12}{when(a.requested_at)} UTC",
        f"  {'deadline':<12}{deadline}",
    ]
    depends = context.get("depends_on") or {}
    if depends:
        lines.append("  outputs it follows:")
        lines += [f"    {step}: {json.dumps(out, default=str)}" for step, out in depends.items()]
    undo = context.get("undo") or []
    lines.append("  a rejection would undo (newest first):" if undo else "  a rejection would undo nothing")
    lines += [f"    {u['step']} ({u['action']}) {json.dumps(u.get('inputs'), default=str)}" for u in undo]
    if context.get("not_undone"):
        lines.append(f"  completed, cannot be undone: {', '.join(context['not_undone'])}")
    preview = preview_text(a)
    if preview:
        lines.append("  what it lets run, as it would run now:")
        lines += preview
    fields = a.field_specs
    if fields:
        lines.append("  fields (approved so far):" if a.values is not None else "  fields:")
        for name, spec in fields.items():
            shown = f" = {json.dumps(a.values.get(name))}" if a.values is not None else ""
            # The description is what the notebook card shows after the type: often the only word on
            # what the value means ("pods after the change").
            about = f" · {one_line(spec['description'])}" if spec.get("description") else ""
            lines.append(f"    {name}{shown}  ({describe_field(spec)}){about}")
    if a.min_approvals > 1:
        lines.append(f"  {'approvals':<12}{a.approved_count} of {a.min_approvals}")
        lines += decision_lines(mine)
    rules = [("exclude_requester", "who started the workflow may not decide"),
             ("authenticated", "only authenticated decisions (the approvals page, JupyterHub, PostgreSQL roles)")]  # fmt: skip
    lines += [f"  {'rule':<12}{text}" for flag, text in rules if getattr(a, flag)]
    example = " ".join(f"--value {n}=..." for n, s in fields.items() if s.get("required", True) and "default" not in s)
    if a.values is not None:
        example = ""  # a first approval fixed them: later approvers confirm them by approving
    if fields and not example and a.values is None:
        # Every field has a default (or is optional): the plain command works, but the approver may
        # set them, which a hint without --value would hide.  Once a first approval fixed the values
        # (a.values), later approvers cannot change them: no hint then.
        example = "[--value NAME=VALUE ...]"
    lines += [
        f"  decide: {airt} approve {rec.workflow_id} {example + ' ' if example else ''}--reason ...",
        f"      or: {airt} reject {rec.workflow_id} --reason ...",
    ]
    return lines


# What a wait_event step's deadline does, by its on_timeout (see airt_nb.wait_events).
_EVENT_TIMEOUT = {
    "fail": "then the step fails and what was done is rolled back",
    "continue": 'then the step completes with {"timed_out": true}',
}


def event_text(
    workflow_id: str, step: StepRecord, event: str, on_timeout: str | None, *, airt: str = "airt"
) -> list[str]:
    """A ``wait_event`` step that waits, for ``show``: the event, its deadline, and the command that
    sends it (as an approval's ``decide:`` line, and as the notebook panel says it).

    >>> from types import SimpleNamespace as S
    >>> print("\\n".join(event_text("4f2a", S(step_name="ci", next_attempt_at=None), "ci.done", None)))
    waiting for event ci.done (step 'ci')
      send it: airt send 4f2a ci.done --data '{...}'
    """
    lines = [f"waiting for event {term_safe(event)} (step {step.step_name!r})"]
    if step.next_attempt_at:  # a waiting event step keeps its deadline there
        then = _EVENT_TIMEOUT.get(on_timeout or "fail", f"then on_timeout: {term_safe(on_timeout)}")
        lines.append(f"  {'deadline':<12}{when(step.next_attempt_at)} UTC, {then}")
    lines.append(f"  send it: {airt} send {workflow_id} {term_safe(event)} --data '{{...}}'")
    return lines


def event_json(step: StepRecord, event: str, on_timeout: str | None) -> dict[str, Any]:
    return {
        "step_name": step.step_name,
        "event": event,
        "deadline": step.next_attempt_at,
        "on_timeout": (on_timeout or "fail") if step.next_attempt_at else None,
    }


def _proof(auth: str | None) -> str:
    """`` [database]``: how a decider's name was established, so that a name only typed (asserted)
    does not read like one proven by a login or a database role."""
    return f" [{term_safe(auth)}]" if auth else ""


def decision_lines(decisions: list[DecisionRecord]) -> list[str]:
    return [
        "    "
        + hanging(
            [
                f"{d.decision.lower()} by {term_safe(d.decided_by)} at {when(d.decided_at)} UTC"
                + (f" ({term_safe(d.reason)})" if d.reason else "")
                + _proof(d.auth)
            ],
            6,
        )
        for d in decisions
    ]


def workflow_json(r: WorkflowRecord) -> dict[str, Any]:
    data = decoded(asdict(r), "inputs", "warnings")
    data.pop("spec", None)
    data["warnings"] = data["warnings"] or []
    return data


def approval_json(a: ApprovalRecord | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return decoded(asdict(a), "context", "approvers", "fields", "field_values", "preview", "escalate_to")


def decoded(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        if isinstance(data.get(key), str):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    return data


def when(text: str | None) -> str:
    return text[:19].replace("T", " ") if text else ""


def duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    seconds = max(0.0, to_epoch(end) - to_epoch(start))
    return f"{seconds:.2f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


# The width of a table when the output is not a terminal (a pipe, a file) and COLUMNS is not set:
# wide enough for a log or a pager, narrow enough that a row is not a screenful.
UNBOUNDED_WIDTH = 160
# A column that may shrink to fit the terminal keeps at least this many characters (or its header's).
MIN_FREE_WIDTH = 8


def terminal_width() -> int:
    """The columns tables are fitted to: ``$COLUMNS``, else the terminal's, else :data:`UNBOUNDED_WIDTH`.

    :func:`shutil.get_terminal_size` reads ``$COLUMNS`` first, then the terminal of stdout; when stdout
    is not a terminal it answers the fallback.
    """
    columns = shutil.get_terminal_size((UNBOUNDED_WIDTH, 24)).columns
    return columns if columns > 0 else UNBOUNDED_WIDTH


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    max_width: int = 60,
    *,
    free: Sequence[str] = (),
    width: int | None = None,
) -> str:
    """Rows under their headers, no cell wider than ``max_width`` (cut with "…").

    The columns named in ``free`` (free text: names, notes, errors) are then cut further, the widest
    first, until the lines fit ``width`` (default :func:`terminal_width`), none below
    :data:`MIN_FREE_WIDTH` or its header; the other columns (ids, statuses, dates) are never cut, so a
    table may stay wider than a very narrow terminal.
    """
    cells = [[_cell(c, max_width) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if free:
        fitted = _fit(headers, widths, free, terminal_width() if width is None else width)
        if fitted != widths:
            widths = fitted
            cells = [[_cut(c, w) for c, w in zip(r, widths, strict=True)] for r in cells]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(out)


def _fit(headers: Sequence[str], widths: list[int], free: Sequence[str], width: int) -> list[int]:
    """``widths`` with the ``free`` columns narrowed, the widest first, until a line fits ``width``."""
    widths = list(widths)
    floors = {i: max(len(h), MIN_FREE_WIDTH) for i, h in enumerate(headers) if h in free}
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        can = [i for i, floor in floors.items() if widths[i] > floor]
        if not can:
            break
        widest = max(can, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def _cell(value: str, max_width: int) -> str:
    return _cut(one_line(value), max_width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def safe_lines(text: str, hang: int, width: int | None = None) -> str:
    r"""A multi-line text (an approval's message) for the terminal after a label ``hang`` columns wide:
    each line escaped (:func:`term_safe`), then :func:`hanging`.

    >>> print("  message   " + safe_lines("deploy build 7 to prod\nthen warm the cache", 12, width=40))
      message   deploy build 7 to prod
                then warm the cache
    """
    return hanging([term_safe(line) for line in str(text).split("\n")], hang, width)


def hanging(lines: Sequence[str], hang: int, width: int | None = None) -> str:
    """``lines`` (escaped already) after a label ``hang`` columns wide: each wrapped to ``width``
    (default :func:`terminal_width`) and every line after the first indented by ``hang``, so that a
    long line neither runs back to the left edge (where it could pass for a line of its own) nor is
    cut.  A line's own leading spaces are kept on the lines it wraps to.

    >>> print("  error     " + hanging(["step b failed: the file out/report.csv is missing"], 12, width=40))
      error     step b failed: the file
                out/report.csv is missing
    """
    room = max((terminal_width() if width is None else width) - hang, MIN_FREE_WIDTH * 2)
    out: list[str] = []
    for line in lines:
        if len(line) <= room:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        wrapper = textwrap.TextWrapper(room, subsequent_indent=lead, break_on_hyphens=False, expand_tabs=False)
        out += wrapper.wrap(line) or [line]
    return ("\n" + " " * hang).join(out)


def fit(lines: Iterable[str], width: int | None = None) -> list[str]:
    """``lines`` (an entry may hold several) with each one longer than ``width`` (default :func:`terminal_width`) wrapped, the
    lines it wraps to indented four columns deeper than it, so that they read as its continuation.

    >>> fit(["  a: {'path': '/srv/data/reports/2026/q4/summary.csv'}"], width=50)
    ["  a: {'path':", "      '/srv/data/reports/2026/q4/summary.csv'}"]
    """
    width = terminal_width() if width is None else width
    out: list[str] = []
    for line in (part for entry in lines for part in entry.split("\n")):
        if len(line) <= width or _COMMAND_LINE.match(line):
            out.append(line)  # a command to copy stays on one line, however long
            continue
        deeper = " " * (len(line) - len(line.lstrip(" ")) + 4)
        room = max(width, len(deeper) + MIN_FREE_WIDTH * 2)
        # A `command` in a sentence is never broken across lines either: its spaces do not wrap, and it is
        # not cut when longer than the line.
        held = _QUOTED_COMMAND.sub(lambda m: m.group(0).replace(" ", _UNBROKEN), line)
        wrapper = textwrap.TextWrapper(
            room,
            subsequent_indent=deeper,
            break_on_hyphens=False,
            expand_tabs=False,
            break_long_words=held == line,
        )
        out += [part.replace(_UNBROKEN, " ") for part in wrapper.wrap(held)] or [line]
    return out


# The suggested commands show prints on lines of their own (decide:, or:, send it:).
_COMMAND_LINE = re.compile(r"^\s*(?:decide|or|send it): airt ")
_QUOTED_COMMAND = re.compile(r"`airt [^`]*`")
_UNBROKEN = "\x00"


def indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]
