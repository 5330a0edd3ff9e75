"""The ``airt`` command: list, inspect and decide workflows from a terminal or a script.

::

    airt [--db PATH] [--json] list [--status S] [--name N] [--limit N]
    airt show ID
    airt approve ID [--reason R] [--as USER] [--value NAME=VALUE ...]
    airt reject ID [--reason R] [--as USER]
    airt resume ID | rollback ID | cancel ID
    airt fork ID --from STEP [--inputs JSON] [--spec FILE]   run again from a step (runs here)
    airt send ID NAME [--data JSON] [--as USER]      send an event to a wait_event step
    airt schedule add SPEC.yaml --cron EXPR [--inputs JSON] [--tz ZONE] | list | remove ID
    airt serve [--ip IP] [--port N] [--token T]     the approvals page (airt_nb.server.serve)
    airt dashboard [--as USER]                       the terminal dashboard (airt_nb.tui)
    airt worker [--import MODULE] [--once] [--health-every S] [--drain-timeout S]
                                                     a headless engine: schedules, workflows nobody runs
    airt db grant USER [--password PW]              a PostgreSQL role whose decisions are authenticated

``ID`` is a workflow id (a unique prefix of at least 4 characters is
enough) or the id of a pending approval.  Tables for people by default,
``--json`` for scripts; exit status 0 on success, 1 with a one-line message
on stderr when airt_nb refuses (not found, already decided, not an
approver...), 2 for a usage error.

The command sits on the public API only.  Its engine is opened with
``recover=False`` and no webhook sender: it never takes up a workflow that
a notebook (or another process) runs.  A decision leaves the workflow
RUNNING without a lease and the engine that has the database open picks it
up at its next housekeeping tick (0.1 s); a rollback of a workflow nobody
runs is left ROLLING_BACK for such an engine.  ``resume`` and ``fork``
execute steps, in this process, until the run pauses or ends; ``worker``
is a long-running engine (see :mod:`airt_nb.worker`).

It imports neither pandas nor IPython, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .clitext import approval_json, approval_text, decoded, duration, indent, table, when, workflow_json
from .engine import Engine
from .errors import AirtError, ApprovalError, NotFoundError, StoreError
from .fields import parse_values
from .store import is_postgres_url
from .store.records import SETTLED, TERMINAL

__all__ = ["main"]

_KIND = {"human_approval": "approval", "wait_event": "event", "workflow": "workflow"}
STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED")


MAX_LIST = 100_000


def _count(text: str) -> int:
    """``--limit``: a whole number from 1 to MAX_LIST (argparse turns the error into exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give e.g. --limit 20") from None
    if not 1 <= value <= MAX_LIST:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a number from 1 to {MAX_LIST:,}")
    return value


def _ident(text: str) -> str:
    """``ID``: a workflow or approval id (or a prefix of one): letters, digits, '-' and '_'."""
    if not text or len(text) > 100 or not all(c.isalnum() or c in "-_" for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a workflow or approval id; copy one from `airt list` (letters, digits, '-', '_')"
        )
    return text


def _value_text(text: str) -> str:
    """``--value``: ``NAME=VALUE`` (typed later by the approval's field ``NAME``)."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE; write e.g. --value replicas=3")
    return text


def _json_value(text: str) -> Any:
    """``--data``: any JSON value (``-`` reads it from stdin)."""
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); e.g. --data '{{\"passed\": true}}'") from None


def _json_object(text: str) -> dict[str, Any]:
    """``--inputs``: a JSON object of input names and values."""
    value = _json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of input names and values, not {text!r}")
    return value


def _seconds(text: str) -> float:
    """``--timeout``: seconds (``30``, ``2.5``) or a duration (``30s``, ``5m``), more than 0."""
    from .limits import duration as seconds

    try:
        value: Any = float(text)
    except ValueError:
        value = text
    try:
        return seconds(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument(
        "--db", metavar="PATH", default=argparse.SUPPRESS, help="database (default $AIRT_DB or ./airt.db)"
    )
    parser = argparse.ArgumentParser(
        prog="airt",
        parents=[common],
        description="Inspect and decide airt_nb workflows in a database a notebook may be using.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[common], help="workflows, newest first")
    p.add_argument("--status", type=str.upper, choices=STATUSES, metavar="S", help="only this status")
    p.add_argument("--name", help="only names containing this")
    p.add_argument("--limit", type=_count, default=50, metavar="N", help="at most this many (default 50)")
    p = sub.add_parser("show", parents=[common], help="a workflow, its steps and its pending approval")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix) or approval id")
    for name, what in (("approve", "approve"), ("reject", "reject (rolls back the completed steps)")):
        p = sub.add_parser(name, parents=[common], help=f"{what} the pending approval")
        p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix) or approval id")
        p.add_argument("--reason", help="recorded with the decision")
        p.add_argument("--as", dest="as_user", metavar="USER", help="decide as USER (default $AIRT_USER or you)")
        p.add_argument(
            "--value",
            dest="values",
            action="append",
            default=[],
            type=_value_text,
            metavar="NAME=VALUE",
            help="a typed field of the approval (repeat for several): --value replicas=3",
        )
    p = sub.add_parser("resume", parents=[common], help="run a workflow nobody runs, here, until it pauses or ends")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix)")
    p.add_argument(
        "--timeout", type=_seconds, default=None, metavar="SECONDS", help="give up waiting after this long (30, 5m)"
    )
    p = sub.add_parser("rollback", parents=[common], help="undo a workflow's completed steps")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix)")
    p = sub.add_parser("cancel", parents=[common], help="stop a workflow without undoing anything")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix)")
    p = sub.add_parser("fork", parents=[common], help="run a finished workflow again from a step (runs here)")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix)")
    p.add_argument("--from", dest="from_step", required=True, metavar="STEP", help="the first step that runs again")
    p.add_argument("--inputs", type=_json_object, metavar="JSON", help="inputs that replace the original's")
    p.add_argument("--spec", metavar="FILE", help="an edited spec (YAML) instead of the original's")
    p.add_argument(
        "--timeout", type=_seconds, default=None, metavar="SECONDS", help="give up waiting after this long (30, 5m)"
    )
    p = sub.add_parser("send", parents=[common], help="send an event to the workflow's wait_event step")
    p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix)")
    p.add_argument("event", metavar="NAME", help="the event's name (the step's event:)")
    p.add_argument("--data", type=_json_value, default=None, metavar="JSON", help="the payload (JSON; default null)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="send as USER (default $AIRT_USER or you)")
    p = sub.add_parser("schedule", parents=[common], help="start a workflow on a cron schedule (fired by airt worker)")
    sched = p.add_subparsers(dest="schedule_command", required=True, metavar="add|list|remove")
    q = sched.add_parser("add", parents=[common], help="add a schedule")
    q.add_argument("spec", metavar="SPEC.yaml", help="the workflow spec file")
    q.add_argument("--cron", required=True, metavar="EXPR", help='e.g. "0 6 * * 1" (06:00 on Mondays)')
    q.add_argument("--inputs", type=_json_object, metavar="JSON", help="the runs' inputs")
    q.add_argument("--tz", default="UTC", metavar="ZONE", help="the zone the cron expression is read in (default UTC)")
    q.add_argument("--workdir", metavar="DIR", help="the folder its runs run in (default: the current one)")
    sched.add_parser("list", parents=[common], help="every schedule, with when it fires next")
    q = sched.add_parser("remove", parents=[common], help="remove a schedule (its runs stay)")
    q.add_argument("schedule_id", metavar="ID", type=_ident, help="the schedule's id (airt schedule list)")
    p = sub.add_parser("serve", parents=[common], help="the approvals page on its own (token, or JupyterHub's OAuth)")
    p.add_argument("--ip", help="address to listen on (default 127.0.0.1; under JupyterHub the service's)")
    p.add_argument("--port", type=int, help="port (default 8765; under JupyterHub the service's)")
    p.add_argument("--token", help="access token (default $JUPYTER_TOKEN, else a new one printed with the URL)")
    p = sub.add_parser("dashboard", parents=[common], help="terminal dashboard: workflows, detail, approvals")
    p.add_argument("--as", dest="as_user", metavar="USER", help="decide as USER (default $AIRT_USER or you)")
    p = sub.add_parser(
        "worker", parents=[common], help="a headless engine: fires schedules, continues workflows, sends webhooks"
    )
    p.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE", help="import it first (its @actions)"
    )
    p.add_argument("--poll", type=_seconds, default=1.0, metavar="S", help="how often it fires schedules (1)")
    p.add_argument("--once", action="store_true", help="fire what is due, run it until it pauses or ends, and exit")
    p.add_argument("--health-every", type=_seconds, default=60.0, metavar="S", help="health line period (60)")
    p.add_argument("--drain-timeout", type=_seconds, default=60.0, metavar="S", help="wait for steps on stop (60)")
    p.add_argument("--session", help="its session name (default worker:HOST:PID)")
    p.add_argument("--max-workers", type=_count, default=None, metavar="N", help="steps run at once (16)")
    p = sub.add_parser("db", parents=[common], help="database administration (PostgreSQL)")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    g = db_sub.add_parser("grant", parents=[common], help="create or grant a role whose decisions are its own")
    g.add_argument("user", metavar="USER", help="the login role (created if missing)")
    g.add_argument("--password", help="its password ('-' reads it from stdin); omit for roles that log in otherwise")
    g.add_argument("--group", default="airt_users", help="the group role holding the privileges (airt_users)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airt`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    if args.command == "worker":
        from .worker import main as worker_main

        return worker_main(args)
    if args.command in ("serve", "dashboard"):  # long-running apps that open the database themselves
        return _app(args)
    if args.command == "db":
        return _db(args, as_json)
    try:
        engine = _open(getattr(args, "db", None))
        try:
            result = COMMANDS[args.command](engine, args)
        finally:
            engine.close()
    except AirtError as exc:
        text = " ".join(str(exc).split())
        if as_json:
            print(json.dumps({"error": text, "type": type(exc).__name__}))
        print(f"airt: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("airt: interrupted", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(result["json"], indent=2, default=str))
    else:
        print(result["text"])
    return 0


def _open(db: str | None) -> Engine:
    path = db or os.environ.get("AIRT_DB") or "airt.db"
    plain = path[len("sqlite:///") :] if path.startswith("sqlite:///") else path
    if not is_postgres_url(path) and not Path(plain).is_file():
        raise StoreError(f"no airt_nb database at {plain}; pass --db PATH or set AIRT_DB", path=plain)
    # recover=False: never take up a workflow another engine runs; no webhook sender: the
    # engines that run workflows deliver the notifications this command queues.
    return Engine(path, recover=False, webhook_url="")


def _db(args: argparse.Namespace, as_json: bool) -> int:
    """``airt db grant USER``: see :mod:`airt_nb.store.pg_roles` for what is granted."""
    db = getattr(args, "db", None) or os.environ.get("AIRT_DB") or "airt.db"
    if not is_postgres_url(db):
        print("airt: db grant needs a PostgreSQL database (--db postgresql://OWNER@HOST/DB)", file=sys.stderr)
        return 1
    password = args.password
    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    from .store import open_store
    from .store.pg_roles import grant

    try:
        store = open_store(db)
        try:
            report = grant(store, args.user, password=password or None, group=args.group)  # type: ignore[arg-type]
        finally:
            store.close()
    except AirtError as exc:
        print(f"airt: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"user": report.user, "group": report.group, "done": report.lines()}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def _app(args: argparse.Namespace) -> int:
    db = getattr(args, "db", None)
    if args.command == "serve":
        from .server.serve import serve

        return serve(db=db, ip=args.ip, port=args.port, token=args.token)
    try:
        from .tui import run_dashboard
    except ImportError as exc:
        print(f"airt: the dashboard needs Textual ({exc}); pip install 'airt_nb[tui]'", file=sys.stderr)
        return 1
    try:
        return run_dashboard(_open(db), as_user=args.as_user)
    except AirtError as exc:
        print(f"airt: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


# -- commands -----------------------------------------------------------------------------------


def _list(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    records = engine.list(status=args.status, name=args.name, limit=args.limit)
    pending = {a.workflow_id: a for a in engine.store.approvals(status="PENDING")}
    rows = []
    for r in records:
        a = pending.get(r.workflow_id)
        if a is not None:
            note = f"approval {a.step_name!r}: {a.message or ''}"
        elif r.waiting_for:
            note = f"waiting for {r.waiting_for}"
        else:
            note = r.error or ""
        rows.append(
            [
                r.workflow_id,
                r.name,
                r.status,
                f"{r.done_steps}/{r.total_steps}",
                when(r.created_at),
                r.started_by or "",
                note,
            ]
        )
    text = (
        table(["WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED (UTC)", "BY", "NOTE"], rows)
        if rows
        else "no workflows" + (f" with status {args.status}" if args.status else "")
    )
    data = [{**workflow_json(r), "pending_approval": approval_json(pending.get(r.workflow_id))} for r in records]
    return {"text": text, "json": data}


def _show(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    run = engine.get(workflow_id)
    rec = run.record
    steps = run.steps()
    approvals = run.approvals()
    deliveries = engine.store.deliveries(workflow_id=workflow_id)
    lines = [f"workflow {rec.workflow_id}  {rec.name}  {rec.status}"]
    fields = [
        ("started by", f"{rec.started_by or '?'} at {when(rec.created_at)} UTC"),
        ("updated", f"{when(rec.updated_at)} UTC"),
        ("finished", f"{when(rec.finished_at)} UTC" if rec.finished_at else None),
        ("progress", f"{rec.done_steps}/{rec.total_steps} steps"),
        ("inputs", rec.inputs),
        ("waiting for", rec.waiting_for),
        ("error", rec.error),
        *(("warning", w) for w in rec.warning_list),
    ]
    lines += [f"  {k:<12}{v}" for k, v in fields if v]
    lines += ["", "steps"]
    step_rows = [
        [
            str(s.position + 1),
            s.step_name,
            _KIND.get(s.type, s.action or ""),
            s.status,
            str(s.attempt or ""),
            duration(s.started_at, s.finished_at),
            s.error or "",
        ]
        for s in steps
    ]
    lines += indent(table(["#", "STEP", "ACTION", "STATUS", "ATTEMPT", "DURATION", "ERROR"], step_rows))
    decisions = engine.store.decisions(workflow_id=workflow_id)
    for a in approvals:
        lines += ["", *approval_text(a, rec, decisions)]
    if deliveries:
        lines += ["", "webhook deliveries"]
        delivery_rows = [
            [d.event, d.status, str(d.attempts), str(d.last_status or ""), d.last_error or "", d.url or ""]
            for d in deliveries
        ]
        lines += indent(table(["EVENT", "STATUS", "ATTEMPTS", "HTTP", "LAST ERROR", "URL"], delivery_rows))
    data = {
        "workflow": workflow_json(rec),
        "steps": [decoded(asdict(s), "inputs", "outputs", "state") for s in steps],
        "approvals": [approval_json(a) for a in approvals],
        "decisions": [decoded(asdict(d), "field_values") for d in decisions],
        "compensations": [decoded(asdict(c), "inputs", "outputs", "state") for c in run.compensations()],
        "deliveries": [
            {**decoded(asdict(d), "payload"), "history": _history(engine, d.delivery_id)} for d in deliveries
        ],
    }
    return {"text": "\n".join(lines), "json": data}


def _decide(approve: bool) -> Any:
    def command(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
        workflow_id, approval_id = _resolve(engine, args.id)
        decide = engine.approve if approve else engine.reject
        values = _typed_values(engine, workflow_id, approval_id, args.values)
        approval = decide(workflow_id, by=args.as_user, reason=args.reason, approval_id=approval_id, values=values)
        status = engine.get(workflow_id).status
        verb = "approved" if approve else "rejected"
        reason = f": {approval.reason}" if approval.reason else ""
        who = approval.decided_by or args.as_user or engine.user
        text = f"{verb} step {approval.step_name!r} of workflow {workflow_id} as {who}{reason}"
        if approval.values:
            text += "\n  values " + ", ".join(f"{k}={json.dumps(v)}" for k, v in approval.values.items())
        if approval.status == "PENDING":
            more = approval.min_approvals - approval.approved_count
            text += (
                f"\n{approval.approved_count} of {approval.min_approvals} approvals: it waits for {more} more "
                "from other people"
            )
        elif status == "RUNNING" or status == "ROLLING_BACK":
            doing = "continues it" if approve else "rolls it back"
            text += (
                f"\nworkflow {workflow_id} is {status}: the engine that has this database open {doing} "
                f"(if none is running, open the notebook or run `airt resume {workflow_id}`)"
            )
        else:
            text += f"\nworkflow {workflow_id} is {status}"
        return {"text": text, "json": {**(approval_json(approval) or {}), "workflow_status": status}}

    return command


def _typed_values(engine: Engine, workflow_id: str, approval_id: str | None, texts: list[str]) -> dict[str, Any] | None:
    """``--value NAME=VALUE`` options, typed by the fields of the approval they decide."""
    if not texts:
        return None
    if approval_id:
        found = engine.store.approvals(approval_id=approval_id)
    else:
        found = engine.store.approvals(workflow_id=workflow_id, status="PENDING")
    fields = found[0].field_specs if found else {}
    try:
        return parse_values(fields, texts)
    except ValueError as exc:
        raise ApprovalError(str(exc), workflow_id=workflow_id) from None


def _resume(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    outcome = engine.resume(workflow_id)
    run = engine.get(workflow_id)
    if outcome != "resumed":
        return {
            "text": f"workflow {workflow_id} is {outcome}; nothing to do here",
            "json": {"workflow_id": workflow_id, "outcome": outcome, "status": run.status},
        }
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    # Runs here until it pauses, ends, waits for an action this process does not have, or loses its lease.
    while engine.is_local(workflow_id) and run.status not in SETTLED:
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            run.wait(timeout=0.2)
        except TimeoutError:
            pass
    status = run.status
    waiting = run.waiting_for
    text = f"workflow {workflow_id} resumed here and is now {status}"
    if waiting and status not in TERMINAL:
        text += f", waiting for {waiting} (define it where the workflow was written and resume there)"
    if run.error and status in TERMINAL:
        text += f": {run.error}"
    return {
        "text": text,
        "json": {"workflow_id": workflow_id, "outcome": outcome, "status": status, "waiting_for": waiting},
    }


def _rollback(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    outcome = engine.rollback(workflow_id)
    if outcome == "requested":
        text = f"asked the engine running workflow {workflow_id} to roll it back"
    else:
        text = (
            f"workflow {workflow_id} is ROLLING_BACK: the engine that has this database open undoes its steps "
            f"(if none is running, run `airt resume {workflow_id}` to do it here)"
        )
    return {
        "text": text,
        "json": {"workflow_id": workflow_id, "outcome": outcome, "status": engine.status_of(workflow_id)},
    }


def _cancel(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    outcome = engine.cancel(workflow_id)
    if outcome == "requested":
        text = f"asked the engine running workflow {workflow_id} to cancel it"
    else:
        text = f"workflow {workflow_id} is {engine.status_of(workflow_id)}"
    return {
        "text": text,
        "json": {"workflow_id": workflow_id, "outcome": outcome, "status": engine.status_of(workflow_id)},
    }


def _run_here(engine: Engine, workflow_id: str, timeout: float | None) -> tuple[str, str | None]:
    """Run a workflow this engine executes until it pauses, ends, waits for an action, or ``timeout``."""
    run = engine.get(workflow_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while engine.is_local(workflow_id) and run.status not in SETTLED:
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            run.wait(timeout=0.2)
        except TimeoutError:
            pass
    return run.status, run.waiting_for


def _fork(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    spec = Path(args.spec).read_text() if args.spec else None
    run = engine.fork(workflow_id, args.from_step, args.inputs, spec=spec, check_actions=False)
    status, waiting = _run_here(engine, run.id, args.timeout)
    text = f"forked workflow {workflow_id} from step {args.from_step!r} as {run.id}, now {status}"
    if waiting and status not in TERMINAL:
        text += f", waiting for {waiting} (define it where the workflow was written; that engine takes it up)"
    if run.error and status in TERMINAL:
        text += f": {run.error}"
    return {
        "text": text,
        "json": {"workflow_id": run.id, "forked_from": workflow_id, "status": status, "waiting_for": waiting},
    }


def _send(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id = engine.resolve_id(args.id)
    record = engine.send(workflow_id, args.event, args.data, by=args.as_user)
    status = engine.status_of(workflow_id)
    if record.status == "RECEIVED":
        text = f"sent event {args.event!r} to workflow {workflow_id}: step {record.step_name!r} received it"
        if status == "RUNNING":
            text += "; the engine that has this database open continues it"
    else:
        text = f"sent event {args.event!r} to workflow {workflow_id}: kept until its step is reached"
    return {"text": text, "json": {**asdict(record), "payload": record.data, "workflow_status": status}}


def _schedule(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    if args.schedule_command == "add":
        text = Path(args.spec).read_text()
        record = engine.schedule(
            text, args.cron, args.inputs, timezone=args.tz, workdir=args.workdir, check_actions=False
        )
        out = f"schedule {record.schedule_id}: {record.name} at {record.cron!r} ({record.timezone}), next {when(record.next_fire_at)} UTC"
        return {"text": out + "\n`airt worker` fires it (each slot once)", "json": asdict(record)}
    if args.schedule_command == "remove":
        engine.unschedule(args.schedule_id)
        return {"text": f"removed schedule {args.schedule_id}", "json": {"removed": args.schedule_id}}
    records = engine.schedules()
    rows = [
        [
            r.schedule_id,
            r.name,
            r.cron,
            r.timezone,
            when(r.next_fire_at),
            when(r.last_fired_at),
            r.last_workflow_id or "",
        ]
        for r in records
    ]
    text = table(["SCHEDULE", "NAME", "CRON", "ZONE", "NEXT (UTC)", "LAST (UTC)", "LAST RUN"], rows)
    return {"text": text if rows else "no schedules", "json": [asdict(r) for r in records]}


COMMANDS = {
    "fork": _fork,
    "send": _send,
    "schedule": _schedule,
    "list": _list,
    "show": _show,
    "approve": _decide(True),
    "reject": _decide(False),
    "resume": _resume,
    "rollback": _rollback,
    "cancel": _cancel,
}


# -- helpers --------------------------------------------------------------------------------------


def _resolve(engine: Engine, ident: str) -> tuple[str, str | None]:
    """``(workflow_id, approval_id or None)`` for a workflow id (or prefix) or an approval id (or prefix)."""
    try:
        return engine.resolve_id(ident), None
    except NotFoundError:
        exact = engine.store.approvals(approval_id=ident)
        matches = exact or [a for a in engine.store.approvals(status="PENDING") if a.approval_id.startswith(ident)]
        if len(ident) >= 4 and len(matches) == 1:
            return matches[0].workflow_id, matches[0].approval_id
        raise


def _history(engine: Engine, delivery_id: str) -> list[dict[str, Any]]:
    keys = ("attempt", "started_at", "finished_at", "outcome", "http_status", "error")
    return [dict(zip(keys, row, strict=True)) for row in engine.store.delivery_attempts(delivery_id)]


if __name__ == "__main__":
    sys.exit(main())
