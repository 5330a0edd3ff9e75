"""``when:``: a step runs only when one lookup matches; a step not taken is SKIPPED, and a step that
uses the outputs of a skipped step is skipped too, while steps that merely come after it run.
Checked when the spec loads, shown by the dry run, kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

import airt_nb
from airt_nb import Registry, SpecError, load_spec
from airt_nb.commands import CellOptions, start_cell
from airt_nb.views import PlanView

BRANCHES = """\
name: rollout
steps:
  - name: review
    type: human_approval
    message: "How?"
    fields:
      plan: {type: choice, options: [canary, full]}
      notify: {type: boolean, default: true}
  - name: canary
    action: deploy
    when: {value: "${{ steps.review.outputs.values.plan }}", equals: canary}
    inputs: {target: canary}
  - name: full
    action: deploy
    when: {value: "${{ steps.review.outputs.values.plan }}", in: [full]}
    inputs: {target: everywhere}
  - name: check_canary
    action: deploy
    depends_on: [canary]
    inputs: {target: "${{ steps.canary.outputs.target }}-check"}
  - name: announce
    action: deploy
    depends_on: [check_canary, full]
    when: "${{ steps.review.outputs.values.notify }}"
    inputs: {target: chat}
  - name: cleanup
    action: deploy
    depends_on: [announce]
    inputs: {target: tmp}
"""


@pytest.fixture
def registry() -> Registry:
    reg = Registry()

    @reg.action("deploy")
    def deploy(target: str) -> dict:
        return {"target": target}

    return reg


def statuses(run: airt_nb.Run) -> dict[str, str]:
    return {s.step_name: s.status for s in run.steps()}


@pytest.mark.parametrize(
    ("plan", "notify", "expected"),
    [
        ("canary", True, {"canary": "COMPLETED", "full": "SKIPPED", "check_canary": "COMPLETED",
                          "announce": "COMPLETED", "cleanup": "COMPLETED"}),
        ("full", True, {"canary": "SKIPPED", "full": "COMPLETED", "check_canary": "SKIPPED",
                        "announce": "COMPLETED", "cleanup": "COMPLETED"}),
        ("full", False, {"canary": "SKIPPED", "full": "COMPLETED", "check_canary": "SKIPPED",
                         "announce": "SKIPPED", "cleanup": "COMPLETED"}),
    ],
)  # fmt: skip
def test_the_approver_picks_the_branch(engine: airt_nb.Engine, plan: str, notify: bool, expected: dict) -> None:
    run = engine.start(BRANCHES)
    assert run.wait(10) == "PAUSED"
    run.approve(values={"plan": plan, "notify": notify})
    assert run.wait(10) == "COMPLETED"
    assert statuses(run) == {"review": "COMPLETED", **expected}
    assert run.progress == (6, 6)  # a skipped step counts as done
    assert "full" not in run.outputs or expected["full"] == "COMPLETED"
    skipped = {e.detail.split(": ", 1)[0]: e.detail.split(": ", 1)[1] for e in engine.store.history(run.id)
               if e.event == "skipped"}  # fmt: skip
    if plan == "full":
        assert skipped["canary"] == 'when: steps.review.outputs.values.plan is "full", not "canary"'
        assert skipped["check_canary"] == "it uses the outputs of step 'canary', which was skipped"
    if not notify:
        assert skipped["announce"] == "when: steps.review.outputs.values.notify is false, not true"


def test_a_skipped_step_lets_the_steps_after_it_run_in_a_sequential_spec(engine: airt_nb.Engine) -> None:
    # The default dependency is the step before: a branch in the middle does not stop the rest.
    run = engine.start(
        """
name: seq
inputs: {mode: quick}
steps:
  - name: a
    action: deploy
    inputs: {target: a}
  - name: thorough
    action: deploy
    when: {value: "${{ inputs.mode }}", equals: thorough}
    inputs: {target: t}
  - name: quick
    action: deploy
    when: {value: "${{ inputs.mode }}", not_equals: thorough}
    inputs: {target: q}
  - name: z
    action: deploy
    inputs: {target: z}
