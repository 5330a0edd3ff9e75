"""Who acts is a name that prints as itself: checked wherever a person is named, and bad
arguments refused with an AirtError that says what to give, before anything is written."""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path

import pytest

import airt_nb
from airt_nb import AirtError, ApprovalError, NotFoundError, PolicyError, Registry, SpecError

REVIEW = {
    "name": "review",
    "steps": [
        {"name": "before", "action": "wait", "inputs": {"seconds": 0}},
        {"name": "ok", "type": "human_approval", "message": "go?"},
    ],
}
EVENT = {"name": "hear", "steps": [{"name": "w", "type": "wait_event", "event": "go"}]}

BAD_NAMES = [
    (1, "must be a person's name as text, not int"),
    (b"ann", "must be a person's name as text, not bytes"),
    (["ann"], "must be a person's name as text, not list"),
    ("   ", "is empty"),
    ("ann\u200b", "contains U+200B (an invisible or control character)"),
    ("ann\nbob", "contains U+000A"),
    ("a\x00b", "contains U+0000"),
    ("\u202eann", "contains U+202E"),
    ("x" * 201, "is 201 characters long; a name has at most 200"),
    ("SYSTEM", "is reserved for what the engine decides itself"),
]


def _rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_a_decider_that_is_not_a_plain_name_is_refused_and_nothing_is_decided(
    db_path: Path, registry: Registry, name: object, message: str
) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        run = eng.start(REVIEW)
        assert run.wait(timeout=10) == "PAUSED"
        with pytest.raises(PolicyError, match="step 'ok'") as info:
            eng.approve(run.id, by=name)  # type: ignore[arg-type]
        assert message in str(info.value)
        assert str(info.value).endswith("(or leave by= out to decide as yourself)")
        assert run.approvals()[0].status == "PENDING"
        assert _rows(db_path, "approval_decisions") == 0
    finally:
        eng.close()


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_who_starts_cancels_or_sends_is_a_plain_name_too(db_path: Path, name: object, message: str) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        with pytest.raises(PolicyError, match="user=") as info:
            eng.start(REVIEW, user=name)  # type: ignore[arg-type]
        assert message in str(info.value)
        with pytest.raises(PolicyError, match="as_user="):
            eng.start(REVIEW, as_user=name)  # type: ignore[arg-type]
        assert _rows(db_path, "workflows") == 0
        run = eng.start(EVENT)
        assert run.wait(timeout=10) == "PAUSED"
        with pytest.raises(PolicyError, match="by="):
            eng.send(run.id, "go", {}, by=name)  # type: ignore[arg-type]
        with pytest.raises(PolicyError, match="by="):
            run.cancel(by=name)  # type: ignore[arg-type]
        assert run.status == "PAUSED"
        assert eng.store.sent_events(workflow_id=run.id) == []
    finally:
        eng.close()


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_an_engine_is_not_opened_under_a_name_that_is_not_plain(tmp_path: Path, name: object, message: str) -> None:
    db = tmp_path / "never.db"
    with pytest.raises(PolicyError, match="user="):
        airt_nb.Engine(db, user=name)  # type: ignore[arg-type]
    assert not db.exists()  # refused before the database was opened


def test_the_environments_name_is_checked_and_said_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRT_USER", "system")
    with pytest.raises(PolicyError, match="AIRT_USER='system' is reserved"):
        airt_nb.Engine(tmp_path / "a.db")
    monkeypatch.setenv("AIRT_USER", "  ann  ")
    eng = airt_nb.Engine(tmp_path / "a.db")
    assert eng.user == "ann"
    eng.close()


