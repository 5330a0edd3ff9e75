"""The policy in the engine's life: loading, refusing mid-run, edits while paused, audit, two processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import airt_nb
from airt_nb import Engine, PolicyError
from airt_nb.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
users:
  ann: [author]
  rita: [reviewer]
  ivan: [intern]
roles:
  author:
    allow: ["file.*", http.request, wait]
    deny: [file.delete]
    paths: [out]
    http: {hosts: [127.0.0.1], methods: [GET]}
  reviewer:
    approve: true
  intern:
    allow: [wait]
"""

SPEC = {
    "name": "publish",
    "steps": [
        {"name": "write_a", "action": "file.write", "inputs": {"path": "out/a.txt", "content": "A"}},
        {"name": "review", "type": "human_approval", "approvers": ["reviewer"]},
        {"name": "write_b", "action": "file.write", "inputs": {"path": "out/b.txt", "content": "B"}},
    ],
}


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    (tmp_path / "out").mkdir()
    return path


def table_counts(db: Path) -> dict[str, int]:
    store = SQLiteStore(db)
    try:
        tables = ("workflows", "workflow_steps", "approvals", "compensation_log", "audit_log")
        return {t: store.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}
    finally:
        store.close()


# -- loading -------------------------------------------------------------------------------------------

MALFORMED = {
    "unknown key": ("roles:\n  author:\n    allow: [wait]\n    denny: [file.delete]\n", 4, "roles.author.denny"),
    "undefined role": ("users:\n  ann: [author]\n  bob: [author, revewer]\nroles:\n  author: {}\n", 3, "users.bob[1]"),
    "bad method": ("roles:\n  r:\n    http:\n      methods: [GET, 'P OST']\n", 4, "roles.r.http.methods"),
    "bad yaml": ("roles:\n  r:\n    allow: [wait\n  s: {}\n", 3, ""),  # where the [ opens
    "repeated key": ("roles:\n  r: {}\n  r: {approve: true}\n", 3, "roles.r"),
    "wrong type": ("roles:\n  r:\n    approve: perhaps\n", 3, "roles.r.approve"),
    "reserved user": ("users:\n  ann: [r]\n  System: [r]\nroles:\n  r: {}\n", 3, "users.System"),
    "invisible user": ('users:\n  "ann\\u200b": [r]\nroles:\n  r: {}\n', 2, "users.ann\u200b"),
}


