"""Timelines: a Gantt-style picture of runs, to look at rather than read.

One row per step; bars for the attempt that counted, failed attempts
before it (``frames.attempts``), the back-off waits between them, approval
waits (request to decision), and compensations (the undo of a completed
step, drawn from when the rollback reached it to when it finished; the
store records when an undo finished, so its start is the end of whatever
happened just before).  Rendered as inline SVG (no browser plugin, no
script), with a text version for terminals; ``Timeline.segments`` holds the
same data for analysis.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .store import Store, opened
from .timeutil import to_epoch
from .views import COLORS, esc, fmt_duration

__all__ = ["Segment", "Timeline", "timeline"]

FILL = {
    "step": None,  # by status
    "attempt": "#e36209",
    "backoff": "#afb8c1",
    "approval": "#bf8700",
    "compensation": "#8250df",
}
LEGEND = [
    ("step", COLORS["COMPLETED"], "step (colour = outcome)"),
    ("attempt", FILL["attempt"], "failed attempt, retried"),
    ("backoff", FILL["backoff"], "waiting to retry"),
    ("approval", FILL["approval"], "waiting for approval"),
    ("compensation", FILL["compensation"], "undo (compensation)"),
]
_TEXT = {"step": "█", "attempt": "▒", "backoff": "·", "approval": "░", "compensation": "↺"}
_LAYER = {"backoff": 0, "approval": 1, "step": 2, "attempt": 3, "compensation": 4}  # later layers draw on top


@dataclass(frozen=True, slots=True)
class Segment:
    """One bar: ``kind`` is step, attempt, backoff, approval or compensation; times are epoch seconds."""

    workflow_id: str
    step_name: str
    kind: str
    status: str
    start: float
    end: float
    label: str
    open: bool = False  # still going when the timeline was drawn


@dataclass(frozen=True, slots=True)
class Lane:
    workflow_id: str
    name: str
    status: str
    steps: tuple[str, ...]


def timeline(workflow_ids: Any, db: Any = None, *, relative: bool | None = None) -> Timeline:
    """The timeline of one or more workflows (ids, id prefixes or ``Run`` objects).

    ``db`` is an Engine, a store or a database path (default: the kernel's
    engine, else ``$AIRT_DB`` or ``./airt.db``).  ``relative=True`` starts every
    workflow at 0 (compare runs); the default draws several workflows on one
    clock (see what ran at the same time).

    >>> airt_nb.timeline([run_a, run_b])   # doctest: +SKIP
    """
    if isinstance(workflow_ids, str) or not isinstance(workflow_ids, Iterable):
        workflow_ids = [workflow_ids]
    ids = [getattr(w, "id", w) for w in workflow_ids]
    with _store(db) as store:
        now = datetime.now(UTC).timestamp()
        lanes, segments = [], []
        for workflow_id in ids:
            lane, segs = _collect(store, _resolve(store, workflow_id), now)
            lanes.append(lane)
            segments += segs
    return Timeline(lanes, segments, relative=bool(relative))


def _store(db: Any) -> contextlib.AbstractContextManager[Store]:
    return opened(db, must_exist=False)


def _resolve(store: Store, workflow_id: str) -> str:
    if store.workflow_status(workflow_id) is not None:
        return workflow_id
    matches = store.ids_with_prefix(workflow_id)
    if len(matches) == 1:
        return matches[0]
    from .errors import NotFoundError

    raise NotFoundError("workflow", workflow_id, db=store.path)


def _collect(store: Store, workflow_id: str, now: float) -> tuple[Lane, list[Segment]]:
    record = store.workflow(workflow_id)
    assert record is not None
    steps = store.steps(workflow_id)
    attempts = store.attempts(workflow_id)
    approvals = store.approvals(workflow_id=workflow_id)
    out: list[Segment] = []

    def add(step: str, kind: str, status: str, start: str | None, end: str | None, label: str) -> None:
        if not start:
            return
        a = to_epoch(start)
        b = to_epoch(end) if end else now
        out.append(Segment(workflow_id, step, kind, status, a, max(a, b), label, open=end is None))

    for s in steps:
        tries = sorted((a for a in attempts if a[1] == s.step_name), key=lambda a: a[2])
        final = s.attempt if s.status not in ("RETRYING",) else s.attempt + 1
        previous_end: str | None = None
        for _, _, number, status, started, finished, error in tries:
            if number >= final:
                continue
            if previous_end:
                add(s.step_name, "backoff", "RETRYING", previous_end, started, "waiting to retry")
            add(s.step_name, "attempt", status, started, finished, f"attempt {number} failed: {error or ''}")
            previous_end = finished
        if s.type == "human_approval":
            for a in approvals:
                if a.step_name == s.step_name:
                    who = f" by {a.decided_by}" if a.decided_by else ""
                    add(s.step_name, "approval", a.status, a.requested_at, a.decided_at, f"{a.status.lower()}{who}")
            continue
        if s.status == "RETRYING":
            add(s.step_name, "backoff", "RETRYING", previous_end, s.next_attempt_at, "waiting to retry")
            continue
        if previous_end and s.started_at:
            add(s.step_name, "backoff", "RETRYING", previous_end, s.started_at, "waiting to retry")
        if s.started_at and s.status not in ("PENDING", "SKIPPED"):
            shown = "COMPLETED" if s.status.startswith("COMPENSAT") else s.status
            end = s.finished_at if s.status not in ("RUNNING",) else None
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
    lane = Lane(workflow_id, record.name, record.status, tuple(s.step_name for s in steps))
    return lane, out


def _ticks(span: float, count: int = 6) -> list[float]:
    if span <= 0:
        return [0.0]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step) + 1)]


class Timeline:
    """A drawn timeline; ``segments`` is the data, ``to_svg()`` the picture."""

    label_width = 170
    chart_width = 620
    row_height = 18
    lane_gap = 22

    def __init__(self, lanes: list[Lane], segments: list[Segment], *, relative: bool = False):
        self.lanes = lanes
        self.segments = segments
        self.relative = relative

    def _origin(self, workflow_id: str) -> float:
        pool = [s.start for s in self.segments if not self.relative or s.workflow_id == workflow_id]
        return min(pool, default=0.0)

    @property
    def span(self) -> float:
        """Seconds from the first start to the last end (per workflow when ``relative``)."""
        if not self.segments:
            return 0.0
        return max(s.end - self._origin(s.workflow_id) for s in self.segments)

    def to_svg(self) -> str:
        span = self.span or 1.0
        scale = self.chart_width / span
        left, top = self.label_width, 24
        parts: list[str] = []
        y = top
        for lane in self.lanes:
            origin = self._origin(lane.workflow_id)
            parts.append(
                f'<text x="4" y="{y + 13}" font-weight="600">{esc(lane.name)} '
                f'<tspan fill="#8a8f98" font-weight="400">{esc(lane.workflow_id)} · {esc(lane.status)}</tspan></text>'
            )
            y += self.lane_gap
            for index, step in enumerate(lane.steps):
                if index % 2:
                    parts.append(
                        f'<rect x="0" y="{y}" width="{left + self.chart_width + 10}" height="{self.row_height}" '
                        'fill="#8a8f98" fill-opacity="0.07"/>'
                    )
                parts.append(f'<text x="12" y="{y + 13}">{esc(step)}</text>')
                for seg in self._row(lane.workflow_id, step):
                    parts.append(self._bar(seg, left + (seg.start - origin) * scale, y, scale))
                y += self.row_height
            y += 6
        axis = []
        for t in _ticks(span):
            x = left + t * scale
            axis.append(
                f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y}" stroke="#8a8f98" stroke-opacity="0.25"/>'
                f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#8a8f98">{esc(fmt_duration(t))}</text>'
            )
        legend = []
        lx = 4.0
        for _kind, color, text in LEGEND:
            legend.append(
                f'<rect x="{lx}" y="{y + 8}" width="12" height="10" fill="{color}" rx="2"/>'
                f'<text x="{lx + 16}" y="{y + 17}">{esc(text)}</text>'
            )
            lx += 22 + 6.2 * len(text)
        height = y + 28
        width = left + self.chart_width + 20
        return (
            f'<svg class="airt-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" fill="currentColor">'
            f"{''.join(axis)}{''.join(parts)}{''.join(legend)}</svg>"
        )

    def _row(self, workflow_id: str, step: str) -> list[Segment]:
        """One step's segments in drawing order: a wait never hides the attempt next to it."""
        mine = [s for s in self.segments if s.workflow_id == workflow_id and s.step_name == step]
        return sorted(mine, key=lambda s: (_LAYER[s.kind], s.start))

    def _bar(self, seg: Segment, x: float, y: float, scale: float) -> str:
        color = FILL[seg.kind] or COLORS.get(seg.status, "#1f6feb")
        if seg.kind == "approval" and seg.status == "REJECTED":
            color = COLORS["REJECTED"]
        width = max(2.0, (seg.end - seg.start) * scale)
        height, dy = (4, 7) if seg.kind == "backoff" else (12, 3)
        opacity = ' fill-opacity="0.55"' if seg.kind == "approval" or seg.open else ""
        title = (
            f"{seg.step_name}: {seg.label} ({fmt_duration(seg.end - seg.start)}{', still going' if seg.open else ''})"
        )
        return (
            f'<rect class="airt-seg airt-seg-{seg.kind}" x="{x:.1f}" y="{y + dy}" width="{width:.1f}" '
            f'height="{height}" rx="2" fill="{color}"{opacity}><title>{esc(title)}</title></rect>'
        )

    def _repr_html_(self) -> str:
        return f'<div class="airt-timeline-box" style="overflow-x:auto">{self.to_svg()}</div>'

    def __repr__(self) -> str:
        width = 60
        span = self.span or 1.0
        lines = []
        for lane in self.lanes:
            origin = self._origin(lane.workflow_id)
            lines.append(f"{lane.name} {lane.workflow_id} {lane.status}  ({fmt_duration(self.span)} shown)")
            name_width = max((len(s) for s in lane.steps), default=4)
            for step in lane.steps:
                row = [" "] * width
                for seg in self._row(lane.workflow_id, step):
                    a = int((seg.start - origin) / span * (width - 1))
                    b = max(a, int((seg.end - origin) / span * (width - 1)))
                    for i in range(a, b + 1):
                        row[i] = _TEXT[seg.kind]
                lines.append(f"  {step:<{name_width}} |{''.join(row)}|")
        lines.append("  " + "  ".join(f"{_TEXT[k]} {text}" for k, _, text in LEGEND))
        return "\n".join(lines)