def test_a_reason_is_text_and_an_approval_id_is_never_empty(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        run = eng.start(REVIEW)
        assert run.wait(timeout=10) == "PAUSED"
        with pytest.raises(ApprovalError, match="reason= must be text, not list; nothing was decided"):
            run.approve(reason=["fine"])  # type: ignore[arg-type]
        with pytest.raises(ApprovalError, match="reason= is 10,001 characters long"):
            run.approve(reason="x" * 10_001)
        for empty in ("", "  ", []):
            with pytest.raises(NotFoundError, match="no approval of workflow"):
                run.approve(approval_id=empty)  # type: ignore[arg-type]
        with pytest.raises(PolicyError, match="authenticated_by="):
            eng.approve(run.id, by="ann", authenticated_by=["jupyter"])  # type: ignore[arg-type]
        assert run.approvals()[0].status == "PENDING"
        assert run.approve(reason="fine").status == "APPROVED"
    finally:
        eng.close()


def test_a_prefix_names_a_workflow_for_wait_and_status_as_for_get(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        run = eng.start(REVIEW)
        assert eng.wait(run.id[:6], timeout=10) == "PAUSED"
        assert eng.status_of(run.id[:6]) == "PAUSED"
        with pytest.raises(NotFoundError, match="no workflow 'zzzzzz'"):
            eng.status_of("zzzzzz")
        for bad in ("5", float("nan"), -1, True, []):
            with pytest.raises(AirtError, match="timeout= must be a number of seconds, 0 or more"):
                run.wait(timeout=bad)  # type: ignore[arg-type]
    finally:
        eng.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_workers": 0}, r"Engine\(max_workers=...\): 0 is out of range; use a whole number from 1 to 1024"),
        ({"max_workers": "4"}, r"Engine\(max_workers=...\): '4' is not a whole number"),
        ({"lease_ttl": float("nan")}, r"Engine\(lease_ttl=...\): nan is out of range"),
        ({"poll_interval": float("inf")}, r"Engine\(poll_interval=...\): inf is out of range"),
        ({"busy_timeout": -1}, r"Engine\(busy_timeout=...\): -1 is out of range"),
        ({"webhook_secret": 1}, r"Engine\(webhook_secret=...\) must be text, not int"),
        ({"registry": "x"}, r"Engine\(registry=...\) must be an airt_nb.Registry, not str"),
        ({"policy": {"users": {}}}, "policy= must be a policy file's path or a Policy"),
        ({"policy": ""}, "policy= is empty"),
    ],
)
def test_engine_settings_are_checked_before_the_database_is_opened(
    tmp_path: Path, settings: dict, message: str
) -> None:
    db = tmp_path / "never.db"
    with pytest.raises(AirtError, match=message):
        airt_nb.Engine(db, **settings)
    assert not db.exists()


def test_an_approver_nobody_could_be_is_refused_in_the_spec() -> None:
    spec = 'name: x\nsteps:\n  - name: r\n    type: human_approval\n    approvers: ["", " ann", "bob\\u200b", carol]\n'
    with pytest.raises(SpecError) as info:
        airt_nb.load_spec(spec)
    assert [(line, field) for line, field, _ in info.value.problems] == [
        (5, "steps[0].approvers[0]"),
        (5, "steps[0].approvers[1]"),
        (5, "steps[0].approvers[2]"),
    ]
    assert "nobody could ever decide" in str(info.value)


