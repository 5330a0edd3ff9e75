"""What a step and a compensation are told when they run: :class:`StepContext`, :class:`CompensationContext`;
and what a step raises to stop early and run again later (:class:`StepInterrupted`).

Both are plain objects built by the engine (or by a test) and handed to an
action that asks for one; they carry who the step is, its durable scratch
state, the folder the workflow was started in (``workdir``), its private
undo folder (``undo_dir``) and, for a step under a path policy, the folders
it may touch (``allowed_paths``).

Imports nothing from airt_nb.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

__all__ = ["CompensationContext", "StepContext", "StepInterrupted", "absolute_path"]


class StepContext:
    """What a running step knows about itself.

    Declare a parameter annotated ``StepContext`` to receive it::

        @action
        def charge(amount: int, ctx: StepContext) -> dict:
            api.charge(amount, idempotency_key=ctx.idempotency_key)
            return {"charged": amount}

    ``save`` / ``saved`` keep small JSON values in the database, keyed by the
    step: a step re-run after a crash sees what its first run saved, and the
    step's compensation sees it too.

    ``workdir`` is the absolute folder the workflow was started in (relative
    paths mean paths there, whatever the current folder of the process that
    runs the step); ``None`` when the engine does not say, and then the
    process's current folder is used.  ``undo_dir`` is a private folder
    (0700) for this workflow's undo copies, or ``None``.  ``allowed_paths``
    are the folders a path policy lets this step touch (``None``: no path
    limit); the built-in file actions open files inside them without
    following any symbolic link, so the check and the open cannot be raced.

    Examples
    --------
    The engine builds it; a test can too:

    >>> from airt_nb import StepContext
    >>> ctx = StepContext(workflow_id="6061be85", workflow_name="pay", step_name="charge", attempt=1)
    >>> ctx.idempotency_key
    '6061be85/charge/1'
    >>> ctx.save("charge_id", "ch_42")
    >>> ctx.saved("charge_id")
    'ch_42'
    """

    __slots__ = (
        "_saver",
        "_state",
        "allowed_paths",
        "attempt",
        "cancelled",
        "step_name",
        "undo_dir",
        "workdir",
        "workflow_id",
        "workflow_name",
    )

    def __init__(
        self,
        *,
        workflow_id: str,
        workflow_name: str,
        step_name: str,
        attempt: int,
        state: dict[str, Any] | None = None,
        saver: Callable[[dict[str, Any]], None] | None = None,
        cancelled: threading.Event | None = None,
        workdir: str | None = None,
        undo_dir: str | None = None,
        allowed_paths: tuple[str, ...] | None = None,
    ):
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.step_name = step_name
        self.attempt = attempt
        self.cancelled = cancelled or threading.Event()
        self.workdir = workdir
        self.undo_dir = undo_dir
        self.allowed_paths = tuple(allowed_paths) if allowed_paths is not None else None
        self._state = dict(state or {})
        self._saver = saver

    @property
    def idempotency_key(self) -> str:
        """``workflow_id/step_name/attempt``: the same when a step is re-run after a crash."""
        return f"{self.workflow_id}/{self.step_name}/{self.attempt}"

    def saved(self, key: str, default: Any = None) -> Any:
        """A value saved by :meth:`save` in this step (in this or an earlier run of it)."""
        return self._state.get(key, default)

    def save(self, key: str, value: Any) -> None:
        """Durably save a JSON value for this step before doing something irreversible."""
        self._state[key] = value
        if self._saver is not None:
            self._saver(dict(self._state))

    @property
    def state(self) -> dict[str, Any]:
        """Everything saved so far, as a new dict."""
        return dict(self._state)


class CompensationContext:
    """What a compensation knows: the step it undoes, what the step saved, and where it ran.

    ``workdir`` and ``undo_dir`` mean what they mean in :class:`StepContext`.
    A compensation may return a short text note (``"already absent"``,
    ``"target changed after the step; ..."``): the engine records it with
    the compensation, so an undo that did something else than a plain undo
    is never reported as plain success.
    """

    __slots__ = ("_state", "step_name", "undo_dir", "workdir", "workflow_id")

    def __init__(
        self,
        *,
        workflow_id: str,
        step_name: str,
        state: dict[str, Any] | None = None,
        workdir: str | None = None,
        undo_dir: str | None = None,
    ):
        self.workflow_id = workflow_id
        self.step_name = step_name
        self.workdir = workdir
        self.undo_dir = undo_dir
        self._state = dict(state or {})

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}/{self.step_name}/compensate"

    def saved(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)


def absolute_path(path: str, workdir: str | None) -> str:
    """``path`` made absolute against ``workdir`` (the process's current folder when ``None``).

    ``.`` and repeated slashes are tidied; ``..`` is kept, because what it
    means depends on symbolic links that only the file system knows.

    >>> absolute_path("out//./a.txt", "/srv/work")
    '/srv/work/out/a.txt'
    """
    base = workdir if workdir is not None else os.getcwd()
    return str(PurePath(os.path.join(base, path)))


class StepInterrupted(Exception):
    """Raised by an action that stops early because the engine is closing.

    The step stays recorded as running and runs again (same attempt, same
    idempotency key) when the workflow is resumed.

    Examples
    --------
    >>> from airt_nb import StepContext, StepInterrupted, action
    >>> @action
    ... def crawl(pages: int, ctx: StepContext) -> dict:
    ...     for page in range(pages):
    ...         if ctx.cancelled.is_set():       # the engine is closing: stop, run again later
    ...             raise StepInterrupted(f"stopped at page {page}")
    ...     return {"pages": pages}
    """
