"""Role-based rules: what a validated :class:`PolicySpec` allows, as verdicts.

How a decision is reached, for one user and one action:

1. a ``deny`` pattern of any of the user's roles that matches refuses it
   (deny beats allow, so adding a role never lifts a ban);
2. otherwise the roles whose ``allow`` patterns match may grant it; none
   matching refuses it (``default deny``);
3. built-in actions that touch the world are granted only within a granting
   role's limits: file actions inside its ``paths`` (every path resolved with
   symlinks and ``..`` collapsed, as the action will see it), ``http.request``
   (and its ``undo`` request) to its ``http.hosts`` with its ``http.methods``.
   The granting role's folders go back in the verdict (``Verdict.paths``):
   the action opens its files within them without following any link, so
   a link swapped in after this check cannot lead it outside.

Patterns are shell globs matched case-sensitively (``file.*``, ``*``).
Imports nothing from the engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from .base import Verdict
from .model import ApprovalRuleSpec, PolicySpec

__all__ = ["PATH_INPUTS", "RolePolicy"]

#: The inputs of built-in file actions that name a path the action touches.
PATH_INPUTS: dict[str, tuple[str, ...]] = {
    "file.write": ("path",),
    "file.delete": ("path",),
    "file.copy": ("src", "dst"),
}


def _resolve(path: str, base: str | None = None) -> str:
    if base is not None:
        path = os.path.join(base, os.path.expanduser(path))
    for _ in range(3):
        try:
            return os.path.realpath(path)
        except OSError:  # a link replaced while it was being read: look again
            continue
    return os.path.realpath(path)


def _resolve_input(path: str) -> str | OSError:
    """``path`` resolved as the action will open it, or the error that kept it from being resolved."""
    try:
        return _resolve(path)
    except OSError as exc:
        return exc


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


def _first_match(value: str, patterns: Sequence[str]) -> str | None:
    return next((p for p in patterns if fnmatchcase(value, p)), None)


class RolePolicy:
    """The rules of one policy version.

    ``base_dir`` is where relative ``paths`` of the policy start (the policy
    file's folder); ``source`` names the policy in messages.

    >>> from airt_nb.policy import parse_policy
    >>> p = RolePolicy(parse_policy({"users": {"ann": ["author"]}, "roles": {"author": {"allow": ["wait"]}}}))
    >>> p.check_action("ann", "wait", {"seconds": 1}).rule
    'author: allow wait'
    """

    enforcing = True

    def __init__(self, spec: PolicySpec, *, base_dir: str | os.PathLike[str] | None = None, source: str = "the policy"):
        self.spec = spec
        self.source = source
        base = os.fspath(base_dir) if base_dir is not None else os.getcwd()
        self._users = {user: tuple(roles) for user, roles in spec.users.items()}
        self._roles = spec.roles
        # Resolved once: a later chdir of the kernel must not move the fence.
        self._paths = {name: tuple(_resolve(p, base) for p in role.paths) for name, role in spec.roles.items()}

    def roles_of(self, user: str) -> tuple[str, ...]:
        return self._users.get(user, ())

    def _nobody(self, user: str) -> str:
        return f"user {user!r} has no role in {self.source}; add them under users: with a role"

    # -- actions --------------------------------------------------------------------------------

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict:
        roles = self.roles_of(user)
        if not roles:
            return Verdict(False, "default deny", self._nobody(user))
        for role in roles:
            pattern = _first_match(action, self._roles[role].deny)
            if pattern is not None:
                return Verdict(
                    False,
                    f"{role}: deny {pattern}",
                    f"role {role!r} denies actions matching {pattern!r}; deny beats allow",
                )
        granting = []
        for role in roles:
            pattern = _first_match(action, self._roles[role].allow)
            if pattern is not None:
                granting.append((role, pattern))
        if not granting:
            return Verdict(
                False,
                "default deny",
                f"no role of theirs allows action {action!r}; add it to a role's allow: list in {self.source}",
            )
        if action in PATH_INPUTS:
            return self._check_paths(action, inputs, granting)
        if action == "http.request":
            return self._check_http(inputs, granting)
        role, pattern = granting[0]
        return Verdict(True, f"{role}: allow {pattern}")

    def _check_paths(self, action: str, inputs: Mapping[str, Any], granting: list[tuple[str, str]]) -> Verdict:
        # Relative paths resolve against the working directory, exactly as the action will open them.
        found = [
            (key, inputs[key], _resolve_input(inputs[key]))
            for key in PATH_INPUTS[action]
            if isinstance(inputs.get(key), str)
        ]
        for key, raw, result in found:
            if isinstance(result, OSError):
                return Verdict(
                    False,
                    f"{granting[0][0]}: paths",
                    f"{key} {raw!r} cannot be resolved ({result.strerror}: it changed while being checked?); "
                    "use a path that does not change",
                    target=raw,
                )
        targets = [(key, raw, str(result)) for key, raw, result in found]
        shown = ", ".join(t for _, _, t in targets) or None
        for role, pattern in granting:
            fence = self._paths[role]
            if fence and all(any(_within(t, p) for p in fence) for _, _, t in targets):
                return Verdict(True, f"{role}: allow {pattern}", target=shown, paths=fence)
        role = granting[0][0]
        fences = "; ".join(f"{r}: {', '.join(self._paths[r]) or 'none'}" for r, _ in granting)
        if not targets or not any(self._paths[r] for r, _ in granting):
            return Verdict(
                False,
                f"{role}: paths",
                f"action {action!r} touches files but no granting role lists paths: ({fences}); "
                f"add the folders it may use to paths: in {self.source}",
            )
        for key, raw, resolved in targets:
            if not any(_within(resolved, p) for r, _ in granting for p in self._paths[r]):
                via = f" (resolves to {resolved})" if raw != resolved else ""
                return Verdict(
                    False,
                    f"{role}: paths",
                    f"{key} {raw!r}{via} is outside the allowed paths ({fences}); "
                    "use a path inside them or ask for the folder to be added",
                    target=resolved,
                )
        return Verdict(
            False,
            f"{role}: paths",
            f"the paths {shown} are not all inside the paths of one role ({fences}); split the step",
            target=shown,
        )

    def _check_http(self, inputs: Mapping[str, Any], granting: list[tuple[str, str]]) -> Verdict:
        requests: list[tuple[str, Any, Any]] = [("url", inputs.get("url"), inputs.get("method", "GET"))]
        undo = inputs.get("undo")
        if isinstance(undo, Mapping):
            requests.append(("undo.url", undo.get("url", inputs.get("url")), undo.get("method", "DELETE")))
        known = []
        for field, url, method in requests:
            if not isinstance(url, str):
                continue  # known only when the step runs; checked then
            host = urlsplit(url).hostname
            if not host:
                return Verdict(False, f"{granting[0][0]}: http.hosts", f"{field} {url!r} names no host", target=url)
            known.append((field, url, host.lower(), method.upper() if isinstance(method, str) else None))
        shown = ", ".join(f"{m or '?'} {u}" for _, u, _, m in known) or None
        for role, pattern in granting:
            if self._http_ok(role, known):
                return Verdict(True, f"{role}: allow {pattern}", target=shown)
        role = granting[0][0]
        for field, url, host, method in known:
            if not any(_first_match(host, self._roles[r].http.hosts) for r, _ in granting):
                hosts = "; ".join(f"{r}: {', '.join(self._roles[r].http.hosts) or 'none'}" for r, _ in granting)
                return Verdict(
                    False,
                    f"{role}: http.hosts",
                    f"host {host!r} ({field} {url}) is not an allowed host ({hosts}); "
                    f"add it to http.hosts in {self.source}",
                    target=url,
                )
            if method and not any(self._method_ok(r, host, method) for r, _ in granting):
                return Verdict(
                    False,
                    f"{role}: http.methods",
                    f"method {method} ({field} {url}) is not allowed for host {host!r} "
                    f"(allowed: {', '.join(self._roles[role].http.methods)}); add it to http.methods in {self.source}",
                    target=f"{method} {url}",
                )
        if not known:
            hosts = "; ".join(f"{r}: {', '.join(self._roles[r].http.hosts) or 'none'}" for r, _ in granting)
            return Verdict(
                False,
                f"{role}: http.hosts",
                f"http.request is allowed but no granting role lists http.hosts ({hosts}); add them in {self.source}",
            )
        return Verdict(False, f"{role}: http", f"the requests {shown} are not all allowed to one role", target=shown)

    def _method_ok(self, role: str, host: str, method: str) -> bool:
        http = self._roles[role].http
        return bool(_first_match(host, http.hosts)) and ("*" in http.methods or method in http.methods)

    def _http_ok(self, role: str, known: list[tuple[str, str, str, str | None]]) -> bool:
        http = self._roles[role].http
        if not http.hosts:
            return False
        for _, _, host, method in known:
            if not _first_match(host, http.hosts):
                return False
            if method and not self._method_ok(role, host, method):
                return False
        return True

    # -- approvals, acting as someone, pending approvals -----------------------------------------

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict:
        roles = self.roles_of(user)
        if approvers and user not in approvers and not set(roles) & set(approvers):
            return Verdict(
                False,
                "approvers",
                f"the step names {', '.join(approvers)} as approvers; {user!r} is not one of them "
                "and holds none of those roles",
            )
        for role in roles:
            if self._roles[role].approve:
                return Verdict(True, f"{role}: approve")
        if not roles:
            return Verdict(False, "default deny", self._nobody(user))
        return Verdict(
            False,
            "default deny",
            f"none of their roles may approve; set approve: true on one of them in {self.source}",
        )

    def check_act_as(self, user: str, other: str) -> Verdict:
        if user == other:
            return Verdict(True, "self")
        for role in self.roles_of(user):
            pattern = _first_match(other, self._roles[role].act_as)
            if pattern is not None:
                return Verdict(True, f"{role}: act_as {pattern}", target=other)
        return Verdict(
            False,
            "default deny",
            f"none of their roles may act as {other!r}; add act_as: [{other}] to one of them in {self.source}",
            target=other,
        )

    def approval_rules(self, user: str) -> list[tuple[str, ApprovalRuleSpec]]:
        return [(role, rule) for role in self.roles_of(user) for rule in self._roles[role].require_approval]

    def check_pending(self, user: str, pending: int) -> Verdict | None:
        limits = [
            (limit, role)
            for role in self.roles_of(user)
            if (limit := self._roles[role].max_pending_approvals) is not None
        ]
        if not limits:
            return None
        limit, role = min(limits)
        if pending >= limit:
            return Verdict(
                False,
                f"{role}: max_pending_approvals",
                f"workflows {user!r} started already wait for {pending} approval(s) (limit {limit}); "
                "have them decided or cancel some first",
            )
        return Verdict(True, f"{role}: max_pending_approvals", f"{pending} of {limit} pending")
