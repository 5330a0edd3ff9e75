"""Typed fields on approvals: definitions checked when the spec loads, values when a decision arrives
(a bad one refused with nothing recorded), defaults, later steps reading the values, the frame, the
command line, the magic and the card's form."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import cmd

import airt_nb
from airt_nb import ApprovalError, Registry, SpecError, load_spec
from airt_nb.widgets.approval_card import ApprovalCard

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: scale
inputs: {service: api}
steps:
  - name: plan
    action: file.write
    inputs: {path: plan.txt, content: "scale ${{ inputs.service }}"}
  - name: review
    type: human_approval
    message: "Scale ${{ inputs.service }}?"
    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10, description: how many}
      plan: {type: choice, options: [canary, full]}
      ratio: {type: number, minimum: 0, maximum: 1, default: 0.5}
      dry_run: {type: boolean, default: false}
      note: {type: string, required: false}
  - name: apply
    action: record
    inputs:
      replicas: "${{ steps.review.outputs.values.replicas }}"
      plan: "${{ steps.review.outputs.values.plan }}"
      ratio: "${{ steps.review.outputs.values.ratio }}"
      dry_run: "${{ steps.review.outputs.values.dry_run }}"
      note: "${{ steps.review.outputs.values.note }}"
"""


@pytest.fixture
def registry() -> Registry:
    reg = Registry()

    @reg.action("record")
    def record(replicas: int, plan: str, ratio: float, dry_run: bool, note: str | None) -> dict:
        return {"replicas": replicas, "plan": plan, "ratio": ratio, "dry_run": dry_run, "note": note}

    return reg


def paused(eng: airt_nb.Engine) -> airt_nb.Run:
    run = eng.start(SPEC)
    assert run.wait(10) == "PAUSED"
    return run


# -- definitions ---------------------------------------------------------------------------------------------

BAD_DEFINITIONS = [
    ("{type: blob}", "fields.x.type", "must be 'string', 'integer', 'number', 'boolean' or 'choice'"),
    ("{default: 1}", "fields.x.type", "'type' is required"),
    ("{type: choice}", "fields.x", "a choice field needs options"),
    ("{type: choice, options: []}", "fields.x", "a choice field needs options"),
    ("{type: choice, options: [a, a]}", "fields.x", "option 'a' is listed twice"),
    ("{type: choice, options: [[1]]}", "fields.x", "option [1] is not text, a number or a boolean"),
    ("{type: choice, options: [a, b], default: c}", "fields.x", "default 'c' does not fit the field"),
    ("{type: string, options: [a]}", "fields.x", "options apply to choice fields only"),
    ("{type: string, minimum: 1}", "fields.x", "minimum applies to integer and number fields only"),
    ("{type: integer, minimum: 5, maximum: 1}", "fields.x", "minimum 5 is more than maximum 1"),
    ("{type: integer, minimum: 1.5}", "fields.x", "minimum 1.5 of an integer field must be a whole number"),
    ("{type: integer, minimum: '1'}", "fields.x.minimum", "'1' is not a number"),
    ("{type: number, maximum: .inf}", "fields.x", "maximum inf is out of range"),
    ("{type: integer, default: 2.5}", "fields.x", "default 2.5 does not fit the field: 2.5 is not a whole number"),
    ("{type: integer, default: 20, maximum: 10}", "fields.x", "default 20 does not fit the field"),
    ("{type: boolean, default: 'yes'}", "fields.x", "default 'yes' does not fit the field"),
    ("{type: string, required: 'no'}", "fields.x.required", "must be true or false, got 'no'"),
    ("{type: string, colour: red}", "fields.x.colour", "unknown key 'colour'"),
]


