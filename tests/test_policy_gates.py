"""Gates the policy requires: ``require_approval`` refuses at start a workflow whose matching step has no
qualifying approval before it (naming the step and the rule, writing nothing), accepts one that has;
``authenticated`` in a rule or on a step refuses asserted decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

import airt_nb
from airt_nb import Engine, PolicyError
from airt_nb.policy import parse_policy
from airt_nb.server import api
from airt_nb.store.sqlite import SQLiteStore

POLICY = """\
users:
  agent-7: [agent]
  rita: [reviewer]
  lead: [reviewer, lead]
roles:
  agent:
    allow: ["*"]
    paths: [out]
    require_approval:
      - actions: ["file.delete", "deploy.*"]
        approvers: [reviewer, lead]
      - "file.copy"
      - actions: [python.call]
        min_approvals: 2
        authenticated: true
  reviewer:
    approve: true
  lead:
    approve: true
"""

GATED = """\
name: cleanup
steps:
  - name: plan
    action: file.write
    inputs: {path: out/plan.txt, content: remove old.txt}
  - name: review
    type: human_approval
    approvers: [reviewer]
  - name: remove
    action: file.delete
    inputs: {path: out/old.txt, missing_ok: true}
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    (tmp_path / "out").mkdir()
    return path


def rows(db: Path) -> dict[str, int]:
    store = SQLiteStore(db)
    try:
        return {t: store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("workflows", "workflow_steps", "approvals")}
    finally:
        store.close()


REFUSED = {
    "no approval at all": (
        GATED.replace("  - name: review\n    type: human_approval\n    approvers: [reviewer]\n", ""),
        "remove",
        "agent: require_approval file.delete",
        "no human_approval step comes before it; add a step with {type: human_approval, approvers: [reviewer, "
        "lead]} that step 'remove' depends on (directly or through other steps)",
    ),
    "the approval comes after": (
        GATED.replace("  - name: remove\n", "  - name: remove\n    depends_on: [plan]\n"),
        "remove",
        "agent: require_approval file.delete",
        "no human_approval step comes before it",
    ),
    "the wrong approvers": (
        GATED.replace("approvers: [reviewer]", "approvers: [reviewer, agent-7]"),
        "remove",
        "agent: require_approval file.delete",
        "the approval step(s) before it ('review') do not qualify",
    ),
    "no approvers named": (
        GATED.replace("    approvers: [reviewer]\n", ""),
        "remove",
        "agent: require_approval file.delete",
        "do not qualify",
    ),
    "an approval that may be skipped": (
        GATED.replace("approvers: [reviewer]", 'approvers: [reviewer]\n    when: "${{ inputs.careful }}"').replace(
            "name: cleanup\n", "name: cleanup\ninputs: {careful: true}\n"
        ),
        "remove",
        "agent: require_approval file.delete",
        "an approval that may be skipped by a when: does not count",
    ),
    "a plain glob": (
        GATED.replace(
            "action: file.delete\n    inputs: {path: out/old.txt, missing_ok: true}",
            "action: file.copy\n    depends_on: [plan]\n    inputs: {src: out/plan.txt, dst: out/p2.txt}",
        ),
        "remove",
        "agent: require_approval file.copy",
        "no human_approval step comes before it",
    ),
    "too few people, not authenticated": (
        GATED.replace(
            "action: file.delete\n    inputs: {path: out/old.txt, missing_ok: true}",
            "action: python.call\n    inputs: {function: 'os.path:exists', args: [out]}",
        ),
        "remove",
        "agent: require_approval python.call",
        "add a step with {type: human_approval, min_approvals: 2, authenticated: true}",
    ),
}


