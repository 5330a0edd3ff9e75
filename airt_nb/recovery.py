"""Taking up workflows nobody runs: recovery at open, and the sweeps that follow.

A *sweep* does, in order:

1. acts on requests recorded for workflows this engine runs (a cancel or
   rollback asked for elsewhere; ``wake`` after a decision made elsewhere);
2. finds engines that are gone: closed, their lease expired, their process
   dead on this machine (same machine key, see :mod:`airt_nb.ownership`), or
   on PostgreSQL their session lock free; an engine found dead is marked
   closed, so that the grace period of :func:`~airt_nb.leases.should_take`
   counts from then;
3. claims, in small batches and no more than a fair share, the workflows
   whose lease is free or held by a gone engine and that the home rules give
   to this engine, and adopts them (one failing workflow never stops the
   sweep);
4. arms the timers of approval deadlines, reminders and escalations the
   database holds.

Sweeps run when another engine signals this one (a decision, a request, work
released), every ``poll_interval`` seconds otherwise, and at once when the
soonest lease of another engine runs out.

Talks to the engine only through :class:`RecoveryHost`; imports no engine.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .leases import Candidate, fair_share, should_take
from .ownership import describe_owner, is_dead_local_owner
from .timeutil import iso, to_epoch

if TYPE_CHECKING:
    from .actions import Registry
    from .execution import Execution
    from .store.protocol import Store
    from .store.records import EngineRecord
    from .store.writes import Tx

__all__ = ["Recovery", "RecoveryHost", "RecoverySummary"]

log = logging.getLogger("airt_nb")

BATCH = 64  # workflows claimed per transaction: a small batch lets other engines claim in between
FIRST_BATCH = 8


@dataclass
class RecoverySummary:
    """What :meth:`Engine.recover <airt_nb.Engine.recover>` found: workflow ids by what happened to them.

    ``resumed``: running again here; ``restored``: paused for an approval;
    ``waiting_for_event``: ``{id: step}`` paused on a ``wait_event`` step;
    ``waiting_for_action``: ``{id: action}`` waiting for a cell that defines
    the action; ``skipped``: ``{id: why}`` run by another live engine.

    Examples
    --------
    >>> import airt_nb
    >>> with airt_nb.Engine("airt.db") as eng:
    ...     print(eng.last_recovery)
    0 resumed, 0 waiting for approval
    """

    resumed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    waiting_for_action: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    waiting_for_event: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [
            f"{len(self.resumed)} resumed",
            f"{len(self.restored)} waiting for approval",
        ]
        if self.waiting_for_event:
            parts.append(f"{len(self.waiting_for_event)} waiting for an event")
        if self.waiting_for_action:
            parts.append(f"{len(self.waiting_for_action)} waiting for an action to be defined")
        if self.skipped:
            parts.append(f"{len(self.skipped)} run by another engine")
        return ", ".join(parts)


class RecoveryHost(Protocol):
    """What recovery needs from the engine."""

    @property
    def store(self) -> Store: ...

    @property
    def owner_id(self) -> str: ...

    @property
    def session(self) -> str: ...

    @property
    def home_grace(self) -> float: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def closing(self) -> bool: ...

    @property
    def takes_work(self) -> bool:
        """Whether this engine takes up workflows it did not start (``recover=True``)."""
        ...

    def execution(self, workflow_id: str) -> Execution | None:
        """The execution of a workflow this engine runs now."""
        ...

    def adopt(self, workflow_id: str, *, lost_from: str | None = None) -> str | None:
        """Continue a workflow this engine just claimed; returns what it waits for, if anything."""
        ...

    def adopt_many(self, adopted: list[tuple[str, str | None]]) -> dict[str, str | Exception | None]:
        """Continue workflows this engine just claimed, ``(workflow_id, lost_from)``; returns, by id,
        what each waits for (None: running) or the error that stopped it."""
        ...

    def apply_decisions(self, ex: Execution) -> None: ...

    def expire_at(self, approval_id: str, due: float) -> None:
        """Decide the approval as its ``on_timeout`` says at ``due`` (epoch seconds)."""
        ...

    def approval_timer_at(self, approval_id: str, kind: str, due: float) -> None:
        """Send the approval's reminder (``kind="remind"``) or escalation at ``due`` (epoch seconds)."""
        ...

    def expire_event_at(self, workflow_id: str, step_name: str, due: float) -> None:
        """Apply the ``on_timeout`` of a ``wait_event`` step still waiting at ``due`` (epoch seconds)."""
        ...


