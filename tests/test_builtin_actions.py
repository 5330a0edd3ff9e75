"""Built-in actions and their compensations, on real files and a real HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from airt_nb import Engine, Registry, SpecError


def _run(engine: Engine, steps: list[dict]) -> object:
    run = engine.start({"name": "builtins", "steps": steps})
    return run


def test_file_delete_is_undone_by_putting_the_bytes_back(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "keep.bin"
    f.write_bytes(b"\x00\x01precious")
    run = _run(engine, [{"name": "rm", "action": "file.delete", "inputs": {"path": str(f)}}])
    assert run.wait(timeout=10) == "COMPLETED"
    assert not f.exists()
    assert run.outputs["rm"] == {"path": str(f), "existed": True, "bytes": 10}
    run.rollback()
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert f.read_bytes() == b"\x00\x01precious"


def test_file_delete_of_a_missing_file_fails_unless_allowed(engine: Engine, tmp_path: Path) -> None:
    run = _run(engine, [{"name": "rm", "action": "file.delete", "inputs": {"path": str(tmp_path / "nope")}}])
    assert run.wait(timeout=10) == "FAILED"
    assert "does not exist; set missing_ok: true" in run.error
    ok = _run(
        engine,
        [{"name": "rm", "action": "file.delete", "inputs": {"path": str(tmp_path / "nope"), "missing_ok": True}}],
    )
    assert ok.wait(timeout=10) == "COMPLETED"


def test_file_copy_is_undone_by_restoring_the_destination(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("new")
    (tmp_path / "dst.txt").write_text("old")
    run = _run(
        engine,
        [
            {
                "name": "cp",
                "action": "file.copy",
                "inputs": {"src": str(tmp_path / "src.txt"), "dst": str(tmp_path / "dst.txt")},
            }
        ],
    )
    assert run.wait(timeout=10) == "COMPLETED"
    assert (tmp_path / "dst.txt").read_text() == "new"
    run.rollback()
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert (tmp_path / "dst.txt").read_text() == "old"


def test_python_call_runs_a_module_function_and_its_undo(engine: Engine, tmp_path: Path, monkeypatch) -> None:
    mod = tmp_path / "callme.py"
    mod.write_text(
        "import pathlib\n"
        "def make(name):\n    pathlib.Path(name).write_text('made'); return name\n"
        "def unmake(inputs, outputs):\n    pathlib.Path(outputs['result']).unlink()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    target = str(tmp_path / "made.txt")
    run = _run(
        engine,
        [
            {
                "name": "c",
                "action": "python.call",
                "inputs": {"function": "callme:make", "args": [target], "undo": "callme:unmake"},
            }
        ],
    )
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["c"] == {"result": target}
    run.rollback()
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert not Path(target).exists()


def test_python_call_with_a_bad_path_fails_clearly(engine: Engine) -> None:
    run = _run(engine, [{"name": "c", "action": "python.call", "inputs": {"function": "no_such_module_xyz:f"}}])
    assert run.wait(timeout=10) == "FAILED"
    assert "cannot import 'no_such_module_xyz'" in run.error


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict, bytes]]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        type(self).seen.append((self.command, self.path, dict(self.headers), body))
        status = 500 if self.path == "/broken" else 200
        payload = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_DELETE = do_GET = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_request_sends_an_idempotency_key_and_its_undo(engine: Engine, http_server: str) -> None:
    step = {
        "name": "create",
        "action": "http.request",
        "inputs": {
            "url": f"{http_server}/things",
            "method": "POST",
            "json": {"a": 1},
            "undo": {"url": f"{http_server}/things/1", "method": "DELETE"},
        },
    }
    run = _run(engine, [step])
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["create"] == {"status_code": 200, "body": {"ok": True}}
    method, path, headers, body = _Recorder.seen[0]
    assert (method, path, json.loads(body)) == ("POST", "/things", {"a": 1})
    assert headers["Idempotency-Key"] == f"{run.id}/create/1"
    run.rollback()
    assert run.wait(timeout=10) == "ROLLED_BACK"
    assert _Recorder.seen[-1][:2] == ("DELETE", "/things/1")


def test_http_request_failure_status_fails_the_step(engine: Engine, http_server: str) -> None:
    run = _run(
        engine, [{"name": "x", "action": "http.request", "inputs": {"url": f"{http_server}/broken", "method": "POST"}}]
    )
    assert run.wait(timeout=10) == "FAILED"
    assert f"POST {http_server}/broken answered 500" in run.error


def test_wait_action_waits(engine: Engine) -> None:
    run = _run(engine, [{"name": "w", "action": "wait", "inputs": {"seconds": 0.05}}])
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["w"] == {"waited": 0.05}


def test_wait_takes_seconds_or_a_duration(engine: Engine) -> None:
    run = _run(engine, [{"name": "a", "action": "wait", "inputs": {"seconds": "20ms"}}])
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["a"] == {"waited": 0.02}


def test_a_bad_value_from_the_workflow_inputs_is_refused_at_start(engine: Engine, tmp_path: Path) -> None:
    spec = {
        "name": "late",
        "inputs": {"delay": "forever", "enc": "klingon"},
        "steps": [
            {"name": "a", "action": "wait", "inputs": {"seconds": "${{ inputs.delay }}"}},
        ],
    }
    with pytest.raises(SpecError, match="seconds: 'forever' is not a duration"):  # known at start already
        engine.start(spec)
    assert engine.list() == []
    spec = {
        "name": "late",
        "inputs": {"enc": "klingon"},
        "steps": [
            {
                "name": "w",
                "action": "file.write",
                "inputs": {"path": "a.txt", "content": "x", "encoding": "${{ inputs.enc }}"},
            }
        ],
    }
    with pytest.raises(SpecError, match=r"steps\[0\]\.inputs\.encoding: unknown encoding 'klingon'"):
        engine.start(spec)
    assert not (tmp_path / "a.txt").exists()


def test_a_bad_value_known_only_at_run_time_fails_the_step_clearly(
    engine: Engine, registry: Registry, tmp_path: Path
) -> None:
    @registry.action("pick")
    def pick() -> dict:
        return {"enc": "klingon"}

    steps = [
        {"name": "p", "action": "pick"},
        {
            "name": "w",
            "action": "file.write",
            "inputs": {"path": "a.txt", "content": "x", "encoding": "${{ steps.p.outputs.enc }}"},
        },
    ]
    run = _run(engine, steps)
    assert run.wait(timeout=10) == "FAILED"
    assert "unknown encoding 'klingon'" in run.error
    assert not (tmp_path / "a.txt").exists()


def test_content_that_the_encoding_cannot_hold_fails_without_writing(engine: Engine, tmp_path: Path) -> None:
    step = {"name": "w", "action": "file.write", "inputs": {"path": "a.txt", "content": "café", "encoding": "ascii"}}
    run = _run(engine, [step])
    assert run.wait(timeout=10) == "FAILED"
    assert "content cannot be written as ascii" in run.error
    assert "use encoding: utf-8" in run.error
    assert not (tmp_path / "a.txt").exists()


def test_file_outputs_carry_absolute_paths(engine: Engine, tmp_path: Path) -> None:
    run = _run(engine, [{"name": "w", "action": "file.write", "inputs": {"path": "sub/a.txt", "content": "x"}}])
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.outputs["w"] == {"path": str(tmp_path / "sub" / "a.txt"), "bytes": 1}
