"""The parts of the spec that make approvals worth trusting, and their checks.

On a ``human_approval`` step: ``fields`` (typed values the approver fills
in, :mod:`airt_nb.fields`), ``min_approvals`` (distinct people),
``exclude_requester``, ``authenticated`` (only decisions whose decider was
authenticated), ``remind_every`` and ``escalate``.  On any step: ``when``
(:mod:`airt_nb.conditions`).

:func:`step_problems` finds what pydantic cannot see (these keys on an action
step, an escalation after the timeout...); :func:`reference_problem` checks
lookups of an approval step's outputs (``steps.review.outputs.values.NAME``
must name one of its fields).  Both report ``(path, message)`` pairs that
:func:`airt_nb.spec.load_spec` turns into line-numbered ``SpecError``\\ s.

Imports nothing from airt_nb but the limits, fields and suggestions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import limits
from .fields import FIELD_NAME, FieldSpec
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .expressions import Reference
    from .spec import StepSpec, WorkflowSpec

__all__ = ["APPROVAL_ONLY", "APPROVAL_OUTPUTS", "EscalateSpec", "check_fields", "reference_problem", "step_problems"]

#: What an approval step's outputs hold.
APPROVAL_OUTPUTS = ("approved", "decided_by", "decided_at", "reason", "values", "approved_by")
#: Keys that mean something on human_approval steps only (with the value that means "not used").
APPROVAL_ONLY: dict[str, Any] = {
    "message": None,
    "timeout": None,
    "approvers": [],
    "fields": {},
    "min_approvals": 1,
    "exclude_requester": False,
    "authenticated": False,
    "remind_every": None,
    "escalate": None,
}


class EscalateSpec(BaseModel):
    """``escalate: {after: 2h, to: [lead]}``: who is added to the approvers, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: float
    to: list[str] = Field(min_length=1, max_length=100)

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> Any:
        return limits.duration(value)

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list):
            for name in value:
                if isinstance(name, str) and not name.strip():
                    raise ValueError("an empty name; list user names or policy roles, e.g. to: [lead]")
        return value


def check_fields(value: Any) -> Any:
    """``fields:`` keys: names usable in lookups, at most :data:`~airt_nb.limits.MAX_FIELDS`."""
    if isinstance(value, Mapping):
        if len(value) > limits.MAX_FIELDS:
            raise ValueError(f"{len(value)} fields, more than {limits.MAX_FIELDS} (MAX_FIELDS); ask for fewer values")
        for name in value:
            if not isinstance(name, str) or not FIELD_NAME.match(name):
                raise ValueError(
                    f"field name {name!r}: use a letter or '_' then letters, digits, '_' or '-' (at most 64), "
                    "so that ${{ steps.NAME.outputs.values.FIELD }} can name it"
                )
    return value


Add = Callable[[tuple[Any, ...], str], None]


def step_problems(spec: WorkflowSpec, step: StepSpec, i: int, add: Add) -> None:
    """Approval keys used where they mean nothing, and settings that contradict each other."""
    if step.type != "human_approval":
        for key, unused in APPROVAL_ONLY.items():
            if getattr(step, key) != unused and key not in ("message", "timeout", "approvers"):
                add(("steps", i, key), f"{key!r} applies to human_approval steps only; remove it")
        return
    timeout = step.timeout
    if step.remind_every is not None and timeout is not None and step.remind_every >= timeout:
        add(
            ("steps", i, "remind_every"),
            f"remind_every ({limits.format_seconds(step.remind_every)}) is not shorter than the timeout "
            f"({limits.format_seconds(timeout)}): no reminder would be sent; shorten it or remove it",
        )
    if step.escalate is not None and timeout is not None and step.escalate.after >= timeout:
        add(
            ("steps", i, "escalate", "after"),
            f"escalate.after ({limits.format_seconds(step.escalate.after)}) is not before the timeout "
            f"({limits.format_seconds(timeout)}): the escalation would never happen; make it earlier",
        )
    if step.authenticated and step.on_timeout == "approve":
        add(
            ("steps", i, "on_timeout"),
            "on_timeout: approve would let the clock approve a step that accepts only authenticated "
            "decisions; use on_timeout: reject",
        )


def reference_problem(target: StepSpec, ref: Reference) -> str | None:
    """What is wrong with ``ref``, a lookup of ``target``'s outputs, if ``target`` is an approval step."""
    if target.type != "human_approval" or len(ref.parts) < 4:
        return None
    key = ref.parts[3]
    text = f"${{{{ {ref.text} }}}}"
    if key not in APPROVAL_OUTPUTS:
        return f"{text}: an approval's outputs are {', '.join(APPROVAL_OUTPUTS)}; {key!r} is not one of them"
    if key == "values" and len(ref.parts) > 4:
        name = ref.parts[4]
        if name not in target.fields:
            fields = ", ".join(target.fields) or "none; declare them under fields:"
            hint = did_you_mean(str(name), list(target.fields))
            return f"{text}: step {target.name!r} has no field {name!r}; {hint + ' ' if hint else ''}(its fields: {fields})"
    return None


def fields_json(fields: Mapping[str, FieldSpec]) -> dict[str, dict[str, Any]]:
    """The field definitions as stored with an approval request."""
    return {name: spec.as_json() for name, spec in fields.items()}
