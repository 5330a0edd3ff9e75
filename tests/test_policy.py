"""The policy's decisions, table-driven, through the engine: at start, on approval, acting as someone.

Every case runs a real engine on a fresh database with a real policy file
under tmp_path (the working directory, see conftest).  The workflow under
test is ``gate`` (an approval) followed by the step being checked, so an
allowed start pauses before the step touches anything and a refused one
raises at start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airt_nb import Engine, PolicyError
from airt_nb.policy import UNKNOWN, RolePolicy, parse_policy

POLICY = """\
users:
  ann: [author]
  agent: [agent]
  rita: [reviewer]
  otto: [author, ops]
  ivan: [intern]
  root: [admin]
roles:
  author:
    allow: ["file.*", wait, http.request]
    deny: [file.delete]
    paths: [out]
    http: {hosts: [127.0.0.1, "*.example.org"], methods: [GET]}
  agent:
    allow: ["*"]
    deny: ["python.*", file.delete]
    paths: [out/agent]
    http: {hosts: [127.0.0.1], methods: [GET, POST]}
  ops:
    allow: [file.delete]
    paths: [scratch]
  reviewer:
    approve: true
  intern:
    allow: [wait]
  admin:
    allow: ["*"]
    paths: ["/"]
    http: {hosts: ["*"]}
    approve: true
    act_as: ["*"]
