"""The workflow spec: pydantic models of the YAML, and :func:`load_spec`.

``load_spec`` turns YAML text (or a dict) into a :class:`WorkflowSpec` and
refuses, as one :class:`~airt_nb.SpecError` listing every problem with its
YAML line and field path, anything that would fail later: syntax errors,
unknown keys, bad names, duplicate steps, unknown or later ``depends_on``,
cycles, ``${{ }}`` lookups of steps that are not (transitively) depended on,
unknown actions and inputs that do not fit the action's parameters.

Nothing here touches the database: a refused spec writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .actions import Registry, default_registry
from .errors import SpecError
from .expressions import ExpressionError, find_references
from .yamltext import YamlTextError, field_path, line_of, parse

__all__ = ["RetrySpec", "StepSpec", "WorkflowSpec", "load_spec", "parse_duration"]

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or ``"500ms"``.

    >>> parse_duration("2h")
    7200.0
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '30s', '15m', '2h', '1d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m, 2h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be more than 0 seconds, got {value!r}")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySpec(_Model):
    """How often and how patiently a failing step is tried again."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    initial_delay: float = Field(default=0.5, ge=0, le=86400)
    max_delay: float = Field(default=30.0, ge=0, le=86400)
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (without jitter)."""
        if self.backoff == "fixed":
            base = self.initial_delay
        elif self.backoff == "linear":
            base = self.initial_delay * attempt
        else:
            base = self.initial_delay * (2 ** (attempt - 1))
        return min(base, self.max_delay)


class StepSpec(_Model):
    """One step: an action to run, or a ``human_approval`` to wait for."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    type: Literal["action", "human_approval"] = "action"
    description: str | None = None
    action: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] | None = None
    retry: RetrySpec | None = None
    message: str | None = None
    approvers: list[str] = Field(default_factory=list)
    timeout: float | None = None
    on_timeout: Literal["reject", "approve"] = "reject"

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WorkflowSpec(_Model):
    """A validated workflow (see DESIGN §1)."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    max_parallel: int = Field(default=4, ge=1, le=256)

    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Each step's direct dependencies (the step before it when ``depends_on`` is absent)."""
        deps: dict[str, tuple[str, ...]] = {}
        previous: str | None = None
        for step in self.steps:
            if step.depends_on is not None:
                deps[step.name] = tuple(step.depends_on)
            else:
                deps[step.name] = (previous,) if previous else ()
            previous = step.name
        return deps

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_defaults=False), sort_keys=True)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.to_json())


def fingerprint_of(spec_json: str) -> str:
    """The fingerprint of a spec from its :meth:`WorkflowSpec.to_json` text."""
    return hashlib.sha256(spec_json.encode()).hexdigest()[:16]


# -- YAML with line numbers: see yamltext ------------------------------------------------

_field = field_path
_line_of = line_of


_HINTS = {
    "extra_forbidden": "unknown key; remove it or check its spelling",
    "missing": "is required",
    "string_pattern_mismatch": "use only letters, digits, '-' and '_'",
}


def _pydantic_problems(exc: pydantic.ValidationError, data: Any, lines: Mapping) -> list[tuple]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = _HINTS.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc, data)
            if allowed:
                msg = f"unknown key {loc[-1]!r}; allowed here: {', '.join(allowed)}"
        elif err["type"] == "missing":
            msg = f"{loc[-1]!r} is required; add it"
        elif err["type"] == "literal_error":
            msg = f"{err['msg'].replace('Input should be', 'must be')} (got {err.get('input')!r})"
        elif err["type"].startswith("value_error"):
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
        problems.append((_line_of(lines, loc), _field(loc), msg))
    return problems


def _allowed_keys(loc: tuple[Any, ...], data: Any) -> list[str]:
    if len(loc) == 1:
        return list(WorkflowSpec.model_fields)
    if loc[0] == "steps" and len(loc) == 3:
        return list(StepSpec.model_fields)
    if loc[0] == "steps" and len(loc) == 4 and loc[2] == "retry":
        return list(RetrySpec.model_fields)
    return []


# -- semantic checks ---------------------------------------------------------------------


