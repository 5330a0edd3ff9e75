"""Who may do what: roles and rules, read from the file ``AIRT_POLICY`` names.

::

    base.py    the Policy protocol the engine calls, Verdict, AllowAll (no policy)
    model.py   the policy file's pydantic models; parse_policy() with line numbers
    rules.py   RolePolicy: deny beats allow, default deny, path and host fences
    file.py    FilePolicy / load_policy(): the file, re-read when it changes

Without a policy the local user may do everything (:class:`AllowAll`); with
one, everything not granted is refused.  An example file is in
``docs/policy.md``.
"""

from __future__ import annotations

from .base import UNKNOWN, AllowAll, Policy, Verdict
from .file import FilePolicy, load_policy
from .model import ApprovalRuleSpec, HttpSpec, PolicySpec, RoleSpec, parse_policy
from .rules import PATH_INPUTS, RolePolicy

__all__ = [
    "PATH_INPUTS",
    "UNKNOWN",
    "AllowAll",
    "ApprovalRuleSpec",
    "FilePolicy",
    "HttpSpec",
    "Policy",
    "PolicySpec",
    "RolePolicy",
    "RoleSpec",
    "Verdict",
    "load_policy",
    "parse_policy",
]
