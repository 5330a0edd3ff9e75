"""The run panel and its approval card, driven with ipywidgets' ``.click()`` (no browser)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from notebook_support import APPROVAL_SPEC, wait_until

import airt_nb
from airt_nb import Registry
from airt_nb.widgets import RunPanel, refresher


@pytest.fixture
def panels() -> list[RunPanel]:
    made: list[RunPanel] = []
    yield made
    for panel in made:
        panel.stop_live()
        panel.close()


def steps_html(panel: RunPanel) -> str:
    """The step rows the panel shows (a short run: one widget per row; a long one: a window in one widget)."""
    rows = "".join(row.value for row in panel.rows if row.layout.display != "none")
    return rows + (panel.window_html.value if panel.window_html.layout.display != "none" else "")


def open_panel(run: airt_nb.Run, panels: list[RunPanel]) -> RunPanel:
    panel = RunPanel(run)
    panels.append(panel)
    return panel


def test_panel_shows_steps_progress_and_approval_card(engine: airt_nb.Engine, panels: list[RunPanel]) -> None:
    run = engine.start(APPROVAL_SPEC)
    assert run.wait(timeout=10) == "PAUSED"
    panel = open_panel(run, panels)

    assert "publish-report" in panel.header_html.value
    assert "PAUSED" in panel.header_html.value
    assert (panel.progress.value, panel.progress.max) == (1, 3)
    assert 'data-step="write_a"' in steps_html(panel)
    assert panel.card.layout.display is None  # visible
    assert panel.card.approve_button.description == "Approve"
    assert panel.card.reject_button.description == "Reject"
    body = panel.card.body_html.value
    written = Path("out/report/a.txt").absolute()  # file actions report absolute paths
    assert f"Publish B next to {written}?" in body
    assert "&quot;bytes&quot;: 5" in body
    assert "undo <code>file.write</code>" in body  # what a rejection would undo
    assert "times out in 1 h 59 min" in body


def test_approve_click_completes_the_run_and_shows_who_decided(
    engine: airt_nb.Engine, panels: list[RunPanel], tmp_path: Path
) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    panel = open_panel(run, panels)
    panel.card.reason.value = "looks good"

    panel.card.approve_button.click()

    assert run.wait(timeout=10) == "COMPLETED"
    refresher().flush()
    assert (tmp_path / "out/report/b.txt").read_text() == "5"
    assert "COMPLETED" in panel.header_html.value
    assert panel.progress.value == panel.progress.max == 3
    assert panel.card.layout.display == "none"
    assert "review</b> approved by tester at" in panel.history_html.value
    assert "looks good" in panel.history_html.value
    assert panel.rollback_button.layout.display is None  # a completed run can still be rolled back
    assert panel.cancel_button.layout.display == "none"


def test_reject_click_rolls_back_the_written_file(
    engine: airt_nb.Engine, panels: list[RunPanel], tmp_path: Path
) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    assert (tmp_path / "out/report/a.txt").exists()
    panel = open_panel(run, panels)

    panel.card.reject_button.click()
    assert run.status == "PAUSED"  # a rejection undoes steps: it asks first
    assert panel.card.confirm_box.layout.display is None
    assert "Reject step <b>review</b>? The run rolls back 1 completed step, newest first." in (
        panel.card.confirm_html.value
    )
    panel.card.confirm_yes.click()

    assert run.wait(timeout=10) == "ROLLED_BACK"
    refresher().flush()
    assert not (tmp_path / "out/report/a.txt").exists()
    assert "ROLLED_BACK" in panel.header_html.value
    assert "rejected by tester" in panel.history_html.value
    assert "COMPENSATED" in steps_html(panel)
    assert panel.progress.description == "1 / 1 undone"
    assert "airt-bar-undo" in panel.progress._dom_classes


def test_someone_who_may_not_decide_sees_the_buttons_disabled_and_why(
    db_path: Path, registry: Registry, panels: list[RunPanel]
) -> None:
    spec = APPROVAL_SPEC.replace("    timeout: 2h\n", "    approvers: [reviewer]\n")
    with airt_nb.Engine(db_path, registry=registry, user="mallory") as eng:
        run = eng.start(spec)
        run.wait(timeout=10)
        panel = open_panel(run, panels)

        assert panel.card.approve_button.disabled
        assert panel.card.reject_button.disabled
        why = panel.card.why_html.value
        assert "You (mallory) may not decide this approval: only reviewer may decide this approval." in why
        assert "AIRT_USER" not in why
        assert panel.card.approve_button.tooltip == panel.card.refusal

        panel.card.approve_button.click()  # a disabled button's click (as a browser would not send it)
        panel.card.reject_button.click()
        assert panel.card.confirm_box.layout.display == "none"


def test_refusal_by_the_engine_is_shown_on_the_card_not_raised(
    db_path: Path, registry: Registry, panels: list[RunPanel]
) -> None:
    spec = APPROVAL_SPEC.replace("    timeout: 2h\n", "    approvers: [reviewer]\n")
    with airt_nb.Engine(db_path, registry=registry, user="mallory") as eng:
        run = eng.start(spec)
        run.wait(timeout=10)
        panel = open_panel(run, panels)
        panel.card.refusal = None  # as if the policy had allowed it when the card was drawn
        panel.card._enable(True)

        panel.card.approve_button.click()

        assert run.status == "PAUSED"
        message = panel.card.message_html.value
        assert "user &#x27;mallory&#x27; (roles: none) may not decide this approval" in message
        assert "ask one of them to decide" in message
        assert "AIRT_USER" not in message
        assert "airt-error" in message


def test_second_decision_is_told_who_decided_first(engine: airt_nb.Engine, panels: list[RunPanel]) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    panel = open_panel(run, panels)
    run.approve(by="ann", reason="first")

    panel.card.reject_button.click()  # a stale card, clicked after someone else decided
    panel.card.confirm_yes.click()

    assert "was already approved by ann" in panel.card.message_html.value
    assert run.wait(timeout=10) == "COMPLETED"


def test_rollback_asks_for_confirmation_then_undoes(
    engine: airt_nb.Engine, panels: list[RunPanel], tmp_path: Path
) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    run.approve(by="ann")
    assert run.wait(timeout=10) == "COMPLETED"
    panel = open_panel(run, panels)

    panel.rollback_button.click()
    assert panel.confirm_box.layout.display is None
    assert panel.confirm_yes.description == "Yes, roll back"
    assert run.status == "COMPLETED"  # nothing happens before the confirmation
    panel.confirm_no.click()
    assert panel.confirm_box.layout.display == "none"
    assert run.status == "COMPLETED"

    panel.rollback_button.click()
    panel.confirm_yes.click()

    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert not (tmp_path / "out/report/a.txt").exists()
    assert not (tmp_path / "out/report/b.txt").exists()


def test_cancel_asks_for_confirmation_and_stops_a_paused_run(engine: airt_nb.Engine, panels: list[RunPanel]) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    panel = open_panel(run, panels)

    panel.cancel_button.click()
    assert panel.confirm_yes.description == "Yes, cancel the run"
    panel.confirm_yes.click()

    assert run.wait(timeout=10) == "CANCELLED"
    refresher().flush()
    assert "CANCELLED" in panel.header_html.value
    assert panel.cancel_button.layout.display == "none"


def test_refused_action_is_shown_in_the_panel(engine: airt_nb.Engine, panels: list[RunPanel]) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    panel = open_panel(run, panels)
    run.cancel()  # meanwhile, elsewhere: the panel still offers Cancel until it refreshes
    assert run.wait(timeout=10) == "CANCELLED"

    panel.cancel_button.click()
    panel.confirm_yes.click()

    assert panel.message_html.value == (
        f'<div class="airt-error">workflow {run.id} (publish-report) is CANCELLED: it cannot be cancelled '
        "(possible when RUNNING, PAUSED, PENDING)</div>"
    )


def test_failed_step_error_has_details_on_demand(
    engine: airt_nb.Engine, registry: Registry, panels: list[RunPanel]
) -> None:
    calls = []

    @registry.action("flaky")
    def flaky() -> dict:
        calls.append(1)
        raise RuntimeError(f"service unavailable (call {len(calls)})")

    spec = """
