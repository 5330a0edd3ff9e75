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
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from . import limits
from .actions import Registry, default_registry
from .approvalspec import EscalateSpec, check_fields, reference_problem, step_problems
from .conditions import WhenSpec
from .errors import SpecError
from .expressions import ExpressionError, find_references
from .fields import FieldSpec
from .specgraph import Ancestry, find_cycle
from .stepkinds import ON_TIMEOUT, event_problems, kind_problems
from .suggest import did_you_mean
from .yamltext import YamlTextError, field_path, line_of, parse

__all__ = ["RetrySpec", "StepSpec", "WorkflowSpec", "is_plain_spec", "load_plain_spec", "load_spec", "parse_duration"]

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"


def parse_duration(value: Any, *, zero: bool = False, maximum: float = limits.MAX_DURATION) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or ``"500ms"``.

    Bounded: more than 0 (or 0 with ``zero=True``) and at most ``maximum``
    (:data:`~airt_nb.limits.MAX_DURATION`, 366 days); ``inf``, ``nan`` and
    booleans are refused with a ``ValueError`` that gives the allowed range.

    >>> parse_duration("2h")
    7200.0
    """
    return limits.duration(value, zero=zero, maximum=maximum)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySpec(_Model):
    """How often and how patiently a failing step is tried again.

    Delays are seconds or durations (``500ms``, ``30s``), at most one day
    (:data:`~airt_nb.limits.MAX_RETRY_DELAY`).
    """

    max_attempts: int = 3
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    initial_delay: float = 0.5
    max_delay: float = 30.0
    jitter: StrictBool = True

    @field_validator("max_attempts", mode="before")
    @classmethod
    def _attempts(cls, value: Any) -> Any:
        return limits.number(value, low=1, high=100, integer=True)

    @field_validator("initial_delay", "max_delay", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        return parse_duration(value, zero=True, maximum=limits.MAX_RETRY_DELAY)

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
    """One step: an action to run, a ``human_approval`` or an event to wait for, or a child ``workflow``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    type: Literal["action", "human_approval", "wait_event", "workflow"] = "action"
    description: str | None = None
    action: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] | None = None
    retry: RetrySpec | None = None
    message: str | None = None
    approvers: list[str] = Field(default_factory=list)
    timeout: float | None = None
    on_timeout: str | None = None  # each waiting kind has its choices (see stepkinds)
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    min_approvals: int = 1
    exclude_requester: StrictBool = False
    authenticated: StrictBool = False
    remind_every: float | None = None
    escalate: EscalateSpec | None = None
    when: WhenSpec | None = None
    event: str | None = None
    payload_schema: dict[str, Any] | bool | None = Field(default=None, alias="schema")
    uses: str | None = Field(default=None, max_length=4096)

    @field_validator("timeout", "remind_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("min_approvals", mode="before")
    @classmethod
    def _approvals(cls, value: Any) -> Any:
        return limits.number(value, low=1, high=limits.MAX_APPROVALS, integer=True)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        return check_fields(value)

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WorkflowSpec(_Model):
    """A validated workflow: what :func:`~airt_nb.load_spec` returns (immutable).

    Examples
    --------
    >>> import airt_nb
    >>> spec = airt_nb.load_spec({"name": "two", "steps": [
    ...     {"name": "a", "action": "wait", "inputs": {"seconds": 0}},
    ...     {"name": "b", "action": "wait", "inputs": {"seconds": 0}}]})
    >>> spec.max_parallel, spec.dependencies()
    (4, {'a': (), 'b': ('a',)})
    """

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    max_parallel: int = 4

    @field_validator("max_parallel", mode="before")
    @classmethod
    def _parallel(cls, value: Any) -> Any:
        return limits.number(value, low=1, high=256, integer=True)

    @model_validator(mode="before")
    @classmethod
    def _default_on_timeout(cls, data: Any) -> Any:
        # Each kind of step that waits has its own default (approvals: reject; events: fail).  Set
        # here, in one call for the whole spec, rather than by a validator of each step: a long
        # spec's steps are validated without calling Python for each.
        # A type that is not text (a list...) is left for the field's own message.
        steps = data.get("steps") if type(data) is dict or isinstance(data, Mapping) else None
        if not isinstance(steps, list | tuple):
            return data
        filled = None
        for i, step in enumerate(steps):
            if type(step) is dict or isinstance(step, Mapping):
                kind = step.get("type")
                if type(kind) is str and kind in ON_TIMEOUT and step.get("on_timeout") is None:
                    if filled is None:
                        filled = list(steps)
                    filled[i] = {**step, "on_timeout": ON_TIMEOUT[kind][0]}
        return data if filled is None else {**data, "steps": filled}

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
        """The spec as JSON, fields left at their defaults omitted: what is stored and fingerprinted.

        Validating it again gives the same spec.  Compact because it is
        written with the first run of every spec (a long one: a thousand
        steps at tens of bytes each, not hundreds).
        """
        return self.model_dump_json(by_alias=True, exclude_defaults=True)

    @property
    def fingerprint(self) -> str:
        """A short hash of :meth:`to_json`: runs of one spec share it (``runs()`` column ``spec_hash``)."""
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


_WANTED = {
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
}


def _wrong_type(wanted: str, given: Any, from_yaml: bool) -> str:
    shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
    shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
    msg = f"must be {wanted}, got {shown}"
    if from_yaml and wanted == "text" and (isinstance(given, bool | int | float) or given is None):
        # YAML reads yes/no/on/off/true/false as booleans, bare numbers as numbers and null or ~ as nothing
        msg += "; put the value in quotes to keep it as text"
    return msg


def _pydantic_problems(exc: pydantic.ValidationError, data: Any, lines: Mapping) -> list[tuple]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = _HINTS.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc, data)
            if allowed:
                hint = did_you_mean(str(loc[-1]), allowed)
                msg = f"unknown key {loc[-1]!r}; {hint + ' ' if hint else ''}allowed here: {', '.join(allowed)}"
        elif err["type"] == "missing":
            msg = f"{loc[-1]!r} is required; add it"
        elif err["type"] == "literal_error":
            msg = f"{err['msg'].replace('Input should be', 'must be')} (got {err.get('input')!r})"
        elif err["type"].startswith("value_error"):
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
        elif err["type"] in _WANTED:
            msg = _wrong_type(_WANTED[err["type"]], err.get("input"), bool(lines))
        elif err["type"] == "string_too_long":
            msg = f"{err['msg'].replace('String should have', 'has more than').replace('at most ', '')}; shorten it"
        problems.append((_line_of(lines, loc), _field(loc), msg))
    return problems


