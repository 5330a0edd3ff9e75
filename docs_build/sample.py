"""A small real database for the reference: the frames' columns and dtypes are read from it.

Three workflows run through the public API in a temporary folder: one
approved and completed after a retried step, one rejected and rolled back,
one cancelled while it waits.  A policy is in force (so the audit has rows)
and approval requests go to a webhook receiver on 127.0.0.1 (so deliveries
have rows).  Every frame then has at least one real row to show as an example.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

SPEC = """
name: sample-report
inputs: {target: out}
steps:
  - name: draft
    action: file.write
    inputs: {path: "${{ inputs.target }}/draft.md", content: "# Week 47"}
  - name: check
    action: docs_flaky_check
    inputs: {path: "${{ steps.draft.outputs.path }}"}
    retry: {max_attempts: 2, initial_delay: 0, jitter: false}
  - name: review
    type: human_approval
    message: "Publish ${{ steps.draft.outputs.path }}?"
    approvers: [docs]
  - name: publish
    action: file.copy
    inputs: {src: "${{ steps.draft.outputs.path }}", dst: "${{ inputs.target }}/public.md"}
"""

POLICY = """
users: {docs: [author]}
roles:
  author:
    allow: ["*"]
    paths: [a, b, c]
    approve: true
"""


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def frames() -> dict[str, Any]:
    """``{frame name: DataFrame}`` read from a freshly made database."""
    import airt_nb

    # Its own registry (built-ins included): the sample's action never joins the default one.
    registry = airt_nb.Registry()
    tries: dict[str, int] = {}

    @registry.action("docs_flaky_check")
    def docs_flaky_check(path: str) -> dict[str, Any]:
        tries[path] = tries.get(path, 0) + 1
        if tries[path] == 1:
            raise ConnectionError("the spell checker did not answer")
        return {"words": len(Path(path).read_text().split())}

    before = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="airt-docs-sample-") as folder, _receiver() as hook:
        os.chdir(folder)
        try:
            Path("policy.yaml").write_text(POLICY)
            for target in ("a", "b", "c"):
                Path(target).mkdir()
            eng = airt_nb.Engine(
                "airt.db", registry=registry, policy="policy.yaml", user="docs", webhook_url=hook, webhook_secret="s"
            )
            try:
                approved = eng.start(SPEC, inputs={"target": "a"})
                rejected = eng.start(SPEC, inputs={"target": "b"})
                cancelled = eng.start(SPEC, inputs={"target": "c"})
                for run in (approved, rejected, cancelled):
                    run.wait(timeout=30)
                approved.approve(reason="reads well")
                rejected.reject(reason="not this week")
                cancelled.cancel()
                for run in (approved, rejected, cancelled):
                    run.wait(timeout=30)
                _wait_for_deliveries(eng)
            finally:
                eng.close()
            names = ("runs", "steps", "attempts", "approvals", "compensations", "deliveries", "audit", "history")
            return {name: getattr(airt_nb, name)("airt.db") for name in names}
        finally:
            os.chdir(before)


def _wait_for_deliveries(eng: Any) -> None:
    """Until every webhook delivery went out, so that the frames show attempts and outcomes."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        columns, rows = eng.store.all_rows("webhook_deliveries")
        status = columns.index("status")
        if rows and all(row[status] == "DELIVERED" for row in rows):
            return
        time.sleep(0.05)
