"""The ``airt`` command's arguments: its parser and the checks of each argument's value.

A value that does not fit is a usage error (exit status 2) whose message says
what to write instead; see :mod:`airt_nb.cli` for the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["MAX_LIST", "STATUSES", "build_parser"]

STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED")

MAX_LIST = 100_000


def _whole(example: str, maximum: int) -> Any:
    """A whole number from 1 to ``maximum`` (argparse turns the error into exit status 2)."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give e.g. {example}") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is out of range; give a number from 1 to {maximum:,}")
        return value

    return check


_count = _whole("--limit 20", MAX_LIST)  # --limit
_workers = _whole("--max-workers 16", MAX_LIST)  # worker --max-workers
_port = _whole("--port 8765", 65535)  # serve --port


def _db_path(text: str) -> str:
    """``--db``: a database file path or URL; an empty one (an unset shell variable) is not a default."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "empty path; give the database (--db airt.db), or leave --db out to use $AIRT_DB or ./airt.db"
        )
    return text


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
    """``--data``: any JSON value (``-`` reads it from stdin), nested at most MAX_DEPTH levels."""
    from .limits import MAX_DEPTH, depth_problem

    if text == "-":
        text = sys.stdin.read()
    too_deep = argparse.ArgumentTypeError(f"nests too deep (at most {MAX_DEPTH} levels of lists and objects)")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); e.g. --data '{{\"passed\": true}}'") from None
    except RecursionError:
        raise too_deep from None
    if depth_problem(value, MAX_DEPTH) is not None:
        raise too_deep
    return value


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
    if isinstance(value, float) and value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive duration; give e.g. 30 (seconds) or 5m")
    try:
        return seconds(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(" (MAX_DURATION)", "")) from None


def _cron(text: str) -> str:
    """``--cron``: five fields (minute hour day month weekday) or six with seconds last, that fire some day."""
    from .errors import SpecError
    from .schedules import check_cron

    try:
        check_cron(text)
    except SpecError as exc:  # one problem, said without the spec's framing
        raise argparse.ArgumentTypeError(exc.problems[0][2]) from None
    return " ".join(text.split())


def _zone(text: str) -> str:
    """``--tz``: an IANA time zone name."""
    from .errors import SpecError
    from .schedules import check_timezone

    try:
        check_timezone(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0][2]) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument(
        "--db",
        metavar="PATH",
        type=_db_path,
        default=argparse.SUPPRESS,
        help="database (default $AIRT_DB or ./airt.db)",
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
    q.add_argument("--cron", required=True, type=_cron, metavar="EXPR", help='e.g. "0 6 * * 1" (06:00 on Mondays)')
    q.add_argument("--inputs", type=_json_object, metavar="JSON", help="the runs' inputs")
    q.add_argument(
        "--tz", default="UTC", type=_zone, metavar="ZONE", help="the zone the cron expression is read in (default UTC)"
    )
    q.add_argument("--workdir", metavar="DIR", help="the folder its runs run in (default: the current one)")
    sched.add_parser("list", parents=[common], help="every schedule, with when it fires next")
    q = sched.add_parser("remove", parents=[common], help="remove a schedule (its runs stay)")
    q.add_argument("schedule_id", metavar="ID", type=_ident, help="the schedule's id (airt schedule list)")
    p = sub.add_parser("serve", parents=[common], help="the approvals page on its own (token, or JupyterHub's OAuth)")
    p.add_argument("--ip", help="address to listen on (default 127.0.0.1; under JupyterHub the service's)")
    p.add_argument("--port", type=_port, help="port, 1 to 65535 (default 8765; under JupyterHub the service's)")
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
    p.add_argument("--max-workers", type=_workers, default=None, metavar="N", help="steps run at once (16)")
    p = sub.add_parser("db", parents=[common], help="database administration (PostgreSQL)")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    g = db_sub.add_parser("grant", parents=[common], help="create or grant a role whose decisions are its own")
    g.add_argument("user", metavar="USER", help="the login role (created if missing)")
    g.add_argument("--password", help="its password ('-' reads it from stdin); omit for roles that log in otherwise")
    g.add_argument("--group", default="airt_users", help="the group role holding the privileges (airt_users)")
    return parser
