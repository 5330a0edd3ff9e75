"""airt_nb: durable, transactional workflows in Jupyter.

Write a workflow as YAML, run each step as a Python action checkpointed to
SQLite, pause for a person's approval, roll back what was done on a
rejection or a failure, and carry on after a crash.

>>> import airt_nb
>>> eng = airt_nb.Engine("airt.db")                 # doctest: +SKIP
>>> run = eng.start(spec_yaml, inputs={"target": "out/r"})  # doctest: +SKIP
>>> run.wait(timeout=10)                            # doctest: +SKIP
'PAUSED'

The engine core imports neither pandas, ipywidgets nor IPython; the frames,
panels and magics are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .actions import Action, Registry, StepContext, StepInterrupted, action
from .engine import Engine, RecoverySummary, WaitTimeoutError
from .errors import (
    ActionError,
    AirtError,
    ApprovalError,
    EventError,
    NotFoundError,
    PolicyError,
    SpecError,
    StoreError,
    WorkflowStateError,
)
from .run import Run
from .spec import WorkflowSpec, load_spec

if TYPE_CHECKING:
    from .frames import approvals, attempts, audit, compensations, deliveries, diff, history, runs, steps
    from .timelines import timeline
    from .widgets.dashboard import dashboard
    from .widgets.inbox import approvals_panel

__version__ = "0.1.0"
"""The package's version."""

__all__ = [
    "Action",
    "ActionError",
    "AirtError",
    "ApprovalError",
    "Engine",
    "EventError",
    "NotFoundError",
    "PolicyError",
    "RecoverySummary",
    "Registry",
    "Run",
    "SpecError",
    "StepContext",
    "StepInterrupted",
    "StoreError",
    "WaitTimeoutError",
    "WorkflowSpec",
    "WorkflowStateError",
    "__version__",
    "action",
    "approvals",
    "approvals_panel",
    "attempts",
    "audit",
    "compensations",
    "dashboard",
    "deliveries",
    "diff",
    "history",
    "load_ipython_extension",
    "load_spec",
    "runs",
    "steps",
    "timeline",
    "unload_ipython_extension",
]

_FRAMES = {"runs", "steps", "approvals", "compensations", "attempts", "audit", "deliveries", "history", "diff"}
_LAZY = {"dashboard": "widgets.dashboard", "approvals_panel": "widgets.inbox", "timeline": "timelines"}


def __getattr__(name: str) -> Any:
    # pandas costs ~0.5 s to import: frames load on first use, not with the engine;
    # likewise the panels (ipywidgets) and the timeline.
    if name in _FRAMES:
        from . import frames

        return getattr(frames, name)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'airt_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext airt_nb``: open the kernel's engine, recover, register the magics.

    Examples
    --------
    In a notebook cell:

    >>> %load_ext airt_nb                          # doctest: +SKIP
    airt_nb 0.1.0 · /home/ann/reports/airt.db · acting as ann
    """
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext airt_nb``: close the kernel's engine; unfinished workflows stay in the database.

    Examples
    --------
    >>> %unload_ext airt_nb                        # doctest: +SKIP
    """
    from .magics import unload_ipython_extension as unload

    unload(ipython)