@pytest.mark.parametrize(("spec", "step", "rule", "why"), REFUSED.values(), ids=REFUSED.keys())
def test_a_workflow_without_the_required_gate_is_refused_at_start(
    policy: Path, db_path: Path, spec: str, step: str, rule: str, why: str
) -> None:
    with Engine(db_path, policy=policy, user="agent-7") as eng:
        before = rows(db_path)
        with pytest.raises(PolicyError) as info:
            eng.start(spec)
        text = str(info.value)
        assert text.startswith(f"workflow 'cleanup', step '{step}': user 'agent-7' (roles: agent) may not run action")
        assert f"without an approval before it; refused by rule '{rule}'" in text
        assert why in text
        assert (info.value.rule, info.value.step) == (rule, step)
        assert rows(db_path) == before  # nothing of it was written
        audit = airt_nb.audit(eng)
        denied = audit[audit["decision"] == "deny"]
        assert denied["rule"].tolist() == [rule]
        assert denied["step_name"].tolist() == [step]


ALLOWED = {
    "the gate before it": GATED,
    "a gate earlier in the chain": GATED.replace(
        "  - name: remove\n", "  - name: wait_a_bit\n    action: wait\n    inputs: {seconds: 0}\n  - name: remove\n"
    ),
    "a subset of the approvers": GATED.replace("approvers: [reviewer]", "approvers: [lead]"),
    "an action no rule names": GATED.replace("action: file.delete\n    inputs: {path: out/old.txt, missing_ok: true}",
                                             "action: file.write\n    inputs: {path: out/x.txt, content: x}"),
    "four eyes, authenticated": GATED.replace(
        "approvers: [reviewer]", "approvers: [reviewer]\n    min_approvals: 2\n    authenticated: true"
    ).replace("action: file.delete\n    inputs: {path: out/old.txt, missing_ok: true}",
              "action: python.call\n    inputs: {function: 'os.path:exists', args: [out]}"),
}  # fmt: skip


@pytest.mark.parametrize("spec", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_workflow_with_the_required_gate_starts(policy: Path, db_path: Path, spec: str) -> None:
    with Engine(db_path, policy=policy, user="agent-7") as eng:
        run = eng.start(spec)
        assert run.wait(10) == "PAUSED"
        audit = airt_nb.audit(eng, workflow_id=run.id)
        gates = audit[audit["rule"].str.contains("require_approval", na=False)]
        assert set(gates["decision"]) <= {"allow"}
        assert set(gates["target"]) <= {"review"}


def test_the_gate_rule_applies_to_the_role_that_starts_it(policy: Path, db_path: Path) -> None:
    # rita's roles have no require_approval: her workflow needs no gate (her roles may not run it either).
    with Engine(db_path, policy=policy, user="rita") as eng, pytest.raises(PolicyError, match="default deny"):
        eng.start(REFUSED["no approval at all"][0])


def test_an_authenticated_gate_takes_only_authenticated_decisions(policy: Path, db_path: Path) -> None:
    spec = ALLOWED["four eyes, authenticated"]
    with Engine(db_path, policy=policy, user="agent-7") as agent:
        run = agent.start(spec)
        assert run.wait(10) == "PAUSED"
        with Engine(db_path, policy=policy, user="rita", recover=False) as rita:
            with pytest.raises(PolicyError, match="accepts only authenticated decisions"):
                rita.approve(run.id)
            approval_id = run.pending_approval.approval_id
            api.decide(rita, approval_id, True, None, None, user="rita", authenticated_by="jupyter")
            api.decide(rita, approval_id, True, None, None, user="lead", authenticated_by="jupyterhub")
        assert run.wait(10) == "COMPLETED"
        assert [(d.decided_by, d.auth) for d in run.decisions()] == [("rita", "jupyter"), ("lead", "jupyterhub")]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("roles:\n  r:\n    require_approval: [{approvers: [x]}]\n", "roles.r.require_approval[0].actions", "required"),
        ("roles:\n  r:\n    require_approval: [{actions: [x], approver: [y]}]\n",
         "roles.r.require_approval[0].approver", "unknown key 'approver'; allowed here: actions, approvers"),
        ("roles:\n  r:\n    require_approval: [{actions: ['']}]\n", "roles.r.require_approval[0].actions", "an empty name"),
        ("roles:\n  r:\n    require_approval: [{actions: [x], min_approvals: 0}]\n",
         "roles.r.require_approval[0].min_approvals", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_a_malformed_rule_names_its_line(text: str, field: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, name="p.yaml")
    assert info.value.problems[0][1] == field
    assert info.value.problems[0][0] == 3
    assert message in str(info.value)
