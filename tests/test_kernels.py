"""The magics in real Jupyter kernels (jupyter_client): what a notebook user lives through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel
from notebook_support import APPROVAL_SPEC

from airt_nb.engine import open_store

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRT_DB": str(tmp_path / "airt.db"), "AIRT_USER": "reviewer"}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc: BlockingKernelClient, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Run ``code``; returns the reply's content and every iopub message's (type, content)."""
    messages: list[dict] = []
    reply = kc.execute_interactive(
        code, timeout=timeout, output_hook=lambda m: messages.append({"type": m["msg_type"], **m["content"]})
    )
    content = reply["content"]
    if content["status"] != "ok":
        raise AssertionError(f"cell failed: {content.get('ename')}: {content.get('evalue')}")
    return content, messages


def text_of(messages: list[dict[str, Any]]) -> str:
    parts = []
    for m in messages:
        if m["type"] == "stream":
            parts.append(m["text"])
        elif m["type"] in ("display_data", "execute_result"):
            parts.append(m["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_workflow_cell_returns_while_the_run_goes_on(kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    _, kc = kernel
    execute(
        kc,
        "%load_ext airt_nb\n"
        "import airt_nb, pathlib, time\n"
        "@airt_nb.action\n"
        "def wait_for_file(path: str) -> dict:\n"
        "    while not pathlib.Path(path).exists():\n"
        "        time.sleep(0.02)\n"
        "    return {'seen': path}\n",
    )

    _, messages = execute(
        kc,
        "%%workflow -o job\nname: gated\nsteps:\n  - name: g\n    action: wait_for_file\n    inputs: {path: go.txt}\n",
    )

    panel, snapshot = [m for m in messages if m["type"] == "display_data"]
    assert WIDGET_VIEW in panel["data"]  # the live panel ...
    assert " RUNNING " in panel["data"]["text/plain"]
    assert "airt-status-RUNNING" in snapshot["data"]["text/html"]  # ... and right after it, its static view
    display_id = snapshot["transient"]["display_id"]
    _, messages = execute(kc, "print(job.status)")
    assert text_of(messages).strip() == "RUNNING"  # the cell returned, the run goes on
    _, released = execute(kc, "pathlib.Path('go.txt').write_text('go')")
    _, messages = execute(kc, "print(job.wait(timeout=30))")
    assert text_of(messages).strip() == "COMPLETED"
    # the static view was replaced, through its display id, by the time the waiting cell ended (the run
    # may have ended while the previous cell still ran: its update is then among that cell's messages)
    final = [m for m in [*released, *messages] if m["type"] == "update_display_data"][-1]
    assert final["transient"]["display_id"] == display_id
    assert "airt-status-COMPLETED" in final["data"]["text/html"]


def test_restart_then_load_ext_recovers_the_run_and_shows_its_card(
    kernel: tuple[KernelManager, BlockingKernelClient], tmp_path: Path
) -> None:
    km, kc = kernel
    execute(kc, "%load_ext airt_nb")
    execute(kc, "%%workflow -o job --wait\n" + APPROVAL_SPEC.lstrip())
    workflow_id = text_of(execute(kc, "print(job.id)")[1]).strip()

    km.restart_kernel(now=True)
    kc.wait_for_ready(timeout=60)
    _, messages = execute(kc, "%load_ext airt_nb")

    banner = text_of(messages)
    assert f"waiting for approval: 1: publish-report ({workflow_id}) (card below)" in banner
    cards = [m for m in messages if m["type"] == "display_data" and WIDGET_VIEW in m["data"]]
    assert len(cards) == 1
    assert cards[0]["data"]["text/plain"].startswith(f"publish-report {workflow_id}  PAUSED")
    buttons = [m["data"]["state"].get("description") for m in messages if m["type"] == "comm_open"]
    assert "Approve" in buttons
    assert "Reject" in buttons

    execute(
        kc,
        "import airt_nb\n"
        "from airt_nb.widgets import refresher\n"
        f"(panel,) = [p for p in refresher().panels() if getattr(p, 'workflow_id', None) == {workflow_id!r}]\n"
        "panel.card.approve_button.click()\n",
    )
    _, messages = execute(kc, f"print(airt_nb.session.current().get({workflow_id!r}).wait(timeout=30))")
    assert "COMPLETED" in text_of(messages)
    store = open_store(tmp_path / "airt.db")
    try:
        assert store.workflow(workflow_id).status == "COMPLETED"
        assert store.approvals(workflow_id=workflow_id)[0].decided_by == "reviewer"
    finally:
        store.close()
    assert (tmp_path / "out/report/b.txt").read_text() == "5"
