"""The statements of a write transaction about engines: registration, leases and wake-ups."""

from __future__ import annotations

from typing import Any

from .columns import PG_NOW
from .txbase import TxBase

__all__ = ["EngineWrites"]


class EngineWrites(TxBase):
    """Engine, lease and wake-up statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- engines, leases and wake-ups ------------------------------------------------------------

    def register_engine(self, row: dict[str, Any], ttl: float) -> None:
        """Record an engine that opened the database; its lease runs ``ttl`` seconds from now."""
        self.synchronous = True
        expires = _PG_LATER if self.dialect == "postgresql" else ":expires"
        now = PG_NOW if self.dialect == "postgresql" else ":now"
        params = {k: row.get(k) for k in _ENGINE_INSERT}
        if self.dialect == "postgresql":
            self._c.execute(
                "INSERT INTO engines (owner_id, machine, host, pid, session, workdir, user_name, takes_work, "
                f"started_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now}, {now}, {expires})",
                (*(params[k] for k in _ENGINE_INSERT[:8]), ttl),
            )
        else:
            self._c.execute(
                "INSERT INTO engines (owner_id, machine, host, pid, session, workdir, user_name, takes_work, "
                "started_at, heartbeat_at, expires_at) VALUES (:owner_id, :machine, :host, :pid, :session, "
                f":workdir, :user_name, :takes_work, {now}, {now}, {expires})",
                params,
            )

    def renew(self, owner: str, ttl: float, now: str) -> bool:
        """Extend ``owner``'s lease to ``ttl`` seconds from now (the database's clock on PostgreSQL).

        Returns False if another engine had marked it gone meanwhile (it was frozen longer
        than its lease): it is alive again from now on, but its workflows may run elsewhere.
        """
        self.synchronous = True
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""  # against a sweep marking it gone now
        row = self._c.execute(f"SELECT closed_at FROM engines WHERE owner_id = ?{lock}", (owner,)).fetchone()
        if self.dialect == "postgresql":
            self._c.execute(
                f"UPDATE engines SET heartbeat_at = {PG_NOW}, expires_at = {_PG_LATER}, closed_at = NULL "
                "WHERE owner_id = ?",
                (ttl, owner),
            )
        else:
            from ..timeutil import iso, to_epoch

            self._c.execute(
                "UPDATE engines SET heartbeat_at = ?, expires_at = ?, closed_at = NULL WHERE owner_id = ?",
                (now, iso(to_epoch(now) + ttl), owner),
            )
        return row is not None and row[0] is None

    def set_takes_work(self, owner: str, takes_work: bool) -> None:
        self.synchronous = True
        self._c.execute("UPDATE engines SET takes_work = ? WHERE owner_id = ?", (1 if takes_work else 0, owner))

    def close_engine(self, owner: str, now: str) -> None:
        """``owner`` closed (or was found dead): its workflows' home is gone from now on."""
        self.synchronous = True
        self._c.execute("UPDATE engines SET closed_at = ? WHERE owner_id = ? AND closed_at IS NULL", (now, owner))

    def prune_engines(self, before: str) -> None:
        """Forget engines gone before ``before`` that no workflow names as its home or owner."""
        self._c.execute(
            "DELETE FROM engines WHERE COALESCE(closed_at, expires_at) < ? AND NOT EXISTS "
            "(SELECT 1 FROM workflows w WHERE w.lease_owner = engines.owner_id) AND NOT EXISTS "
            "(SELECT 1 FROM workflows w WHERE w.home = engines.owner_id "
            "AND w.status IN ('RUNNING', 'ROLLING_BACK', 'PAUSED'))",
            (before,),
        )

    def wake(self, owner: str) -> None:
        """Wake the engine ``owner``: something it must act on changed (a decision, a request)."""
        if self.dialect == "postgresql":
            self._c.execute("SELECT pg_notify('airt', ?)", (owner,))
        else:
            self._c.execute("UPDATE engines SET wake = wake + 1 WHERE owner_id = ?", (owner,))

    def announce_work(self) -> None:
        """Tell every engine that a workflow nobody runs may be waiting to be taken up."""
        if self.dialect == "postgresql":
            self._c.execute("SELECT pg_notify('airt', '*')")
        else:
            self._c.execute("UPDATE airt_signals SET seq = seq + 1 WHERE name = 'work'")


_PG_LATER = (
    "to_char((clock_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => ?), "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')'
)

_ENGINE_INSERT = (
    "owner_id", "machine", "host", "pid", "session", "workdir", "user_name", "takes_work", "now", "expires",
)  # fmt: skip
