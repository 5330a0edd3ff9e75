"""Reminders and escalation of pending approvals, with short durations: sent to the webhook that heard
of the request, recorded in the run's history, done once however many engines are open, and kept
across a restart like deadlines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import airt_nb
from airt_nb import PolicyError, Registry
from tests.conftest import poll_until
from tests.test_webhooks import Receiver, make_engine

SPEC = """\
name: nag
steps:
  - name: review
    type: human_approval
    message: "Go?"
    approvers: [ann]
    remind_every: 0.4
    escalate: {after: 0.9, to: [lead]}
    timeout: 60
  - name: go
    action: wait
    inputs: {seconds: 0}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def events(receiver: Receiver) -> list[str]:
    return receiver.events()


def test_reminders_are_sent_until_a_decision_and_the_escalation_adds_approvers(
    db_path: Path, receiver: Receiver
) -> None:
    with make_engine(db_path, receiver.url) as eng:
        run = eng.start(SPEC)
        assert run.wait(10) == "PAUSED"
        with pytest.raises(PolicyError):
            run.approve(by="lead")  # not yet an approver
        assert poll_until(lambda: "approval.escalated" in events(receiver), 10)
        assert poll_until(lambda: events(receiver).count("approval.reminder") >= 2, 10)
        approval = run.pending_approval
        assert approval.approver_list == ["ann", "lead"]
        assert approval.escalated_at is not None
        assert approval.reminders >= 2
        run.approve(by="lead", reason="escalated to me")
        assert run.wait(10) == "COMPLETED"
        reminded = events(receiver).count("approval.reminder")
        time.sleep(1.0)
        assert events(receiver).count("approval.reminder") == reminded  # none after the decision
        bodies = [json.loads(body) for _, body in receiver.requests]
        escalated = next(b for b in bodies if b["event"] == "approval.escalated")
        assert escalated["approval"]["escalated_to"] == ["lead"]
        assert escalated["approval"]["approvers"] == ["ann", "lead"]
        reminder = next(b for b in bodies if b["event"] == "approval.reminder")
        assert reminder["approval"]["message"] == "Go?"
        assert reminder["approval"]["reminders"] >= 1
        history = [e.event for e in eng.store.history(run.id)]
        assert "escalated" in history
        assert history.count("reminded") == reminded
        assert events(receiver)[0] == "approval.requested"
        assert events(receiver)[-1] == "approval.approved"


def test_an_escalation_without_approvers_widens_nothing_but_tells(db_path: Path, receiver: Receiver) -> None:
    spec = SPEC.replace("    approvers: [ann]\n", "").replace("remind_every: 0.4", "remind_every: 30")
    with make_engine(db_path, receiver.url) as eng:
        run = eng.start(spec)
        assert run.wait(10) == "PAUSED"
        assert poll_until(lambda: "approval.escalated" in events(receiver), 10)
        assert run.pending_approval.approver_list == []  # anyone may decide, still
        assert run.pending_approval.reminders == 0


def test_two_engines_send_each_reminder_once(db_path: Path, receiver: Receiver) -> None:
    spec = SPEC.replace("escalate: {after: 0.9, to: [lead]}\n    ", "")
    with make_engine(db_path, receiver.url) as one, make_engine(db_path, receiver.url, registry=Registry()):
        run = one.start(spec)
        assert run.wait(10) == "PAUSED"
        assert poll_until(lambda: run.pending_approval.reminders >= 3, 15)
        run.approve(by="ann")
        assert run.wait(10) == "COMPLETED"
        count = run.approvals()[0].reminders
        assert poll_until(lambda: events(receiver).count("approval.reminder") == count, 10)
        time.sleep(0.5)
        assert events(receiver).count("approval.reminder") == count


def test_reminders_and_the_escalation_survive_a_restart(db_path: Path, receiver: Receiver) -> None:
    spec = SPEC.replace("remind_every: 0.4", "remind_every: 1.5").replace("after: 0.9", "after: 1.2")
    with make_engine(db_path, receiver.url) as eng:
        run = eng.start(spec)
        assert run.wait(10) == "PAUSED"
        workflow_id = run.id
    time.sleep(2.0)  # both come due while no engine runs
    assert "approval.escalated" not in events(receiver)
    assert "approval.reminder" not in events(receiver)
    with make_engine(db_path, receiver.url) as eng:
        run = eng.get(workflow_id)
        assert poll_until(lambda: "approval.escalated" in events(receiver), 10)
        assert poll_until(lambda: "approval.reminder" in events(receiver), 10)
        assert run.pending_approval.approver_list == ["ann", "lead"]
        assert run.pending_approval.reminders >= 1
        assert events(receiver)[0] == "approval.requested"  # delivered in order, by the engine that is open
        run.approve(by="lead")
        assert run.wait(10) == "COMPLETED"


def test_a_reminder_needs_no_webhook(db_path: Path) -> None:
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as eng:
        run = eng.start(SPEC)
        assert run.wait(10) == "PAUSED"
        assert poll_until(lambda: run.pending_approval.reminders >= 1, 10)
        assert eng.store.deliveries() == []
        assert "reminded" in [e.event for e in eng.store.history(run.id)]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("remind_every: 0.4", "remind_every: 2m", "remind_every (2m) is not shorter than the timeout (1m)"),
        ("after: 0.9", "after: 2m", "escalate.after (2m) is not before the timeout (1m)"),
        ("to: [lead]", "to: []", "List should have at least 1 item"),
        ("to: [lead]", "to: [lead], cc: [x]", "unknown key 'cc'; allowed here: after, to"),
        ("remind_every: 0.4", "remind_every: -1", "is negative"),
    ],
)
def test_bad_reminder_and_escalation_settings_are_spec_errors(old: str, new: str, message: str) -> None:
    spec = SPEC.replace("timeout: 60", "timeout: 1m").replace(old, new)
    with pytest.raises(airt_nb.SpecError) as info:
        airt_nb.load_spec(spec)
    assert info.value.problems[0][0] in (7, 8)
    assert message in str(info.value)
