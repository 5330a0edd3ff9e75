"""Static HTML / text views for the notebook: runs, spec errors, plans, lists, the banner.

Each view is plain data turned into HTML (``_repr_html_``) and text
(``__repr__``), so it reads well in JupyterLab, in a terminal IPython, in a
saved notebook and in an HTML export.  Colours come from one stylesheet of
JupyterLab theme variables (:mod:`.theme`) that every output carries.

::

    text.py        escaping, badges, times ("18:05:03 (3 min ago)"), durations
    theme.py       the stylesheet: light and dark theme, live panel / snapshot pairing
    run.py         RunState: one run read from the store; its text
    run_html.py    one run as HTML: the live panel's pieces and the static snapshot
    timeline.py    a timeline drawn (SVG and text); airt_nb.timelines reads its data
    spec_error.py  a refused spec next to its YAML
    lists.py       the dry-run plan and %workflow list
    banner.py      what %load_ext shows, this notebook first

Imports no IPython, ipywidgets or pandas.
"""

from .banner import Banner, belongs_here, this_notebook
from .lists import PlanView, WorkflowList
from .run import RunState, read_run, summary_text
from .run_html import snapshot_html
from .spec_error import SpecErrorView
from .text import (
    TERMINAL,
    ago,
    badge,
    countdown,
    esc,
    fmt_duration,
    fmt_time,
    seconds_between,
    short,
    stamp,
    where_running,
    workflow_note,
)
from .theme import PALETTE, ROLE, stylesheet

__all__ = [
    "PALETTE",
    "ROLE",
    "TERMINAL",
    "Banner",
    "PlanView",
    "RunState",
    "SpecErrorView",
    "WorkflowList",
    "ago",
    "badge",
    "belongs_here",
    "countdown",
    "esc",
    "fmt_duration",
    "fmt_time",
    "read_run",
    "seconds_between",
    "short",
    "snapshot_html",
    "stamp",
    "stylesheet",
    "summary_text",
    "this_notebook",
    "where_running",
    "workflow_note",
]
