"""Per-user PostgreSQL roles: what ``airt --db OWNER_URL db grant USER`` sets up.

Everyone who decides approvals connects with a role of their own.  Such a
role belongs to one group role (``airt_users`` by default) that may:

* connect to the database and use its schema;
* read and write every airt_nb table (workflows, steps, compensations,
  webhooks, engines, history, audit, events, schedules...) **except**
  ``approvals`` and ``approval_decisions``, which it may only read;
* execute the decision functions of migration 7 (``airt_request_approval``,
  ``airt_decide``, ``airt_expire_approval``, ``airt_cancel_approvals``,
  ``airt_remind_approval``, ``airt_escalate_approval``): the only way such a
  role writes approvals.  ``airt_decide`` applies the approval's rules
  itself (approvers, ``exclude_requester``, one approval per person, N of M).

The triggers of migration 8 keep what such a role may still write from
undoing the record: it may not delete a run with decisions on record (the
cascade would erase them), change who started a run (``exclude_requester``
reads it), change or delete an approval step once a decision settled it (its
outputs hold the approved values), or make a step stop or start being an
approval.  The functions time decisions, cancellations and escalations by the
server's clock, refuse a decision once the deadline has passed by it, and
record the calling role as who cancelled (never ``system``).  So ``grant``
refuses a role named as the engine names itself (``system``): its decisions
would read as the engine's.

A store whose role may not update ``approvals`` knows it runs as such a
role (:attr:`PostgresStore.authenticated_user`): every decision it records
names the server's ``session_user``, never a claimed name.  The owner of the
tables (and a superuser) keep deciding under a claimed name, as on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ..errors import StoreError
from ..identity import name_problem

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["DEFAULT_GROUP", "FUNCTIONS", "READ_ONLY", "TABLES", "GrantReport", "grant"]

DEFAULT_GROUP = "airt_users"
# Every table of the schema: tests/test_postgres.py checks the list against the migrated database.
TABLES = (
    "airt_signals", "audit_log", "compensation_log", "engines", "schedule_firings", "schedules", "sent_events",
    "step_attempts", "webhook_attempts", "webhook_deliveries", "workflow_events", "workflow_specs",
    "workflow_steps", "workflows",
)  # fmt: skip
READ_ONLY = ("airt_meta", "approval_decisions", "approvals")
FUNCTIONS = (
    "airt_request_approval(text)",
    "airt_decide(text, text, text, text, text)",
    "airt_expire_approval(text, text, text, text, text)",
    "airt_cancel_approvals(text, text, text, text)",
    "airt_remind_approval(text, text, text)",
    "airt_escalate_approval(text, text)",
)


@dataclass
class GrantReport:
    """What :func:`grant` did, for people."""

    user: str
    group: str
    created_user: bool = False
    created_group: bool = False
    password_set: bool = False
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.created_group:
            out.append(f"created group role {self.group} (NOLOGIN)")
        out.append(
            f"granted {self.group}: read and write airt_nb's tables, read approvals and decisions, decide through airt_decide()"
        )
        if self.created_user:
            out.append(f"created login role {self.user}" + (" with the given password" if self.password_set else ""))
        elif self.password_set:
            out.append(f"set the password of {self.user}")
        out.append(f"granted {self.group} to {self.user}: decisions made as {self.user} are recorded as {self.user}")
        return out + [f"warning: {w}" for w in self.warnings]


def grant(store: PostgresStore, user: str, *, password: str | None = None, group: str = DEFAULT_GROUP) -> GrantReport:
    """Create (or reuse) the login role ``user`` and let it use airt_nb through ``group``.

    Run as the owner of airt_nb's tables; creating roles also needs
    ``CREATEROLE``.  Idempotent: granting again refreshes the group's
    privileges (after an upgrade added tables) and changes nothing else.

    >>> grant(store, "ann", password="s3cret").lines()  # doctest: +SKIP
    ['created group role airt_users (NOLOGIN)', ...]
    """
    for name in (user, group):
        if not name or len(name) > 63 or "\x00" in name:
            raise StoreError(f"{name!r} is not a role name PostgreSQL accepts (1 to 63 characters)", path=store.path)
    # The role's name is what its decisions are recorded under: it must be a name the engine would
    # accept from a person (not "system", which marks what the engine decides itself).
    problem = name_problem(user)
    if problem is None and user != user.strip():
        problem = "has spaces around it"
    if problem is not None:
        raise StoreError(
            f"cannot set up role {user!r}: decisions made with it would be recorded under its name, which "
            f"{problem.split(';')[0]}; give the person a role with another name (nothing was created)",
            path=store.path,
        )
    report = GrantReport(user, group)
    ident, group_ident = sql.Identifier(user), sql.Identifier(group)
    conn = store.raw_connect("grant")
    try:
        with conn.transaction():
            schema = conn.execute("SELECT current_schema(), current_database()").fetchone()
            if not _exists(conn, group):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group_ident))
                report.created_group = True
            if not _exists(conn, user):
                query = sql.SQL("CREATE ROLE {} LOGIN").format(ident)
                if password:
                    query += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
                conn.execute(query)
                report.created_user = True
            elif password:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
            report.password_set = bool(password)
            _grant_group(conn, group_ident, schema[0], schema[1])
            conn.execute(sql.SQL("GRANT {} TO {}").format(group_ident, ident))
            row = conn.execute(
                "SELECT rolsuper, pg_has_role(%s, (SELECT tableowner FROM pg_tables WHERE tablename = 'approvals' "
                "AND schemaname = current_schema()), 'MEMBER') FROM pg_roles WHERE rolname = %s",
                (user, user),
            ).fetchone()
            if row and (row[0] or row[1]):
                report.warnings.append(
                    f"{user} is a superuser or owns the tables: it may write approvals directly, so its "
                    "decisions are recorded under the name it claims; give people roles of their own"
                )
    except psycopg.Error as exc:
        raise _grant_error(store, exc, user) from exc
    finally:
        conn.close()
    return report


def _exists(conn: Any, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _grant_group(conn: Any, group: sql.Identifier, schema: str, database: str) -> None:
    def names(items: tuple[str, ...]) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(schema, t) for t in items)

    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), group))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), group))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(names(TABLES), group))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(names(READ_ONLY), group))
    conn.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(names(READ_ONLY), group))
    for fn in FUNCTIONS:
        name, args = fn.split("(", 1)
        conn.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}({} TO {}").format(sql.Identifier(schema, name), sql.SQL(args), group)
        )


def _grant_error(store: PostgresStore, exc: psycopg.Error, user: str) -> StoreError:
    text = store.scrub(" ".join(str(exc).split()))
    if getattr(exc, "sqlstate", None) == "42501":
        return StoreError(
            f"database {store.path}: cannot set up role {user} ({text}); run airt db grant with the URL of the "
            "role that owns airt_nb's tables, which also needs CREATEROLE to create roles",
            path=store.path,
        )
    return StoreError(f"database {store.path}: cannot set up role {user} ({text})", path=store.path)
