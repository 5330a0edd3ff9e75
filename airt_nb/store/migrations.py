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
        "approvals worth trusting: typed fields, N of M people, previews of what runs, reminders",
        # Every individual decision is a row of its own (who, when, why, values, how authenticated,
        # the hash of the preview they saw); the approval row keeps the rules and the running count.
        # Decisions recorded before this version become one row each.
        """
        ALTER TABLE approvals ADD COLUMN fields TEXT;
        ALTER TABLE approvals ADD COLUMN min_approvals INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE approvals ADD COLUMN approved_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN exclude_requester INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN field_values TEXT;
        ALTER TABLE approvals ADD COLUMN preview TEXT;
        ALTER TABLE approvals ADD COLUMN preview_hash TEXT;
        ALTER TABLE approvals ADD COLUMN gate_step TEXT;
        ALTER TABLE approvals ADD COLUMN reasked_from TEXT;
        ALTER TABLE approvals ADD COLUMN remind_every REAL;
        ALTER TABLE approvals ADD COLUMN next_reminder_at TEXT;
        ALTER TABLE approvals ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN escalate_at TEXT;
        ALTER TABLE approvals ADD COLUMN escalate_to TEXT;
        ALTER TABLE approvals ADD COLUMN escalated_at TEXT;
        CREATE INDEX approvals_reminders ON approvals (next_reminder_at)
            WHERE status = 'PENDING' AND next_reminder_at IS NOT NULL;
        CREATE INDEX approvals_escalations ON approvals (escalate_at)
            WHERE status = 'PENDING' AND escalate_at IS NOT NULL AND escalated_at IS NULL;

        CREATE TABLE approval_decisions (
            decision_id  INTEGER PRIMARY KEY AUTOINCREMENT,
            approval_id  TEXT NOT NULL REFERENCES approvals (approval_id) ON DELETE CASCADE,
            workflow_id  TEXT NOT NULL,
            step_name    TEXT NOT NULL,
            decision     TEXT NOT NULL,
            decided_by   TEXT NOT NULL,
            decided_at   TEXT NOT NULL,
            reason       TEXT,
            field_values TEXT,
            auth         TEXT,
            preview_hash TEXT
        );
        CREATE INDEX approval_decisions_by_approval ON approval_decisions (approval_id, decision_id);
        CREATE INDEX approval_decisions_by_workflow ON approval_decisions (workflow_id);
        CREATE UNIQUE INDEX approval_decisions_one_each ON approval_decisions (approval_id, decided_by)
            WHERE decision = 'APPROVED';
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, auth)
            SELECT approval_id, workflow_id, step_name, status, decided_by, decided_at, reason, auth FROM approvals
            WHERE status IN ('APPROVED', 'REJECTED') AND decided_by IS NOT NULL AND decided_at IS NOT NULL
            ORDER BY decided_at, approval_id;
        UPDATE approvals SET approved_count = 1 WHERE status = 'APPROVED';
        """,
    ),
    (
        6,
        "forks, sub-workflows, events sent to workflows, schedules",
        # forked_from: the run a fork was made from; parent_id / parent_step: the step of another
        # workflow that started this one (one child per step: the unique index makes starting a child
        # again after a crash find the first one).  compensation_log.origin: the workflow whose step
        # did what an intent undoes, when a fork carried it over (its undo copies live there).
        # workflow_steps.next_attempt_at holds a waiting event step's deadline.
        """
        ALTER TABLE workflows ADD COLUMN forked_from TEXT;
        ALTER TABLE workflows ADD COLUMN parent_id TEXT;
        ALTER TABLE workflows ADD COLUMN parent_step TEXT;
        CREATE UNIQUE INDEX workflows_by_parent ON workflows (parent_id, parent_step) WHERE parent_id IS NOT NULL;
        CREATE INDEX workflows_by_fork ON workflows (forked_from) WHERE forked_from IS NOT NULL;
        ALTER TABLE compensation_log ADD COLUMN origin TEXT;
        CREATE INDEX compensation_by_origin ON compensation_log (origin) WHERE origin IS NOT NULL;
        CREATE INDEX workflow_steps_waiting ON workflow_steps (next_attempt_at)
            WHERE status = 'WAITING' AND type = 'wait_event';

        CREATE TABLE sent_events (
            event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
            event       TEXT NOT NULL,
            payload     TEXT,
            status      TEXT NOT NULL,
            sent_at     TEXT NOT NULL,
            sent_by     TEXT,
            auth        TEXT,
            step_name   TEXT,
            received_at TEXT
        );
        CREATE UNIQUE INDEX sent_events_once ON sent_events (workflow_id, event);

        CREATE TABLE schedules (
            schedule_id     TEXT PRIMARY KEY,
            name            TEXT NOT NULL,
            cron            TEXT NOT NULL,
            timezone        TEXT NOT NULL,
            spec_hash       TEXT NOT NULL,
            inputs          TEXT NOT NULL,
            workdir         TEXT,
            created_at      TEXT NOT NULL,
            created_by      TEXT,
            next_fire_at    TEXT NOT NULL,
            last_fired_at   TEXT,
            last_workflow_id TEXT
        );
        CREATE INDEX schedules_due ON schedules (next_fire_at);

        CREATE TABLE schedule_firings (
            schedule_id TEXT NOT NULL,
            slot        TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            fired_at    TEXT NOT NULL,
            fired_by    TEXT,
            missed      INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (schedule_id, slot)
        ) WITHOUT ROWID;
        """,
    ),
    (
        7,
        "decisions recorded by the database (PostgreSQL only)",
        # PostgreSQL's SECURITY DEFINER functions and the trigger guarding approval steps; SQLite has
        # no database roles, so nothing changes there.
        "SELECT 1",
    ),
    (
        8,
        "what a member of the group may not rewrite: decided runs and approval steps, who started a run, "
        "when a decision was made (PostgreSQL only)",
        # Triggers and new bodies for migration 7's functions; SQLite has no database roles, so nothing
        # changes there.
        "SELECT 1",
    ),
]