@pytest.mark.parametrize(("definition", "field", "message"), BAD_DEFINITIONS)
def test_a_bad_field_definition_is_a_spec_error_naming_its_line(
    definition: str, field: str, message: str, registry: Registry
) -> None:
    text = SPEC.replace("      note: {type: string, required: false}", f"      x: {definition}")
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=registry)
    lines = {(p[0], p[1]) for p in info.value.problems}
    assert (15, f"steps[1].{field}") in lines, info.value.problems
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ('"${{ steps.review.outputs.values.replica }}"', "steps[2].inputs.replicas",
         "step 'review' has no field 'replica'; did you mean `replicas`? (its fields: replicas, plan,"),
        ('"${{ steps.review.outputs.vals }}"', "steps[2].inputs.replicas",
         "an approval's outputs are approved, decided_by, decided_at, reason, values, approved_by"),
    ],
)  # fmt: skip
def test_lookups_of_values_are_checked_when_the_spec_loads(
    change: str, field: str, message: str, registry: Registry
) -> None:
    text = SPEC.replace('"${{ steps.review.outputs.values.replicas }}"', change)
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=registry)
    assert info.value.problems[0][:2] == (19, field)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("fields: {1x: {type: string}}", "field name '1x': use a letter or '_'"),
        ("fields: {replicas: {type: integer}}\n    min_approvals: 2", "'fields' applies to human_approval steps only"),
    ],
)
def test_fields_belong_to_approval_steps_with_usable_names(extra: str, message: str, registry: Registry) -> None:
    text = SPEC.replace("  - name: apply\n    action: record\n", f"  - name: apply\n    action: record\n    {extra}\n")
    with pytest.raises(SpecError, match=message):
        load_spec(text, registry=registry)


# -- values ----------------------------------------------------------------------------------------------------

BAD_VALUES = [
    ({"replicas": 3}, "plan: required; give a value (choice of canary, full)"),
    ({"plan": "blue"}, "plan: 'blue' is not one of the options ('canary', 'full')"),
    ({"plan": "full", "replicas": 0}, "replicas: 0 is out of range; from 1 to 10"),
    ({"plan": "full", "replicas": 11}, "replicas: 11 is out of range; from 1 to 10"),
    ({"plan": "full", "replicas": 2.5}, "replicas: 2.5 is not a whole number"),
    ({"plan": "full", "replicas": "3"}, "replicas: '3' is not a whole number"),
    ({"plan": "full", "replicas": True}, "replicas: true is not a whole number"),
    ({"plan": "full", "ratio": 1.5}, "ratio: 1.5 is out of range; from 0 to 1"),
    ({"plan": "full", "ratio": float("nan")}, "ratio: NaN is not a number"),
    ({"plan": "full", "dry_run": "yes"}, "dry_run: 'yes' is not true or false"),
    ({"plan": "full", "dry_run": 1}, "dry_run: 1 is not true or false"),
    ({"plan": "full", "note": 5}, "note: 5 is not text"),
    ({"plan": "full", "note": "x" * 10_001}, "note: 10,001 characters, more than 10,000"),
    ({"plan": "full", "colour": "red"}, "colour: no such field (the fields are: replicas, plan, ratio, dry_run, note)"),
    ({"plan": None}, "plan: a value is required (it is not optional)"),
    ({"plan": ["full"]}, 'plan: ["full"] is not one of the options'),
    ({"plan": "full", "note": object()}, "note: a value of type object is not text"),
    ({"plan": "full", "replicas": b"3"}, "replicas: a value of type bytes is not a whole number"),
    ({"plan": "full", "note": ["x" * 200]}, 'note: ["xxxxxxxx'),
]


def _everything(eng: airt_nb.Engine, run: airt_nb.Run) -> tuple[Any, ...]:
    store = eng.store
    return (
        run.record,
        run.steps(),
        run.approvals(),
        store.decisions(),
        store.history(run.id),
        store.deliveries(),
        store.all_rows("audit_log")[1],
    )


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[m.split(":")[0] for _, m in BAD_VALUES])
def test_a_bad_value_is_refused_and_nothing_is_recorded(
    engine: airt_nb.Engine, values: dict[str, Any], message: str
) -> None:
    run = paused(engine)
    before = _everything(engine, run)
    with pytest.raises(ApprovalError) as info:
        run.approve(by="ann", reason="go", values=values)
    assert message in str(info.value)
    assert str(info.value).startswith(f"workflow {run.id}, step 'review': ")
    assert str(info.value).endswith("Nothing was recorded")
    assert _everything(engine, run) == before
    assert run.status == "PAUSED"


def test_who_may_not_decide_is_refused_as_such_whatever_values_they_give(engine: airt_nb.Engine) -> None:
    run = engine.start(SPEC.replace("    message:", "    approvers: [bob]\n    message:"))
    assert run.wait(10) == "PAUSED"
    assert engine.user != "bob"
    with pytest.raises(airt_nb.PolicyError, match="may not decide this approval"):
        run.approve(values={})  # the field 'plan' has no default: a value is missing as well
    columns, rows = engine.store.all_rows("audit_log")
    refused = [dict(zip(columns, r, strict=True)) for r in rows]
    assert [(a["event"], a["decision"], a["user"]) for a in refused if a["decision"] != "allow"] == [
        ("approval", "deny", engine.user)
    ]
    assert engine.store.decisions(workflow_id=run.id) == []
    assert run.status == "PAUSED"


