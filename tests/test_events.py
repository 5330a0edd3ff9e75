"""Events sent to workflows: ``wait_event`` steps, ``Engine.send``, ``airt send``, deadlines, restarts."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import poll_until

import airt_nb
from airt_nb import EventError, Registry

CI = {
    "name": "deploy",
    "steps": [
        {"name": "build", "action": "effect", "inputs": {"n": 1}},
        {
            "name": "ci",
            "type": "wait_event",
            "event": "ci.done",
            "schema": {"type": "object", "required": ["passed"], "properties": {"passed": {"type": "boolean"}}},
        },
        {"name": "ship", "action": "effect", "inputs": {"n": "${{ steps.ci.outputs.passed }}"}},
    ],
}


@pytest.fixture
def effects(registry: Registry) -> Counter[str]:
    done: Counter[str] = Counter()

    @registry.action("effect")
    def effect(n: object, ctx: airt_nb.StepContext) -> dict:
        done[ctx.step_name] += 1
        return {"n": n}

    @effect.compensate
    def _(inputs: dict, outputs: dict, ctx: object) -> None:
        done[f"undo {getattr(ctx, 'step_name')}"] += 1  # noqa: B009

    return done


def events_of(engine: airt_nb.Engine, run: airt_nb.Run) -> list[str]:
    return list(airt_nb.history(engine, workflow_id=run.id)["event"])


def test_a_sent_event_becomes_the_step_outputs_and_the_run_goes_on(
    engine: airt_nb.Engine, effects: Counter[str]
) -> None:
    run = engine.start(CI)
    assert run.wait(timeout=10) == "PAUSED"  # a waiting step pauses the run, as an approval does
    assert {s.step_name: s.status for s in run.steps()}["ci"] == "WAITING"

    sent = engine.send(run.id, "ci.done", {"passed": True, "url": "https://ci/1"})

    assert sent.status == "RECEIVED"
    assert sent.step_name == "ci"
    assert sent.sent_by == "tester"
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["ci"] == {"passed": True, "url": "https://ci/1"}
    assert run.outputs["ship"] == {"n": True}
    assert effects == Counter({"build": 1, "ship": 1})
    assert events_of(engine, run) == [
        "started", "waiting_for_event", "paused", "event_sent", "event_received", "resumed", "completed",
    ]  # fmt: skip


def test_an_event_sent_before_the_step_is_reached_is_received_without_a_pause(
    engine: airt_nb.Engine, effects: Counter[str]
) -> None:
    spec = {**CI, "steps": [{"name": "ask", "type": "human_approval"}, *CI["steps"]]}
    run = engine.start(spec)
    assert run.wait(timeout=10) == "PAUSED"

    kept = engine.send(run.id, "ci.done", {"passed": False})
    assert kept.status == "PENDING"
    run.approve(reason="go")

    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["ship"] == {"n": False}
    history = events_of(engine, run)
    assert history.count("paused") == 1  # for the approval only
    assert "waiting_for_event" not in history


def test_events_sent_before_during_and_after_a_restart(db_path: Path, effects: Counter[str]) -> None:
    registry = Registry()
    registry.register(Registry().get("wait"))  # type: ignore[arg-type]
    spec = {
        "name": "three",
        "steps": [
            {"name": "ask", "type": "human_approval"},
            {"name": "first", "type": "wait_event", "event": "one"},
            {"name": "second", "type": "wait_event", "event": "two"},
            {"name": "third", "type": "wait_event", "event": "three"},
        ],
    }
    eng = airt_nb.Engine(db_path, user="ann")
    run = eng.start(spec)
    assert run.wait(timeout=10) == "PAUSED"
    assert eng.send(run.id, "one", 1).status == "PENDING"  # before: its step is not reached yet
    eng.close()

    # While no engine runs the workflow (a terminal, as `airt` does): decided and sent, both kept.
    cli = airt_nb.Engine(db_path, recover=False, user="bob")
    cli.approve(run.id, reason="ok")
    assert cli.send(run.id, "two", {"x": 2}).status == "PENDING"
    cli.close()

    eng = airt_nb.Engine(db_path, user="ann")  # the restart
    run = eng.get(run.id)
    assert run.wait(timeout=10) == "PAUSED"  # first and second received on the way, third waits
    assert eng.send(run.id, "three", [3]).status == "RECEIVED"  # after the restart
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs == {"ask": run.outputs["ask"], "first": 1, "second": {"x": 2}, "third": [3]}
    eng.close()


def test_an_event_sent_while_no_engine_runs_continues_the_paused_run_when_one_opens(
    db_path: Path, effects: Counter[str], registry: Registry
) -> None:
    eng = airt_nb.Engine(db_path, registry=registry, user="ann")
    run = eng.start(CI)
    assert run.wait(timeout=10) == "PAUSED"
    eng.close()

    cli = airt_nb.Engine(db_path, registry=Registry(), recover=False, user="bob")
    cli.send(run.id, "ci.done", {"passed": True})
    assert cli.get(run.id).status == "RUNNING"  # left for an engine that runs workflows
    cli.close()

    eng = airt_nb.Engine(db_path, registry=registry, user="ann")
    assert eng.get(run.id).wait(timeout=10) == "COMPLETED"
    assert effects == Counter({"build": 1, "ship": 1})
    eng.close()


def test_a_payload_the_schema_refuses_is_never_recorded(engine: airt_nb.Engine, effects: Counter[str]) -> None:
    run = engine.start(CI)
    assert run.wait(timeout=10) == "PAUSED"

    with pytest.raises(
        EventError, match=r"does not match the step's schema: payload\['passed'\]: 'yes' is not of type"
    ):
        engine.send(run.id, "ci.done", {"passed": "yes"})
    with pytest.raises(EventError, match=r"no step waiting for event 'ci.don' \(events it waits for: 'ci.done'\)"):
        engine.send(run.id, "ci.don", {"passed": True})
    with pytest.raises(EventError, match="payload\\['x'\\]: nan is not a JSON number"):
        engine.send(run.id, "ci.done", {"x": float("nan")})

    assert engine.store.sent_events(workflow_id=run.id) == []
    assert run.status == "PAUSED"


def test_the_first_event_wins_and_a_finished_run_takes_none(engine: airt_nb.Engine, effects: Counter[str]) -> None:
    run = engine.start({**CI, "steps": [{"name": "ask", "type": "human_approval"}, *CI["steps"]]})
    assert run.wait(timeout=10) == "PAUSED"
    engine.send(run.id, "ci.done", {"passed": True}, by="ci-bot")

    with pytest.raises(EventError, match=r"was sent to workflow .* already, by ci-bot at") as info:
        engine.send(run.id, "ci.done", {"passed": False})
    assert info.value.conflict
    run.approve()
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["ci"] == {"passed": True}
    other = engine.start(CI)
    assert other.wait(timeout=10) == "PAUSED"
    engine.cancel(other.id)
    with pytest.raises(EventError, match="is CANCELLED: it no longer waits for events"):
        engine.send(other.id, "ci.done", {"passed": True})


def test_a_deadline_fails_the_step_and_rolls_back(engine: airt_nb.Engine, effects: Counter[str]) -> None:
    spec = json.loads(json.dumps(CI))
    spec["steps"][1]["timeout"] = "200ms"
    run = engine.start(spec)

    assert run.wait(timeout=10, until="done") == "FAILED"
    assert "step 'ci' failed: no event 'ci.done' within 0.2 s (its timeout)" in (run.error or "")
    assert effects == Counter({"build": 1, "undo build": 1})
    assert {s.step_name: s.status for s in run.steps()}["ci"] == "FAILED"
    with pytest.raises(EventError, match="is FAILED: it no longer waits for events"):
        engine.send(run.id, "ci.done", {"passed": True})


def test_on_timeout_continue_goes_on_without_the_event(engine: airt_nb.Engine, effects: Counter[str]) -> None:
    spec = {
        "name": "optional",
        "steps": [
            {"name": "maybe", "type": "wait_event", "event": "hint", "timeout": 0.2, "on_timeout": "continue"},
            {"name": "go", "action": "effect", "inputs": {"n": "${{ steps.maybe.outputs.timed_out }}"}},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10, until="done") == "COMPLETED"
    assert run.outputs == {"maybe": {"timed_out": True}, "go": {"n": True}}


def test_a_deadline_that_passed_while_no_engine_ran_is_applied_at_open(
    db_path: Path, effects: Counter[str], registry: Registry
) -> None:
    spec = json.loads(json.dumps(CI))
    spec["steps"][1]["timeout"] = 1
    eng = airt_nb.Engine(db_path, registry=registry)
    run = eng.start(spec)
    assert run.wait(timeout=10) == "PAUSED"
    eng.close()
    time.sleep(1.2)  # the deadline passes while nothing runs

    eng = airt_nb.Engine(db_path, registry=registry)
    assert eng.get(run.id).wait(timeout=10, until="done") == "FAILED"
    assert effects["undo build"] == 1
    eng.close()


def test_airt_send(
    db_path: Path, effects: Counter[str], registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    from airt_nb.cli import main

    eng = airt_nb.Engine(db_path, registry=registry)
    run = eng.start(CI)
    assert run.wait(timeout=10) == "PAUSED"

    assert main(["--db", str(db_path), "send", run.id[:6], "ci.done", "--data", '{"passed": true}', "--as", "ci"]) == 0
    out = capsys.readouterr().out
    assert f"sent event 'ci.done' to workflow {run.id}: step 'ci' received it" in out
    assert run.wait(timeout=10) == "COMPLETED"
    assert eng.store.sent_events(workflow_id=run.id)[0].sent_by == "ci"
    with pytest.raises(SystemExit) as usage:
        main(["--db", str(db_path), "send", run.id, "ci.done", "--data", "{nope"])
    assert usage.value.code == 2
    assert main(["--db", str(db_path), "send", run.id, "ci.done", "--data", '{"passed": false}']) == 1
    assert "is COMPLETED: it no longer waits for events" in capsys.readouterr().err
    eng.close()


def test_a_wait_event_spec_is_checked(registry: Registry) -> None:
    with pytest.raises(airt_nb.SpecError) as info:
        airt_nb.load_spec(
            "name: x\nsteps:\n  - name: a\n    type: wait_event\n    event: go\n    schema: {type: 3}\n"
            "  - name: b\n    type: wait_event\n    event: go\n    inputs: {n: 1}\n",
            registry=registry,
        )
    problems = {(line, field) for line, field, _ in info.value.problems}
    assert problems == {(6, "steps[0].schema"), (9, "steps[1].event"), (10, "steps[1].inputs")}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "http://127.0.0.1:1/x.json"}, "$ref 'http://127.0.0.1:1/x.json' at / points outside the schema"),
        ({"properties": {"a": {"$ref": "#/$defs/p"}}}, "$ref '#/$defs/p' at /properties/a points at nothing"),
        ({"$ref": "#thing"}, "$ref '#thing' at / names no $anchor of the schema"),
    ],
)
def test_a_schema_refers_only_to_what_it_contains(registry: Registry, schema: dict, message: str) -> None:
    step = {"name": "w", "type": "wait_event", "event": "go", "schema": schema}
    with pytest.raises(airt_nb.SpecError) as info:
        airt_nb.load_spec({"name": "refs", "steps": [step]}, registry=registry)
    [(_line, field, text)] = info.value.problems
    assert field == "steps[0].schema"
    assert text.startswith(message)


def test_a_schema_with_its_own_definitions_checks_payloads(engine: airt_nb.Engine) -> None:
    schema = {
        "$defs": {"flag": {"type": "boolean"}, "n": {"$anchor": "count", "type": "integer"}},
        "properties": {"passed": {"$ref": "#/$defs/flag"}, "n": {"$ref": "#count"}, "e": {"enum": [{"$ref": "x"}]}},
    }
    run = engine.start(
        {"name": "defs", "steps": [{"name": "w", "type": "wait_event", "event": "go", "schema": schema}]}
    )
    assert run.wait(timeout=10) == "PAUSED"
    with pytest.raises(EventError, match=r"payload\['n'\]: 'two' is not of type 'integer'"):
        engine.send(run.id, "go", {"passed": True, "n": "two"})
    engine.send(run.id, "go", {"passed": True, "n": 2})
    assert run.wait(timeout=10) == "COMPLETED"


def test_a_reference_that_cannot_be_followed_is_said_at_send(engine: airt_nb.Engine) -> None:
    # Resolved against the nested $id, not the root: loading cannot tell, the payload check can.
    schema = {"$defs": {"p": {}}, "properties": {"a": {"$id": "http://example.invalid/a.json", "$ref": "#/$defs/p"}}}
    run = engine.start({"name": "ids", "steps": [{"name": "w", "type": "wait_event", "event": "go", "schema": schema}]})
    assert run.wait(timeout=10) == "PAUSED"
    with pytest.raises(EventError, match="the schema of step 'w' refers to something it does not contain"):
        engine.send(run.id, "go", {"a": 1})
    assert engine.store.sent_events(workflow_id=run.id) == []
    assert run.status == "PAUSED"


def test_the_panel_says_what_the_run_waits_for(engine: airt_nb.Engine, effects: Counter[str]) -> None:
    from airt_nb.views import read_run, snapshot_html, summary_text

    run = engine.start(CI)
    assert run.wait(timeout=10) == "PAUSED"
    state = read_run(engine.store, run.id)
    assert state is not None
    assert "waiting for event ci.done" in summary_text(state)
    assert f"airt send {run.id} ci.done" in snapshot_html(state)
    assert poll_until(lambda: engine.store.event_deadlines() == [], 1)


def test_a_finished_run_says_so_whatever_event_is_sent(engine: airt_nb.Engine) -> None:
    run = engine.start({"name": "over", "steps": [{"name": "w", "type": "wait_event", "event": "go"}]})
    assert run.wait(timeout=10) == "PAUSED"
    engine.send(run.id, "go", {})
    assert run.wait(timeout=10) == "COMPLETED"
    for event in ("go", "another"):
        with pytest.raises(EventError, match="is COMPLETED: it no longer waits for events") as info:
            engine.send(run.id, event, {})
        assert info.value.conflict
