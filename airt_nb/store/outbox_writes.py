"""The statements of a write transaction about webhook deliveries, the audit log and run history."""

from __future__ import annotations

from typing import Any

from .txbase import TxBase

__all__ = ["OutboxWrites"]


class OutboxWrites(TxBase):
    """Webhook, audit and history statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- webhooks and audit -------------------------------------------------------------------

    def insert_delivery(self, row: dict[str, Any]) -> None:
        """Queue a webhook delivery (the outbox row) to ``row["url"]``."""
        self._c.execute(
            "INSERT INTO webhook_deliveries (delivery_id, approval_id, workflow_id, event, payload, status, "
            "created_at, next_attempt_at, url) VALUES (:delivery_id, :approval_id, :workflow_id, :event, :payload, "
            "'PENDING', :created_at, :created_at, :url)",
            {"url": row.get("url"), **{k: row[k] for k in _DELIVERY_INSERT}},
        )

    def delivery_urls(self, approval_id: str) -> list[str]:
        """The webhook URLs an approval's earlier events were queued for (its decision goes there too)."""
        rows = self._c.execute(
            "SELECT DISTINCT url FROM webhook_deliveries WHERE approval_id = ? AND url IS NOT NULL ORDER BY url",
            (approval_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def first_payload(self, approval_id: str) -> str | None:
        """The payload of the first event queued about an approval (its request), or None."""
        row = self._c.execute(
            "SELECT payload FROM webhook_deliveries WHERE approval_id = ? ORDER BY created_at, seq LIMIT 1",
            (approval_id,),
        ).fetchone()
        return row[0] if row else None

    def claim_delivery(self, delivery_id: str, now: str, hold_until: str) -> bool:
        """Reserve a due delivery for one sender (others skip it until ``hold_until``)."""
        cur = self._c.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE delivery_id = ? "
            "AND status IN ('PENDING', 'RETRYING') AND next_attempt_at <= ?",
            (hold_until, delivery_id, now),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def record_delivery_attempt(
        self,
        delivery_id: str,
        status: str,
        now: str,
        next_attempt_at: str | None,
        http_status: int | None,
        error: str | None,
        *,
        started_at: str | None = None,
    ) -> None:
        """Record one attempt's outcome: the delivery's new status and a row in ``webhook_attempts``."""
        self._c.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "next_attempt_at = ?, last_status = ?, last_error = ?, "
            "delivered_at = CASE WHEN ? = 'DELIVERED' THEN ? ELSE delivered_at END WHERE delivery_id = ?",
            (status, now, next_attempt_at, http_status, error, status, now, delivery_id),
        )
        self._c.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at, outcome, http_status, "
            "error) SELECT delivery_id, attempts, ?, ?, ?, ?, ? FROM webhook_deliveries WHERE delivery_id = ? "
            "ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, "
            "finished_at = excluded.finished_at, outcome = excluded.outcome, http_status = excluded.http_status, "
            "error = excluded.error",
            (started_at or now, now, status, http_status, error, delivery_id),
        )

    def insert_audit(self, row: dict[str, Any]) -> None:
        self._c.execute(
            'INSERT INTO audit_log (at, "user", roles, event, decision, rule, workflow_id, step_name, action, '
            "target, detail) VALUES (:at, :user, :roles, :event, :decision, :rule, :workflow_id, :step_name, "
            ":action, :target, :detail)",
            {k: row.get(k) for k in _AUDIT_INSERT},
        )

    def add_event(
        self, workflow_id: str, at: str, event: str, by: str | None = None, detail: str | None = None
    ) -> None:
        """One entry of the workflow's history (``history()`` frame)."""
        self._c.execute(
            "INSERT INTO workflow_events (workflow_id, at, event, by, detail) VALUES (?, ?, ?, ?, ?)",
            (workflow_id, at, event, by, detail),
        )


_DELIVERY_INSERT = ("delivery_id", "approval_id", "workflow_id", "event", "payload", "created_at")

_AUDIT_INSERT = (
    "at", "user", "roles", "event", "decision", "rule", "workflow_id", "step_name", "action", "target", "detail",
)  # fmt: skip
