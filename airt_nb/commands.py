"""What ``%%workflow`` and ``%workflow`` do, as plain functions over an :class:`~airt_nb.Engine`.

The magics (:mod:`airt_nb.magics`) are a thin adapter: they parse nothing
themselves, hand the line here, display what comes back (a ``Run``, a
panel, a view) or print it (a ``str``), and turn an :class:`~airt_nb.AirtError`
or a :class:`UsageProblem` into a message without a traceback.  Keeping the
commands free of IPython makes them testable as functions and reusable.

Imports no IPython; panels (ipywidgets) are imported only by the commands
that return one.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import os
import shlex
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import __version__, session
from .engine import Engine
from .fields import parse_values
from .plan import Plan
from .run import Run
from .store.records import WORKFLOW_STATUSES
from .views import Banner, PlanView, WorkflowList, this_notebook

__all__ = [
    "CELL_USAGE",
    "LINE_USAGE",
    "CellOptions",
    "UsageProblem",
    "banner",
    "line_parser",
    "parse_cell_line",
    "run_line",
    "start_cell",
]

CELL_USAGE = "%%workflow [-o VAR] [--wait] [--inputs EXPR] [--as USER] [--dry-run]"
LINE_USAGE = """\
%workflow list [--status S] [--name TEXT] [--limit N]   newest workflows of the database (all kernels)
%workflow show ID                     a live panel of any workflow (also another kernel's)
%workflow approve ID [--reason TEXT] [--as USER] [--value NAME=VALUE ...]
%workflow reject ID [--reason TEXT] [--as USER] [--value NAME=VALUE ...]   (values: recorded, not needed)
%workflow rollback ID | resume ID | cancel ID
%workflow fork ID --from STEP [--inputs EXPR]   run a finished workflow again from STEP (a new run)
%workflow send ID NAME [--data EXPR]  send event NAME (payload: a Python expression) to a wait_event step
%workflow approvals                   every pending approval, decidable in place
%workflow dashboard                   workflows with filters, detail, inbox and tables
%workflow config [--db PATH]          show or switch the kernel's database
%%workflow [-o VAR] [--wait] [--inputs EXPR] [--as USER] [--dry-run]   + YAML body: start a workflow
IDs may be abbreviated to a unique prefix of at least 4 characters.
IPython replaces {var} (an id: {run.id}) only in a line without a dict literal: write the dict
with doubled braces (--data {{'passed': True}}) or pass a variable (--data payload)."""


class UsageProblem(Exception):
    """A magic was called with arguments it does not understand."""


class _Parser(argparse.ArgumentParser):
    """Reports a problem as :class:`UsageProblem` instead of printing and exiting."""

    hint = "see %workflow help"

    def __init__(self, **kwargs: Any):
        kwargs["add_help"] = False
        kwargs["exit_on_error"] = False
        super().__init__(**kwargs)

    def error(self, message: str) -> Any:
        raise UsageProblem(f"{self.prog}: {message}; {self.hint}")


#: options whose value is a Python expression of the kernel's namespace (quotes are part of it)
_EXPRESSION_OPTIONS = frozenset({"--inputs", "--data"})


def _split(line: str, prog: str, hint: str) -> list[str]:
    """Words of a magic's line, as a shell splits them, except that a Python literal starting with
    ``{``, ``[`` or ``(`` stays one word: ``--inputs {'version': '2.0'}`` needs no quotes around it.
    ``hint`` ends the message of a line that cannot be split (where to read the magic's usage)."""
    words: list[str] = []
    current, depth, quote = "", 0, ""
    for ch in line:
        if quote:
            current += ch
            quote = "" if ch == quote else quote
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0:
            if current:
                words.append(current)
            current = ""
            continue
        current += ch
    if quote or depth:
        missing = f"closing {quote}" if quote else "a closing bracket"
        raise UsageProblem(f"{prog}: {missing} is missing (check the quotes and brackets); {hint}")
    if current:
        words.append(current)
    out: list[str] = []
    for word in words:
        if word[0] in "([{":
            out.append(word)  # a Python expression, kept as written
            continue
        if out and out[-1] in _EXPRESSION_OPTIONS and word[0] in "'\"":
            # The value of --data / --inputs is Python: --data 'ok' is the text ok.  A whole expression
            # in quotes, as a shell would want it (--inputs "{'a': 1}"), is that expression.
            inner = word[1:-1] if len(word) > 1 and word[-1] == word[0] else ""
            out.append(inner if inner[:1] in ("(", "[", "{") else word)
            continue
        try:
            out += shlex.split(word)
        except ValueError as exc:
            raise UsageProblem(f"{prog}: {exc} (check the quotes); {hint}") from None
    return out


#: arguments that are ids or names, which never hold a brace or start with '$': one that does is a
#: variable IPython left as written
_NAMES = (("id", "id"), ("event", "event name"), ("from_step", "--from"), ("as_user", "--as"))


def _check_expanded(line: str, words: list[str], args: argparse.Namespace, prog: str) -> None:
    """Refuse an id still written ``{expr}`` or ``$name``, and say why IPython left it so.

    IPython expands a magic's line all or nothing: if one ``{...}`` in it cannot be evaluated
    (a dict literal is not an expression), the magic gets the whole line as typed, and the id
    would be looked up as the text ``{ev.id}``: "no workflow '{ev.id}'" sends the user hunting.
    """
    for attr, what in _NAMES:
        value = getattr(args, attr, None)
        if isinstance(value, str) and ("{" in value or value.startswith("$")):
            why = _why_unexpanded(line, words, "the id" if attr == "id" else "the value")
            raise UsageProblem(f"{prog}: IPython did not expand the {what} {value}{why}")


def _parsed(text: str) -> ast.expr | None:
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError):
        return None


def _why_unexpanded(line: str, words: list[str], instead: str) -> str:
    try:
        fields = [n + (f":{spec}" if spec else "") for _, n, spec, _ in string.Formatter().parse(line) if n is not None]
    except ValueError:  # IPython's formatter stumbled on the same
        return (
            ": the line has a '{' or '}' that does not pair up, and then IPython leaves the whole line as written; "
            "write a brace meant as text doubled ({{ or }}), or put the value in a variable"
        )
    field = next((f for f in fields if _parsed(f) is None), None)
    if field is None:
        return (
            ": evaluating it in this kernel failed (a name not defined yet?), and then IPython leaves the whole "
            f"line as written; run the cell that sets it, or give {instead} itself"
        )
    literal = "{" + field + "}"
    is_dict = isinstance(_parsed(literal), ast.Dict)
    what = "the dict" if is_dict else "it"
    doubled = literal.replace("{", "{{").replace("}", "}}")  # what IPython turns back into the literal
    option = next((w for w, nxt in itertools.pairwise(words) if field in nxt and w.startswith("--")), "")
    fix = f"write {what} with doubled braces ({doubled})"
    if option in _EXPRESSION_OPTIONS:
        fix = f"write {what} with doubled braces ({option} {doubled}) or put it in a variable ({option} payload)"
    return (
        f", because the line also holds {literal}{', a dict literal' if is_dict else ''}, and IPython expands "
        f"the {{...}} of a line only when each is a Python expression (else it leaves the whole line as written); {fix}"
    )


# -- %%workflow -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellOptions:
    var: str | None = None
    wait: bool = False
    inputs: str | None = None
    as_user: str | None = None
    dry_run: bool = False


def parse_cell_line(line: str) -> CellOptions:
    """The options of a ``%%workflow`` line."""
    parser = _Parser(prog="%%workflow")
    parser.hint = f"usage: {CELL_USAGE}"
    parser.add_argument("-o", "--out", dest="var")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--inputs")
    parser.add_argument("--as", dest="as_user")
    parser.add_argument("--dry-run", action="store_true")
    try:
        args = parser.parse_args(_split(line, "%%workflow", f"usage: {CELL_USAGE}"))
    except argparse.ArgumentError as exc:
        raise UsageProblem(f"%%workflow: {exc}; usage: {CELL_USAGE}") from None
    if args.var is not None and not args.var.isidentifier():
        raise UsageProblem(f"%%workflow: -o needs a variable name, got {args.var!r}; usage: {CELL_USAGE}")
    return CellOptions(args.var, args.wait, args.inputs, args.as_user, args.dry_run)


def start_cell(
    engine: Engine,
    body: str,
    options: CellOptions,
    evaluate: Callable[[str], Any] | None = None,
) -> Run | PlanView:
    """Validate the YAML ``body`` and start it (or, with ``--dry-run``, show its plan).

    Raises :class:`~airt_nb.SpecError` for a bad spec (nothing is written).
    """
    if not body.strip():
        raise UsageProblem(f"%%workflow: the cell has no YAML below the first line; usage: {CELL_USAGE}")
    inputs: Mapping[str, Any] | None = None
    if options.inputs is not None:
        inputs = _inputs(options.inputs, evaluate, "%%workflow")
    if options.dry_run:
        return PlanView(Plan.compile(engine.validate(body)))
    return engine.start(body, inputs, as_user=options.as_user)


def _evaluated(expr: str, evaluate: Callable[[str], Any] | None, where: str) -> Any:
    if evaluate is None:
        raise UsageProblem(f"{where} needs a namespace to evaluate the expression in")
    try:
        return evaluate(expr)
    except Exception as exc:
        raise UsageProblem(f"{where} {expr!r} failed: {type(exc).__name__}: {exc}") from None


def _inputs(expr: str, evaluate: Callable[[str], Any] | None, prog: str) -> Mapping[str, Any]:
    inputs = _evaluated(expr, evaluate, f"{prog}: --inputs")
    if not isinstance(inputs, Mapping):
        raise UsageProblem(
            f"{prog}: --inputs must give a dict of input values, got {type(inputs).__name__}; "
            "e.g. --inputs {'target': 'out/r'} or --inputs params"
        )
    return inputs


# -- %workflow --------------------------------------------------------------------------------------------


def line_parser() -> argparse.ArgumentParser:
    """The parser of ``%workflow`` lines (its subcommands are the reference's table of them)."""
    parser = _Parser(prog="%workflow")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    listing = sub.add_parser("list")
    listing.add_argument("--status")
    listing.add_argument("--name")
    listing.add_argument("--limit", type=int, default=20)
    for name in ("show", "rollback", "resume", "cancel"):
        sub.add_parser(name).add_argument("id")
    for name in ("approve", "reject"):
        p = sub.add_parser(name)
        p.add_argument("id")
        p.add_argument("--reason")
        p.add_argument("--as", dest="as_user")
        p.add_argument("--value", dest="values", action="append", default=[])
    fork = sub.add_parser("fork")
    fork.add_argument("id")
    fork.add_argument("--from", dest="from_step", required=True)
    fork.add_argument("--inputs")
    send = sub.add_parser("send")
    send.add_argument("id")
    send.add_argument("event")
    send.add_argument("--data")
    for name in ("approvals", "dashboard", "help"):
        sub.add_parser(name)
    config = sub.add_parser("config")
    config.add_argument("--db")
    return parser


def run_line(line: str, engine: Engine | None = None, evaluate: Callable[[str], Any] | None = None) -> Any:
    """Carry out one ``%workflow`` line: returns something to display, or a ``str`` to print.

    ``evaluate`` evaluates the Python expressions of ``--inputs`` and ``--data`` (the kernel's namespace).
    """
    words = _split(line, "%workflow", "see %workflow help")
    if not words or words[0] in ("help", "-h", "--help"):
        return LINE_USAGE
    try:
        args = line_parser().parse_args(words)
    except argparse.ArgumentError as exc:
        raise UsageProblem(f"%workflow: {exc}; see %workflow help") from None
    _check_expanded(line, words, args, f"%workflow {args.command}")
    if args.command == "config":
        if args.db:
            return banner(session.open_engine(args.db))
        eng = session.current()
        if eng is None:
            return "no database open yet: %load_ext airt_nb, or %workflow config --db PATH"
        where = eng.db if "://" in eng.db else os.path.abspath(eng.db)
        return f"database {where} · acting as {eng.user} · airt_nb {__version__}"
    eng = engine or session.engine()
    command = args.command
    if command == "list":
        status = args.status.upper() if args.status else None
        if status is not None and status not in WORKFLOW_STATUSES:
            raise UsageProblem(
                f"%workflow list: --status {args.status!r} is not a workflow status; use one of "
                f"{', '.join(WORKFLOW_STATUSES)}"
            )
        if not 1 <= args.limit <= 10_000:
            raise UsageProblem(f"%workflow list: --limit {args.limit} is out of range; give 1 to 10,000")
        records = eng.store.list_workflows(status=status, name=args.name, limit=args.limit)
        total = eng.store.count_workflows(status=status, name=args.name)
        return WorkflowList(records, total, eng.owner_id)
    if command == "show":
        return eng.get(args.id)
    if command in ("approve", "reject"):
        decide = eng.approve if command == "approve" else eng.reject
        workflow_id = eng.resolve_id(args.id)
        pending = eng.store.approvals(workflow_id=workflow_id, status="PENDING")
        try:
            values = parse_values(pending[0].field_specs if pending else {}, args.values)
        except ValueError as exc:
            raise UsageProblem(f"%workflow {command}: {exc}") from None
        record = decide(workflow_id, by=args.as_user, reason=args.reason, values=values)
        reason = f": {record.reason}" if record.reason else ""
        if record.status == "PENDING":
            return (
                f"approved step {record.step_name!r} of workflow {workflow_id} as {args.as_user or eng.user}{reason}: "
                f"{record.approved_count} of {record.min_approvals} approvals, it waits for the others"
            )
        shown = ", ".join(f"{k}={v!r}" for k, v in (record.values or {}).items())
        return (
            f"{record.status.lower()} step {record.step_name!r} of workflow {workflow_id} "
            f"as {record.decided_by}{reason}" + (f" (values: {shown})" if shown else "")
        )
    if command in ("rollback", "cancel", "resume"):
        workflow_id = eng.resolve_id(args.id)
        outcome = getattr(eng, command)(workflow_id)
        return _outcome_text(command, workflow_id, outcome)
    if command == "fork":
        inputs = _inputs(args.inputs, evaluate, "%workflow fork") if args.inputs is not None else None
        return eng.fork(args.id, args.from_step, inputs)
    if command == "send":
        data = _evaluated(args.data, evaluate, "%workflow send: --data") if args.data is not None else None
        workflow_id = eng.resolve_id(args.id)
        event = eng.send(workflow_id, args.event, data)
        where = (
            f"step {event.step_name!r} received it" if event.status == "RECEIVED" else "kept until its step is reached"
        )
        return f"sent event {args.event!r} to workflow {workflow_id}: {where}"
    if command == "approvals":
        from .widgets.inbox import approvals_panel

        return approvals_panel(eng)
    if command == "dashboard":
        from .widgets.dashboard import dashboard

        return dashboard(eng)
    raise UsageProblem(f"%workflow: unknown command {command!r}; see %workflow help")


def _outcome_text(command: str, workflow_id: str, outcome: str) -> str:
    if outcome == "requested":
        return f"{command} of workflow {workflow_id} requested: the engine running it (another kernel) carries it out"
    if outcome == "owned by another live engine":
        return f"workflow {workflow_id} is run by another live kernel or process; nothing to resume here"
    if outcome == "already running here":
        return f"workflow {workflow_id} is already running in this kernel"
    verb = {"rollback": "rolling back", "cancel": "cancelled", "resume": "resumed"}[command]
    return f"{verb} workflow {workflow_id} (watch it with %workflow show {workflow_id})"


# -- the banner --------------------------------------------------------------------------------------------


def banner(engine: Engine) -> Banner:
    """What the extension shows on load: database, user, and what recovery found, this notebook first."""
    summary = engine.last_recovery
    session_name, workdir = this_notebook()
    records = {}
    if summary is not None:
        for workflow_id in [
            *summary.resumed,
            *summary.restored,
            *summary.waiting_for_event,
            *summary.waiting_for_action,
        ]:
            record = engine.store.workflow(workflow_id)
            if record is not None:
                records[workflow_id] = record
    result = Banner(engine.db, engine.user, summary, records, __version__, session=session_name, workdir=workdir)
    if summary is not None:
        mine = [w for w in summary.restored if result.mine(w)]
        result.paused = [engine.get(w) for w in mine[: Banner.shown]]
    return result
