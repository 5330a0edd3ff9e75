"""DataFrames: real dtypes, decoded JSON, and readable while workflows run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import airt_nb
from airt_nb import Engine, Registry, StoreError

pytestmark = pytest.mark.both_backends


@pytest.fixture
def finished(engine: Engine, tmp_path: Path) -> Engine:
    spec = {
        "name": "frames",
        "steps": [
            {"name": "w", "action": "file.write", "inputs": {"path": str(tmp_path / "f.txt"), "content": "x"}},
            {"name": "ok", "type": "human_approval", "message": "go?"},
        ],
    }
    run = engine.start(spec)
    assert run.wait(timeout=10) == "PAUSED"
    run.approve(by="ann", reason="fine")
    assert run.wait(timeout=10) == "COMPLETED"
    return engine


def test_runs_frame_has_the_contract_columns_and_real_dtypes(finished: Engine) -> None:
    df = airt_nb.runs(finished)
    for col in ("workflow_id", "name", "status", "created_at", "updated_at", "finished_at", "error", "started_by"):
        assert col in df.columns
    assert isinstance(df["created_at"].dtype, pd.DatetimeTZDtype)
    assert str(df["created_at"].dt.tz) == "UTC"
    assert isinstance(df["status"].dtype, pd.CategoricalDtype)
    assert "COMPLETED" in df["status"].cat.categories
    assert pd.api.types.is_timedelta64_dtype(df["duration"])
    assert df.loc[0, "started_by"] == "tester"


def test_steps_frame_decodes_json_and_has_durations(finished: Engine, tmp_path: Path) -> None:
    df = airt_nb.steps(finished)
    assert list(df.columns[:10]) == [
        "workflow_id",
        "step_name",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "duration",
        "inputs",
        "outputs",
        "error",
    ]
    row = df.set_index("step_name").loc["w"]
    assert row["inputs"] == {"path": str(tmp_path / "f.txt"), "content": "x"}
    assert row["outputs"] == {"path": str(tmp_path / "f.txt"), "bytes": 1}
    assert row["duration"] >= pd.Timedelta(0)
    assert pd.api.types.is_timedelta64_dtype(df["duration"])


def test_approvals_and_compensations_frames(finished: Engine) -> None:
    ap = airt_nb.approvals(finished)
    for col in (
        "approval_id",
        "workflow_id",
        "step_name",
        "status",
        "message",
        "requested_at",
        "deadline",
        "decided_at",
        "decided_by",
        "reason",
    ):
        assert col in ap.columns
    assert ap.loc[0, "decided_by"] == "ann"
    assert ap.loc[0, "context"]["depends_on"]["w"]["bytes"] == 1
    assert airt_nb.approvals(finished, status="PENDING").empty
    comp = airt_nb.compensations(finished)
    for col in ("workflow_id", "step_name", "action", "status", "created_at", "executed_at", "error"):
        assert col in comp.columns
    assert comp["status"].tolist() == ["PENDING"]


def test_frames_read_by_path_and_refuse_a_missing_file(finished: Engine, db: str, tmp_path: Path) -> None:
    assert len(airt_nb.runs(db)) == 1
    with pytest.raises(StoreError, match="no airt_nb database at"):
        airt_nb.runs(tmp_path / "nothing.db")
    assert not (tmp_path / "nothing.db").exists()


def test_frames_work_while_a_step_is_running(db: str) -> None:
    reg = Registry()
    gate = threading.Event()
    started = threading.Event()

    @reg.action("hold")
    def hold() -> None:
        started.set()
        gate.wait(10)

    with Engine(db, registry=reg) as eng:
        run = eng.start({"name": "busy", "steps": [{"name": "h", "action": "hold"}]})
        assert started.wait(10)
        df = airt_nb.steps(db)
        assert df["status"].tolist() == ["RUNNING"]
        assert airt_nb.runs(db)["status"].tolist() == ["RUNNING"]
        gate.set()
        assert run.wait(timeout=10) == "COMPLETED"


def test_empty_database_gives_empty_frames_with_columns(engine: Engine) -> None:
    for fn in (airt_nb.runs, airt_nb.steps, airt_nb.approvals, airt_nb.compensations, airt_nb.attempts, airt_nb.audit):
        df = fn(engine)
        assert df.empty
        assert len(df.columns) > 3


def _everything(db: str, folder: Path) -> None:
    """A database where every frame has rows: a retry, a refused decision, a webhook, an undo."""
    reg = Registry()
    calls: list[int] = []

    @reg.action("flaky")
    def flaky() -> dict:
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError("first try fails")
        return {"ok": True}

    spec = {
        "name": "all",
        "steps": [
            {"name": "f", "action": "flaky", "retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": False}},
            {"name": "w", "action": "file.write", "inputs": {"path": str(folder / "w.txt"), "content": "x"}},
            {"name": "ok", "type": "human_approval", "message": "go?", "approvers": ["ann"]},
        ],
    }
    with Engine(db, registry=reg, webhook_url="http://127.0.0.1:9/hook", webhook_max_attempts=1) as eng:
        run = eng.start(spec)
        assert run.wait(timeout=10) == "PAUSED"
        with pytest.raises(airt_nb.PolicyError):
            run.approve(by="mallory")
        run.reject(by="ann", reason="no")
        assert run.wait(timeout=10) == "ROLLED_BACK"


FRAMES = [
    airt_nb.runs,
    airt_nb.steps,
    airt_nb.attempts,
    airt_nb.approvals,
    airt_nb.compensations,
    airt_nb.deliveries,
    airt_nb.audit,
    airt_nb.history,
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.__name__)
def test_empty_frames_have_the_dtypes_of_full_ones(frame: Any, db: str, tmp_path: Path) -> None:
    # Full on each backend, empty on SQLite: PostgreSQL's frames are SQLite's, column for column.
    full_db, empty_db = db, tmp_path / "empty.db"
    _everything(full_db, tmp_path)
    Engine(empty_db).close()

    full, empty = frame(full_db), frame(empty_db)

    assert empty.empty
    assert list(empty.columns) == list(full.columns)
    assert {c: str(t) for c, t in empty.dtypes.items()} == {c: str(t) for c, t in full.dtypes.items()}
    if frame is not airt_nb.history:  # recorded by engines that keep a history
        assert not full.empty


def test_runs_are_newest_first_with_internal_columns_last(engine: Engine) -> None:
    first = engine.start({"name": "first", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]})
    first.wait(timeout=10)
    second = engine.start({"name": "second", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]})
    second.wait(timeout=10)

    df = airt_nb.runs(engine)

    assert df["workflow_id"].tolist() == [second.id, first.id]  # as %workflow list
    assert list(df.columns[:8]) == [
        "workflow_id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "finished_at",
        "duration",
        "error",
    ]
    assert list(df.columns[-2:]) == ["spec_hash", "owner"]
    assert df["steps_done"].dtype == "int64"


def test_frames_show_times_and_durations_for_people_and_keep_their_dtypes(finished: Engine) -> None:
    df = airt_nb.steps(finished)
    picked = df[["step_name", "started_at", "duration"]]

    assert isinstance(picked, airt_nb.frames.Frame)  # selections display the same way
    assert pd.api.types.is_timedelta64_dtype(picked["duration"])
    html, text = picked._repr_html_(), repr(picked)
    seconds = df.loc[0, "duration"].total_seconds()
    shown = airt_nb.views.fmt_duration(seconds)
    assert f"<td>{shown}</td>" in html
    assert shown in text
    assert "0 days" not in html + text
    started = df.loc[0, "started_at"].strftime("%Y-%m-%d %H:%M:%S")
    assert f"<td>{started}</td>" in html
    assert "+00:00" not in html


def test_history_of_a_database_without_one_is_empty(engine: Engine) -> None:
    df = airt_nb.history(engine)

    assert df.empty
    assert list(df.columns) == ["workflow_id", "seq", "at", "event", "by", "detail"]
    assert isinstance(df["at"].dtype, pd.DatetimeTZDtype)


def test_frames_take_a_prefix_of_the_id_as_everywhere_and_refuse_one_that_names_nothing(finished: Engine) -> None:
    full = airt_nb.runs(finished).loc[0, "workflow_id"]
    for given in (full, full[:6], full[:6].upper()):
        for frame in (airt_nb.steps, airt_nb.attempts, airt_nb.approvals, airt_nb.history, airt_nb.audit):
            df = frame(finished, workflow_id=given)
            assert set(df["workflow_id"]) <= {full}, frame.__name__
        assert list(airt_nb.steps(finished, workflow_id=given)["step_name"]) == ["w", "ok"]
        assert len(airt_nb.approvals(finished, workflow_id=given)) == 1
    with pytest.raises(airt_nb.NotFoundError, match="no workflow 'ffff' in "):
        airt_nb.steps(finished, workflow_id="ffff")  # was an empty frame, as if the run had no steps
    with pytest.raises(airt_nb.NotFoundError, match="at least 4 characters"):
        airt_nb.history(finished, workflow_id=full[:3])
