"""The policy interface, its answer (:class:`Verdict`) and the allow-all default.

The engine asks a policy at four moments: when a workflow starts (every
action step of the spec, for the starting user, whether that user may act
as someone else or wait on more approvals, and whether the steps their
``require_approval`` rules name have an approval before them), before each
step runs, and when someone decides an approval.  A policy answers with a :class:`Verdict`;
the engine records the verdicts that matter in the audit log and turns a
refusal into a :class:`~airt_nb.PolicyError`.

Without ``AIRT_POLICY`` the local user may do everything (a single-user
notebook stays frictionless); approval steps' ``approvers`` still apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from .model import ApprovalRuleSpec

__all__ = ["UNKNOWN", "AllowAll", "Policy", "Verdict"]


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


#: Stands for an input whose value is known only when the step runs (it uses
#: another step's outputs): checks of that input wait for the step.
UNKNOWN: Final = _Unknown()


@dataclass(frozen=True, slots=True)
class Verdict:
    """One policy answer: allowed or not, the rule that decided, and why.

    ``rule`` is short and stable (``"agent: deny file.*"``, ``"default deny"``)
    because it goes to the audit log; ``reason`` says what was refused and
    what to do; ``target`` is the resolved path or URL that was checked.
    ``paths``: for a built-in file action allowed within a role's
    ``paths:``, those folders.  The engine hands them to the step
    (``StepContext.allowed_paths``) and the action opens its files inside
    them without following links, so the check cannot be raced.
    """

    allowed: bool
    rule: str
    reason: str = ""
    target: str | None = None
    paths: tuple[str, ...] | None = None


class Policy(Protocol):
    """What the engine needs from a policy."""

    #: False for the allow-all default: per-step checks are skipped and not audited.
    enforcing: bool

    def roles_of(self, user: str) -> tuple[str, ...]: ...

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict:
        """May ``user`` run ``action`` with ``inputs`` (values may be :data:`UNKNOWN` at start)?"""
        ...

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict:
        """May ``user`` decide an approval whose step names ``approvers`` (users or roles)?"""
        ...

    def check_act_as(self, user: str, other: str) -> Verdict:
        """May ``user`` start workflows as ``other``?"""
        ...

    def check_pending(self, user: str, pending: int) -> Verdict | None:
        """May ``user`` start a workflow that asks for approval while ``pending`` of theirs wait?

        ``None``: no limit applies (nothing to record).
        """
        ...

    def approval_rules(self, user: str) -> list[tuple[str, ApprovalRuleSpec]]:
        """``(role, rule)`` of every ``require_approval`` rule of ``user``'s roles."""
        ...


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

    def check_pending(self, user: str, pending: int) -> Verdict | None:
        return None

    def approval_rules(self, user: str) -> list[tuple[str, ApprovalRuleSpec]]:
        return []
