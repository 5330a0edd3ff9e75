"""What the built-in file actions do for the files a workflow touches, measured for real.

- Modes and owners survive a write, an append, a copy and their undo.
- Undo copies live in a private folder (0700, copies 0600), never in the
  database; a second, unprivileged local user can read neither (these tests
  create that user and run the reading side as it with ``runuser``; they
  need root, which CI has).
- Under a path policy, a process swapping a symbolic link in and out
  (atomically, with ``renameat2(RENAME_EXCHANGE)``) while steps write never
  gets a single byte written outside the allowed folder; hard links are
  refused.
- Relative paths mean the workflow's working directory; an undo that finds
  the file changed says so, and keeps the later version.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airt_nb import ActionError, Engine, PolicyError, Registry
from airt_nb.actions import CompensationContext, StepContext
from airt_nb.undocopies import discard_undo_copies, keep_copy, undo_dir_for
from tests.conftest import IN_CI, require_tool

PROBE_USER = "airtprobe"
REGISTRY = Registry()


# -- helpers ---------------------------------------------------------------------------------------


class Step:
    """One step run by hand, the way the engine runs it: a context with durable state, then its undo."""

    def __init__(self, tmp: Path, *, workdir: Path | None = None, fence: tuple[str, ...] | None = None):
        self.state: dict[str, Any] = {}
        self.undo_dir = str(tmp / "undo" / "wf1")
        self.workdir = str(workdir) if workdir else None
        self.fence = fence

    def context(self) -> StepContext:
        return StepContext(
            workflow_id="wf1",
            workflow_name="w",
            step_name="s",
            attempt=1,
            state=dict(self.state),
            saver=self._save,
            workdir=self.workdir,
            undo_dir=self.undo_dir,
            allowed_paths=self.fence,
        )

    def _save(self, state: dict[str, Any]) -> None:
        self.state = dict(state)

    def run(self, action: str, **inputs: Any) -> Any:
        self.action, self.inputs = REGISTRY.get(action), inputs
        assert self.action is not None
        kwargs = self.action.validate(inputs)
        kwargs[self.action.ctx_param or "ctx"] = self.context()
        self.outputs = self.action.fn(**kwargs)
        return self.outputs

    def undo(self, *, workdir: str | None = None) -> str | None:
        ctx = CompensationContext(
            workflow_id="wf1", step_name="s", state=self.state, workdir=workdir or self.workdir, undo_dir=self.undo_dir
        )
        stored = self.action.intent_inputs(self.inputs, self.workdir)
        return self.action.run_compensation(stored, self.outputs, ctx)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


# -- modes, owners, undo copies ------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0o600, 0o640, 0o755])
def test_write_append_copy_and_undo_keep_the_mode(tmp_path: Path, bits: int) -> None:
    target = tmp_path / "f.txt"
    for action, inputs in (
        ("file.write", {"path": str(target), "content": "new"}),
        ("file.write", {"path": str(target), "content": "+", "append": True}),
        ("file.copy", {"src": str(tmp_path / "src.txt"), "dst": str(target)}),
    ):
        (tmp_path / "src.txt").write_text("copied")
        target.write_text("old")
        target.chmod(bits)
        step = Step(tmp_path)
        step.run(action, **inputs)
        assert mode(target) == bits, action
        assert step.undo() is None
        assert target.read_text() == "old"
        assert mode(target) == bits, action


def test_a_new_file_gets_the_usual_mode_under_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        Step(tmp_path).run("file.write", path=str(tmp_path / "new.txt"), content="x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.txt") == 0o600


def test_undo_copies_are_private_files_and_the_state_holds_no_bytes(tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_bytes(b"pin=4711")
    target.chmod(0o644)
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="replaced")
    record = step.state["undo"]
    copy = Path(record["before"]["copy"])
    assert copy.parent == Path(step.undo_dir)
    assert copy.read_bytes() == b"pin=4711"
    assert mode(copy) == 0o600
    assert mode(copy.parent) == 0o700
    assert mode(copy.parent / ".key") == 0o600
    assert "4711" not in repr(step.state)
    assert base64.b64encode(b"pin=4711").decode() not in repr(step.state)
    assert step.undo() is None
    assert target.read_bytes() == b"pin=4711"


def test_an_undo_folder_open_to_others_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "undo"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    keep_copy(str(folder), "wf", "s", b"x")
    assert mode(folder) == 0o700


def test_without_an_undo_folder_copies_go_to_the_private_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    target = tmp_path / "f.txt"
    target.write_text("old")
    ctx = StepContext(workflow_id="wf9", workflow_name="w", step_name="s", attempt=1)
    act = REGISTRY.get("file.write")
    assert act is not None
    act.fn(path=str(target), content="new", ctx=ctx)
    copy = Path(ctx.saved("undo")["before"]["copy"])
    assert copy.parent == tmp_path / "state" / "airt_nb" / "undo" / "wf9"
    assert mode(copy.parent) == 0o700
    assert copy.read_text() == "old"


def test_the_engine_keeps_copies_beside_the_database_and_discarding_removes_them(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("precious")
    with Engine(tmp_path / "airt.db", registry=Registry()) as eng:
        run = eng.start(
            {"name": "w", "steps": [{"name": "s", "action": "file.write", "inputs": {"path": "f.txt", "content": "x"}}]}
        )
        assert run.wait(timeout=10) == "COMPLETED"
        folder = Path(undo_dir_for(eng.db, run.id))
        assert folder.parent == tmp_path / "airt.db.undo"
        assert [p.read_text() for p in folder.glob("*.undo")] == ["precious"]
        assert mode(folder) == 0o700
        assert mode(folder.parent) == 0o700
        run.rollback()
        assert run.wait(timeout=10) == "ROLLED_BACK"
        assert target.read_text() == "precious"
        # Rolled back, every undo done: the engine removed the copies, no rollback can need them.
        assert not folder.exists()
        assert discard_undo_copies(folder) == 0
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("airt.db*") if p.is_file())
    assert b"precious" not in stored
    assert base64.b64encode(b"precious") not in stored


def test_a_discarded_copy_makes_the_undo_fail_saying_so(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="new")
    discard_undo_copies(step.undo_dir)
    with pytest.raises(ActionError, match=r"undo copy of .*f\.txt .* is gone .* restore it from a backup"):
        step.undo()
    assert target.read_text() == "new"


def test_an_undo_copy_altered_on_disk_is_not_restored(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="new")
    Path(step.state["undo"]["before"]["copy"]).write_text("evil")
    with pytest.raises(ActionError, match="does not match what was saved"):
        step.undo()
    assert target.read_text() == "new"


def test_state_saved_by_the_earlier_version_still_restores(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("now")
    act = REGISTRY.get("file.write")
    assert act is not None
    ctx = CompensationContext(
        workflow_id="wf",
        step_name="s",
        state={"before": {"existed": True, "content": base64.b64encode(b"then").decode()}},
    )
    assert act.run_compensation({"path": str(target), "content": "now"}, {}, ctx) is None
    assert target.read_text() == "then"


# -- what an undo finds ------------------------------------------------------------------------


def test_an_unchanged_file_is_restored_without_a_note(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(tmp_path / "f.txt"), content="new")
    assert step.undo() is None
    assert (tmp_path / "f.txt").read_text() == "old"


def test_a_file_changed_after_the_step_is_kept_aside_and_the_note_says_so(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="ours")
    target.write_text("someone else's edit")
    note = step.undo()
    assert note is not None
    assert "changed after the step" in note
    assert "kept the later version as" in note
    kept = Path(note.rsplit(" as ", 1)[1])
    assert kept.parent == tmp_path
    assert kept.read_text() == "someone else's edit"
    assert target.read_text() == "old"


def test_a_created_file_that_was_changed_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    target = tmp_path / "new" / "f.txt"
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="ours")
    target.write_text("edited")
    note = step.undo()
    assert note is not None
    assert "moved aside" in note
    assert not target.exists()
    assert [p.read_text() for p in target.parent.iterdir()] == ["edited"]


def test_a_created_file_already_gone_is_reported_already_absent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.txt"
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="x")
    target.unlink()
    assert step.undo() == "already absent"
    assert not (tmp_path / "a").exists()  # the folders the step made are gone too


def test_an_overwritten_file_deleted_later_is_restored_and_the_note_says_so(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="new")
    target.unlink()
    note = step.undo()
    assert note is not None
    assert "was gone at rollback" in note
    assert target.read_text() == "old"


def test_a_deleted_file_recreated_by_someone_is_kept_aside_and_the_original_restored(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("original")
    target.chmod(0o600)
    step = Step(tmp_path)
    assert step.run("file.delete", path=str(target)) == {"path": str(target), "existed": True, "bytes": 8}
    target.write_text("a newcomer")
    note = step.undo()
    assert note is not None
    assert "kept the later version" in note
    assert target.read_text() == "original"
    assert mode(target) == 0o600


def test_an_undo_run_twice_restores_once(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="new")
    assert step.undo() is None
    assert step.undo() is None  # a rollback interrupted after restoring, then run again
    assert target.read_text() == "old"
    assert [f for f in files_under(tmp_path) if not f.startswith("undo/")] == ["f.txt"]  # nothing kept aside


def test_an_append_rerun_after_a_crash_appends_once_and_undo_cuts_it_back(tmp_path: Path) -> None:
    target = tmp_path / "log.txt"
    target.write_text("line 1\n")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="line 2\n", append=True)
    step.run("file.write", path=str(target), content="line 2\n", append=True)  # same state: a re-run
    assert target.read_text() == "line 1\nline 2\n"
    inode = os.stat(target).st_ino
    assert step.undo() is None
    assert target.read_text() == "line 1\n"
    assert os.stat(target).st_ino == inode


def test_a_rerun_keeps_the_content_from_before_the_workflow(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("before the workflow")
    step = Step(tmp_path)
    step.run("file.write", path=str(target), content="first run")
    step.run("file.write", path=str(target), content="second run")
    assert step.undo() is None
    assert target.read_text() == "before the workflow"


def test_without_a_policy_a_replaced_symlink_comes_back_as_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("real")
    link = tmp_path / "link.txt"
    link.symlink_to("real.txt")
    step = Step(tmp_path)
    step.run("file.write", path=str(link), content="plain file now")
    assert not link.is_symlink()
    assert (tmp_path / "real.txt").read_text() == "real"
    assert step.undo() is None
    assert link.is_symlink()
    assert os.readlink(link) == "real.txt"


# -- the working directory ---------------------------------------------------------------------------


def test_relative_paths_mean_the_workflow_folder_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "project"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    step = Step(tmp_path, workdir=home)
    out = step.run("file.write", path="out/a.txt", content="x")
    assert out == {"path": str(home / "out" / "a.txt"), "bytes": 1}
    assert (home / "out" / "a.txt").read_text() == "x"
    assert not (elsewhere / "out").exists()
    assert step.action.intent_inputs(step.inputs, str(home)) == {"path": str(home / "out/a.txt"), "content": "x"}
    assert REGISTRY.get("file.copy").intent_inputs({"src": "a", "dst": "/abs/b"}, str(home)) == {  # type: ignore[union-attr]
        "src": str(home / "a"),
        "dst": "/abs/b",
    }
    monkeypatch.chdir(tmp_path)  # the undo runs from yet another folder
    assert step.undo(workdir=None) is None
    assert not (home / "out").exists()


# -- path policy: race-free, no links ------------------------------------------------------------

SWAPPER = r"""
import ctypes, os, sys
folder, outside, stop = sys.argv[1:4]
d, parked = os.path.join(folder, "d"), os.path.join(folder, "d_link")
os.symlink(outside, parked)
libc = ctypes.CDLL(None, use_errno=True)
exchange = getattr(libc, "renameat2", None)
print("ready", flush=True)
while not os.path.exists(stop):
    # d is a folder, then (atomically) a link to the outside folder, then a folder again ...
    if exchange is not None and exchange(-100, d.encode(), -100, parked.encode(), 2) == 0:
        continue
    try:  # no renameat2: a non-atomic swap does the same, with moments without d
        os.rename(d, d + ".real"); os.symlink(outside, d); os.unlink(d); os.rename(d + ".real", d)
    except OSError:
        pass