class Recovery:
    """The sweeps of one engine (see the module docstring)."""

    def __init__(self, host: RecoveryHost):
        self.host = host
        self.next_expiry: str | None = None  # soonest lease of another live engine holding work
        self._shared: set[str] = set()  # workflows this engine took from what nobody ran (fair claims)
        self._deadlines: set[str] = set()
        self._timers: dict[tuple[str, str], str] = {}  # (approval_id, kind) -> when it is armed for
        self._marked_dead: set[str] = set()
        self.more_work = False  # the last sweep left workflows for later (fair share, a busy database)
        # One sweep at a time: recover() called by hand must not race the housekeeping's sweep.
        self._lock = threading.Lock()

    # -- the parts of a sweep ------------------------------------------------------------------------

    def apply_requests(self) -> None:
        host = self.host
        for workflow_id, kind in host.store.requests_for(host.owner_id):
            ex = host.execution(workflow_id)
            if kind in ("cancel", "rollback"):
                # Stays recorded until the workflow finishes, so that a crash cannot forget it.
                if ex is not None and ex.stopping != kind and not ex.finishing:
                    ex.request_stop(kind, None, record=False)
                continue
            host.store.write(functools.partial(_clear_wake, workflow_id=workflow_id))
            if ex is not None:
                host.apply_decisions(ex)

    def gone_engines(self, now: str) -> tuple[dict[str, EngineRecord], set[str], set[str]]:
        """``(engines by id, ids of live engines, ids of gone engines that hold leases or homes)``."""
        host = self.host
        store = host.store
        engines = {e.owner_id: e for e in store.engines()}
        alive_db = store.engines_alive([o for o, e in engines.items() if not e.closed_at])
        live: set[str] = set()
        gone: set[str] = set()
        found_dead: list[str] = []
        for owner, e in engines.items():
            if owner == host.owner_id:
                live.add(owner)
                continue
            if e.closed_at:
                gone.add(owner)
            elif (
                (alive_db is not None and owner not in alive_db)
                or (alive_db is None and is_dead_local_owner(owner))
                or e.expires_at <= now
            ):
                gone.add(owner)
                found_dead.append(owner)
            else:
                live.add(owner)
        for holder in store.lease_holders():
            if holder not in engines:
                gone.add(holder)  # an engine the database no longer knows cannot renew anything
        for owner in found_dead:  # gone from now on, as the database will say
            engines[owner] = dataclasses.replace(engines[owner], closed_at=engines[owner].closed_at or now)
        fresh = [o for o in found_dead if o not in self._marked_dead]
        if fresh:
            # From now on its workflows' grace period runs (see leases.should_take).
            store.write(functools.partial(_close_engines, owners=fresh, now=now))
            self._marked_dead.update(fresh)
            for o in fresh:
                log.info("airt_nb: engine %s is gone", describe_owner(o))
        return engines, live, gone

    def candidates(self, engines: dict[str, EngineRecord], live: set[str], gone: set[str], now: str) -> list[Candidate]:
        """Workflows this engine should take up now, by the home rules."""
        host = self.host
        cutoff = iso(to_epoch(now) - host.home_grace)
        holders = [o for o in gone if o in set(host.store.lease_holders())]
        out: list[Candidate] = []
        no_folder: list[Candidate] = []
        folders: dict[str, bool] = {}  # most workflows share a few folders: one stat each
        for row in host.store.candidates(holders, limit=5000):
            c = Candidate(*row)
            if host.execution(c.workflow_id) is not None:
                continue
            if self.missing_action(c.waiting_for):
                continue
            home_alive = c.home in live if c.home else False
            if should_take(
                c,
                engines.get(c.home) if c.home else None,
                me=host.owner_id,
                session=host.session,
                now=now,
                grace_cutoff=cutoff,
                takes_work=host.takes_work,
                home_alive=home_alive,
            ):
                if c.workdir and c.workdir not in folders:
                    folders[c.workdir] = os.path.isdir(c.workdir)
                if c.workdir and not folders[c.workdir]:
                    no_folder.append(c)  # waits for an engine on a machine that has its folder
                else:
                    out.append(c)
            elif c.home and not home_alive:
                gone_at = engines[c.home].gone_at(now) if c.home in engines else None
                if gone_at:  # look again when its grace period ends
                    due = iso(to_epoch(gone_at) + host.home_grace)
                    self.next_expiry = min(self.next_expiry or due, due)
        self._show_missing_folders(no_folder)
        return out

    def _show_missing_folders(self, candidates: list[Candidate]) -> None:
        """Say on the workflow that it waits for its folder (once), so that people see why."""
        marks = [(c.workflow_id, f"folder {c.workdir}") for c in candidates if c.waiting_for != f"folder {c.workdir}"]
        if marks:
            self.host.store.write(functools.partial(_set_waiting, marks=marks))

    def missing_action(self, waiting_for: str | None) -> str | None:
        if waiting_for and waiting_for.startswith("action "):
            name = waiting_for[len("action ") :]
            if name not in self.host.registry:
                return name
        return None

    def claim(self, wanted: list[Candidate], gone: set[str], *, fair: bool, on_each: Callable[..., Any]) -> int:
        """Claim ``wanted`` in batches, adopt each batch, and call ``on_each(candidate, outcome)`` for each
        one taken (outcome: what it waits for, None, or the error that stopped it).

        With ``fair``, stop at this engine's fair share of what nobody runs, computed again before
        each batch: engines that start taking up work meanwhile get their part.
        """
        host = self.host
        store = host.store
        by_id = {c.workflow_id: c for c in wanted}
        ids = list(by_id)
        if fair and ids:
            # Engines sharing work start at different places in the list, not all at the oldest (where
            # they would only take what the others took first).
            start = zlib.crc32(host.owner_id.encode()) % len(ids)
            ids = ids[start:] + ids[:start]
        dead = sorted(gone)
        taken = 0
        index = 0
        total = store.count_unowned(dead) if fair and ids else 0
        backlog = self.backlog() if fair and ids else 0
        while index < len(ids) and not host.closing:
            room = len(ids) - index
            if fair:
                share, takers = self.fair_share(total, dead)
                # With others to share with, what this engine still runs of its earlier share counts
                # against this one: the rest goes to the engines that are free, not the first to sweep.
                room = min(room, share - taken - (backlog if takers > 1 else 0))
                if room <= 0:
                    self.more_work = True
                    break
            # The first batch small, so that the first workflow resumes after a few adoptions, not 64.
            chunk = ids[index : index + min(BATCH if index else FIRST_BATCH, room)]
            index += len(chunk)
            now = store.now()
            got = store.write(functools.partial(_claim, owner=host.owner_id, ids=chunk, dead=dead, now=now))
            taken += len(got)
            if fair:
                self._shared.update(got)
            if fair and len(got) < len(chunk):
                # Another engine claimed some of these first: it is sharing the same work now, so look
                # again soon (a fresh list) rather than at the slow poll, or it ends up with all of it.
                self.more_work = True
            outcomes = host.adopt_many([(w, self._lost_from(by_id[w])) for w in got])
            for workflow_id in got:
                on_each(by_id[workflow_id], outcomes.get(workflow_id))
        return taken

    def _split(self, wanted: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
        """``(this engine's or this notebook's own, the others)``: only the others are shared out."""
        me, session = self.host.owner_id, self.host.session
        own = [c for c in wanted if c.home == me or (c.session is not None and c.session == session)]
        mine = {c.workflow_id for c in own}
        return own, [c for c in wanted if c.workflow_id not in mine]

    def fair_share(self, total: int, dead: list[str]) -> tuple[int, int]:
        """``(this engine's part of the total workflows nobody ran when the sweep began, the live
        engines that take up work now)`` (asked again before each batch)."""
        store = self.host.store
        takers = sum(1 for e in store.engines(alive_at=store.now()) if e.takes_work and e.owner_id not in dead)
        return fair_share(total, max(takers, 1)), takers

    def backlog(self) -> int:
        """How many of the workflows this engine took from the shared pool it is still running."""
        running = set()
        for workflow_id in self._shared:
            ex = self.host.execution(workflow_id)
            if ex is not None and ex.status in ("RUNNING", "ROLLING_BACK"):
                running.add(workflow_id)
        self._shared = running
        return len(running)

    def arm_deadlines(self) -> None:
        """Arm the timers the database holds: every pending approval's deadline, reminder and
        escalation, and the deadlines of steps waiting for events."""
        for approval_id, _workflow_id, deadline in self.host.store.pending_deadlines():
            if approval_id not in self._deadlines:
                self._deadlines.add(approval_id)
                self.host.expire_at(approval_id, to_epoch(deadline))
        for approval_id, kind, due in self.host.store.approval_timers():
            if self._timers.get((approval_id, kind)) != due:
                self._timers[(approval_id, kind)] = due
                self.host.approval_timer_at(approval_id, kind, to_epoch(due))
        for workflow_id, step_name, deadline in self.host.store.event_deadlines():
            if f"{workflow_id}/{step_name}" not in self._deadlines:
                self.host.expire_event_at(workflow_id, step_name, to_epoch(deadline))

    def forget_deadline(self, key: str) -> None:
        self._deadlines.discard(key)

    def note_timer(self, approval_id: str, kind: str, due: str) -> None:
        self._timers[(approval_id, kind)] = due

    def forget_timer(self, approval_id: str, kind: str) -> None:
        self._timers.pop((approval_id, kind), None)

    def note_deadline(self, key: str) -> bool:
        """Remember that the timer of ``key`` (an approval id, or ``workflow_id/step_name``) is armed;
        False if it was already."""
        if key in self._deadlines:
            return False
        self._deadlines.add(key)
        return True

    # -- sweeps ---------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Requests, gone engines, claims, deadlines (see the module docstring)."""
        with self._lock:
            self._sweep()

    def _sweep(self) -> None:
        host = self.host
        if host.closing:
            return
        self.apply_requests()
        now = host.store.now()
        self.next_expiry = None
        engines, live, gone = self.gone_engines(now)
        self.more_work = False
        if host.takes_work:  # an engine that takes no work (yet) has nothing to look for
            wanted = self.candidates(engines, live, gone, now)
            own, others = self._split(wanted)
            self.claim(own, gone, fair=False, on_each=_ignore)
            self.claim(others, gone, fair=True, on_each=_ignore)
        self._next_lease_expiry(engines, live, now)
        self.arm_deadlines()

    @staticmethod
    def _lost_from(c: Candidate) -> str | None:
        return describe_owner(c.lease_owner) if c.lease_owner else None

    def _next_lease_expiry(self, engines: dict[str, EngineRecord], live: set[str], now: str) -> None:
        """A frozen engine stops renewing without changing the database: look again when it runs out."""
        holders = set(self.host.store.lease_holders())
        for owner in live & holders:
            e = engines.get(owner)
            if owner != self.host.owner_id and e is not None and e.expires_at > now:
                self.next_expiry = min(self.next_expiry or e.expires_at, e.expires_at)

    def recover(self, before: Callable[[], None] | None = None) -> RecoverySummary:
        """Take up everything this engine should take up now, and say what was found.

        ``before`` runs first, with sweeps held off (the engine starts taking up work there).
        """
        with self._lock:
            if before is not None:
                before()
            return self._recover()

    def _recover(self) -> RecoverySummary:
        host = self.host
        store = host.store
        summary = RecoverySummary()
        now = store.now()
        engines, live, gone = self.gone_engines(now)
        takeable = self.candidates(engines, live, gone, now)

        def adopted(c: Candidate, waiting: str | Exception | None) -> None:
            if isinstance(waiting, Exception):  # one bad workflow never stops the sweep
                summary.skipped[c.workflow_id] = f"error: {waiting}"
                return
            if waiting:
                summary.waiting_for_action[c.workflow_id] = waiting
            else:
                summary.resumed.append(c.workflow_id)

        self.more_work = False
        own, others = self._split(takeable)
        self.claim(own, gone, fair=False, on_each=adopted)
        self.claim(others, gone, fair=host.takes_work, on_each=adopted)
        # What is left, for the summary, read afterwards: the first workflows resume without waiting for it.
        holders = [o for o in gone if o in set(store.lease_holders())]
        wanted: list[Candidate] = []
        for row in store.candidates(holders, limit=1_000_000):
            c = Candidate(*row)
            missing = self.missing_action(c.waiting_for)
            if missing:
                summary.waiting_for_action[c.workflow_id] = missing
                continue
            wanted.append(c)
        wanted_ids = {c.workflow_id for c in wanted}
        takeable_ids = {c.workflow_id for c in takeable}
        for c in wanted:
            if c.workflow_id not in takeable_ids:
                home = describe_owner(c.home) if c.home else "another engine"
                why = (
                    f"its folder {c.workdir} is not on this machine"
                    if c.workdir and not os.path.isdir(c.workdir)
                    else f"left to its home ({home}) for now"
                )
                summary.skipped[c.workflow_id] = why
        resumed = set(summary.resumed)
        for c in takeable:
            if c.workflow_id in resumed or c.workflow_id in summary.waiting_for_action:
                continue
            if host.execution(c.workflow_id) is not None:
                summary.resumed.append(c.workflow_id)  # this engine's housekeeping took it meanwhile
            else:
                summary.skipped.setdefault(c.workflow_id, "taken by another engine")
        for workflow_id, _ in store.paused_with_pending():
            if workflow_id not in summary.restored:
                summary.restored.append(workflow_id)
        for workflow_id, step_name in store.paused_on_events():
            summary.waiting_for_event.setdefault(workflow_id, step_name)
        for owner in live - {host.owner_id}:
            for workflow_id, _status in store.owned_by(owner):
                if workflow_id not in wanted_ids:
                    summary.skipped.setdefault(workflow_id, f"running in {describe_owner(owner)}")
        self._next_lease_expiry(engines, live, now)
        self.arm_deadlines()
        return summary


def _ignore(candidate: Candidate, outcome: object) -> None:
    pass


def _set_waiting(tx: Tx, *, marks: list[tuple[str, str]]) -> None:
    for workflow_id, what in marks:
        tx.set_waiting_for(workflow_id, what)


def _clear_wake(tx: Tx, *, workflow_id: str) -> None:
    tx.clear_request(workflow_id, "wake")


def _close_engines(tx: Tx, *, owners: list[str], now: str) -> None:
    for owner in owners:
        tx.close_engine(owner, now)


def _claim(tx: Tx, *, owner: str, ids: list[str], dead: list[str], now: str) -> list[str]:
    return tx.claim(owner, ids, dead, now)
