"""The statements of a write transaction about forks, child workflows, sent events and schedules."""

from __future__ import annotations

from typing import Any

from .txbase import TxBase

__all__ = ["EventWrites"]


class EventWrites(TxBase):
    """Fork, child, event and schedule statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- forks, children, events, schedules ------------------------------------------------------

    def step_status(self, workflow_id: str, step_name: str) -> str | None:
        """A step's status, read in the transaction."""
        row = self._c.execute(
            "SELECT status FROM workflow_steps WHERE workflow_id = ? AND step_name = ?", (workflow_id, step_name)
        ).fetchone()
        return row[0] if row else None

    def set_step_inputs(self, workflow_id: str, step_name: str, inputs: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET inputs = ? WHERE workflow_id = ? AND step_name = ?",
            (inputs, workflow_id, step_name),
        )

    def end_wait(
        self, workflow_id: str, step_name: str, status: str, now: str, outputs: str | None, error: str | None
    ) -> None:
        """End a waiting step (its inputs stay): ``COMPLETED`` with outputs, or ``FAILED`` with an error."""
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, finished_at = ?, outputs = ?, error = ?, next_attempt_at = NULL "
            "WHERE workflow_id = ? AND step_name = ?",
            (status, now, outputs, error, workflow_id, step_name),
        )

    def carry_step(
        self,
        workflow_id: str,
        step_name: str,
        source: tuple[Any, ...],
    ) -> None:
        """Give a fork's step what the original's step recorded: ``(status, attempt, started_at,
        finished_at, inputs, outputs, fingerprint, state)``."""
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, attempt = ?, started_at = ?, finished_at = ?, inputs = ?, "
            "outputs = ?, fingerprint = ?, state = ? WHERE workflow_id = ? AND step_name = ?",
            (*source, workflow_id, step_name),
        )

    def carry_compensation(self, workflow_id: str, row: tuple[Any, ...], origin: str, now: str) -> None:
        """Copy an intent into a fork: ``(step_name, action, inputs, outputs, state)``; ``origin`` is the
        workflow whose step did what it undoes."""
        self._c.execute(
            "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
            "created_at, origin) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)",
            (workflow_id, *row, now, origin),
        )

    def mark_carried(self, compensation_id: int, note: str, now: str) -> None:
        """The intent now belongs to a fork: this workflow's rollback no longer runs it."""
        self._c.execute(
            "UPDATE compensation_log SET status = 'CARRIED', note = ?, executed_at = ? "
            "WHERE compensation_id = ? AND status = 'PENDING'",
            (note, now, compensation_id),
        )

    def wait_event_step(self, workflow_id: str, step_name: str, now: str, deadline: str | None) -> None:
        """A ``wait_event`` step starts waiting; its deadline (if any) is kept in ``next_attempt_at``."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', started_at = ?, attempt = 1, next_attempt_at = ? "
            "WHERE workflow_id = ? AND step_name = ?",
            (now, deadline, workflow_id, step_name),
        )

    def insert_sent_event(self, row: dict[str, Any]) -> int | None:
        """Record an event sent to a workflow; ``None`` if one of that name was sent before (first wins)."""
        found = self._c.execute(
            "INSERT INTO sent_events (workflow_id, event, payload, status, sent_at, sent_by, auth) "
            "VALUES (:workflow_id, :event, :payload, 'PENDING', :sent_at, :sent_by, :auth) "
            "ON CONFLICT (workflow_id, event) DO NOTHING RETURNING event_id",
            {k: row.get(k) for k in ("workflow_id", "event", "payload", "sent_at", "sent_by", "auth")},
        ).fetchone()
        return int(found[0]) if found else None

    def pending_event(self, workflow_id: str, event: str) -> tuple[int, str | None] | None:
        """``(event_id, payload)`` of the event of that name sent and not yet received."""
        row = self._c.execute(
            "SELECT event_id, payload FROM sent_events WHERE workflow_id = ? AND event = ? AND status = 'PENDING'",
            (workflow_id, event),
        ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def receive_event(self, event_id: int, step_name: str, now: str) -> None:
        self._c.execute(
            "UPDATE sent_events SET status = 'RECEIVED', step_name = ?, received_at = ? WHERE event_id = ?",
            (step_name, now, event_id),
        )

    def insert_spec(self, spec_hash: str, spec: str) -> None:
        self._c.execute(
            "INSERT INTO workflow_specs (spec_hash, spec) VALUES (?, ?) ON CONFLICT DO NOTHING", (spec_hash, spec)
        )

    def insert_schedule(self, row: dict[str, Any]) -> None:
        self._c.execute(
            "INSERT INTO schedules (schedule_id, name, cron, timezone, spec_hash, inputs, workdir, created_at, "
            "created_by, next_fire_at) VALUES (:schedule_id, :name, :cron, :timezone, :spec_hash, :inputs, "
            ":workdir, :created_at, :created_by, :next_fire_at)",
            {k: row.get(k) for k in _SCHEDULE_INSERT},
        )

    def delete_schedule(self, schedule_id: str) -> bool:
        return (
            self._c.execute(  # type: ignore[no-any-return]
                "DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,)
            ).rowcount
            == 1
        )

    def claim_firing(self, schedule_id: str, due: str, slot: str, next_fire_at: str, row: dict[str, Any]) -> bool:
        """Claim the firing of ``slot`` for this engine: True for one engine only, however many ask.

        The schedule moves on to ``next_fire_at`` only if it still waits for ``due`` (another engine
        that fired first moved it already); the firing's row, keyed by ``(schedule_id, slot)``, is
        the claim, so a slot is never fired twice even if a schedule came back to it.
        """
        moved = self._c.execute(
            "UPDATE schedules SET next_fire_at = ?, last_fired_at = ?, last_workflow_id = ? "
            "WHERE schedule_id = ? AND next_fire_at = ?",
            (next_fire_at, slot, row["workflow_id"], schedule_id, due),
        ).rowcount
        if moved != 1:
            return False
        claimed = self._c.execute(
            "INSERT INTO schedule_firings (schedule_id, slot, workflow_id, fired_at, fired_by, missed) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING slot",
            (schedule_id, slot, row["workflow_id"], row["fired_at"], row["fired_by"], row["missed"]),
        ).fetchone()
        return claimed is not None

    def skip_schedule(self, schedule_id: str, due: str, next_fire_at: str) -> None:
        """Move a schedule past a slot without firing (its slot was claimed by another engine)."""
        self._c.execute(
            "UPDATE schedules SET next_fire_at = ? WHERE schedule_id = ? AND next_fire_at = ?",
            (next_fire_at, schedule_id, due),
        )


_SCHEDULE_INSERT = (
    "schedule_id", "name", "cron", "timezone", "spec_hash", "inputs", "workdir", "created_at", "created_by",
    "next_fire_at",
)  # fmt: skip