"""


class Swapper:
    """Another process turning ``allowed/d`` into a link to ``outside`` and back, as fast as it can."""

    def __init__(self, tmp: Path):
        self.allowed, self.outside = tmp / "allowed", tmp / "outside"
        (self.allowed / "d").mkdir(parents=True)
        self.outside.mkdir()
        self._stop = tmp / "stop"
        self._child = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(self.allowed), str(self.outside), str(self._stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        assert self._child.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        """Stop swapping (before counting files: a listing taken while names swap is not reliable)."""
        self._stop.touch()
        self._child.wait(timeout=10)


@pytest.fixture
def swapping(tmp_path: Path) -> Iterator[Swapper]:
    swapper = Swapper(tmp_path)
    try:
        yield swapper
    finally:
        swapper.stop()


def test_the_swap_really_leads_a_naive_write_outside(swapping: Swapper) -> None:
    """The control: a check followed by an open, as before, does write outside under this swap."""
    allowed, outside = swapping.allowed, swapping.outside
    for i in range(20000):
        target = allowed / "d" / f"naive{i}.txt"
        try:
            if os.path.realpath(target).startswith(str(allowed) + os.sep):
                target.write_text("x")
        except OSError:  # a link read while it was being replaced, or the folder missing for a moment
            pass
        if i % 50 == 0 and any(outside.iterdir()):
            break
    swapping.stop()
    assert any(outside.iterdir())


def test_writes_under_a_path_policy_never_land_outside_while_a_link_is_swapped(
    swapping: Swapper, tmp_path: Path
) -> None:
    allowed, outside = swapping.allowed, swapping.outside
    step = Step(tmp_path, fence=(str(allowed),))
    written, refusals = 0, []
    for i in range(3000):
        step.state = {}
        try:
            step.run("file.write", path=str(allowed / "d" / f"f{i}.txt"), content="x", append=i % 2 == 1)
            written += 1
        except PolicyError as exc:
            refusals.append(str(exc))
    swapping.stop()
    assert files_under(outside) == []
    assert written > 0
    assert refusals, "the race never hit: the test did not test anything"
    assert [r for r in refusals if "symbolic link" not in r] == []
    assert len([f for f in files_under(allowed) if f.endswith(".txt")]) == written


def test_the_engine_under_a_policy_writes_nothing_outside_while_a_link_is_swapped(
    swapping: Swapper, tmp_path: Path
) -> None:
    allowed, outside = swapping.allowed, swapping.outside
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "users: {tester: [writer]}\nroles:\n  writer:\n    allow: ['file.*', where]\n    paths: [allowed]\n"
    )
    registry = Registry()

    @registry.action("where")
    def where() -> dict:  # the path is known only when the step runs: checked then, and by the action
        return {"dir": str(allowed / "d")}

    outcomes: dict[str, int] = {}
    with Engine(tmp_path / "airt.db", registry=registry, policy=policy, user="tester") as eng:
        for i in range(150):
            path = f"${{{{ steps.where.outputs.dir }}}}/f{i}.txt" if i % 3 else str(allowed / "d" / f"f{i}.txt")
            spec = {
                "name": "race",
                "steps": [
                    {"name": "where", "action": "where"},
                    {
                        "name": "w",
                        "action": "file.write",
                        "inputs": {"path": path, "content": "x", "append": i % 2 == 0},
                    },
                ],
            }
            try:
                status = eng.start(spec).wait(timeout=10)
            except PolicyError:
                status = "refused at start"
            outcomes[status] = outcomes.get(status, 0) + 1
    swapping.stop()
    assert files_under(outside) == []
    assert outcomes.get("COMPLETED", 0) > 0, outcomes


@pytest.fixture
def fenced(tmp_path: Path) -> tuple[Path, Path, Step]:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "target.txt").write_text("outside")
    return allowed, outside, Step(tmp_path, fence=(str(allowed),))


@pytest.mark.parametrize("append", [False, True])
def test_a_hard_link_is_refused_for_writes_under_a_policy(fenced: tuple[Path, Path, Step], append: bool) -> None:
    allowed, outside, step = fenced
    os.link(outside / "target.txt", allowed / "h.txt")
    with pytest.raises(PolicyError, match="2 hard links"):
        step.run("file.write", path=str(allowed / "h.txt"), content="x", append=append)
    assert (outside / "target.txt").read_text() == "outside"
    with pytest.raises(PolicyError, match="hard links"):
        step.run("file.copy", src=str(allowed / "h.txt"), dst=str(allowed / "copy.txt"))
    assert not (allowed / "copy.txt").exists()


def test_without_a_policy_a_hard_link_is_written_as_before(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    os.link(tmp_path / "a.txt", tmp_path / "b.txt")
    Step(tmp_path).run("file.write", path=str(tmp_path / "b.txt"), content="+", append=True)
    assert (tmp_path / "a.txt").read_text() == "a+"


@pytest.mark.parametrize(
    ("relative", "words"),
    [
        ("link.txt", "is a symbolic link"),
        ("sub/../../outside/x.txt", "goes above the allowed folder"),
        ("../outside/x.txt", "goes above the allowed folder"),
        ("OUTSIDE/x.txt", "is outside the allowed folders"),
        ("linkdir/x.txt", "symbolic link"),
    ],
)
def test_links_and_dotdot_cannot_leave_the_allowed_folder(
    fenced: tuple[Path, Path, Step], relative: str, words: str
) -> None:
    allowed, outside, step = fenced
    (allowed / "sub").mkdir()
    (allowed / "link.txt").symlink_to(outside / "target.txt")
    (allowed / "linkdir").symlink_to(outside)
    relative = relative.replace("OUTSIDE", str(outside))
    for action, inputs in (
        ("file.write", {"path": relative, "content": "x"}),
        ("file.write", {"path": relative, "content": "x", "append": True}),
        ("file.delete", {"path": relative}),
        ("file.copy", {"src": relative, "dst": "copy.txt"}),
    ):
        step.workdir = str(allowed)
        with pytest.raises(PolicyError, match=words):
            step.run(action, **inputs)
    assert files_under(outside) == ["target.txt"]
    assert (outside / "target.txt").read_text() == "outside"
    assert not (allowed / "copy.txt").exists()


def test_undo_under_a_policy_does_not_follow_a_link_swapped_in_later(fenced: tuple[Path, Path, Step]) -> None:
    allowed, outside, step = fenced
    (allowed / "d").mkdir()
    step.run("file.write", path=str(allowed / "d" / "f.txt"), content="x")
    shutil.rmtree(allowed / "d")
    (allowed / "d").symlink_to(outside)
    with pytest.raises(PolicyError, match="symbolic link"):
        step.undo()
    assert files_under(outside) == ["target.txt"]


# -- as a second local user --------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_user() -> Iterator[str]:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI must run these tests as root, to create a second user and read as that user")
        pytest.skip("needs root to create a second local user")
    useradd = require_tool("useradd", "the permission tests as a second user")
    require_tool("runuser", "the permission tests as a second user")
    made = subprocess.run(["id", "-u", PROBE_USER], capture_output=True).returncode != 0
    if made:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PROBE_USER],
            check=True,
            capture_output=True,
        )
    yield PROBE_USER
    if made:
        subprocess.run(["userdel", PROBE_USER], capture_output=True)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder everyone may enter (tmp_path is private to root), like a project folder on a shared machine."""
    folder = Path(tempfile.mkdtemp(prefix="airt-safety-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_user(user: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True, timeout=30)


def can_read(user: str, path: Path) -> bool:
    return as_user(user, "cat", str(path)).returncode == 0


def _write_then_roll_back(
    folder: Path, target: Path, content: str, look: Callable[[list[Path]], None] = lambda copies: None
) -> tuple[tuple[str, int, int], list[Path], bytes]:
    """Write ``target`` in a workflow, look at it and at the undo copies (``look``), roll back; returns
    what was seen and the database's bytes.  The copies are gone after the rollback."""
    with Engine(folder / "airt.db", registry=Registry()) as eng:
        step = {"name": "s", "action": "file.write", "inputs": {"path": str(target), "content": content}}
        run = eng.start({"name": "w", "steps": [step]})
        assert run.wait(timeout=10) == "COMPLETED"
        seen = (target.read_text(), mode(target), os.stat(target).st_uid)
        copies = list((folder / "airt.db.undo").rglob("*.undo"))
        look(copies)
        run.rollback()
        assert run.wait(timeout=10) == "ROLLED_BACK"
    stored = b"".join(p.read_bytes() for p in folder.glob("airt.db*") if p.is_file())
    return seen, copies, stored


def test_a_private_file_stays_unreadable_to_another_user_through_write_and_undo(other_user: str, shared: Path) -> None:
    public = shared / "public.txt"
    public.write_text("hello")
    public.chmod(0o644)
    assert can_read(other_user, public)  # the probe works: a readable file is read
    target = shared / "private.txt"
    target.write_text("old secret")
    target.chmod(0o600)

    def look(copies: list[Path]) -> None:
        [copy] = copies
        assert copy.read_text() == "old secret"  # it is there, readable by the engine's user
        assert not can_read(other_user, copy)
        assert as_user(other_user, "ls", str(copy.parent)).returncode != 0
        assert as_user(other_user, "ls", str(copy.parent.parent)).returncode != 0

    (content, bits, _), copies, stored = _write_then_roll_back(shared, target, "new secret", look)
    assert content == "new secret"
    assert bits == 0o600
    assert target.read_text() == "old secret"
    assert mode(target) == 0o600
    assert not can_read(other_user, target)
    assert len(copies) == 1
    assert not copies[0].exists()  # rolled back: the engine removed the copy
    assert b"old secret" not in stored
    assert base64.b64encode(b"old secret") not in stored


def test_the_owner_and_mode_of_another_users_file_are_kept(other_user: str, shared: Path) -> None:
    uid = int(subprocess.run(["id", "-u", other_user], capture_output=True, text=True, check=True).stdout)
    gid = int(subprocess.run(["id", "-g", other_user], capture_output=True, text=True, check=True).stdout)
    target = shared / "theirs.txt"
    target.write_text("theirs")
    os.chown(target, uid, gid)
    target.chmod(0o640)
    (_, bits, owner), _, _ = _write_then_roll_back(shared, target, "edited by a workflow")
    assert (bits, owner) == (0o640, uid)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid, mode(target)) == (uid, gid, 0o640)
    assert target.read_text() == "theirs"
    assert can_read(other_user, target)


def test_an_undo_folder_that_belongs_to_another_user_is_refused(other_user: str, shared: Path) -> None:
    uid = int(subprocess.run(["id", "-u", other_user], capture_output=True, text=True, check=True).stdout)
    folder = shared / "undo"
    folder.mkdir(mode=0o700)
    os.chown(folder, uid, -1)
    with pytest.raises(ActionError, match="belongs to user id"):
        keep_copy(str(folder), "wf", "s", b"secret")
    assert list(folder.iterdir()) == []


def test_threads_writing_one_file_each_keep_their_own_undo(tmp_path: Path) -> None:
    """Steps running in parallel share the workflow's undo folder and key without mixing them up."""
    steps = [Step(tmp_path) for _ in range(8)]
    for i in range(8):
        (tmp_path / f"f{i}.txt").write_text(f"old {i}")
    threads = [
        threading.Thread(
            target=s.run, args=("file.write",), kwargs={"path": str(tmp_path / f"f{i}.txt"), "content": "new"}
        )
        for i, s in enumerate(steps)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(steps):
        assert s.undo() is None
        assert (tmp_path / f"f{i}.txt").read_text() == f"old {i}"
