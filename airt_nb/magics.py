"""``%load_ext airt_nb``, ``%%workflow`` and ``%workflow``: the only module that imports IPython.

A thin adapter over :mod:`airt_nb.commands`.  This is the one place where an
:class:`~airt_nb.AirtError` becomes a message without a traceback (IPython's
``UsageError``); a bad spec is shown once, next to its YAML with the faulty
lines marked, and the cell still fails (a "run all" stops there).
``%%workflow`` returns as soon as the run is started (a busy cell would hold
back every button click) and its value is the :class:`~airt_nb.Run`.

In IPython a ``Run`` and a panel show as two outputs (:func:`display_panel`,
called by their ``_ipython_display_``): the live widget and right after it a
static HTML snapshot of the same thing.  The snapshot is replaced through its
display id when the run pauses or ends, at the end of every cell that changed
what it shows, and when the kernel is asked to
shut down, so a saved notebook, a restarted kernel and an HTML export show the
last state instead of "model not found"; the stylesheet shows whichever of the
two works.
"""

from __future__ import annotations

import logging
from typing import Any

from IPython.core.error import UsageError
from IPython.core.getipython import get_ipython
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from . import commands, session
from .errors import AirtError, SpecError
from .run import Run
from .timeutil import now_iso
from .views import Banner, SpecErrorView

__all__ = ["WorkflowMagics", "display_panel", "display_run", "load_ipython_extension", "unload_ipython_extension"]

log = logging.getLogger("airt_nb")


@magics_class
class WorkflowMagics(Magics):
    @line_cell_magic
    def workflow(self, line: str, cell: str | None = None) -> Any:
        """Start a workflow (cell magic, YAML body) or manage workflows (line magic).

        ``%%workflow [-o VAR] [--wait] [--inputs EXPR] [--as USER] [--dry-run]``;
        ``%workflow help`` lists the line commands.
        """
        try:
            if cell is None:
                result = commands.run_line(line, evaluate=self.shell.ev if self.shell is not None else None)
                if isinstance(result, str):
                    print(result)
                    return None
                if isinstance(result, Banner):  # %workflow config --db PATH opened another database
                    _show_banner(result)
                    return None
                return result
            return self._cell(line, cell)
        except (AirtError, commands.UsageProblem) as exc:
            raise UsageError(str(exc)) from None

    def _cell(self, line: str, cell: str) -> Any:
        assert self.shell is not None
        options = commands.parse_cell_line(line)
        engine = session.engine()
        try:
            result = commands.start_cell(engine, cell, options, self.shell.ev)
        except SpecError as exc:
            display(SpecErrorView(exc, cell, header=f"%%workflow {line}".rstrip()))
            count = len(exc.problems)
            raise commands.UsageProblem(
                f"%%workflow: the spec has {count} problem{'s' if count != 1 else ''} (shown above); nothing was run"
            ) from None
        if options.var:
            self.shell.user_ns[options.var] = result
        if options.wait and isinstance(result, Run):
            result.wait()
        return result


# -- showing runs and panels ------------------------------------------------------------------------------


def display_panel(panel: Any) -> None:
    """Show a live panel, then its static snapshot, kept current through the snapshot's display id.

    >>> display_panel(airt_nb.dashboard())   # doctest: +SKIP
    """
    shell = get_ipython()
    if shell is not None:
        _install_hooks(shell)
    with panel.lock:
        display(panel._repr_mimebundle_(), raw=True)
        handle = display({"text/html": panel.snapshot_html()}, raw=True, display_id=True)
        panel.attach_snapshot(lambda data: handle.update(data, raw=True))


def display_run(run: Run) -> None:
    """How a :class:`~airt_nb.Run` shows once the extension is loaded: its live panel and snapshot."""
    from .widgets.run_panel import RunPanel

    display_panel(RunPanel(run))


def _displayed_panels() -> list[Any]:
    from .widgets.base import refresher

    return [p for p in refresher().panels() if p.snapshot_sink is not None]


def _sync_snapshots(*_: Any) -> None:
    """After each cell: snapshots catch up with what happened meanwhile (while the cell's messages
    still reach the notebook: a notebook runner reads only the running cell's output)."""
    for panel in _displayed_panels():
        try:
            panel.sync_snapshot()
        except Exception:  # an observer: never fail the user's cell
            log.debug("snapshot sync failed", exc_info=True)


def _kernel_stopping(change: dict[str, Any]) -> None:
    """The kernel was asked to shut down (``exit_now``): each snapshot says when, while it still can."""
    if not change.get("new"):
        return
    stopped = now_iso()
    for panel in _displayed_panels():
        try:
            panel.publish_snapshot(stopped_at=stopped)
        except Exception:
            log.debug("final snapshot failed", exc_info=True)


def _install_hooks(ipython: Any) -> None:
    """Snapshots catch up after each cell and are stamped when the kernel stops (once per shell)."""
    if _sync_snapshots not in ipython.events.callbacks["post_run_cell"]:
        ipython.events.register("post_run_cell", _sync_snapshots)
        ipython.observe(_kernel_stopping, names="exit_now")


def _show_banner(banner: Any) -> None:
    display(banner)
    for run in banner.paused:
        display(run)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the snapshot hooks; open the kernel's engine (which recovers); show the banner."""
    # Engine threads log; with no handler Python would print warnings into whatever cell ran last.
    logger = logging.getLogger("airt_nb")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    ipython.register_magics(WorkflowMagics)
    _install_hooks(ipython)
    try:
        engine = session.engine()
    except AirtError as exc:
        print(f"airt_nb: {exc}\nFix it, then open a database with %workflow config --db PATH")
        return
    _show_banner(commands.banner(engine))


def unload_ipython_extension(ipython: Any) -> None:
    """Close the kernel's engine; unfinished workflows stay in the database for the next one."""
    if _sync_snapshots in ipython.events.callbacks["post_run_cell"]:
        ipython.events.unregister("post_run_cell", _sync_snapshots)
    try:
        ipython.unobserve(_kernel_stopping, names="exit_now")
    except ValueError:
        pass
    session.close()
