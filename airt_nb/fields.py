"""Typed fields an approver fills in: their definitions, and the values a decision brings.

A ``human_approval`` step may declare ``fields``::

    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
      plan: {type: choice, options: [canary, full], default: canary}
      note: {type: string, required: false, description: "for the change log"}

Types are ``string``, ``integer``, ``number``, ``boolean`` and ``choice``
(with ``options``).  A definition is checked when the spec loads
(:class:`FieldSpec`, a pydantic model: a bad one is a ``SpecError`` with its
line); the values of a decision are checked against the definitions when
the decision arrives (:func:`check_values`, with a pydantic model built from
the definitions: a bad value is refused before anything is recorded).  An
approval fills in defaults and ``None`` for optional fields left empty, so
``${{ steps.review.outputs.values.NAME }}`` always finds every field.

Imports nothing from airt_nb but the limits.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from . import limits

__all__ = [
    "FIELD_NAME",
    "FieldSpec",
    "FieldValuesError",
    "check_values",
    "describe_field",
    "parse_value_text",
    "parse_values",
]

#: A field's name: usable in ``${{ steps.NAME.outputs.values.FIELD }}``.
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

FieldType = Literal["string", "integer", "number", "boolean", "choice"]
_TRUE = ("true", "yes", "y", "on", "1")
_FALSE = ("false", "no", "n", "off", "0")


class FieldValuesError(ValueError):
    """Values that do not fit the fields: ``problems`` lists ``(field, message)``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar_text(value: Any) -> str:
    """How a refused value is shown: as JSON, or by its type when it is not JSON (an object, bytes...)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else f"{value[:77]!r}..."
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return f"a value of type {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:77]}..."


class FieldSpec(BaseModel):
    """One typed field of an approval step (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    description: str | None = Field(default=None, max_length=1000)
    default: Any = None
    required: StrictBool = True
    minimum: float | None = None
    maximum: float | None = None
    options: list[Any] | None = None

    @field_validator("minimum", "maximum", mode="before")
    @classmethod
    def _bound(cls, value: Any) -> Any:
        if value is not None and not _is_number(value):
            raise ValueError(f"{_scalar_text(value)} is not a number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        kind = self.type
        if kind == "choice":
            if not self.options:
                raise ValueError("a choice field needs options: [...] (the values the approver picks from)")
            if len(self.options) > limits.MAX_FIELD_OPTIONS:
                raise ValueError(f"{len(self.options)} options, more than {limits.MAX_FIELD_OPTIONS}; keep fewer")
            seen: list[Any] = []
            for option in self.options:
                if not isinstance(option, str | int | float | bool) or (
                    isinstance(option, float) and not math.isfinite(option)
                ):
                    raise ValueError(f"option {option!r} is not text, a number or a boolean")
                if isinstance(option, str) and len(option) > 200:
                    raise ValueError(f"option {option[:20]!r}... is longer than 200 characters")
                if any(_same(option, other) for other in seen):
                    raise ValueError(f"option {_scalar_text(option)} is listed twice")
                seen.append(option)
        elif self.options is not None:
            raise ValueError(f"options apply to choice fields only (this one is {kind}); remove options")
        if kind not in ("integer", "number"):
            for key in ("minimum", "maximum"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} applies to integer and number fields only (this one is {kind})")
        for key in ("minimum", "maximum"):
            bound = getattr(self, key)
            if bound is None:
                continue
            if not math.isfinite(bound) or abs(bound) > limits.MAX_FIELD_NUMBER:
                raise ValueError(f"{key} {bound!r} is out of range; use a number within ±{limits.MAX_FIELD_NUMBER:g}")
            if kind == "integer" and not float(bound).is_integer():
                raise ValueError(f"{key} {bound!r} of an integer field must be a whole number")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum:g} is more than maximum {self.maximum:g}")
        if self.default is not None:
            try:
                _check(self, self.default)
            except ValueError as exc:
                raise ValueError(f"default {_scalar_text(self.default)} does not fit the field: {exc}") from None
        return self

    def as_json(self) -> dict[str, Any]:
        """The definition as stored with the approval and sent to pages and webhooks."""
        data = self.model_dump(exclude_none=True)
        if self.type == "integer":
            for key in ("minimum", "maximum"):
                if key in data:
                    data[key] = int(data[key])
        return data


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _check(spec: FieldSpec, value: Any) -> Any:
    """``value`` as the field stores it, or a ``ValueError`` saying what fits."""
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{_scalar_text(value)} is not text")
        if len(value) > limits.MAX_FIELD_TEXT:
            raise ValueError(f"{len(value):,} characters, more than {limits.MAX_FIELD_TEXT:,}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{_scalar_text(value)} is not true or false")
        return value
    if kind == "choice":
        for option in spec.options or ():
            if _same(option, value):
                return option
        listed = ", ".join(_scalar_text(o) for o in spec.options or ())
        raise ValueError(f"{_scalar_text(value)} is not one of the options ({listed})")
    if not _is_number(value) or not math.isfinite(value):
        what = "a whole number" if kind == "integer" else "a number"
        raise ValueError(f"{_scalar_text(value)} is not {what}")
    if kind == "integer" and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        value = int(value)
    if abs(value) > limits.MAX_FIELD_NUMBER:
        raise ValueError(f"{value!r} is out of range (at most ±{limits.MAX_FIELD_NUMBER:g})")
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{value!r} is out of range; {describe_range(spec)}")
    return value


def describe_range(spec: FieldSpec) -> str:
    """``from 1 to 10``, ``at least 1``, ``at most 10`` or ``any``."""
    fmt = (lambda v: str(int(v))) if spec.type == "integer" else (lambda v: f"{v:g}")
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        return f"from {fmt(low)} to {fmt(high)}"
    if low is not None:
        return f"at least {fmt(low)}"
    if high is not None:
        return f"at most {fmt(high)}"
    return "any"


def describe_field(spec: FieldSpec | Mapping[str, Any]) -> str:
    """One line for people: ``integer from 1 to 10, default 2`` or ``choice of canary, full``."""
    spec = _as_spec(spec)
    parts: list[str] = [spec.type]
    if spec.type in ("integer", "number") and (spec.minimum is not None or spec.maximum is not None):
        parts[0] += f" {describe_range(spec)}"
    if spec.type == "choice":
        parts[0] += " of " + ", ".join(str(o) for o in spec.options or ())
    if spec.default is not None:
        # Text as it is, unless it would read as nothing (an empty default): then quoted.
        shown = spec.default if isinstance(spec.default, str) and spec.default.strip() else json.dumps(spec.default)
        parts.append(f"default {shown}")
    if not spec.required:
        parts.append("optional")
    return ", ".join(parts)


def _as_spec(spec: FieldSpec | Mapping[str, Any]) -> FieldSpec:
    return spec if isinstance(spec, FieldSpec) else FieldSpec.model_validate(dict(spec))


# -- values -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _model(fields_json: str, complete: bool) -> type[BaseModel]:
    """A pydantic model of the values ``fields_json`` allows (cached: one per distinct field set)."""
    specs = {name: FieldSpec.model_validate(spec) for name, spec in json.loads(fields_json).items()}
    members: dict[str, Any] = {}
    for name, spec in specs.items():
        checked = Annotated[Any, AfterValidator(functools.partial(_checked, spec))]
        if complete and spec.required and spec.default is None:
            members[name] = (checked, ...)
        else:
            members[name] = (checked, _UNSET)
    return pydantic.create_model(  # type: ignore[call-overload,no-any-return]
        "Values", __config__=ConfigDict(extra="forbid"), **members
    )


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()


def _checked(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        if spec.required:
            raise ValueError("a value is required (it is not optional)")
        return None
    return _check(spec, value)


def check_values(fields: Mapping[str, Any] | None, values: Any, *, complete: bool = True) -> dict[str, Any]:
    """The values of a decision, checked against ``fields`` (name -> definition).

    With ``complete`` (an approval) every field is in the result: a given
    value, else its default, else ``None`` (optional fields); a required field
    without a default must be given.  Without it (a rejection) only the given
    values are checked and returned.  Raises :class:`FieldValuesError` naming
    each field and what fits it.

    >>> check_values({"replicas": {"type": "integer", "default": 2, "minimum": 1}}, {})
    {'replicas': 2}
    >>> check_values({"replicas": {"type": "integer", "minimum": 1}}, {"replicas": 0})
    Traceback (most recent call last):
    ...
    airt_nb.fields.FieldValuesError: replicas: 0 is out of range; at least 1
    """
    fields = dict(fields or {})
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise FieldValuesError(
            [("", f"values must be a mapping of field names to values, not {type(values).__name__}")]
        )
    if not fields:
        if values:
            raise FieldValuesError(
                [("", f"this approval has no fields, so it takes no values (got {', '.join(map(str, values))})")]
            )
        return {}
    bad_keys = [k for k in values if not isinstance(k, str)]
    if bad_keys:
        raise FieldValuesError([("", f"field names are text, not {bad_keys[0]!r}")])
    specs = {name: _as_spec(spec) for name, spec in fields.items()}
    fields_json = json.dumps({n: s.as_json() for n, s in specs.items()}, sort_keys=True)
    try:
        model = _model(fields_json, complete).model_validate(dict(values))
    except pydantic.ValidationError as exc:
        raise FieldValuesError(_problems(exc, specs)) from None
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        given = getattr(model, name)
        if given is not _UNSET:
            out[name] = given
        elif complete:
            out[name] = spec.default
    return out


def _problems(exc: pydantic.ValidationError, specs: Mapping[str, FieldSpec]) -> list[tuple[str, str]]:
    problems = []
    names = ", ".join(specs)
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            problems.append((name, f"no such field (the fields are: {names})"))
        elif err["type"] == "missing":
            problems.append((name, f"required; give a value ({describe_field(specs[name])})"))
        else:
            message = str(err.get("ctx", {}).get("error", err["msg"]))
            hint = f" ({describe_field(specs[name])})" if name in specs else ""
            plain = "range" in message or "options" in message
            problems.append((name, message if plain else message + hint))
    return problems


def parse_value_text(fields: Mapping[str, Any] | None, text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from a command line, typed by the field ``NAME`` (text when it has none).

    ``integer`` and ``number`` fields take numbers, ``boolean`` fields
    ``true``/``false`` (``yes``/``no``, ``1``/``0``), ``choice`` fields the
    option written as it is listed.  A value that does not convert is passed
    on as text, for :func:`check_values` to refuse with the field's rule.

    >>> parse_value_text({"replicas": {"type": "integer"}}, "replicas=3")
    ('replicas', 3)
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{text!r} is not NAME=VALUE; write e.g. --value replicas=3")
    spec = (fields or {}).get(name)
    if spec is None:
        return name, raw
    kind = _as_spec(spec).type
    try:
        if kind == "integer":
            return name, int(raw.strip())
        if kind == "number":
            number = float(raw.strip())
            return name, int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number
    except ValueError:
        return name, raw
    if kind == "boolean" and raw.strip().lower() in (*_TRUE, *_FALSE):
        return name, raw.strip().lower() in _TRUE
    if kind == "choice":
        for option in _as_spec(spec).options or ():
            if str(option).lower() == raw.lower() if isinstance(option, bool) else str(option) == raw:
                return name, option
    return name, raw


def parse_values(fields: Mapping[str, Any] | None, texts: list[str] | tuple[str, ...]) -> dict[str, Any] | None:
    """``--value NAME=VALUE`` options (repeatable) as a dict typed by ``fields``; ``None`` if there are none.

    >>> parse_values({"replicas": {"type": "integer"}, "go": {"type": "boolean"}}, ["replicas=3", "go=yes"])
    {'replicas': 3, 'go': True}
    """
    if not texts:
        return None
    values: dict[str, Any] = {}
    for text in texts:
        name, value = parse_value_text(fields, text)
        if name in values:
            raise ValueError(f"{name} is given twice (--value {text}); give each field once")
        values[name] = value
    return values
