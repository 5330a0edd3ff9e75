"""Approve exactly what will run: the request previews what each gated step will do (a diff for
file.write, what file.delete removes, file.copy's source and target, http.request with its secrets
masked), the decision records the hash of what was shown, and a gated step whose preview changed
since (the file was edited) does not run: its approval is asked for again, saying why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import airt_nb
from airt_nb import Registry
from airt_nb.preview import MASK, step_preview
from airt_nb.widgets.run_panel import RunPanel

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: edit-config
steps:
  - name: draft
    action: file.write
    inputs: {path: draft.txt, content: "draft"}
  - name: review
    type: human_approval
    message: "Apply the new config?"
  - name: write_config
    action: file.write
    inputs: {path: config.ini, content: "[server]\\nport = 8080\\nworkers = 4\\n"}
  - name: drop_old
    action: file.delete
    depends_on: [review]
    inputs: {path: old.ini}
  - name: publish
    action: file.copy
    depends_on: [write_config]
    inputs: {src: "${{ steps.write_config.outputs.path }}", dst: public/config.ini}
  - name: notify
    action: http.request
    depends_on: [review]
    inputs:
      url: "https://ops:hunter2@hooks.example.org/notify?token=abc&room=ops"
      method: post
      headers: {Authorization: "Bearer s3cret", X-Trace: "t-1"}
      json: {text: "config applied", api_key: "k-123"}
  - name: second_review
    type: human_approval
    depends_on: [publish, notify]
  - name: after
    action: file.write
    inputs: {path: after.txt, content: x}
"""


def paused(eng: airt_nb.Engine, tmp_path: Path, spec: str = SPEC) -> airt_nb.Run:
    (tmp_path / "config.ini").write_text("[server]\nport = 80\nworkers = 4\n")
    (tmp_path / "old.ini").write_text("legacy = yes\n")
    run = eng.start(spec)
    assert run.wait(10) == "PAUSED"
    return run


def entries(approval: airt_nb.store.records.ApprovalRecord) -> dict[str, dict]:
    return {e["step"]: e for e in approval.preview_data["steps"]}


