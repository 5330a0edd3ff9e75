"""The schema, as one append-only list of numbered migrations with a text per dialect.

Never edit a migration that has shipped: add a new one.  Each migration has
the same number, title and effect on SQLite and on PostgreSQL; the texts
differ only where the dialects do (``WITHOUT ROWID``, ``AUTOINCREMENT`` versus
identity columns, table rebuilds versus ``ALTER``).  Both reach the same
tables and columns (``tests/test_store.py`` checks it).  The version applied
last is kept in ``airt_meta`` (and, on SQLite, in ``PRAGMA user_version``);
opening a database applies the missing ones in one transaction each, under a
lock (SQLite's write lock, PostgreSQL's advisory lock) so that engines opening
one database at once migrate it once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LATEST", "MIGRATIONS", "Migration"]


@dataclass(frozen=True)
class Migration:
    number: int
    title: str
    sqlite: str
    postgres: str


_SQLITE: list[tuple[int, str, str]] = [
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
    (
        4,
        "engines and their leases, a workflow's home, step ids, attempt history, run history",
        # Leases are per engine now (engines.expires_at), so renewing them is one row however many
        # workflows an engine runs; workflows.lease_owner names the engine and is the checkpoint's
        # fence.  Steps get an integer key: a checkpoint updates one row found by its id.
        """
        ALTER TABLE workflows ADD COLUMN workdir TEXT;
        ALTER TABLE workflows ADD COLUMN session TEXT;
        ALTER TABLE workflows ADD COLUMN home TEXT;
        UPDATE workflows SET home = lease_owner, lease_owner = NULL, lease_expires = NULL
            WHERE lease_owner IS NOT NULL;
        CREATE INDEX workflows_free ON workflows (created_at)
            WHERE lease_owner IS NULL AND status IN ('RUNNING', 'ROLLING_BACK');

        CREATE TABLE workflow_steps_v4 (
            step_id         INTEGER PRIMARY KEY,
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
            traceback       TEXT
        );
        INSERT INTO workflow_steps_v4 (workflow_id, step_name, position, type, action, status, attempt,
            started_at, finished_at, next_attempt_at, inputs, outputs, error, fingerprint, state)
            SELECT workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at,
            next_attempt_at, inputs, outputs, error, fingerprint, state FROM workflow_steps
            ORDER BY workflow_id, position;
        DROP TABLE workflow_steps;
        ALTER TABLE workflow_steps_v4 RENAME TO workflow_steps;
        CREATE UNIQUE INDEX workflow_steps_by_name ON workflow_steps (workflow_id, step_name);

        CREATE TABLE step_attempts_v4 (
            attempt_id  INTEGER PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            step_name   TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            status      TEXT NOT NULL,
            started_at  TEXT,
            finished_at TEXT,
            error       TEXT,
            traceback   TEXT
        );
        INSERT INTO step_attempts_v4 (workflow_id, step_name, attempt, status, started_at, finished_at, error)
            SELECT workflow_id, step_name, attempt, status, started_at, finished_at, error FROM step_attempts
            ORDER BY workflow_id, step_name, attempt;
        DROP TABLE step_attempts;
        ALTER TABLE step_attempts_v4 RENAME TO step_attempts;
        CREATE INDEX step_attempts_by_step ON step_attempts (workflow_id, step_name, attempt);

        CREATE TABLE webhook_deliveries_v4 (
            seq             INTEGER PRIMARY KEY,
            delivery_id     TEXT NOT NULL UNIQUE,
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
            delivered_at    TEXT,
            url             TEXT
        );
        INSERT INTO webhook_deliveries_v4 (seq, delivery_id, approval_id, workflow_id, event, payload, status,
            attempts, created_at, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at, url)
            SELECT rowid, delivery_id, approval_id, workflow_id, event, payload, status, attempts, created_at,
            next_attempt_at, last_attempt_at, last_status, last_error, delivered_at, url FROM webhook_deliveries;
        DROP TABLE webhook_deliveries;
        ALTER TABLE webhook_deliveries_v4 RENAME TO webhook_deliveries;
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
        CREATE INDEX webhook_deliveries_by_approval ON webhook_deliveries (approval_id);

        ALTER TABLE compensation_log ADD COLUMN note TEXT;
        ALTER TABLE approvals ADD COLUMN auth TEXT;

        CREATE TABLE engines (
            owner_id     TEXT PRIMARY KEY,
            machine      TEXT,
            host         TEXT,
            pid          INTEGER,
            session      TEXT,
            workdir      TEXT,
            user_name    TEXT,
            takes_work   INTEGER NOT NULL,
            started_at   TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            expires_at   TEXT NOT NULL,
            closed_at    TEXT,
            wake         INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE workflow_events (
            event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL,
            at          TEXT NOT NULL,
            event       TEXT NOT NULL,
            by          TEXT,
            detail      TEXT
        );
        CREATE INDEX workflow_events_by_workflow ON workflow_events (workflow_id, event_id);

        CREATE TABLE airt_signals (
            name TEXT PRIMARY KEY,
            seq  INTEGER NOT NULL
        );
        INSERT INTO airt_signals (name, seq) VALUES ('work', 0);
        """,
    ),
    (
        5,
        "decisions recorded by the database (PostgreSQL only)",
        # PostgreSQL's SECURITY DEFINER functions and the trigger guarding approval steps; SQLite has
        # no database roles, so nothing changes there.
        "SELECT 1",
    ),
]

# Approvals are written only through these functions when people connect with their own role
# (``airt db grant``: their group gets EXECUTE on them, SELECT on approvals, no INSERT/UPDATE/DELETE).
# They run as the owner of the tables (SECURITY DEFINER) with a pinned search_path; session_user is
# the role that logged in, which only a superuser can change.  The trigger makes an approval step
# completable only with a decision on record, whoever writes the step.
_PG_DECISIONS = """
    CREATE FUNCTION airt_decide(p_approval_id text, p_status text, p_reason text, p_decided_at text)
    RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        v_status text;
        v_approvers text;
        v_allowed boolean;
    BEGIN
        IF p_status NOT IN ('APPROVED', 'REJECTED') THEN
            RAISE EXCEPTION 'a decision is APPROVED or REJECTED, not %', p_status
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT status, approvers INTO v_status, v_approvers FROM approvals
            WHERE approval_id = p_approval_id FOR UPDATE;
        IF NOT FOUND OR v_status <> 'PENDING' THEN
            RETURN NULL;
        END IF;
        IF v_approvers IS NOT NULL AND v_approvers NOT IN ('', '[]', 'null') THEN
            SELECT coalesce(bool_or(a = session_user OR CASE
                    WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = a) THEN pg_has_role(session_user, a, 'MEMBER')
                    ELSE false END), false)
                INTO v_allowed FROM json_array_elements_text(v_approvers::json) AS a;
            IF NOT v_allowed THEN
                RAISE EXCEPTION 'database role % is not one of the approvers of approval % (%)',
                    session_user, p_approval_id, v_approvers USING ERRCODE = 'insufficient_privilege';
            END IF;
        END IF;
        UPDATE approvals SET status = p_status, decided_by = session_user, reason = p_reason,
            decided_at = p_decided_at, auth = 'database' WHERE approval_id = p_approval_id;
        RETURN session_user;
    END
    $f$;

    CREATE FUNCTION airt_expire_approval(p_approval_id text, p_status text, p_reason text, p_decided_at text)
    RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $f$
    BEGIN
        UPDATE approvals SET status = p_status, decided_by = 'system', reason = p_reason,
            decided_at = p_decided_at, auth = 'system'
         WHERE approval_id = p_approval_id AND status = 'PENDING' AND deadline IS NOT NULL
           AND deadline <= to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
           AND p_status = CASE WHEN on_timeout = 'approve' THEN 'APPROVED' ELSE 'REJECTED' END;
        RETURN FOUND;
    END
    $f$;

    CREATE FUNCTION airt_request_approval(p_approval_id text, p_workflow_id text, p_step_name text,
        p_message text, p_context text, p_approvers text, p_requested_at text, p_deadline text, p_on_timeout text)
    RETURNS void LANGUAGE sql SECURITY DEFINER AS $f$
        INSERT INTO approvals (approval_id, workflow_id, step_name, status, message, context, approvers,
            requested_at, deadline, on_timeout)
        VALUES (p_approval_id, p_workflow_id, p_step_name, 'PENDING', p_message, p_context, p_approvers,
            p_requested_at, p_deadline, p_on_timeout)
    $f$;

    CREATE FUNCTION airt_cancel_approvals(p_workflow_id text, p_now text, p_by text, p_reason text)
    RETURNS void LANGUAGE sql SECURITY DEFINER AS $f$
        UPDATE approvals SET status = 'CANCELLED', decided_at = p_now, reason = p_reason,
            decided_by = CASE WHEN p_by = 'system' THEN p_by ELSE session_user END
         WHERE workflow_id = p_workflow_id AND status = 'PENDING'
    $f$;

    CREATE FUNCTION airt_check_decision() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.status IN ('COMPLETED', 'REJECTED') AND NEW.status IS DISTINCT FROM OLD.status
           AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.workflow_id = NEW.workflow_id
                AND a.step_name = NEW.step_name
                AND a.status = CASE WHEN NEW.status = 'COMPLETED' THEN 'APPROVED' ELSE 'REJECTED' END) THEN
            RAISE EXCEPTION 'step % of workflow % is an approval: only a recorded decision completes it',
                NEW.step_name, NEW.workflow_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $f$;
    CREATE TRIGGER airt_decided_steps BEFORE UPDATE OF status ON workflow_steps
        FOR EACH ROW WHEN (NEW.type = 'human_approval') EXECUTE FUNCTION airt_check_decision();

    DO $d$
    DECLARE
        f text;
    BEGIN
        FOREACH f IN ARRAY ARRAY['airt_decide(text,text,text,text)', 'airt_expire_approval(text,text,text,text)',
            'airt_request_approval(text,text,text,text,text,text,text,text,text)',
            'airt_cancel_approvals(text,text,text,text)', 'airt_check_decision()']
        LOOP
            -- Only this schema's tables, never a same-named object a caller put first in its path.
            EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
            IF f <> 'airt_check_decision()' THEN  -- a trigger's function is never called directly
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
            END IF;
        END LOOP;
    END
    $d$;
