"""A spec compiled for execution: the DAG as indexes, expressions as resolvers.

Compiled once per distinct spec and cached by its fingerprint, so that
resuming ten thousand copies of one workflow parses its spec once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import limits
from .approvalspec import fields_json
from .conditions import Condition
from .expressions import Resolver, compile_value, find_references
from .spec import RetrySpec, WorkflowSpec, fingerprint_of
from .stepkinds import ON_TIMEOUT

__all__ = ["Plan", "PlannedStep"]


@dataclass(slots=True)
class PlannedStep:
    name: str
    index: int
    type: str
    action: str | None
    deps: tuple[str, ...]
    dependents: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    resolver: Resolver | None = None
    retry: RetrySpec | None = None
    message: str | None = None
    message_resolver: Resolver | None = None
    approvers: tuple[str, ...] = ()
    timeout: float | None = None
    on_timeout: str = "reject"
    #: an approval's typed fields (name -> definition as JSON) and rules (see airt_nb.approvalspec)
    fields: dict[str, dict[str, Any]] | None = None
    min_approvals: int = 1
    exclude_requester: bool = False
    authenticated: bool = False
    remind_every: float | None = None
    escalate_after: float | None = None
    escalate_to: tuple[str, ...] = ()
    condition: Condition | None = None
    #: steps whose outputs this step looks up (filled in only when the spec has a ``when``)
    looks_up: tuple[str, ...] = ()
    #: may be SKIPPED: it has a ``when``, or uses the outputs of a step that may be; checked before it starts
    conditional: bool = False
    #: an approval: the steps it previews and checks before they run (its dependents up to the next
    #: approval, nearest first, at most MAX_PREVIEW_STEPS); ``more``: how many further ones it gates
    gated: tuple[str, ...] = ()
    more_gated: int = 0
    #: an action step: the approvals that preview it (checked before it runs); empty on most steps
    gates: tuple[str, ...] = ()
    #: a wait_event step: the event's name and its payload's JSON Schema; a workflow step: the child spec's file
    event: str | None = None
    schema: Any = None
    uses: str | None = None
    #: an action step's inputs whose values look up the workflow's inputs and nothing else: checked
    #: against the action when a run starts (the others only when the step runs)
    from_inputs: tuple[str, ...] = ()
    # Precomputed, so that the hot path asks one attribute, not the type's text:
    waits: bool = False  # waits for something outside (a decision, an event): never runs on a worker
    is_child: bool = False  # runs a child workflow

    @property
    def is_approval(self) -> bool:
        return self.type == "human_approval"

    @property
    def is_event(self) -> bool:
        return self.type == "wait_event"

    def resolve_inputs(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return self.resolver(context) if self.resolver else self.inputs  # type: ignore[no-any-return]

    def resolve_message(self, context: Mapping[str, Any]) -> str | None:
        return self.message_resolver(context) if self.message_resolver else self.message


@dataclass(slots=True)
class Plan:
    spec: WorkflowSpec
    spec_json: str
    spec_hash: str
    steps: list[PlannedStep]
    by_name: dict[str, PlannedStep]
    max_parallel: int
    has_children: bool = False  # some step runs a child workflow
    takes_inputs: bool = False  # some action step's inputs look up the workflow's inputs alone

    @classmethod
    def compile(cls, spec: WorkflowSpec, *, spec_json: str | None = None) -> Plan:
        """Compile ``spec``; ``spec_json`` is its ``to_json()`` if the caller has it already."""
        deps = spec.dependencies()
        steps: list[PlannedStep] = []
        for i, s in enumerate(spec.steps):
            if s.type == "action":  # the other kinds' keys are refused on an action step: left at their defaults
                p = PlannedStep(s.name, i, "action", s.action, deps[s.name])
                if s.inputs:
                    p.inputs = dict(s.inputs)
                    p.resolver = compile_value(p.inputs)
                    if p.resolver is not None:
                        p.from_inputs = _from_inputs(p.inputs)
                p.retry = s.retry
                steps.append(p)
            else:
                inputs = dict(s.inputs)
                steps.append(
                    PlannedStep(
                        name=s.name,
                        index=i,
                        type=s.type,
                        action=s.action,
                        deps=deps[s.name],
                        inputs=inputs,
                        resolver=compile_value(inputs) if inputs else None,
                        retry=s.retry,
                        message=s.message,
                        message_resolver=compile_value(s.message) if s.message else None,
                        approvers=tuple(s.approvers),
                        timeout=s.timeout,
                        on_timeout=s.on_timeout or ON_TIMEOUT.get(s.type, ("reject",))[0],
                        event=s.event,
                        schema=s.payload_schema,
                        uses=s.uses,
                        waits=s.type in ("human_approval", "wait_event"),
                        is_child=s.type == "workflow",
                    )
                )
            if s.type == "human_approval":
                p = steps[-1]
                p.fields = fields_json(s.fields) if s.fields else None
                p.min_approvals = s.min_approvals
                p.exclude_requester = s.exclude_requester
                p.authenticated = s.authenticated
                p.remind_every = s.remind_every
                if s.escalate is not None:
                    p.escalate_after, p.escalate_to = s.escalate.after, tuple(s.escalate.to)
            if s.when is not None:
                steps[-1].condition = Condition.compile(s.when)
        by_name = {p.name: p for p in steps}
        for p in steps:
            for d in p.deps:
                by_name[d].dependents.append(p.name)
        plan_steps_conditions(spec, steps, by_name)
        plan_gates(steps, by_name)
        if spec_json is None:
            spec_json = spec.to_json()
        return cls(
            spec=spec,
            spec_json=spec_json,
            spec_hash=fingerprint_of(spec_json),
            steps=steps,
            by_name=by_name,
            max_parallel=spec.max_parallel,
            has_children=any(p.is_child for p in steps),
            takes_inputs=any(p.from_inputs for p in steps),
        )

    def levels(self) -> list[list[str]]:
        """Steps grouped by depth: each group can run in parallel once the previous is done."""
        depth: dict[str, int] = {}
        for s in self.steps_in_dependency_order():
            depth[s.name] = 1 + max((depth[d] for d in s.deps), default=-1)
        out: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
        for s in self.steps:
            out[depth[s.name]].append(s.name)
        return out

    def steps_in_dependency_order(self) -> list[PlannedStep]:
        """Every step after its dependencies (iterative: a chain of thousands of steps must not recurse)."""
        return Plan.order(self.steps, self.by_name)

    @staticmethod
    def order(steps: list[PlannedStep], by_name: dict[str, PlannedStep]) -> list[PlannedStep]:
        seen: set[str] = set()
        order: list[PlannedStep] = []
        for root in steps:
            stack: list[tuple[PlannedStep, bool]] = [(root, False)]
            while stack:
                step, ready = stack.pop()
                if ready:
                    order.append(step)
                    continue
                if step.name in seen:
                    continue
                seen.add(step.name)
                stack.append((step, True))
                stack.extend((by_name[d], False) for d in reversed(step.deps) if d not in seen)
        return order


Compiler = Callable[[WorkflowSpec], Plan]


def _from_inputs(inputs: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of ``inputs`` whose values have expressions, every one of them ``inputs.*``."""
    keys = []
    for key, value in inputs.items():
        roots = {ref.root for _, ref in find_references(value)}
        if roots == {"inputs"}:
            keys.append(key)
    return tuple(keys)