def _semantic_problems(spec: WorkflowSpec, lines: Mapping, registry: Registry) -> list[tuple]:
    problems: list[tuple] = []

    def add(path: tuple[Any, ...], message: str) -> None:
        problems.append((_line_of(lines, path), _field(path), message))

    index: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in index:
            add(("steps", i, "name"), f"duplicate step name {step.name!r} (also steps[{index[step.name]}]); rename one")
        else:
            index[step.name] = i

    deps = spec.dependencies()
    for i, step in enumerate(spec.steps):
        for j, dep in enumerate(step.depends_on or []):
            path: tuple[Any, ...] = ("steps", i, "depends_on", j)
            if dep == step.name:
                add(path, f"step {step.name!r} cannot depend on itself")
            elif dep not in index:
                add(path, f"no step named {dep!r}; steps are: {', '.join(index)}")

    cycle = _find_cycle(deps, index)
    if cycle:
        add(
            ("steps", index[cycle[0]], "depends_on"),
            f"dependency cycle {' -> '.join(cycle)}; remove one of these depends_on entries",
        )

    depends_on = _Ancestry(deps) if not cycle else None
    for i, step in enumerate(spec.steps):
        if step.type == "action":
            if not step.action:
                add(("steps", i), "an action step needs 'action: <name>' (or type: human_approval)")
            for key in ("message", "timeout"):
                if getattr(step, key) is not None:
                    add(("steps", i, key), f"{key!r} applies to human_approval steps only; remove it")
            if step.approvers:
                add(("steps", i, "approvers"), "'approvers' applies to human_approval steps only; remove it")
        else:
            if step.action:
                add(("steps", i, "action"), "a human_approval step runs no action; remove 'action'")
            if step.inputs:
                add(("steps", i, "inputs"), "a human_approval step takes no inputs; use 'message'")
            if step.retry:
                add(("steps", i, "retry"), "a human_approval step is not retried; remove 'retry'")

        dynamic: set[str] = set()
        for field_name, value in (("inputs", step.inputs), ("message", step.message)):
            if value is None:
                continue
            try:
                refs = list(find_references(value))
            except ExpressionError as exc:
                add(("steps", i, field_name), str(exc))
                continue
            for sub, ref in refs:
                path = ("steps", i, field_name, *sub)
                if field_name == "inputs" and sub:
                    dynamic.add(str(sub[0]))
                if ref.root == "inputs" and ref.parts[1] not in spec.inputs:
                    declared = ", ".join(spec.inputs) or "none"
                    add(
                        path,
                        f"${{{{ {ref.text} }}}}: no workflow input {ref.parts[1]!r} (declared: {declared}); "
                        "declare it under the top-level inputs: with a default",
                    )
                elif ref.step is not None:
                    target = ref.step
                    if target not in index:
                        add(path, f"${{{{ {ref.text} }}}}: no step named {target!r}")
                    elif target == step.name:
                        add(path, f"${{{{ {ref.text} }}}}: a step cannot use its own outputs")
                    elif depends_on is not None and not depends_on(step.name, target):
                        order = "comes later" if index[target] > i else "is not one of its dependencies"
                        add(
                            path,
                            f"${{{{ {ref.text} }}}}: step {target!r} {order}; "
                            f"add it to depends_on of {step.name!r} (directly or through another step)",
                        )

        if step.type == "action" and step.action:
            act = registry.get(step.action)
            if act is None:
                known = ", ".join(n for n in registry.names()) or "none"
                add(
                    ("steps", i, "action"),
                    f"unknown action {step.action!r}; define it with @action before starting (registered: {known})",
                )
            else:
                for message in act.check_inputs(step.inputs, dynamic=frozenset(dynamic)):
                    key = message.split(":", 1)[0]
                    add(
                        ("steps", i, "inputs", key) if key in step.inputs else ("steps", i, "inputs"),
                        message.split(": ", 1)[1] if ": " in message else message,
                    )
    return problems


def _find_cycle(deps: Mapping[str, tuple[str, ...]], known: Mapping[str, int]) -> list[str]:
    """One dependency cycle as ``[a, b, ..., a]``, or ``[]``; iterative, so long chains never recurse."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        pending: list[list[str]] = [[d for d in deps[root] if d in known and d != root]]
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            dep = pending[-1].pop()
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append([d for d in deps[dep] if d in known and d != dep])
    return []


class _Ancestry:
    """Whether one step depends on another, directly or through other steps.

    Each step's ancestors are a bit mask over step positions, built on first
    use in dependency order: sets of names would cost memory and time
    quadratic in the length of a long chain of steps.  Needs an acyclic graph.
    """

    def __init__(self, deps: Mapping[str, tuple[str, ...]]):
        self._deps = deps
        self._masks: dict[str, int] | None = None
        self._bit = {name: 1 << i for i, name in enumerate(deps)}

    def _build(self) -> dict[str, int]:
        deps, bit = self._deps, self._bit
        masks: dict[str, int] = {}
        for root in deps:
            stack = [(root, False)]
            while stack:  # iterative post-order: a chain of thousands of steps must not recurse
                name, ready = stack.pop()
                if name in masks:
                    continue
                known = [d for d in deps[name] if d in deps]
                if ready:
                    mask = 0
                    for d in known:
                        mask |= bit[d] | masks[d]
                    masks[name] = mask
                else:
                    stack.append((name, True))
                    stack.extend((d, False) for d in known if d not in masks)
        return masks

    def __call__(self, step: str, target: str) -> bool:
        if self._masks is None:
            self._masks = self._build()
        return bool(self._masks.get(step, 0) & self._bit.get(target, 0))


# -- entry point ----------------------------------------------------------------------------


def load_spec(source: str | Mapping[str, Any] | WorkflowSpec, *, registry: Registry | None = None) -> WorkflowSpec:
    """Parse and validate a workflow spec.

    ``source`` is YAML text, a dict of the same shape, or a ``WorkflowSpec``.
    Raises :class:`~airt_nb.SpecError` with every problem found, each naming
    its YAML line and field.

    >>> spec = load_spec('''
    ... name: hello
    ... steps:
    ...   - name: pause
    ...     action: wait
    ...     inputs: {seconds: 0}
    ... ''')
    >>> [s.name for s in spec.steps]
    ['pause']
    """
    registry = registry or default_registry
    if isinstance(source, WorkflowSpec):
        data: Any = source.model_dump()
        lines: dict[tuple[Any, ...], int] = {}
    elif isinstance(source, str):
        try:
            data, lines = parse(source)
        except YamlTextError as exc:
            raise SpecError([(exc.line, exc.field, exc.message)]) from None
    elif isinstance(source, Mapping):
        data, lines = dict(source), {}
    else:
        raise SpecError([(None, "", f"a spec is YAML text or a dict, not {type(source).__name__}")])

    if not isinstance(data, Mapping):
        got = "nothing" if data is None else type(data).__name__
        raise SpecError([(1 if lines else None, "", f"a workflow spec is a mapping with name: and steps:, got {got}")])
    name = data.get("name") if isinstance(data.get("name"), str) else None
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = sorted(_pydantic_problems(exc, data, lines), key=lambda p: p[0] or 0)
        raise SpecError(problems, workflow=name) from None
    problems = _semantic_problems(spec, lines, registry)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: p[0] or 0), workflow=spec.name)
    return spec
