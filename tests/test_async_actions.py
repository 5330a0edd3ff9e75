"""``async def`` actions and compensations: run on the engine's own event loop, like plain ones otherwise."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import poll_until

import airt_nb
from airt_nb import Registry


@pytest.fixture
def seen(registry: Registry) -> dict[str, Any]:
    """Async actions that record where and how they ran."""
    record: dict[str, Any] = {"keys": [], "threads": set(), "loops": set(), "cancelled": 0, "undone": []}

    @registry.action("fetch")
    async def fetch(n: int, ctx: airt_nb.StepContext, fail_first: int = 0, sleep: float = 0.0) -> dict:
        record["keys"].append(ctx.idempotency_key)
        record["threads"].add(threading.current_thread().name)
        record["loops"].add(id(asyncio.get_running_loop()))
        try:
            await asyncio.sleep(0 if record.get("fast") else sleep)
        except asyncio.CancelledError:
            record["cancelled"] += 1
            raise
        if ctx.attempt <= fail_first:
            raise ConnectionError(f"attempt {ctx.attempt} timed out")
        return {"n": n * 2}

    @fetch.compensate
    async def _(inputs: dict, outputs: dict) -> None:
        await asyncio.sleep(0)
        record["undone"].append(outputs["n"])

    return record


def one(step: dict[str, Any]) -> dict[str, Any]:
    return {"name": "a", "steps": [{"name": "s", "action": "fetch", **step}]}


def test_an_async_action_runs_on_the_engines_own_loop(engine: airt_nb.Engine, seen: dict[str, Any]) -> None:
    run = engine.start(one({"inputs": {"n": 21}}))

    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs == {"s": {"n": 42}}
    assert seen["threads"] == {"airt-async"}
    assert seen["keys"] == [f"{run.id}/s/1"]


def test_an_async_action_is_validated_and_retried_like_a_plain_one(
    engine: airt_nb.Engine, seen: dict[str, Any]
) -> None:
    retry = {"max_attempts": 3, "initial_delay": 0.01, "jitter": False}
    run = engine.start(one({"inputs": {"n": 1, "fail_first": 2}, "retry": retry}))
    assert run.wait(timeout=10) == "COMPLETED"
    assert seen["keys"] == [f"{run.id}/s/1", f"{run.id}/s/2", f"{run.id}/s/3"]
    assert [a["error"] for a in airt_nb.attempts(engine, workflow_id=run.id).to_dict("records")] == [
        "ConnectionError: attempt 1 timed out",
        "ConnectionError: attempt 2 timed out",
    ]

    with pytest.raises(airt_nb.SpecError, match=r"inputs\.n: Input should be a valid integer"):
        engine.start({**one({"inputs": {"n": "${{ inputs.n }}"}}), "inputs": {"n": "many"}})
    assert len(seen["keys"]) == 3  # the coroutine never started


def test_cancelling_the_run_cancels_the_coroutine(engine: airt_nb.Engine, seen: dict[str, Any]) -> None:
    run = engine.start(one({"inputs": {"n": 1, "sleep": 60}}))
    assert poll_until(lambda: seen["keys"], 10)

    engine.cancel(run.id)

    assert run.wait(timeout=10) == "CANCELLED"
    assert seen["cancelled"] == 1


def test_a_rollback_lets_it_finish_then_undoes_it_with_an_async_compensation(
    engine: airt_nb.Engine, seen: dict[str, Any]
) -> None:
    run = engine.start(one({"inputs": {"n": 5, "sleep": 0.3}}))
    assert poll_until(lambda: seen["keys"], 10)

    engine.rollback(run.id)

    assert run.wait(timeout=10, until="done") == "ROLLED_BACK"
    assert seen["cancelled"] == 0
    assert seen["undone"] == [10]


def test_closing_the_engine_interrupts_it_and_it_runs_again_with_the_same_key(
    db_path: Path, registry: Registry, seen: dict[str, Any]
) -> None:
    eng = airt_nb.Engine(db_path, registry=registry)
    run = eng.start(one({"inputs": {"n": 1, "sleep": 60}}))
    assert poll_until(lambda: seen["keys"], 10)
    eng.close(timeout=10)
    assert seen["cancelled"] == 1
    assert eng.store is not None

    seen["fast"] = True
    eng = airt_nb.Engine(db_path, registry=registry)  # the next kernel of the same notebook
    assert eng.get(run.id).wait(timeout=10) == "COMPLETED"
    eng.close()
    assert seen["keys"] == [f"{run.id}/s/1", f"{run.id}/s/1"]


def test_a_notebooks_running_loop_is_neither_blocked_nor_used(engine: airt_nb.Engine, seen: dict[str, Any]) -> None:
    async def notebook() -> tuple[int, int, airt_nb.Run]:
        ticks = 0
        run = engine.start(one({"inputs": {"n": 1, "sleep": 0.3}}))
        while run.status not in ("COMPLETED", "FAILED"):
            ticks += 1
            await asyncio.sleep(0.01)
        return ticks, id(asyncio.get_running_loop()), run

    ticks, caller_loop, run = asyncio.run(notebook())

    assert run.outputs == {"s": {"n": 2}}
    assert ticks >= 5  # the caller's loop kept running while the action awaited
    assert caller_loop not in seen["loops"]
