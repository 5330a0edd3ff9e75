"""Which workflow an id someone typed names: the id itself, the id in capitals, or a unique prefix.

Every place that takes a workflow id from a person (the engine, the frames, timelines, diffs, the
``airt`` command and the magics through the engine) resolves it here, so that a prefix works, and
fails, the same way everywhere.  Imports no engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import NotFoundError

if TYPE_CHECKING:
    from .store.protocol import Store

__all__ = ["MIN_PREFIX", "resolve_workflow_id"]

MIN_PREFIX = 4  # characters of an id that are enough when they name one workflow


def resolve_workflow_id(store: Store, workflow_id: Any, *, db: str | None = None) -> str:
    """The full id of the workflow ``workflow_id`` names: itself, itself in lower case, or a unique
    prefix of :data:`MIN_PREFIX` or more characters; :class:`~airt_nb.NotFoundError` (saying what to
    give instead) if it names none or several.  ``db`` names the database in the message (default:
    the store's path).

    >>> import airt_nb
    >>> with airt_nb.Engine("airt.db") as eng:
    ...     run = eng.start({"name": "one", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]})
    ...     resolve_workflow_id(eng.store, run.id[:6].upper()) == run.id
    True
    """
    where = db if db is not None else store.path
    if not isinstance(workflow_id, str) or not workflow_id:
        raise NotFoundError("workflow", str(workflow_id), db=where)
    if store.workflow_status(workflow_id) is not None:
        return workflow_id
    wanted = workflow_id.strip().lower()  # ids are lower-case hex; one copied in capitals is the same id
    hexadecimal = all(c in "0123456789abcdef" for c in wanted)
    if hexadecimal and wanted != workflow_id and store.workflow_status(wanted) is not None:
        return wanted
    if hexadecimal and 0 < len(wanted) < MIN_PREFIX:
        raise NotFoundError(
            "workflow",
            workflow_id,
            db=where,
            hint=f"a prefix needs at least {MIN_PREFIX} characters; give more of the id",
        )
    matches = store.ids_with_prefix(wanted, limit=6) if hexadecimal and wanted else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (" or more" if len(matches) > 5 else "")
        raise NotFoundError(
            "unique workflow with the prefix", workflow_id, db=where, hint=f"it could be {shown}; give more of the id"
        )
    raise NotFoundError("workflow", workflow_id, db=where)
