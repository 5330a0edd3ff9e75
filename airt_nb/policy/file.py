"""A policy read from a YAML file and read again whenever the file changes.

Every check first looks at the file's modification time, size and inode (one
``stat``; for two seconds after a change, the text itself): when they
changed, the file is read and validated again, so an
edited policy applies to the next step of every workflow, also one that was
paused while the file was edited.  A file that became invalid or unreadable
refuses everything (rule ``policy file``) until it is fixed: a security
policy fails closed.  The first read is strict: :func:`load_policy` raises,
so an engine never starts with a half-read policy.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PolicyError
from .base import Verdict
from .model import ApprovalRuleSpec, describe, parse_policy
from .rules import RolePolicy

__all__ = ["FilePolicy", "load_policy"]

log = logging.getLogger("airt_nb")

_Key = tuple[int, int, int, int]
_RACY_NS = 2_000_000_000


def _stat(path: Path) -> _Key:
    st = path.stat()
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class FilePolicy:
    """The policy in ``path``, re-read when the file changes (see the module docstring).

    >>> policy = FilePolicy("policy.yaml")        # doctest: +SKIP
    >>> policy.check_action("ann", "file.delete", {"path": "/etc/passwd"}).allowed  # doctest: +SKIP
    False
    """

    enforcing = True

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().resolve()
        self._lock = threading.Lock()
        # (file key, rules or refusal): replaced as one tuple, so readers never see half an update.
        self._state: tuple[_Key | None, RolePolicy | Verdict] = (None, Verdict(False, "policy file"))
        self._last_good: RolePolicy | None = None
        self._text: str | None = None
        self._read(strict=True)

    def __repr__(self) -> str:
        return f"<FilePolicy {self.path}>"

    def _read(self, *, strict: bool) -> None:
        for _ in range(5):
            try:
                before = _stat(self.path)
                text = self.path.read_text(encoding="utf-8")
                after = _stat(self.path)
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"policy file {self.path} cannot be read ({exc})"
                if strict:
                    raise PolicyError(
                        f"{problem}; check AIRT_POLICY (or unset it to run without a policy)", path=str(self.path)
                    ) from None
                self._fail(None, problem)
                return
            if before == after:  # not written to while we read it
                break
        # A file changed twice within one tick of the file system's clock keeps its
        # mtime; while the mtime is that recent, look at the text again on every check.
        key = None if time.time_ns() - after[0] < _RACY_NS else after
        if text == self._text and isinstance(self._state[1], RolePolicy):
            self._state = (key, self._state[1])
            return
        try:
            spec = parse_policy(text, name=str(self.path))
        except PolicyError as exc:
            if strict:
                raise
            first = describe(*exc.problems[0]) if exc.problems else str(exc)
            self._text = text
            self._fail(key, f"policy file {self.path} is invalid: {first}")
            return
        rules = RolePolicy(spec, base_dir=self.path.parent, source=str(self.path))
        if self._last_good is not None:
            log.info("policy file %s changed; the new version applies from now on", self.path)
        self._last_good, self._text = rules, text
        self._state = (key, rules)

    def _fail(self, key: _Key | None, problem: str) -> None:
        refusal = Verdict(False, "policy file", f"{problem}; nothing is allowed until it is fixed")
        if self._state[1] != refusal:
            log.warning("%s; everything is refused until it is fixed", problem)
        self._state = (key, refusal)

    def current(self) -> RolePolicy | Verdict:
        """The rules in force now, or the refusal to give while the file is broken."""
        try:
            key: _Key | None = _stat(self.path)
        except OSError:
            key = None
        if key is None or key != self._state[0]:
            with self._lock:
                if key is None or key != self._state[0]:
                    self._read(strict=False)
        return self._state[1]

    def roles_of(self, user: str) -> tuple[str, ...]:
        rules = self._last_good  # for messages and the audit only
        return rules.roles_of(user) if rules is not None else ()

    def check_action(self, user: str, action: str, inputs: Mapping[str, Any]) -> Verdict:
        rules = self.current()
        return rules if isinstance(rules, Verdict) else rules.check_action(user, action, inputs)

    def check_approval(self, user: str, approvers: Sequence[str]) -> Verdict:
        rules = self.current()
        return rules if isinstance(rules, Verdict) else rules.check_approval(user, approvers)

    def check_act_as(self, user: str, other: str) -> Verdict:
        rules = self.current()
        return rules if isinstance(rules, Verdict) else rules.check_act_as(user, other)

    def check_pending(self, user: str, pending: int) -> Verdict | None:
        rules = self.current()
        return rules if isinstance(rules, Verdict) else rules.check_pending(user, pending)

    def approval_rules(self, user: str) -> list[tuple[str, ApprovalRuleSpec]]:
        rules = self.current()
        return [] if isinstance(rules, Verdict) else rules.approval_rules(user)


def load_policy(path: str | os.PathLike[str]) -> FilePolicy:
    """Read and validate the policy file at ``path`` (what ``AIRT_POLICY`` names).

    Raises :class:`~airt_nb.PolicyError` naming the line and field of every
    problem; the returned policy re-reads the file whenever it changes.

    >>> policy = load_policy("policy.yaml")   # doctest: +SKIP
    """
    return FilePolicy(path)
