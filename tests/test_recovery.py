"""Recovery when an engine opens a database a crashed process left behind.

A child process (tests/crashlib.py) runs a workflow and is SIGKILLed at a
precise point; then an engine in this process opens the same file and the
tests look at what it resumes, what waits, what it warns about and which
deadlines it honours.  Side effects are counted in an O_APPEND file.
"""

from __future__ import annotations

from pathlib import Path

import crashlib
import pytest
from crashlib import Child, chain_spec, config, db_rows, effects_by_step, read_effects, workflow_statuses

from airt_nb import Engine

STEPS = [f"s{i}" for i in range(1, 6)]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "airt.db", tmp_path / "effects.jsonl"


def crash(
    tmp_path: Path, db: Path, effects: Path, spec: dict, at: str, step: str | None = None, **kw
) -> tuple[str, int]:
    """Start ``spec`` in a child, SIGKILL it at the stop point; return (workflow_id, pid of the dead child)."""
    child = Child(tmp_path, config(db, effects, start=[{"spec": spec}], stop={"at": at, "step": step}, **kw))
    child.expect(f"stopped {at}")
    child.kill()
    (wf,) = workflow_statuses(db)
    return wf, child.pid


def do_counts(effects: Path, wf: str) -> dict[str, int]:
    does = effects_by_step(read_effects(effects))
    return {s: len(does[(wf, s)]) for s in STEPS}


# -- 1. recovery on open -------------------------------------------------------------------------------


def test_engine_opened_after_a_crash_resumes_at_once_and_reports_it(tmp_path, files):
    db, effects = files
    wf, dead_pid = crash(tmp_path, db, effects, chain_spec(), "after", "s3", lease_ttl=3600)
    (owner,) = db_rows(db, "SELECT lease_owner FROM workflows")[0]
    assert owner.split("|")[1] == str(dead_pid)
    # The dead process's lease runs for an hour; the engine must not wait for it.
    with Engine(db, registry=crashlib.registry(effects), lease_ttl=3600) as eng:
        assert eng.last_recovery is not None
        assert eng.last_recovery.resumed == [wf]
        assert str(eng.last_recovery) == "1 resumed, 0 waiting for approval"
        run = eng.get(wf)
        assert run.wait(timeout=30) == "COMPLETED"
        assert do_counts(effects, wf) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}
        assert run.outputs["s5"]["token"] == effects_by_step(read_effects(effects))[(wf, "s5")][0]["token"]
    assert db_rows(db, "SELECT lease_owner FROM workflows") == [(None,)]


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_recover_false_leaves_a_crashed_workflow_alone_until_recover_is_called(tmp_path, files, monkeypatch, how):
    db, effects = files
    wf, dead_pid = crash(tmp_path, db, effects, chain_spec(), "before", "s2")
    if how == "environment":
        monkeypatch.setenv("AIRT_RECOVER", "0")
        eng = Engine(db, registry=crashlib.registry(effects))
    else:
        eng = Engine(db, registry=crashlib.registry(effects), recover=False)
    try:
        assert eng.last_recovery is None
        eng._sweep()  # one housekeeping pass: it must not take the dead process's workflow either
        assert not eng.is_local(wf)
        (owner,) = db_rows(db, "SELECT lease_owner FROM workflows")[0]
        assert owner.split("|")[1] == str(dead_pid)
        summary = eng.recover()
        assert summary.resumed == [wf]
        assert eng.get(wf).wait(timeout=30) == "COMPLETED"
    finally:
        eng.close()
    assert do_counts(effects, wf) == dict.fromkeys(STEPS, 1)
