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
approver...) or when a run this command executed (``resume``, ``fork``,
``rollback``) ends FAILED or ROLLED_BACK against its wish or is given up at
``--timeout``, 2 for a usage error (and for ``dashboard`` without a terminal).
Every command needs an existing airt_nb database: none creates one, nor adds
airt_nb's tables to another SQLite file; ``serve`` checks it before it starts.
Tables fit the terminal's width (``$COLUMNS``; 160 when not a terminal).
Text from the database is shown with control characters escaped
(:func:`airt_nb.views.text.term_safe`); ``--json`` is exact.

The command sits on the public API only.  Its engine is opened with
``recover=False`` and no webhook sender: it never takes up a workflow that
a notebook (or another process) runs.  A decision leaves the workflow
RUNNING without a lease and the engine that has the database open picks it
up at its next housekeeping tick (0.1 s); a rollback of a workflow nobody
runs is left ROLLING_BACK for its engine if that engine is alive, and is
run to its end here if it is gone.  When no engine is left to carry a
workflow on (its home is gone and no engine that takes up work is open),
``approve``, ``reject``, ``send``, ``list`` and ``show`` say so and name
``airt resume``.  ``resume`` and ``fork`` execute steps,
in this process, until the run pauses or ends; ``worker``
is a long-running engine (see :mod:`airt_nb.worker`).

It imports neither pandas nor IPython, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from .cliargs import MAX_LIST as MAX_LIST
from .cliargs import STATUSES as STATUSES
from .cliargs import build_parser
from .clicommands import COMMANDS
from .engine import Engine
from .errors import AirtError, StoreError
from .store import is_postgres_url
from .views.text import term_safe

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airt`` console script; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `airt list | head`: the reader has what it wanted.  Exit as a shell does on SIGPIPE, and
        # point stdout at /dev/null so that Python's flush at exit does not raise (and print) again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
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
        text = _cli_wording(" ".join(str(exc).split()))
        if as_json:
            print(json.dumps({"error": text, "type": type(exc).__name__}))
        print(f"airt: {term_safe(text)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("airt: interrupted", file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps(result["json"], indent=2, default=str))  # exact: json escapes every control character
    else:
        print(term_safe(result["text"], newlines=True))
    problem = result.get("problem")
    if problem:  # the run this command executed ended badly, or was given up: say so, exit 1
        print(f"airt: {term_safe(' '.join(problem.split()))}", file=sys.stderr)
        return 1
    return 0


def _cli_wording(text: str) -> str:
    """The engine's refusals speak Python (``by=``); on the command line the option is ``--as``."""
    return text.replace("by='", "--as '").replace('by="', '--as "').replace("by= ", "--as ")


def _open(db: str | None) -> Engine:
    path = _database(db)
    # recover=False: never take up a workflow another engine runs; no webhook sender: the
    # engines that run workflows deliver the notifications this command queues.
    return Engine(path, recover=False, webhook_url="")


def _database(db: str | None) -> str:
    """The database the command works on (``--db``, ``$AIRT_DB``, ``./airt.db``), checked to be one.

    A missing file, a folder, an empty file or another application's SQLite database raises a
    :class:`StoreError` that says so; a PostgreSQL URL is left to the store.
    """
    path = db or os.environ.get("AIRT_DB") or "airt.db"
    plain = path[len("sqlite:///") :] if path.startswith("sqlite:///") else path
    if not is_postgres_url(path) and not Path(plain).is_file():
        what = " (it is a folder)" if Path(plain).is_dir() else ""
        raise StoreError(f"no airt_nb database at {plain}{what}; pass --db PATH or set AIRT_DB", path=plain)
    if not is_postgres_url(path) and "://" not in path:
        _check_airt_file(plain)
    return path


# Tables every airt_nb database has had since its first schema version.
_AIRT_TABLES = {"airt_meta", "workflows"}


def _check_airt_file(plain: str) -> None:
    """Refuse a SQLite file that is not an airt_nb database, before the store would migrate it into one.

    Read with a read-only connection: the file is left byte for byte as it was.  A file SQLite
    cannot read at all is left to the store, which says what is wrong with it.
    """
    uri = f"file:{urllib.parse.quote(os.path.abspath(plain))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error:
        return
    if names >= _AIRT_TABLES:
        return
    what = "an empty file" if not names else "a SQLite database without airt_nb's tables"
    raise StoreError(
        f"no airt_nb database at {plain} (it is {what}; left unchanged); check --db / AIRT_DB",
        path=plain,
    )


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
        print(f"airt: {term_safe(' '.join(str(exc).split()))}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"user": report.user, "group": report.group, "done": report.lines()}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def _cannot_listen(where: str, exc: OSError) -> int:
    reason = exc.strerror or str(exc)
    print(f"airt: cannot listen on {term_safe(where)}: {reason}; check --ip and --port", file=sys.stderr)
    return 1


def _served_database(db: str | None) -> str:
    """The database ``airt serve`` serves, checked before the server starts (not at each request,
    which would answer 503 to every one): the path the server is given.  A SQLite file is opened
    once, so that a corrupt or unreadable one is refused here too; a PostgreSQL URL is not checked."""
    path = _database(db)
    if not is_postgres_url(path):
        from .store import open_store

        open_store(path).close()
    return path


def _app(args: argparse.Namespace) -> int:
    db = getattr(args, "db", None)
    if args.command == "serve":
        from .server.serve import serve

        where = f"{args.ip or '127.0.0.1'}:{args.port or 8765}"
        try:
            if args.ip:
                socket.getaddrinfo(args.ip, args.port or 8765, type=socket.SOCK_STREAM)
        except OSError as exc:  # socket.gaierror included: an address that does not resolve
            return _cannot_listen(where, exc)
        try:
            path = _served_database(db)
        except AirtError as exc:
            print(f"airt: {term_safe(' '.join(str(exc).split()))}", file=sys.stderr)
            return 1
        try:
            return serve(db=path, ip=args.ip, port=args.port, token=args.token)
        except OSError as exc:
            return _cannot_listen(where, exc)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # piped or redirected: no screen to draw on
        print("airt dashboard needs a terminal; use `airt list` / `airt show` in scripts", file=sys.stderr)
        return 2
    try:
        from .tui import run_dashboard
    except ImportError as exc:
        print(f"airt: the dashboard needs Textual ({exc}); pip install 'airt_nb[tui]'", file=sys.stderr)
        return 1
    try:
        return run_dashboard(_open(db), as_user=args.as_user)
    except AirtError as exc:
        print(f"airt: {term_safe(' '.join(str(exc).split()))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