name: flaky-deploy
steps:
  - name: deploy
    action: flaky
    retry: {max_attempts: 2, initial_delay: 0.01, jitter: false}
"""
    run = engine.start(spec)
    assert run.wait(timeout=10) == "FAILED"
    panel = open_panel(run, panels)

    table = steps_html(panel)
    assert "2 of 2" in table
    assert "<details><summary" in table
    assert "earlier attempts" in table
    assert "attempt 1 failed at " in table
    assert ": RuntimeError: service unavailable (call 1)" in table
    assert "RuntimeError: service unavailable (call 2)" in table
    assert "step &#x27;deploy&#x27; failed" in panel.notice_html.value


def test_updates_are_throttled_to_ten_per_second(
    engine: airt_nb.Engine, registry: Registry, panels: list[RunPanel]
) -> None:
    @registry.action("short")
    def short(i: int) -> dict:
        time.sleep(0.003)  # about 600 events over a second or two
        return {"i": i}

    steps = "\n".join(f"  - name: s{i}\n    action: short\n    inputs: {{i: {i}}}" for i in range(300))
    gate = threading.Event()

    @registry.action("gate")
    def gate_action() -> dict:
        gate.wait(10)
        return {}

    run = engine.start(f"name: many\nsteps:\n  - name: g\n    action: gate\n{steps}\n")
    panel = open_panel(run, panels)
    before = panel.render_count
    started = time.monotonic()
    gate.set()
    assert run.wait(timeout=60) == "COMPLETED"
    wait_until(lambda: "COMPLETED" in panel.header_html.value)
    elapsed = time.monotonic() - started
    renders = panel.render_count - before

    assert renders <= elapsed / panel.min_interval + 2, (renders, elapsed)
    assert renders <= elapsed / refresher().interval + 2, (renders, elapsed)
    assert panel.progress.value == 301
    # a long workflow shows a window of its steps, not 301 rows
    assert steps_html(panel).count('class="airt-step"') <= 30
    window = panel.window_html.value  # a long run: a window of its rows, in one widget
    assert "more steps not shown" in window
    assert "COMPLETED</span> 301" in window  # status counts stand in for the rows not shown
    assert 'data-step="s299"' in steps_html(panel), "the newest completed steps are shown"


def test_panel_follows_a_run_executed_by_another_engine(
    db_path: Path, registry: Registry, panels: list[RunPanel]
) -> None:
    """Two engines on one database stand for two kernels: the viewer gets no events, only the store."""
    with (
        airt_nb.Engine(db_path, registry=registry, user="runner") as runner,
        airt_nb.Engine(db_path, registry=registry, user="viewer") as viewer,
    ):
        run = runner.start(APPROVAL_SPEC)
        run.wait(timeout=10)
        panel = open_panel(viewer.get(run.id), panels)
        assert "PAUSED" in panel.header_html.value

        run.approve(by="ann", reason="from the other kernel")
        assert run.wait(timeout=10) == "COMPLETED"

        wait_until(lambda: "COMPLETED" in panel.header_html.value)
        assert panel.progress.value == 3
        assert "from the other kernel" in panel.history_html.value


def test_run_displays_as_its_panel_with_a_text_summary(engine: airt_nb.Engine) -> None:
    run = engine.start(APPROVAL_SPEC)
    run.wait(timeout=10)

    bundle = run._repr_mimebundle_()

    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    assert text.startswith(f"publish-report {run.id}  PAUSED  1/3 steps done")
    assert "review   WAITING" in text
    assert "waiting for approval: Publish B next to /" in text  # an absolute path, shortened to fit
    for panel in refresher().panels():
        panel.stop_live()


def test_a_panel_whose_engine_was_closed_says_so_and_offers_nothing(
    db_path: Path, registry: Registry, panels: list[RunPanel]
) -> None:
    eng = airt_nb.Engine(db_path, registry=registry, user="tester")
    run = eng.start(APPROVAL_SPEC)
    run.wait(timeout=10)
    panel = open_panel(run, panels)
    assert not panel.card.approve_button.disabled

    eng.close()  # %workflow config --db elsewhere, or %unload_ext airt_nb
    refresher()._poll(time.time())

    assert panel not in refresher().panels()
    assert f"<code>%workflow show {run.id}</code> shows it live again" in panel.message_html.value
    assert panel.card.approve_button.disabled
    assert panel.card.reject_button.disabled
    assert "this panel&#x27;s engine was closed" in panel.card.why_html.value
    assert panel.actions.layout.display == "none"