def test_values_that_are_not_a_mapping_and_values_for_an_approval_without_fields_are_refused(
    engine: airt_nb.Engine,
) -> None:
    run = paused(engine)
    with pytest.raises(ApprovalError, match="values must be a mapping of field names to values, not list"):
        run.approve(values=["full"])  # type: ignore[arg-type]
    plain = engine.start(
        SPEC.replace("name: scale", "name: plain").split("    fields:")[0]
        + "  - name: x\n    action: wait\n    inputs: {seconds: 0}\n"
    )
    assert plain.wait(10) == "PAUSED"
    with pytest.raises(ApprovalError, match="this approval has no fields, so it takes no values"):
        plain.approve(values={"replicas": 3})
    assert engine.store.decisions(workflow_id=plain.id) == []


def test_an_approval_fills_in_defaults_and_later_steps_read_the_values(engine: airt_nb.Engine) -> None:
    run = paused(engine)
    decided = run.approve(by="ann", reason="ok", values={"plan": "full", "replicas": 3.0})
    assert decided.values == {"replicas": 3, "plan": "full", "ratio": 0.5, "dry_run": False, "note": None}
    assert run.wait(10) == "COMPLETED"
    assert run.outputs["apply"] == {"replicas": 3, "plan": "full", "ratio": 0.5, "dry_run": False, "note": None}
    assert run.outputs["review"]["values"] == decided.values
    assert run.outputs["review"]["approved_by"] == ["ann"]
    (decision,) = run.decisions()
    assert (decision.decided_by, decision.decision, decision.values, decision.auth) == (
        "ann", "APPROVED", decided.values, "asserted",
    )  # fmt: skip

    frame = airt_nb.approvals(engine)
    row = frame.iloc[0]
    assert row["values"] == decided.values
    assert row["fields"]["replicas"] == {
        "type": "integer", "default": 2, "minimum": 1, "maximum": 10, "required": True, "description": "how many",
    }  # fmt: skip
    assert [(h["decided_by"], h["decision"], h["values"]) for h in row["history"]] == [
        ("ann", "APPROVED", decided.values)
    ]
    assert (row["min_approvals"], row["approved_count"]) == (1, 1)


def test_a_rejection_checks_the_values_it_is_given_but_needs_none(engine: airt_nb.Engine) -> None:
    run = paused(engine)
    with pytest.raises(ApprovalError, match="replicas: 99 is out of range"):
        run.reject(by="ann", values={"replicas": 99})
    assert run.reject(by="ann", reason="no").status == "REJECTED"


# -- the command line and the magic -----------------------------------------------------------------------------


def airt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "AIRT_USER": "cli-user"},
        timeout=60,
    )


