"""File access for the built-in file actions: race-free under a path policy, modes kept.

Every operation works on a :class:`Place`: an open descriptor of the folder
that holds the file, and the file's name in it.  Without a path policy
(``fence`` is ``None``) the folder is opened by its path, as any program
would.  Under a path policy the folder is reached from an allowed folder one
component at a time with ``O_NOFOLLOW``: a symbolic link anywhere below the
allowed folder is refused, so a link swapped in after the policy check
cannot lead a write (or a read) outside it.  Writes under a path policy
also refuse files with more than one hard link, the other way out.

Files are replaced through a temporary file in the same folder that gets
the mode and, where the process may, the owner of the file it replaces
(a 0600 file stays 0600); appends write in place.

Imports nothing from airt_nb but the errors.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import ActionError, PolicyError

__all__ = ["Owner", "Place", "digest", "open_place", "remove_folders"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def digest(data: bytes, key: bytes) -> str:
    """HMAC-SHA256 of ``data``: keyed, so a digest kept in the database reveals nothing about a short secret."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _link_refused(path: str, fence: tuple[str, ...]) -> PolicyError:
    return PolicyError(
        f"{path} is a symbolic link (or passes through one) below the allowed folders ({', '.join(fence)}); "
        "under a path policy file actions do not follow links: use the real path",
        rule="paths",
    )


class Owner(NamedTuple):
    """The mode bits and owner a file had (the part of a ``stat`` a restore gives back)."""

    st_mode: int
    st_uid: int
    st_gid: int