"""
    )
    assert run.wait(10) == "COMPLETED"
    assert statuses(run) == {"a": "COMPLETED", "thorough": "SKIPPED", "quick": "COMPLETED", "z": "COMPLETED"}


def test_a_first_step_skipped_at_start_is_recorded_with_the_start(engine: airt_nb.Engine) -> None:
    run = engine.start(
        'name: w\ninputs: {go: false}\nsteps:\n  - name: a\n    action: deploy\n    when: "${{ inputs.go }}"\n'
        "    inputs: {target: a}\n"
    )
    assert run.wait(10) == "COMPLETED"
    assert statuses(run) == {"a": "SKIPPED"}


def test_an_approval_step_can_be_a_branch_too(engine: airt_nb.Engine) -> None:
    run = engine.start(
        """
name: w
inputs: {risky: false}
steps:
  - name: extra_review
    type: human_approval
    when: "${{ inputs.risky }}"
  - name: go
    action: deploy
    inputs: {target: x}
"""
    )
    assert run.wait(10) == "COMPLETED"
    assert statuses(run) == {"extra_review": "SKIPPED", "go": "COMPLETED"}
    assert run.approvals() == []


def test_a_when_that_cannot_be_looked_up_fails_the_step(engine: airt_nb.Engine) -> None:
    run = engine.start(
        """
name: w
steps:
  - name: a
    action: deploy
    inputs: {target: a}
  - name: b
    action: deploy
    when: {value: "${{ steps.a.outputs.missing }}", equals: 1}
    inputs: {target: b}
"""
    )
    assert run.wait(10, until="done") == "FAILED"
    (b,) = [s for s in run.steps() if s.step_name == "b"]
    assert b.status == "FAILED"
    assert "cannot look up when: ${{ steps.a.outputs.missing }}: steps.a.outputs has no 'missing'" in (b.error or "")


def test_the_branch_survives_a_restart(db_path: Path, registry: Registry) -> None:
    with airt_nb.Engine(db_path, registry=registry, user="sam") as first:
        run = first.start(BRANCHES)
        assert run.wait(10) == "PAUSED"
        workflow_id = run.id
    with airt_nb.Engine(db_path, registry=registry, user="sam") as second:
        run = second.get(workflow_id)
        run.approve(values={"plan": "full"})
        assert run.wait(10) == "COMPLETED"
        assert statuses(run)["canary"] == "SKIPPED"
        assert statuses(run)["full"] == "COMPLETED"


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ('{value: "${{ inputs.mode }}"}', "when: needs exactly one of equals, not_equals or in (got none)"),
        ('{value: "${{ inputs.mode }}", equals: a, in: [a]}', "(got both equals and in)"),
        ('{value: "mode ${{ inputs.mode }}", equals: a}', "must be exactly one lookup"),
        ('{value: "${{ inputs.mod }}", equals: a}', "no workflow input 'mod'"),
        ('{value: "${{ steps.later.outputs.x }}", equals: a}', "step 'later' comes later"),
        ('{value: "${{ inputs.mode }}", equals: [a]}', "compare with text, a number, a boolean or null"),
        ('{value: "${{ inputs.mode }}", matches: "a.*"}', "unknown key 'matches'"),
        ('"${{ python.eval }}"', "starts with 'python'; a lookup starts with inputs., steps. or workflow."),
    ],
)
def test_a_bad_when_is_a_spec_error_naming_its_line(when: str, message: str, registry: Registry) -> None:
    text = (
        "name: w\ninputs: {mode: a}\nsteps:\n  - name: a\n    action: deploy\n"
        f"    when: {when}\n    inputs: {{target: x}}\n"
        "  - name: later\n    action: deploy\n    inputs: {target: y}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=registry)
    assert info.value.problems[0][0] == 6
    assert info.value.problems[0][1].startswith("steps[0].when")
    assert message in str(info.value)


def test_the_dry_run_shows_the_branches(engine: airt_nb.Engine) -> None:
    view = start_cell(engine, BRANCHES, CellOptions(dry_run=True))
    assert isinstance(view, PlanView)
    text = repr(view)
    assert "2 of them" not in text
    assert "3 of them taken only when their when: holds" in text
    assert 'canary: deploy · only when steps.review.outputs.values.plan is "canary"' in text
    assert 'full: deploy · only when steps.review.outputs.values.plan is one of ["full"]' in text
    assert "check_canary: deploy · skipped if canary is skipped" in text
    assert "review: approval (fields plan, notify), gates canary, full, check_canary, announce, cleanup" in text
    assert "only when steps.review.outputs.values.plan is &quot;canary&quot;" in view._repr_html_()
    assert engine.list() == []