def plan_steps_conditions(spec: WorkflowSpec, steps: list[PlannedStep], by_name: dict[str, PlannedStep]) -> None:
    """Which steps may be SKIPPED: those with a ``when`` and those that use their outputs (in order)."""
    if not any(p.condition is not None for p in steps):
        return  # nothing is ever skipped: no walk over the inputs
    for s, p in zip(spec.steps, steps, strict=True):
        used: dict[str, None] = {}
        when = s.when.value if s.when is not None else None
        for value in (s.inputs, s.message, when):
            if value:
                for _, ref in find_references(value):
                    if ref.step is not None and ref.step in by_name:
                        used[ref.step] = None
        p.looks_up = tuple(used)
    skippable: dict[str, bool] = {}
    for p in Plan.order(steps, by_name):
        skippable[p.name] = p.condition is not None or any(skippable.get(u, False) for u in p.looks_up)
        p.conditional = skippable[p.name]


def plan_gates(steps: list[PlannedStep], by_name: dict[str, PlannedStep]) -> None:
    """What each approval gates: its dependents up to the next approval, nearest first (bounded)."""
    for approval in steps:
        if not approval.is_approval:
            continue
        found: list[str] = []
        seen = {approval.name}
        queue = deque(approval.dependents)
        more = 0
        while queue:
            name = queue.popleft()
            if name in seen:
                continue
            seen.add(name)
            step = by_name[name]
            if step.is_approval:
                continue  # the next approval gates what follows it
            if step.type != "action":  # an event or a child workflow: nothing of its own to preview
                queue.extend(step.dependents)
                continue
            if len(found) < limits.MAX_PREVIEW_STEPS:
                found.append(name)
                step.gates = (*step.gates, approval.name)
            else:
                more += 1
            queue.extend(step.dependents)
        approval.gated = tuple(sorted(found, key=lambda n: by_name[n].index))
        approval.more_gated = more
