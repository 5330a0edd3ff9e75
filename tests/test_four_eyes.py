"""Four eyes and N of M: distinct people, one rejection rejects, the requester excluded, authenticated
decisions only; every individual decision recorded; the card says "1 of 2 approvals"; webhooks hear
each approval; two people approving at the same instant both count."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import airt_nb
from airt_nb import ApprovalError, PolicyError, Registry, SpecError, load_spec
from airt_nb.server import api
from airt_nb.widgets.approval_card import ApprovalCard
from airt_nb.widgets.run_panel import RunPanel
from tests.conftest import poll_until
from tests.test_webhooks import SECRET, Receiver, make_engine

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: deploy
steps:
  - name: build
    action: file.write
    inputs: {path: build.txt, content: built}
  - name: review
    type: human_approval
    message: "Deploy?"
    fields:
      replicas: {type: integer, default: 2, minimum: 1, maximum: 10}
    min_approvals: 2
    exclude_requester: true
  - name: ship
    action: file.write
    inputs: {path: shipped.txt, content: "${{ steps.review.outputs.values.replicas }}"}
"""


def paused(eng: airt_nb.Engine, spec: str = SPEC) -> airt_nb.Run:
    run = eng.start(spec)
    assert run.wait(10) == "PAUSED"
    return run


def test_two_distinct_people_must_approve_and_each_decision_is_recorded(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine)
    first = run.approve(by="ann", reason="looks right", values={"replicas": 3})
    assert (first.status, first.approved_count, first.min_approvals, first.values) == ("PENDING", 1, 2, {"replicas": 3})
    assert run.status == "PAUSED"
    assert not (tmp_path / "shipped.txt").exists()

    with pytest.raises(ApprovalError, match=r"ann approved already \(1 of 2 approvals\); 1 more must come from other"):
        run.approve(by="ann")
    with pytest.raises(ApprovalError, match=r"replicas=4 differs from the value ann approved \(replicas=3\)"):
        run.approve(by="bob", values={"replicas": 4})
    assert len(run.decisions()) == 1
    # An attempt to be counted twice, or to change what was approved, is in the audit as a refusal.
    audit = airt_nb.audit(engine, workflow_id=run.id)
    refused = audit[(audit["event"] == "approval") & (audit["decision"] == "deny")]
    assert refused[["user", "rule"]].values.tolist() == [["ann", "once"], ["bob", "same_values"]]

    second = run.approve(by="bob", reason="agreed")
    assert (second.status, second.approved_count, second.decided_by, second.values) == (
        "APPROVED", 2, "bob", {"replicas": 3},
    )  # fmt: skip
    assert run.wait(10) == "COMPLETED"
    assert (tmp_path / "shipped.txt").read_text() == "3"
    assert run.outputs["review"]["approved_by"] == ["ann", "bob"]
    assert [(d.decided_by, d.decision, d.reason, d.values) for d in run.decisions()] == [
        ("ann", "APPROVED", "looks right", {"replicas": 3}),
        ("bob", "APPROVED", "agreed", {"replicas": 3}),
    ]
    history = [(e.event, e.by, e.detail) for e in engine.store.history(run.id) if e.event == "approved"]
    assert history == [
        ("approved", "ann", "1 of 2 approvals: looks right"),
        ("approved", "bob", "2 of 2 approvals: agreed"),
    ]
    row = airt_nb.approvals(engine).iloc[0]
    assert [h["decided_by"] for h in row["history"]] == ["ann", "bob"]
    assert (row["approved_count"], row["min_approvals"]) == (2, 2)


NO_DEFAULT = """\
name: four
steps:
  - name: review
    type: human_approval
    approvers: [ann, bob, carol, dave, erin]
    min_approvals: 5
    fields:
      replicas: {type: integer, minimum: 1, maximum: 10}
      note: {type: string, required: false}
  - {name: go, action: wait, inputs: {seconds: 0}}
"""


