"""The ``airt`` command on hostile or mistaken input: text from the database that would drive the
terminal, unreadable spec files, impossible cron expressions, JSON nested too deep, bad ports,
a ``--db`` that is not an airt_nb database, and exit codes that tell how a run it executed ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import cmd

import airt_nb
from airt_nb import Registry, cli

ROOT = Path(__file__).resolve().parents[1]

RAW = ("\r", "\x1b", "\x07", "\u202e", "\u200b")

# An approval message an agent could write to make the person deciding read something else.
HOSTILE_SPEC = r"""
name: cleanup
steps:
  - name: a
    action: file.write
    inputs: {path: "a.txt", content: "x"}
  - name: review
    type: human_approval
    message: "Delete the production database?\r\x1b[2KRefresh the README \u202eharmless\u200b\napprovers   anyone"
"""
MESSAGE = "Delete the production database?\r\x1b[2KRefresh the README \u202eharmless\u200b\napprovers   anyone"

TWO_STEPS = """
name: two
steps:
  - name: a
    action: file.write
    inputs: {path: "a.txt", content: "a"}
  - name: b
    action: file.write
    inputs: {path: "b.txt", content: "b"}
"""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))
    e.pop("AIRT_USER", None)
    e.pop("AIRT_DB", None)
    return e


def airt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", *args], capture_output=True, text=True, env=env(), timeout=60, cwd=cwd
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main(list(args))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def started(db: Path, spec: str, workdir: Path, registry: Registry | None = None) -> SimpleNamespace:
    """Start ``spec`` in an engine that then closes (as a notebook that went away): its id and status."""
    workdir.mkdir(exist_ok=True)
    with airt_nb.Engine(db, registry=registry or Registry(), user="sam") as eng:
        run = eng.start(spec, workdir=workdir)
        return SimpleNamespace(id=run.id, status=run.wait(20))


# -- 1. text from the database is escaped on the terminal, exact in JSON -------------------------------------


def test_control_characters_from_the_database_are_shown_escaped(db_path: Path, tmp_path: Path) -> None:
    run = started(db_path, HOSTILE_SPEC, tmp_path / "w")
    db = str(db_path)
    shown = airt("--db", db, "show", run.id)
    assert shown.returncode == 0, shown.stderr
    for raw in RAW:
        assert raw not in shown.stdout
    message = next(line for line in shown.stdout.splitlines() if line.startswith("  message"))
    assert message == (
        "  message     Delete the production database?\\r\\x1b[2KRefresh the README \\u202eharmless\\u200b"
    )
    # The message's second line stays under it: it cannot pass for a line of the approval's own.
    assert "\n              approvers   anyone\n" in shown.stdout
    assert "\n  approvers   anyone\n" in shown.stdout  # the real one, once

    listed = airt("--db", db, "list")
    assert listed.returncode == 0
    for raw in RAW:
        assert raw not in listed.stdout
    assert "database?\\r\\x1b[2K" in listed.stdout

    reason = "ok\x1b]0;pwned\x07\rOVERWRITE\u202e"
    decided = airt("--db", db, "approve", run.id, "--reason", reason)
    assert decided.returncode == 0, decided.stderr
    assert "\\x1b]0;pwned\\x07\\rOVERWRITE\\u202e" in decided.stdout
    after = airt("--db", db, "show", run.id)
    for raw in RAW:
        assert raw not in decided.stdout + after.stdout
    assert "(ok\\x1b]0;pwned\\x07\\rOVERWRITE\\u202e)" in after.stdout

    # JSON is exact: a script reads what is recorded.
    data = json.loads(airt("--db", db, "--json", "show", run.id).stdout)
    [approval] = data["approvals"]
    assert (approval["message"], approval["reason"]) == (MESSAGE, reason)


def test_an_error_line_is_escaped_too(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error quotes what it refuses (a name, a reason, an action's message): escaped on stderr, exact in JSON."""
    started(db_path, TWO_STEPS, tmp_path / "w")
    text = "step 'b' failed: RuntimeError: ok\r\x1b[2Kall good \u202e"

    def refuse(engine: Any, args: Any) -> Any:
        raise airt_nb.AirtError(text)

    monkeypatch.setitem(cli.COMMANDS, "list", refuse)
    code, out, err = run_cli(capsys, "--db", str(db_path), "--json", "list")
    assert code == 1
    assert json.loads(out)["error"] == " ".join(text.split())  # one line, as on stderr; nothing escaped
    assert err == "airt: step 'b' failed: RuntimeError: ok \\x1b[2Kall good \\u202e\n"


