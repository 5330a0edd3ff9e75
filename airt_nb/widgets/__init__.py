"""The notebook's panels, built on ipywidgets (the only package that imports it).

- :class:`RunPanel` (``run_panel``): one run, live; what a ``Run`` displays as.
- :class:`ApprovalCard` (``approval_card``): one pending approval with Approve / Reject.
- :class:`InboxPanel` (``inbox``): every pending approval of the database.
- :class:`DashboardPanel` (``dashboard``): workflows with filters and paging, detail, inbox, tables.
- ``base``: the one throttled refresh path shared by all of them.

Panels read the database (never only engine memory), so they show workflows
of other kernels and from before a restart exactly like local ones.
"""

from .approval_card import ApprovalCard
from .base import Refresher, refresher
from .dashboard import DashboardPanel, dashboard
from .inbox import InboxPanel, approvals_panel
from .run_panel import RunPanel

__all__ = [
    "ApprovalCard",
    "DashboardPanel",
    "InboxPanel",
    "Refresher",
    "RunPanel",
    "approvals_panel",
    "dashboard",
    "refresher",
]
