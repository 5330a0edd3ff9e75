"""``%load_ext airt_nb``, ``%%workflow`` and ``%workflow``: the only module that imports IPython.

A thin adapter over :mod:`airt_nb.commands`.  This is the one place where an
:class:`~airt_nb.AirtError` becomes a message without a traceback (IPython's
``UsageError``); a bad spec is also shown next to its YAML with the faulty
line highlighted.  ``%%workflow`` returns as soon as the run is started (a
busy cell would hold back every button click) and its value is the
:class:`~airt_nb.Run`, which displays as its live panel.
"""

from __future__ import annotations

import logging
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from . import commands, session
from .errors import AirtError, SpecError
from .run import Run
from .views import Banner, SpecErrorView

__all__ = ["WorkflowMagics", "load_ipython_extension", "unload_ipython_extension"]


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
                result = commands.run_line(line)
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
            display(SpecErrorView(exc, cell))
            raise
        if options.var:
            self.shell.user_ns[options.var] = result
        if options.wait and isinstance(result, Run):
            result.wait()
        return result


def _show_banner(banner: Any) -> None:
    display(banner)
    for run in banner.paused:
        display(run)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, open the kernel's engine (which recovers), and show the banner."""
    # Engine threads log; with no handler Python would print warnings into whatever cell ran last.
    logger = logging.getLogger("airt_nb")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    ipython.register_magics(WorkflowMagics)
    try:
        engine = session.engine()
    except AirtError as exc:
        print(f"airt_nb: {exc}\nFix it, then open a database with %workflow config --db PATH")
        return
    _show_banner(commands.banner(engine))


def unload_ipython_extension(ipython: Any) -> None:
    """Close the kernel's engine; unfinished workflows stay in the database for the next one."""
    session.close()