def _duplicate_name(name: str, first: int) -> str:
    return f"duplicate step name {name!r} (also steps[{first}]); rename one"


def _no_step(dep: str, names: Mapping[str, int]) -> str:
    hint = did_you_mean(dep, names)
    return f"no step named {dep!r}; {hint + ' ' if hint else ''}steps are: {', '.join(names)}"


def _unknown_action(action: str, registry: Registry) -> str:
    known = ", ".join(registry.names()) or "none"
    hint = did_you_mean(action, registry.names())
    return f"unknown action {action!r}; {hint + ' ' if hint else ''}define it with @action before starting (registered: {known})"


def _shape_problems(data: Mapping[str, Any], lines: Mapping, registry: Registry, check_actions: bool) -> list[tuple]:
    """What the semantic checks would also say, read from the raw spec when pydantic refused part of it
    (duplicate names, unknown dependencies, unknown actions): so that one round of fixes is enough."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    problems: list[tuple] = []
    names: dict[str, int] = {}
    for i, step in enumerate(steps):
        name = step.get("name") if isinstance(step, Mapping) else None
        if isinstance(name, str):
            if name in names:
                path: tuple[Any, ...] = ("steps", i, "name")
                problems.append((_line_of(lines, path), _field(path), _duplicate_name(name, names[name])))
            else:
                names[name] = i
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        deps = step.get("depends_on")
        for j, dep in enumerate([deps] if isinstance(deps, str) else deps if isinstance(deps, list) else []):
            if isinstance(dep, str) and dep not in names:
                path = ("steps", i, "depends_on", j)
                problems.append((_line_of(lines, path), _field(path), _no_step(dep, names)))
        act = step.get("action")
        if check_actions and isinstance(act, str) and step.get("type", "action") == "action" and act not in registry:
            path = ("steps", i, "action")
            problems.append((_line_of(lines, path), _field(path), _unknown_action(act, registry)))
    return problems


def _allowed_keys(loc: tuple[Any, ...], data: Any) -> list[str]:
    if len(loc) == 1:
        return list(WorkflowSpec.model_fields)
    if loc[0] == "steps" and len(loc) == 3:
        return [f.alias or name for name, f in StepSpec.model_fields.items()]
    if loc[0] == "steps" and len(loc) == 4 and loc[2] == "retry":
        return list(RetrySpec.model_fields)
    if loc[0] == "steps" and len(loc) == 4 and loc[2] == "escalate":
        return list(EscalateSpec.model_fields)
    if loc[0] == "steps" and len(loc) == 4 and loc[2] == "when":
        return ["value", "equals", "not_equals", "in"]
    if loc[0] == "steps" and len(loc) == 5 and loc[2] == "fields":
        return list(FieldSpec.model_fields)
    return []


# -- semantic checks ---------------------------------------------------------------------

#: The keys an action step may hold (every other one belongs to another kind of step).
_ACTION_KEYS = frozenset({"name", "type", "description", "action", "inputs", "depends_on", "retry", "when"})


def _semantic_problems(
    spec: WorkflowSpec, lines: Mapping, registry: Registry, *, finite_checked: bool = False, check_actions: bool = True
) -> list[tuple]:
    """Problems pydantic cannot see; ``finite_checked``: the spec is known to hold no ``inf``/``nan``;
    ``check_actions``: unknown actions are problems (not for a spec another process will run)."""
    problems: list[tuple] = []

    def add(path: tuple[Any, ...], message: str) -> None:
        problems.append((_line_of(lines, path), _field(path), message))

    index: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in index:
            add(("steps", i, "name"), _duplicate_name(step.name, index[step.name]))
        else:
            index[step.name] = i

    deps = spec.dependencies()
    for i, step in enumerate(spec.steps):
        for j, dep in enumerate(step.depends_on or []):
            path: tuple[Any, ...] = ("steps", i, "depends_on", j)
            if dep == step.name:
                add(path, f"step {step.name!r} cannot depend on itself")
            elif dep not in index:
                add(path, _no_step(dep, index))

    cycle = find_cycle(deps, index)
    if cycle:
        add(
            ("steps", index[cycle[0]], "depends_on"),
            f"dependency cycle {' -> '.join(cycle)}; remove one of these depends_on entries",
        )

    depends_on = Ancestry(deps) if not cycle else None
    event_problems(spec.steps, add)
    bare: dict[str, list[tuple[str, str]]] = {}  # an action's problems when a step gives it no inputs
    for i, step in enumerate(spec.steps):
        if (
            not step.inputs
            and step.when is None
            and step.type == "action"
            and step.action
            and step.model_fields_set <= _ACTION_KEYS
        ):
            # The commonest step of a long spec, validated at every first start: an action step with
            # only action keys and no inputs. Its action's problems are all it can have.
            found = bare.get(step.action)
            if found is None:
                act = registry.get(step.action)
                if act is None:
                    found = [("action", _unknown_action(step.action, registry))] if check_actions else []
                else:
                    found = [("inputs", m.split(": ", 1)[1] if ": " in m else m) for m in act.check_inputs({})]
                bare[step.action] = found
            for field_name, message in found:
                add(("steps", i, field_name), message)
            continue
        # An action step that names only action keys has nothing for the kind checks to find: the
        # common case, and a long spec of such steps is validated at every first start.
        if step.type != "action" or not step.action or not step.model_fields_set <= _ACTION_KEYS:
            kind_problems(step, add, ("steps", i))
            step_problems(spec, step, i, add)
        dynamic: set[str] = set()
        when = step.when.value if step.when is not None else None
        for field_name, value in (("inputs", step.inputs), ("message", step.message), ("when", when)):
            if not value and (value is None or value == {}):
                continue
            try:
                refs = list(find_references(value))
            except ExpressionError as exc:
                add(("steps", i, field_name), str(exc))
                continue
            for sub, ref in refs:
                path = ("steps", i, field_name, *sub) if field_name != "when" else ("steps", i, "when")
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
                        hint = did_you_mean(target, index)
                        add(path, f"${{{{ {ref.text} }}}}: no step named {target!r}" + (f"; {hint}" if hint else ""))
                    elif target == step.name:
                        add(path, f"${{{{ {ref.text} }}}}: a step cannot use its own outputs")
                    elif depends_on is not None and not depends_on(step.name, target):
                        order = "comes later" if index[target] > i else "is not one of its dependencies"
                        add(
                            path,
                            f"${{{{ {ref.text} }}}}: step {target!r} {order}; "
                            f"add it to depends_on of {step.name!r} (directly or through another step)",
                        )
                    else:
                        problem = reference_problem(spec.steps[index[target]], ref)
                        if problem:
                            add(path, problem)

        reported = len(problems)
        if step.type == "action" and step.action:
            act = registry.get(step.action)
            if act is None and not check_actions:
                pass
            elif act is None:
                add(("steps", i, "action"), _unknown_action(step.action, registry))
            else:
                for message in act.check_inputs(step.inputs, dynamic=frozenset(dynamic)):
                    key = message.split(":", 1)[0]
                    add(
                        ("steps", i, "inputs", key) if key in step.inputs else ("steps", i, "inputs"),
                        message.split(": ", 1)[1] if ": " in message else message,
                    )
        if not finite_checked:
            seen = {field for _, field, _ in problems[reported:]}
            _add_not_finite(add, ("steps", i, "inputs"), step.inputs, seen)
    if not finite_checked:
        _add_not_finite(add, ("inputs",), spec.inputs, set())
    return problems


def _add_not_finite(add: Any, where: tuple[Any, ...], value: Any, seen: set[str]) -> None:
    """``inf`` / ``nan`` in free values (numeric fields said so already, with their range)."""
    found = limits.value_problem(value)
    if found is not None and _field((*where, *found[0][:1])) not in seen:
        add((*where, *found[0]), found[1])


# -- limits ----------------------------------------------------------------------------------


def _check_limits(data: Mapping[str, Any], lines: Mapping, name: str | None) -> None:
    """Refuse what pydantic and the engine must never see: too many steps, too deep, not JSON.

    Runs before validation because validating (and later storing) a value
    nested thousands deep or aliased a billion times would recurse or
    expand it; the walk here is iterative and stops at the first problem.
    """
    steps = data.get("steps")
    if isinstance(steps, list | tuple) and len(steps) > limits.MAX_STEPS:
        raise SpecError(
            [
                (
                    _line_of(lines, ("steps",)),
                    "steps",
                    f"{len(steps):,} steps, more than the limit of {limits.MAX_STEPS:,} (MAX_STEPS); "
                    "split the work into several workflows",
                )
            ],
            workflow=name,
        )
    found = limits.value_problem(data, max_depth=limits.MAX_DEPTH, max_nodes=limits.MAX_SPEC_NODES, finite=False)
    if found is not None:
        path, message = found
        if not path and "MAX_VALUE_NODES" in message:
            message = (
                f"the spec has more than {limits.MAX_SPEC_NODES:,} values (MAX_SPEC_NODES); "
                "keep data out of the spec (pass it as inputs or files)"
            )
        shown = path[:4] if "MAX_DEPTH" in message else path
        raise SpecError([(_line_of(lines, path), _field(shown), message)], workflow=name)


# -- entry point ----------------------------------------------------------------------------


_FILE_NAME = re.compile(r"[^\s:{}\[\]]{1,250}\.(?:ya?ml|json)", re.IGNORECASE)


def load_spec(
    source: str | Mapping[str, Any] | WorkflowSpec, *, registry: Registry | None = None, check_actions: bool = True
) -> WorkflowSpec:
    """Parse and validate a workflow spec.

    ``source`` is YAML text, a dict of the same shape, or a ``WorkflowSpec``.
    Raises :class:`~airt_nb.SpecError` with every problem found, each naming
    its YAML line and field.  With ``check_actions=False`` an action this
    process does not know is not a problem (a schedule added from a terminal
    names actions that the worker running it imports).

    Examples
    --------
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
        data: Any = source.model_dump(by_alias=True)
        lines: dict[tuple[Any, ...], int] = {}
    elif isinstance(source, str):
        try:
            data, lines = parse(source)
        except YamlTextError as exc:
            raise SpecError([(exc.line, exc.field, exc.message)]) from None
    elif isinstance(source, Mapping):
        data, lines = dict(source), {}
    elif isinstance(source, os.PathLike):
        raise SpecError(
            [
                (
                    None,
                    "",
                    "a spec is YAML text or a dict, not a path; pass the file's text: "
                    f"pathlib.Path({os.fspath(source)!r}).read_text()",
                )
            ]
        )
    else:
        raise SpecError([(None, "", f"a spec is YAML text or a dict, not {type(source).__name__}")])

    if not isinstance(data, Mapping):
        got = "nothing" if data is None else type(data).__name__
        if isinstance(data, str) and _FILE_NAME.fullmatch(data.strip()):
            name = data.strip()
            got = f"the text {name!r}, which looks like a file name; pass the file's text: pathlib.Path({name!r}).read_text()"
        raise SpecError([(1 if lines else None, "", f"a workflow spec is a mapping with name: and steps:, got {got}")])
    return _validated(data, lines, registry, plain=is_plain_spec(data), check_actions=check_actions)


