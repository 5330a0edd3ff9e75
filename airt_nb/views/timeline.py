"""A timeline drawn: lanes of step bars, history marks and a legend, as SVG and as text.

The data (:class:`Segment`, :class:`Mark`, :class:`Lane`) comes from
:func:`airt_nb.timelines.timeline`, which reads the store; this module only
draws.  Each colour is a theme role (:mod:`.theme`), so the picture follows
the light or dark theme, with the light theme's colours as fallbacks where no
stylesheet applies (the SVG saved on its own).

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .text import esc, fmt_duration, short
from .theme import colour, role, stylesheet

__all__ = ["MARKS", "Lane", "Mark", "Segment", "Timeline", "distinguishing_inputs"]

_TEXT = {"step": "█", "attempt": "▒", "interrupted": "×", "backoff": "·", "approval": "░", "compensation": "↺"}
_LAYER = {"backoff": 0, "approval": 1, "step": 2, "attempt": 3, "interrupted": 3, "compensation": 4}
#: history events drawn across a lane: (colour role, legend text)
MARKS = {
    "engine_lost": ("warn", "engine lost"),
    "resumed": ("ok", "resumed"),
    "cancel_requested": ("idle", "cancel asked"),
    "cancelled": ("idle", "cancelled"),
    "rollback_requested": ("undo", "rollback asked"),
}


@dataclass(frozen=True, slots=True)
class Segment:
    """One bar: ``kind`` is step, attempt, interrupted, backoff, approval or compensation; times are epoch seconds."""

    workflow_id: str
    step_name: str
    kind: str
    status: str
    start: float
    end: float
    label: str
    open: bool = False  # still going when the timeline was drawn


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment of a run's history drawn across its lane (``event`` as recorded, e.g. ``engine_lost``)."""

    workflow_id: str
    event: str
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Lane:
    workflow_id: str
    name: str
    status: str
    steps: tuple[str, ...]
    inputs: tuple[tuple[str, Any], ...] = ()


def _ticks(span: float, count: int = 6) -> list[float]:
    if span <= 0:
        return [0.0]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step) + 1)]


def _colour_role(seg: Segment) -> str:
    """The colour role of a bar: a step's outcome; amber approval waits (red when rejected); purple undo."""
    if seg.kind == "step":
        return role(seg.status)
    if seg.kind == "approval":
        return "error" if seg.status == "REJECTED" else "warn"
    if seg.kind == "compensation":
        return "error" if seg.status == "FAILED" else "undo"
    return {"attempt": "error", "interrupted": "warn", "backoff": "off"}[seg.kind]


def _legend_text(seg: Segment) -> str:
    if seg.kind == "step":
        return f"step {seg.status.lower().replace('_', ' ')}" + (" (still running)" if seg.status == "RUNNING" else "")
    if seg.kind == "approval":
        return "approval rejected" if seg.status == "REJECTED" else "waiting for approval"
    if seg.kind == "compensation":
        return "undo failed" if seg.status == "FAILED" else "undo (compensation)"
    return {
        "attempt": "failed attempt, retried",
        "interrupted": "attempt interrupted (engine lost)",
        "backoff": "waiting to retry",
    }[seg.kind]


def _dim(seg: Segment) -> bool:
    return seg.kind in ("approval", "attempt") or seg.open


def distinguishing_inputs(lanes: list[Lane]) -> dict[str, str]:
    """For lanes that share a workflow name, the inputs whose values differ, as ``key=value`` text."""
    by_name: dict[str, list[Lane]] = {}
    for lane in lanes:
        by_name.setdefault(lane.name, []).append(lane)
    out: dict[str, str] = {}
    for group in by_name.values():
        if len(group) < 2:
            continue
        keys = sorted({k for lane in group for k, _ in lane.inputs})
        differing = [k for k in keys if len({json.dumps(dict(lane.inputs).get(k), default=str) for lane in group}) > 1]
        for lane in group:
            values = dict(lane.inputs)
            shown = [f"{k}={short(values.get(k), 24)}" for k in differing[:3]]
            if shown:
                out[lane.workflow_id] = ", ".join(shown)
    return out


