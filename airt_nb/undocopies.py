"""Undo copies: the bytes a built-in file action overwrote or deleted, kept outside the database.

``file.write``, ``file.copy`` and ``file.delete`` keep what they are about
to overwrite or delete so that a rollback can put it back.  The bytes go to
a private folder per workflow (created 0700, each copy 0600, owned by the
user the engine runs as), and the step's saved state in the database holds
only the copy's path, its size and an HMAC-SHA256 digest keyed with a
random per-workflow key kept in the folder (``.key``, 0600).  Anyone who can
read the database learns that a file was overwritten, never what it
contained, not even a short secret by trying candidates against a digest.

Where the folder is:

- the engine gives it (``StepContext.undo_dir``): :func:`undo_dir_for`
  puts it beside the database file, ``<db>.undo/<workflow_id>``;
- otherwise (no database file, or a context built by hand) under the
  user's state folder: ``$XDG_STATE_HOME/airt_nb/undo/<workflow_id>``,
  by default ``~/.local/state/airt_nb/undo/<workflow_id>``.

A folder that exists but is open to others is made private (0700) before
use; one that belongs to another user, or is a symbolic link, is refused.

Retention: a copy is needed as long as a rollback of its workflow may still
run, and COMPLETED, FAILED and CANCELLED workflows can all still be rolled
back.  :func:`discard_undo_copies` removes a workflow's folder; call it when
the workflow is ROLLED_BACK (every compensation done), when its records are
deleted, or when it has been finished longer than the retention period you
choose (after which its rollback can no longer restore files: the
compensation then fails saying the undo copy is gone, never silently).

Imports nothing from airt_nb but the errors.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from .errors import ActionError

__all__ = ["default_undo_root", "discard_undo_copies", "keep_copy", "read_copy", "undo_dir_for", "undo_key"]


def default_undo_root() -> str:
    """``$XDG_STATE_HOME/airt_nb/undo`` (default ``~/.local/state/airt_nb/undo``)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "airt_nb", "undo")


def undo_dir_for(db: str | os.PathLike[str] | None, workflow_id: str) -> str:
    """The undo folder of ``workflow_id``: ``<db>.undo/<workflow_id>`` beside a database file.

    For a database that is not a file (``:memory:``, a URL) the folder is
    under :func:`default_undo_root`.

    >>> undo_dir_for("/srv/airt.db", "3f2a9c")
    '/srv/airt.db.undo/3f2a9c'
    """
    text = os.fspath(db) if db is not None else ""
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    if not text or text == ":memory:" or "://" in text:
        return os.path.join(default_undo_root(), workflow_id)
    return os.path.join(os.path.abspath(text) + ".undo", workflow_id)


def _private_folder(folder: str) -> None:
    """Make ``folder`` (and missing parents) with mode 0700; refuse one that is not ours."""
    missing = []
    probe = folder
    while not os.path.lexists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ActionError(f"undo folder {folder} is not a plain folder (a link or a file); remove it and retry")
    if st.st_uid != os.geteuid():
        raise ActionError(
            f"undo folder {folder} belongs to user id {st.st_uid}, not to this process ({os.geteuid()}); "
            "it could let them read the undo copies: remove it and retry"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(folder, 0o700)
    parent = os.path.dirname(folder)  # <db>.undo: private too, so others cannot even list workflows
    if parent.endswith(".undo"):
        pst = os.lstat(parent)
        if stat.S_ISDIR(pst.st_mode) and pst.st_uid == os.geteuid() and stat.S_IMODE(pst.st_mode) & 0o077:
            os.chmod(parent, 0o700)


def _folder(undo_dir: str | None, workflow_id: str) -> str:
    return os.path.abspath(undo_dir or os.path.join(default_undo_root(), workflow_id))


def undo_key(undo_dir: str | None, workflow_id: str, *, create: bool) -> bytes | None:
    """The workflow's secret key for digests of file contents (32 random bytes, in ``.key``, 0600).

    Digests saved in the database are keyed with it, so that they cannot be
    used to guess a short secret that was overwritten.  ``None`` when the
    folder has no key and ``create`` is false (the copies were discarded).
    """
    folder = _folder(undo_dir, workflow_id)
    path = os.path.join(folder, ".key")
    try:
        with open(path, "rb") as fh:
            key = fh.read()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    if not create:
        return None
    _private_folder(folder)
    key = os.urandom(32)
    tmp = f"{path}.{uuid.uuid4().hex[:8]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first key written wins; a racing step reads it
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path, "rb") as fh:
        return fh.read()


def keep_copy(undo_dir: str | None, workflow_id: str, step_name: str, data: bytes) -> str:
    """Store ``data`` as a new 0600 file in the workflow's undo folder; returns its absolute path.

    The copy is on disk (``fsync``) before this returns: the caller changes
    the original only afterwards.
    """
    folder = _folder(undo_dir, workflow_id)
    _private_folder(folder)
    name = f"{step_name[:100]}.{uuid.uuid4().hex[:12]}.undo"
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return os.path.join(folder, name)


def read_copy(path: str, *, target: str) -> bytes:
    """The bytes of an undo copy; :class:`ActionError` saying what to do when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ActionError(
            f"the undo copy of {target} ({path}) is gone (discarded after the retention period, or deleted); "
            f"{target} cannot be restored automatically: restore it from a backup"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def discard_undo_copies(undo_dir: str | os.PathLike[str]) -> int:
    """Delete a workflow's undo folder and the copies in it; returns how many copies were removed.

    Call it only when no rollback of the workflow can need them any more
    (see the module docstring).  A folder that does not exist is fine (0).

    >>> discard_undo_copies("/nonexistent/airt.db.undo/3f2a9c")
    0
    """
    folder = Path(undo_dir)
    if folder.is_symlink() or not folder.is_dir():
        return 0
    count = sum(1 for p in folder.iterdir() if p.name.endswith(".undo"))
    shutil.rmtree(folder, ignore_errors=True)
    return count