def test_a_name_refused_on_the_command_line_is_said_as_its_option(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = started(db_path, HOSTILE_SPEC, tmp_path / "w")
    code, _, err = run_cli(capsys, "--db", str(db_path), "approve", run.id, "--as", "ann\u200b")
    assert code == 1
    assert err == (
        f"airt: workflow {run.id}, step 'review': --as 'ann\\u200b' contains U+200B (an invisible or control "
        "character); give the name as plain text (or leave --as out to decide as yourself)\n"
    )


# -- 2. no tracebacks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.yaml", "no such file"),
        (lambda d: d, "it is a folder"),
        (lambda d: (d / "bin.yaml").write_bytes(b"name: x\n\xff\xfe\x80") and d / "bin.yaml", "it is not UTF-8"),
    ],
    ids=["missing", "folder", "binary"],
)
def test_a_spec_file_that_cannot_be_read_is_one_line(
    make: Any, says: str, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = started(db_path, TWO_STEPS, tmp_path / "w")
    spec = make(tmp_path)
    for args in (
        ["fork", done.id, "--from", "b", "--spec", str(spec)],
        ["schedule", "add", str(spec), "--cron", "0 6 * * 1"],
    ):
        code, out, err = run_cli(capsys, "--db", str(db_path), *args)
        assert (code, out) == (1, "")
        assert err.startswith(f"airt: cannot read spec file {spec}: {says}")
        assert err.count("\n") == 1


def test_a_spec_file_with_problems_is_named_at_each_line(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bad.yaml:5``, not ``line 5``: the file is named, as compilers name it (editors jump there)."""
    done = started(db_path, TWO_STEPS, tmp_path / "w")
    bad = tmp_path / "bad.yaml"
    bad.write_text(TWO_STEPS.replace('    inputs: {path: "b.txt", content: "b"}', "    retry: {max_attempts: lots}"))
    for args in (
        ["schedule", "add", str(bad), "--cron", "0 6 * * 1"],
        ["fork", done.id, "--from", "b", "--spec", str(bad)],
    ):
        code, out, err = run_cli(capsys, "--db", str(db_path), *args)
        assert (code, out) == (1, "")
        assert err.startswith(f"airt: workflow 'two': invalid workflow spec: {bad}:9: steps[1].retry.max_attempts: ")
        assert "line 9" not in err
        code, out, _ = run_cli(capsys, "--db", str(db_path), "--json", *args)
        assert json.loads(out)["type"] == "SpecError"  # the same error for scripts, its text naming the file
    # A problem that is not at a line of the file is not said to be in it.
    good = tmp_path / "good.yaml"
    good.write_text(TWO_STEPS)
    code, _, err = run_cli(capsys, "--db", str(db_path), "fork", done.id, "--from", "nope", "--spec", str(good))
    assert code == 1
    assert err == "airt: workflow 'two': invalid workflow spec: from_step: no step named 'nope'; steps are: a, b\n"
    assert run_cli(capsys, "--db", str(db_path), "--json", "schedule", "list")[1] == "[]\n"


def test_cron_expressions_are_checked_on_the_command_line(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started(db_path, TWO_STEPS, tmp_path / "w")
    spec = tmp_path / "s.yaml"
    spec.write_text(TWO_STEPS)
    base = ["--db", str(db_path), "schedule", "add", str(spec)]
    err = usage_error(capsys, *base, "--cron", "0 0 31 2 *")
    assert "argument --cron: '0 0 31 2 *' never fires" in err
    err = usage_error(capsys, *base, "--cron", "bogus")
    assert "argument --cron: 'bogus' is not a cron expression; use five fields" in err
    assert "invalid workflow spec" not in err
    assert "is not a cron expression" in usage_error(capsys, *base, "--cron", "* * * * * * *")
    err = usage_error(capsys, *base, "--cron", "0 6 * * 1", "--tz", "Mars/Olympus")
    assert "argument --tz: unknown time zone 'Mars/Olympus'" in err
    assert run_cli(capsys, "--db", str(db_path), "--json", "schedule", "list")[1] == "[]\n"  # nothing recorded


@pytest.mark.parametrize("depth", [101, 900, 5000])
def test_json_nested_too_deep_is_a_usage_error(depth: int, capsys: pytest.CaptureFixture[str]) -> None:
    deep = "[" * depth + "]" * depth
    err = usage_error(capsys, "send", "abcd", "go", "--data", deep)
    assert "argument --data: nests too deep (at most 100 levels of lists and objects)" in err
    obj = '{"a":' * depth + "1" + "}" * depth
    err = usage_error(capsys, "fork", "abcd", "--from", "a", "--inputs", obj)
    assert "argument --inputs: nests too deep" in err


def test_json_nested_100_levels_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    from airt_nb.cliargs import _json_value

    assert _json_value("[" * 100 + "]" * 100) is not None


@pytest.mark.parametrize("port", ["-1", "0", "99999", "http"])
def test_serve_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "serve", "--port", port)
    assert "argument --port:" in err
    assert "give a number from 1 to 65,535" in err or "is not a whole number" in err


def test_serve_says_it_cannot_listen_on_an_address() -> None:
    proc = airt("serve", "--ip", "999.1.1.1", "--token", "t")
    assert proc.returncode == 1
    assert proc.stderr.startswith("airt: cannot listen on 999.1.1.1:8765: ")
    assert "Traceback" not in proc.stderr


def test_other_usage_messages_name_the_right_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'abc' is not a whole number; give e.g. --max-workers 16" in usage_error(
        capsys, "worker", "--max-workers", "abc"
    )
    err = usage_error(capsys, "resume", "abcd", "--timeout", "-1")
    assert "argument --timeout: -1 is not a positive duration" in err
    assert "MAX_DURATION" not in usage_error(capsys, "resume", "abcd", "--timeout", "1e9")


def test_schedule_remove_points_to_schedule_list_and_names_the_whole_id(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started(db_path, TWO_STEPS, tmp_path / "w")
    spec = tmp_path / "s.yaml"
    spec.write_text(TWO_STEPS)
    db = str(db_path)
    code, out, err = run_cli(capsys, "--db", db, "schedule", "remove", "nosuch")
    assert code == 1
    assert "list them with `airt schedule list`" in err
    assert "`airt list`" not in err
    code, out, _ = run_cli(capsys, "--db", db, "--json", "schedule", "add", str(spec), "--cron", "0 6 * * 1")
    schedule_id = json.loads(out)["schedule_id"]
    code, out, _ = run_cli(capsys, "--db", db, "schedule", "remove", schedule_id[:6])
    assert (code, out) == (0, f"removed schedule {schedule_id}\n")


def test_an_empty_list_names_every_filter(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started(db_path, TWO_STEPS, tmp_path / "w")
    code, out, _ = run_cli(capsys, "--db", str(db_path), "list", "--status", "COMPLETED", "--name", "zzz")
    assert (code, out) == (0, "no workflows with status COMPLETED and a name containing 'zzz'\n")


# -- 3. a --db that is not an airt_nb database is refused and left as it was -----------------------------------


def _other_app_db(path: Path) -> Path:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("create table t(x)")
    conn.execute("insert into t values (1)")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("kind", ["empty", "other"])
@pytest.mark.parametrize("command", [["list"], ["show", "abcd"], ["schedule", "list"], ["approve", "abcd"]])
def test_a_file_that_is_not_an_airt_database_is_refused_unchanged(
    kind: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.db"
    if kind == "empty":
        path.write_bytes(b"")
    else:
        _other_app_db(path)
    before = path.read_bytes()
    code, out, err = run_cli(capsys, "--db", str(path), *command)
    assert (code, out) == (1, "")
    what = "an empty file" if kind == "empty" else "a SQLite database without airt_nb's tables"
    assert err == f"airt: no airt_nb database at {path} (it is {what}; left unchanged); check --db / AIRT_DB\n"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal / -shm either


def test_an_empty_db_option_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --db: empty path" in usage_error(capsys, "--db", "", "list")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "other", "not sqlite"])
def test_serve_refuses_a_database_that_is_not_one_before_it_starts(kind: str, tmp_path: Path) -> None:
    """Not a server that answers 503 to every request: one line, exit status 1, the file left as it was."""
    path = {"missing": tmp_path / "nope" / "x.db", "folder": tmp_path}.get(kind, tmp_path / "app.db")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "other":
        _other_app_db(path)
    elif kind == "not sqlite":
        path.write_text("name: not a database\n")
    before = path.read_bytes() if path.is_file() else None
    proc = subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(path), "serve", "--port", str(_free_port()), "--token", "t"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,  # a server that started would run until killed
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.count("\n") == 1
    expected = {
        "missing": f"airt: no airt_nb database at {path}; pass --db PATH or set AIRT_DB",
        "folder": f"airt: no airt_nb database at {path} (it is a folder); pass --db PATH or set AIRT_DB",
        "empty": f"airt: no airt_nb database at {path} (it is an empty file; left unchanged)",
        "other": f"airt: no airt_nb database at {path} (it is a SQLite database without airt_nb's tables",
        "not sqlite": f"airt: database {path} is not a valid SQLite database",
    }[kind]
    assert proc.stderr.startswith(expected)
    if before is not None:
        assert path.read_bytes() == before


def test_serve_without_db_refuses_a_folder_without_airt_db(tmp_path: Path) -> None:
    proc = airt("serve", "--port", str(_free_port()), "--token", "t", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "airt: no airt_nb database at airt.db; pass --db PATH or set AIRT_DB\n"


# -- 4. exit codes of the runs the command executes ------------------------------------------------------------


def test_fork_that_ends_failed_exits_1(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = started(db_path, TWO_STEPS, tmp_path / "w")
    assert done.status == "COMPLETED"
    edited = tmp_path / "edited.yaml"
    edited.write_text(TWO_STEPS.replace('action: file.write\n    inputs: {path: "b.txt", content: "b"}',
                                        'action: file.copy\n    inputs: {src: "missing.txt", dst: "c.txt"}'))  # fmt: skip
    code, out, err = run_cli(
        capsys, "--db", str(db_path), "--json", "fork", done.id, "--from", "b", "--spec", str(edited)
    )
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "FAILED"
    assert err.startswith(f"airt: workflow {data['workflow_id']} ended FAILED: ")
    assert err.count("\n") == 1


WAITS = """
name: slow
steps:
  - name: review
    type: human_approval
    message: go?
  - name: nap
    action: wait
    inputs: {seconds: 3}
"""


def test_resume_that_gives_up_at_its_timeout_says_so_and_exits_1(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = started(db_path, WAITS, tmp_path / "w")
    db = str(db_path)
    assert run_cli(capsys, "--db", db, "approve", run.id)[0] == 0
    code, out, err = run_cli(capsys, "--db", db, "resume", run.id, "--timeout", "0.5")
    assert code == 1
    assert out == f"workflow {run.id} resumed here and is now RUNNING\n"
    assert err == (
        f"airt: gave up after 0.5s; workflow {run.id} is left RUNNING for the next engine "
        f"({cmd(db)} resume {run.id}, or {cmd(db)} worker)\n"
    )


# -- 5. rollback of a FAILED workflow whose engine is gone: deterministic, and the reply is the truth --------------

FAILS = """
name: fails
steps:
  - name: a
    action: file.write
    inputs: {path: "f.txt", content: "f"}
  - name: b
    action: boom
"""


def test_rollback_of_a_failed_workflow_nobody_runs_ends_here_and_says_how(db_path: Path, tmp_path: Path) -> None:
    registry = Registry()

    @registry.action("boom")
    def boom() -> dict:
        raise RuntimeError("kaboom")

    run = started(db_path, FAILS, tmp_path / "w", registry)
    assert run.status == "FAILED"
    for attempt in range(3):
        copy = tmp_path / f"copy{attempt}.db"
        copy.write_bytes(db_path.read_bytes())
        rolled = airt("--db", str(copy), "--json", "rollback", run.id)
        assert (rolled.returncode, rolled.stderr) == (0, "")
        reply = json.loads(rolled.stdout)
        shown = json.loads(airt("--db", str(copy), "--json", "show", run.id).stdout)
        assert reply["status"] == shown["workflow"]["status"] == "FAILED"
        assert "nothing was left to undo" in airt("--db", str(copy), "rollback", run.id).stdout


# -- 6. tables fit the terminal ---------------------------------------------------------------------------------------

LONG = "a-workflow-name-that-goes-on-" * 3
LONG_PAUSED = f"""
name: {LONG}paused
steps:
  - name: a
    action: file.write
    inputs: {{path: "a.txt", content: "x"}}
  - name: review-the-report-with-a-long-step-name
    type: human_approval
    message: "{"Check every line of the report before it is published to everyone. " * 3}"
"""
LONG_FAILS = f"""
name: {LONG}fails
steps:
  - name: fetch-the-figures-from-somewhere-far-away
    action: boom
"""


def _long_database(db_path: Path, tmp_path: Path) -> list[str]:
    registry = Registry()

    @registry.action("boom")
    def boom() -> dict:
        raise RuntimeError("upstream said 503: " + "a long explanation of what went wrong, " * 5)

    paused = started(db_path, LONG_PAUSED, tmp_path / "w", registry)
    failed = started(db_path, LONG_FAILS, tmp_path / "w", registry)
    assert (paused.status, failed.status) == ("PAUSED", "FAILED")
    return [paused.id, failed.id]


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_list_and_show_fit_the_terminal_width_and_keep_ids_whole(
    columns: int, db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _long_database(db_path, tmp_path)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(capsys, "--db", str(db_path), "list")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, out
    assert "…" in out  # the names and notes are cut, ...
    for workflow_id in ids:  # ... never the ids people copy
        assert any(line.startswith(workflow_id + "  ") for line in lines)
    for shown in ("PAUSED", "FAILED", "CREATED (UTC)"):  # statuses and dates whole
        assert shown in out

    code, out, _ = run_cli(capsys, "--db", str(db_path), "show", ids[1])
    assert code == 0
    steps = out.split("\nsteps\n")[1].split("\n\n")[0].splitlines()
    assert steps[0].startswith("  #  STEP")
    assert max(len(line) for line in steps) <= columns, "\n".join(steps)
    assert "RuntimeError: ups" in steps[1]

    code, out, _ = run_cli(capsys, "--db", str(db_path), "--json", "list")  # JSON is exact whatever the width
    assert sorted(w["name"] for w in json.loads(out)) == [f"{LONG}fails", f"{LONG}paused"]


def test_show_wraps_long_messages_errors_and_names_under_their_labels(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paused, failed = _long_database(db_path, tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    for workflow_id, label, text in (
        (paused, "message", "Check every line of the report before it is published to everyone. " * 3),
        (failed, "error", "a long explanation of what went wrong, " * 5),
    ):
        code, out, _ = run_cli(capsys, "--db", str(db_path), "show", workflow_id)
        assert code == 0
        lines = out.splitlines()
        # Every line fits but the commands to copy, which stay whole (this database's path is long).
        assert max(len(line) for line in lines if " airt --db " not in line) <= 80, out
        first = next(i for i, line in enumerate(lines) if line.startswith(f"  {label:<12}"))
        held = [lines[first][14:]]
        for line in lines[first + 1 :]:
            if not line.startswith(" " * 14):
                break
            held.append(line[14:])  # a wrapped line never runs back to the left edge
        assert len(held) > 1, out
        assert text.strip() in " ".join(held)  # wrapped, not cut
        assert lines[0].startswith(f"workflow {workflow_id}  ")
        assert lines[1].startswith("  ")  # the header's long name goes on, indented
        assert LONG in lines[0] + lines[1].strip()
        if label == "message":  # the two commands, each on a line of its own
            assert f"  decide: {cmd(db_path)} approve {workflow_id} --reason ..." in lines
            assert f"      or: {cmd(db_path)} reject {workflow_id} --reason ..." in lines


def test_a_very_narrow_terminal_cuts_free_text_only_down_to_a_minimum(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _long_database(db_path, tmp_path)
    monkeypatch.setenv("COLUMNS", "40")
    code, out, _ = run_cli(capsys, "--db", str(db_path), "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED", "(UTC)", "BY", "NOTE"]
    for row in rows:
        workflow_id, name = row.split()[:2]
        assert workflow_id in ids
        assert name == LONG[:7] + "…"  # 8 characters at least


def test_a_table_piped_without_columns_is_fixed_and_generous(db_path: Path, tmp_path: Path) -> None:
    _long_database(db_path, tmp_path)
    e = env()
    e.pop("COLUMNS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "list"],
        capture_output=True,
        text=True,
        env=e,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    widest = max(len(line) for line in proc.stdout.splitlines())
    assert 120 < widest <= 160


def test_output_cut_short_by_a_reader_ends_quietly_as_on_sigpipe(db_path: Path) -> None:
    # `airt list | head -1`: the pipe closes while airt still writes; a traceback on stderr was printed.
    with airt_nb.Engine(db_path) as eng:
        spec = {"name": "many", "steps": [{"name": "a", "action": "wait", "inputs": {"seconds": 0}}]}
        for run in [eng.start(spec) for _ in range(1500)]:  # ~150 KB of table: more than a pipe holds
            run.wait(timeout=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "list", "--limit", "2000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().split()[0] == b"WORKFLOW"
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err


def test_one_of_several_approvals_is_confirmed_with_its_own_reason(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "name: two\nsteps:\n  - name: review\n    type: human_approval\n    min_approvals: 2\n"
    with airt_nb.Engine(db_path) as eng:
        run = eng.start(spec)
        assert run.wait(timeout=10) == "PAUSED"
    code, out, _ = run_cli(capsys, "--db", str(db_path), "approve", run.id, "--as", "ann", "--reason", "numbers ok")
    assert code == 0
    assert out.splitlines()[:2] == [
        f"approved step 'review' of workflow {run.id} as ann: numbers ok",  # the reason was left out
        "1 of 2 approvals: it waits for 1 more from other people",
    ]
