"""Signed approval webhooks: an outbox in the database, delivered with httpx.

When an approval is requested or decided, the engine writes a delivery row
in the *same* transaction (the outbox).  After the commit, a background
thread POSTs it: JSON body, ``X-Airt-Signature-256: sha256=<hex>`` (HMAC-SHA256
of the raw body with ``AIRT_WEBHOOK_SECRET``), ``X-Airt-Delivery`` and
``X-Airt-Timestamp`` (both also in the body, so they are signed).  Failures
are retried with exponential back-off; every attempt's outcome is recorded.
A receiver that is down, slow or broken never blocks a workflow or a
decision, and a delivery left undone by a crash is sent by the next engine.

Receivers verify with :func:`verify`::

    from airt_nb.webhooks import verify
    if not verify(request.body, request.headers["X-Airt-Signature-256"], SECRET):
        return 401

This is the only module that imports httpx (lazily, in the sender thread).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .timeutil import iso, now_iso

if TYPE_CHECKING:
    from .store.records import DeliveryRecord
    from .store.sqlite import SQLiteStore

__all__ = ["SIGNATURE_HEADER", "WebhookSender", "sign", "verify"]

log = logging.getLogger("airt_nb.webhooks")

SIGNATURE_HEADER = "X-Airt-Signature-256"
DELIVERY_HEADER = "X-Airt-Delivery"
TIMESTAMP_HEADER = "X-Airt-Timestamp"


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(body: bytes | str, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the valid signature of the raw ``body`` (constant-time).

    >>> verify(b"{}", sign(b"{}", "s3cret"), "s3cret")
    True
    >>> verify(b"{ }", sign(b"{}", "s3cret"), "s3cret")
    False
    """
    if not header or not secret:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    return hmac.compare_digest(sign(raw, secret).encode(), header.strip().encode())


class WebhookSender:
    """Delivers the outbox of one database to one URL, on a daemon thread."""

    def __init__(
        self,
        store: SQLiteStore,
        url: str,
        secret: str | None,
        *,
        timeout: float = 5.0,
        max_attempts: int = 8,
        initial_delay: float = 1.0,
        max_delay: float = 300.0,
    ):
        self.store = store
        self.url = url
        self.secret = secret or ""
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self._cv = threading.Condition()
        self._stopped = False
        self._kicked = True
        self._thread = threading.Thread(target=self._loop, name="airt-webhooks", daemon=True)
        self._client: Any = None

    # -- building -----------------------------------------------------------------------

    @staticmethod
    def row(event: str, approval: dict[str, Any], workflow_name: str) -> dict[str, Any]:
        """An outbox row for ``event`` about ``approval`` (a dict of approval columns)."""
        payload = {
            "event": event,
            "workflow_id": approval["workflow_id"],
            "workflow_name": workflow_name,
            "approval": {
                "approval_id": approval["approval_id"],
                "step_name": approval["step_name"],
                "status": approval.get("status", "PENDING"),
                "message": approval.get("message"),
                "approvers": _json(approval.get("approvers")) or [],
                "context": _json(approval.get("context")),
                "requested_at": approval.get("requested_at"),
                "deadline": approval.get("deadline"),
                "decided_at": approval.get("decided_at"),
                "decided_by": approval.get("decided_by"),
                "reason": approval.get("reason"),
            },
        }
        return {
            "delivery_id": uuid.uuid4().hex,
            "approval_id": approval["approval_id"],
            "workflow_id": approval["workflow_id"],
            "event": event,
            "payload": json.dumps(payload, default=str),
            "created_at": now_iso(),
        }

    def body_for(self, delivery: DeliveryRecord, timestamp: str) -> bytes:
        payload = json.loads(delivery.payload)
        payload["delivery_id"] = delivery.delivery_id
        payload["timestamp"] = timestamp
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        with self._cv:
            self._kicked = True
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 1)
        if self._client is not None:
            self._client.close()

    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._stopped:
                    return
                if not self._kicked:
                    self._cv.wait(self._next_wait())
                if self._stopped:
                    return
                self._kicked = False
            try:
                self.deliver_due()
            except Exception:
                log.exception("webhook delivery sweep failed; retrying later")
                with self._cv:
                    self._cv.wait(1.0)

    def _next_wait(self) -> float:
        try:
            nxt = self.store.next_delivery_time()
        except Exception:
            return 5.0
        if nxt is None:
            return 30.0
        from .timeutil import to_epoch

        return max(0.0, min(30.0, to_epoch(nxt) - time.time()))

    def deliver_due(self) -> int:
        """Send every delivery that is due now; returns how many were attempted."""
        sent = 0
        for delivery in self.store.due_deliveries(now_iso()):
            if self._stopped:
                break
            if not self._claim(delivery):
                continue  # another engine is sending it
            self._send(delivery)
            sent += 1
        return sent

    def _claim(self, delivery: DeliveryRecord) -> bool:
        hold = iso(time.time() + self.timeout + 5)
        return self.store.write(lambda tx: tx.claim_delivery(delivery.delivery_id, now_iso(), hold))

    def _send(self, delivery: DeliveryRecord) -> None:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0)))
        timestamp = now_iso()
        body = self.body_for(delivery, timestamp)
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: timestamp,
            "User-Agent": "airt_nb-webhook",
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        status_code: int | None = None
        error: str | None = None
        try:
            response = self._client.post(self.url, content=body, headers=headers)
            status_code = response.status_code
            if not response.is_success:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = delivery.attempts + 1
        now = now_iso()
        if error is None:
            status, next_at = "DELIVERED", None
        elif attempts >= self.max_attempts:
            status, next_at = "FAILED", None
            log.warning(
                "webhook %s to %s failed for good after %d attempts: %s", delivery.event, self.url, attempts, error
            )
        else:
            delay = min(self.initial_delay * 2 ** (attempts - 1), self.max_delay) * random.uniform(0.8, 1.2)
            status, next_at = "RETRYING", iso(time.time() + delay)
        self.store.write(
            lambda tx: tx.record_delivery_attempt(delivery.delivery_id, status, now, next_at, status_code, error)
        )


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
