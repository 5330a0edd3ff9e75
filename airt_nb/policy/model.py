"""The policy file: pydantic models of the YAML and :func:`parse_policy`.

``parse_policy`` refuses, as one :class:`~airt_nb.PolicyError` listing every
problem with its YAML line and field path, anything that would make the
policy mean something else than it says: unknown keys (a misspelt ``deny``
must not silently allow), users given roles that are not defined, empty
patterns.  Nothing here touches the database or the file system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import PolicyError
from ..identity import name_problem
from ..yamltext import Lines, YamlTextError, field_path, line_of, parse

__all__ = ["ApprovalRuleSpec", "HttpSpec", "PolicySpec", "RoleSpec", "parse_policy"]

_METHOD = re.compile(r"^([A-Z]+|\*)$")
Pattern = str


def _nonempty(values: list[str], what: str) -> list[str]:
    for value in values:
        if not value.strip():
            raise ValueError(f"an empty {what}; remove it or write e.g. '*'")
    return [v.strip() for v in values]


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSpec(_Model):
    """Where ``http.request`` may go: host globs (``*.example.com``) and methods."""

    hosts: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("hosts", "methods", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.lower() for h in _nonempty(value, "host")]

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        methods = [m.upper() for m in _nonempty(value, "method")]
        for m in methods:
            if not _METHOD.match(m):
                raise ValueError(f"{m!r} is not an HTTP method; write e.g. GET, POST or '*'")
        return methods


class ApprovalRuleSpec(_Model):
    """``require_approval:`` one rule: steps whose action matches ``actions`` need an approval before them.

    The approval must come before the step in the DAG (the step depends on
    it, directly or through other steps) and must not be skippable (no
    ``when`` on it or on what it uses); with ``approvers``, every approver
    the gate names must be one of them; with ``min_approvals``, it needs at
    least that many people; with ``authenticated``, it must accept only
    authenticated decisions; with ``exclude_requester``, it must refuse the
    one who started the workflow.  A plain glob is ``{actions: [glob]}``.
    """

    actions: list[Pattern] = Field(min_length=1)
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = Field(default=1, ge=1, le=100)
    authenticated: bool = False
    exclude_requester: bool = False

    @field_validator("actions", "approvers", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("actions", "approvers")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _nonempty(value, "name")


class RoleSpec(_Model):
    """What the holders of one role may do.  Everything not granted is refused."""

    description: str | None = None
    allow: list[Pattern] = Field(default_factory=list)
    deny: list[Pattern] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    http: HttpSpec = Field(default_factory=HttpSpec)
    approve: bool = False
    act_as: list[Pattern] = Field(default_factory=list)
    max_pending_approvals: int | None = Field(default=None, ge=0)
    require_approval: list[ApprovalRuleSpec] = Field(default_factory=list)

    @field_validator("require_approval", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        value = _one_or_many(value)
        if isinstance(value, list):
            return [{"actions": [item]} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("allow", "deny", "paths", "act_as", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("allow", "deny", "act_as")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _nonempty(value, "pattern")

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return _nonempty(value, "path")


class PolicySpec(_Model):
    """A validated policy file: who holds which roles, and what each role may do."""

    version: Literal[1] = 1
    users: dict[str, list[str]] = Field(default_factory=dict)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)

    @field_validator("users", mode="before")
    @classmethod
    def _user_roles(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: [] if v is None else _one_or_many(v) for k, v in value.items()}
        return value


_HINTS = {"missing": "is required", "dict_type": "must be a mapping (key: value)", "list_type": "must be a list"}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    if len(loc) == 1:
        return list(PolicySpec.model_fields)
    if loc[0] == "roles" and len(loc) == 3:
        return list(RoleSpec.model_fields)
    if loc[0] == "roles" and len(loc) == 4 and loc[2] == "http":
        return list(HttpSpec.model_fields)
    if loc[0] == "roles" and len(loc) == 5 and loc[2] == "require_approval":
        return list(ApprovalRuleSpec.model_fields)
    return []


def _problems(exc: pydantic.ValidationError, lines: Lines) -> list[tuple[int | None, str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        msg = _HINTS.get(kind, err["msg"])
        if kind == "extra_forbidden":
            allowed = _allowed_keys(loc)
            msg = f"unknown key {loc[-1]!r}" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        elif kind == "literal_error":
            msg = f"{err['msg'].replace('Input should be', 'must be')} (got {err.get('input')!r})"
        elif kind.startswith("value_error"):
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
        problems.append((line_of(lines, loc), field_path(loc), msg))
    return problems


def _semantic(spec: PolicySpec, lines: Lines) -> list[tuple[int | None, str, str]]:
    problems = []
    defined = ", ".join(spec.roles) or "none"
    for user, roles in spec.users.items():
        # A name no one can act under would never match anyone: said here, not found out later.
        problem = name_problem(user) or ("has spaces around it; write the name alone" if user != user.strip() else None)
        if problem is not None:
            where: tuple[Any, ...] = ("users", user)
            problems.append((line_of(lines, where), field_path(where), f"user {user[:80]!r} {problem}"))
            continue
        for i, role in enumerate(roles):
            if role not in spec.roles:
                path = ("users", user, i)
                problems.append(
                    (line_of(lines, path), field_path(path), f"no role {role!r} under roles: (defined: {defined})")
                )
    return problems


def describe(line: int | None, field: str, message: str) -> str:
    """One problem as ``line 7, roles.agent.allow[0]: message``."""
    return f"{f'line {line}' if line else 'policy'}, {field or '(top level)'}: {message}"


def _refuse(source: str, problems: list[tuple[int | None, str, str]]) -> PolicyError:
    texts = [describe(*p) for p in problems]
    if len(texts) == 1:
        text = f"policy file {source} is invalid: {texts[0]}; fix it (or unset AIRT_POLICY)"
    else:
        text = f"policy file {source} is invalid ({len(texts)} problems); fix them (or unset AIRT_POLICY):\n  "
        text += "\n  ".join(texts)
    return PolicyError(text, path=source, problems=problems)


def parse_policy(source: str | Mapping[str, Any], *, name: str = "<policy>") -> PolicySpec:
    """Validate a policy given as YAML text or a dict.

    ``name`` is how errors refer to it (usually the file's path).  Raises
    :class:`~airt_nb.PolicyError` naming the line and field of every problem.

    >>> spec = parse_policy("users: {ann: author}\\nroles: {author: {allow: [wait]}}")
    >>> spec.users
    {'ann': ['author']}
    """
    if isinstance(source, str):
        try:
            data, lines = parse(source)
        except YamlTextError as exc:
            raise _refuse(name, [(exc.line, exc.field, exc.message)]) from None
    elif isinstance(source, Mapping):
        data, lines = dict(source), {}
    else:
        raise _refuse(name, [(None, "", f"a policy is YAML text or a dict, not {type(source).__name__}")])
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _refuse(name, [(1, "", f"a policy is a mapping with users: and roles:, got {type(data).__name__}")])
    try:
        spec = PolicySpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _refuse(name, sorted(_problems(exc, lines), key=lambda p: p[0] or 0)) from None
    problems = _semantic(spec, lines)
    if problems:
        raise _refuse(name, problems)
    return spec
