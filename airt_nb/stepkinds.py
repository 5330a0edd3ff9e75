"""What each kind of step may say in a spec, checked once the YAML has its shape.

A step is one of four kinds (``type:``):

``action``          runs a registered action with ``inputs`` (may ``retry``)
``human_approval``  waits for a decision (``message``, ``approvers``, ``timeout``,
                    ``on_timeout: reject | approve``)
``wait_event``      waits for ``event: NAME`` sent with :meth:`airt_nb.Engine.send`
                    (``timeout``, ``on_timeout: fail | continue``, ``schema``: a
                    JSON Schema the payload must satisfy)
``workflow``        runs the workflow in ``uses: path.yaml`` as a child, with ``inputs``

:func:`kind_problems` says, for one step, every key that does not belong to
its kind and every value a kind refuses; :func:`event_problems` what the
``wait_event`` steps of one spec say together.  The spec module reports them
with their YAML line.

Imports no engine and no store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .identity import name_problem

__all__ = ["KINDS", "ON_TIMEOUT", "event_problems", "kind_problems", "schema_problem"]

KINDS = ("action", "human_approval", "wait_event", "workflow")
#: the ``on_timeout`` choices of each kind that waits, the first one being the default
ON_TIMEOUT = {"human_approval": ("reject", "approve"), "wait_event": ("fail", "continue")}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

# Keys only some kinds take: (key, kinds that take it).
_ONLY = (
    ("action", ("action",)),
    ("retry", ("action",)),
    ("approvers", ("human_approval",)),
    ("message", ("human_approval",)),
    ("timeout", ("human_approval", "wait_event")),
    ("on_timeout", ("human_approval", "wait_event")),
    ("event", ("wait_event",)),
    ("payload_schema", ("wait_event",)),
    ("uses", ("workflow",)),
    ("inputs", ("action", "workflow")),
)
_SHOWN = {"payload_schema": "schema"}


def kind_problems(step: Any, add: Callable[[tuple[Any, ...], str], None], where: tuple[Any, ...]) -> None:
    """Report through ``add(path, message)`` what does not fit ``step``'s kind (``where``: its path)."""
    kind = step.type
    for key, kinds in _ONLY:
        if kind in kinds:
            continue
        value = getattr(step, key)
        if value is None or value == [] or value == {}:
            continue
        shown = _SHOWN.get(key, key)
        takers = " and ".join(kinds)
        add((*where, shown), f"{shown!r} applies to {takers} steps only; remove it from this {kind} step")
    if kind == "action" and not step.action:
        add(where, "an action step needs 'action: <name>' (or type: human_approval, wait_event or workflow)")
    elif kind == "wait_event":
        if not step.event:
            add(where, "a wait_event step needs 'event: <name>', the name the event is sent with")
        elif not _NAME.match(step.event):
            add((*where, "event"), f"event name {step.event!r}: use 1-100 letters, digits, '.', '-' and '_'")
        if step.payload_schema is not None:
            problem = schema_problem(step.payload_schema)
            if problem:
                add((*where, "schema"), problem)
    elif kind == "human_approval":
        for i, name in enumerate(step.approvers):
            problem = _approver_problem(name)
            if problem:
                add((*where, "approvers", i), f"{name!r} {problem}")
    elif kind == "workflow" and not step.uses:
        add(where, "a workflow step needs 'uses: path/to/spec.yaml' (relative to the working directory)")
    choices = ON_TIMEOUT.get(kind)
    if choices and step.on_timeout is not None and step.on_timeout not in choices:
        add(
            (*where, "on_timeout"),
            f"on_timeout of a {kind} step must be {' or '.join(map(repr, choices))} (default {choices[0]!r}), "
            f"got {step.on_timeout!r}",
        )


def _approver_problem(name: str) -> str | None:
    if not name.strip():
        return "is empty: nobody could ever decide; name a user or a policy role"
    if name != name.strip():
        return "has spaces around it; write the name alone"
    return name_problem(name)  # the rules of every name: no one could decide under another


def event_problems(steps: Sequence[Any], add: Callable[[tuple[Any, ...], str], None]) -> None:
    """Two ``wait_event`` steps of one workflow may not wait for the same event name."""
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.type != "wait_event" or not step.event:
            continue
        if step.event in seen:
            add(
                ("steps", i, "event"),
                f"steps[{seen[step.event]}] waits for event {step.event!r} already; an event is received once, "
                "give each wait_event step its own event name",
            )
        else:
            seen[step.event] = i


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema, or None."""
    if not isinstance(schema, dict | bool):
        return f"schema must be a JSON Schema (a mapping such as {{type: object}}), not {type(schema).__name__}"
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        return f"not a valid JSON Schema{' at ' + at if at else ''}: {exc.message}"
    return _reference_problem(schema)


#: keywords whose values are data, not schemas: a "$ref" key inside them is not a reference
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _reference_problem(schema: Any) -> str | None:
    """A ``$ref`` the payload check could not follow: nothing is fetched from elsewhere, so every
    reference must point inside the schema itself (``#/$defs/...``, or a ``$anchor``)."""
    refs: list[tuple[str, str]] = []
    anchors: set[str] = set()
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef", "$recursiveRef") and isinstance(value, str):
                    refs.append((value, at or "/"))
                elif key in ("$anchor", "$dynamicAnchor") and isinstance(value, str):
                    anchors.add(value)
                elif key not in _DATA_KEYWORDS:
                    stack.append((value, f"{at}/{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{at}/{i}") for i, item in enumerate(node))
    for ref, at in sorted(refs, key=lambda r: r[1]):
        where = f"$ref {ref!r} at {at}"
        if not ref.startswith("#"):
            return f"{where} points outside the schema, which is never fetched; put the definition under $defs and refer to it as '#/$defs/NAME'"
        if ref.startswith("#/") or ref == "#":
            if not _pointer_resolves(schema, ref[1:]):
                return f"{where} points at nothing in the schema; check the path (definitions go under $defs)"
        elif ref[1:] not in anchors:
            return f"{where} names no $anchor of the schema; add the anchor or refer to '#/$defs/NAME'"
    return None


def _pointer_resolves(schema: Any, pointer: str) -> bool:
    from urllib.parse import unquote

    node = schema
    for raw in pointer.split("/")[1:] if pointer else []:
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True
