"""Signed approval webhooks: an outbox in the database, delivered with httpx.

When an approval is requested, decided or cancelled, the engine writes a
delivery row in the *same* transaction (the outbox), addressed to one URL.
After the commit, a background thread POSTs it: a JSON body, the headers
``X-Airt-Signature-256: sha256=<hex>`` (HMAC-SHA256 of the raw body with
``AIRT_WEBHOOK_SECRET``), ``X-Airt-Delivery``, ``X-Airt-Timestamp`` and
``X-Airt-Event`` (delivery id, timestamp and event are also in the signed
body, so a receiver can refuse replays; with ``AIRT_PUBLIC_URL`` set the body
also carries ``url``, the approval's page).  Requests have explicit timeouts;
failures are retried with exponential back-off; every attempt's outcome is
recorded (``webhook_attempts``).  A receiver that is down, slow or broken
never blocks a workflow, a decision or ``Engine.close``; a delivery left
undone by a crash or a restart is sent by the next engine with the same URL.
Delivery is at least once: receivers deduplicate on the delivery id.

Receivers verify with :func:`verify`::

    from airt_nb.webhooks import verify
    if not verify(request.body, request.headers.get("X-Airt-Signature-256"), SECRET, max_age=300):
        return 401

This is the only module that imports httpx (lazily, in the sender thread).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .timeutil import iso, now_iso, to_epoch
from .urls import check_webhook_url, url_problem

if TYPE_CHECKING:
    from .store.protocol import Store
    from .store.records import DeliveryRecord

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "approval_page",
    "check_webhook_url",
    "outbox_row",
    "sign",
    "url_problem",
    "verify",
]

log = logging.getLogger("airt_nb.webhooks")

SIGNATURE_HEADER = "X-Airt-Signature-256"
DELIVERY_HEADER = "X-Airt-Delivery"
TIMESTAMP_HEADER = "X-Airt-Timestamp"
EVENT_HEADER = "X-Airt-Event"


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(body: bytes | str, header: str | None, secret: str, *, max_age: float | None = None) -> bool:
    """Whether ``header`` is the valid signature of the raw ``body`` (constant-time comparison).

    Parameters
    ----------
    body:
        The request body exactly as received (bytes; text is UTF-8 encoded).
    header:
        The value of the ``X-Airt-Signature-256`` header (``sha256=<hex>``).
    secret:
        The shared secret (``AIRT_WEBHOOK_SECRET`` of the sender).
    max_age:
        If given, also refuse a body whose signed ``timestamp`` is more than
        ``max_age`` seconds away from now (a replayed request).

    Examples
    --------
    >>> body = b'{"event":"approval.requested"}'
    >>> verify(body, sign(body, "s3cret"), "s3cret")
    True
    >>> verify(body + b" ", sign(body, "s3cret"), "s3cret")
    False
    """
    if not header or not secret:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not hmac.compare_digest(sign(raw, secret).encode(), header.strip().encode("utf-8", "replace")):
        return False
    if max_age is None:
        return True
    try:
        sent = to_epoch(json.loads(raw)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    return abs(time.time() - sent) <= max_age


def outbox_row(
    event: str, approval: Mapping[str, Any], workflow_name: str, url: str, *, page: str | None = None
) -> dict[str, Any]:
    """A delivery row telling ``url`` about ``event`` of ``approval`` (a mapping of approval columns).

    Events: ``approval.requested``, ``approval.progress`` (one of several approvals it needs),
    ``approval.approved``, ``approval.rejected``, ``approval.expired``, ``approval.cancelled``,
    ``approval.reminder`` and ``approval.escalated``.  The payload carries the approval's typed
    ``fields`` and ``values``, ``min_approvals`` / ``approved_count`` and the ``preview`` of the
    steps it gates when it has them.  ``page`` is the approval's page (``url`` in the payload): the one
    its request named, so that every event of an approval links where the first did; else this
    process's ``AIRT_PUBLIC_URL``."""
    payload = {
        "event": event,
        "workflow_id": approval["workflow_id"],
        "workflow_name": workflow_name,
        "approval": {
            "approval_id": approval["approval_id"],
            "step_name": approval["step_name"],
            "status": approval.get("status") or "PENDING",
            "message": approval.get("message"),
            "approvers": _json(approval.get("approvers")) or [],
            "context": _json(approval.get("context")),
            "requested_at": approval.get("requested_at"),
            "deadline": approval.get("deadline"),
            "on_timeout": approval.get("on_timeout"),
            "decided_at": approval.get("decided_at"),
            "decided_by": approval.get("decided_by"),
            # how decided_by was established: a name proven (jupyter, jupyterhub, database) or only asserted
            "auth": approval.get("auth"),
            "reason": approval.get("reason"),
        },
    }
    extra: dict[str, Any] = payload["approval"]
    if "min_approvals" in approval:
        extra["min_approvals"] = approval["min_approvals"]
        extra["approved_count"] = approval.get("approved_count") or 0
    for key in ("gate_step", "reasked_from", "reminders", "escalated_to"):
        if approval.get(key):
            extra[key] = approval[key]
    if approval.get("fields"):
        extra["fields"] = _json(approval.get("fields"))
    if approval.get("field_values"):
        extra["values"] = _json(approval.get("field_values"))
    for flag in ("exclude_requester", "authenticated"):
        if approval.get(flag):
            extra[flag] = True
    preview = _json(approval.get("preview"))
    if isinstance(preview, dict):
        # What each gated step will do; the hashes stay in the database (inputs may hold secrets).
        steps = [{k: v for k, v in e.items() if k not in ("hash", "target")} for e in preview.get("steps") or ()]
        extra["preview"] = {**preview, "steps": steps}
    page = page or approval_page(approval["approval_id"])
    if page:
        payload["url"] = page
    return {
        "delivery_id": uuid.uuid4().hex,
        "approval_id": approval["approval_id"],
        "workflow_id": approval["workflow_id"],
        "event": event,
        "payload": json.dumps(payload, default=str),
        "created_at": now_iso(),
        "url": url,
    }