class Timeline:
    """A drawn timeline; ``segments`` and ``marks`` are the data, ``to_svg()`` the picture."""

    label_width = 190
    chart_width = 620
    row_height = 18
    lane_gap = 22

    def __init__(
        self, lanes: list[Lane], segments: list[Segment], *, relative: bool = False, marks: list[Mark] | None = None
    ):
        self.lanes = lanes
        self.segments = segments
        self.marks = marks or []
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

    def lane_title(self, lane: Lane) -> str:
        """``name (inputs that tell it from lanes of the same name)``."""
        extra = distinguishing_inputs(self.lanes).get(lane.workflow_id)
        return f"{lane.name} ({extra})" if extra else lane.name

    def legend(self) -> list[tuple[str, str, str]]:
        """``(kind, colour role, text)`` of every colour drawn, in drawing order."""
        seen: dict[tuple[str, str], str] = {}
        for seg in sorted(self.segments, key=lambda s: (_LAYER[s.kind], s.kind, s.status)):
            key = (_colour_role(seg), _legend_text(seg))
            seen.setdefault(key, seg.kind)
        items = [(kind, colour_role, text) for (colour_role, text), kind in seen.items()]
        for mark in self.marks:
            colour_role, text = MARKS[mark.event]
            if not any(t == text for _, _, t in items):
                items.append(("mark", colour_role, text))
        return items

    def to_svg(self) -> str:
        span = self.span or 1.0
        scale = self.chart_width / span
        left, top = self.label_width, 24
        parts: list[str] = []
        y = top
        for lane in self.lanes:
            origin = self._origin(lane.workflow_id)
            parts.append(
                f'<text x="4" y="{y + 13}" font-weight="600">{esc(self.lane_title(lane))} '
                f'<tspan fill-opacity="0.7" font-weight="400">{esc(lane.workflow_id)} · {esc(lane.status)}</tspan></text>'
            )
            y += self.lane_gap
            lane_top = y
            for index, step in enumerate(lane.steps):
                if index % 2:
                    parts.append(
                        f'<rect x="0" y="{y}" width="{left + self.chart_width + 10}" height="{self.row_height}" '
                        'fill="currentColor" fill-opacity="0.05"/>'
                    )
                parts.append(f'<text x="12" y="{y + 13}">{esc(step)}</text>')
                for seg in self._row(lane.workflow_id, step):
                    parts.append(self._bar(seg, left + (seg.start - origin) * scale, y, scale))
                y += self.row_height
            for mark in (m for m in self.marks if m.workflow_id == lane.workflow_id):
                x = left + (mark.at - origin) * scale
                parts.append(
                    f'<line class="airt-mark airt-mark-{esc(mark.event)}" x1="{x:.1f}" y1="{lane_top - 2}" '
                    f'x2="{x:.1f}" y2="{y}" style="stroke:{colour(MARKS[mark.event][0])}" stroke-width="2" '
                    f'stroke-dasharray="4 3"><title>{esc(mark.label)}</title></line>'
                )
            y += 6
        axis = []
        for t in _ticks(span):
            x = left + t * scale
            axis.append(
                f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y}" stroke="currentColor" stroke-opacity="0.15"/>'
                f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill-opacity="0.7">{esc(fmt_duration(t))}</text>'
            )
        legend = []
        lx, ly = 4.0, y + 8
        for kind, colour_role, text in self.legend():
            width = 22 + 6.2 * len(text)
            if lx + width > left + self.chart_width and lx > 4:
                lx, ly = 4.0, ly + 16
            if kind == "mark":
                swatch = (
                    f'<line x1="{lx + 6}" y1="{ly}" x2="{lx + 6}" y2="{ly + 10}" style="stroke:{colour(colour_role)}" '
                    'stroke-width="2" stroke-dasharray="3 2"/>'
                )
            else:
                swatch = f'<rect x="{lx}" y="{ly}" width="12" height="10" rx="2" style="fill:{colour(colour_role)}"/>'
            legend.append(f'{swatch}<text class="airt-legend" x="{lx + 16}" y="{ly + 9}">{esc(text)}</text>')
            lx += width
        height = ly + 24
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
        width = max(2.0, (seg.end - seg.start) * scale)
        height, dy = (4, 7) if seg.kind == "backoff" else (12, 3)
        opacity = ' fill-opacity="0.6"' if _dim(seg) else ""
        title = (
            f"{seg.step_name}: {seg.label} ({fmt_duration(seg.end - seg.start)}{', still going' if seg.open else ''})"
        )
        return (
            f'<rect class="airt-seg airt-seg-{seg.kind}" x="{x:.1f}" y="{y + dy}" width="{width:.1f}" '
            f'height="{height}" rx="2" style="fill:{colour(_colour_role(seg))}"{opacity}><title>{esc(title)}</title></rect>'
        )

    def _repr_html_(self) -> str:
        return f'<div class="airt-root airt-timeline-box" style="overflow-x:auto">{stylesheet()}{self.to_svg()}</div>'

    def __repr__(self) -> str:
        width = 60
        span = self.span or 1.0
        lines = []
        for lane in self.lanes:
            origin = self._origin(lane.workflow_id)
            lines.append(f"{self.lane_title(lane)} {lane.workflow_id} {lane.status}  ({fmt_duration(self.span)} shown)")
            name_width = max((len(s) for s in lane.steps), default=4)
            for step in lane.steps:
                row = [" "] * width
                for seg in self._row(lane.workflow_id, step):
                    a = int((seg.start - origin) / span * (width - 1))
                    b = max(a, int((seg.end - origin) / span * (width - 1)))
                    for i in range(a, b + 1):
                        row[i] = _TEXT[seg.kind]
                lines.append(f"  {step:<{name_width}} |{''.join(row)}|")
            for mark in (m for m in self.marks if m.workflow_id == lane.workflow_id):
                lines.append(f"  {mark.label} at +{fmt_duration(mark.at - origin)}")
        kinds = {kind for kind, _, _ in self.legend()}
        lines.append(
            "  " + "  ".join(f"{_TEXT[k]} {text}" for k, _, text in self.legend() if k in _TEXT and k in kinds)
        )
        return "\n".join(lines)
