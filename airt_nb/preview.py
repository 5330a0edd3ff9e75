"""What one step will do, shown to the person who approves it, and a hash to check it by later.

:func:`step_preview` takes a step's action and its inputs (resolved as far
as they are known when the approval is asked for) and returns what an
approver reads: the inputs with secrets masked, and for built-ins a preview
of the effect:

- ``file.write``: a unified diff of the file as it is now against what the
  step will leave (an append shows what it adds);
- ``file.delete``: the file that would be removed (its size, its first lines);
- ``file.copy``: source and target, and the diff of the target;
- ``http.request``: method, URL, headers and body, secrets masked.

The entry's ``target`` fingerprints what the preview looked at (a file's
size and SHA-256; a file larger than 64 MiB by size, time and inode) and
``hash`` covers the action, the inputs and the target: computed again just
before the step runs, a different hash means that what will run is not what
was approved.

Secrets: header, query and JSON keys that look like credentials
(``Authorization``, ``token``, ``password``, ``api_key``...) are shown as
``***``; the hash covers their values (the spec that holds them is in the
database already).

Imports nothing from airt_nb but the limits and ``context.absolute_path``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .context import absolute_path
from .limits import MAX_PREVIEW_BYTES

__all__ = ["MASK", "masked", "step_preview"]

MASK = "***"
_SECRET = re.compile(r"auth|token|secret|passw|api[-_]?key|cookie|session|credential|private|signature", re.I)
_HASH_WHOLE = 64 * 1024 * 1024  # files up to this size are hashed whole; larger ones by size, time and inode
_DIFF_LINES = 400
_HEAD_LINES = 20


def masked(value: Any, key: str = "") -> Any:
    """``value`` with the values of secret-looking keys replaced by ``***`` (recursively), and the
    passwords and secret-looking query parameters of URLs in it."""
    if key and _SECRET.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return value


def _mask_url(url: Any) -> Any:
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# -- files -------------------------------------------------------------------------------------------


def _look(path: str) -> dict[str, Any]:
    """What is at ``path`` now: absent, a file (size, digest, its first bytes), or something else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return {"kind": "absent"}
    except NotADirectoryError:
        return {"kind": "absent"}
    except OSError as exc:
        return {"kind": "unreadable", "error": exc.strerror or str(exc)}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return {"kind": "not a regular file"}
        size = st.st_size
        sha = hashlib.sha256()
        head = b""
        whole = size <= _HASH_WHOLE
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            if len(head) < MAX_PREVIEW_BYTES:
                head += chunk[: MAX_PREVIEW_BYTES - len(head)]
            if not whole:
                break
            sha.update(chunk)
        digest = sha.hexdigest() if whole else f"size {size}, modified {st.st_mtime_ns}, inode {st.st_ino}"
        return {"kind": "file", "size": size, "digest": digest, "head": head, "complete": size <= MAX_PREVIEW_BYTES}
    except OSError as exc:
        return {"kind": "unreadable", "error": exc.strerror or str(exc)}
    finally:
        os.close(fd)


def _fingerprint(found: dict[str, Any]) -> dict[str, Any]:
    return {k: found[k] for k in ("kind", "size", "digest", "error") if k in found}


def _text(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def _diff(before: bytes, after: bytes, path: str, *, complete: bool = True) -> str:
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return f"binary content: {len(before):,} bytes now, {len(after):,} bytes after the step"
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"{path} (now)", f"{path} (after the step)"
        )
    )
    if not lines:
        return "no change: the file already holds exactly this"
    out = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines[:_DIFF_LINES]]
    if len(lines) > _DIFF_LINES:
        out.append(f"... {len(lines) - _DIFF_LINES} more lines of diff\n")
    if not complete:
        out.append(f"... the file is larger than {MAX_PREVIEW_BYTES:,} bytes: only its beginning is compared\n")
    return "".join(out)


def _content(inputs: Mapping[str, Any]) -> bytes:
    content = inputs.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    return text.encode(str(inputs.get("encoding") or "utf-8"), errors="replace")


def _path(inputs: Mapping[str, Any], key: str, unknown: set[str], workdir: str | None) -> str | None:
    value = inputs.get(key)
    if key in unknown or not isinstance(value, str) or not value:
        return None
    return absolute_path(value, workdir)


Shown = tuple[dict[str, Any], Any]


def _file_write(inputs: Mapping[str, Any], unknown: set[str], workdir: str | None) -> Shown:
    path = _path(inputs, "path", unknown, workdir)
    if path is None:
        return {"note": "the file is known only when the step runs"}, None
    now = _look(path)
    shown: dict[str, Any] = {"path": path, "exists": now["kind"] == "file"}
    if now["kind"] not in ("file", "absent"):
        shown["note"] = f"cannot be read now: {now.get('error') or now['kind']}"
    if "content" in unknown:
        shown["note"] = "the content is known only when the step runs"
        return shown, _fingerprint(now)
    before = now.get("head", b"")
    new = _content(inputs)
    after = before + new if inputs.get("append") else new
    shown["bytes_now"] = now.get("size", 0)
    shown["bytes_after"] = now.get("size", 0) + len(new) if inputs.get("append") else len(new)
    shown["diff"] = _diff(before, after, path, complete=now.get("complete", True))
    return shown, _fingerprint(now)


