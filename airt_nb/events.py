"""What happened in a workflow, as small immutable events, and a safe emitter.

Observers (run panels, dashboards, tests) subscribe with
:meth:`airt_nb.Engine.subscribe`.  Events are emitted on engine threads after
the checkpoint they describe has committed; an observer that raises is logged
and never disturbs the engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApprovalDecided",
    "ApprovalRequested",
    "CompensationFinished",
    "Emitter",
    "Event",
    "StepFinished",
    "StepStarted",
    "WorkflowStatusChanged",
]

log = logging.getLogger("airt_nb")


@dataclass(frozen=True, slots=True)
class Event:
    workflow_id: str


@dataclass(frozen=True, slots=True)
class WorkflowStatusChanged(Event):
    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    step_name: str
    attempt: int


@dataclass(frozen=True, slots=True)
class StepFinished(Event):
    """A step attempt ended: ``status`` is COMPLETED, RETRYING or FAILED."""

    step_name: str
    attempt: int
    status: str
    error: str | None = None
    outputs: Any = None


@dataclass(frozen=True, slots=True)
class ApprovalRequested(Event):
    approval_id: str
    step_name: str
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDecided(Event):
    approval_id: str
    step_name: str
    status: str
    decided_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CompensationFinished(Event):
    step_name: str
    status: str
    error: str | None = None


@dataclass
class Emitter:
    """Calls every subscriber; errors are logged, never raised."""

    _subscribers: list[Callable[[Event], Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, fn: Callable[[Event], Any]) -> Callable[[], None]:
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def emit(self, event: Event) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("an observer of airt_nb events failed on %r", event)
