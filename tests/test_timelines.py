"""Timelines: which bars a run produces, and that the picture is well-formed SVG."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from notebook_support import APPROVAL_SPEC

import airt_nb
from airt_nb import Registry


def kinds(timeline: airt_nb.timelines.Timeline, step: str) -> list[tuple[str, str]]:
    return [(s.kind, s.status) for s in sorted(timeline.segments, key=lambda s: s.start) if s.step_name == step]


def test_retries_show_failed_attempts_and_backoff_before_the_step(engine: airt_nb.Engine, registry: Registry) -> None:
    calls: list[int] = []

    @registry.action("flaky")
    def flaky() -> dict:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"try {len(calls)}")
        return {"ok": True}

    run = engine.start(
        "name: retrying\nsteps:\n  - name: f\n    action: flaky\n"
        "    retry: {max_attempts: 3, initial_delay: 0.01, jitter: false}\n"
    )
    assert run.wait(timeout=10) == "COMPLETED"

    timeline = run.timeline()

    assert kinds(timeline, "f") == [
        ("attempt", "FAILED"),
        ("backoff", "RETRYING"),
        ("attempt", "FAILED"),
        ("backoff", "RETRYING"),
        ("step", "COMPLETED"),
    ]
    labels = [s.label for s in timeline.segments if s.kind == "attempt"]
    assert labels == ["attempt 1 failed: RuntimeError: try 1", "attempt 2 failed: RuntimeError: try 2"]


def test_approval_wait_and_rejection_compensations(engine: airt_nb.Engine) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    run.reject(by="ann", reason="no")
    assert run.wait(timeout=10) == "ROLLED_BACK"

    timeline = airt_nb.timeline(run.id[:8], db=engine)

    assert kinds(timeline, "write_a") == [("step", "COMPLETED"), ("compensation", "DONE")]
    assert kinds(timeline, "review") == [("approval", "REJECTED")]
    assert kinds(timeline, "write_b") == []
    (wait,) = [s for s in timeline.segments if s.kind == "approval"]
    approval = run.approvals()[0]
    assert wait.label == "rejected by ann"
    assert wait.end - wait.start == airt_nb.timeutil.to_epoch(approval.decided_at) - airt_nb.timeutil.to_epoch(
        approval.requested_at
    )
    (undo,) = [s for s in timeline.segments if s.kind == "compensation"]
    assert undo.start >= wait.end  # the rollback starts once the rejection is recorded


def test_running_step_is_an_open_bar(engine: airt_nb.Engine, registry: Registry) -> None:
    gate = threading.Event()
    registry.action("gate")(lambda: {"opened": gate.wait(10)})
    run = engine.start("name: gated\nsteps:\n  - name: g\n    action: gate\n")
    try:
        (bar,) = run.timeline().segments
        assert (bar.kind, bar.status, bar.open) == ("step", "RUNNING", True)
    finally:
        gate.set()
        run.wait(timeout=10)


def test_svg_is_well_formed_with_one_bar_per_segment_and_a_text_version(engine: airt_nb.Engine) -> None:
    first = engine.start(APPROVAL_SPEC)
    second = engine.start(APPROVAL_SPEC, inputs={"target": "out/other"})
    for run in (first, second):
        run.wait(timeout=10)
        run.approve(by="ann")
        assert run.wait(timeout=10) == "COMPLETED"

    timeline = airt_nb.timeline([first, second], db=engine)
    svg = ET.fromstring(timeline.to_svg())

    bars = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect") if "airt-seg" in e.get("class", "")]
    assert len(bars) == len(timeline.segments) == 6
    assert [lane.workflow_id for lane in timeline.lanes] == [first.id, second.id]
    assert "airt-timeline" in timeline._repr_html_()
    text = repr(timeline).splitlines()
    # two runs of one workflow: each lane says which inputs tell it apart
    assert text[0].startswith(f"publish-report (target=out/report) {first.id} COMPLETED")
    assert [timeline.lane_title(lane) for lane in timeline.lanes] == [
        "publish-report (target=out/report)",
        "publish-report (target=out/other)",
    ]
    assert text[1].startswith("  write_a |█")


def test_relative_timelines_start_every_workflow_at_zero(engine: airt_nb.Engine, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        run = engine.start("name: quick\nsteps:\n  - name: a\n    action: wait\n    inputs: {seconds: 0.05}\n")
        assert run.wait(timeout=10) == "COMPLETED"
        runs.append(run)

    shared = airt_nb.timeline(runs, db=engine)
    relative = airt_nb.timeline(runs, db=engine, relative=True)

    assert relative.span < shared.span
    assert relative.span >= 0.05


def _fills(svg: ET.Element, selector: str) -> set[str]:
    ns = "{http://www.w3.org/2000/svg}"
    return {
        e.get("style", "")
        for e in svg.iter(f"{ns}rect")
        if (selector == "bar") == ("airt-seg" in e.get("class", "")) and e.get("style")
    }


def test_every_colour_drawn_is_in_the_legend(engine: airt_nb.Engine, registry: Registry) -> None:
    calls: list[int] = []

    @registry.action("flaky")
    def flaky() -> dict:
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError("first try")
        return {}

    retried = engine.start(
        "name: r\nsteps:\n  - name: f\n    action: flaky\n    retry: {max_attempts: 2, initial_delay: 0.01}\n"
    )
    rejected = engine.start(APPROVAL_SPEC)
    assert retried.wait(timeout=10) == "COMPLETED"
    rejected.wait(timeout=10)
    rejected.reject(by="ann")
    assert rejected.wait(timeout=10) == "ROLLED_BACK"

    timeline = airt_nb.timeline([retried, rejected], db=engine)
    svg = ET.fromstring(timeline.to_svg())

    drawn, legend = _fills(svg, "bar"), _fills(svg, "legend")
    assert drawn <= legend
    texts = [text for _, _, text in timeline.legend()]
    for expected in ("step completed", "failed attempt, retried", "waiting to retry", "approval rejected",
                     "undo (compensation)"):  # fmt: skip
        assert expected in texts


def test_an_interrupted_attempt_is_drawn_with_the_gap_before_the_rerun(
    engine: airt_nb.Engine, registry: Registry
) -> None:
    registry.action("quick")(lambda: {"ok": True})
    run = engine.start("name: resumed\nsteps:\n  - name: q\n    action: quick\n")
    assert run.wait(timeout=10) == "COMPLETED"
    (step,) = run.steps()
    started = airt_nb.timeutil.to_epoch(step.started_at)
    # what an engine that lost the step in the middle records (same attempt number: same idempotency key)
    engine.store.write(
        lambda tx: tx.record_attempt(
            run.id, "q", 1, "INTERRUPTED", airt_nb.timeutil.iso(started - 30), airt_nb.timeutil.iso(started - 20), None
        )
    )

    timeline = run.timeline()

    assert kinds(timeline, "q") == [("interrupted", "INTERRUPTED"), ("step", "COMPLETED")]
    lost, rerun = sorted((s for s in timeline.segments if s.step_name == "q"), key=lambda s: s.start)
    assert rerun.start - lost.end >= 19  # the gap while no engine ran it stays visible
    assert "attempt interrupted (engine lost)" in [text for _, _, text in timeline.legend()]
    assert "×" in repr(timeline)


def test_history_marks_are_drawn_across_the_lane() -> None:
    lane = airt_nb.timelines.Lane("w1", "deploy", "COMPLETED", ("a",))
    bar = airt_nb.timelines.Segment("w1", "a", "step", "COMPLETED", 0.0, 10.0, "completed")
    marks = [
        airt_nb.timelines.Mark("w1", "engine_lost", 4.0, "engine lost: pid 1 on host"),
        airt_nb.timelines.Mark("w1", "resumed", 6.0, "resumed: pid 2 on host"),
    ]

    timeline = airt_nb.timelines.Timeline([lane], [bar], marks=marks)
    svg = timeline.to_svg()

    assert svg.count('class="airt-mark ') == 2
    assert "<title>engine lost: pid 1 on host</title>" in svg
    assert [text for kind, _, text in timeline.legend() if kind == "mark"] == ["engine lost", "resumed"]
    assert "engine lost: pid 1 on host at +4.00 s" in repr(timeline)
