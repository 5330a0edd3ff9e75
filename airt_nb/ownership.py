"""Who owns a workflow: owner ids, and whether an owner is still alive.

An owner id is ``host|pid|start|token``: the host name, the process id, the
process start time (so a recycled pid is not mistaken for the old process)
and a random token per engine.  A lease held by a dead process on this host
can be taken at once; a lease from another host only once it has expired.
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ["is_dead_local_owner", "make_owner_id", "parse_owner"]

_HOST = socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot, or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data.rsplit(")", 1)[-1].split()
    # fields[0] is the state (field 3); the start time is field 22.
    return fields[19] if len(fields) > 19 else None


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = data.rsplit(")", 1)[-1].split()
    return fields[0] if fields else None


def make_owner_id() -> str:
    pid = os.getpid()
    return f"{_HOST}|{pid}|{_start_time(pid) or '-'}|{secrets.token_hex(4)}"


def parse_owner(owner: str) -> tuple[str, int, str] | None:
    parts = owner.split("|")
    if len(parts) != 4:
        return None
    try:
        return parts[0], int(parts[1]), parts[2]
    except ValueError:
        return None


def is_dead_local_owner(owner: str) -> bool:
    """True only if ``owner`` is a process on this host that no longer runs."""
    parsed = parse_owner(owner)
    if parsed is None:
        return False
    host, pid, start = parsed
    if host != _HOST:
        return False
    if pid == os.getpid():
        return False  # another engine in this very process is alive by definition
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, belongs to someone else
    state = _state(pid)
    if state in ("Z", "X"):  # killed but not yet reaped by its parent
        return True
    if start != "-" and state is not None:
        current = _start_time(pid)
        if current is not None and current != start:
            return True  # the pid was recycled by a new process
    return False
