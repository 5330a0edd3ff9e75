"""Two notebooks in two folders on one database, as two people have them open: real kernels.

A workflow runs where it was started, whoever decides: approving or rejecting
it from the other notebook's kernel never moves it, and a restarted kernel
gets its own workflows back before the other notebook would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from airt_nb.store import opened
from tests.test_kernels import execute, text_of

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
%%workflow -o job --wait
name: draft-and-publish
steps:
  - name: draft
    action: file.write
    inputs: {path: draft.md, content: draft}
  - name: review
    type: human_approval
    message: "Publish the draft?"
  - name: publish
    action: file.write
    inputs: {path: final.md, content: final}
"""

Notebook = tuple[KernelManager, BlockingKernelClient, Path]


@pytest.fixture
def notebook(tmp_path: Path) -> Iterator[Callable[..., Notebook]]:
    """``notebook(name, **env)``: a kernel in folder ``name``, as Jupyter starts one for ``name.ipynb``."""
    started: list[tuple[KernelManager, BlockingKernelClient]] = []

    def open_notebook(name: str, **env: str) -> Notebook:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        kernel_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AIRT_DB": str(tmp_path / "team.db"),
            "AIRT_USER": name,
            "JPY_SESSION_NAME": str(folder / f"{name}.ipynb"),
            **env,
        }
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(folder), env=kernel_env)
        started.append((km, kc))
        return km, kc, folder

    yield open_notebook
    for km, kc in started:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def workflow_id(kc: BlockingKernelClient) -> str:
    return text_of(execute(kc, "print(job.id)")[1]).strip()


def history(tmp_path: Path, wf: str) -> list[tuple[str, str | None]]:
    with opened(tmp_path / "team.db") as store:
        return [(e.event, e.by) for e in store.history(wf)]


def test_approved_from_the_other_notebook_the_rest_runs_in_the_first_notebooks_kernel_and_folder(
    notebook: Callable[..., Notebook], tmp_path: Path
) -> None:
    _, a, folder_a = notebook("ann")
    _, b, folder_b = notebook("bob")
    execute(a, "%load_ext airt_nb")
    execute(a, SPEC)
    wf = workflow_id(a)
    assert (folder_a / "draft.md").read_text() == "draft"

    _, banner = execute(b, "%load_ext airt_nb")
    assert "other notebooks: 1 approval waiting" in text_of(banner)  # one compact line for others
    execute(b, f"%workflow approve {wf} --reason 'from the other notebook'")

    _, out = execute(a, "print(job.wait(timeout=30)); import os; print(os.getpid())")
    status, pid = text_of(out).split()
    assert status == "COMPLETED"
    assert (folder_a / "final.md").read_text() == "final"
    assert not (folder_b / "final.md").exists()
    events = history(tmp_path, wf)
    assert ("approved", "bob") in events
    assert [by for event, by in events if event == "resumed"] == ["ann"]  # continued by ann's kernel
    with opened(tmp_path / "team.db") as store:
        [resumed] = [e for e in store.history(wf) if e.event == "resumed"]
    assert f"pid {pid} in {folder_a}" in (resumed.detail or "")


def test_rejected_from_the_other_notebook_the_first_notebooks_file_is_undone(
    notebook: Callable[..., Notebook], tmp_path: Path
) -> None:
    _, a, folder_a = notebook("ann")
    _, b, _ = notebook("bob")
    execute(a, "%load_ext airt_nb")
    execute(a, SPEC)
    wf = workflow_id(a)
    execute(b, "%load_ext airt_nb")
    execute(b, f"%workflow reject {wf} --reason no")
    _, out = execute(a, "print(job.wait(timeout=30))")
    assert text_of(out).strip() == "ROLLED_BACK"
    assert not (folder_a / "draft.md").exists()


def test_first_notebook_killed_while_paused_approved_from_the_other_the_rest_runs_in_the_first_folder(
    notebook: Callable[..., Notebook], tmp_path: Path
) -> None:
    km_a, a, folder_a = notebook("ann")
    _, b, folder_b = notebook("bob", AIRT_HOME_GRACE="1")
    execute(a, "%load_ext airt_nb")
    execute(a, SPEC)
    wf = workflow_id(a)
    os.kill(km_a.provisioner.process.pid, signal.SIGKILL)  # the notebook's kernel dies
    km_a.provisioner.process.wait()
    execute(b, "%load_ext airt_nb")
    execute(b, f"%workflow approve {wf}")
    _, out = execute(b, f"import airt_nb; print(airt_nb.session.current().get({wf!r}).wait(timeout=30))")
    assert text_of(out).strip() == "COMPLETED"
    assert (folder_a / "final.md").read_text() == "final"  # in ann's folder, not bob's
    assert not (folder_b / "final.md").exists()
    assert [by for event, by in history(tmp_path, wf) if event == "resumed"] == ["bob"]


def test_a_restarted_notebook_gets_its_running_workflow_back_before_the_other_notebook(
    notebook: Callable[..., Notebook], tmp_path: Path
) -> None:
    km_a, a, folder_a = notebook("ann")
    _, b, _ = notebook("bob")
    execute(b, "%load_ext airt_nb")  # bob's notebook is open and takes up work nobody runs
    execute(a, "%load_ext airt_nb")
    execute(
        a,
        "%%workflow -o job\nname: slow\nsteps:\n  - name: pause\n    action: wait\n    inputs: {seconds: 4}\n"
        "  - name: write\n    action: file.write\n    inputs: {path: done.md, content: done}\n",
    )
    wf = workflow_id(a)
    time.sleep(0.5)
    km_a.restart_kernel(now=True)  # mid-run
    a.wait_for_ready(timeout=60)
    _, banner = execute(a, "%load_ext airt_nb")
    assert "1 resumed" in text_of(banner) or wf in text_of(banner), _debug_state(tmp_path, wf)
    _, out = execute(a, f"import airt_nb; print(airt_nb.session.current().get({wf!r}).wait(timeout=30))")
    assert text_of(out).strip() == "COMPLETED"
    assert (folder_a / "done.md").read_text() == "done"
    assert [by for event, by in history(tmp_path, wf) if event == "resumed"] == ["ann"]


def _debug_state(tmp_path: Path, wf: str) -> str:
    with opened(tmp_path / "team.db") as store:
        rec = store.workflow(wf)
        return f"{rec.status} owner={rec.lease_owner} home={rec.home} session={rec.session} engines={store.engines()} history={store.history(wf)}"