@dataclass
class Place:
    """A file's folder (open) and its name there; ``path`` is the absolute path for messages."""

    dir_fd: int
    name: str
    path: str
    fenced: bool
    created: list[str] = field(default_factory=list)

    # -- reading ------------------------------------------------------------------------------

    def lstat(self) -> os.stat_result | None:
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def stat(self) -> os.stat_result | None:
        """What the name points at (through a link when not fenced)."""
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=not self.fenced)
        except FileNotFoundError:
            return None

    def read(self) -> tuple[bytes, os.stat_result]:
        """The file's bytes and its ``stat``; refuses anything but a regular file."""
        fd = self._open(os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ActionError(f"{self.path} is not a regular file; file actions read and write files only")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks), st
        finally:
            os.close(fd)

    def readlink(self) -> str:
        return os.readlink(self.name, dir_fd=self.dir_fd)

    # -- writing ------------------------------------------------------------------------------

    def check_links(self, st: os.stat_result | None) -> None:
        """Under a path policy, refuse a file that is also reachable by another name (a hard link)."""
        if self.fenced and st is not None and not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            raise PolicyError(
                f"{self.path} has {st.st_nlink} hard links; under a path policy file actions do not write "
                "to files that also exist under another name (it could be outside the allowed folders)",
                rule="paths",
            )

    def replace(self, data: bytes, *, like: os.stat_result | Owner | None, link: str | None = None) -> None:
        """Put ``data`` (or a symbolic link to ``link``) at the name, atomically.

        ``like`` is the file it replaces: its mode and (where permitted) owner
        are given to the new file.  A new file gets the usual ``0666 & ~umask``.
        """
        tmp = f".{self.name[:200]}.airt-{uuid.uuid4().hex[:12]}"
        try:
            if link is not None:
                os.symlink(link, tmp, dir_fd=self.dir_fd)
            else:
                # 0600 until the final mode is set: the new bytes are never more readable than the old ones.
                mode = 0o600 if like is not None else 0o666
                fd = os.open(
                    tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.dir_fd
                )
                try:
                    _write_all(fd, data)
                    if like is not None:
                        _same_owner_and_mode(fd, like)
                finally:
                    os.close(fd)
            os.replace(tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.dir_fd)
            except OSError:
                pass
            raise

    def append(self, data: bytes) -> os.stat_result | None:
        """Append ``data`` in place (creating the file); returns the ``stat`` from before, or ``None``."""
        fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ActionError(f"{self.path} is not a regular file; file actions read and write files only")
            self.check_links(st)  # on the open file: no race with a link made after a check by name
            _write_all(fd, data)
            return st
        finally:
            os.close(fd)

    def truncate(self, size: int) -> None:
        fd = self._open(os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def unlink(self) -> bool:
        try:
            os.unlink(self.name, dir_fd=self.dir_fd)
            return True
        except FileNotFoundError:
            return False

    def move_aside(self, tag: str) -> str:
        """Rename the entry to ``<name>.airt-<tag>-<id>`` in the same folder; returns the new absolute path."""
        new = f"{self.name[:200]}.airt-{tag}-{uuid.uuid4().hex[:8]}"
        os.rename(self.name, new, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        return os.path.join(os.path.dirname(self.path), new)

    def _open(self, flags: int, mode: int = 0o666) -> int:
        flags |= os.O_CLOEXEC | (os.O_NOFOLLOW if self.fenced else 0)
        try:
            return os.open(self.name, flags, mode, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP and self.fenced:
                raise PolicyError(
                    f"{self.path} is a symbolic link; under a path policy file actions do not follow links",
                    rule="paths",
                ) from None
            raise type(exc)(exc.errno, exc.strerror, self.path) from None  # the full path, not just the name


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _same_owner_and_mode(fd: int, like: os.stat_result | Owner) -> None:
    try:
        os.fchown(fd, like.st_uid, like.st_gid)  # first: chown clears set-id bits that fchmod then restores
    except PermissionError:
        pass  # not root and not the owner: the file becomes ours, with the same mode bits
    os.fchmod(fd, stat.S_IMODE(like.st_mode))


# -- reaching the folder ------------------------------------------------------------------------


def _locate(path: str, fence: tuple[str, ...]) -> tuple[str, list[str]]:
    """The allowed folder ``path`` starts in, and the components below it.

    The shortest prefix of ``path`` that resolves inside an allowed folder
    decides; whatever it resolved through, the rest is walked from that
    allowed folder without following links.
    """
    parts = path.split(os.sep)[1:]
    for i in range(len(parts) + 1):
        prefix = os.sep + os.sep.join(parts[:i])
        try:
            real = os.path.realpath(prefix)
        except OSError:  # a link replaced while it was read: this prefix proves nothing
            continue
        for root in fence:
            if _within(real, root):
                below = [p for p in os.path.relpath(real, root).split(os.sep) if p not in ("", ".")]
                return root, below + parts[i:]
    raise PolicyError(
        f"{path} is outside the allowed folders ({', '.join(fence)}); use a path inside them", rule="paths"
    )


@contextmanager
def open_place(path: str, fence: tuple[str, ...] | None, *, create: bool = False) -> Iterator[Place]:
    """Open the folder of the absolute ``path`` (creating missing folders when ``create``).

    ``fence``: the folders a path policy allows, or ``None``.  Folders made
    here are listed in ``Place.created`` (outermost first), for an undo.
    """
    if not os.path.isabs(path):
        raise ActionError(f"internal: {path!r} is not absolute")
    if "\0" in path:
        raise ActionError(f"path {path!r} contains a NUL character; remove it")
    if fence is None:
        parent, name = os.path.split(path)
        created = _make_parents(parent) if create else []
        fd = os.open(parent or os.sep, _DIR)
        place = Place(fd, name, path, False, created)
    else:
        place = _walk(path, fence, create)
    if place.name in ("", ".", ".."):
        os.close(place.dir_fd)
        raise ActionError(f"{path} names a folder, not a file; give the file's path")
    try:
        yield place
    finally:
        os.close(place.dir_fd)


def _make_parents(folder: str) -> list[str]:
    missing = []
    probe = folder
    while probe and not os.path.lexists(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    os.makedirs(folder, exist_ok=True)
    return list(reversed(missing))


def _walk(path: str, fence: tuple[str, ...], create: bool) -> Place:
    root, below = _locate(path, fence)
    if not below:
        raise ActionError(f"{path} is an allowed folder itself, not a file in it; give the file's path")
    try:
        fd = os.open(root, _DIR | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ActionError(f"allowed folder {root} does not exist; create it first") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _link_refused(root, fence) from None
        raise
    stack = [fd]
    names = [root]
    created: list[str] = []
    try:
        for part in below[:-1]:
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) == 1:
                    raise PolicyError(
                        f"{path} goes above the allowed folder {root} ('..'); use a path inside it", rule="paths"
                    )
                os.close(stack.pop())
                names.pop()
                continue
            stack.append(_enter(stack[-1], part, os.path.join(*names, part), fence, create, created))
            names.append(part)
        fd = stack.pop()
        return Place(fd, below[-1], os.path.join(*names, below[-1]), True, created)
    finally:
        for other in stack:
            os.close(other)


def _enter(parent: int, part: str, shown: str, fence: tuple[str, ...], create: bool, created: list[str]) -> int:
    for _ in range(3):  # a folder made or removed by someone else in between: look again
        try:
            return os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such folder", shown) from None
            try:
                os.mkdir(part, 0o777, dir_fd=parent)
                created.append(shown)
            except FileExistsError:
                pass
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # with O_NOFOLLOW: it was a link when it was opened
                raise _link_refused(shown, fence) from None
            if exc.errno != errno.ENOTDIR:
                raise
            try:
                mode = os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise _link_refused(shown, fence) from None
            if not stat.S_ISDIR(mode):
                raise ActionError(f"{shown} is a file, not a folder; fix the path") from None
    raise PolicyError(
        f"{shown} keeps changing between a folder and something else while it is opened (a symbolic link "
        "swapped in and out?); under a path policy file actions refuse it",
        rule="paths",
    )


def remove_folders(folders: list[str], fence: tuple[str, ...] | None) -> None:
    """Remove the folders a step made (innermost first) if they are empty; others are left alone."""
    for folder in reversed(folders):
        try:
            with open_place(folder, fence) as place:
                os.rmdir(place.name, dir_fd=place.dir_fd)
        except (OSError, PolicyError, ActionError):
            break  # not empty (someone put files there), gone, or no longer reachable safely
