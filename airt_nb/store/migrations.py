"""The SQLite schema, as an append-only list of numbered migrations.

Never edit a migration that has shipped: add a new one.  The version applied
last is kept in ``PRAGMA user_version`` and in ``airt_meta``; opening a
database applies the missing ones in one transaction each.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
        CREATE TABLE airt_meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        CREATE TABLE workflows (
            workflow_id   TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            status        TEXT NOT NULL,
            spec          TEXT NOT NULL,
            spec_hash     TEXT NOT NULL,
            inputs        TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            finished_at   TEXT,
            error         TEXT,
            started_by    TEXT,
            total_steps   INTEGER NOT NULL,
            done_steps    INTEGER NOT NULL DEFAULT 0,
            lease_owner   TEXT,
            lease_expires TEXT,
            requested     TEXT,
            waiting_for   TEXT,
            warnings      TEXT
        );
        CREATE INDEX workflows_by_status ON workflows (status, created_at);
        CREATE INDEX workflows_by_created ON workflows (created_at);
        CREATE INDEX workflows_by_updated ON workflows (updated_at);
        CREATE INDEX workflows_by_name ON workflows (name, created_at);
        CREATE INDEX workflows_by_owner ON workflows (lease_owner) WHERE lease_owner IS NOT NULL;

        CREATE TABLE workflow_steps (
            workflow_id     TEXT NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
            step_name       TEXT NOT NULL,
            position        INTEGER NOT NULL,
            type            TEXT NOT NULL,
            action          TEXT,
            status          TEXT NOT NULL,
            attempt         INTEGER NOT NULL DEFAULT 0,
            started_at      TEXT,
            finished_at     TEXT,
            next_attempt_at TEXT,
            inputs          TEXT,
            outputs         TEXT,
            error           TEXT,
            fingerprint     TEXT,
            state           TEXT,
            PRIMARY KEY (workflow_id, step_name)
        ) WITHOUT ROWID;

        CREATE TABLE step_attempts (
            workflow_id TEXT NOT NULL,
            step_name   TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            status      TEXT NOT NULL,
            started_at  TEXT,
            finished_at TEXT,
            error       TEXT,
            PRIMARY KEY (workflow_id, step_name, attempt)
        ) WITHOUT ROWID;

        CREATE TABLE compensation_log (
            compensation_id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id     TEXT NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
            step_name       TEXT NOT NULL,
            action          TEXT NOT NULL,
            inputs          TEXT NOT NULL,
            outputs         TEXT NOT NULL,
            state           TEXT,
            status          TEXT NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      TEXT NOT NULL,
            executed_at     TEXT,
            error           TEXT
        );
        CREATE INDEX compensation_by_workflow ON compensation_log (workflow_id, compensation_id);

        CREATE TABLE approvals (
            approval_id  TEXT PRIMARY KEY,
            workflow_id  TEXT NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
            step_name    TEXT NOT NULL,
            status       TEXT NOT NULL,
            message      TEXT,
            context      TEXT,
            approvers    TEXT,
            requested_at TEXT NOT NULL,
            deadline     TEXT,
            on_timeout   TEXT NOT NULL DEFAULT 'reject',
            decided_at   TEXT,
            decided_by   TEXT,
            reason       TEXT
        );
        CREATE INDEX approvals_by_status ON approvals (status, requested_at);
        CREATE INDEX approvals_by_workflow ON approvals (workflow_id);
        CREATE INDEX approvals_by_deadline ON approvals (deadline) WHERE status = 'PENDING';

        CREATE TABLE webhook_deliveries (
            delivery_id     TEXT PRIMARY KEY,
            approval_id     TEXT,
            workflow_id     TEXT NOT NULL,
            event           TEXT NOT NULL,
            payload         TEXT NOT NULL,
            status          TEXT NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            created_at      TEXT NOT NULL,
            next_attempt_at TEXT,
            last_attempt_at TEXT,
            last_status     INTEGER,
            last_error      TEXT,
            delivered_at    TEXT
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

        CREATE TABLE audit_log (
            audit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
            at          TEXT NOT NULL,
            user        TEXT,
            roles       TEXT,
            event       TEXT NOT NULL,
            decision    TEXT NOT NULL,
            rule        TEXT,
            workflow_id TEXT,
            step_name   TEXT,
            action      TEXT,
            target      TEXT,
            detail      TEXT
        );
        CREATE INDEX audit_by_workflow ON audit_log (workflow_id);
        """,
    ),
    (
        2,
        "webhook targets and the outcome of every delivery attempt",
        """
        ALTER TABLE webhook_deliveries ADD COLUMN url TEXT;
        CREATE INDEX webhook_deliveries_by_approval ON webhook_deliveries (approval_id);

        CREATE TABLE webhook_attempts (
            delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
            attempt     INTEGER NOT NULL,
            started_at  TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            outcome     TEXT NOT NULL,
            http_status INTEGER,
            error       TEXT,
            PRIMARY KEY (delivery_id, attempt)
        ) WITHOUT ROWID;
        """,
    ),
    (
        3,
        "specs stored once per distinct spec",
        # A workflow's row is rewritten by every step's checkpoint (progress, lease fence): a spec
        # kept in it made each checkpoint cost as much as the spec is long.  New rows keep '' in
        # workflows.spec and their spec here, once for all runs of the same spec.
        """
        CREATE TABLE IF NOT EXISTS workflow_specs (
            spec_hash TEXT PRIMARY KEY,
            spec      TEXT NOT NULL
        );
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]