def requested_page(first_payload: str | None) -> str | None:
    """The page an approval's first event linked to (``url`` of its payload), if any."""
    try:
        page = json.loads(first_payload or "null")
    except ValueError:
        return None
    url = page.get("url") if isinstance(page, dict) else None
    return url if isinstance(url, str) else None


def approval_page(approval_id: str) -> str | None:
    """The approval's page on the server ``AIRT_PUBLIC_URL`` names (its base URL), or ``None`` if unset.

    >>> os.environ["AIRT_PUBLIC_URL"] = "https://hub.example.com/user/ann/"  # doctest: +SKIP
    >>> approval_page("8eb2d76fa2394741")  # doctest: +SKIP
    'https://hub.example.com/user/ann/airt/?approval=8eb2d76fa2394741'
    """
    base = os.environ.get("AIRT_PUBLIC_URL", "").strip()
    return f"{base.rstrip('/')}/airt/?approval={approval_id}" if base else None


def body_for(delivery: DeliveryRecord, timestamp: str) -> bytes:
    """The exact bytes POSTed for one attempt: the payload plus its delivery id and timestamp."""
    payload = json.loads(delivery.payload)
    payload["delivery_id"] = delivery.delivery_id
    payload["timestamp"] = timestamp
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class WebhookSender:
    """Delivers the outbox rows addressed to ``url``, on a daemon thread.

    Parameters
    ----------
    timeout:
        Seconds allowed for connecting, and for each read or write of a request.
    max_attempts:
        Attempts before a delivery is given up as FAILED.
    initial_delay, max_delay:
        Back-off after a failed attempt: ``initial_delay * 2**(attempt-1)``,
        at most ``max_delay``, with ±20 % jitter.
    """

    def __init__(
        self,
        store: Store,
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
        self.max_attempts = max(1, max_attempts)
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self._cv = threading.Condition()
        self._stopped = False
        self._kicked = True
        self._thread = threading.Thread(target=self._loop, name="airt-webhooks", daemon=True)

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Look for due deliveries now (called after a commit that queued one)."""
        with self._cv:
            self._kicked = True
            self._cv.notify()

    def stop(self, grace: float = 0.5) -> None:
        """Stop sending; waits at most ``grace`` seconds for a request in flight.

        A request still in flight after that (a receiver that hangs) is
        abandoned: its delivery stays claimed for a while, then any engine
        with the same URL sends it again.
        """
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=grace)

    def _loop(self) -> None:
        client = None
        try:
            while True:
                wait = self._next_wait()
                with self._cv:
                    if not self._kicked and not self._stopped:
                        self._cv.wait(wait)
                    if self._stopped:
                        return
                    self._kicked = False
                try:
                    if client is None and self.store.due_deliveries(now_iso(), self.url, limit=1):
                        client = self._client()
                    if client is not None:
                        self.deliver_due(client)
                except Exception:
                    if self._stopped:
                        return
                    log.exception("webhook delivery to %s failed; trying again in 1 s", self.url)
                    with self._cv:
                        self._cv.wait(1.0)
        finally:
            if client is not None:
                client.close()

    def _client(self) -> Any:
        import httpx

        # connect is capped separately: an address that never answers fails fast.
        return httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0)))

    def _next_wait(self) -> float:
        try:
            nxt = self.store.next_delivery_time(self.url)
        except Exception:
            return 5.0
        if nxt is None:
            return 30.0
        return max(0.0, min(30.0, to_epoch(nxt) - time.time()))

    def deliver_due(self, client: Any = None) -> int:
        """Send every delivery that is due now; returns how many attempts were made."""
        own = client is None
        if own:
            client = self._client()
        sent = 0
        try:
            while not self._stopped:
                progressed = False
                for delivery in self.store.due_deliveries(now_iso(), self.url):
                    if self._stopped:
                        break
                    if not self._claim(delivery):
                        continue  # another engine is sending it
                    self._send(client, delivery)
                    sent += 1
                    progressed = True
                if not progressed:  # a delivery just sent may release the next one of its approval
                    break
        finally:
            if own:
                client.close()
        return sent

    def _claim(self, delivery: DeliveryRecord) -> bool:
        # Held long enough for the slowest request (connect + write + read phases), so that
        # another engine does not send it at the same time; released by the recorded outcome.
        hold = iso(time.time() + 4 * self.timeout + 1)
        return self.store.write(lambda tx: tx.claim_delivery(delivery.delivery_id, now_iso(), hold))

    def _send(self, client: Any, delivery: DeliveryRecord) -> None:
        import httpx

        started = now_iso()
        body = body_for(delivery, started)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "airt_nb-webhook",
            DELIVERY_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: started,
            EVENT_HEADER: delivery.event,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        status_code: int | None = None
        error: str | None = None
        try:
            response = client.post(self.url, content=body, headers=headers)
            status_code = response.status_code
            if not response.is_success:
                error = f"HTTP {status_code}: {response.text[:200]}".rstrip(": ")
        except httpx.TimeoutException as exc:
            error = f"{type(exc).__name__}: no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = delivery.attempts + 1
        if error is None:
            status, next_at = "DELIVERED", None
        elif attempts >= self.max_attempts:
            status, next_at = "FAILED", None
            log.warning(
                "webhook %s %s to %s failed for good after %d attempts: %s",
                delivery.event,
                delivery.delivery_id,
                self.url,
                attempts,
                error,
            )
        else:
            delay = min(self.initial_delay * 2 ** (attempts - 1), self.max_delay) * random.uniform(0.8, 1.2)
            status, next_at = "RETRYING", iso(time.time() + delay)
            log.info("webhook %s to %s: attempt %d failed (%s); retrying", delivery.event, self.url, attempts, error)
        now = now_iso()
        try:
            self.store.write(
                lambda tx: tx.record_delivery_attempt(
                    delivery.delivery_id, status, now, next_at, status_code, error, started_at=started
                )
            )
        except StoreError:
            if not self._stopped:
                raise
            # The engine closed while this request was in flight: the delivery stays claimed
            # and is sent again later (receivers deduplicate on the delivery id).


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
