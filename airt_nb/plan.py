"""A spec compiled for execution: the DAG as indexes, expressions as resolvers.

Compiled once per distinct spec and cached by its fingerprint, so that
resuming ten thousand copies of one workflow parses its spec once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .expressions import Resolver, compile_value
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
    event: str | None = None
    schema: Any = None
    uses: str | None = None
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

    @classmethod
    def compile(cls, spec: WorkflowSpec, *, spec_json: str | None = None) -> Plan:
        """Compile ``spec``; ``spec_json`` is its ``to_json()`` if the caller has it already."""
        deps = spec.dependencies()
        steps: list[PlannedStep] = []
        for i, s in enumerate(spec.steps):
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
        by_name = {p.name: p for p in steps}
        for p in steps:
            for d in p.deps:
                by_name[d].dependents.append(p.name)
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
        seen: set[str] = set()
        order: list[PlannedStep] = []
        for root in self.steps:
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
                stack.extend((self.by_name[d], False) for d in reversed(step.deps) if d not in seen)
        return order


Compiler = Callable[[WorkflowSpec], Plan]
