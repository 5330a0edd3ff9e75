"""The ``airt`` command: list, inspect and decide workflows from a terminal or a script.

::

    airt [--db PATH] [--json] list [--status S] [--name N] [--limit N]
    airt show ID
    airt approve ID [--reason R] [--as USER]
    airt reject ID [--reason R] [--as USER]
    airt resume ID | rollback ID | cancel ID
    airt serve [--ip IP] [--port N] [--token T]     the approvals page (airt_nb.server.serve)
    airt dashboard [--as USER]                       the terminal dashboard (airt_nb.tui)
    airt worker [--health-every S] [--drain-timeout S]   a headless engine (airt_nb.worker)
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
runs is left ROLLING_BACK for such an engine.  ``resume`` is the one
command that executes steps, in this process and its current folder.

It imports neither pandas nor IPython, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import AirtError, NotFoundError, StoreError
from .store import is_postgres_url
from .store.records import SETTLED, TERMINAL, ApprovalRecord, WorkflowRecord
from .timeutil import to_epoch

__all__ = ["main"]

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


def _seconds(text: str) -> float:
    """``--timeout``: seconds (``30``, ``2.5``) or a duration (``30s``, ``5m``), more than 0."""
    from .limits import duration

    try:
        value: Any = float(text)
    except ValueError:
        value = text
    try:
        return duration(value)
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
    p.add_argument("id", metavar="ID", type=_ident)
    for name, what in (("approve", "approve"), ("reject", "reject (rolls back the completed steps)")):
        p = sub.add_parser(name, parents=[common], help=f"{what} the pending approval")
        p.add_argument("id", metavar="ID", type=_ident, help="workflow id (or prefix) or approval id")
        p.add_argument("--reason", help="recorded with the decision")
        p.add_argument("--as", dest="as_user", metavar="USER", help="decide as USER (default $AIRT_USER or you)")
    p = sub.add_parser("resume", parents=[common], help="run a workflow nobody runs, here, until it pauses or ends")
    p.add_argument("id", metavar="ID", type=_ident)
    p.add_argument(
        "--timeout", type=_seconds, default=None, metavar="SECONDS", help="give up waiting after this long (30, 5m)"
    )
    p = sub.add_parser("rollback", parents=[common], help="undo a workflow's completed steps")
    p.add_argument("id", metavar="ID", type=_ident)
    p = sub.add_parser("cancel", parents=[common], help="stop a workflow without undoing anything")
    p.add_argument("id", metavar="ID", type=_ident)
    p = sub.add_parser("serve", parents=[common], help="the approvals page on its own (token, or JupyterHub's OAuth)")
    p.add_argument("--ip", help="address to listen on (default 127.0.0.1; under JupyterHub the service's)")
    p.add_argument("--port", type=int, help="port (default 8765; under JupyterHub the service's)")
    p.add_argument("--token", help="access token (default $JUPYTER_TOKEN, else a new one printed with the URL)")
    p = sub.add_parser("dashboard", parents=[common], help="terminal dashboard: workflows, detail, approvals")
    p.add_argument("--as", dest="as_user", metavar="USER", help="decide as USER (default $AIRT_USER or you)")
    p = sub.add_parser("worker", parents=[common], help="a headless engine: continues workflows, sends webhooks")
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
    if args.command in ("serve", "dashboard"):  # long-running apps that open the database themselves
        return _app(args)
    if args.command == "worker":
        from .worker import main as worker_main

        return worker_main(args)
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
                _when(r.created_at),
                r.started_by or "",
                note,
            ]
        )
    text = (
        _table(["WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED (UTC)", "BY", "NOTE"], rows)
        if rows
        else "no workflows" + (f" with status {args.status}" if args.status else "")
    )
    data = [{**_workflow_json(r), "pending_approval": _approval_json(pending.get(r.workflow_id))} for r in records]
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
        ("started by", f"{rec.started_by or '?'} at {_when(rec.created_at)} UTC"),
        ("updated", f"{_when(rec.updated_at)} UTC"),
        ("finished", f"{_when(rec.finished_at)} UTC" if rec.finished_at else None),
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
            "approval" if s.type == "human_approval" else s.action or "",
            s.status,
            str(s.attempt or ""),
            _duration(s.started_at, s.finished_at),
            s.error or "",
        ]
        for s in steps
    ]
    lines += _indent(_table(["#", "STEP", "ACTION", "STATUS", "ATTEMPT", "DURATION", "ERROR"], step_rows))
    for a in approvals:
        lines += ["", *_approval_text(a, rec)]
    if deliveries:
        lines += ["", "webhook deliveries"]
        delivery_rows = [
            [d.event, d.status, str(d.attempts), str(d.last_status or ""), d.last_error or "", d.url or ""]
            for d in deliveries
        ]
        lines += _indent(_table(["EVENT", "STATUS", "ATTEMPTS", "HTTP", "LAST ERROR", "URL"], delivery_rows))
    data = {
        "workflow": _workflow_json(rec),
        "steps": [_decoded(asdict(s), "inputs", "outputs", "state") for s in steps],
        "approvals": [_approval_json(a) for a in approvals],
        "compensations": [_decoded(asdict(c), "inputs", "outputs", "state") for c in run.compensations()],
        "deliveries": [
            {**_decoded(asdict(d), "payload"), "history": _history(engine, d.delivery_id)} for d in deliveries
        ],
    }
    return {"text": "\n".join(lines), "json": data}


def _decide(approve: bool) -> Any:
    def command(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
        workflow_id, approval_id = _resolve(engine, args.id)
        decide = engine.approve if approve else engine.reject
        approval = decide(workflow_id, by=args.as_user, reason=args.reason, approval_id=approval_id)
        status = engine.get(workflow_id).status
        verb = "approved" if approve else "rejected"
        reason = f": {approval.reason}" if approval.reason else ""
        text = f"{verb} step {approval.step_name!r} of workflow {workflow_id} as {approval.decided_by}{reason}"
        if status == "RUNNING" or status == "ROLLING_BACK":
            doing = "continues it" if approve else "rolls it back"
            text += (
                f"\nworkflow {workflow_id} is {status}: the engine that has this database open {doing} "
                f"(if none is running, open the notebook or run `airt resume {workflow_id}`)"
            )
        else:
            text += f"\nworkflow {workflow_id} is {status}"
        return {"text": text, "json": {**_decoded(asdict(approval), "context", "approvers"), "workflow_status": status}}

    return command


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


COMMANDS = {
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


def _approval_text(a: ApprovalRecord, rec: WorkflowRecord) -> list[str]:
    context = json.loads(a.context) if a.context else {}
    if a.status != "PENDING":
        reason = f" ({a.reason})" if a.reason else ""
        return [
            f"approval {a.approval_id} (step {a.step_name!r}): {a.status} by {a.decided_by} at {_when(a.decided_at)} UTC{reason}"
        ]
    lines = [f"pending approval {a.approval_id} (step {a.step_name!r})"]
    outcome = "approved" if a.on_timeout == "approve" else "rejected"
    deadline = f"{_when(a.deadline)} UTC, then {outcome} automatically" if a.deadline else "none"
    lines += [
        f"  {'message':<12}{a.message or ''}",
        f"  {'approvers':<12}{', '.join(a.approver_list) or 'anyone'}",
        f"  {'requested':<12}{_when(a.requested_at)} UTC",
        f"  {'deadline':<12}{deadline}",
    ]
    depends = context.get("depends_on") or {}
    if depends:
        lines.append("  outputs it follows:")
        lines += [f"    {step}: {json.dumps(out, default=str)}" for step, out in depends.items()]
    undo = context.get("undo") or []
    lines.append("  a rejection would undo (newest first):" if undo else "  a rejection would undo nothing")
    lines += [f"    {u['step']} ({u['action']}) {json.dumps(u.get('inputs'), default=str)}" for u in undo]
    if context.get("not_undone"):
        lines.append(f"  completed, cannot be undone: {', '.join(context['not_undone'])}")
    lines.append(
        f"  decide: airt approve {rec.workflow_id} --reason ...   |   airt reject {rec.workflow_id} --reason ..."
    )
    return lines


def _workflow_json(r: WorkflowRecord) -> dict[str, Any]:
    data = _decoded(asdict(r), "inputs", "warnings")
    data.pop("spec", None)
    data["warnings"] = data["warnings"] or []
    return data


def _approval_json(a: ApprovalRecord | None) -> dict[str, Any] | None:
    return None if a is None else _decoded(asdict(a), "context", "approvers")


def _history(engine: Engine, delivery_id: str) -> list[dict[str, Any]]:
    keys = ("attempt", "started_at", "finished_at", "outcome", "http_status", "error")
    return [dict(zip(keys, row, strict=True)) for row in engine.store.delivery_attempts(delivery_id)]


def _decoded(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        if isinstance(data.get(key), str):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    return data


def _when(text: str | None) -> str:
    return text[:19].replace("T", " ") if text else ""


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    seconds = max(0.0, to_epoch(end) - to_epoch(start))
    return f"{seconds:.2f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], max_width: int = 60) -> str:
    cells = [[_cell(c, max_width) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(out)


def _cell(value: str, max_width: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


if __name__ == "__main__":
    sys.exit(main())