@pytest.mark.parametrize(("text", "line", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_policy_stops_the_engine_before_it_writes(
    tmp_path: Path, db_path: Path, text: str, line: int, field: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        Engine(db_path, policy=path)
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"policy file {path} is invalid")
    assert not db_path.exists()


def test_malformed_policy_error_text(tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(MALFORMED["unknown key"][0])
    monkeypatch.setenv("AIRT_POLICY", str(path))
    with pytest.raises(PolicyError) as info:
        Engine(db_path)
    assert str(info.value) == (
        f"policy file {path} is invalid: line 4, roles.author.denny: unknown key 'denny'; allowed here: "
        "description, allow, deny, paths, http, approve, act_as, max_pending_approvals, require_approval; "
        "fix it (or unset AIRT_POLICY)"
    )
    assert not db_path.exists()


def test_missing_policy_file_stops_the_engine(tmp_path: Path, db_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        Engine(db_path, policy=tmp_path / "nope.yaml")
    assert not db_path.exists()


def test_engine_reads_the_policy_named_by_airt_policy(
    policy: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRT_POLICY", str(policy))
    monkeypatch.setenv("AIRT_USER", "ivan")
    with Engine(db_path) as eng, pytest.raises(PolicyError, match=re.escape("user 'ivan' (roles: intern)")):
        eng.start(SPEC)


# -- start ------------------------------------------------------------------------------------------------


def test_forbidden_workflow_is_refused_at_start_with_nothing_written(policy: Path, db_path: Path) -> None:
    spec = {
        **SPEC,
        "steps": [*SPEC["steps"], {"name": "clean", "action": "file.delete", "inputs": {"path": "out/a.txt"}}],
    }
    with Engine(db_path, policy=policy, user="ann") as eng:
        with pytest.raises(PolicyError) as info:
            eng.start(spec)
        assert str(info.value) == (
            "workflow 'publish', step 'clean': user 'ann' (roles: author) may not run action 'file.delete'; "
            "refused by rule 'author: deny file.delete': role 'author' denies actions matching 'file.delete'; "
            "deny beats allow"
        )
    # the refusal is audited; nothing of the workflow exists, and the first step never ran
    assert table_counts(db_path) == {
        "workflows": 0,
        "workflow_steps": 0,
        "approvals": 0,
        "compensation_log": 0,
        "audit_log": 1,
    }
    assert not (policy.parent / "out" / "a.txt").exists()
    audit = airt_nb.audit(db_path)
    row = audit.iloc[0]
    assert (row["user"], row["event"], row["decision"], row["rule"]) == (
        "ann",
        "start",
        "deny",
        "author: deny file.delete",
    )
    assert row["detail"].startswith("workflow 'publish': ")


def test_without_a_policy_everyone_may_do_everything_but_approvers_still_apply(db_path: Path) -> None:
    with Engine(db_path, user="someone") as eng:
        run = eng.start({**SPEC, "steps": [*SPEC["steps"][:2]]}, as_user="else")
        assert run.wait(timeout=10) == "PAUSED"
        with pytest.raises(PolicyError, match="only reviewer may decide this approval"):
            run.approve(by="mallory")
        run.approve(by="reviewer")
        assert run.wait(timeout=10) == "COMPLETED"
        assert run.record.started_by == "else"


def test_max_pending_approvals_limits_what_one_user_keeps_waiting(policy: Path, db_path: Path) -> None:
    policy.write_text(POLICY.replace("    http: {hosts", "    max_pending_approvals: 1\n    http: {hosts"))
    with Engine(db_path, policy=policy, user="ann") as eng:
        first = eng.start(SPEC)
        assert first.wait(timeout=10) == "PAUSED"
        with pytest.raises(PolicyError) as info:
            eng.start(SPEC)
        assert info.value.rule == "author: max_pending_approvals"
        assert "already wait for 1 approval(s) (limit 1)" in str(info.value)
        eng.start({**SPEC, "steps": [SPEC["steps"][0]]}).wait(timeout=10)  # no approval: not limited
        with Engine(db_path, policy=policy, user="rita", recover=False) as ritas:
            ritas.approve(first.id)
        assert first.wait(timeout=10) == "COMPLETED"
        assert eng.start(SPEC).wait(timeout=10) == "PAUSED"


# -- during the run ------------------------------------------------------------------------------------


def test_refusal_mid_run_fails_the_step_and_rolls_back(policy: Path, db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    # the path is only known at run time: it comes from the previous step's outputs
    spec = {
        "name": "sneaky",
        "steps": [
            {"name": "write_a", "action": "file.write", "inputs": {"path": "out/a.txt", "content": "../elsewhere"}},
            {
                "name": "write_b",
                "action": "file.write",
                "inputs": {"path": "out/${{ steps.write_a.outputs.bytes }}/../../elsewhere/b.txt", "content": "B"},
            },
        ],
    }
    with Engine(db_path, policy=policy, user="ann") as eng:
        run = eng.start(spec)
        assert run.wait(timeout=10) == "FAILED"
        steps = {s.step_name: s for s in run.steps()}
        assert steps["write_b"].status == "FAILED"
        assert steps["write_b"].error.startswith(
            "refused by policy: workflow 'sneaky', step 'write_b': user 'ann' (roles: author) may not run action "
            "'file.write'; refused by rule 'author: paths'"
        )
        assert steps["write_a"].status == "COMPENSATED"
    assert not (tmp_path / "out" / "a.txt").exists()
    assert not (tmp_path / "elsewhere" / "b.txt").exists()
    audit = airt_nb.audit(db_path)
    step_rows = audit[audit["event"] == "step"][["step_name", "decision", "rule"]].values.tolist()
    assert step_rows == [["write_a", "allow", "author: allow file.*"], ["write_b", "deny", "author: paths"]]


def test_policy_edited_while_paused_applies_when_it_resumes(policy: Path, db_path: Path, tmp_path: Path) -> None:
    with Engine(db_path, policy=policy, user="ann") as eng:
        run = eng.start(SPEC)
        assert run.wait(timeout=10) == "PAUSED"
        assert (tmp_path / "out" / "a.txt").read_text() == "A"
        # in place, as an editor does; write_b is no longer allowed
        policy.write_text(POLICY.replace('allow: ["file.*", http.request, wait]', "allow: [wait]"))
        with Engine(db_path, policy=policy, user="rita", recover=False) as ritas:
            ritas.approve(run.id)
        assert run.wait(timeout=10) == "FAILED"
        error = {s.step_name: s.error for s in run.steps()}["write_b"]
        assert "refused by rule 'default deny': no role of theirs allows action 'file.write'" in error
    assert not (tmp_path / "out" / "a.txt").exists()  # rolled back
    assert not (tmp_path / "out" / "b.txt").exists()


def test_policy_rewritten_within_one_clock_tick_with_the_same_size_is_noticed(
    policy: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # File systems with one-second timestamps (and no ctime change we can rely on) cannot be run
    # here: stand in for one by keeping only whole seconds of the mtime.
    import airt_nb.policy.file as policy_file

    def coarse(path: Path) -> tuple[int, int, int, int]:
        st = path.stat()
        return (st.st_mtime_ns // 10**9 * 10**9, 0, st.st_size, st.st_ino)

    monkeypatch.setattr(policy_file, "_stat", coarse)
    wait = {"name": "w", "steps": [{"name": "w", "action": "wait", "inputs": {"seconds": 0}}]}
    with Engine(db_path, policy=policy, user="ann") as eng:
        assert eng.start(wait).wait(timeout=10) == "COMPLETED"
        same_size = POLICY.replace("  ann: [author]\n", "  ann: [intern]\n")
        assert len(same_size) == len(POLICY)
        with policy.open("r+") as fh:  # in place: same inode
            fh.write(same_size)
        with pytest.raises(PolicyError, match=re.escape("user 'ann' (roles: intern) may not run action 'file.write'")):
            eng.start(SPEC)


def test_a_broken_edit_refuses_everything_until_fixed(policy: Path, db_path: Path) -> None:
    wait = {"name": "w", "steps": [{"name": "w", "action": "wait", "inputs": {"seconds": 0}}]}
    with Engine(db_path, policy=policy, user="ann") as eng:
        policy.write_text(POLICY + "  oops: [\n")
        with pytest.raises(PolicyError) as info:
            eng.start(wait)
        assert info.value.rule == "policy file"
        assert f"policy file {policy} is invalid: line " in str(info.value)
        assert "nothing is allowed until it is fixed" in str(info.value)
        policy.write_text(POLICY)
        assert eng.start(wait).wait(timeout=10) == "COMPLETED"


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_step_reaches_an_allowed_host_and_not_one_named_at_run_time(
    policy: Path, db_path: Path, server: str
) -> None:
    spec = {
        "name": "calls",
        "steps": [
            {"name": "ping", "action": "http.request", "inputs": {"url": f"{server}/ping"}},
            {
                "name": "leak",
                "action": "http.request",
                "inputs": {"url": "http://localhost${{ steps.ping.outputs.body.path }}"},
            },
        ],
    }
    with Engine(db_path, policy=policy, user="ann") as eng:
        run = eng.start(spec)
        assert run.wait(timeout=10) == "FAILED"
        steps = {s.step_name: s for s in run.steps()}
        assert steps["ping"].status == "COMPLETED"
        assert "refused by rule 'author: http.hosts': host 'localhost'" in steps["leak"].error


# -- two users, two processes --------------------------------------------------------------------------

REVIEWER = """
import json, sys
from airt_nb import Engine, PolicyError
eng = Engine()          # AIRT_DB, AIRT_POLICY and AIRT_USER from the environment
run = eng.get(sys.argv[1])
try:
    run.approve(reason="me too")
    result = {"approved": True, "status": run.wait(timeout=30)}
except PolicyError as exc:
    result = {"approved": False, "error": str(exc), "rule": exc.rule}
eng.close()
print(json.dumps(result))
"""


def reviewer(user: str, workflow_id: str, db: Path, policy: Path) -> dict:
    env = {**os.environ, "AIRT_DB": str(db), "AIRT_POLICY": str(policy), "AIRT_USER": user}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", REVIEWER, workflow_id], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_author_and_reviewers_in_two_processes(policy: Path, db_path: Path, tmp_path: Path) -> None:
    with Engine(db_path, policy=policy, user="ann") as eng:
        run = eng.start(SPEC)
        assert run.wait(timeout=10) == "PAUSED"

        refused = reviewer("ivan", run.id, db_path, policy)
        assert refused["approved"] is False
        assert refused["rule"] == "approvers"
        assert "user 'ivan' (roles: intern) may not decide this approval" in refused["error"]
        assert run.status == "PAUSED"

        approved = reviewer("rita", run.id, db_path, policy)
        assert approved == {"approved": True, "status": "COMPLETED"}
        assert run.wait(timeout=10) == "COMPLETED"
    assert (tmp_path / "out" / "b.txt").read_text() == "B"

    runs = airt_nb.runs(db_path)
    assert runs["started_by"].tolist() == ["ann"]
    audit = airt_nb.audit(db_path)
    decisions = audit[audit["event"].isin(["start", "approval"])]
    seen = [
        (r.user, r.event, r.decision, r.rule)
        for r in decisions.drop_duplicates(["user", "event", "decision"]).itertuples()
    ]
    assert seen == [
        ("ann", "start", "allow", "author: allow file.*"),
        ("ivan", "approval", "deny", "approvers"),
        ("rita", "approval", "allow", "reviewer: approve"),
    ]
    assert audit["workflow_id"].dropna().unique().tolist() == [run.id]
    assert audit.loc[audit["user"] == "rita", "roles"].iloc[0] == ["reviewer"]
