"""Built-in actions: ``file.write``, ``file.delete``, ``file.copy``,
``http.request``, ``python.call`` and ``wait``.

Each one that changes the world saves what it is about to overwrite with
:meth:`StepContext.save` *before* it does so.  A step re-run after a crash
finds the first run's copy and keeps it, so a later rollback restores the
state from before the workflow, not from before the re-run.

httpx is imported inside ``http.request`` only, so importing airt_nb stays fast.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actions import Action, CompensationContext, StepContext, StepInterrupted
from .errors import ActionError

if TYPE_CHECKING:
    from .actions import Registry

__all__ = ["install"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _missing_parents(path: Path) -> list[str]:
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(str(parent))
        if parent.parent == parent:
            break
        parent = parent.parent
    return missing


def _snapshot(path: Path) -> dict[str, Any]:
    """What is at ``path`` now, enough to put it back."""
    if path.is_file():
        return {"existed": True, "content": _b64(path.read_bytes())}
    return {"existed": False, "created_dirs": _missing_parents(path)}


def _restore(path: Path, snapshot: dict[str, Any]) -> None:
    if snapshot.get("existed"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".airt-restore")
        tmp.write_bytes(base64.b64decode(snapshot["content"]))
        os.replace(tmp, path)
    else:
        path.unlink(missing_ok=True)
        for folder in snapshot.get("created_dirs", []):
            try:
                Path(folder).rmdir()
            except OSError:  # not empty (someone else put files there) or already gone
                break


def _ensure_snapshot(ctx: StepContext, path: Path) -> dict[str, Any]:
    snap = ctx.saved("before")
    if snap is None:
        snap = _snapshot(path)
        ctx.save("before", snap)
    return snap


# -- file.write ------------------------------------------------------------------


def file_write(path: str, content: Any, ctx: StepContext, encoding: str = "utf-8", append: bool = False) -> dict:
    """Write ``content`` to ``path`` (creating folders); undone by restoring what was there.

    Text is written as it is; any other JSON value (a number, a list...) as JSON.
    """
    target = Path(path)
    _ensure_snapshot(ctx, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    data = text.encode(encoding)
    if append:
        with target.open("ab") as fh:
            fh.write(data)
    else:
        tmp = target.with_name(target.name + ".airt-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return {"path": str(target), "bytes": len(data)}


def _undo_restore(inputs: dict, outputs: dict, ctx: CompensationContext) -> None:
    snap = ctx.saved("before")
    if snap is None:  # the step completed without saving: nothing known to restore
        return
    _restore(Path(inputs.get("path") or inputs["dst"]), snap)


# -- file.delete -----------------------------------------------------------------


def file_delete(path: str, ctx: StepContext, missing_ok: bool = False) -> dict:
    """Delete a file, keeping its bytes so a rollback can put it back."""
    target = Path(path)
    snap = _ensure_snapshot(ctx, target)
    if not snap["existed"] and not target.exists():
        if not missing_ok:
            raise FileNotFoundError(f"{path} does not exist; set missing_ok: true to allow that")
        return {"path": str(target), "existed": False, "bytes": 0}
    target.unlink(missing_ok=True)
    size = len(base64.b64decode(snap["content"])) if snap.get("existed") else 0
    return {"path": str(target), "existed": True, "bytes": size}


# -- file.copy -------------------------------------------------------------------


def file_copy(src: str, dst: str, ctx: StepContext, overwrite: bool = True) -> dict:
    """Copy ``src`` to ``dst``; undone by restoring what ``dst`` was."""
    source, target = Path(src), Path(dst)
    snap = _ensure_snapshot(ctx, target)
    if snap["existed"] and not overwrite and target.exists():
        raise FileExistsError(f"{dst} exists; set overwrite: true to replace it")
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".airt-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return {"src": str(source), "dst": str(target), "bytes": len(data)}


# -- python.call -----------------------------------------------------------------


def _import_callable(path: str, *, field: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ActionError(f"{field} must look like 'package.module:function', got {path!r}", action="python.call")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionError(f"{field}: cannot import {module_name!r} ({exc})", action="python.call") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ActionError(f"{field}: {module_name!r} has no {attr!r}", action="python.call") from None
    if not callable(target):
        raise ActionError(f"{field}: {path!r} is not callable", action="python.call")
    return target


def python_call(function: str, args: list | None = None, kwargs: dict | None = None, undo: str | None = None) -> dict:
    """Call ``module:function(*args, **kwargs)``; ``undo`` names ``module:function(inputs, outputs)``."""
    fn = _import_callable(function, field="function")
    if undo:
        _import_callable(undo, field="undo")  # refuse a bad undo before doing anything
    return {"result": fn(*(args or []), **(kwargs or {}))}


def _python_undo(inputs: dict, outputs: dict) -> None:
    _import_callable(inputs["undo"], field="undo")(inputs, outputs)


# -- http.request ----------------------------------------------------------------


def http_request(
    url: str,
    ctx: StepContext,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json: Any = None,
    body: str | None = None,
    timeout: float = 30.0,
    expect_status: list[int] | None = None,
    undo: dict[str, Any] | None = None,
) -> dict:
    """Send one HTTP request with httpx; fails on an unexpected status.

    An ``Idempotency-Key`` header carries ``workflow_id/step_name/attempt``.
    ``undo`` is a request (``url``, ``method``, ``headers``, ``json``, ``body``)
    sent to compensate.
    """
    return _send(url, method, headers, json, body, timeout, expect_status, ctx.idempotency_key)


def _send(url, method, headers, json_body, body, timeout, expect_status, key) -> dict:  # type: ignore[no-untyped-def]
    import httpx

    sent_headers = {"Idempotency-Key": key, **(headers or {})}
    try:
        response = httpx.request(
            method.upper(),
            url,
            headers=sent_headers,
            json=json_body,
            content=body.encode() if body is not None else None,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ConnectionError(f"{method.upper()} {url} failed: {exc}") from exc
    ok = response.status_code in expect_status if expect_status else response.is_success
    if not ok:
        raise RuntimeError(f"{method.upper()} {url} answered {response.status_code}: {response.text[:200]}")
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    return {"status_code": response.status_code, "body": payload}


def _http_undo(inputs: dict, outputs: dict, ctx: CompensationContext) -> None:
    undo = dict(inputs["undo"])
    _send(
        undo.get("url", inputs["url"]),
        undo.get("method", "DELETE"),
        undo.get("headers"),
        undo.get("json"),
        undo.get("body"),
        float(undo.get("timeout", inputs.get("timeout", 30.0))),
        undo.get("expect_status"),
        ctx.idempotency_key,
    )


# -- wait --------------------------------------------------------------------------


def wait(seconds: float, ctx: StepContext) -> dict:
    """Wait ``seconds``; after a crash, only what is left of the wait."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    until = ctx.saved("until")
    if until is None:
        until = time.time() + seconds
        ctx.save("until", until)
    remaining = until - time.time()
    if remaining > 0 and ctx.cancelled.wait(remaining):
        raise StepInterrupted(f"stopped {until - time.time():.1f} s before the end of the wait")
    return {"waited": seconds}


def install(registry: Registry) -> None:
    """Register the built-in actions into ``registry``."""
    conditional = {"python.call", "http.request"}  # undone only when the step gives an undo
    for name, fn, undo in (
        ("file.write", file_write, _undo_restore),
        ("file.delete", file_delete, _undo_restore),
        ("file.copy", file_copy, _undo_restore),
        ("python.call", python_call, _python_undo),
        ("http.request", http_request, _http_undo),
        ("wait", wait, None),
    ):
        # Their models are built on first use: every Registry() installs these, and most use few of them.
        act = Action(fn, name, lazy=True)
        if undo is not None:
            act.compensate(undo)
        if name in conditional:
            act.compensable_if = lambda inputs: bool(inputs.get("undo"))
        registry.register(act)