def test_listings_refuse_a_status_that_does_not_exist_instead_of_finding_nothing(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        eng.start(REVIEW).wait(timeout=10)
        with pytest.raises(AirtError, match="status='paused' is not a workflow status; use one of PENDING, RUNNING"):
            eng.workflows(status="paused")
        with pytest.raises(AirtError, match="limit=: 10000000000 is out of range"):
            eng.workflows(limit=10**10)
        with pytest.raises(AirtError, match="name= is text"):
            eng.workflows(name=1)  # type: ignore[arg-type]
        with pytest.raises(AirtError, match="status='NOPE' is not a status of workflows"):
            airt_nb.runs(eng, status="NOPE")
        with pytest.raises(AirtError, match="status='DONE' is not a status of workflow_steps"):
            airt_nb.steps(eng, status="DONE")
        with pytest.raises(AirtError, match="workflow_id= is a workflow's id"):
            airt_nb.steps(eng, workflow_id=[])  # type: ignore[arg-type]
        assert [w.status for w in eng.workflows(status="PAUSED")] == ["PAUSED"]
        assert len(airt_nb.runs(eng, status="PAUSED")) == 1
    finally:
        eng.close()


def test_a_closed_engine_says_it_is_closed_whatever_is_asked(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    run = eng.start(REVIEW)
    assert run.wait(timeout=10) == "PAUSED"
    eng.close()
    for call in (
        lambda: eng.get(run.id),
        lambda: eng.approve(run.id),
        lambda: eng.workflows(),
        lambda: eng.start(REVIEW),
    ):
        with pytest.raises(airt_nb.WorkflowStateError, match="is closed; create a new Engine"):
            call()


def test_values_that_cannot_be_recorded_are_named_with_what_to_do(db_path: Path, registry: Registry) -> None:
    @registry.action("huge")
    def huge() -> dict:
        return {"n": 10**5000}

    eng = airt_nb.Engine(db_path, user="tester", registry=registry)
    try:
        spec = {"name": "big", "inputs": {"t": 0}, "steps": [{"name": "s", "action": "huge"}]}
        with pytest.raises(SpecError, match=r"inputs\.t: an integer of more than 4,300 digits cannot be recorded"):
            eng.start(spec, inputs={"t": 10**5000})
        for bad in (1, "a\x00b", "x" * 5000):
            with pytest.raises(SpecError, match="workdir"):
                eng.start(spec, workdir=bad)  # type: ignore[arg-type]
        assert eng.workflows() == []
        run = eng.start(spec)
        assert run.wait(timeout=10) == "FAILED"
        assert "an integer of more than 4,300 digits; return it as text" in (run.error or "")
        with pytest.raises(NotFoundError) as info:
            eng.get("f" * 100_000)
        assert len(str(info.value)) < 300
    finally:
        eng.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is empty"),
        ("a b", "no spaces"),
        ("x" * 101, "is longer than 100 characters"),
        ("${{ inputs.x }}", "no ${{ }}"),
    ],
)
def test_an_action_is_registered_under_a_name_a_spec_can_use(name: str, message: str) -> None:
    registry = Registry()

    def f(x: int) -> dict:
        return {}

    with pytest.raises(airt_nb.ActionError, match=re.escape(message)):
        registry.action(name)(f)
    assert name not in registry


def test_what_cannot_be_an_action_or_an_undo_is_said_where_it_is_defined() -> None:
    registry = Registry()

    def f(x: int) -> dict:
        return {}

    with pytest.raises(airt_nb.ActionError, match="has no name to register it under; give one"):
        registry.action(functools.partial(f, x=1))
    with pytest.raises(airt_nb.ActionError, match="cannot be an action: no signature found"):
        registry.action("strcls")(str)
    act = registry.action("good")(f)
    for bad, message in [
        (None, "compensate() needs a function, got NoneType"),
        (lambda: None, "takes 0 positional parameters"),
        (lambda a, b, c, d: None, "takes 4 positional parameters"),
    ]:
        with pytest.raises(airt_nb.ActionError, match=re.escape(message)):
            act.compensate(bad)  # type: ignore[arg-type]
    assert act.compensation is None
    act.compensate(lambda inputs, outputs, ctx: None)
    assert act.compensation is not None


def test_an_id_prefix_is_helped_along(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, user="tester")
    try:
        run = eng.start(REVIEW)
        assert eng.get(run.id.upper()).id == run.id
        assert eng.get(run.id[:6].upper()).id == run.id
        with pytest.raises(NotFoundError, match="a prefix needs at least 4 characters; give more of the id"):
            eng.get(run.id[:3])
        with sqlite3.connect(db_path) as conn:  # two runs whose ids share their first 12 characters
            for suffix in ("0001", "0002"):
                conn.execute(
                    "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, "
                    "updated_at, total_steps) SELECT ?, name, 'COMPLETED', spec, spec_hash, inputs, created_at, "
                    "updated_at, total_steps FROM workflows WHERE workflow_id = ?",
                    ("abcdef01234d" + suffix, run.id),
                )
        with pytest.raises(NotFoundError) as info:
            eng.get("ABCDEF01")
        assert str(info.value).endswith("it could be abcdef01234d0001, abcdef01234d0002; give more of the id")
        assert eng.get("abcdef01234d0002").status == "COMPLETED"
    finally:
        eng.close()


def test_frames_say_what_db_may_be() -> None:
    for bad in (1, b"airt.db", []):
        with pytest.raises(AirtError, match="db= is an Engine, a database's path or URL, or None"):
            airt_nb.runs(bad)