def _file_delete(inputs: Mapping[str, Any], unknown: set[str], workdir: str | None) -> Shown:
    path = _path(inputs, "path", unknown, workdir)
    if path is None:
        return {"note": "the file is known only when the step runs"}, None
    now = _look(path)
    shown: dict[str, Any] = {"path": path, "exists": now["kind"] == "file"}
    if now["kind"] == "file":
        shown["bytes"] = now["size"]
        text = _text(now["head"])
        if text is None:
            shown["removes"] = f"binary content, {now['size']:,} bytes"
        else:
            lines = text.splitlines()
            shown["removes"] = "\n".join(lines[:_HEAD_LINES]) + (
                f"\n... {len(lines) - _HEAD_LINES} more lines" if len(lines) > _HEAD_LINES else ""
            )
    elif now["kind"] == "absent":
        shown["note"] = "nothing to delete: the file does not exist now"
    else:
        shown["note"] = f"cannot be read now: {now.get('error') or now['kind']}"
    return shown, _fingerprint(now)


def _file_copy(inputs: Mapping[str, Any], unknown: set[str], workdir: str | None) -> Shown:
    src, dst = _path(inputs, "src", unknown, workdir), _path(inputs, "dst", unknown, workdir)
    shown: dict[str, Any] = {"src": src or "known when the step runs", "dst": dst or "known when the step runs"}
    source = _look(src) if src else None
    target = _look(dst) if dst else None
    if source is not None:
        shown["src_bytes"] = source.get("size")
        if source["kind"] != "file":
            shown["note"] = f"the source cannot be read now: {source.get('error') or source['kind']}"
    if target is not None:
        shown["dst_exists"] = target["kind"] == "file"
    if source is not None and target is not None and source["kind"] == "file":
        shown["diff"] = _diff(target.get("head", b""), source["head"], dst or "", complete=source["complete"])
    fingerprint = {
        "src": _fingerprint(source) if source else None,
        "dst": _fingerprint(target) if target else None,
    }
    return shown, fingerprint


def _http(inputs: Mapping[str, Any], unknown: set[str], workdir: str | None) -> Shown:
    shown: dict[str, Any] = {
        "method": str(inputs.get("method") or "GET").upper(),
        "url": _mask_url(inputs.get("url")),
        "headers": masked(dict(inputs.get("headers") or {})) if isinstance(inputs.get("headers"), Mapping) else None,
    }
    if inputs.get("json") is not None:
        shown["json"] = masked(inputs.get("json"))
    if inputs.get("body") is not None:
        body = str(inputs.get("body"))
        shown["body"] = body if len(body) <= 2000 else body[:2000] + f"... ({len(body):,} characters)"
    if isinstance(inputs.get("undo"), Mapping):
        undo = dict(inputs["undo"])
        shown["undo"] = {**masked(undo), "url": _mask_url(undo.get("url", inputs.get("url")))}
    return {k: v for k, v in shown.items() if v is not None}, None


_BUILTIN: dict[str, Callable[[Mapping[str, Any], set[str], str | None], Shown]] = {
    "file.write": _file_write,
    "file.delete": _file_delete,
    "file.copy": _file_copy,
    "http.request": _http,
}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def step_preview(
    step: str,
    action: str,
    inputs: Mapping[str, Any],
    *,
    unknown: list[str] | None = None,
    unknown_steps: list[str] | None = None,
    unknown_keys: set[str] | None = None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """The preview entry of one step (see the module docstring).

    ``inputs`` are resolved as far as known; ``unknown`` lists the lookups
    not known yet (their inputs, ``unknown_keys``, keep their ``${{ }}`` text)
    and ``unknown_steps`` the steps they look up.

    >>> entry = step_preview("notify", "http.request", {"url": "https://x.org/?token=abc", "method": "post"})
    >>> entry["preview"]["url"], entry["preview"]["method"]
    ('https://x.org/?token=***', 'POST')
    """
    keys = set(unknown_keys or ())
    entry: dict[str, Any] = {
        "step": step,
        "action": action,
        "inputs": masked(dict(inputs)),
        "unknown": list(unknown or ()),
        "unknown_steps": sorted(unknown_steps or ()),
    }
    show = _BUILTIN.get(action)
    target: Any = None
    if show is not None:
        try:
            shown, target = show(inputs, keys, workdir)
        except Exception as exc:  # a preview must never stop the request: say what could not be shown
            shown, target = {"note": f"no preview: {type(exc).__name__}: {exc}"}, {"error": str(exc)}
        entry["preview"] = shown
    entry["target"] = target
    entry["hash"] = hashlib.sha256(
        canonical({"action": action, "inputs": dict(inputs), "target": target}).encode()
    ).hexdigest()
    return entry


def preview_hash(entries: list[dict[str, Any]]) -> str:
    """One hash over the entries of an approval's preview: what a decision records having seen."""
    return hashlib.sha256(canonical([(e["step"], e["hash"]) for e in entries]).encode()).hexdigest()


def what_changed(before: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """Why ``now`` (an entry computed just before the step runs) differs from ``before`` (the approved one)."""
    if canonical(before.get("target")) != canonical(now.get("target")):
        shown = now.get("preview") or {}
        where = shown.get("path") or shown.get("dst") or "its target"
        old, new = before.get("target") or {}, now.get("target") or {}
        if isinstance(old, Mapping) and isinstance(new, Mapping) and "kind" in old and "kind" in new:
            detail = f" (was {_state(old)}, now {_state(new)})"
        else:
            detail = ""
        return f"{where} changed since the approval{detail}"
    return "its inputs changed since the approval"


def _state(fingerprint: Mapping[str, Any]) -> str:
    if fingerprint.get("kind") == "file":
        return f"{fingerprint.get('size', 0):,} bytes"
    return str(fingerprint.get("kind"))