def test_airt_approve_types_each_value_by_its_field(db_path: Path, registry: Registry, tmp_path: Path) -> None:
    with airt_nb.Engine(db_path, registry=registry, user="sam") as eng:
        run = paused(eng)
        shown = airt("--db", str(db_path), "show", run.id, cwd=tmp_path)
        assert "replicas  (integer from 1 to 10, default 2, description how many)" not in shown.stdout
        assert "    replicas  (integer from 1 to 10, default 2)" in shown.stdout
        assert f"decide: {cmd(db_path)} approve {run.id} --value plan=... --reason" in shown.stdout

        bad = airt("--db", str(db_path), "approve", run.id, "--value", "replicas=twelve", "--value", "plan=full",
                   cwd=tmp_path)  # fmt: skip
        assert bad.returncode == 1
        assert "replicas: 'twelve' is not a whole number" in bad.stderr
        usage = airt("--db", str(db_path), "approve", run.id, "--value", "replicas", cwd=tmp_path)
        assert usage.returncode == 2
        assert "'replicas' is not NAME=VALUE" in usage.stderr
        assert eng.store.decisions() == []

        ok = airt(
            "--db", str(db_path), "--json", "approve", run.id, "--value", "replicas=4", "--value", "plan=canary",
            "--value", "dry_run=yes", "--value", "ratio=0.25", "--value", "note=a=b", cwd=tmp_path,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        data = json.loads(ok.stdout)
        assert data["field_values"] == {"replicas": 4, "plan": "canary", "ratio": 0.25, "dry_run": True, "note": "a=b"}
        assert run.wait(10) == "COMPLETED"
        assert run.outputs["apply"]["note"] == "a=b"


def test_the_magic_takes_values_too(engine: airt_nb.Engine) -> None:
    from airt_nb import commands

    run = paused(engine)
    with pytest.raises(commands.UsageProblem, match="'replicas' is not NAME=VALUE"):
        commands.run_line(f"approve {run.id} --value replicas", engine)
    text = commands.run_line(f"approve {run.id} --value plan=full --value replicas=5 --reason 'five it is'", engine)
    assert text == (
        f"approved step 'review' of workflow {run.id} as tester: five it is "
        "(values: replicas=5, plan='full', ratio=0.5, dry_run=False, note=None)"
    )
    assert run.wait(10) == "COMPLETED"


# -- the card's form --------------------------------------------------------------------------------------------


def test_the_card_renders_one_input_per_field_with_defaults_and_approves_with_them(engine: airt_nb.Engine) -> None:
    import ipywidgets as widgets

    run = paused(engine)
    card = ApprovalCard(engine)
    card.show(run.pending_approval, "scale")
    inputs = card.form.inputs
    assert isinstance(inputs["replicas"], widgets.BoundedIntText)
    assert (inputs["replicas"].value, inputs["replicas"].min, inputs["replicas"].max) == (2, 1, 10)
    assert isinstance(inputs["plan"], widgets.Dropdown)
    assert (inputs["plan"].options, inputs["plan"].value) == ((("canary", "canary"), ("full", "full")), None)
    assert isinstance(inputs["ratio"], widgets.BoundedFloatText)
    assert isinstance(inputs["dry_run"], widgets.Checkbox)
    assert isinstance(inputs["note"], widgets.Text)
    assert "airt-field-replicas" in inputs["replicas"]._dom_classes

    card.approve_button.click()  # plan is required and none is picked: refused, shown, nothing recorded
    assert "plan: required; give a value" in card.message_html.value
    assert engine.store.decisions() == []

    inputs["plan"].value = "full"
    inputs["replicas"].value = 7
    inputs["dry_run"].value = True
    inputs["note"].value = "from the card"
    card.reason.value = "seven"
    card.approve_button.click()
    assert "approved by tester" in card.message_html.value
    assert run.wait(10) == "COMPLETED"
    assert run.outputs["apply"] == {
        "replicas": 7,
        "plan": "full",
        "ratio": 0.5,
        "dry_run": True,
        "note": "from the card",
    }


def test_a_number_typed_in_a_text_input_is_read_as_one(engine: airt_nb.Engine) -> None:
    run = engine.start(SPEC.replace("default: 2, minimum: 1", "minimum: 1"))
    assert run.wait(10) == "PAUSED"
    card = ApprovalCard(engine)
    card.show(run.pending_approval, "scale")
    card.form.inputs["plan"].value = "canary"
    card.form.inputs["replicas"].value = "three"
    card.approve_button.click()
    assert "replicas: 'three' is not a whole number" in html.unescape(card.message_html.value)
    card.form.inputs["replicas"].value = " 3 "
    card.approve_button.click()
    assert run.wait(10) == "COMPLETED"
    assert run.outputs["apply"]["replicas"] == 3


def test_a_field_is_described_in_one_line_an_empty_default_quoted() -> None:
    from airt_nb.fields import describe_field

    assert describe_field({"type": "integer", "minimum": 1, "maximum": 10, "default": 2}) == (
        "integer from 1 to 10, default 2"
    )
    assert describe_field({"type": "string", "default": "ops"}) == "string, default ops"
    assert describe_field({"type": "string", "default": ""}) == 'string, default ""'  # was "default " (nothing)
    assert describe_field({"type": "choice", "options": ["canary", "full"], "required": False}) == (
        "choice of canary, full, optional"
    )


def test_an_emptied_box_on_the_card_is_refused_not_approved_with_its_default(engine: airt_nb.Engine) -> None:
    with_default = SPEC.replace("note: {type: string, required: false}", "note: {type: string, default: nightly}")
    run = engine.start(with_default)
    assert run.wait(10) == "PAUSED"
    card = ApprovalCard(engine)
    card.show(run.pending_approval, "scale")
    note = card.form.inputs["note"]
    assert note.value == "nightly"
    card.form.inputs["plan"].value = "canary"
    note.value = ""  # the approver clears it
    card.approve_button.click()
    assert "note: a value is required (it is not optional)" in html.unescape(card.message_html.value)
    assert engine.store.decisions() == []  # not approved with "nightly", which the box no longer showed
    note.value = "weekly"
    card.approve_button.click()
    assert run.wait(10) == "COMPLETED"
    assert run.outputs["apply"]["note"] == "weekly"