def test_the_request_previews_each_step_it_gates_up_to_the_next_approval(
    engine: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(engine, tmp_path)
    approval = run.pending_approval
    shown = entries(approval)
    assert list(shown) == ["write_config", "drop_old", "publish", "notify"]  # not second_review, not after
    write = shown["write_config"]["preview"]
    assert (write["path"], write["exists"], write["bytes_now"], write["bytes_after"]) == (
        str(tmp_path / "config.ini"), True, 31, 33,
    )  # fmt: skip
    assert "-port = 80\n+port = 8080\n" in write["diff"]
    assert write["diff"].startswith(
        f"--- {tmp_path / 'config.ini'} (now)\n+++ {tmp_path / 'config.ini'} (after the step)"
    )
    drop = shown["drop_old"]["preview"]
    assert (drop["exists"], drop["bytes"], drop["removes"]) == (True, 13, "legacy = yes")
    copy = shown["publish"]["preview"]
    assert (copy["src"], copy["dst"], copy["dst_exists"]) == (
        "known when the step runs", str(tmp_path / "public/config.ini"), False,
    )  # fmt: skip
    assert shown["publish"]["unknown"] == ["steps.write_config.outputs.path"]
    assert shown["publish"]["inputs"]["src"] == "${{ steps.write_config.outputs.path }}"
    notify = shown["notify"]["preview"]
    assert notify["method"] == "POST"
    assert notify["url"] == f"https://ops:{MASK}@hooks.example.org/notify?token={MASK}&room=ops"
    assert notify["headers"] == {"Authorization": MASK, "X-Trace": "t-1"}
    assert notify["json"] == {"text": "config applied", "api_key": MASK}
    assert "hunter2" not in approval.preview
    assert "s3cret" not in approval.preview
    assert "k-123" not in approval.preview
    assert approval.preview_hash
    assert len(approval.preview_hash) == 64


def test_a_copy_previews_its_source_and_the_diff_of_its_target(engine: airt_nb.Engine, tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public/config.ini").write_text("old copy\n")
    run = paused(engine, tmp_path, SPEC.replace('src: "${{ steps.write_config.outputs.path }}"', "src: old.ini"))
    copy = entries(run.pending_approval)["publish"]["preview"]
    assert (copy["src"], copy["src_bytes"], copy["dst_exists"]) == (str(tmp_path / "old.ini"), 13, True)
    assert "-old copy\n+legacy = yes\n" in copy["diff"]


OFFLINE = SPEC.replace(
    """  - name: notify
    action: http.request
    depends_on: [review]
    inputs:
      url: "https://ops:hunter2@hooks.example.org/notify?token=abc&room=ops"
      method: post
      headers: {Authorization: "Bearer s3cret", X-Trace: "t-1"}
      json: {text: "config applied", api_key: "k-123"}
""",
    "",
).replace("depends_on: [publish, notify]", "depends_on: [publish]")


def test_the_file_edited_after_the_request_is_not_overwritten_on_that_approval(
    engine: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(engine, tmp_path, OFFLINE)
    first = run.pending_approval
    (tmp_path / "config.ini").write_text("[server]\nport = 443\nworkers = 4\n")  # someone edits it meanwhile

    run.approve(by="ann", reason="port 8080 is right")

    assert run.wait(10) == "PAUSED"
    assert (tmp_path / "config.ini").read_text() == "[server]\nport = 443\nworkers = 4\n"  # not overwritten
    steps = {s.step_name: s.status for s in run.steps()}
    assert (steps["write_config"], steps["publish"]) == ("WAITING", "PENDING")
    assert steps["drop_old"] == "COMPLETED"  # what still matched its preview went on
    again = run.pending_approval
    assert (again.step_name, again.gate_step, again.reasked_from) == ("write_config", "review", first.approval_id)
    reason = f"{tmp_path / 'config.ini'} changed since the approval (was 31 bytes, now 32 bytes)"
    assert again.message == f"Asked again before step 'write_config' runs: {reason}. First asked: Apply the new config?"
    (entry,) = again.preview_data["steps"]
    assert "-port = 443\n+port = 8080\n" in entry["preview"]["diff"]  # the diff against the file as it is now
    assert json.loads(again.context)["asked_again"]["approved_by"] == "ann"
    events = [(e.event, e.detail) for e in engine.store.history(run.id)]
    assert ("asked_again", f"write_config: {reason}") in events
    (decision,) = run.decisions()
    assert decision.preview_hash == first.preview_hash  # what ann saw
    assert run.pending_approval.preview_hash != first.preview_hash

    run.approve(by="ann", reason="yes, over the edit")
    assert run.wait(10) == "PAUSED"
    assert run.pending_approval.step_name == "second_review"
    assert (tmp_path / "config.ini").read_text() == "[server]\nport = 8080\nworkers = 4\n"


def test_after_the_new_request_is_approved_the_step_runs_and_the_run_goes_on(
    engine: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(engine, tmp_path, OFFLINE)
    (tmp_path / "config.ini").write_text("edited\n")
    run.approve()
    assert run.wait(10) == "PAUSED"
    assert run.pending_approval.step_name == "write_config"
    assert {s.step_name: s.status for s in run.steps()}["drop_old"] == "COMPLETED"  # it matched: it ran
    run.approve()
    assert run.wait(10) == "PAUSED"
    assert run.pending_approval.step_name == "second_review"
    assert (tmp_path / "public/config.ini").read_text() == "[server]\nport = 8080\nworkers = 4\n"
    run.approve()
    assert run.wait(10) == "COMPLETED"


def test_rejecting_the_new_request_rolls_the_run_back(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, tmp_path, OFFLINE)
    (tmp_path / "config.ini").write_text("edited\n")
    run.approve()
    assert run.wait(10) == "PAUSED"
    run.reject(reason="someone else is on it")
    assert run.wait(10, until="done") == "ROLLED_BACK"
    assert (tmp_path / "config.ini").read_text() == "edited\n"
    assert (tmp_path / "old.ini").read_text() == "legacy = yes\n"  # drop_old undone
    assert not (tmp_path / "draft.txt").exists()


def test_the_new_request_survives_a_restart_and_is_decided_elsewhere(db_path: Path, tmp_path: Path) -> None:
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as eng:
        run = paused(eng, tmp_path, OFFLINE)
        (tmp_path / "config.ini").write_text("edited\n")
        run.approve()
        assert run.wait(10) == "PAUSED"
        workflow_id = run.id
    out = subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "show", workflow_id],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )  # fmt: skip
    assert "asked again: step 'write_config' did not run" in out.stdout
    assert "    write_config (file.write)" in out.stdout
    assert "      | -edited" in out.stdout
    assert "      | +port = 8080" in out.stdout
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as eng:
        run = eng.get(workflow_id)
        run.approve()
        assert run.wait(10) == "PAUSED"
        assert run.pending_approval.step_name == "second_review"
        assert (tmp_path / "config.ini").read_text().startswith("[server]")


def test_the_card_and_the_webhook_show_the_preview(engine: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(engine, tmp_path, OFFLINE)
    panel = RunPanel(run)
    try:
        body = panel.card.body_html.value
        assert "What it lets run, as it would run now:" in body
        assert '<span class="airt-error">-port = 80</span>' in body
        assert '<span class="airt-ok">+port = 8080</span>' in body
        assert "legacy = yes" in body
    finally:
        panel.stop_live()


def test_a_step_no_approval_gates_is_never_previewed(engine: airt_nb.Engine) -> None:
    run = engine.start("name: w\nsteps:\n  - name: a\n    action: wait\n    inputs: {seconds: 0}\n")
    assert run.wait(10) == "COMPLETED"
    plan = engine._plan_for(
        airt_nb.load_spec("name: w\nsteps:\n  - name: a\n    action: wait\n    inputs: {seconds: 0}\n")
    )
    assert plan.steps[0].gates == ()


@pytest.mark.parametrize(
    ("action", "inputs", "key", "expected"),
    [
        ("file.write", {"path": "x.txt", "content": "new\n", "append": True}, "diff", "+new"),
        ("file.delete", {"path": "missing.txt"}, "note", "nothing to delete: the file does not exist now"),
        ("file.write", {"path": "bin.dat", "content": "a\u0000b"}, "diff", "binary content"),
        ("http.request", {"url": "https://x.org", "headers": {"Cookie": "c=1"}}, "headers", {"Cookie": MASK}),
    ],
)
def test_previews_of_the_built_ins(tmp_path: Path, action: str, inputs: dict, key: str, expected: object) -> None:
    (tmp_path / "x.txt").write_text("old\n")
    entry = step_preview("s", action, inputs, workdir=str(tmp_path))
    value = entry["preview"][key]
    if isinstance(expected, str):
        assert expected in value
    else:
        assert value == expected
    again = step_preview("s", action, inputs, workdir=str(tmp_path))
    assert again["hash"] == entry["hash"]
    assert json.dumps(entry)  # stored as JSON
