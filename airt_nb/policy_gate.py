"""The checks the engine asks the policy for, and the audit rows that record each answer.

:class:`PolicyGate` checks a workflow before it starts (every action step,
with the inputs known then; how many approvals its starter keeps waiting;
that every approval step can be approved at all), each step before it runs
(with its resolved inputs), and acting as someone else; every answer, allow
or deny, becomes a row of ``audit_log``.

Imports no engine.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from .errors import PolicyError, SpecError, StoreError
from .expressions import ExpressionError, compile_value, find_references
from .policy import UNKNOWN, AllowAll, FilePolicy, Policy, RolePolicy, Verdict
from .specgraph import Ancestry
from .timeutil import now_iso

if TYPE_CHECKING:
    from .plan import Plan, PlannedStep
    from .policy import ApprovalRuleSpec
    from .store.protocol import Store
    from .store.writes import Tx

__all__ = ["PolicyGate"]


class PolicyGate:
    """The engine's use of its policy (see the module docstring)."""

    def __init__(self, policy: Policy, store: Store):
        self.policy = policy
        self.store = store
        # Per spec (by its hash): the approval steps that name too few approvers for some requester.
        self._short: dict[str, tuple[PlannedStep, ...]] = {}

    def error(
        self, user: str, verdict: Verdict, what: str, *, workflow: str | None = None, step: str | None = None
    ) -> PolicyError:
        roles = self.policy.roles_of(user)
        role_text = ", ".join(roles) if roles else "none"
        reason = f": {verdict.reason}" if verdict.reason else ""
        where = f"workflow {workflow!r}, step {step!r}: " if workflow and step else ""
        return PolicyError(
            f"{where}user {user!r} (roles: {role_text}) may not {what}; refused by rule {verdict.rule!r}{reason}",
            user=user,
            roles=roles,
            rule=verdict.rule,
            workflow=workflow,
            step=step,
        )

    def row(self, event: str, user: str, verdict: Verdict, **kw: Any) -> dict[str, Any]:
        return {
            "at": now_iso(),
            "user": user,
            "roles": json.dumps(list(self.policy.roles_of(user))),
            "event": event,
            "decision": "allow" if verdict.allowed else "deny",
            "rule": verdict.rule,
            "workflow_id": kw.get("workflow_id"),
            "step_name": kw.get("step_name"),
            "action": kw.get("action"),
            "target": kw.get("target") or getattr(verdict, "target", None),
            "detail": kw.get("detail") or verdict.reason or None,
        }

    def record(
        self, event: str, user: str, verdict: Verdict, *, before: Sequence[dict[str, Any]] = (), **kw: Any
    ) -> None:
        """Write the audit rows of a check now (a refusal is recorded although nothing else is)."""
        rows = [*before, self.row(event, user, verdict, **kw)]

        def op(tx: Tx) -> None:
            for row in rows:
                tx.insert_audit(row)

        with contextlib.suppress(StoreError):
            self.store.write(op)

    def act_as(self, actor: str, other: str) -> dict[str, Any]:
        verdict = self.policy.check_act_as(actor, other)
        if not verdict.allowed:
            self.record("act_as", actor, verdict, target=other)
            raise self.error(actor, verdict, f"act as {other!r}")
        return self.row("act_as", actor, verdict, target=other)

    def check_start(
        self, user: str, plan: Plan, inputs: Mapping[str, Any], before: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Check every action step for ``user``; returns the audit rows to record with the start.

        ``before`` are rows already decided (acting as ``user``): recorded with a refusal too.
        Inputs that use only workflow inputs are checked with their values now;
        those that use another step's outputs are :data:`~airt_nb.policy.UNKNOWN`
        here and checked before the step runs.  An approval step that could never
        be approved, started by ``user`` under this policy, is refused too (see
        :meth:`_check_deciders`).
        """
        policy = self.policy
        rows = list(before)
        self._check_deciders(user, plan, before)
        if not policy.enforcing:  # everyone may do everything: nothing to check (history says who started it)
            return rows
        context = {"inputs": dict(inputs), "workflow": {"name": plan.spec.name}}
        for step in plan.steps:
            if step.is_approval or step.action is None:
                continue
            known: dict[str, Any] = {}
            for key, value in step.inputs.items():
                if any(ref.step or ref.parts == ("workflow", "id") for _, ref in find_references(value)):
                    known[key] = UNKNOWN
                    continue
                resolver = compile_value(value)
                try:
                    known[key] = resolver(context) if resolver else value
                except ExpressionError:
                    known[key] = UNKNOWN
            verdict = policy.check_action(user, step.action, known)
            if not verdict.allowed:
                detail = f"workflow {plan.spec.name!r}: {verdict.reason}"
                self.record(
                    "start", user, verdict, before=before, step_name=step.name, action=step.action, detail=detail
                )
                raise self.error(user, verdict, f"run action {step.action!r}", workflow=plan.spec.name, step=step.name)
            if policy.enforcing:
                rows.append(self.row("start", user, verdict, step_name=step.name, action=step.action))
        rows += self._required_gates(user, plan, before)
        if policy.enforcing and any(s.is_approval for s in plan.steps):
            limit = policy.check_pending(user, self.store.pending_approvals_of(user))
            if limit is not None and not limit.allowed:
                detail = f"workflow {plan.spec.name!r}: {limit.reason}"
                self.record("start", user, limit, before=before, detail=detail)
                raise self.error(user, limit, f"start {plan.spec.name!r}, which asks for an approval")
            if limit is not None:
                rows.append(self.row("start", user, limit))
        return rows

    def _check_deciders(self, user: str, plan: Plan, before: list[dict[str, Any]]) -> None:
        """Refuse a run with an approval step fewer people may decide than its ``min_approvals``.

        Here, not when the spec loads: any name in ``approvers`` may be a policy
        role (any number of people), and who starts the run may be excluded.  A
        name counts as one person when the policy in force has no role of that
        name (without a policy, approvers are user names); the names
        ``escalate.to`` adds later count too.  A policy that cannot be looked
        into (one of its own kind, a broken file) refuses nothing here.  Too few
        names is a :class:`~airt_nb.SpecError`; too few once ``user`` is excluded,
        a :class:`~airt_nb.PolicyError` (in the audit, like the decision it spares).
        """
        short = self._short.get(plan.spec_hash)
        if short is None:
            short = tuple(s for s in plan.steps if s.is_approval and s.approvers and _may_be_short(s))
            if len(self._short) >= 256:  # a long-lived engine starting many specs: keep the newest
                self._short.clear()
            self._short[plan.spec_hash] = short
        if not short:
            return
        roles = _role_names(self.policy)
        if roles is None:
            return
        for step in short:
            names = list(dict.fromkeys((*step.approvers, *step.escalate_to)))
            if roles.intersection(names):
                continue
            deciders = [n for n in names if not (step.exclude_requester and n == user)]
            if len(deciders) >= step.min_approvals:
                continue
            listed = f"approvers: [{', '.join(step.approvers)}]"
            if step.escalate_to:
                listed += f", escalate.to: [{', '.join(step.escalate_to)}]"
            no_policy = isinstance(self.policy, AllowAll)
            listed += "; without a policy file they are user names" if no_policy else "; none is a policy role"
            fixes = [f"set min_approvals to {len(deciders)}"] if deciders else []
            fixes.append("add approvers (user names or policy roles)")
            if len(names) < step.min_approvals:
                who = f"only {_and(deciders)} may" if deciders else "nobody may"
                message = (
                    f"step {step.name!r} needs {step.min_approvals} distinct people to approve, but {who} decide "
                    f"it ({listed}): it could never be approved. {_sentence(' or '.join(fixes))}"
                )
                raise SpecError([(None, f"steps[{step.index}].min_approvals", message)], workflow=plan.spec.name)
            left = f"only {_and(deciders)}" if deciders else "nobody"
            reason = f"step {step.name!r} says exclude_requester: true, which leaves {left} to decide it ({listed})"
            if deciders:
                reason += f", fewer than its min_approvals: {step.min_approvals}"
            verdict = Verdict(False, "exclude_requester", reason)
            detail = f"workflow {plan.spec.name!r}: {reason}"
            self.record("start", user, verdict, before=before, step_name=step.name, detail=detail)
            raise PolicyError(
                f"workflow {plan.spec.name!r}: user {user!r} may not start it: {reason}, so it could never be "
                f"approved. Let someone else start it, or {' or '.join(fixes)}",
                user=user,
                roles=self.policy.roles_of(user),
                rule="exclude_requester",
                workflow=plan.spec.name,
                step=step.name,
            )

    def _required_gates(self, user: str, plan: Plan, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``require_approval`` rules of ``user``'s roles: every matching step must have a qualifying
        approval before it in the DAG.  Returns the audit rows of the rules met; raises on the first not met."""
        rules_of = getattr(self.policy, "approval_rules", None)
        rules = rules_of(user) if rules_of is not None else []
        if not rules:
            return []
        ancestry = Ancestry({s.name: s.deps for s in plan.steps})
        gates = [s for s in plan.steps if s.is_approval]
        rows = []
        for step in plan.steps:
            if step.is_approval or step.action is None:
                continue
            for role, rule in rules:
                pattern = next((p for p in rule.actions if fnmatchcase(step.action, p)), None)
                if pattern is None:
                    continue
                name = f"{role}: require_approval {pattern}"
                gate = next((g for g in gates if ancestry(step.name, g.name) and _qualifies(g, rule)), None)
                if gate is None:
                    verdict = Verdict(False, name, _missing_gate(step, rule, gates, ancestry))
                    detail = f"workflow {plan.spec.name!r}: {verdict.reason}"
                    self.record(
                        "start", user, verdict, before=before, step_name=step.name, action=step.action, detail=detail
                    )
                    raise self.error(
                        user,
                        verdict,
                        f"run action {step.action!r} without an approval before it",
                        workflow=plan.spec.name,
                        step=step.name,
                    )
                verdict = Verdict(True, name, f"approved first by step {gate.name!r}", target=gate.name)
                rows.append(self.row("start", user, verdict, step_name=step.name, action=step.action))
        return rows

    def check_step(
        self, user: str, workflow_id: str, workflow_name: str, step: PlannedStep, inputs: Mapping[str, Any]
    ) -> Verdict | None:
        """Check one step with its resolved inputs (paths made absolute against the workflow's folder)
        right before it runs, recorded either way; None without a policy."""
        if not self.policy.enforcing:
            return None
        verdict = self.policy.check_action(user, step.action or "", inputs)
        self.record("step", user, verdict, workflow_id=workflow_id, step_name=step.name, action=step.action)
        if not verdict.allowed:
            raise self.error(user, verdict, f"run action {step.action!r}", workflow=workflow_name, step=step.name)
        return verdict


def _may_be_short(step: PlannedStep) -> bool:
    """Whether some requester would leave the approval step fewer distinct names than it needs."""
    names = set(step.approvers) | set(step.escalate_to)
    return len(names) - (1 if step.exclude_requester else 0) < step.min_approvals


def _role_names(policy: Policy) -> frozenset[str] | None:
    """The names an approvers list may mean as roles under ``policy`` (none without a policy);
    None when it cannot be told (a policy of its own kind, a policy file that is broken now)."""
    if isinstance(policy, AllowAll):
        return frozenset()
    rules: object = policy.current() if isinstance(policy, FilePolicy) else policy
    return frozenset(rules.spec.roles) if isinstance(rules, RolePolicy) else None


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _qualifies(gate: PlannedStep, rule: ApprovalRuleSpec) -> bool:
    """Whether the approval step ``gate`` meets ``rule`` (and cannot be skipped)."""
    if gate.conditional:
        return False
    if rule.approvers and (not gate.approvers or not set(gate.approvers) <= set(rule.approvers)):
        return False
    if gate.min_approvals < rule.min_approvals:
        return False
    if rule.authenticated and not gate.authenticated:
        return False
    return not (rule.exclude_requester and not gate.exclude_requester)


def _missing_gate(
    step: PlannedStep, rule: ApprovalRuleSpec, gates: list[PlannedStep], before: Callable[[str, str], bool]
) -> str:
    """Why no approval step qualifies, and what would."""
    wanted = ["type: human_approval"]
    if rule.approvers:
        wanted.append(f"approvers: [{', '.join(rule.approvers)}]")
    if rule.min_approvals > 1:
        wanted.append(f"min_approvals: {rule.min_approvals}")
    if rule.authenticated:
        wanted.append("authenticated: true")
    if rule.exclude_requester:
        wanted.append("exclude_requester: true")
    earlier = [g for g in gates if before(step.name, g.name)]
    if not earlier:
        found = "no human_approval step comes before it"
    else:
        names = ", ".join(repr(g.name) for g in earlier)
        found = f"the approval step(s) before it ({names}) do not qualify"
        if any(g.conditional for g in earlier):
            found += " (an approval that may be skipped by a when: does not count)"
    return (
        f"{found}; add a step with {{{', '.join(wanted)}}} that step {step.name!r} depends on "
        "(directly or through other steps)"
    )
