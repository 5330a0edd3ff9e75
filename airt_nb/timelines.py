"""Timelines: a Gantt-style picture of runs, to look at rather than read.

One row per step; bars for the attempt that counted, failed attempts before
it and the back-off waits between them, attempts interrupted because their
engine stopped (followed by the gap until another engine ran the step
again), approval waits (request to decision), and compensations (the undo of
a completed step, drawn from when the rollback reached it to when it
finished; the store records when an undo finished, so its start is the end
of whatever happened just before).  Moments of the run's history (an engine
lost, the run resumed, a cancel or a rollback asked for) are marked across
its lane.

Each lane is labelled with the workflow's name and, when several lanes share
a name, the inputs that tell them apart; the legend lists every colour drawn.
Rendered as inline SVG (no browser plugin, no script) coloured by the theme's
variables, with a text version for terminals; ``Timeline.segments`` and
``Timeline.marks`` hold the same data for analysis.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .store import Store, opened
from .timeutil import to_epoch
from .views.run import optional_rows
from .views.timeline import MARKS, Lane, Mark, Segment, Timeline
from .workflow_ids import resolve_workflow_id

__all__ = ["Lane", "Mark", "Segment", "Timeline", "timeline"]


def timeline(workflow_ids: Any, db: Any = None, *, relative: bool | None = None) -> Timeline:
    """The timeline of one or more workflows (ids, id prefixes or ``Run`` objects).

    ``db`` is an Engine, a store or a database path (default: the kernel's
    engine, else ``$AIRT_DB`` or ``./airt.db``).  ``relative=True`` starts every
    workflow at 0 (compare runs); the default draws several workflows on one
    clock (see what ran at the same time).

    Examples
    --------
    >>> airt_nb.timeline([run_a, run_b])   # doctest: +SKIP
    """
    if isinstance(workflow_ids, str) or not isinstance(workflow_ids, Iterable):
        workflow_ids = [workflow_ids]
    ids = [getattr(w, "id", w) for w in workflow_ids]
    with _store(db) as store:
        now = datetime.now(UTC).timestamp()
        lanes, segments, marks = [], [], []
        for workflow_id in ids:
            lane, segs, lane_marks = _collect(store, _resolve(store, workflow_id), now)
            lanes.append(lane)
            segments += segs
            marks += lane_marks
    return Timeline(lanes, segments, relative=bool(relative), marks=marks)


def _store(db: Any) -> contextlib.AbstractContextManager[Store]:
    if db is None:  # the kernel's engine if one is open, else $AIRT_DB or ./airt.db
        from . import session

        db = session.current()
    return opened(db, must_exist=False)


def _resolve(store: Store, workflow_id: str) -> str:
    return resolve_workflow_id(store, workflow_id)


def _collect(store: Store, workflow_id: str, now: float) -> tuple[Lane, list[Segment], list[Mark]]:
    record = store.workflow(workflow_id)
    assert record is not None
    steps = store.steps(workflow_id)
    attempts = optional_rows(store, "step_attempts", workflow_id)
    events = optional_rows(store, "workflow_events", workflow_id)
    approvals = store.approvals(workflow_id=workflow_id)
    out: list[Segment] = []

    def add(step: str, kind: str, status: str, start: str | None, end: str | None, label: str) -> None:
        if not start:
            return
        a = to_epoch(start)
        b = to_epoch(end) if end else now
        out.append(Segment(workflow_id, step, kind, status, a, max(a, b), label, open=end is None))

    for s in steps:
        tries = sorted(
            (a for a in attempts if a.get("step_name") == s.step_name),
            key=lambda a: (a.get("attempt") or 0, a.get("started_at") or ""),
        )
        final = s.attempt if s.status != "RETRYING" else s.attempt + 1
        previous_end: str | None = None
        interrupted_end: str | None = None
        for a in tries:
            number, status = a.get("attempt") or 0, a.get("status") or "FAILED"
            if status == "INTERRUPTED":
                # the attempt ran until its engine stopped; the next start is another engine taking it up
                label = f"attempt {number} interrupted: its engine stopped, the step ran again"
                add(s.step_name, "interrupted", "INTERRUPTED", a.get("started_at"), a.get("finished_at"), label)
                interrupted_end = a.get("finished_at")
                continue
            if number >= final:
                continue
            if previous_end:
                add(s.step_name, "backoff", "RETRYING", previous_end, a.get("started_at"), "waiting to retry")
            error = a.get("error") or ""
            add(
                s.step_name,
                "attempt",
                status,
                a.get("started_at"),
                a.get("finished_at"),
                f"attempt {number} failed: {error}",
            )
            previous_end = a.get("finished_at")
        if s.type == "human_approval":
            for ap in approvals:
                if ap.step_name == s.step_name:
                    who = f" by {ap.decided_by}" if ap.decided_by else ""
                    add(s.step_name, "approval", ap.status, ap.requested_at, ap.decided_at, f"{ap.status.lower()}{who}")
            continue
        if s.status == "RETRYING":
            add(s.step_name, "backoff", "RETRYING", previous_end, s.next_attempt_at, "waiting to retry")
            continue
        if previous_end and s.started_at and not interrupted_end:
            add(s.step_name, "backoff", "RETRYING", previous_end, s.started_at, "waiting to retry")
        if s.started_at and s.status not in ("PENDING", "SKIPPED"):
            shown = "COMPLETED" if s.status.startswith("COMPENSAT") else s.status
            end = s.finished_at if s.status != "RUNNING" else None
            label = f"{s.status.lower()}, attempt {s.attempt}" + (f": {s.error}" if s.error else "")
            add(s.step_name, "step", shown, s.started_at, end, label)

    done = sorted((c for c in store.compensations(workflow_id) if c.executed_at), key=lambda c: c.executed_at or "")
    if done:
        first = to_epoch(done[0].executed_at or "")
        before = [seg.end for seg in out if seg.end <= first and not seg.open]
        undo_start = max(before, default=first)
        for c in done:
            undo_end = to_epoch(c.executed_at or "")
            label = f"undo {c.action}: {c.status.lower()}" + (f" ({c.error})" if c.error else "")
            out.append(
                Segment(workflow_id, c.step_name, "compensation", c.status, min(undo_start, undo_end), undo_end, label)
            )
            undo_start = undo_end
    marks = []
    for event in events:
        kind = str(event.get("event"))
        if kind in MARKS and event.get("at"):
            who = event.get("detail") or event.get("by") or ""
            text = MARKS[kind][1] + (f": {who}" if who else "")
            marks.append(Mark(workflow_id, kind, to_epoch(str(event["at"])), text))
    try:
        inputs = tuple(sorted((json.loads(record.inputs) or {}).items()))
    except (TypeError, ValueError, AttributeError):
        inputs = ()
    lane = Lane(workflow_id, record.name, record.status, tuple(s.step_name for s in steps), inputs)
    return lane, out, marks