def test_later_approvers_confirm_values_without_giving_them_when_a_field_has_no_default(
    db_path: Path, tmp_path: Path
) -> None:
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as eng:
        run = paused(eng, NO_DEFAULT)
        # The first approval sets the values: it must give those without a default.
        with pytest.raises(ApprovalError, match=r"replicas: required; give a value \(integer from 1 to 10\)"):
            run.approve(by="ann")
        assert run.decisions() == []
        run.approve(by="ann", values={"replicas": 3})
        # Later ones confirm them without values, on every surface: Python...
        second = run.approve(by="bob")
        assert (second.status, second.approved_count, second.values) == ("PENDING", 2, {"replicas": 3, "note": None})
        # ...the JSON API...
        result = api.decide(eng, second.approval_id, True, None, None, user="carol", authenticated_by="jupyter")
        assert (result["approval"]["status"], result["approval"]["approved_count"]) == ("PENDING", 3)
        # ...(other values are refused, the same ones accepted)...
        with pytest.raises(ApprovalError, match=r"replicas=4 differs from the value ann approved \(replicas=3\)"):
            run.approve(by="dave", values={"replicas": 4})
        assert run.approve(by="dave", values={"replicas": 3}).approved_count == 4
        # ...and `airt approve` without --value.
        out = subprocess.run(
            [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "approve", run.id, "--as", "erin"],
            capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert run.wait(10) == "COMPLETED"
        values = {"replicas": 3, "note": None}
        assert run.outputs["review"]["values"] == values
        assert [(d.decided_by, d.values) for d in run.decisions()] == [
            ("ann", values), ("bob", values), ("carol", values), ("dave", values), ("erin", values),
        ]  # fmt: skip


FEW = """\
name: few
steps:
  - name: review
    type: human_approval
    approvers: [ann]
    min_approvals: 2
  - {name: go, action: wait, inputs: {seconds: 0}}
"""


def test_an_approval_fewer_people_may_decide_than_it_needs_is_refused_at_start(engine: airt_nb.Engine) -> None:
    with pytest.raises(SpecError) as info:
        engine.start(FEW)
    assert info.value.field == "steps[0].min_approvals"
    assert str(info.value) == (
        "workflow 'few': invalid workflow spec: steps[0].min_approvals: step 'review' needs 2 distinct people to "
        "approve, but only ann may decide it (approvers: [ann]; without a policy file they are user names): it "
        "could never be approved. Set min_approvals to 1 or add approvers (user names or policy roles)"
    )
    with pytest.raises(SpecError, match=r"needs 3 distinct people to approve, but only ann may decide it"):
        engine.start(FEW.replace("[ann]", "[ann, ann]").replace("min_approvals: 2", "min_approvals: 3"))
    assert engine.workflows() == []
    # Loading it says nothing: ann may be a policy role.  The names escalate.to adds count.
    load_spec(FEW)
    escalated = FEW.replace(
        "min_approvals: 2", "min_approvals: 2\n    timeout: 2h\n    escalate: {after: 1h, to: [bob]}"
    )
    assert paused(engine, escalated).status == "PAUSED"


def test_a_requester_left_out_by_exclude_requester_may_not_start_what_others_could_not_approve(
    engine: airt_nb.Engine,
) -> None:
    spec = FEW.replace("[ann]", "[ann, tester]").replace(
        "min_approvals: 2", "min_approvals: 2\n    exclude_requester: true"
    )
    with pytest.raises(PolicyError) as info:
        engine.start(spec)  # by the engine's user, "tester"
    assert (info.value.user, info.value.rule, info.value.step) == ("tester", "exclude_requester", "review")
    assert str(info.value) == (
        "workflow 'few': user 'tester' may not start it: step 'review' says exclude_requester: true, which leaves "
        "only ann to decide it (approvers: [ann, tester]; without a policy file they are user names), fewer than "
        "its min_approvals: 2, so it could never be approved. Let someone else start it, or set min_approvals to 1 "
        "or add approvers (user names or policy roles)"
    )
    alone = FEW.replace("min_approvals: 2", "exclude_requester: true").replace("[ann]", "[tester]")
    with pytest.raises(PolicyError, match=r"which leaves nobody to decide it \(approvers: \[tester\];"):
        engine.start(alone)
    assert engine.workflows() == []
    audit = airt_nb.audit(engine)  # each refusal, like a refused decision
    assert (
        audit[["user", "decision", "rule", "step_name"]].values.tolist()
        == [["tester", "deny", "exclude_requester", "review"]] * 2
    )
    run = engine.start(spec, user="bob")  # ann and tester may decide what bob starts
    assert run.wait(10) == "PAUSED"
    run.approve(by="ann")
    run.approve(by="tester")
    assert run.wait(10) == "COMPLETED"


def test_approvers_that_name_a_policy_role_are_not_counted_as_one_person(db_path: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "users:\n  sam: [author]\n  rita: [reviewer]\n  lead: [reviewer]\n"
        "roles:\n  author: {allow: [wait], act_as: ['*']}\n  reviewer: {approve: true}\n"
    )
    with airt_nb.Engine(db_path, registry=Registry(), user="sam", policy=policy) as eng:
        run = paused(eng, FEW.replace("[ann]", "[reviewer]"))
        run.approve(by="rita")
        run.approve(by="lead")
        assert run.wait(10) == "COMPLETED"
        with pytest.raises(SpecError, match=r"only rita may decide it \(approvers: \[rita\]; none is a policy role\)"):
            eng.start(FEW.replace("[ann]", "[rita]"))


def test_one_rejection_rejects_even_after_approvals(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine)
    run.approve(by="ann")
    decided = run.reject(by="bob", reason="not today")
    assert (decided.status, decided.decided_by) == ("REJECTED", "bob")
    assert run.wait(10, until="done") == "ROLLED_BACK"
    assert not (tmp_path / "build.txt").exists()
    assert [(d.decided_by, d.decision) for d in run.decisions()] == [("ann", "APPROVED"), ("bob", "REJECTED")]


def test_who_started_the_workflow_may_not_decide_it(engine: airt_nb.Engine) -> None:
    run = paused(engine)  # started by the engine's user, "tester"
    with pytest.raises(PolicyError) as info:
        run.approve()
    assert str(info.value) == (
        f"workflow {run.id}, step 'review': user 'tester' started this workflow, and the step says "
        "exclude_requester: who started it may not decide; ask one of the other approvers"
    )
    with pytest.raises(PolicyError, match="exclude_requester"):
        run.reject()
    assert run.decisions() == []
    audit = airt_nb.audit(engine, workflow_id=run.id)
    denied = audit[audit["decision"] == "deny"]
    assert denied["rule"].tolist() == ["exclude_requester", "exclude_requester"]


def test_an_authenticated_step_refuses_asserted_names(engine: airt_nb.Engine) -> None:
    run = paused(engine, SPEC.replace("exclude_requester: true", "authenticated: true").replace("min_approvals: 2", ""))
    with pytest.raises(PolicyError, match=r"accepts only authenticated decisions .* 'rita' is only asserted"):
        run.approve(by="rita")
    # The approvals page authenticates the person: accepted, and recorded as such.
    result = api.decide(
        engine, run.pending_approval.approval_id, True, "checked", {"replicas": 5}, user="rita",
        authenticated_by="jupyterhub",
    )  # fmt: skip
    assert result["approval"]["status"] == "APPROVED"
    (decision,) = run.decisions()
    assert (decision.decided_by, decision.auth) == ("rita", "jupyterhub")
    assert run.wait(10) == "COMPLETED"


def test_an_authenticated_step_refuses_the_command_line(db_path: Path, tmp_path: Path) -> None:
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as eng:
        run = paused(eng, SPEC.replace("exclude_requester: true", "authenticated: true"))
        out = subprocess.run(
            [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "approve", run.id, "--as", "sam"],
            capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )  # fmt: skip
        assert out.returncode == 1
        assert "accepts only authenticated decisions" in out.stderr
        assert run.decisions() == []


def test_the_api_answers_403_for_the_requester_and_reports_partial_approvals(engine: airt_nb.Engine) -> None:
    run = paused(engine)
    approval_id = run.pending_approval.approval_id
    with pytest.raises(api.ApiError) as info:
        api.decide(engine, approval_id, True, None, None, user="tester", authenticated_by="jupyter")
    assert info.value.status == 403
    with pytest.raises(api.ApiError) as info:
        api.decide(engine, approval_id, True, None, {"replicas": 0}, user="olga", authenticated_by="jupyter")
    assert info.value.status == 400
    first = api.decide(engine, approval_id, True, None, None, user="olga", authenticated_by="jupyter")
    assert (first["approval"]["status"], first["approval"]["approved_count"]) == ("PENDING", 1)
    listed = api.list_approvals(engine, "PENDING")
    assert [d["decided_by"] for d in listed[0]["decisions"]] == ["olga"]
    assert listed[0]["field_values"] == {"replicas": 2}


def test_the_card_shows_1_of_2_and_a_second_person_completes_it(db_path: Path, tmp_path: Path) -> None:
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as sam:
        run = paused(sam)
        with airt_nb.Engine(db_path, registry=Registry(), user="ann", recover=False) as ann:
            panel = RunPanel(ann.get(run.id))
            try:
                card = panel.card
                assert "1 of 2" not in card.count_html.value
                assert card.form.inputs["replicas"].value == 2
                card.form.inputs["replicas"].value = 4
                card.reason.value = "four"
                card.approve_button.click()
                assert (
                    "your approval is recorded (1 of 2 approvals); it waits for the others" in card.message_html.value
                )
                panel.refresh()
                assert "1 of 2 approvals (ann)" in card.count_html.value
                assert card.approve_button.disabled  # ann approved already
                assert not card.reject_button.disabled  # but may still reject
                assert "You (ann) approved already" in card.why_html.value
                assert "approved by ann (1 of 2) with replicas=4" in panel.history_html.value
            finally:
                panel.stop_live()
        with airt_nb.Engine(db_path, registry=Registry(), user="bob", recover=False) as bob:
            card = ApprovalCard(bob)
            card.show(run.pending_approval, "deploy", decisions=bob.store.decisions(workflow_id=run.id))
            assert card.form.inputs["replicas"].value == 4  # the values approved so far, to confirm
            assert "approving confirms them" in card.form.note_html.value
            card.approve_button.click()
            assert "approved by bob" in card.message_html.value
        assert run.wait(10) == "COMPLETED"
        assert (tmp_path / "shipped.txt").read_text() == "4"
        # The requester's own card says why it cannot decide.
        second = paused(sam)
        card = ApprovalCard(sam)
        card.show(second.pending_approval, "deploy")
        assert card.approve_button.disabled
        assert card.reject_button.disabled
        assert "You (sam) started this workflow" in card.why_html.value


def test_two_people_approving_at_the_same_instant_both_count(engine: airt_nb.Engine) -> None:
    run = paused(engine, SPEC.replace("min_approvals: 2", "min_approvals: 4"))
    barrier = threading.Barrier(4)
    errors: list[Exception] = []

    def approve(name: str) -> None:
        barrier.wait()
        try:
            run.approve(by=name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(n,)) for n in ("a1", "a2", "a3", "a4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert run.wait(10) == "COMPLETED"
    assert sorted(d.decided_by for d in run.decisions()) == ["a1", "a2", "a3", "a4"]
    assert run.approvals()[0].approved_count == 4


def test_webhooks_hear_each_approval_and_the_final_one(db_path: Path) -> None:
    receiver = Receiver()
    try:
        with make_engine(db_path, receiver.url) as eng:
            run = paused(eng)
            run.approve(by="ann", values={"replicas": 3})
            run.approve(by="bob")
            assert run.wait(10) == "COMPLETED"
            receiver.wait_for(3)
            assert receiver.events() == ["approval.requested", "approval.progress", "approval.approved"]
            bodies = [json.loads(body) for _, body in receiver.requests]
            requested, progress, approved = (b["approval"] for b in bodies)
            assert requested["fields"]["replicas"]["default"] == 2
            assert (requested["min_approvals"], requested["approved_count"]) == (2, 0)
            assert requested["exclude_requester"] is True
            assert requested["preview"]["steps"][0]["step"] == "ship"
            assert "hash" not in requested["preview"]["steps"][0]
            assert (progress["decided_by"], progress["approved_count"], progress["values"]) == (
                "ann",
                1,
                {"replicas": 3},
            )
            assert (approved["decided_by"], approved["approved_count"], approved["values"]) == (
                "bob",
                2,
                {"replicas": 3},
            )
            headers = receiver.requests[1][0]
            assert airt_nb.webhooks.verify(receiver.requests[1][1], headers["X-Airt-Signature-256"], SECRET)
    finally:
        receiver.close()


def test_a_timeout_decides_whatever_the_count(engine: airt_nb.Engine) -> None:
    run = paused(engine, SPEC.replace("exclude_requester: true", "timeout: 0.5\n    on_timeout: approve"))
    run.approve(by="ann")
    assert poll_until(lambda: run.status != "PAUSED", 10)
    assert run.wait(10) == "COMPLETED"
    decisions = [(d.decided_by, d.decision) for d in run.decisions()]
    assert decisions == [("ann", "APPROVED"), ("system", "APPROVED")]
