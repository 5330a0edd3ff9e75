"""Who an engine is: owner ids, machine keys, and whether an engine on this machine is alive.

An owner id is ``host|pid|start|machine|token``: the host name (for people),
the process id and its start time (so a recycled pid is not mistaken for the
old process), the *machine key* and a random token per engine.

The machine key is a hash of the boot id and the pid namespace.  Two
processes with the same key see the same process table, so one of them can
tell for sure that the other is dead (its pid is gone, or belongs to a newer
process) and take its workflows at once.  A host name is not enough: a
container with the host's network, a sidecar, or ``unshare --pid`` share the
host name but not the process table, and a live engine there would look dead.
Engines with another key are judged by their lease alone (and, on
PostgreSQL, by their session lock).  ``AIRT_MACHINE_ID`` replaces the key.

Imports nothing of airt_nb.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from dataclasses import dataclass

__all__ = [
    "MACHINE",
    "OwnerInfo",
    "describe_owner",
    "is_dead_local_owner",
    "machine_key",
    "make_owner_id",
    "parse_owner",
]

_HOST = socket.gethostname()


def machine_key() -> str:
    """A short hash of this boot and this pid namespace: equal only for processes that see each other."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = f"no-boot-id-{_HOST}"
    try:
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pidns = "no-pidns"
    return hashlib.sha256(f"{boot}/{pidns}".encode()).hexdigest()[:12]


# AIRT_MACHINE_ID overrides the key: processes given different ids treat each other as on other
# machines (only leases, and PostgreSQL's engine locks, tell whether they live); one id for
# containers that do share a process table.
MACHINE = os.environ.get("AIRT_MACHINE_ID", "").strip() or machine_key()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return data.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def make_owner_id(*, machine: str | None = None) -> str:
    """A new owner id for an engine of this process."""
    pid = os.getpid()
    return f"{_HOST}|{pid}|{_start_time(pid) or '-'}|{machine or MACHINE}|{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    host: str
    pid: int
    start: str
    machine: str | None


def parse_owner(owner: str) -> OwnerInfo | None:
    """The parts of an owner id (ids from before machine keys have none)."""
    parts = owner.split("|")
    if len(parts) not in (4, 5):
        return None
    try:
        pid = int(parts[1])
    except ValueError:
        return None
    return OwnerInfo(parts[0], pid, parts[2], parts[3] if len(parts) == 5 else None)


@functools.lru_cache(maxsize=256)  # recovery describes the same few engines for every workflow it adopts
def describe_owner(owner: str | None) -> str:
    """``"host pid 1234"`` for people."""
    info = parse_owner(owner) if owner else None
    return f"{info.host} pid {info.pid}" if info else (owner or "nobody")


def is_dead_local_owner(owner: str, *, machine: str | None = None) -> bool:
    """True only if ``owner`` is a process of this machine (same machine key) that no longer runs."""
    info = parse_owner(owner)
    if info is None or info.machine is None or info.machine != (machine or MACHINE):
        return False
    if info.pid == os.getpid():
        return False  # another engine in this very process is alive by definition
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, belongs to someone else
    fields = _stat_fields(info.pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):  # killed but not yet reaped by its parent
        return True
    # A different start time: the pid was recycled by a new process.
    return info.start != "-" and len(fields) > 19 and fields[19] != info.start
