"""``when:``: a step runs only when one lookup matches a value.  Not an expression language.

::

    when: {value: "${{ steps.review.outputs.values.plan }}", equals: canary}
    when: {value: "${{ steps.review.outputs.values.plan }}", in: [canary, full]}
    when: {value: "${{ inputs.mode }}", not_equals: dry-run}
    when: "${{ steps.review.outputs.values.go }}"        # short for equals: true

``value`` is exactly one ``${{ }}`` lookup (the same lookups as in inputs,
checked the same way when the spec loads); it is compared, as JSON, with
one of ``equals``, ``not_equals`` or ``in`` (``true`` is not ``1``).  A step
whose ``when`` does not hold is SKIPPED.

Imports nothing from airt_nb but the expressions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from .expressions import ExpressionError, Reference, compile_value, parse_reference

__all__ = ["Condition", "WhenSpec", "same"]

_OPS = ("equals", "not_equals", "in")


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python says it is), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) in (type(b), int, float) and type(b) in (type(a), int, float)


def _plain(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, list | dict):
        raise ValueError(f"{where}: compare with text, a number, a boolean or null, not a {type(value).__name__}")


class WhenSpec(BaseModel):
    """A validated ``when:`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    value: str
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"value": data, "equals": True}
        return data

    @model_validator(mode="after")
    def _one_comparison(self) -> WhenSpec:
        given = [op for op in _OPS if op in self._given()]
        if len(given) != 1:
            which = f"both {' and '.join(given)}" if given else "none"
            raise ValueError(
                f"when: needs exactly one of equals, not_equals or in (got {which}); "
                'e.g. when: {value: "${{ steps.review.outputs.values.plan }}", equals: canary}'
            )
        op = given[0]
        operand = self.operand
        if op == "in":
            if not operand:
                raise ValueError("when.in: list at least one value")
            for item in operand:
                _plain(item, "when.in")
        else:
            _plain(operand, f"when.{op}")
        text = self.value.strip()
        if not (text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1):
            raise ValueError(
                f"when.value {self.value!r} must be exactly one lookup such as "
                '"${{ steps.review.outputs.values.plan }}" (no other text; nothing is evaluated)'
            )
        try:
            parse_reference(text[3:-2])
        except ExpressionError as exc:
            raise ValueError(f"when.value: {exc}") from None
        return self

    def _given(self) -> set[str]:
        fields = set(self.model_fields_set)
        if "in_" in fields:
            fields.discard("in_")
            fields.add("in")
        return fields

    @property
    def op(self) -> str:
        return next(op for op in _OPS if op in self._given())

    @property
    def operand(self) -> Any:
        return self.in_ if self.op == "in" else getattr(self, self.op)

    @property
    def reference(self) -> Reference:
        text = self.value.strip()
        return parse_reference(text[3:-2])

    @model_serializer
    def as_json(self) -> dict[str, Any]:
        """What was written (stored with the spec, so that it validates again as it is)."""
        return {"value": self.value, self.op: self.operand}


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled ``when``: ``holds(context)`` and a description for people."""

    reference: Reference
    op: str
    operand: Any
    resolver: Callable[[Mapping[str, Any]], Any]

    @classmethod
    def compile(cls, spec: WhenSpec) -> Condition:
        reference = spec.reference
        resolver = compile_value("${{ " + reference.text + " }}")
        assert resolver is not None
        return cls(reference, spec.op, spec.operand, resolver)

    def lookup(self, context: Mapping[str, Any]) -> Any:
        return self.resolver(context)

    def holds(self, context: Mapping[str, Any]) -> tuple[bool, Any]:
        """``(whether the step runs, the value looked up)``; raises ``ExpressionError`` if it cannot be found."""
        value = self.lookup(context)
        if self.op == "in":
            return any(same(value, option) for option in self.operand), value
        matched = same(value, self.operand)
        return (matched if self.op == "equals" else not matched), value

    def describe(self) -> str:
        """``steps.review.outputs.values.plan is "canary"`` (what must hold for the step to run)."""
        what = {"equals": "is", "not_equals": "is not", "in": "is one of"}[self.op]
        return f"{self.reference.text} {what} {json.dumps(self.operand)}"

    def why_not(self, value: Any) -> str:
        """Why the step was skipped: ``when: steps.review.outputs.values.plan is "full", not "canary"``."""
        if self.op == "equals":
            return f"when: {self.reference.text} is {json.dumps(value, default=str)}, not {json.dumps(self.operand)}"
        if self.op == "not_equals":
            return f"when: {self.reference.text} is {json.dumps(value, default=str)}"
        return f"when: {self.reference.text} is {json.dumps(value, default=str)}, not one of {json.dumps(self.operand)}"
