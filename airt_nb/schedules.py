"""Schedules: workflows started on a cron expression, fired by ``airt worker``.

``Engine.schedule(spec, cron="0 6 * * 1", inputs=...)`` (or ``airt schedule
add SPEC.yaml --cron ...``) records a schedule: the spec (stored once, like
any run's), its inputs, a working directory, a time zone, and the next time
it fires.  An engine that runs schedules (``airt worker``) calls
:meth:`Scheduler.tick` every second or so; each due schedule fires in one
transaction that

1. moves the schedule to its next slot, but only if it still waits for the
   slot this engine saw (another worker that fired first moved it already),
2. inserts the firing's row, keyed by ``(schedule_id, slot)``: the claim,
   which a second worker can never insert again, and
3. records the new workflow, ``RUNNING`` with no owner, for any engine
   that takes up work (the worker itself, at once) to run.

So a slot fires exactly once however many workers race for it, and a
worker that dies after the commit leaves a workflow that any engine
recovers.

**Missed slots** (no worker ran when they came): a schedule fires once, for
the latest slot that has passed, never a burst; the firing records how many
earlier slots it skipped (``missed``) and the run's history says so.  The
next slot is the first one after now.

Cron expressions have five fields (minute hour day month weekday), or six
with seconds last, read by croniter in the schedule's time zone (default
UTC; ``0 6 * * 1`` in ``Europe/Paris`` is 06:00 Paris time, summer and
winter).

The worker's loop (``airt worker``) lives in the command line; this module
is what it calls.  Imports no engine, IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import NotFoundError, SpecError
from .plan import Plan
from .spec import WorkflowSpec
from .timeutil import iso, to_epoch

if TYPE_CHECKING:
    from .engine import Engine
    from .store.records import ScheduleRecord
    from .store.writes import Tx

__all__ = [
    "MAX_MISSED_COUNTED",
    "Scheduler",
    "add",
    "check_cron",
    "check_timezone",
    "next_slot",
    "remove",
    "slots_between",
]

log = logging.getLogger("airt_nb")

MAX_MISSED_COUNTED = 10_000  # slots counted one by one after a downtime; past that, the latest is looked up


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        shown = name if len(name) <= 80 else f"{name[:77]}..."
        raise SpecError([(None, "timezone", f"unknown time zone {shown!r}; use e.g. UTC or Europe/Paris")]) from None


def check_timezone(timezone: str) -> Any:
    """The time zone named ``timezone``, or :class:`~airt_nb.SpecError` saying it is not one.

    >>> check_timezone("Europe/Paris")
    zoneinfo.ZoneInfo(key='Europe/Paris')
    """
    if not isinstance(timezone, str):
        raise SpecError([(None, "timezone", f"a time zone is a name such as UTC or Europe/Paris, not {timezone!r}")])
    return _zone(timezone)


def check_cron(cron: str, timezone: str = "UTC") -> None:
    """Raise :class:`~airt_nb.SpecError` unless ``cron`` is a cron expression croniter reads.

    >>> check_cron("0 6 * * 1")
    >>> check_cron("at six")
    Traceback (most recent call last):
    ...
    airt_nb.errors.SpecError: invalid workflow spec: cron: 'at six' is not a cron expression; use five fields (minute hour day month weekday), e.g. '0 6 * * 1' for 06:00 on Mondays, or six with seconds last
    """
    from croniter import CroniterError, croniter

    fields = cron.split() if isinstance(cron, str) else []
    if len(fields) not in (5, 6) or not croniter.is_valid(" ".join(fields)):
        raise SpecError(
            [(None, "cron", f"{cron!r} is not a cron expression; use five fields (minute hour day month weekday), "
              "e.g. '0 6 * * 1' for 06:00 on Mondays, or six with seconds last")]
        )  # fmt: skip
    zone = check_timezone(timezone)
    try:
        croniter(" ".join(fields), datetime.now(zone)).get_next(datetime)
    except CroniterError:  # e.g. '0 0 31 2 *': the 31st of February
        raise SpecError(
            [(None, "cron", f"{cron!r} never fires (no date matches its day and month); check those fields")]
        ) from None


def next_slot(cron: str, timezone: str, after: str) -> str:
    """The first slot of ``cron`` strictly after ``after`` (ISO UTC text), as ISO UTC text.

    >>> next_slot("0 6 * * 1", "UTC", "2025-01-06T06:00:00+00:00")
    '2025-01-13T06:00:00.000000+00:00'
    """
    from croniter import croniter

    start = datetime.fromtimestamp(to_epoch(after), UTC).astimezone(_zone(timezone))
    found = croniter(cron, start).get_next(datetime)
    return iso(found.timestamp())


def slots_between(cron: str, timezone: str, due: str, now: str) -> tuple[str, int]:
    """``(latest slot at or before now, slots skipped before it)``, ``due`` being the first slot not fired."""
    latest, missed, slot = due, 0, due
    for _ in range(MAX_MISSED_COUNTED):
        following = next_slot(cron, timezone, slot)
        if following > now:
            return latest, missed
        missed += 1
        latest = slot = following
    from croniter import croniter

    anchor = datetime.fromtimestamp(to_epoch(now), UTC).astimezone(_zone(timezone)) + timedelta(microseconds=1)
    return iso(croniter(cron, anchor).get_prev(datetime).timestamp()), missed


# -- adding and removing ----------------------------------------------------------------------------------


def add(
    engine: Any, plan: Plan, cron: str, merged: dict[str, Any], *, timezone: str, folder: str, actor: str
) -> ScheduleRecord:
    """Record a schedule of ``plan`` (checked by :meth:`airt_nb.Engine.schedule`); returns it."""
    check_cron(cron, timezone)
    store = engine.store
    now = store.now()
    schedule_id = uuid.uuid4().hex[:12]
    row = {
        "schedule_id": schedule_id,
        "name": plan.spec.name,
        "cron": " ".join(cron.split()),
        "timezone": timezone,
        "spec_hash": plan.spec_hash,
        "inputs": json.dumps(merged),
        "workdir": folder,
        "created_at": now,
        "created_by": actor,
        "next_fire_at": next_slot(cron, timezone, now),
    }

    def op(tx: Tx) -> None:
        tx.insert_spec(plan.spec_hash, plan.spec_json)
        tx.insert_schedule(row)

    store.write(op)
    return store.schedules(schedule_id=schedule_id)[0]  # type: ignore[no-any-return]


def remove(engine: Engine, schedule_id: str) -> None:
    """What :meth:`airt_nb.Engine.unschedule` does."""
    found = [s for s in engine.store.schedules() if s.schedule_id.startswith(schedule_id)] if schedule_id else []
    if len(found) != 1:
        what = "schedule" if not found else "unique schedule with the prefix"
        raise NotFoundError(what, schedule_id, db=engine.db)
    target = found[0].schedule_id
    engine.store.write(lambda tx: tx.delete_schedule(target))


# -- firing -------------------------------------------------------------------------------------------------


class Scheduler:
    """Fires the due schedules of one engine's database; ``airt worker`` calls :meth:`tick` each second.

    >>> scheduler = Scheduler(engine)          # doctest: +SKIP
    >>> scheduler.tick()                       # doctest: +SKIP
    ['0c3f...']
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def tick(self) -> list[str]:
        """Fire every schedule that is due now (each slot once, whoever else ticks); returns the ids of
        the workflows this call started."""
        store = self.engine.store
        now = store.now()
        started: list[str] = []
        for schedule in store.due_schedules(now):
            try:
                workflow_id = self._fire(schedule, now)
            except Exception:  # one broken schedule never stops the others
                log.exception("schedule %s (%s) could not fire", schedule.schedule_id, schedule.name)
                continue
            if workflow_id:
                started.append(workflow_id)
        return started

    def _fire(self, schedule: ScheduleRecord, now: str) -> str | None:
        engine, store = self.engine, self.engine.store
        slot, missed = slots_between(schedule.cron, schedule.timezone, schedule.next_fire_at, now)
        following = next_slot(schedule.cron, schedule.timezone, now)
        spec_text = store.spec_text(schedule.spec_hash)
        if spec_text is None:
            raise NotFoundError("spec of schedule", schedule.schedule_id, db=engine.db)
        plan = Plan.compile(WorkflowSpec.model_validate_json(spec_text))  # a slot fires once: nothing to cache
        workflow_id = uuid.uuid4().hex[:16]
        fired = iso(to_epoch(now))
        row = {
            "workflow_id": workflow_id,
            "name": plan.spec.name,
            "status": "RUNNING",
            "spec": plan.spec_json,
            "spec_hash": plan.spec_hash,
            "inputs": schedule.inputs,
            "created_at": fired,
            "updated_at": fired,
            "started_by": schedule.created_by,
            "total_steps": len(plan.steps),
            "lease_owner": None,  # whichever engine takes up work runs it (one that has its actions)
            "workdir": schedule.workdir,
            "session": None,
        }
        step_rows = [(s.name, s.index, s.type, s.action) for s in plan.steps]
        skipped = f"; {missed} earlier slot{'s' * (missed != 1)} missed while no worker ran" if missed else ""
        detail = f"by schedule {schedule.schedule_id} ({schedule.cron}) for {slot}{skipped}"
        firing = {"workflow_id": workflow_id, "fired_at": fired, "fired_by": engine.owner_id, "missed": missed}

        def op(tx: Tx) -> bool:
            if not tx.claim_firing(schedule.schedule_id, schedule.next_fire_at, slot, following, firing):
                return False  # another worker fired it first
            tx.insert_workflow(row)
            tx.insert_steps(workflow_id, step_rows)
            tx.add_event(workflow_id, fired, "started", schedule.created_by, detail)
            tx.announce_work()
            return True

        if not store.write(op):
            return None
        log.info("schedule %s fired workflow %s for %s%s", schedule.schedule_id, workflow_id, slot, skipped)
        return workflow_id