"""


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """out/ (allowed), outside/ (not), and two symlinks in out/: one escaping, one staying inside."""
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    (tmp_path / "out" / "a.txt").write_text("a")
    os.symlink(tmp_path / "outside", tmp_path / "out" / "escape")
    os.symlink(tmp_path / "out" / "sub", tmp_path / "out" / "inner")
    (tmp_path / "policy.yaml").write_text(POLICY)
    return tmp_path


def gated(action: str, inputs: dict[str, Any], declared: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "checked",
        "inputs": declared or {},
        "steps": [
            {"name": "gate", "type": "human_approval"},
            {"name": "act", "action": action, "inputs": inputs},
        ],
    }


@dataclass
class Case:
    user: str
    action: str
    inputs: dict[str, Any]
    rule: str | None = None  # None: allowed
    says: str | None = None  # a fragment of the message ("{tmp}" is the test folder)
    declared: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)


W = {"content": "x"}
START_CASES = {
    "author writes inside out": Case("ann", "file.write", {"path": "out/new.txt", **W}),
    "'..' that stays inside is fine": Case("ann", "file.write", {"path": "out/sub/../b.txt", **W}),
    "symlink that stays inside is fine": Case("ann", "file.write", {"path": "out/inner/c.txt", **W}),
    "'..' escaping out is refused": Case(
        "ann",
        "file.write",
        {"path": "out/../outside/x.txt", **W},
        "author: paths",
        "workflow 'checked', step 'act': user 'ann' (roles: author) may not run action 'file.write'; refused by "
        "rule 'author: paths': path 'out/../outside/x.txt' (resolves to {tmp}/outside/x.txt) is outside the "
        "allowed paths (author: {tmp}/out); use a path inside them or ask for the folder to be added",
    ),
    "symlink escaping out is refused": Case(
        "ann",
        "file.write",
        {"path": "out/escape/x.txt", **W},
        "author: paths",
        "path 'out/escape/x.txt' (resolves to {tmp}/outside/x.txt) is outside the allowed paths",
    ),
    "absolute path elsewhere is refused": Case("ann", "file.write", {"path": "/etc/passwd", **W}, "author: paths"),
    "input given at start is checked at start": Case(
        "ann",
        "file.write",
        {"path": "${{ inputs.target }}/x.txt", **W},
        "author: paths",
        "path 'out/../outside/x.txt' (resolves to {tmp}/outside/x.txt)",
        declared={"target": "out"},
        given={"target": "out/../outside"},
    ),
    "copy inside out is fine": Case("ann", "file.copy", {"src": "out/a.txt", "dst": "out/sub/a.txt"}),
    "copy from outside is refused (src)": Case(
        "ann", "file.copy", {"src": "outside/secret.txt", "dst": "out/s.txt"}, "author: paths", "src 'outside/"
    ),
    "copy through an escaping symlink is refused (dst)": Case(
        "ann", "file.copy", {"src": "out/a.txt", "dst": "out/escape/a.txt"}, "author: paths", "dst 'out/escape/a.txt'"
    ),
    "denied by pattern": Case(
        "ann",
        "file.delete",
        {"path": "out/a.txt"},
        "author: deny file.delete",
        "role 'author' denies actions matching 'file.delete'; deny beats allow",
    ),
    "deny of one role beats allow of another": Case(
        "otto", "file.delete", {"path": "scratch/x"}, "author: deny file.delete"
    ),
    "glob deny of the agent": Case(
        "agent", "python.call", {"function": "os:getcwd"}, "agent: deny python.*", "denies actions matching 'python.*'"
    ),
    "denied by default (no role allows it)": Case(
        "ann",
        "python.call",
        {"function": "os:getcwd"},
        "default deny",
        "user 'ann' (roles: author) may not run action 'python.call'; refused by rule 'default deny': no role of "
        "theirs allows action 'python.call'; add it to a role's allow: list in {tmp}/policy.yaml",
    ),
    "denied by default (role without the action)": Case("ivan", "file.write", {"path": "out/x", **W}, "default deny"),
    "unknown user is refused": Case(
        "zed", "wait", {"seconds": 0}, "default deny", "user 'zed' has no role in {tmp}/policy.yaml"
    ),
    "agent only inside its own folder": Case("agent", "file.write", {"path": "out/x.txt", **W}, "agent: paths"),
    "agent inside its own folder": Case("agent", "file.write", {"path": "out/agent/x.txt", **W}),
    "allowed host and method": Case("ann", "http.request", {"url": "http://127.0.0.1:9/ping"}),
    "host glob": Case("ann", "http.request", {"url": "https://api.example.org/v1"}),
    "host not allowed": Case(
        "ann",
        "http.request",
        {"url": "https://evil.example.com/x"},
        "author: http.hosts",
        "host 'evil.example.com' (url https://evil.example.com/x) is not an allowed host "
        "(author: 127.0.0.1, *.example.org)",
    ),
    "method not allowed": Case(
        "ann",
        "http.request",
        {"url": "http://127.0.0.1:9/x", "method": "post"},
        "author: http.methods",
        "method POST (url http://127.0.0.1:9/x) is not allowed for host '127.0.0.1' (allowed: GET)",
    ),
    "undo request is checked too": Case(
        "ann",
        "http.request",
        {"url": "http://127.0.0.1:9/x", "undo": {"method": "DELETE"}},
        "author: http.methods",
        "method DELETE (undo.url",
    ),
    "agent may POST": Case("agent", "http.request", {"url": "http://127.0.0.1:9/x", "method": "POST"}),
    "admin anywhere": Case("root", "file.write", {"path": "outside/y.txt", **W}),
}


@pytest.mark.parametrize("case", START_CASES.values(), ids=START_CASES.keys())
def test_policy_at_start(world: Path, db_path: Path, case: Case) -> None:
    with Engine(db_path, policy=world / "policy.yaml", user=case.user) as eng:
        spec = gated(case.action, case.inputs, case.declared)
        if case.rule is None:
            run = eng.start(spec, inputs=case.given)
            assert run.wait(timeout=10) == "PAUSED"
            assert run.record.started_by == case.user
            return
        with pytest.raises(PolicyError) as info:
            eng.start(spec, inputs=case.given)
        assert info.value.rule == case.rule
        assert info.value.user == case.user
        if case.says:
            assert case.says.format(tmp=world) in str(info.value)
        assert eng.list() == []


# -- approvals ---------------------------------------------------------------------------------------


def approval_spec(approvers: list[str]) -> dict[str, Any]:
    return {
        "name": "review-me",
        "steps": [
            {"name": "write_a", "action": "file.write", "inputs": {"path": "out/a.txt", "content": "A"}},
            {"name": "review", "type": "human_approval", "approvers": approvers},
            {"name": "write_b", "action": "file.write", "inputs": {"path": "out/b.txt", "content": "B"}},
        ],
    }


@dataclass
class Decision:
    by: str
    approvers: list[str]
    rule: str
    allowed: bool
    edit: tuple[str, str] | None = None  # (old, new) applied to the policy file while paused
    says: str | None = None


DECISIONS = {
    "reviewer role named in approvers": Decision("rita", ["reviewer"], "reviewer: approve", True),
    "user named in approvers": Decision("rita", ["rita"], "reviewer: approve", True),
    "no approvers: any role that may approve": Decision("root", [], "admin: approve", True),
    "approver without the role": Decision(
        "ann",
        ["reviewer"],
        "approvers",
        False,
        says="step 'review': user 'ann' (roles: author) may not decide this approval; refused by rule "
        "'approvers': the step names reviewer as approvers; 'ann' is not one of them and holds none of those roles. "
        "Approvers: reviewer; ask one of them",
    ),
    "may approve, but not named": Decision("root", ["reviewer"], "approvers", False),
    "named, but no role may approve": Decision(
        "ann",
        ["ann"],
        "default deny",
        False,
        says="refused by rule 'default deny': none of their roles may approve; set approve: true on one of them in",
    ),
    "nobody at all": Decision("zed", [], "default deny", False, says="user 'zed' has no role in"),
    "policy changed while paused: approval revoked": Decision(
        "rita", ["reviewer"], "default deny", False, edit=("approve: true\n  intern", "approve: false\n  intern")
    ),
    "policy changed while paused: approval granted": Decision(
        "ivan", ["reviewer"], "reviewer: approve", True, edit=("ivan: [intern]", "ivan: [intern, reviewer]")
    ),
}


@pytest.mark.parametrize("case", DECISIONS.values(), ids=DECISIONS.keys())
def test_policy_on_approval(world: Path, db_path: Path, case: Decision) -> None:
    policy = world / "policy.yaml"
    with Engine(db_path, policy=policy, user="ann") as eng:
        run = eng.start(approval_spec(case.approvers))
        assert run.wait(timeout=10) == "PAUSED"
        if case.edit:
            text = policy.read_text()
            assert case.edit[0] in text
            policy.write_text(text.replace(case.edit[0], case.edit[1]))
        # Each person decides from their own engine (their kernel, their terminal): a name is not a right.
        with Engine(db_path, policy=policy, user=case.by, recover=False) as theirs:
            if case.allowed:
                theirs.approve(run.id)
                assert run.wait(timeout=10) == "COMPLETED"
            else:
                with pytest.raises(PolicyError) as info:
                    theirs.approve(run.id)
                assert info.value.rule == case.rule
                if case.says:
                    assert case.says in str(info.value)
                assert run.status == "PAUSED"
        approvals = [r for r in eng.store.query("SELECT user, decision, rule FROM audit_log WHERE event = 'approval'")]
        assert approvals == [(case.by, "allow" if case.allowed else "deny", case.rule)]


# -- acting as another user -----------------------------------------------------------------------------------


ACT_AS = {
    "admin may act as anyone": ("root", "ann", "admin: act_as *", None),
    "author may not": (
        "ann",
        "rita",
        "default deny",
        "user 'ann' (roles: author) may not act as 'rita'; refused by rule 'default deny': none of their roles "
        "may act as 'rita'; add act_as: [rita] to one of them in {tmp}/policy.yaml",
    ),
    "agent may not become admin": ("agent", "root", "default deny", "user 'agent' (roles: agent) may not act as"),
}


# user= names who starts a run as as_user= does: it was not checked against act_as at all.
@pytest.mark.parametrize("keyword", ["as_user", "user"])
@pytest.mark.parametrize(("actor", "other", "rule", "says"), ACT_AS.values(), ids=ACT_AS.keys())
def test_act_as(world: Path, db_path: Path, actor: str, other: str, rule: str, says: str | None, keyword: str) -> None:
    spec = gated("wait", {"seconds": 0})
    with Engine(db_path, policy=world / "policy.yaml", user=actor) as eng:
        if says is None:
            run = eng.start(spec, **{keyword: other})
            assert run.record.started_by == other
            # the delegation is recorded with the workflow it started
            assert eng.store.query("SELECT workflow_id FROM audit_log WHERE event = 'act_as'") == [(run.id,)]
        else:
            with pytest.raises(PolicyError) as info:
                eng.start(spec, **{keyword: other})
            assert str(info.value).startswith(says.format(tmp=world))
            assert eng.list() == []
        rows = eng.store.query("SELECT user, decision, rule, target FROM audit_log WHERE event = 'act_as'")
        assert rows == [(actor, "deny" if says else "allow", rule, other)]


def test_acting_as_someone_checks_their_rights_not_yours(world: Path, db_path: Path) -> None:
    refused = re.escape("user 'ivan' (roles: intern) may not run action 'file.write'")
    with Engine(db_path, policy=world / "policy.yaml", user="root") as eng:
        with pytest.raises(PolicyError, match=refused):
            eng.start(gated("file.write", {"path": "out/x", "content": "x"}), as_user="ivan")
        # both are on record: who acted as whom, and what the one acted for may not do
        rows = eng.store.query("SELECT user, event, decision, rule, workflow_id FROM audit_log ORDER BY audit_id")
    assert rows == [
        ("root", "act_as", "allow", "admin: act_as *", None),
        ("ivan", "start", "deny", "default deny", None),
    ]


# -- the rules on their own ---------------------------------------------------------------------------------


def test_values_known_only_at_run_time_wait_for_the_step(tmp_path: Path) -> None:
    rules = RolePolicy(parse_policy(POLICY), base_dir=tmp_path)
    assert rules.check_action("ann", "file.write", {"path": UNKNOWN, "content": "x"}).allowed
    assert rules.check_action("ann", "http.request", {"url": UNKNOWN}).allowed
    # ... unless no value could ever pass: a role without paths cannot grant a file action
    no_paths = RolePolicy(parse_policy({"users": {"u": ["r"]}, "roles": {"r": {"allow": ["file.*"]}}}))
    verdict = no_paths.check_action("u", "file.write", {"path": UNKNOWN})
    assert (verdict.allowed, verdict.rule) == (False, "r: paths")
    assert "no granting role lists paths: (r: none)" in verdict.reason


def test_a_prefix_is_a_folder_not_a_string_prefix(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    rules = RolePolicy(parse_policy(POLICY), base_dir=tmp_path)
    assert not rules.check_action("ann", "file.write", {"path": str(tmp_path / "out-evil" / "x")}).allowed
    assert rules.check_action("ann", "file.write", {"path": str(tmp_path / "out")}).allowed


def test_url_without_host_is_refused() -> None:
    rules = RolePolicy(parse_policy(POLICY))
    verdict = rules.check_action("ann", "http.request", {"url": "file:///etc/passwd"})
    assert (verdict.allowed, verdict.rule) == (False, "author: http.hosts")
    assert verdict.reason == "url 'file:///etc/passwd' names no host"


def test_an_allowed_file_action_carries_its_folders_for_the_action_to_stay_in(tmp_path: Path) -> None:
    rules = RolePolicy(parse_policy(POLICY), base_dir=tmp_path)
    verdict = rules.check_action("ann", "file.write", {"path": str(tmp_path / "out" / "a.txt"), "content": "x"})
    assert verdict.allowed
    assert verdict.paths == (str(tmp_path / "out"),)
    assert rules.check_action("ann", "wait", {"seconds": 1}).paths is None
    assert rules.check_action("ann", "http.request", {"url": "http://127.0.0.1/"}).paths is None