"""

_POSTGRES: dict[int, str] = {
    1: """
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
        );

        CREATE TABLE step_attempts (
            workflow_id TEXT NOT NULL,
            step_name   TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            status      TEXT NOT NULL,
            started_at  TEXT,
            finished_at TEXT,
            error       TEXT,
            PRIMARY KEY (workflow_id, step_name, attempt)
        );

        CREATE TABLE compensation_log (
            compensation_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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
            audit_id    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            at          TEXT NOT NULL,
            "user"      TEXT,
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
    2: """
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
        );
        """,
    3: """
        CREATE TABLE IF NOT EXISTS workflow_specs (
            spec_hash TEXT PRIMARY KEY,
            spec      TEXT NOT NULL
        );
        """,
    4: """
        ALTER TABLE workflows ADD COLUMN workdir TEXT;
        ALTER TABLE workflows ADD COLUMN session TEXT;
        ALTER TABLE workflows ADD COLUMN home TEXT;
        UPDATE workflows SET home = lease_owner, lease_owner = NULL, lease_expires = NULL
            WHERE lease_owner IS NOT NULL;
        CREATE INDEX workflows_free ON workflows (created_at)
            WHERE lease_owner IS NULL AND status IN ('RUNNING', 'ROLLING_BACK');

        ALTER TABLE workflow_steps ADD COLUMN step_id BIGINT GENERATED BY DEFAULT AS IDENTITY;
        ALTER TABLE workflow_steps ADD COLUMN traceback TEXT;
        ALTER TABLE workflow_steps DROP CONSTRAINT workflow_steps_pkey;
        ALTER TABLE workflow_steps ADD PRIMARY KEY (step_id);
        CREATE UNIQUE INDEX workflow_steps_by_name ON workflow_steps (workflow_id, step_name);

        ALTER TABLE step_attempts ADD COLUMN attempt_id BIGINT GENERATED BY DEFAULT AS IDENTITY;
        ALTER TABLE step_attempts ADD COLUMN traceback TEXT;
        ALTER TABLE step_attempts DROP CONSTRAINT step_attempts_pkey;
        ALTER TABLE step_attempts ADD PRIMARY KEY (attempt_id);
        CREATE INDEX step_attempts_by_step ON step_attempts (workflow_id, step_name, attempt);

        ALTER TABLE webhook_deliveries ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY;
        CREATE UNIQUE INDEX webhook_deliveries_by_seq ON webhook_deliveries (seq);

        ALTER TABLE compensation_log ADD COLUMN note TEXT;
        ALTER TABLE approvals ADD COLUMN auth TEXT;

        CREATE TABLE engines (
            owner_id     TEXT PRIMARY KEY,
            machine      TEXT,
            host         TEXT,
            pid          INTEGER,
            session      TEXT,
            workdir      TEXT,
            user_name    TEXT,
            takes_work   INTEGER NOT NULL,
            started_at   TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            expires_at   TEXT NOT NULL,
            closed_at    TEXT,
            wake         INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE workflow_events (
            event_id    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            at          TEXT NOT NULL,
            event       TEXT NOT NULL,
            by          TEXT,
            detail      TEXT
        );
        CREATE INDEX workflow_events_by_workflow ON workflow_events (workflow_id, event_id);

        CREATE TABLE airt_signals (
            name TEXT PRIMARY KEY,
            seq  INTEGER NOT NULL
        );
        INSERT INTO airt_signals (name, seq) VALUES ('work', 0);
        """,
    5: _PG_DECISIONS,
}

MIGRATIONS: list[Migration] = [Migration(number, title, sqlite, _POSTGRES[number]) for number, title, sqlite in _SQLITE]

LATEST = MIGRATIONS[-1].number
