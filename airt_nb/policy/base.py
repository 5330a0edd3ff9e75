"""Who may do what: the policy interface and the default allow-all policy.

The engine asks a policy at three moments: when a workflow starts (the whole
spec, for the starting user), before each step runs, and when someone
decides an approval.  A policy answers with a :class:`Verdict`; the engine
records verdicts that matter in the audit log and turns a refusal into a
:class:`~airt_nb.PolicyError`.

Without ``AIRT_POLICY`` the local user may do everything (a single-user
notebook stays frictionless); approval steps' ``approvers`` still apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AllowAll", "Policy", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One policy answer: allowed or not, the rule that decided, and why."""

    allowed: bool
    rule: str
    reason: str = ""
    target: str | None = None


class Policy(Protocol):
    """What the engine needs from a policy."""

    #: False for the allow-all default: per-step checks are skipped and not audited.
    enforcing: bool

    def roles_of(self, user: str) -> tuple[str, ...]: ...

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict: ...

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict: ...

    def check_act_as(self, user: str, other: str) -> Verdict: ...


class AllowAll:
    """The default: everyone may run everything; only ``approvers`` lists restrict decisions."""

    enforcing = False

    def roles_of(self, user: str) -> tuple[str, ...]:
        return ()

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict:
        return Verdict(True, "no policy")

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict:
        if not approvers or user in approvers:
            return Verdict(True, "approvers" if approvers else "no policy")
        return Verdict(
            False,
            "approvers",
            f"only {', '.join(approvers)} may decide this approval",
        )

    def check_act_as(self, user: str, other: str) -> Verdict:
        if user == other:
            return Verdict(True, "no policy")
        return Verdict(True, "no policy (acting as another user is allowed without AIRT_POLICY)")