def is_plain_spec(data: Any) -> bool:
    """True if ``data`` is certainly plain JSON within a spec's limits (:func:`~airt_nb.limits.is_plain`
    with :data:`~airt_nb.limits.MAX_SPEC_NODES`): what :func:`load_plain_spec` may be given."""
    return limits.is_plain(data, max_depth=limits.MAX_DEPTH, max_nodes=limits.MAX_SPEC_NODES)


def load_plain_spec(data: dict[str, Any], *, registry: Registry | None = None) -> WorkflowSpec:
    """:func:`load_spec` of a dict that :func:`is_plain_spec` has accepted: the walk over every value
    is not done twice (the engine looks first, to key its cache of validated specs).

    >>> data = {"name": "one", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]}
    >>> is_plain_spec(data) and load_plain_spec(data).name
    'one'
    """
    return _validated(dict(data), {}, registry or default_registry, plain=True, check_actions=True)


def _validated(
    data: Mapping[str, Any], lines: Mapping, registry: Registry, *, plain: bool, check_actions: bool
) -> WorkflowSpec:
    name = data.get("name") if isinstance(data.get("name"), str) else None
    if not plain or (
        isinstance(data.get("steps"), list) and len(data["steps"]) > limits.MAX_STEPS
    ):  # look closer: say what and where
        _check_limits(data, lines, name)
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        found = _pydantic_problems(exc, data, lines)
        seen = {field for _, field, _ in found}
        found += [p for p in _shape_problems(data, lines, registry, check_actions) if p[1] not in seen]
        raise SpecError(sorted(found, key=lambda p: p[0] or 0), workflow=name) from None
    problems = _semantic_problems(spec, lines, registry, finite_checked=plain, check_actions=check_actions)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: p[0] or 0), workflow=spec.name)
    return spec
