"""``${{ ... }}`` lookups inside step inputs and approval messages.

An expression is a dotted path, never code: ``inputs.X``,
``steps.NAME.outputs.X``, ``workflow.id`` and ``workflow.name``; list items
are reached with ``[0]`` or ``.0``.  A value that is exactly one expression
keeps its JSON type; an expression inside a longer string is formatted as text
(strings as they are, anything else as JSON).

Values are compiled once per spec (:func:`compile_value`), so resolving a
step's inputs at run time is a walk over precomputed paths.

Imports nothing from airt_nb but the errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ExpressionError", "Reference", "compile_value", "find_references", "parse_reference"]

_EXPR = re.compile(r"\$\{\{(.*?)\}\}")
_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|\d+")
_ROOTS = ("inputs", "steps", "workflow")


class ExpressionError(ValueError):
    """An expression is malformed or names something that is not there."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed ``${{ ... }}`` expression."""

    text: str
    parts: tuple[str | int, ...]

    @property
    def root(self) -> str:
        return str(self.parts[0])

    @property
    def step(self) -> str | None:
        """The step a ``steps.NAME...`` reference points at."""
        return str(self.parts[1]) if self.parts[0] == "steps" and len(self.parts) > 1 else None


def parse_reference(text: str) -> Reference:
    """Parse the inside of ``${{ }}`` into a :class:`Reference`.

    >>> parse_reference("steps.write_a.outputs.path").parts
    ('steps', 'write_a', 'outputs', 'path')
    """
    body = text.strip()
    if not body:
        raise ExpressionError("empty expression ${{ }}; write a lookup such as ${{ inputs.name }}")
    parts: list[str | int] = []
    for chunk in re.split(r"\.|\[(\d+)\]", body):
        if chunk is None or chunk == "":
            continue
        if not _PART.fullmatch(chunk):
            raise ExpressionError(
                f"${{{{ {body} }}}} is not a lookup: only names joined by dots are allowed "
                "(inputs.X, steps.NAME.outputs.X, workflow.id, workflow.name); expressions are never evaluated"
            )
        parts.append(int(chunk) if chunk.isdigit() else chunk)
    if re.search(r"\.\.|^\.|\.$", body):
        raise ExpressionError(f"${{{{ {body} }}}} has an empty name between dots")
    root = parts[0]
    if root not in _ROOTS:
        raise ExpressionError(
            f"${{{{ {body} }}}} starts with {root!r}; a lookup starts with inputs., steps. or workflow."
        )
    if root == "steps":
        if len(parts) < 3 or parts[2] != "outputs":
            raise ExpressionError(f"${{{{ {body} }}}}: write steps.<step name>.outputs[.<key>] to use a step's outputs")
    elif root == "workflow":
        if len(parts) != 2 or parts[1] not in ("id", "name"):
            raise ExpressionError(f"${{{{ {body} }}}}: only workflow.id and workflow.name exist")
    elif root == "inputs" and len(parts) < 2:
        raise ExpressionError(f"${{{{ {body} }}}}: name the input, e.g. inputs.target")
    return Reference(text=body, parts=tuple(parts))


def find_references(value: Any) -> Iterator[tuple[tuple[str | int, ...], Reference]]:
    """Yield ``(path_inside_value, reference)`` for every expression in ``value``.

    Raises :class:`ExpressionError` for malformed expressions.
    """
    if isinstance(value, str):
        for match in _EXPR.finditer(value):
            yield (), parse_reference(match.group(1))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            for sub, ref in find_references(item):
                yield (key, *sub), ref
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            for sub, ref in find_references(item):
                yield (index, *sub), ref


Resolver = Callable[[Mapping[str, Any]], Any]


def _lookup(ref: Reference, context: Mapping[str, Any]) -> Any:
    current: Any = context
    walked: list[str] = []
    for part in ref.parts:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, Mapping) and isinstance(part, int) and str(part) in current:
            current = current[str(part)]
        elif isinstance(current, list) and isinstance(part, int) and -len(current) <= part < len(current):
            current = current[part]
        else:
            where = ".".join(map(str, walked)) or "the context"
            if isinstance(current, Mapping):
                have = ", ".join(map(str, current)) or "nothing"
                raise ExpressionError(f"${{{{ {ref.text} }}}}: {where} has no {part!r} (it has: {have})")
            raise ExpressionError(
                f"${{{{ {ref.text} }}}}: {where} is {type(current).__name__}, not something with {part!r}"
            )
        walked.append(str(part))
    return current


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def compile_value(value: Any) -> Resolver | None:
    """Compile a spec value into a resolver, or ``None`` if it has no expression.

    >>> r = compile_value("${{ inputs.n }}")
    >>> r({"inputs": {"n": 3}})
    3
    >>> compile_value("n=${{ inputs.n }}")({"inputs": {"n": 3}})
    'n=3'
    """
    if isinstance(value, str):
        matches = list(_EXPR.finditer(value))
        if not matches:
            return None
        if len(matches) == 1 and matches[0].span() == (0, len(value)):
            ref = parse_reference(matches[0].group(1))
            return lambda ctx: _lookup(ref, ctx)
        pieces: list[str | Reference] = []
        last = 0
        for match in matches:
            pieces.append(value[last : match.start()])
            pieces.append(parse_reference(match.group(1)))
            last = match.end()
        pieces.append(value[last:])

        def render(ctx: Mapping[str, Any]) -> str:
            return "".join(p if isinstance(p, str) else _as_text(_lookup(p, ctx)) for p in pieces)

        return render
    if isinstance(value, Mapping):
        compiled = {k: compile_value(v) for k, v in value.items()}
        if all(c is None for c in compiled.values()):
            return None
        return lambda ctx: {k: (c(ctx) if c else value[k]) for k, c in compiled.items()}
    if isinstance(value, list):
        compiled_items = [compile_value(v) for v in value]
        if all(c is None for c in compiled_items):
            return None
        return lambda ctx: [c(ctx) if c else v for c, v in zip(compiled_items, value, strict=True)]
    return None
