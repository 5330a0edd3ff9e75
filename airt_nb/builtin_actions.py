"""Built-in actions: ``file.write``, ``file.delete``, ``file.copy``,
``http.request``, ``python.call`` and ``wait``, listed in :data:`BUILTINS` (every registry has them).

The file actions live in :mod:`airt_nb.file_actions`.  Each action that
changes the world saves what it is about to overwrite with
:meth:`StepContext.save` *before* it does so.  A step re-run after a crash
finds the first run's record and keeps it, so a later rollback restores the
state from before the workflow, not from before the re-run.

Inputs are bounded where a bad value would otherwise hang or crash a step:
``wait`` seconds and HTTP timeouts are durations within
:mod:`airt_nb.limits`, methods are HTTP tokens, expected statuses are
100-599, an ``undo`` request has only the keys a request has.

httpx is imported inside ``http.request`` only, so importing airt_nb stays fast.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BeforeValidator

from . import limits
from .context import CompensationContext, StepContext, StepInterrupted
from .errors import ActionError
from .file_actions import file_copy, file_delete, file_write, undo_file
from .urls import url_problem

__all__ = ["BUILTINS", "Builtin"]


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

_METHOD = re.compile(r"^[A-Za-z]{1,20}$")
_UNDO_KEYS = ("url", "method", "headers", "json", "body", "timeout", "expect_status")


def _method(value: str) -> str:
    if not _METHOD.match(value):
        raise ValueError(f"{value!r} is not an HTTP method; use e.g. GET, POST, PUT or DELETE")
    return value


def _statuses(value: list[int] | None) -> list[int] | None:
    for status in value or []:
        if not 100 <= status <= 599:
            raise ValueError(f"{status} is not an HTTP status; use numbers from 100 to 599")
    return value


def _http_timeout(value: Any) -> float:
    return limits.duration(value, maximum=limits.MAX_HTTP_TIMEOUT)


def _undo_request(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """An ``undo`` request: the keys of a request only, each checked like the request's own."""
    if not value:
        return value
    unknown = [k for k in value if k not in _UNDO_KEYS]
    if unknown:
        raise ValueError(f"undo takes no {', '.join(map(repr, unknown))} (it takes: {', '.join(_UNDO_KEYS)})")
    for key, item in value.items():
        try:
            if key in ("url", "method") or (key == "body" and item is not None):
                if not isinstance(item, str):
                    raise ValueError(f"must be text, got {type(item).__name__}")
                if key != "body":
                    (_url if key == "url" else _method)(item)
            elif key == "timeout":
                _http_timeout(item)
            elif key == "expect_status":
                if not isinstance(item, list) or not all(type(s) is int for s in item):
                    raise ValueError("must be a list of whole numbers")
                _statuses(item)
            elif key == "headers" and not (
                isinstance(item, Mapping) and all(isinstance(x, str) for x in (*item, *item.values()))
            ):
                raise ValueError("must map header names to text")
        except ValueError as exc:
            raise ValueError(f"undo.{key}: {exc}") from None
    return value


def _url(value: str) -> str:
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Url = Annotated[str, AfterValidator(_url)]
Method = Annotated[str, AfterValidator(_method)]
Timeout = Annotated[float, BeforeValidator(_http_timeout)]
Statuses = Annotated[list[int] | None, AfterValidator(_statuses)]
UndoRequest = Annotated[dict[str, Any] | None, AfterValidator(_undo_request)]


def http_request(
    url: Url,
    ctx: StepContext,
    method: Method = "GET",
    headers: dict[str, str] | None = None,
    json: Any = None,
    body: str | None = None,
    timeout: Timeout = 30.0,
    expect_status: Statuses = None,
    undo: UndoRequest = None,
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
        _http_timeout(undo.get("timeout", inputs.get("timeout", 30.0))),
        undo.get("expect_status"),
        ctx.idempotency_key,
    )


# -- wait --------------------------------------------------------------------------


Seconds = Annotated[float, BeforeValidator(lambda value: limits.duration(value, zero=True))]


def wait(seconds: Seconds, ctx: StepContext) -> dict:
    """Wait ``seconds`` (a number or a duration such as ``30s``, at most 366 days).

    After a crash, only what is left of the wait.
    """
    until = ctx.saved("until")
    if until is None:
        until = time.time() + seconds
        ctx.save("until", until)
    remaining = until - time.time()
    if remaining > 0 and ctx.cancelled.wait(remaining):
        raise StepInterrupted(f"stopped {until - time.time():.1f} s before the end of the wait")
    return {"waited": seconds}


class Builtin(NamedTuple):
    """A built-in action as every :class:`~airt_nb.Registry` installs it."""

    name: str
    fn: Callable[..., Any]
    undo: Callable[..., Any] | None = None
    undone_if_asked: bool = False  # undone only when the step's inputs give an undo
    path_inputs: tuple[str, ...] = ()  # inputs naming files, which a path policy checks


#: The built-in actions, in the order a registry lists them.
BUILTINS = (
    Builtin("file.write", file_write, undo_file, path_inputs=("path",)),
    Builtin("file.delete", file_delete, undo_file, path_inputs=("path",)),
    Builtin("file.copy", file_copy, undo_file, path_inputs=("src", "dst")),
    Builtin("python.call", python_call, _python_undo, undone_if_asked=True),
    Builtin("http.request", http_request, _http_undo, undone_if_asked=True),
    Builtin("wait", wait),
)
