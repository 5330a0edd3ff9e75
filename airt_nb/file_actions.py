"""The built-in file actions ``file.write``, ``file.delete`` and ``file.copy``, and their undo.

Before changing anything, each one saves (``StepContext.save("undo", ...)``)
where the file is (absolute path), the path policy's allowed folders if
any, what was there (an undo copy in the workflow's private undo folder,
see :mod:`airt_nb.undocopies`, with its size, keyed digest, mode and owner)
and what the step will leave there (size and keyed digest).  A step re-run after a
crash keeps the first run's record, so a rollback restores the state from
before the workflow, not from before the re-run; an append that already
happened is not appended twice.

The undo compares the file with what the step left:

- unchanged: put back what was there (an append is cut back in place);
  nothing to report;
- changed by someone after the step: their version is moved aside, to
  ``<name>.airt-kept-<id>`` in the same folder, and the earlier content is
  restored; the note says both paths.  Nothing anyone wrote is lost;
- gone (deleted after the step): the earlier content is restored and the
  note says so;  a file the step created and that is already gone: the
  note says "already absent".

Relative paths resolve against ``StepContext.workdir``; files are reached
through :mod:`airt_nb.fileops` (race-free under a path policy, modes and
owners kept).
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from .context import CompensationContext, StepContext, absolute_path
from .errors import ActionError
from .fileops import Owner, Place, digest, open_place, remove_folders
from .undocopies import keep_copy, read_copy, undo_key

__all__ = ["file_copy", "file_delete", "file_write", "undo_file"]


def _path_value(value: str) -> str:
    if not value:
        raise ValueError("a path must not be empty; give a file's path")
    if "\0" in value:
        raise ValueError(f"{value!r} contains a NUL character; remove it")
    return value


def _text_encoding(value: str) -> str:
    try:
        info = codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}; use e.g. utf-8, latin-1 or ascii") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{value!r} is not a text encoding; use e.g. utf-8, latin-1 or ascii")
    return value


FilePath = Annotated[str, AfterValidator(_path_value)]
Encoding = Annotated[str, AfterValidator(_text_encoding)]


def _encode(content: Any, encoding: str) -> bytes:
    if isinstance(content, str):
        text = content
    else:
        try:
            text = json.dumps(content, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ActionError(f"content is not text or JSON ({exc}); give text or a JSON value") from None
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ActionError(
            f"content cannot be written as {encoding}: {exc.reason} at character {exc.start} "
            f"({text[exc.start : exc.end]!r}); use encoding: utf-8"
        ) from None


# -- what was there ----------------------------------------------------------------------------


def _key(ctx: StepContext) -> bytes:
    key = undo_key(ctx.undo_dir, ctx.workflow_id, create=True)
    assert key is not None
    return key


def _before(place: Place, ctx: StepContext, key: bytes, *, follow: bool, writes: bool = True) -> dict[str, Any]:
    """Record what is at ``place`` now, keeping its bytes in an undo copy."""
    st = place.stat() if follow else place.lstat()
    if st is None:
        return {"kind": "absent"}
    if not follow and _is_link(st) and not place.fenced:
        return {"kind": "link", "link": place.readlink()}
    if writes:
        place.check_links(st)
    data, st = place.read()  # under a path policy a link here is refused (O_NOFOLLOW)
    copy = keep_copy(ctx.undo_dir, ctx.workflow_id, ctx.step_name, data)
    return {
        "kind": "file",
        "copy": copy,
        "size": len(data),
        "digest": digest(data, key),
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "data": data,  # in memory only, dropped before saving
    }


def _is_link(st: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode)


def _current_matches(place: Place, after: dict[str, Any], key: bytes | None, *, follow: bool) -> bool:
    """Whether the file is what the step left (``key`` ``None``: cannot tell, so no)."""
    st = place.stat() if follow else place.lstat()
    if after.get("kind") == "absent":
        return st is None
    if key is None or st is None or _is_link(st) or st.st_size != after.get("size"):
        return False
    try:
        data, _ = place.read()
    except (OSError, ActionError):
        return False
    return digest(data, key) == after.get("digest")


def _record(ctx: StepContext, target: str, before: dict[str, Any], after: dict[str, Any], **extra: Any) -> None:
    saved = {k: v for k, v in before.items() if k != "data"}
    ctx.save("undo", {"path": target, "fence": ctx.allowed_paths, "before": saved, "after": after, **extra})


def _after_of(data: bytes, key: bytes) -> dict[str, Any]:
    return {"kind": "file", "size": len(data), "digest": digest(data, key)}


def _note_created(ctx: StepContext, place: Place) -> None:
    record = ctx.saved("undo")
    if place.created and record is not None:
        ctx.save("undo", {**record, "created": [*record.get("created", []), *place.created]})


# -- file.write ----------------------------------------------------------------------------------


def file_write(
    path: FilePath, content: Any, ctx: StepContext, encoding: Encoding = "utf-8", append: bool = False
) -> dict:
    """Write ``content`` to ``path`` (creating folders); undone by restoring what was there.

    Text is written as it is; any other JSON value (a number, a list...) as
    JSON.  A file that exists keeps its mode and owner; ``append: true``
    adds to the end of it in place.
    """
    target = absolute_path(path, ctx.workdir)
    data = _encode(content, encoding)
    fence = ctx.allowed_paths
    record = ctx.saved("undo")
    key = _key(ctx)
    with open_place(target, fence, create=True) as place:
        if record is None:
            before = _before(place, ctx, key, follow=append)
            whole = before.get("data", b"") + data if append else data
            _record(ctx, target, before, _after_of(whole, key), append=append, created=place.created)
        else:  # a re-run: keep what the first run saw; say what this run leaves
            before = record["before"]
            after = _after_of(_earlier(before, target) + data if append else data, key)
            if append and _current_matches(place, after, key, follow=True):
                return {"path": target, "bytes": len(data)}  # the first run appended already
            if record.get("after") != after:
                ctx.save("undo", {**record, "after": after})
            _note_created(ctx, place)
        if append:
            place.append(data)
        else:
            st = place.lstat()
            place.check_links(st)
            regular = st is not None and not _is_link(st)
            place.replace(data, like=st if regular else None)
    return {"path": target, "bytes": len(data)}


def _earlier(before: dict[str, Any], target: str) -> bytes:
    return read_copy(before["copy"], target=target) if before.get("kind") == "file" else b""


# -- file.delete ---------------------------------------------------------------------------------


def file_delete(path: FilePath, ctx: StepContext, missing_ok: bool = False) -> dict:
    """Delete a file, keeping an undo copy of its bytes so a rollback can put it back."""
    target = absolute_path(path, ctx.workdir)
    record = ctx.saved("undo")
    if record is not None and record.get("noop"):
        record = None  # the earlier run deleted nothing: look again
    try:
        with open_place(target, ctx.allowed_paths) as place:
            if record is None:
                before = _before(place, ctx, _key(ctx), follow=False, writes=False)
                _record(ctx, target, before, {"kind": "absent"}, noop=before["kind"] == "absent")
                record = ctx.saved("undo")
            place.unlink()
    except FileNotFoundError:  # the folder does not exist either
        if record is None:
            _record(ctx, target, {"kind": "absent"}, {"kind": "absent"}, noop=True)
            record = ctx.saved("undo")
    if record["before"]["kind"] == "absent":
        if not missing_ok:
            raise FileNotFoundError(f"{target} does not exist; set missing_ok: true to allow that")
        return {"path": target, "existed": False, "bytes": 0}
    return {"path": target, "existed": True, "bytes": record["before"].get("size", 0)}


# -- file.copy -----------------------------------------------------------------------------------


def file_copy(src: FilePath, dst: FilePath, ctx: StepContext, overwrite: bool = True) -> dict:
    """Copy ``src`` to ``dst``; undone by restoring what ``dst`` was.  ``dst`` keeps its mode if it exists."""
    source, target = absolute_path(src, ctx.workdir), absolute_path(dst, ctx.workdir)
    fence = ctx.allowed_paths
    with open_place(source, fence) as place:
        data, st = place.read()
        place.check_links(st)  # a second name could be a file outside the allowed folders
    record = ctx.saved("undo")
    key = _key(ctx)
    with open_place(target, fence, create=True) as place:
        if record is None:
            before = _before(place, ctx, key, follow=False)
            if before["kind"] != "absent" and not overwrite:
                raise FileExistsError(f"{target} exists; set overwrite: true to replace it")
            _record(ctx, target, before, _after_of(data, key), created=place.created)
        elif record.get("after") != _after_of(data, key):
            ctx.save("undo", {**record, "after": _after_of(data, key)})
        existing = place.lstat()
        place.check_links(existing)
        place.replace(data, like=existing if existing is not None and not _is_link(existing) else None)
    return {"src": source, "dst": target, "bytes": len(data)}


# -- undo ----------------------------------------------------------------------------------------


def undo_file(inputs: dict, outputs: Any, ctx: CompensationContext) -> str | None:
    """Put back what a file action changed; returns a note unless it was a plain undo."""
    record = ctx.saved("undo")
    if record is None:
        legacy = ctx.saved("before")
        if legacy is not None:  # saved by an earlier version: the bytes are in the state itself
            target = absolute_path(inputs.get("path") or inputs["dst"], ctx.workdir)
            _legacy_restore(Path(target), legacy)
            return None
        return "nothing was saved by the step, so nothing was restored"
    if record.get("noop"):
        return None  # a delete that deleted nothing
    target, fence = record["path"], record.get("fence")
    fence = tuple(fence) if fence is not None else None
    before, after = record["before"], record["after"]
    follow = bool(record.get("append"))
    created = record.get("created") or []
    key = undo_key(ctx.undo_dir, ctx.workflow_id, create=False)
    with open_place(target, fence, create=before["kind"] != "absent") as place:
        unchanged = _current_matches(place, after, key, follow=follow)
        present = (place.stat() if follow else place.lstat()) is not None
        if before["kind"] == "file" and not unchanged and _current_matches(place, before, key, follow=follow):
            return None  # already restored (a rollback that was interrupted after restoring, then run again)
        if before["kind"] == "link" and not unchanged and present and _link_is(place, before["link"]):
            return None
        if before["kind"] == "absent":
            if not present:
                remove_folders(created, fence)
                return None if after.get("kind") == "absent" else "already absent"
            if not unchanged:
                kept = place.move_aside("kept")
                why = "changed after the step" if key is not None else "may have changed (its undo folder is gone)"
                return f"{target} {why}; the step had created it, so it was moved aside to {kept} instead of deleted"
            place.unlink()
            remove_folders(created, fence)
            return None
        data = b""
        if before["kind"] == "file":  # read and check the copy before touching anything
            data = read_copy(before["copy"], target=target)
            if key is None or digest(data, key) != before.get("digest"):
                raise ActionError(
                    f"the undo copy of {target} ({before['copy']}) does not match what was saved (its digest "
                    "differs or its key is gone); it was altered: restore the file from a backup"
                )
        note = None
        if not unchanged and present:
            kept = place.move_aside("kept")
            note = (
                f"{target} changed after the step; restored the content from before the step "
                f"and kept the later version as {kept}"
            )
        elif not unchanged:
            note = f"{target} was gone at rollback (deleted after the step); restored the content from before the step"
        if before["kind"] == "link":
            place.replace(b"", like=None, link=before["link"])
            return note
        if follow and unchanged:
            place.truncate(before["size"])  # the append cut off in place: same file, links and mode
        else:
            place.replace(data, like=Owner(before["mode"], before["uid"], before["gid"]))
        return note


def _link_is(place: Place, text: str) -> bool:
    try:
        return place.readlink() == text
    except OSError:
        return False


def _legacy_restore(path: Path, snapshot: dict[str, Any]) -> None:
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
            except OSError:
                break