# Approvals are written only through these functions when people connect with their own role
# (``airt db grant``: their group gets EXECUTE on them, SELECT on approvals and approval_decisions,
# no INSERT/UPDATE/DELETE on either).  They run as the owner of the tables (SECURITY DEFINER) with a
# pinned search_path; session_user is the role that logged in, which only a superuser can change.
# airt_decide applies the approval's rules itself (approvers, exclude_requester, one approval per
# person, N of M), so a role that calls it directly gets no further than the engine would let it.
# The trigger makes an approval step completable only with a decision on record (of this workflow,
# or of the run it was forked from), whoever writes the step.
_PG_DECISIONS = """
    CREATE FUNCTION airt_request_approval(p_row text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        r approvals;
    BEGIN
        r := json_populate_record(NULL::approvals, p_row::json);
        INSERT INTO approvals (approval_id, workflow_id, step_name, status, message, context, approvers,
            requested_at, deadline, on_timeout, fields, min_approvals, exclude_requester, authenticated,
            preview, preview_hash, gate_step, reasked_from, remind_every, next_reminder_at, escalate_at,
            escalate_to)
        VALUES (r.approval_id, r.workflow_id, r.step_name, 'PENDING', r.message, r.context, r.approvers,
            r.requested_at, r.deadline, r.on_timeout, r.fields, greatest(coalesce(r.min_approvals, 1), 1),
            coalesce(r.exclude_requester, 0), coalesce(r.authenticated, 0), r.preview, r.preview_hash,
            r.gate_step, r.reasked_from, r.remind_every, r.next_reminder_at, r.escalate_at, r.escalate_to);
    END
    $f$;

    CREATE FUNCTION airt_decide(p_approval_id text, p_status text, p_reason text, p_decided_at text,
        p_values text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
        v_allowed boolean;
        v_count integer;
    BEGIN
        IF p_status NOT IN ('APPROVED', 'REJECTED') THEN
            RAISE EXCEPTION 'a decision is APPROVED or REJECTED, not %', p_status
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        IF NOT FOUND OR a.status <> 'PENDING' THEN
            RETURN NULL;
        END IF;
        IF a.approvers IS NOT NULL AND a.approvers NOT IN ('', '[]', 'null') THEN
            SELECT coalesce(bool_or(n = session_user OR CASE
                    WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = n) THEN pg_has_role(session_user, n, 'MEMBER')
                    ELSE false END), false)
                INTO v_allowed FROM json_array_elements_text(a.approvers::json) AS n;
            IF NOT v_allowed THEN
                RAISE EXCEPTION 'database role % is not one of the approvers of approval % (%)',
                    session_user, p_approval_id, a.approvers USING ERRCODE = 'insufficient_privilege';
            END IF;
        END IF;
        IF a.exclude_requester <> 0 AND EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = a.workflow_id
                AND w.started_by = session_user) THEN
            RAISE EXCEPTION 'database role % started workflow % and may not decide its approval % (exclude_requester)',
                session_user, a.workflow_id, p_approval_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF p_status = 'APPROVED' AND EXISTS (SELECT 1 FROM approval_decisions d WHERE d.approval_id = p_approval_id
                AND d.decided_by = session_user AND d.decision = 'APPROVED') THEN
            RAISE EXCEPTION 'database role % approved approval % already; the others must come from other people',
                session_user, p_approval_id USING ERRCODE = 'unique_violation';
        END IF;
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, field_values, auth, preview_hash)
        VALUES (p_approval_id, a.workflow_id, a.step_name, p_status, session_user, p_decided_at, p_reason,
            p_values, 'database', a.preview_hash);
        IF p_status = 'REJECTED' THEN
            UPDATE approvals SET status = 'REJECTED', decided_by = session_user, reason = p_reason,
                decided_at = p_decided_at, auth = 'database', field_values = coalesce(p_values, field_values)
             WHERE approval_id = p_approval_id;
            RETURN 'final';
        END IF;
        v_count := a.approved_count + 1;
        IF v_count < a.min_approvals THEN
            UPDATE approvals SET approved_count = v_count, field_values = coalesce(field_values, p_values)
                WHERE approval_id = p_approval_id;
            RETURN 'partial';
        END IF;
        UPDATE approvals SET status = 'APPROVED', decided_by = session_user, reason = p_reason,
            decided_at = p_decided_at, auth = 'database', approved_count = v_count,
            field_values = coalesce(field_values, p_values) WHERE approval_id = p_approval_id;
        RETURN 'final';
    END
    $f$;

    CREATE FUNCTION airt_expire_approval(p_approval_id text, p_status text, p_reason text, p_decided_at text,
        p_values text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
    BEGIN
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        IF NOT FOUND OR a.status <> 'PENDING' OR a.deadline IS NULL
           OR a.deadline > to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
           OR p_status <> (CASE WHEN a.on_timeout = 'approve' THEN 'APPROVED' ELSE 'REJECTED' END) THEN
            RETURN false;
        END IF;
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, field_values, auth, preview_hash)
        VALUES (p_approval_id, a.workflow_id, a.step_name, p_status, 'system', p_decided_at, p_reason, p_values,
            'system', a.preview_hash);
        UPDATE approvals SET status = p_status, decided_by = 'system', reason = p_reason, decided_at = p_decided_at,
            auth = 'system', field_values = CASE WHEN p_status = 'APPROVED' THEN coalesce(field_values, p_values)
                ELSE field_values END
         WHERE approval_id = p_approval_id;
        RETURN true;
    END
    $f$;

    CREATE FUNCTION airt_cancel_approvals(p_workflow_id text, p_now text, p_by text, p_reason text)
    RETURNS void LANGUAGE sql SECURITY DEFINER AS $f$
        UPDATE approvals SET status = 'CANCELLED', decided_at = p_now, reason = p_reason,
            decided_by = CASE WHEN p_by = 'system' THEN p_by ELSE session_user END
         WHERE workflow_id = p_workflow_id AND status = 'PENDING'
    $f$;

    CREATE FUNCTION airt_remind_approval(p_approval_id text, p_due text, p_next_at text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    BEGIN
        UPDATE approvals SET reminders = reminders + 1, next_reminder_at = p_next_at
         WHERE approval_id = p_approval_id AND status = 'PENDING' AND next_reminder_at = p_due
           AND p_due <= to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');
        RETURN FOUND;
    END
    $f$;

    -- The approvers an escalation adds come from the approval itself, never from the caller.
    CREATE FUNCTION airt_escalate_approval(p_approval_id text, p_now text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
        v_widened text;
    BEGIN
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        IF NOT FOUND OR a.status <> 'PENDING' OR a.escalated_at IS NOT NULL OR a.escalate_at IS NULL
           OR a.escalate_at > to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') THEN
            RETURN NULL;
        END IF;
        IF a.approvers IS NULL OR a.approvers IN ('', '[]', 'null') THEN
            v_widened := '[]';  -- anyone may decide already: adding names would narrow it
        ELSE
            SELECT coalesce(json_agg(n ORDER BY o), '[]'::json)::text INTO v_widened FROM (
                SELECT n, min(o) AS o FROM (
                    SELECT n, o FROM json_array_elements_text(a.approvers::json) WITH ORDINALITY AS x (n, o)
                    UNION ALL
                    SELECT n, o + 1000000 FROM json_array_elements_text(coalesce(a.escalate_to, '[]')::json)
                        WITH ORDINALITY AS y (n, o)
                ) AS every GROUP BY n
            ) AS once;
        END IF;
        UPDATE approvals SET approvers = v_widened, escalated_at = p_now WHERE approval_id = p_approval_id;
        RETURN v_widened;
    END
    $f$;

    CREATE FUNCTION airt_check_decision() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.status IN ('COMPLETED', 'REJECTED') AND (TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status)
           AND NOT EXISTS (
                WITH RECURSIVE lineage (workflow_id, depth) AS (
                    SELECT NEW.workflow_id, 0
                    UNION ALL
                    SELECT w.forked_from, l.depth + 1 FROM workflows w JOIN lineage l ON w.workflow_id = l.workflow_id
                     WHERE w.forked_from IS NOT NULL AND l.depth < 100
                )
                SELECT 1 FROM approvals a JOIN lineage l ON a.workflow_id = l.workflow_id
                 WHERE a.step_name = NEW.step_name
                   AND a.status = CASE WHEN NEW.status = 'COMPLETED' THEN 'APPROVED' ELSE 'REJECTED' END) THEN
            RAISE EXCEPTION 'step % of workflow % is an approval: only a recorded decision completes it',
                NEW.step_name, NEW.workflow_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $f$;
    CREATE TRIGGER airt_decided_steps BEFORE INSERT OR UPDATE OF status ON workflow_steps
        FOR EACH ROW WHEN (NEW.type = 'human_approval') EXECUTE FUNCTION airt_check_decision();

    DO $d$
    DECLARE
        f text;
    BEGIN
        FOREACH f IN ARRAY ARRAY['airt_request_approval(text)', 'airt_decide(text,text,text,text,text)',
            'airt_expire_approval(text,text,text,text,text)', 'airt_cancel_approvals(text,text,text,text)',
            'airt_remind_approval(text,text,text)', 'airt_escalate_approval(text,text)', 'airt_check_decision()']
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

# What a member of the group (a role that may not write ``approvals``) may no longer do with plain SQL;
# a role that may write approvals (the owner of the tables, a superuser) could rewrite the record
# anyway, and may still do all of it (the decision check on approval steps holds for every role, as
# in migration 7):
# * delete a workflow with decisions on record: ``approvals`` cascade from ``workflows`` and the
#   cascade runs with the owner's rights, so one DELETE on a table the group may write would erase
#   every decision of the run;
# * change ``workflows.started_by``, which exclude_requester reads (the engine writes it only when it
#   inserts the run);
# * change or delete an approval step once a decision settled it (the values later steps read are in
#   its outputs), or change whether a step is an approval (flipping the type away and back would
#   skip the decision check, which now also fires on type, step_name and workflow_id);
# * choose the time of a decision, a cancellation or an escalation: the functions read the server's
#   clock (as columns.PG_NOW formats it: text order is time order), and airt_decide refuses a
#   decision once the deadline has passed by that clock, the rule airt_expire_approval applies;
# * cancel approvals as ``system`` (or as anyone but itself), or decide with a role named ``system``.
# Which role may do more is asked of session_user, as the functions ask who decides.  Migration 7's
# functions keep their signatures (the engine calls them): the times they are given are not used.
_PG_GUARDS = """
    CREATE OR REPLACE FUNCTION airt_decide(p_approval_id text, p_status text, p_reason text, p_decided_at text,
        p_values text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
        v_allowed boolean;
        v_count integer;
        v_now text;  -- p_decided_at is not used: the decision is timed by the server's clock
    BEGIN
        IF p_status NOT IN ('APPROVED', 'REJECTED') THEN
            RAISE EXCEPTION 'a decision is APPROVED or REJECTED, not %', p_status
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF lower(session_user) = 'system' THEN
            RAISE EXCEPTION 'database role % may not decide: the name system is reserved for what the engine decides '
                'itself; give each person a role of their own (airt db grant NAME)', session_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        IF NOT FOUND OR a.status <> 'PENDING' THEN
            RETURN NULL;
        END IF;
        -- Read once the lock is held: a decision that waited for another one is timed when it is made.
        v_now := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');
        IF a.approvers IS NOT NULL AND a.approvers NOT IN ('', '[]', 'null') THEN
            SELECT coalesce(bool_or(n = session_user OR CASE
                    WHEN EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = n) THEN pg_has_role(session_user, n, 'MEMBER')
                    ELSE false END), false)
                INTO v_allowed FROM json_array_elements_text(a.approvers::json) AS n;
            IF NOT v_allowed THEN
                RAISE EXCEPTION 'database role % is not one of the approvers of approval % (%)',
                    session_user, p_approval_id, a.approvers USING ERRCODE = 'insufficient_privilege';
            END IF;
        END IF;
        IF a.exclude_requester <> 0 AND EXISTS (SELECT 1 FROM workflows w WHERE w.workflow_id = a.workflow_id
                AND w.started_by = session_user) THEN
            RAISE EXCEPTION 'database role % started workflow % and may not decide its approval % (exclude_requester)',
                session_user, a.workflow_id, p_approval_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF p_status = 'APPROVED' AND EXISTS (SELECT 1 FROM approval_decisions d WHERE d.approval_id = p_approval_id
                AND d.decided_by = session_user AND d.decision = 'APPROVED') THEN
            RAISE EXCEPTION 'database role % approved approval % already; the others must come from other people',
                session_user, p_approval_id USING ERRCODE = 'unique_violation';
        END IF;
        -- The deadline is airt_expire_approval's from the moment it passes: one of the two, never both.
        IF a.deadline IS NOT NULL AND a.deadline <= v_now THEN
            RAISE EXCEPTION 'approval % of workflow % (step %) timed out at % by the database server''s clock: its '
                'timeout decides it (on_timeout: %), not this decision, which was not recorded',
                p_approval_id, a.workflow_id, a.step_name, a.deadline, a.on_timeout
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, field_values, auth, preview_hash)
        VALUES (p_approval_id, a.workflow_id, a.step_name, p_status, session_user, v_now, p_reason,
            p_values, 'database', a.preview_hash);
        IF p_status = 'REJECTED' THEN
            UPDATE approvals SET status = 'REJECTED', decided_by = session_user, reason = p_reason,
                decided_at = v_now, auth = 'database', field_values = coalesce(p_values, field_values)
             WHERE approval_id = p_approval_id;
            RETURN 'final';
        END IF;
        v_count := a.approved_count + 1;
        IF v_count < a.min_approvals THEN
            UPDATE approvals SET approved_count = v_count, field_values = coalesce(field_values, p_values)
                WHERE approval_id = p_approval_id;
            RETURN 'partial';
        END IF;
        UPDATE approvals SET status = 'APPROVED', decided_by = session_user, reason = p_reason,
            decided_at = v_now, auth = 'database', approved_count = v_count,
            field_values = coalesce(field_values, p_values) WHERE approval_id = p_approval_id;
        RETURN 'final';
    END
    $f$;

    CREATE OR REPLACE FUNCTION airt_expire_approval(p_approval_id text, p_status text, p_reason text,
        p_decided_at text, p_values text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
        v_now text;  -- p_decided_at is not used: the timeout is timed by the server's clock
    BEGIN
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        v_now := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');
        IF NOT FOUND OR a.status <> 'PENDING' OR a.deadline IS NULL OR a.deadline > v_now
           OR p_status <> (CASE WHEN a.on_timeout = 'approve' THEN 'APPROVED' ELSE 'REJECTED' END) THEN
            RETURN false;
        END IF;
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, field_values, auth, preview_hash)
        VALUES (p_approval_id, a.workflow_id, a.step_name, p_status, 'system', v_now, p_reason, p_values,
            'system', a.preview_hash);
        UPDATE approvals SET status = p_status, decided_by = 'system', reason = p_reason, decided_at = v_now,
            auth = 'system', field_values = CASE WHEN p_status = 'APPROVED' THEN coalesce(field_values, p_values)
                ELSE field_values END
         WHERE approval_id = p_approval_id;
        RETURN true;
    END
    $f$;

    -- Who cancelled is the role that called, unless it may write approvals itself anyway (then it may
    -- name anyone, system included, as it could with an UPDATE); p_now is not used.
    CREATE OR REPLACE FUNCTION airt_cancel_approvals(p_workflow_id text, p_now text, p_by text, p_reason text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        v_by text := session_user;
    BEGIN
        IF has_table_privilege(session_user, 'approvals', 'UPDATE') THEN
            v_by := coalesce(p_by, session_user);
        ELSIF lower(session_user) = 'system' THEN
            RAISE EXCEPTION 'database role % may not cancel approvals: the name system is reserved for what the '
                'engine decides itself; give each person a role of their own (airt db grant NAME)', session_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        UPDATE approvals SET status = 'CANCELLED', reason = p_reason, decided_by = v_by,
            decided_at = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
         WHERE workflow_id = p_workflow_id AND status = 'PENDING';
    END
    $f$;

    -- p_now is not used: an escalation is timed by the server's clock.
    CREATE OR REPLACE FUNCTION airt_escalate_approval(p_approval_id text, p_now text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
    DECLARE
        a approvals;
        v_widened text;
        v_now text;
    BEGIN
        SELECT * INTO a FROM approvals WHERE approval_id = p_approval_id FOR UPDATE;
        v_now := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');
        IF NOT FOUND OR a.status <> 'PENDING' OR a.escalated_at IS NOT NULL OR a.escalate_at IS NULL
           OR a.escalate_at > v_now THEN
            RETURN NULL;
        END IF;
        IF a.approvers IS NULL OR a.approvers IN ('', '[]', 'null') THEN
            v_widened := '[]';  -- anyone may decide already: adding names would narrow it
        ELSE
            SELECT coalesce(json_agg(n ORDER BY o), '[]'::json)::text INTO v_widened FROM (
                SELECT n, min(o) AS o FROM (
                    SELECT n, o FROM json_array_elements_text(a.approvers::json) WITH ORDINALITY AS x (n, o)
                    UNION ALL
                    SELECT n, o + 1000000 FROM json_array_elements_text(coalesce(a.escalate_to, '[]')::json)
                        WITH ORDINALITY AS y (n, o)
                ) AS every GROUP BY n
            ) AS once;
        END IF;
        UPDATE approvals SET approvers = v_widened, escalated_at = v_now WHERE approval_id = p_approval_id;
        RETURN v_widened;
    END
    $f$;

    -- As in migration 7, for every role; it now also runs when a row's type, step_name or workflow_id
    -- changes (the trigger below), so that a settled step cannot be moved or retyped past the check.
    CREATE OR REPLACE FUNCTION airt_check_decision() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF NEW.status IN ('COMPLETED', 'REJECTED') AND (TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status
                OR NEW.type IS DISTINCT FROM OLD.type OR NEW.step_name IS DISTINCT FROM OLD.step_name
                OR NEW.workflow_id IS DISTINCT FROM OLD.workflow_id)
           AND NOT EXISTS (
                WITH RECURSIVE lineage (workflow_id, depth) AS (
                    SELECT NEW.workflow_id, 0
                    UNION ALL
                    SELECT w.forked_from, l.depth + 1 FROM workflows w JOIN lineage l ON w.workflow_id = l.workflow_id
                     WHERE w.forked_from IS NOT NULL AND l.depth < 100
                )
                SELECT 1 FROM approvals a JOIN lineage l ON a.workflow_id = l.workflow_id
                 WHERE a.step_name = NEW.step_name
                   AND a.status = CASE WHEN NEW.status = 'COMPLETED' THEN 'APPROVED' ELSE 'REJECTED' END) THEN
            RAISE EXCEPTION 'step % of workflow % is an approval: only a recorded decision completes it',
                NEW.step_name, NEW.workflow_id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $f$;
    DROP TRIGGER airt_decided_steps ON workflow_steps;
    CREATE TRIGGER airt_decided_steps BEFORE INSERT OR UPDATE OF status, type, step_name, workflow_id
        ON workflow_steps FOR EACH ROW WHEN (NEW.type = 'human_approval') EXECUTE FUNCTION airt_check_decision();

    -- An approval step settled by a decision is the decision's record in the run (its outputs hold the
    -- values later steps read): a member may neither change nor delete it, nor make a step stop or
    -- start being an approval.  The engine writes a step's outputs in the UPDATE that settles it, and
    -- never touches it again.
    CREATE FUNCTION airt_keep_approval_steps() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF has_table_privilege(session_user, 'approvals', 'UPDATE') THEN
            NULL;
        ELSIF TG_OP = 'UPDATE' AND NEW.type IS DISTINCT FROM OLD.type THEN
            RAISE EXCEPTION 'step % of workflow %: whether a step is an approval cannot change (type % to %); only '
                'a role that may write approvals may change it (the owner of airt_nb''s tables, %, or a superuser)',
                OLD.step_name, OLD.workflow_id, OLD.type, NEW.type,
                pg_get_userbyid((SELECT c.relowner FROM pg_class c WHERE c.oid = 'approvals'::regclass))
                USING ERRCODE = 'insufficient_privilege';
        ELSIF OLD.status IN ('COMPLETED', 'REJECTED') AND (TG_OP = 'DELETE'
                OR (NEW.status, NEW.step_name, NEW.workflow_id, NEW.inputs, NEW.outputs, NEW.error)
                    IS DISTINCT FROM (OLD.status, OLD.step_name, OLD.workflow_id, OLD.inputs, OLD.outputs, OLD.error)) THEN
            RAISE EXCEPTION 'step % of workflow % is an approval settled by a decision (%): its record cannot be '
                'changed or deleted but by a role that may write approvals (the owner of airt_nb''s tables, %, or '
                'a superuser)', OLD.step_name, OLD.workflow_id, OLD.status,
                pg_get_userbyid((SELECT c.relowner FROM pg_class c WHERE c.oid = 'approvals'::regclass))
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $f$;
    CREATE TRIGGER airt_approval_steps_kept BEFORE UPDATE OF status, type, step_name, workflow_id, inputs, outputs,
        error OR DELETE ON workflow_steps FOR EACH ROW WHEN (OLD.type = 'human_approval')
        EXECUTE FUNCTION airt_keep_approval_steps();
    CREATE TRIGGER airt_approval_steps_new BEFORE UPDATE OF type ON workflow_steps
        FOR EACH ROW WHEN (NEW.type = 'human_approval' AND OLD.type IS DISTINCT FROM 'human_approval')
        EXECUTE FUNCTION airt_keep_approval_steps();

    -- A run with decisions on record cannot be deleted by a member (the cascade would erase them), and
    -- who started a run, which exclude_requester reads, cannot change.  The engine deletes no run and
    -- writes started_by only when it inserts one.
    CREATE FUNCTION airt_keep_runs() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            IF NOT has_table_privilege(session_user, 'approvals', 'DELETE') AND (
                    EXISTS (SELECT 1 FROM approvals a WHERE a.workflow_id = OLD.workflow_id)
                    OR EXISTS (SELECT 1 FROM workflow_steps s WHERE s.workflow_id = OLD.workflow_id
                        AND s.type = 'human_approval' AND s.status IN ('COMPLETED', 'REJECTED'))) THEN
                RAISE EXCEPTION 'workflow % has decisions on record (its approvals, or approval steps they settled), '
                    'which deleting it would erase: only a role that may delete from approvals may delete it (the '
                    'owner of airt_nb''s tables, %, or a superuser)', OLD.workflow_id,
                    pg_get_userbyid((SELECT c.relowner FROM pg_class c WHERE c.oid = 'approvals'::regclass))
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN OLD;
        END IF;
        IF NOT has_table_privilege(session_user, 'approvals', 'UPDATE') THEN
            RAISE EXCEPTION 'workflow %: who started it (%) is what exclude_requester checks and cannot change; only '
                'a role that may write approvals may change it (the owner of airt_nb''s tables, %, or a superuser)',
                OLD.workflow_id, OLD.started_by,
                pg_get_userbyid((SELECT c.relowner FROM pg_class c WHERE c.oid = 'approvals'::regclass))
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $f$;
    CREATE TRIGGER airt_kept_runs BEFORE DELETE ON workflows FOR EACH ROW EXECUTE FUNCTION airt_keep_runs();
    CREATE TRIGGER airt_kept_requesters BEFORE UPDATE OF started_by ON workflows
        FOR EACH ROW WHEN (NEW.started_by IS DISTINCT FROM OLD.started_by) EXECUTE FUNCTION airt_keep_runs();

    DO $d$
    DECLARE
        f text;
    BEGIN
        -- CREATE OR REPLACE drops a function's settings: pin the search_path of every one again.
        FOREACH f IN ARRAY ARRAY['airt_decide(text,text,text,text,text)',
            'airt_expire_approval(text,text,text,text,text)', 'airt_cancel_approvals(text,text,text,text)',
            'airt_escalate_approval(text,text)', 'airt_check_decision()', 'airt_keep_approval_steps()',
            'airt_keep_runs()']
        LOOP
            EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
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
    5: """
        ALTER TABLE approvals ADD COLUMN fields TEXT;
        ALTER TABLE approvals ADD COLUMN min_approvals INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE approvals ADD COLUMN approved_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN exclude_requester INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN field_values TEXT;
        ALTER TABLE approvals ADD COLUMN preview TEXT;
        ALTER TABLE approvals ADD COLUMN preview_hash TEXT;
        ALTER TABLE approvals ADD COLUMN gate_step TEXT;
        ALTER TABLE approvals ADD COLUMN reasked_from TEXT;
        ALTER TABLE approvals ADD COLUMN remind_every DOUBLE PRECISION;
        ALTER TABLE approvals ADD COLUMN next_reminder_at TEXT;
        ALTER TABLE approvals ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE approvals ADD COLUMN escalate_at TEXT;
        ALTER TABLE approvals ADD COLUMN escalate_to TEXT;
        ALTER TABLE approvals ADD COLUMN escalated_at TEXT;
        CREATE INDEX approvals_reminders ON approvals (next_reminder_at)
            WHERE status = 'PENDING' AND next_reminder_at IS NOT NULL;
        CREATE INDEX approvals_escalations ON approvals (escalate_at)
            WHERE status = 'PENDING' AND escalate_at IS NOT NULL AND escalated_at IS NULL;

        CREATE TABLE approval_decisions (
            decision_id  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            approval_id  TEXT NOT NULL REFERENCES approvals (approval_id) ON DELETE CASCADE,
            workflow_id  TEXT NOT NULL,
            step_name    TEXT NOT NULL,
            decision     TEXT NOT NULL,
            decided_by   TEXT NOT NULL,
            decided_at   TEXT NOT NULL,
            reason       TEXT,
            field_values TEXT,
            auth         TEXT,
            preview_hash TEXT
        );
        CREATE INDEX approval_decisions_by_approval ON approval_decisions (approval_id, decision_id);
        CREATE INDEX approval_decisions_by_workflow ON approval_decisions (workflow_id);
        CREATE UNIQUE INDEX approval_decisions_one_each ON approval_decisions (approval_id, decided_by)
            WHERE decision = 'APPROVED';
        INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at,
            reason, auth)
            SELECT approval_id, workflow_id, step_name, status, decided_by, decided_at, reason, auth FROM approvals
            WHERE status IN ('APPROVED', 'REJECTED') AND decided_by IS NOT NULL AND decided_at IS NOT NULL
            ORDER BY decided_at, approval_id;
        UPDATE approvals SET approved_count = 1 WHERE status = 'APPROVED';
        """,
    6: """
        ALTER TABLE workflows ADD COLUMN forked_from TEXT;
        ALTER TABLE workflows ADD COLUMN parent_id TEXT;
        ALTER TABLE workflows ADD COLUMN parent_step TEXT;
        CREATE UNIQUE INDEX workflows_by_parent ON workflows (parent_id, parent_step) WHERE parent_id IS NOT NULL;
        CREATE INDEX workflows_by_fork ON workflows (forked_from) WHERE forked_from IS NOT NULL;
        ALTER TABLE compensation_log ADD COLUMN origin TEXT;
        CREATE INDEX compensation_by_origin ON compensation_log (origin) WHERE origin IS NOT NULL;
        CREATE INDEX workflow_steps_waiting ON workflow_steps (next_attempt_at)
            WHERE status = 'WAITING' AND type = 'wait_event';

        CREATE TABLE sent_events (
            event_id    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            workflow_id TEXT NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
            event       TEXT NOT NULL,
            payload     TEXT,
            status      TEXT NOT NULL,
            sent_at     TEXT NOT NULL,
            sent_by     TEXT,
            auth        TEXT,
            step_name   TEXT,
            received_at TEXT
        );
        CREATE UNIQUE INDEX sent_events_once ON sent_events (workflow_id, event);

        CREATE TABLE schedules (
            schedule_id     TEXT PRIMARY KEY,
            name            TEXT NOT NULL,
            cron            TEXT NOT NULL,
            timezone        TEXT NOT NULL,
            spec_hash       TEXT NOT NULL,
            inputs          TEXT NOT NULL,
            workdir         TEXT,
            created_at      TEXT NOT NULL,
            created_by      TEXT,
            next_fire_at    TEXT NOT NULL,
            last_fired_at   TEXT,
            last_workflow_id TEXT
        );
        CREATE INDEX schedules_due ON schedules (next_fire_at);

        CREATE TABLE schedule_firings (
            schedule_id TEXT NOT NULL,
            slot        TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            fired_at    TEXT NOT NULL,
            fired_by    TEXT,
            missed      INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (schedule_id, slot)
        );
        """,
    7: _PG_DECISIONS,
    8: _PG_GUARDS,
}

MIGRATIONS: list[Migration] = [Migration(number, title, sqlite, _POSTGRES[number]) for number, title, sqlite in _SQLITE]

LATEST = MIGRATIONS[-1].number
